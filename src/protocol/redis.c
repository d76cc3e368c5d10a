/*
 * A plain blocking hiredis connection (see redis.h and redis_internal.h).
 * A context whose err is set is unusable: it is freed at once and the owner
 * reconnects with backoff. Server error replies leave the connection usable.
 */
#include "protocol/redis_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/redis_url.h"

struct jobq_redis {
    redisContext *ctx;      /* NULL when disconnected */
    jobq_redis_url url;     /* owned */
    char url_redacted[512];
    double io_timeout;      /* seconds */
    int unread;             /* replies to publish_nowait not read yet */
    char sha[JOBQ_SCRIPT_COUNT][41]; /* scripts loaded on this connection */
};

static struct timeval to_timeval(double s) {
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

jobq_redis *jobq_redis_new(const char *url, double io_timeout, jobq_err *err) {
    jobq_redis *r = calloc(1, sizeof *r);
    if (!r) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return NULL;
    }
    if (jobq_redis_url_parse(url, &r->url, err) != 0) {
        free(r);
        return NULL;
    }
    jobq_redis_url_format_redacted(&r->url, r->url_redacted, sizeof r->url_redacted);
    r->io_timeout = io_timeout > 0 ? io_timeout : 5;
    return r;
}

void jobq_redis_set_password(jobq_redis *r, const char *password) {
    if (!password) return;
    char *copy = strdup(password);
    if (!copy) return;
    if (r->url.password) {
        explicit_bzero(r->url.password, strlen(r->url.password));
        free(r->url.password);
    }
    r->url.password = copy;
}

void jobq_redis_free(jobq_redis *r) {
    if (!r) return;
    jobq_redis_disconnect(r);
    jobq_redis_url_fini(&r->url);
    free(r);
}

void jobq_redis_disconnect(jobq_redis *r) {
    if (r->ctx) redisFree(r->ctx);
    r->ctx = NULL;
    r->unread = 0;
    memset(r->sha, 0, sizeof r->sha);
}

bool jobq_redis_connected(const jobq_redis *r) { return r->ctx != NULL; }

const char *jobq_redis_url_redacted(const jobq_redis *r) { return r->url_redacted; }

/* After a failed call: record why and drop a broken connection. */
static int fail_io(jobq_redis *r, jobq_err *err, const char *what) {
    jobq_err_set(err, JOBQ_E_IO, "%s: %s", what,
                 r->ctx && r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
    jobq_redis_disconnect(r);
    return -1;
}

int jobq_redis_error_code(const char *message) {
    static const struct {
        const char *prefix;
        int code;
    } classes[] = {{"OOM ", JOBQ_E_OOM}, {"NOPERM ", JOBQ_E_NOPERM}, {"READONLY ", JOBQ_E_READONLY}};
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (message && strncmp(message, classes[i].prefix, strlen(classes[i].prefix)) == 0)
            return classes[i].code;
    /* An error raised inside a script keeps the class of the command that
     * failed: "ERR Error running script ...: @user_script:...: OOM ...". */
    if (message && strstr(message, ": OOM command not allowed")) return JOBQ_E_OOM;
    if (message && strstr(message, "NOPERM")) return JOBQ_E_NOPERM;
    return JOBQ_E_REPLY;
}

int jobq_redis_reply_error(jobq_err *err, const char *what, const redisReply *reply) {
    jobq_err_set(err, jobq_redis_error_code(reply->str), "%s: %s", what, reply->str);
    return -1;
}

/* Read (and drop) the replies to fire-and-forget publishes, which come
 * before any other. -1 when the connection failed. */
static int read_unread(jobq_redis *r) {
    for (; r->unread > 0; r->unread--) {
        void *reply = NULL;
        if (!r->ctx || redisGetReply(r->ctx, &reply) != REDIS_OK) return -1;
        freeReplyObject(reply);
    }
    return 0;
}

redisReply *jobq_redis_call(jobq_redis *r, jobq_err *err, const char *what, int argc, const char **argv,
                            const size_t *lens) {
    /* Appended first, so that publishes still waiting to be sent leave in
     * the same write; their replies are read before this one. */
    if (jobq_redis_append(r, err, argc, argv, lens) != 0) return NULL;
    redisReply *reply = jobq_redis_next_reply(r, err, what);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        jobq_redis_reply_error(err, what, reply);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

int jobq_redis_append(jobq_redis *r, jobq_err *err, int argc, const char **argv, const size_t *lens) {
    if (!r->ctx) return fail_io(r, err, argv[0]);
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) return fail_io(r, err, argv[0]);
    return 0;
}

redisReply *jobq_redis_next_reply(jobq_redis *r, jobq_err *err, const char *what) {
    void *reply = NULL;
    if (!r->ctx || read_unread(r) != 0 || redisGetReply(r->ctx, &reply) != REDIS_OK) {
        fail_io(r, err, what);
        return NULL;
    }
    return reply;
}

void jobq_redis_extend_timeout(jobq_redis *r, double block) {
    if (r->ctx) redisSetTimeout(r->ctx, to_timeval(block + r->io_timeout));
}

static int auth_and_select(jobq_redis *r, jobq_err *err) {
    if (r->url.password) {
        const char *argv[3] = {"AUTH", r->url.user ? r->url.user : r->url.password, r->url.password};
        redisReply *reply = jobq_redis_call(r, err, "AUTH", r->url.user ? 3 : 2, argv, NULL);
        if (!reply) return -1;
        freeReplyObject(reply);
    }
    if (r->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->url.db);
        const char *argv[] = {"SELECT", db};
        redisReply *reply = jobq_redis_call(r, err, "SELECT", 2, argv, NULL);
        if (!reply) return -1;
        freeReplyObject(reply);
    }
    return 0;
}

