/*
 * Batches in Redis (see batch.h). The callback is stored split in two
 * JSON fragments (its members but id and args; its args' members) that the
 * commit script joins around the counts, so its values reach the callback
 * exactly as given (no re-encoding inside Redis).
 */
#include "protocol/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "core/json_writer.h"
#include "protocol/keys.h"
#include "protocol/queue.h"
#include "protocol/redis_internal.h"

/* The members of object o as JSON text without its braces (the caller
 * frees), or NULL when memory ran out. */
static char *members(json_t *o) {
    char *text = jobq_json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) return NULL;
    size_t len = strlen(text);
    memmove(text, text + 1, len - 2);
    text[len - 2] = '\0';
    return text;
}

/* Split callback into its id, its members but id and args, and its args'
 * members. 0, or -1 with err. */
static int split_callback(const char *batch, const char *callback, char *id, size_t id_size, char **head,
                          char **args, char *handler, size_t handler_size, jobq_err *err) {
    json_error_t jerr;
    json_t *cb = json_loads(callback, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    *head = *args = NULL;
    if (!json_is_object(cb)) {
        jobq_err_set(err, JOBQ_E_INVALID, "the callback must be a JSON object%s%s", cb ? "" : ": ",
                     cb ? "" : jerr.text);
        goto out;
    }
    json_t *h = json_object_get(cb, "handler"), *cid = json_object_get(cb, "id"), *a = json_object_get(cb, "args");
    if (!json_is_string(h) || !jobq_job_valid_name(json_string_value(h), json_string_length(h), 1024)) {
        jobq_err_set(err, JOBQ_E_INVALID, "the callback needs a \"handler\" (a non-empty string)");
        goto out;
    }
    if (cid && !json_is_null(cid) && !(json_is_string(cid) && jobq_job_valid_name(json_string_value(cid), json_string_length(cid), JOBQ_JOB_ID_MAX))) {
        jobq_err_set(err, JOBQ_E_INVALID, "the callback's \"id\" must be a string of 1 to 128 bytes");
        goto out;
    }
    if (a && !json_is_null(a) && !json_is_object(a)) {
        jobq_err_set(err, JOBQ_E_INVALID, "the callback's \"args\" must be an object (jobq adds \"batch\" to it)");
        goto out;
    }
    if (json_object_get(a, "batch") || json_object_get(cb, "batch") || json_object_get(cb, JOBQ_META_FIELD) ||
        json_object_get(cb, "enqueued_at")) {
        jobq_err_set(err, JOBQ_E_INVALID, "the callback may not set \"batch\", \"args.batch\", \"enqueued_at\" "
                     "or \"" JOBQ_META_FIELD "\" (jobq sets them)");
        goto out;
    }
    snprintf(handler, handler_size, "%s", json_string_value(h));
    if (json_is_string(cid)) snprintf(id, id_size, "%s", json_string_value(cid));
    else snprintf(id, id_size, "%s.callback", batch);
    json_t *args_obj = json_is_object(a) ? json_incref(a) : json_object();
    json_object_del(cb, "id");
    json_object_del(cb, "args");
    *head = members(cb);
    *args = args_obj ? members(args_obj) : NULL;
    json_decref(args_obj);
    if (!*head || !*args) {
        free(*head);
        free(*args);
        *head = *args = NULL;
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    rc = 0;
out:
    json_decref(cb);
    return rc;
}

/* Job text with "batch": id added (new text, the caller frees), or NULL with err. */
static char *with_batch(const char *job, size_t i, const char *id, jobq_err *err) {
    json_error_t jerr;
    json_t *o = json_loads(job, JSON_REJECT_DUPLICATES, &jerr);
    char *text = NULL;
    json_t *b = json_object_get(o, "batch");
    if (!json_is_object(o))
        jobq_err_set(err, JOBQ_E_INVALID, "job %zu is not a JSON object%s%s", i + 1, o ? "" : ": ", o ? "" : jerr.text);
    else if (b && !(json_is_string(b) && strcmp(json_string_value(b), id) == 0))
        jobq_err_set(err, JOBQ_E_INVALID, "job %zu already names another batch", i + 1);
    else if (json_object_set_new(o, "batch", json_string(id)) != 0 ||
             !(text = jobq_json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    json_decref(o);
    return text;
}

int jobq_batch_create(jobq_redis *r, const char *prefix, const char *queue, const char *id, const char *callback,
                      const char *const *jobs, size_t n, int ttl, json_t **ids, jobq_err *err) {
    *ids = NULL;
    if (!jobq_job_valid_name(id, strlen(id), JOBQ_BATCH_ID_MAX)) {
        jobq_err_set(err, JOBQ_E_INVALID, "a batch id is 1 to %d bytes without control characters", JOBQ_BATCH_ID_MAX);
        return -1;
    }
    if (n == 0) {
        jobq_err_set(err, JOBQ_E_INVALID, "a batch needs at least one job");
        return -1;
    }
    char cb_id[JOBQ_JOB_ID_MAX + 1], handler[1025], ttls[24];
    char *head = NULL, *args = NULL;
    if (split_callback(id, callback, cb_id, sizeof cb_id, &head, &args, handler, sizeof handler, err) != 0) return -1;
    const char **argv = calloc(n + 8, sizeof *argv);
    int rc = -1;
    size_t made = 0;
    if (!argv) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    for (; made < n; made++)
        if (!(argv[8 + made] = with_batch(jobs[made], made, id, err))) goto out;
    jobq_qkeys k;
    jobq_qkeys_init(&k, r, prefix, queue, NULL);
    char idkey[JOBQ_QKEY_MAX], batchkey[JOBQ_KEY_MAX];
    jobq_key(idkey, sizeof idkey, prefix, JOBQ_KEY_IDS, queue, NULL);
    jobq_key(batchkey, sizeof batchkey, prefix, JOBQ_KEY_BATCH, queue, id);
    snprintf(ttls, sizeof ttls, "%d", ttl > 0 ? ttl : 86400);
    const char *keys[] = {k.queue, k.scheduled, k.unique, idkey, batchkey};
    argv[0] = k.events;
    argv[1] = k.publish;
    argv[2] = id;
    argv[3] = cb_id;
    argv[4] = handler;
    argv[5] = head;
    argv[6] = args;
    argv[7] = ttls;
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_BATCH, 5, keys, (int)(n + 8), argv, NULL);
    if (!reply) goto out;
    if (reply->type != REDIS_REPLY_ARRAY || !(*ids = jobq_reply_to_json(reply))) {
        jobq_err_set(err, JOBQ_E_REPLY, "batch: unexpected reply");
    } else {
        const char *route = k.queue;
        rc = jobq_redis_wait(r, &route, 1, err);
    }
    freeReplyObject(reply);
out:
    for (size_t i = 0; i < made; i++) free((char *)argv[8 + i]);
    free(argv);
    free(head);
    free(args);
    return rc;
}

int jobq_batch_status(jobq_redis *r, const char *prefix, const char *queue, const char *id, json_t **out,
                      jobq_err *err) {
    char key[JOBQ_KEY_MAX];
    jobq_key(key, sizeof key, prefix, JOBQ_KEY_BATCH, queue, id);
    const char *argv[] = {"HMGET", key, "id", "queue", "total", "ok", "failed", "cb_id", "created_at", "callback_at"};
    redisReply *reply = jobq_redis_call(r, err, "HMGET batch", key, 10, argv, NULL);
    if (!reply) return -1;
    *out = NULL;
    if (!jobq_reply_is_array(reply, 8)) {
        freeReplyObject(reply);
        jobq_err_set(err, JOBQ_E_REPLY, "HMGET batch: unexpected reply");
        return -1;
    }
    char *v[8];
    for (int i = 0; i < 8; i++) v[i] = jobq_reply_is_string(reply->element[i]) ? reply->element[i]->str : NULL;
    int rc = 1;
    if (v[0] && v[2]) {
        long long total = atoll(v[2]), ok = v[3] ? atoll(v[3]) : 0, failed = v[4] ? atoll(v[4]) : 0;
        *out = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s?, s:f, s:o}", "id", v[0], "queue", v[1] ? v[1] : queue,
                         "total", (json_int_t)total, "ok", (json_int_t)ok, "failed", (json_int_t)failed, "pending",
                         (json_int_t)(total - ok - failed), "callback", v[5], "created_at",
                         v[6] ? atof(v[6]) : 0.0, "callback_at", v[7] ? json_real(atof(v[7])) : json_null());
        rc = *out ? 0 : -1;
        if (!*out) jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    }
    freeReplyObject(reply);
    return rc;
}
