/*
 * jobq's Redis protocol over one blocking hiredis connection. A context whose
 * err is set is unusable: it is freed, and the owner reconnects with backoff.
 * Server error replies (JOBQ_E_REPLY) leave the connection usable.
 */
#include "queue.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "redis_url.h"

struct jobq_queue {
    redisContext *ctx;       /* NULL when disconnected */
    jobq_redis_url url;      /* owned */
    char url_redacted[512];
    char *prefix;            /* owned */
    double io_timeout;       /* seconds */
    char sha[JOBQ_SCRIPT_COUNT][41];
    int unread;              /* replies to jobq_queue_publish_nowait not read yet */
    char events_key[256];    /* <prefix>:events, published to once or more per job */
};

static struct timeval to_timeval(double s) {
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

jobq_queue *jobq_queue_new(const char *url, const char *prefix, double io_timeout, jobq_err *err) {
    jobq_queue *q = calloc(1, sizeof *q);
    if (!q) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return NULL;
    }
    if (jobq_redis_url_parse(url, &q->url, err) != 0) {
        free(q);
        return NULL;
    }
    jobq_redis_url_format_redacted(&q->url, q->url_redacted, sizeof q->url_redacted);
    q->prefix = strdup(prefix);
    q->io_timeout = io_timeout > 0 ? io_timeout : 5;
    if (!q->prefix) {
        jobq_queue_free(q);
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return NULL;
    }
    jobq_queue_key(q, q->events_key, sizeof q->events_key, "events");
    return q;
}

void jobq_queue_set_password(jobq_queue *q, const char *password) {
    if (!password) return;
    char *copy = strdup(password);
    if (!copy) return;
    if (q->url.password) {
        explicit_bzero(q->url.password, strlen(q->url.password));
        free(q->url.password);
    }
    q->url.password = copy;
}

void jobq_queue_free(jobq_queue *q) {
    if (!q) return;
    jobq_queue_disconnect(q);
    jobq_redis_url_fini(&q->url);
    free(q->prefix);
    free(q);
}

void jobq_queue_disconnect(jobq_queue *q) {
    if (q->ctx) redisFree(q->ctx);
    q->ctx = NULL;
    q->unread = 0;
}

bool jobq_queue_connected(const jobq_queue *q) { return q->ctx != NULL; }

const char *jobq_queue_url_redacted(const jobq_queue *q) { return q->url_redacted; }

char *jobq_key_vformat(char *buf, size_t size, const char *prefix, const char *fmt, va_list ap) {
    int n = snprintf(buf, size, "%s:", prefix);
    if (n >= 0 && (size_t)n < size) vsnprintf(buf + n, size - (size_t)n, fmt, ap);
    return buf;
}

char *jobq_queue_key(const jobq_queue *q, char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    jobq_key_vformat(buf, size, q->prefix, fmt, ap);
    va_end(ap);
    return buf;
}

/* After a failed call: record why and drop a broken connection. */
static int fail_io(jobq_queue *q, jobq_err *err, const char *what) {
    jobq_err_set(err, JOBQ_E_IO, "%s: %s", what,
                 q->ctx && q->ctx->errstr[0] ? q->ctx->errstr : "connection lost");
    jobq_queue_disconnect(q);
    return -1;
}

/* Check a reply: NULL is an I/O failure (disconnects), an error reply is
 * JOBQ_E_REPLY. Returns 0 if usable. Frees the reply on failure. */
static int check_reply(jobq_queue *q, redisReply *r, jobq_err *err, const char *what) {
    if (!r) return fail_io(q, err, what);
    if (r->type == REDIS_REPLY_ERROR) {
        jobq_err_set(err, JOBQ_E_REPLY, "%s: %s", what, r->str);
        freeReplyObject(r);
        return -1;
    }
    return 0;
}

/* Read (and drop) the replies to fire-and-forget publishes, which come
 * before any other. -1 when the connection failed. */
static int read_unread(jobq_queue *q) {
    for (; q->unread > 0; q->unread--) {
        void *reply = NULL;
        if (!q->ctx || redisGetReply(q->ctx, &reply) != REDIS_OK) return -1;
        freeReplyObject(reply);
    }
    return 0;
}