int jobq_redis_connect(jobq_redis *r, jobq_err *err) {
    jobq_redis_disconnect(r);
    struct timeval tv = to_timeval(r->io_timeout);
    redisContext *c = r->url.socket_path ? redisConnectUnixWithTimeout(r->url.socket_path, tv)
                                         : redisConnectWithTimeout(r->url.host, r->url.port, tv);
    if (!c) {
        jobq_err_set(err, JOBQ_E_NOMEM, "cannot allocate a Redis context");
        return -1;
    }
    if (c->err) {
        jobq_err_set(err, JOBQ_E_IO, "cannot connect to %s: %s", r->url_redacted, c->errstr);
        redisFree(c);
        return -1;
    }
    r->ctx = c;
    if (redisSetTimeout(c, tv) != REDIS_OK) return fail_io(r, err, "setting the socket timeout");
    if (!r->url.socket_path) redisEnableKeepAlive(c);
    if (auth_and_select(r, err) != 0) {
        /* A refused login or database cannot be used either. */
        err->code = JOBQ_E_IO;
        jobq_redis_disconnect(r);
        return -1;
    }
    return 0;
}

/* ---- scripts ---- */

int jobq_redis_script_load(jobq_redis *r, enum jobq_script s, jobq_err *err) {
    if (r->ctx && r->sha[s][0]) return 0;
    char what[64];
    snprintf(what, sizeof what, "SCRIPT LOAD %s", jobq_script_name(s));
    const char *argv[] = {"SCRIPT", "LOAD", jobq_script_source(s)};
    redisReply *reply = jobq_redis_call(r, err, what, 3, argv, NULL);
    if (!reply) return -1;
    int rc = 0;
    if (reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(r->sha[s], reply->str, 41);
    } else {
        jobq_err_set(err, JOBQ_E_REPLY, "%s: unexpected reply", what);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

bool jobq_reply_is_noscript(const redisReply *reply) {
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

/* argv/lens of EVALSHA s (heap, freed by the caller). */
static int eval_argv(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys, const char *const *keys,
                     int nargs, const char *const *args, const size_t *arglens, const char ***argv_out,
                     size_t **lens_out, char *nkeys_buf, size_t nkeys_size) {
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    snprintf(nkeys_buf, nkeys_size, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = r->sha[s];
    argv[2] = nkeys_buf;
    for (int i = 0; i < nkeys; i++) argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++) argv[3 + nkeys + i] = args[i];
    for (int i = 0; i < argc; i++)
        lens[i] = i >= 3 + nkeys && arglens ? arglens[i - 3 - nkeys] : strlen(argv[i]);
    *argv_out = argv;
    *lens_out = lens;
    return argc;
}

int jobq_redis_append_eval(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys,
                           const char *const *keys, int nargs, const char *const *args,
                           const size_t *arglens) {
    const char **argv;
    size_t *lens;
    char nk[16];
    int argc = eval_argv(r, err, s, nkeys, keys, nargs, args, arglens, &argv, &lens, nk, sizeof nk);
    if (argc < 0) {
        /* Out of memory, as when hiredis cannot queue a command: commands
         * queued before this one (a pipeline) would answer the next call,
         * so the connection goes. */
        jobq_redis_disconnect(r);
        if (err) err->code = JOBQ_E_IO;
        return -1;
    }
    int rc = jobq_redis_append(r, err, argc, argv, lens);
    free(argv);
    free(lens);
    return rc;
}

redisReply *jobq_redis_eval(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys,
                            const char *const *keys, int nargs, const char *const *args,
                            const size_t *arglens) {
    const char *what = jobq_script_name(s);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (jobq_redis_script_load(r, s, err) != 0) return NULL;
        if (jobq_redis_append_eval(r, err, s, nkeys, keys, nargs, args, arglens) != 0) return NULL;
        redisReply *reply = jobq_redis_next_reply(r, err, what);
        if (!reply) return NULL;
        if (jobq_reply_is_noscript(reply) && attempt == 0) {
            freeReplyObject(reply);
            r->sha[s][0] = '\0'; /* the server lost it: load it again */
            continue;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            jobq_redis_reply_error(err, what, reply);
            freeReplyObject(reply);
            return NULL;
        }
        return reply;
    }
    jobq_err_set(err, JOBQ_E_REPLY, "%s: the server keeps losing the script", what);
    return NULL;
}

/* ---- replies ---- */

bool jobq_reply_integer(const redisReply *r, long long *out) {
    if (!r) return false;
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return true;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20) return false;
    char buf[24], *end;
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

json_t *jobq_reply_to_json(const redisReply *r) {
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: {
        json_t *v = json_stringn(r->str, r->len);
        return v ? v : json_stringn_nocheck(r->str, r->len);
    }
    case REDIS_REPLY_INTEGER: return json_integer(r->integer);
    case REDIS_REPLY_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < r->elements; i++) json_array_append_new(a, jobq_reply_to_json(r->element[i]));
        return a;
    }
    default: return json_null();
    }
}

