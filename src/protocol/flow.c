/* Pause flags and stored progress (see flow.h). */
#include "protocol/flow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/keys.h"
#include "protocol/redis_internal.h"

/* One command on key; its integer reply (nil counts 0) in *out. */
static int integer_call(jobq_redis *r, const char *what, const char *key, int argc, const char **argv,
                        long long *out, jobq_err *err) {
    redisReply *reply = jobq_redis_call(r, err, what, key, argc, argv, NULL);
    if (!reply) return -1;
    *out = 0;
    int rc = 0;
    if (reply->type == REDIS_REPLY_STATUS) *out = 1; /* SET ... NX: OK */
    else if (reply->type != REDIS_REPLY_NIL && !jobq_reply_integer(reply, out)) {
        jobq_err_set(err, JOBQ_E_REPLY, "%s: unexpected reply", what);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

int jobq_flow_pause(jobq_redis *r, const char *prefix, const char *queue, const char *info_json, jobq_err *err) {
    char key[JOBQ_KEY_MAX];
    jobq_key(key, sizeof key, prefix, JOBQ_KEY_PAUSED, queue, NULL);
    const char *argv[] = {"SET", key, info_json, "NX"};
    long long set;
    return integer_call(r, "SET paused", key, 4, argv, &set, err) == 0 ? (int)set : -1;
}

int jobq_flow_resume(jobq_redis *r, const char *prefix, const char *queue, jobq_err *err) {
    char key[JOBQ_KEY_MAX];
    jobq_key(key, sizeof key, prefix, JOBQ_KEY_PAUSED, queue, NULL);
    const char *argv[] = {"DEL", key};
    long long n;
    return integer_call(r, "DEL paused", key, 2, argv, &n, err) == 0 ? n > 0 : -1;
}

/* GET key into *json: 0, 1 when missing, -1. */
static int get_string(jobq_redis *r, const char *what, const char *key, char **json, jobq_err *err) {
    *json = NULL;
    const char *argv[] = {"GET", key};
    redisReply *reply = jobq_redis_call(r, err, what, key, 2, argv, NULL);
    if (!reply) return -1;
    int rc = 1;
    if (reply->type == REDIS_REPLY_STRING) {
        rc = (*json = strndup(reply->str, reply->len)) ? 0 : -1;
        if (rc) jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    } else if (reply->type != REDIS_REPLY_NIL) {
        jobq_err_set(err, JOBQ_E_REPLY, "%s: %s", what,
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

int jobq_flow_paused(jobq_redis *r, const char *prefix, const char *queue, bool *paused, char **info,
                     jobq_err *err) {
    char key[JOBQ_KEY_MAX], *value = NULL;
    jobq_key(key, sizeof key, prefix, JOBQ_KEY_PAUSED, queue, NULL);
    int rc = get_string(r, "GET paused", key, &value, err);
    if (rc < 0) {
        /* A flag of another type (someone set it by hand) still pauses. */
        if (!err || err->code != JOBQ_E_REPLY || !strstr(err->msg, "WRONGTYPE")) return -1;
        rc = 0;
    }
    *paused = rc == 0;
    if (info) *info = value;
    else free(value);
    return 0;
}

int jobq_flow_store_progress(jobq_redis *r, const char *prefix, const char *id, const char *event_json, double ttl,
                             jobq_err *err) {
    char key[JOBQ_KEY_MAX], secs[24];
    jobq_key_progress(key, sizeof key, prefix, id);
    snprintf(secs, sizeof secs, "%lld", (long long)ceil(ttl > 1 ? ttl : 1));
    const char *argv[] = {"SET", key, event_json, "EX", secs};
    return jobq_redis_command_nowait(r, 5, argv, true, err);
}

int jobq_flow_progress(jobq_redis *r, const char *prefix, const char *id, char **json, jobq_err *err) {
    char key[JOBQ_KEY_MAX];
    jobq_key_progress(key, sizeof key, prefix, id);
    return get_string(r, "GET progress", key, json, err);
}