static redisReply *command_argv(jobq_queue *q, int argc, const char **argv, const size_t *lens) {
    if (!q->ctx || read_unread(q) != 0) return NULL;
    return redisCommandArgv(q->ctx, argc, argv, lens);
}

static int simple_command(jobq_queue *q, jobq_err *err, const char *what, int argc,
                          const char **argv) {
    redisReply *r = command_argv(q, argc, argv, NULL);
    if (check_reply(q, r, err, what) != 0) return -1;
    freeReplyObject(r);
    return 0;
}

static int load_scripts(jobq_queue *q, jobq_err *err) {
    for (int s = 0; s < JOBQ_SCRIPT_COUNT; s++) {
        const char *argv[] = {"SCRIPT", "LOAD", jobq_script_source(s)};
        redisReply *r = command_argv(q, 3, argv, NULL);
        if (check_reply(q, r, err, "SCRIPT LOAD") != 0) return -1;
        if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            freeReplyObject(r);
            jobq_err_set(err, JOBQ_E_REPLY, "SCRIPT LOAD %s: unexpected reply", jobq_script_name(s));
            return -1;
        }
        memcpy(q->sha[s], r->str, 41);
        freeReplyObject(r);
    }
    return 0;
}

int jobq_queue_connect(jobq_queue *q, jobq_err *err) {
    jobq_queue_disconnect(q);
    struct timeval tv = to_timeval(q->io_timeout);
    redisContext *c = q->url.socket_path ? redisConnectUnixWithTimeout(q->url.socket_path, tv)
                                         : redisConnectWithTimeout(q->url.host, q->url.port, tv);
    if (!c) {
        jobq_err_set(err, JOBQ_E_NOMEM, "cannot allocate a Redis context");
        return -1;
    }
    if (c->err) {
        jobq_err_set(err, JOBQ_E_IO, "cannot connect to %s: %s", q->url_redacted, c->errstr);
        redisFree(c);
        return -1;
    }
    q->ctx = c;
    if (redisSetTimeout(c, tv) != REDIS_OK) return fail_io(q, err, "setting the socket timeout");
    if (!q->url.socket_path) redisEnableKeepAlive(c);
    if (q->url.password) {
        const char *argv[3] = {"AUTH", q->url.user ? q->url.user : q->url.password, q->url.password};
        int argc = q->url.user ? 3 : 2;
        redisReply *r = command_argv(q, argc, argv, NULL);
        if (check_reply(q, r, err, "AUTH") != 0) {
            err->code = JOBQ_E_IO; /* a refused login cannot be used either */
            jobq_queue_disconnect(q);
            return -1;
        }
        freeReplyObject(r);
    }
    if (q->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", q->url.db);
        const char *argv[] = {"SELECT", db};
        if (simple_command(q, err, "SELECT", 2, argv) != 0) {
            jobq_queue_disconnect(q);
            return -1;
        }
    }
    if (load_scripts(q, err) != 0) {
        jobq_queue_disconnect(q);
        return -1;
    }
    return 0;
}

/* EVALSHA with a reload when the server lost its script cache. The caller
 * builds args from index 3 on (the first three are filled here). */
static redisReply *eval_script(jobq_queue *q, enum jobq_script s, int argc, const char **argv,
                               const size_t *lens) {
    argv[0] = "EVALSHA";
    argv[1] = q->sha[s];
    if (lens) {
        ((size_t *)lens)[0] = 7;
        ((size_t *)lens)[1] = 40;
    }
    redisReply *r = command_argv(q, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        jobq_err ignored;
        if (load_scripts(q, &ignored) != 0) return NULL;
        argv[1] = q->sha[s];
        r = command_argv(q, argc, argv, lens);
    }
    return r;
}

/* ---- worker side ---- */

void jobq_taken_fini(jobq_taken *t) {
    if (t->reply) freeReplyObject(t->reply);
    if (t->reply2) freeReplyObject(t->reply2);
    free(t->items);
    memset(t, 0, sizeof *t);
}

