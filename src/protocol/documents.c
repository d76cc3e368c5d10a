/*
 * Result, event, dead-letter and retry documents (see documents.h). The
 * per-job result and events go through the JSON writer (no jansson tree is
 * built only to be serialised); the rarer dead entries and retry payloads
 * are built with jansson, checking every step: out of memory gives NULL,
 * never a document with a member missing.
 */
#include "protocol/documents.h"

#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_writer.h"
#include "core/random.h"

char *jobq_doc_result(const struct jobq_job *job, const char *worker) {
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    jobq_json_writer_string(&w, "id", job->id);
    jobq_json_writer_string(&w, "status", job->failed ? "failed" : "ok");
    jobq_json_writer_value(&w, "result", job->result);
    if (job->failed) jobq_json_writer_string(&w, "error", job->error ? job->error : "failed");
    jobq_json_writer_int(&w, "attempts", job->attempt);
    jobq_json_writer_string(&w, "worker", worker);
    jobq_json_writer_string(&w, "queue", job->queue ? job->queue : "");
    jobq_json_writer_string(&w, "handler", job->handler);
    jobq_json_writer_time(&w, "enqueued_at", job->enqueued_at);
    jobq_json_writer_time(&w, "started_at", job->started_at);
    jobq_json_writer_time(&w, "finished_at", job->finished_at);
    return jobq_json_writer_finish(&w);
}

/* The members every event has, in order, into a begun writer. */
static void event_members(jobq_json_writer *w, const struct jobq_job *job, const char *event,
                          const char *worker, double now) {
    jobq_json_writer_string(w, "event", event);
    jobq_json_writer_string(w, "id", job->id);
    jobq_json_writer_string(w, "queue", job->queue ? job->queue : "");
    jobq_json_writer_string(w, "handler", job->handler);
    jobq_json_writer_int(w, "attempt", job->attempt);
    jobq_json_writer_string(w, "worker", worker);
    jobq_json_writer_time(w, "time", now);
}

char *jobq_doc_event(const struct jobq_job *job, const char *event, const char *worker, double now) {
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    event_members(&w, job, event, worker, now);
    if (job->failed && job->error) jobq_json_writer_string(&w, "error", job->error);
    return jobq_json_writer_finish(&w);
}

char *jobq_doc_progress(const struct jobq_job *job, const char *worker, double now, double fraction,
                        const char *message) {
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    event_members(&w, job, "progress", worker, now);
    json_t *f = json_real(fraction);
    jobq_json_writer_value(&w, "progress", f);
    json_decref(f);
    if (message) jobq_json_writer_string(&w, "message", message);
    return jobq_json_writer_finish(&w);
}

/* jansson drops a member silently when memory runs out (json_copy ignores
 * a failed insertion; json_object_set_new of a NULL value just fails), which
 * would leave a dead entry without its payload, or a retry payload without
 * its id, handler or attempt count. The dead entries and retry payloads are
 * built through these, which note any failure in *ok, and are handed out
 * only whole. */
static void set(json_t *o, const char *key, json_t *value, bool *ok) {
    if (json_object_set_new(o, key, value) != 0) *ok = false;
}

static void append(json_t *a, json_t *value, bool *ok) {
    if (json_array_append_new(a, value) != 0) *ok = false;
}

