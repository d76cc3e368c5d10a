/*
 * Job dependencies in Redis (see depends.h): results read with GET (one
 * key each, so any shard), parking and releasing with scripts over one
 * queue's keys.
 */
#include "protocol/depends.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/queue.h"
#include "protocol/redis_internal.h"

int jobq_depends_states(jobq_redis *r, const char *prefix, const char *const *ids, size_t n,
                        enum jobq_dep_state *states, char (*whys)[200], jobq_err *err) {
    jobq_cmd *cmds = calloc(n ? n : 1, sizeof *cmds);
    redisReply **replies = calloc(n ? n : 1, sizeof *replies);
    char (*keys)[JOBQ_KEY_MAX] = calloc(n ? n : 1, sizeof *keys);
    const char *(*argvs)[2] = calloc(n ? n : 1, sizeof *argvs);
    int rc = -1;
    if (!cmds || !replies || !keys || !argvs) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        jobq_key_result(keys[i], sizeof keys[i], prefix, ids[i]);
        argvs[i][0] = "GET";
        argvs[i][1] = keys[i];
        cmds[i] = (jobq_cmd){.route = keys[i], .argc = 2, .argv = argvs[i]};
    }
    if (jobq_redis_pipeline(r, err, "reading the results of dependencies", cmds, n, 0, replies) != 0) goto out;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = replies[i];
        if (rep->type == REDIS_REPLY_ERROR && rc == 0) rc = jobq_redis_reply_error(err, "GET result", rep);
        json_t *doc = jobq_reply_is_string(rep) ? json_loadb(rep->str, rep->len, 0, NULL) : NULL;
        const char *status = json_string_value(json_object_get(doc, "status"));
        const char *error = json_string_value(json_object_get(doc, "error"));
        states[i] = rep->type == REDIS_REPLY_NIL ? JOBQ_DEP_PENDING
                    : status && strcmp(status, "ok") == 0 ? JOBQ_DEP_OK
                                                          : JOBQ_DEP_FAILED;
        if (states[i] == JOBQ_DEP_FAILED)
            snprintf(whys[i], sizeof whys[i], "%s%s%.150s", status ? status : "no status in its result",
                     error ? ": " : "", error ? error : "");
        json_decref(doc);
        freeReplyObject(rep);
    }
out:
    free(cmds);
    free(replies);
    free(keys);
    free(argvs);
    return rc;
}

int jobq_depends_park(jobq_redis *r, const jobq_qkeys *k, const char *payload, size_t len, const char *id,
                      const char *const *pending, size_t n, jobq_err *err) {
    const char **keys = calloc(n + 2, sizeof *keys);
    char (*sets)[JOBQ_KEY_MAX] = calloc(n ? n : 1, sizeof *sets);
    long long v = -1;
    if (!keys || !sets) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    keys[0] = k->inflight;
    keys[1] = k->parked;
    for (size_t i = 0; i < n; i++) keys[2 + i] = jobq_key(sets[i], sizeof sets[i], k->prefix, JOBQ_KEY_WAITERS, k->name, pending[i]);
    const char *args[] = {payload, id};
    size_t lens[] = {len, strlen(id)};
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_PARK, (int)n + 2, keys, 2, args, lens);
    if (!reply) goto out;
    if (!jobq_reply_integer(reply, &v)) {
        jobq_err_set(err, JOBQ_E_REPLY, "park: unexpected reply");
        v = -1;
    }
    freeReplyObject(reply);
out:
    free(keys);
    free(sets);
    return (int)v;
}

int jobq_depends_release(jobq_redis *r, const jobq_qkeys *k, const char *id, jobq_err *err) {
    const char *keys[] = {k->parked, k->queue};
    const char *args[] = {id};
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_RELEASE, 2, keys, 1, args, NULL);
    if (!reply) return -1;
    long long v;
    bool ok = jobq_reply_integer(reply, &v);
    freeReplyObject(reply);
    if (!ok) {
        jobq_err_set(err, JOBQ_E_REPLY, "release: unexpected reply");
        return -1;
    }
    return (int)v;
}

int jobq_depends_scan(jobq_redis *r, const jobq_qkeys *k, unsigned long long *cursor, char ***ids,
                      char ***payloads, size_t **lens, size_t *n, jobq_err *err) {
    char at[32];
    snprintf(at, sizeof at, "%llu", *cursor);
    const char *argv[] = {"HSCAN", k->parked, at, "COUNT", "100"};
    *ids = *payloads = NULL;
    *lens = NULL;
    *n = 0;
    redisReply *reply = jobq_redis_call(r, err, "HSCAN parked", k->parked, 5, argv, NULL);
    if (!reply) return -1;
    int rc = -1;
    if (!jobq_reply_is_array(reply, 2) || !jobq_reply_is_string(reply->element[0]) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY || reply->element[1]->elements % 2) {
        jobq_err_set(err, JOBQ_E_REPLY, "HSCAN parked: unexpected reply");
        goto out;
    }
    const redisReply *pairs = reply->element[1];
    size_t count = pairs->elements / 2;
    *ids = calloc(count ? count : 1, sizeof **ids);
    *payloads = calloc(count ? count : 1, sizeof **payloads);
    *lens = calloc(count ? count : 1, sizeof **lens);
    if (!*ids || !*payloads || !*lens) goto nomem;
    for (size_t i = 0; i < count; i++) {
        const redisReply *f = pairs->element[2 * i], *v = pairs->element[2 * i + 1];
        if (!jobq_reply_is_string(f) || !jobq_reply_is_string(v)) continue;
        char *id = jobq_reply_copy(f), *payload = jobq_reply_copy(v);
        if (!id || !payload) {
            free(id);
            free(payload);
            goto nomem;
        }
        (*ids)[*n] = id;
        (*payloads)[*n] = payload;
        (*lens)[*n] = v->len;
        (*n)++;
    }
    *cursor = strtoull(reply->element[0]->str, NULL, 10);
    rc = 0;
    goto out;
nomem:
    jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        free((*ids)[i]);
        free((*payloads)[i]);
    }
    free(*ids);
    free(*payloads);
    free(*lens);
    *ids = *payloads = NULL;
    *lens = NULL;
    *n = 0;
out:
    freeReplyObject(reply);
    return rc;
}