int jobq_queue_take(jobq_queue *q, const char *const *inflight_keys,
                    const char *const *queue_keys, int nq, int max, int share_among,
                    double block, jobq_taken *out, jobq_err *err) {
    memset(out, 0, sizeof *out);
    if (!q->ctx) return fail_io(q, err, "take");
    enum { MAXQ = 32 };
    if (nq < 1 || nq > MAXQ || max < 1) {
        jobq_err_set(err, JOBQ_E_INVALID, "take: bad arguments");
        return -1;
    }
    const char *argv[3 + 2 * MAXQ + 3];
    size_t lens[3 + 2 * MAXQ + 3];
    char nkeys[16], maxs[16], nqs[16], shares[16];
    snprintf(nkeys, sizeof nkeys, "%d", 2 * nq);
    snprintf(maxs, sizeof maxs, "%d", max);
    snprintf(nqs, sizeof nqs, "%d", nq);
    snprintf(shares, sizeof shares, "%d", share_among > 1 ? share_among : 1);
    int argc = 0;
    argv[argc++] = NULL;
    argv[argc++] = NULL;
    argv[argc++] = nkeys;
    for (int i = 0; i < nq; i++) argv[argc++] = inflight_keys[i];
    for (int i = 0; i < nq; i++) argv[argc++] = queue_keys[i];
    argv[argc++] = maxs;
    argv[argc++] = nqs;
    argv[argc++] = shares;
    for (int i = 2; i < argc; i++) lens[i] = strlen(argv[i]);
    redisReply *r = eval_script(q, JOBQ_SCRIPT_TAKE, argc, argv, lens);
    if (check_reply(q, r, err, "take") != 0) return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < (size_t)nq + 1) {
        freeReplyObject(r);
        jobq_err_set(err, JOBQ_E_REPLY, "take: unexpected reply");
        return -1;
    }
    out->still_waiting = r->element[0]->integer;
    size_t total = r->elements - (size_t)nq - 1;
    if (total > 0) {
        out->reply = r;
        out->items = calloc(total, sizeof *out->items);
        if (!out->items) {
            jobq_taken_fini(out);
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            return -1;
        }
        size_t k = (size_t)nq + 1;
        for (int i = 0; i < nq; i++) {
            long long cnt = r->element[i + 1]->integer;
            for (long long j = 0; j < cnt && k < r->elements; j++, k++) {
                redisReply *e = r->element[k];
                out->items[out->n].queue_index = i;
                out->items[out->n].payload = e->str;
                out->items[out->n].len = e->len;
                out->n++;
            }
        }
        return 0;
    }
    freeReplyObject(r);
    if (block <= 0) return 0;

    /* Nothing waiting: block on the highest-priority queue. The socket timeout
     * must outlast the server-side block. */
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", block);
    const char *bargv[] = {"BLMOVE", queue_keys[0], inflight_keys[0], "LEFT", "RIGHT", secs};
    redisSetTimeout(q->ctx, to_timeval(block + q->io_timeout));
    r = command_argv(q, 6, bargv, NULL);
    if (q->ctx) redisSetTimeout(q->ctx, to_timeval(q->io_timeout));
    if (check_reply(q, r, err, "BLMOVE") != 0) return -1;
    if (r->type == REDIS_REPLY_STRING) {
        out->items = calloc(1, sizeof *out->items);
        if (!out->items) {
            freeReplyObject(r);
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            return -1;
        }
        out->reply = r;
        out->items[0].queue_index = 0;
        out->items[0].payload = r->str;
        out->items[0].len = r->len;
        out->n = 1;
        return 0;
    }
    freeReplyObject(r);
    return 0;
}

static void append(jobq_queue *q, int *pending, int argc, const char **argv, const size_t *lens) {
    redisAppendCommandArgv(q->ctx, argc, argv, lens);
    (*pending)++;
}

