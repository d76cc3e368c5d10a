/* Operations on single jobs (see jobs.h). */
#include "protocol/jobs.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "core/json_writer.h"
#include "protocol/keys.h"
#include "protocol/outcome.h"
#include "protocol/queue.h"
#include "protocol/redis_internal.h"

static int unexpected(jobq_err *err, const char *what) {
    jobq_err_set(err, JOBQ_E_REPLY, "%s: unexpected reply", what);
    return -1;
}

int jobq_jobs_enqueue(jobq_redis *r, const char *prefix, const char *queue, const char *payload,
                      double due, bool unique, char *id_out, size_t id_size, bool *duplicate,
                      jobq_err *err) {
    jobq_qkeys k;
    jobq_qkeys_init(&k, r, prefix, queue, NULL);
    char ids[JOBQ_QKEY_MAX], when[40] = "";
    jobq_key(ids, sizeof ids, prefix, JOBQ_KEY_IDS, queue, NULL);
    if (due > 0) snprintf(when, sizeof when, "%.6f", due);
    const char *keys[] = {k.queue, k.scheduled, k.unique, ids};
    const char *args[] = {payload, when, unique ? "1" : "0", k.events, k.publish};
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_ENQUEUE, 4, keys, 5, args, NULL);
    if (!reply) return -1;
    long long dup = 0;
    int rc = 0;
    if (!jobq_reply_is_array(reply, 2) || !jobq_reply_is_string(reply->element[0]) ||
        !jobq_reply_integer(reply->element[1], &dup))
        rc = unexpected(err, "enqueue");
    else
        snprintf(id_out, id_size, "%.*s", (int)reply->element[0]->len, reply->element[0]->str);
    if (duplicate) *duplicate = dup != 0;
    freeReplyObject(reply);
    /* [redis] wait_replicas: durable before it counts as queued. */
    const char *route = k.queue;
    if (rc == 0 && !(duplicate && *duplicate)) rc = jobq_redis_wait(r, &route, 1, err);
    return rc;
}

/* Run a command whose reply is one string or nil (argv[1] its key): 1 with
 * *text (malloc'd, *len bytes, NUL-terminated; the caller frees), 0 for
 * nil, -1 with err. */
static int read_string(jobq_redis *r, const char *what, int argc, const char **argv, char **text, size_t *len,
                       jobq_err *err) {
    *text = NULL;
    *len = 0;
    redisReply *reply = jobq_redis_call(r, err, what, argv[1], argc, argv, NULL);
    if (!reply) return -1;
    int rc = 0;
    if (reply->type == REDIS_REPLY_STRING) {
        *len = reply->len;
        rc = (*text = jobq_reply_copy(reply)) ? 1 : -1;
        if (!*text) jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    } else if (reply->type != REDIS_REPLY_NIL) {
        rc = unexpected(err, what);
    }
    freeReplyObject(reply);
    return rc;
}

int jobq_jobs_result(jobq_redis *r, const char *prefix, const char *id, char **json, jobq_err *err) {
    char key[JOBQ_KEY_MAX];
    jobq_key_result(key, sizeof key, prefix, id);
    const char *argv[] = {"GET", key};
    size_t len;
    int rc = read_string(r, "GET result", 2, argv, json, &len, err);
    return rc < 0 ? -1 : !rc;
}

/* SET the result document of an outcome. */
static int write_result(jobq_redis *r, const char *prefix, const jobq_outcome *o, jobq_err *err) {
    char key[JOBQ_KEY_MAX], ttl[24];
    jobq_key_result(key, sizeof key, prefix, o->id);
    snprintf(ttl, sizeof ttl, "%d", o->result_ttl > 0 ? o->result_ttl : 86400);
    const char *argv[] = {"SET", key, o->result_json, "EX", ttl};
    redisReply *reply = jobq_redis_call(r, err, "SET result", key, 5, argv, NULL);
    if (!reply) return -1;
    freeReplyObject(reply);
    return 0;
}

