/* The daemon registry (see daemons.h): single-key commands, pipelined. */
#include "protocol/daemons.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/keys.h"
#include "protocol/redis_internal.h"

/* Send the commands argvs (n of them, routed by their key argv[1]) in one
 * pipeline; the first error reply wins. */
static int pipeline(jobq_redis *r, jobq_err *err, const char *what, int n, const int *argcs,
                    const char **const *argvs) {
    jobq_cmd cmds[4] = {{0}}; /* zeroed: gcc -O1 (SAN=1) cannot tell that n <= 4 entries are set */
    redisReply *replies[4];
    for (int i = 0; i < n; i++) cmds[i] = (jobq_cmd){.route = argvs[i][1], .argc = argcs[i], .argv = (const char **)argvs[i]};
    if (jobq_redis_pipeline(r, err, what, cmds, (size_t)n, 0, replies) != 0) return -1;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (replies[i]->type == REDIS_REPLY_ERROR && rc == 0) rc = jobq_redis_reply_error(err, what, replies[i]);
        freeReplyObject(replies[i]);
    }
    return rc;
}

int jobq_daemons_heartbeat(jobq_redis *r, const char *prefix, const char *daemon_id, const char *info_json,
                           double ttl, jobq_err *err) {
    char k_hb[JOBQ_KEY_MAX], k_daemons[JOBQ_KEY_MAX], ms[32];
    jobq_key_heartbeat(k_hb, sizeof k_hb, prefix, daemon_id);
    jobq_key_daemons(k_daemons, sizeof k_daemons, prefix);
    snprintf(ms, sizeof ms, "%lld", (long long)llround(ttl * 1000));
    const char *set[] = {"SET", k_hb, info_json, "PX", ms};
    const char *hset[] = {"HSET", k_daemons, daemon_id, info_json};
    const char **const argvs[] = {set, hset};
    const int argcs[] = {5, 4};
    return pipeline(r, err, "heartbeat", 2, argcs, argvs);
}

int jobq_daemons_forget(jobq_redis *r, const char *prefix, const char *daemon_id, jobq_err *err) {
    char k_hb[JOBQ_KEY_MAX], k_daemons[JOBQ_KEY_MAX];
    jobq_key_heartbeat(k_hb, sizeof k_hb, prefix, daemon_id);
    jobq_key_daemons(k_daemons, sizeof k_daemons, prefix);
    const char *del[] = {"DEL", k_hb};
    const char *hdel[] = {"HDEL", k_daemons, daemon_id};
    const char **const argvs[] = {del, hdel};
    const int argcs[] = {2, 3};
    return pipeline(r, err, "deregister", 2, argcs, argvs);
}

void jobq_daemons_free(jobq_daemon_entry *d, size_t n) {
    for (size_t i = 0; d && i < n; i++) {
        free(d[i].id);
        free(d[i].info);
    }
    free(d);
}

int jobq_daemons_list(jobq_redis *r, const char *prefix, jobq_daemon_entry **out, size_t *n, jobq_err *err) {
    *out = NULL;
    *n = 0;
    char k_daemons[JOBQ_KEY_MAX];
    jobq_key_daemons(k_daemons, sizeof k_daemons, prefix);
    const char *argv[] = {"HGETALL", k_daemons};
    redisReply *all = jobq_redis_call(r, err, "HGETALL daemons", k_daemons, 2, argv, NULL);
    if (!all) return -1;
    size_t count = all->type == REDIS_REPLY_ARRAY ? all->elements / 2 : 0;
    jobq_daemon_entry *d = calloc(count ? count : 1, sizeof *d);
    int rc = d ? 0 : -1;
    if (!d) jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        d[i].id = jobq_reply_copy(all->element[2 * i]);
        d[i].info = jobq_reply_copy(all->element[2 * i + 1]);
        if (!d[i].id || !d[i].info) {
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            rc = -1;
        }
    }
    freeReplyObject(all);
    /* Which are alive: one EXISTS each, in one round trip. */
    jobq_cmd *cmds = rc == 0 ? calloc(count ? count : 1, sizeof *cmds) : NULL;
    redisReply **replies = cmds ? calloc(count ? count : 1, sizeof *replies) : NULL;
    char (*keys)[JOBQ_KEY_MAX] = replies ? calloc(count ? count : 1, sizeof *keys) : NULL;
    const char *(*argvs)[2] = keys ? calloc(count ? count : 1, sizeof *argvs) : NULL;
    if (rc == 0 && !argvs) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < count; i++) {
        jobq_key_heartbeat(keys[i], sizeof keys[i], prefix, d[i].id);
        argvs[i][0] = "EXISTS";
        argvs[i][1] = keys[i];
        cmds[i] = (jobq_cmd){.route = keys[i], .argc = 2, .argv = argvs[i]};
    }
    if (rc == 0 && jobq_redis_pipeline(r, err, "EXISTS heartbeat", cmds, count, 0, replies) != 0) rc = -1;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        long long v = 0;
        d[i].alive = jobq_reply_integer(replies[i], &v) && v > 0;
        freeReplyObject(replies[i]);
    }
    free(cmds);
    free(replies);
    free(keys);
    free(argvs);
    if (rc != 0) {
        jobq_daemons_free(d, count);
        return -1;
    }
    *out = d;
    *n = count;
    return 0;
}