int jobq_queue_commit(jobq_queue *q, const jobq_outcome *outs, size_t n, jobq_err *err) {
    if (n == 0) return 0;
    if (!q->ctx) return fail_io(q, err, "commit");
    char k_dead[256], k_sched[256], k_proc[256], k_failed[256];
    jobq_queue_key(q, k_dead, sizeof k_dead, "dead");
    jobq_queue_key(q, k_sched, sizeof k_sched, "scheduled");
    jobq_queue_key(q, k_proc, sizeof k_proc, "stats:processed");
    jobq_queue_key(q, k_failed, sizeof k_failed, "stats:failed");
    int pending = 0;
    long long processed = 0, failed = 0;
    const char *multi[] = {"MULTI"};
    append(q, &pending, 1, multi, NULL);
    for (size_t i = 0; i < n; i++) {
        const jobq_outcome *o = &outs[i];
        if (o->id && o->result_json) {
            char key[512], ttl[24];
            jobq_queue_key(q, key, sizeof key, "result:%s", o->id);
            snprintf(ttl, sizeof ttl, "%d", o->result_ttl > 0 ? o->result_ttl : 86400);
            const char *argv[] = {"SET", key, o->result_json, "EX", ttl};
            append(q, &pending, 5, argv, NULL);
        }
        if (o->dead_json) {
            const char *argv[] = {"LPUSH", k_dead, o->dead_json};
            append(q, &pending, 3, argv, NULL);
        }
        if (o->retry_payload) {
            char score[40];
            snprintf(score, sizeof score, "%.6f", o->retry_at);
            const char *argv[] = {"ZADD", k_sched, score, o->retry_payload};
            append(q, &pending, 4, argv, NULL);
        }
        if (o->event_json) {
            const char *argv[] = {"PUBLISH", q->events_key, o->event_json};
            append(q, &pending, 3, argv, NULL);
        }
        if (o->inflight_key && o->payload) {
            const char *argv[] = {"LREM", o->inflight_key, "1", o->payload};
            size_t lens[] = {4, strlen(o->inflight_key), 1, o->payload_len};
            append(q, &pending, 4, argv, lens);
        }
        processed += o->finished;
        failed += o->failed;
    }
    char num[24];
    if (processed) {
        snprintf(num, sizeof num, "%lld", processed);
        const char *argv[] = {"INCRBY", k_proc, num};
        append(q, &pending, 3, argv, NULL);
    }
    if (failed) {
        char num2[24];
        snprintf(num2, sizeof num2, "%lld", failed);
        const char *argv[] = {"INCRBY", k_failed, num2};
        append(q, &pending, 3, argv, NULL);
    }
    const char *exec[] = {"EXEC"};
    append(q, &pending, 1, exec, NULL);

    /* Sent with the transaction, in the same round trip: earlier publishes. */
    if (read_unread(q) != 0) return fail_io(q, err, "commit");
    int rc = 0;
    for (int i = 0; i < pending; i++) {
        void *reply = NULL;
        if (redisGetReply(q->ctx, &reply) != REDIS_OK) return fail_io(q, err, "commit");
        redisReply *r = reply;
        if (i == pending - 1) { /* EXEC: nil when aborted, array of results */
            if (r->type == REDIS_REPLY_ERROR) {
                jobq_err_set(err, JOBQ_E_REPLY, "commit: %s", r->str);
                rc = -1;
            } else if (r->type == REDIS_REPLY_ARRAY) {
                for (size_t j = 0; j < r->elements; j++) {
                    if (r->element[j]->type == REDIS_REPLY_ERROR && rc == 0) {
                        jobq_err_set(err, JOBQ_E_REPLY, "commit: %s", r->element[j]->str);
                        rc = -1;
                    }
                }
            }
        } else if (r->type == REDIS_REPLY_ERROR && rc == 0) {
            jobq_err_set(err, JOBQ_E_REPLY, "commit: %s", r->str);
            rc = -1;
        }
        freeReplyObject(r);
    }
    return rc;
}