int jobq_jobs_cancel_waiting(jobq_redis *r, const char *prefix, const char *queue, enum jobq_waiting_in where,
                             const char *payload, size_t len, jobq_err *err) {
    /* The documents come from the job as the daemon would write them. */
    jobq_job_defaults defaults = {JOBQ_JOB_TIMEOUT_MAX, 1, 86400, 0};
    jobq_outcome_policy policy = {1, 1, 1};
    struct jobq_job job;
    double now = jobq_now();
    jobq_err ignored;
    jobq_job_parse(&job, payload, len, queue, &defaults, 0, &ignored);
    if (job.attempt > 0) job.attempt--; /* the attempts made: it never ran this one */
    jobq_outcome out;
    if (jobq_outcome_build(&out, &job, JOBQ_CAUSE_CANCELLED, NULL, &policy, "", now) != 0) {
        jobq_job_fini(&job);
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    jobq_qkeys k;
    jobq_qkeys_init(&k, r, prefix, queue, NULL);
    const struct {
        const char *key, *kind; /* the key it waits in, and the cancel script's name for its type */
    } in[] = {[JOBQ_WAITING_QUEUE] = {k.queue, "l"}, [JOBQ_WAITING_SCHEDULED] = {k.scheduled, "z"},
              [JOBQ_WAITING_PARKED] = {k.parked, "h"}};
    const char *keys[] = {in[where].key, k.unique};
    const char *args[] = {payload, in[where].kind, job.id, out.event_json, k.events, k.publish};
    size_t lens[] = {len, 1, strlen(job.id), strlen(out.event_json), strlen(k.events), strlen(k.publish)};
    int rc = -1;
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_CANCEL, 2, keys, 6, args, lens);
    long long removed = 0;
    if (reply && !jobq_reply_integer(reply, &removed)) unexpected(err, "cancel");
    else if (reply) rc = removed == 1 ? 1 : 0;
    if (reply) freeReplyObject(reply);
    /* Written after the removal: a job that was taken meanwhile must not
     * read "cancelled". */
    if (rc == 1 && out.id && write_result(r, prefix, &out, err) != 0) rc = -1;
    jobq_outcome_fini(&out);
    jobq_job_fini(&job);
    return rc;
}

int jobq_jobs_parked(jobq_redis *r, const char *prefix, const char *queue, const char *id, char **payload,
                     size_t *len, jobq_err *err) {
    char key[JOBQ_QKEY_MAX];
    jobq_key(key, sizeof key, prefix, JOBQ_KEY_PARKED, queue, NULL);
    const char *argv[] = {"HGET", key, id};
    return read_string(r, "HGET parked", 3, argv, payload, len, err);
}

int jobq_jobs_request_cancel(jobq_redis *r, const char *prefix, const char *queue, const char *id,
                             jobq_err *err) {
    char key[JOBQ_QKEY_MAX], score[40];
    jobq_key(key, sizeof key, prefix, JOBQ_KEY_CANCEL, queue, NULL);
    snprintf(score, sizeof score, "%.6f", jobq_now());
    const char *argv[] = {"ZADD", key, score, id};
    redisReply *reply = jobq_redis_call(r, err, "ZADD cancel", key, 4, argv, NULL);
    if (!reply) return -1;
    freeReplyObject(reply);
    return 0;
}

/* The payload to queue again for a dead entry: its own, without the attempt
 * bookkeeping, keeping the assigned id. NULL with why when it cannot be. */