int jobq_redis_command_json(jobq_redis *r, json_t **out, jobq_err *err, int argc, const char **argv,
                            const size_t *lens) {
    *out = NULL;
    redisReply *reply = jobq_redis_call(r, err, argv[0], argc, argv, lens);
    if (!reply) return -1;
    *out = jobq_reply_to_json(reply);
    freeReplyObject(reply);
    if (!*out) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    return 0;
}

int jobq_redis_publish_nowait(jobq_redis *r, const char *channel, const char *message, bool send_now,
                              jobq_err *err) {
    const char *argv[] = {"PUBLISH", channel, message};
    if (jobq_redis_append(r, err, 3, argv, NULL) != 0) return -1;
    r->unread++;
    int done = 0;
    while (send_now && !done)
        if (redisBufferWrite(r->ctx, &done) != REDIS_OK) return fail_io(r, err, "PUBLISH");
    return 0;
}

int jobq_redis_subscribe(jobq_redis *r, const char *channel, jobq_err *err) {
    const char *argv[] = {"SUBSCRIBE", channel};
    if (jobq_redis_append(r, err, 2, argv, NULL) != 0) return -1;
    redisReply *reply = jobq_redis_next_reply(r, err, "SUBSCRIBE");
    if (!reply) return -1;
    int rc = 0;
    if (reply->type == REDIS_REPLY_ERROR) rc = jobq_redis_reply_error(err, "SUBSCRIBE", reply);
    else if (!jobq_reply_is_array(reply, 1)) rc = -1, jobq_err_set(err, JOBQ_E_REPLY, "SUBSCRIBE: unexpected reply");
    freeReplyObject(reply);
    return rc;
}

int jobq_redis_read_json(jobq_redis *r, double timeout, json_t **out, jobq_err *err) {
    *out = NULL;
    if (!r->ctx) return fail_io(r, err, "read");
    redisSetTimeout(r->ctx, to_timeval(timeout > 0.001 ? timeout : 0.001));
    void *reply = NULL;
    if (redisGetReply(r->ctx, &reply) != REDIS_OK) {
        bool timed_out = r->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        if (timed_out) {
            jobq_redis_disconnect(r);
            return 1;
        }
        return fail_io(r, err, "read");
    }
    redisSetTimeout(r->ctx, to_timeval(r->io_timeout));
    redisReply *rep = reply;
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR) rc = jobq_redis_reply_error(err, "read", rep);
    else *out = jobq_reply_to_json(rep);
    freeReplyObject(rep);
    return rc;
}