int jobq_queue_publish_nowait(jobq_queue *q, const char *message, bool send_now, jobq_err *err) {
    if (!q->ctx) return fail_io(q, err, "publish");
    const char *argv[] = {"PUBLISH", q->events_key, message};
    if (redisAppendCommandArgv(q->ctx, 3, argv, NULL) != REDIS_OK) return fail_io(q, err, "publish");
    q->unread++;
    int done = 0;
    while (send_now && !done)
        if (redisBufferWrite(q->ctx, &done) != REDIS_OK) return fail_io(q, err, "publish");
    return 0;
}

int jobq_queue_register_inflight(jobq_queue *q, const char *daemon_id, const char *const *inflight_keys,
                                 const char *const *queue_names, int n, jobq_err *err) {
    char hash[512];
    jobq_queue_key(q, hash, sizeof hash, "daemon:%s:inflight", daemon_id);
    enum { MAXN = 32 };
    if (n < 1 || n > MAXN) return 0;
    const char *argv[2 + 2 * MAXN];
    char qkeys[MAXN][300];
    int argc = 0;
    argv[argc++] = "HSET";
    argv[argc++] = hash;
    for (int i = 0; i < n; i++) {
        jobq_queue_key(q, qkeys[i], sizeof qkeys[i], "queue:%s", queue_names[i]);
        argv[argc++] = inflight_keys[i];
        argv[argc++] = qkeys[i];
    }
    return simple_command(q, err, "HSET in-flight", argc, argv);
}

int jobq_queue_unregister_inflight(jobq_queue *q, const char *daemon_id,
                                   const char *const *inflight_keys, int n, jobq_err *err) {
    char hash[512];
    jobq_queue_key(q, hash, sizeof hash, "daemon:%s:inflight", daemon_id);
    enum { MAXN = 32 };
    if (n < 1 || n > MAXN) return 0;
    const char *argv[2 + MAXN];
    int argc = 0;
    argv[argc++] = "HDEL";
    argv[argc++] = hash;
    for (int i = 0; i < n; i++) argv[argc++] = inflight_keys[i];
    return simple_command(q, err, "HDEL in-flight", argc, argv);
}

/* ---- supervisor side ---- */

long jobq_queue_requeue(jobq_queue *q, const char *inflight_key, const char *queue_key, jobq_err *err) {
    const char *argv[] = {NULL, NULL, "2", inflight_key, queue_key};
    redisReply *r = eval_script(q, JOBQ_SCRIPT_REQUEUE, 5, argv, NULL);
    if (check_reply(q, r, err, "requeue") != 0) return -1;
    long n = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
    freeReplyObject(r);
    return n;
}

void jobq_queue_free_list(char **items, size_t *lens, size_t n) {
    for (size_t i = 0; items && i < n; i++) free(items[i]);
    free(items);
    free(lens);
}

/* Copy the string elements of an array reply. */
static int copy_array(redisReply *r, size_t from, size_t step, char ***items, size_t **lens,
                      size_t *n, jobq_err *err) {
    size_t count = r->elements > from ? (r->elements - from + step - 1) / step : 0;
    *items = calloc(count ? count : 1, sizeof **items);
    if (lens) *lens = calloc(count ? count : 1, sizeof **lens);
    *n = 0;
    if (!*items || (lens && !*lens)) goto nomem;
    for (size_t i = from; i < r->elements; i += step) {
        redisReply *e = r->element[i];
        const char *s = e->type == REDIS_REPLY_STRING ? e->str : "";
        size_t len = e->type == REDIS_REPLY_STRING ? e->len : 0;
        char *copy = malloc(len + 1);
        if (!copy) goto nomem;
        memcpy(copy, s, len);
        copy[len] = '\0';
        (*items)[*n] = copy;
        if (lens) (*lens)[*n] = len;
        (*n)++;
    }
    return 0;
nomem:
    jobq_queue_free_list(*items, lens ? *lens : NULL, *n);
    *items = NULL;
    if (lens) *lens = NULL;
    *n = 0;
    jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    return -1;
}