static char *fresh_payload(json_t *entry, const char **id, const char **handler, char *why, size_t why_size) {
    json_t *text = json_object_get(entry, "payload");
    *id = json_string_value(json_object_get(entry, "id"));
    if (json_is_true(json_object_get(entry, "payload_truncated"))) {
        snprintf(why, why_size, "its payload was cut when it was dead-lettered (%lld bytes)",
                 (long long)json_integer_value(json_object_get(entry, "payload_bytes")));
        return NULL;
    }
    json_t *payload = json_is_string(text) ? json_loadb(json_string_value(text), json_string_length(text),
                                                        JSON_ALLOW_NUL, NULL)
                                           : NULL;
    if (!json_is_object(payload) || !*id) {
        snprintf(why, why_size, "its payload is not a JSON object");
        json_decref(payload);
        return NULL;
    }
    *handler = json_string_value(json_object_get(entry, "handler"));
    json_t *meta = json_object_get(payload, JOBQ_META_FIELD);
    if (json_is_object(meta)) {
        json_object_del(meta, "attempts");
        json_object_del(meta, "deaths");
        json_object_del(meta, "errors");
    }
    /* Its wait (jobq_job_wait_seconds) counts from now, not from when it
     * was first enqueued. */
    if (!json_is_object(meta)) json_object_set_new(payload, JOBQ_META_FIELD, meta = json_object());
    json_object_set_new(meta, "queued_at", json_real(jobq_now()));
    const char *own_id = json_string_value(json_object_get(payload, "id"));
    bool ok = true;
    if (!own_id || !*own_id) {
        /* The assigned id must travel, or the job comes back as another. */
        if (!json_is_object(meta))
            ok = json_object_set_new(payload, JOBQ_META_FIELD, meta = json_object()) == 0;
        ok = ok && json_object_set_new(meta, "id", json_string(*id)) == 0;
    }
    if (json_is_object(meta) && json_object_size(meta) == 0) json_object_del(payload, JOBQ_META_FIELD);
    char *s = ok ? jobq_json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(payload);
    if (!s) snprintf(why, why_size, "out of memory");
    return s;
}

int jobq_jobs_dead_retry(jobq_redis *r, const char *prefix, const char *queue, const char *entry,
                         size_t entry_len, char *why, size_t why_size, jobq_err *err) {
    json_t *doc = json_loadb(entry, entry_len, 0, NULL);
    const char *id = NULL, *handler = NULL;
    char *payload = json_is_object(doc) ? fresh_payload(doc, &id, &handler, why, why_size) : NULL;
    if (!json_is_object(doc)) snprintf(why, why_size, "the entry is not a JSON object");
    int rc = -2;
    if (!payload) goto out;
    /* The old result goes first: once the job is queued it may finish at
     * any moment, and its new result must stay. */
    char result_key[JOBQ_KEY_MAX];
    jobq_key_result(result_key, sizeof result_key, prefix, id);
    const char *del[] = {"DEL", result_key};
    redisReply *reply = jobq_redis_call(r, err, "DEL result", result_key, 2, del, NULL);
    rc = -1;
    if (!reply) goto out;
    freeReplyObject(reply);
    jobq_qkeys k;
    jobq_qkeys_init(&k, r, prefix, queue, NULL);
    const char *keys[] = {k.dead, k.queue};
    const char *args[] = {entry, payload, id, queue, handler ? handler : "", k.events, k.publish};
    size_t lens[] = {entry_len, strlen(payload), strlen(id), strlen(queue), strlen(args[4]), strlen(k.events),
                     strlen(k.publish)};
    reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_DEAD_RETRY, 2, keys, 7, args, lens);
    long long done = 0;
    if (reply && jobq_reply_integer(reply, &done)) rc = done == 1 ? 1 : 0;
    else if (reply) unexpected(err, "dead retry");
    if (reply) freeReplyObject(reply);
out:
    free(payload);
    json_decref(doc);
    return rc;
}

long jobq_jobs_dead_purge(jobq_redis *r, const char *prefix, const char *queue, jobq_err *err) {
    char key[JOBQ_QKEY_MAX];
    jobq_key(key, sizeof key, prefix, JOBQ_KEY_DEAD, queue, NULL);
    const char *keys[] = {key};
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_DEAD_PURGE, 1, keys, 0, NULL, NULL);
    if (!reply) return -1;
    long long n = 0;
    bool ok = jobq_reply_integer(reply, &n);
    freeReplyObject(reply);
    return ok ? (long)n : unexpected(err, "dead purge");
}
