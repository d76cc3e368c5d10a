/*
 * Result, event, dead-letter and retry documents (see documents.h). The
 * per-job result and events go through the JSON writer (no jansson tree is
 * built only to be serialised); the rarer dead entries and retry payloads
 * are built with jansson.
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

/* The raw payload into o: as a string when it is UTF-8, else base64, cut
 * at JOBQ_DEAD_PAYLOAD_MAX bytes with a note of the whole. */
static void add_payload(json_t *o, const char *raw, size_t len) {
    size_t keep = len > JOBQ_DEAD_PAYLOAD_MAX ? JOBQ_DEAD_PAYLOAD_MAX : len;
    json_t *payload = json_stringn(raw, keep);
    /* A cut may split a UTF-8 sequence: step back to a boundary. */
    for (size_t back = 1; !payload && keep < len && back < 4 && back < keep; back++)
        payload = json_stringn(raw, keep - back);
    if (payload) {
        json_object_set_new(o, "payload", payload);
    } else {
        size_t size = 4 * ((keep + 2) / 3) + 1;
        char *b64 = malloc(size);
        if (b64 && b64_ntop((const unsigned char *)raw, keep, b64, size) >= 0)
            json_object_set_new(o, "payload_base64", json_string(b64));
        free(b64);
        json_object_set_new(o, "payload", json_null());
    }
    if (keep < len) {
        char hash[17];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)jobq_fnv1a64(raw, len));
        json_object_set_new(o, "payload_truncated", json_true());
        json_object_set_new(o, "payload_bytes", json_integer((json_int_t)len));
        json_object_set_new(o, "payload_fnv1a64", json_string(hash));
    }
}

/* The last JOBQ_ERRORS_KEPT - 1 earlier errors plus this attempt's. */
static json_t *errors_with(const struct jobq_job *job, const char *error, double now) {
    json_t *all = json_array();
    size_t n = json_array_size(job->errors);
    for (size_t i = n > JOBQ_ERRORS_KEPT - 1 ? n - (JOBQ_ERRORS_KEPT - 1) : 0; i < n; i++) {
        json_t *e = json_array_get(job->errors, i);
        if (json_is_object(e)) json_array_append_new(all, json_deep_copy(e));
    }
    json_array_append_new(all, json_pack("{s:i, s:s, s:f}", "attempt", job->attempt, "error",
                                         error ? error : "failed", "at", now));
    return all;
}

char *jobq_doc_dead(const struct jobq_job *job, const char *error, double now) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "id", job->id ? json_string(job->id) : json_null());
    json_object_set_new(o, "queue", json_string(job->queue ? job->queue : ""));
    json_object_set_new(o, "handler", job->handler ? json_string(job->handler) : json_null());
    json_object_set_new(o, "error", json_string(error ? error : "failed"));
    add_payload(o, job->raw, job->raw_len);
    json_object_set_new(o, "failed_at", json_real(now));
    json_object_set_new(o, "attempts", json_integer(job->attempt));
    json_object_set_new(o, "errors", errors_with(job, error, now));
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

char *jobq_doc_retry_payload(const struct jobq_job *job, const char *error, bool died, double due_at) {
    if (!job->root || !json_is_object(job->root)) return NULL;
    json_t *copy = json_copy(job->root); /* shallow: members shared, meta replaced */
    json_t *old_meta = json_object_get(job->root, JOBQ_META_FIELD);
    json_t *meta = json_is_object(old_meta) ? json_deep_copy(old_meta) : json_object();
    if (!copy || !meta) {
        json_decref(copy);
        json_decref(meta);
        return NULL;
    }
    json_object_set_new(meta, "attempts", json_integer(job->attempt));
    json_object_set_new(meta, "deaths", json_integer(job->deaths + (died ? 1 : 0)));
    json_object_set_new(meta, "enqueued_at", json_real(job->enqueued_at));
    if (due_at > 0) json_object_set_new(meta, "queued_at", json_real(due_at));
    if (job->id_assigned) json_object_set_new(meta, "id", json_string(job->id));
    json_object_set_new(meta, "errors", errors_with(job, error, jobq_now()));
    json_object_set_new(copy, JOBQ_META_FIELD, meta);
    char *s = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(copy);
    return s;
}