int jobq_queue_list(jobq_queue *q, const char *key, char ***items, size_t **lens, size_t *n,
                    jobq_err *err) {
    const char *argv[] = {"LRANGE", key, "0", "-1"};
    redisReply *r = command_argv(q, 4, argv, NULL);
    if (check_reply(q, r, err, "LRANGE") != 0) return -1;
    int rc = r->type == REDIS_REPLY_ARRAY ? copy_array(r, 0, 1, items, lens, n, err) : -1;
    if (r->type != REDIS_REPLY_ARRAY) jobq_err_set(err, JOBQ_E_REPLY, "LRANGE %s: not a list", key);
    freeReplyObject(r);
    return rc;
}

long jobq_queue_promote(jobq_queue *q, double now, int limit, double *next_due, char ***cancel_ids,
                        size_t *ncancel, jobq_err *err) {
    char k_sched[256], k_cancel[256], qprefix[256], nows[40], lim[16], cutoff[40];
    jobq_queue_key(q, k_sched, sizeof k_sched, "scheduled");
    jobq_queue_key(q, k_cancel, sizeof k_cancel, "cancel");
    jobq_queue_key(q, qprefix, sizeof qprefix, "queue:");
    snprintf(nows, sizeof nows, "%.6f", now);
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(cutoff, sizeof cutoff, "%.6f", now - 60);
    const char *argv[] = {NULL, NULL, "2", k_sched, k_cancel, nows, qprefix, lim, cutoff};
    *cancel_ids = NULL;
    *ncancel = 0;
    redisReply *r = eval_script(q, JOBQ_SCRIPT_PROMOTE, 9, argv, NULL);
    if (check_reply(q, r, err, "promote") != 0) return -1;
    long moved = 0;
    *next_due = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        moved = (long)r->element[0]->integer;
        if (r->element[1]->type == REDIS_REPLY_STRING) *next_due = strtod(r->element[1]->str, NULL);
        if (r->elements > 2 && copy_array(r, 2, 1, cancel_ids, NULL, ncancel, err) != 0) moved = -1;
    }
    freeReplyObject(r);
    return moved;
}

int jobq_queue_cancel_done(jobq_queue *q, const char *id, jobq_err *err) {
    char k_cancel[256];
    jobq_queue_key(q, k_cancel, sizeof k_cancel, "cancel");
    const char *argv[] = {"ZREM", k_cancel, id};
    return simple_command(q, err, "ZREM cancel", 3, argv);
}

int jobq_queue_heartbeat(jobq_queue *q, const char *daemon_id, const char *info_json, double ttl,
                         jobq_err *err) {
    char k_hb[512], k_daemons[256], ms[32];
    jobq_queue_key(q, k_hb, sizeof k_hb, "daemon:%s", daemon_id);
    jobq_queue_key(q, k_daemons, sizeof k_daemons, "daemons");
    snprintf(ms, sizeof ms, "%lld", (long long)llround(ttl * 1000));
    const char *set[] = {"SET", k_hb, info_json, "PX", ms};
    const char *hset[] = {"HSET", k_daemons, daemon_id, info_json};
    if (!q->ctx || read_unread(q) != 0) return fail_io(q, err, "heartbeat");
    redisAppendCommandArgv(q->ctx, 5, set, NULL);
    redisAppendCommandArgv(q->ctx, 4, hset, NULL);
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        void *reply;
        if (redisGetReply(q->ctx, &reply) != REDIS_OK) return fail_io(q, err, "heartbeat");
        redisReply *r = reply;
        if (r->type == REDIS_REPLY_ERROR) {
            jobq_err_set(err, JOBQ_E_REPLY, "heartbeat: %s", r->str);
            rc = -1;
        }
        freeReplyObject(r);
    }
    return rc;
}