/* A shallow copy of object src: members shared, every one of them there. */
static json_t *copy_object(json_t *src, bool *ok) {
    json_t *copy = json_object();
    if (!copy) {
        *ok = false;
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(src, key, value) set(copy, key, json_incref(value), ok);
    return copy;
}

/* The raw payload into o: as a string when it is UTF-8, else base64, cut
 * at JOBQ_DEAD_PAYLOAD_MAX bytes with a note of the whole. */
static void add_payload(json_t *o, const char *raw, size_t len, bool *ok) {
    size_t keep = len > JOBQ_DEAD_PAYLOAD_MAX ? JOBQ_DEAD_PAYLOAD_MAX : len;
    /* NULL for bytes that are not UTF-8, or when memory ran out: then the
     * payload is kept as base64, still whole. */
    json_t *payload = json_stringn(raw, keep);
    /* A cut may split a UTF-8 sequence: step back to a boundary. */
    for (size_t back = 1; !payload && keep < len && back < 4 && back < keep; back++)
        payload = json_stringn(raw, keep - back);
    if (payload) {
        set(o, "payload", payload, ok);
    } else {
        size_t size = 4 * ((keep + 2) / 3) + 1;
        char *b64 = malloc(size);
        if (b64 && b64_ntop((const unsigned char *)raw, keep, b64, size) >= 0)
            set(o, "payload_base64", json_string(b64), ok);
        else
            *ok = false;
        free(b64);
        set(o, "payload", json_null(), ok);
    }
    if (keep < len) {
        char hash[17];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)jobq_fnv1a64(raw, len));
        set(o, "payload_truncated", json_true(), ok);
        set(o, "payload_bytes", json_integer((json_int_t)len), ok);
        set(o, "payload_fnv1a64", json_string(hash), ok);
    }
}

/* The last JOBQ_ERRORS_KEPT - 1 earlier errors plus this attempt's. */
static json_t *errors_with(const struct jobq_job *job, const char *error, double now, bool *ok) {
    json_t *all = json_array();
    if (!all) {
        *ok = false;
        return NULL;
    }
    size_t n = json_array_size(job->errors);
    for (size_t i = n > JOBQ_ERRORS_KEPT - 1 ? n - (JOBQ_ERRORS_KEPT - 1) : 0; i < n; i++) {
        json_t *e = json_array_get(job->errors, i);
        if (json_is_object(e)) append(all, json_incref(e), ok); /* shared: never modified */
    }
    append(all, json_pack("{s:i, s:s, s:f}", "attempt", job->attempt, "error", error ? error : "failed", "at", now),
           ok);
    return all;
}

char *jobq_doc_dead(const struct jobq_job *job, const char *error, double now) {
    json_t *o = json_object();
    if (!o) return NULL;
    bool ok = true;
    set(o, "id", job->id ? json_string(job->id) : json_null(), &ok);
    set(o, "queue", json_string(job->queue ? job->queue : ""), &ok);
    set(o, "handler", job->handler ? json_string(job->handler) : json_null(), &ok);
    set(o, "error", json_string(error ? error : "failed"), &ok);
    add_payload(o, job->raw, job->raw_len, &ok);
    set(o, "failed_at", json_real(now), &ok);
    set(o, "attempts", json_integer(job->attempt), &ok);
    set(o, "errors", errors_with(job, error, now, &ok), &ok);
    char *s = ok ? jobq_json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    return s;
}

char *jobq_doc_retry_payload(const struct jobq_job *job, const char *error, bool died, double due_at) {
    if (!job->root || !json_is_object(job->root)) return NULL;
    bool ok = true;
    json_t *copy = copy_object(job->root, &ok); /* shallow: members shared, meta replaced */
    json_t *old_meta = json_object_get(job->root, JOBQ_META_FIELD);
    json_t *meta = json_is_object(old_meta) ? copy_object(old_meta, &ok) : json_object();
    if (!ok || !copy || !meta) {
        json_decref(copy);
        json_decref(meta);
        return NULL;
    }
    set(meta, "attempts", json_integer(job->attempt), &ok);
    set(meta, "deaths", json_integer(job->deaths + (died ? 1 : 0)), &ok);
    set(meta, "enqueued_at", json_real(job->enqueued_at), &ok);
    if (due_at > 0) set(meta, "queued_at", json_real(due_at), &ok);
    if (job->id_assigned) set(meta, "id", json_string(job->id), &ok);
    set(meta, "errors", errors_with(job, error, jobq_now(), &ok), &ok);
    set(copy, JOBQ_META_FIELD, meta, &ok);
    char *s = ok ? jobq_json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(copy);
    return s;
}