int jobq_queue_daemons(jobq_queue *q, char ***ids, char ***infos, size_t *n, jobq_err *err) {
    char k_daemons[256];
    jobq_queue_key(q, k_daemons, sizeof k_daemons, "daemons");
    const char *argv[] = {"HGETALL", k_daemons};
    redisReply *r = command_argv(q, 2, argv, NULL);
    if (check_reply(q, r, err, "HGETALL daemons") != 0) return -1;
    size_t n2;
    int rc = copy_array(r, 0, 2, ids, NULL, n, err);
    if (rc == 0 && copy_array(r, 1, 2, infos, NULL, &n2, err) != 0) {
        jobq_queue_free_list(*ids, NULL, *n);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

long jobq_queue_reclaim(jobq_queue *q, const char *daemon_id, bool force, jobq_err *err) {
    char k_hb[512], k_inflight[512], k_daemons[256];
    jobq_queue_key(q, k_hb, sizeof k_hb, "daemon:%s", daemon_id);
    jobq_queue_key(q, k_inflight, sizeof k_inflight, "daemon:%s:inflight", daemon_id);
    jobq_queue_key(q, k_daemons, sizeof k_daemons, "daemons");
    const char *argv[] = {NULL, NULL, "3", k_hb, k_inflight, k_daemons, daemon_id, force ? "1" : "0"};
    redisReply *r = eval_script(q, JOBQ_SCRIPT_RECLAIM, 8, argv, NULL);
    if (check_reply(q, r, err, "reclaim") != 0) return -1;
    long n = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
    freeReplyObject(r);
    return n < 0 ? -2 : n;
}

int jobq_queue_deregister(jobq_queue *q, const char *daemon_id, jobq_err *err) {
    char k_hb[512], k_daemons[256];
    jobq_queue_key(q, k_hb, sizeof k_hb, "daemon:%s", daemon_id);
    jobq_queue_key(q, k_daemons, sizeof k_daemons, "daemons");
    const char *del[] = {"DEL", k_hb};
    const char *hdel[] = {"HDEL", k_daemons, daemon_id};
    if (simple_command(q, err, "DEL heartbeat", 2, del) != 0) return -1;
    return simple_command(q, err, "HDEL daemons", 3, hdel);
}

static json_t *reply_to_json(const redisReply *r) {
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: {
        json_t *v = json_stringn(r->str, r->len);
        return v ? v : json_stringn_nocheck(r->str, r->len);
    }
    case REDIS_REPLY_INTEGER: return json_integer(r->integer);
    case REDIS_REPLY_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < r->elements; i++) json_array_append_new(a, reply_to_json(r->element[i]));
        return a;
    }
    default: return json_null();
    }
}

int jobq_queue_command_json(jobq_queue *q, json_t **out, jobq_err *err, int argc, const char **argv,
                            const size_t *argvlen) {
    *out = NULL;
    redisReply *r = command_argv(q, argc, argv, argvlen);
    if (check_reply(q, r, err, argv[0]) != 0) return -1;
    *out = reply_to_json(r);
    freeReplyObject(r);
    return 0;
}

int jobq_queue_send(jobq_queue *q, jobq_err *err, int argc, const char **argv) {
    if (!q->ctx) return fail_io(q, err, argv[0]);
    if (redisAppendCommandArgv(q->ctx, argc, argv, NULL) != REDIS_OK) return fail_io(q, err, argv[0]);
    int done = 0;
    while (!done)
        if (redisBufferWrite(q->ctx, &done) != REDIS_OK) return fail_io(q, err, argv[0]);
    return 0;
}

int jobq_queue_read_json(jobq_queue *q, double timeout, json_t **out, jobq_err *err) {
    *out = NULL;
    if (!q->ctx) return fail_io(q, err, "read");
    redisSetTimeout(q->ctx, to_timeval(timeout > 0.001 ? timeout : 0.001));
    void *reply = NULL;
    if (redisGetReply(q->ctx, &reply) != REDIS_OK) {
        bool timed_out = q->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        if (timed_out) {
            jobq_queue_disconnect(q);
            return 1;
        }
        return fail_io(q, err, "read");
    }
    redisSetTimeout(q->ctx, to_timeval(q->io_timeout));
    redisReply *r = reply;
    if (r->type == REDIS_REPLY_ERROR) {
        jobq_err_set(err, JOBQ_E_REPLY, "%s", r->str);
        freeReplyObject(r);
        return -1;
    }
    *out = reply_to_json(r);
    freeReplyObject(r);
    return 0;
}
