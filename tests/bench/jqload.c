/*
 * jqload: the C side of `make bench` for jobq (tests/bench/run.sh builds it
 * into build/bench/jqload with cc against hiredis and jansson).
 *
 * The Python driver (tests/bench/bench.py) orchestrates; this program does the
 * parts where a Python client would distort what is measured:
 *
 *   jqload enqueue SOCK KEY N IDPREFIX HANDLER [ARGS_JSON]
 *       RPUSH N payloads {"id":"<IDPREFIX><i>","handler":HANDLER[,"args":ARGS]}
 *       to KEY, pipelined (1,000 commands per window). Prints a JSON line.
 *
 *   jqload collect SOCK RESULT_PREFIX IDPREFIX N [EXPECT_WORDS]
 *       GET <RESULT_PREFIX><IDPREFIX><i> for i < N, pipelined; prints a JSON
 *       line: found/ok/failed counts, first start, last finish, the number
 *       of distinct workers, and (with EXPECT_WORDS) wordcount results whose
 *       "words" differ from it.
 *
 *   jqload latency SOCK QUEUE_KEY CHANNEL RESULT_PREFIX N WARMUP TIMEOUT_S
 *       One job at a time on idle workers: take t0 (CLOCK_REALTIME), RPUSH
 *       {"id":"lat<i>","handler":"noop","enqueued_at":t0}, wait on a second
 *       connection subscribed to CHANNEL for that id's "ok" event (t1), then
 *       GET the result (cross-check: it must exist and say "ok") and read its
 *       started_at. Prints a JSON line with the raw samples in ms:
 *       "start" = started_at - t0, "visible" = t1 - t0. WARMUP jobs first,
 *       not counted. Stops early after TIMEOUT_S seconds in total.
 *
 * Every wait is bounded (socket timeouts); exit status 0 on success, 1 on a
 * Redis error, 2 on bad usage.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static double now_real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static redisContext *connect_sock(const char *sock, double timeout_s) {
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (long)timeout_s) * 1e6)};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    if (!c || c->err) {
        fprintf(stderr, "jqload: connect %s: %s\n", sock, c ? c->errstr : "out of memory");
        exit(1);
    }
    redisSetTimeout(c, tv);
    return c;
}

static void die_ctx(redisContext *c, const char *what) {
    fprintf(stderr, "jqload: %s: %s\n", what, c->err ? c->errstr : "unexpected reply");
    exit(1);
}

static long parse_long(const char *s, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0) {
        fprintf(stderr, "jqload: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

/* ---- enqueue ---------------------------------------------------------------- */

static int cmd_enqueue(int argc, char **argv) {
    if (argc < 7) return 2;
    const char *sock = argv[2], *key = argv[3], *prefix = argv[5], *handler = argv[6];
    long n = parse_long(argv[4], "N");
    const char *args = argc > 7 ? argv[7] : NULL;
    redisContext *c = connect_sock(sock, 30);
    double t0 = now_mono();
    char buf[4096];
    const long window = 1000;
    for (long base = 0; base < n; base += window) {
        long end = base + window < n ? base + window : n;
        for (long i = base; i < end; i++) {
            int len;
            if (args)
                len = snprintf(buf, sizeof buf, "{\"id\":\"%s%ld\",\"handler\":\"%s\",\"args\":%s}", prefix, i,
                               handler, args);
            else
                len = snprintf(buf, sizeof buf, "{\"id\":\"%s%ld\",\"handler\":\"%s\"}", prefix, i, handler);
            if (len < 0 || (size_t)len >= sizeof buf) {
                fprintf(stderr, "jqload: payload too long\n");
                return 2;
            }
            redisAppendCommand(c, "RPUSH %s %b", key, buf, (size_t)len);
        }
        for (long i = base; i < end; i++) {
            redisReply *r;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) die_ctx(c, "RPUSH");
            if (r->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "jqload: RPUSH: %s\n", r->str);
                exit(1);
            }
            freeReplyObject(r);
        }
    }
    printf("{\"enqueued\":%ld,\"seconds\":%.6f}\n", n, now_mono() - t0);
    redisFree(c);
    return 0;
}

/* ---- collect ---------------------------------------------------------------- */

#define MAX_WORKERS 64

static int cmd_collect(int argc, char **argv) {
    if (argc < 6) return 2;
    const char *sock = argv[2], *rprefix = argv[3], *prefix = argv[4];
    long n = parse_long(argv[5], "N");
    long expect_words = argc > 6 ? parse_long(argv[6], "EXPECT_WORDS") : -1;
    redisContext *c = connect_sock(sock, 30);
    long found = 0, ok = 0, failed = 0, bad_words = 0, unparsable = 0;
    double first_start = 0, last_finish = 0, first_finish = 0, last_start = 0;
    char workers[MAX_WORKERS][64];
    int nworkers = 0;
    char first_error[256] = "";
    const long window = 1000;
    for (long base = 0; base < n; base += window) {
        long end = base + window < n ? base + window : n;
        for (long i = base; i < end; i++) redisAppendCommand(c, "GET %s%s%ld", rprefix, prefix, i);
        for (long i = base; i < end; i++) {
            redisReply *r;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) die_ctx(c, "GET");
            if (r->type == REDIS_REPLY_STRING) {
                found++;
                json_error_t jerr;
                json_t *o = json_loadb(r->str, r->len, 0, &jerr);
                if (!o) {
                    unparsable++;
                } else {
                    const char *st = json_string_value(json_object_get(o, "status"));
                    if (st && !strcmp(st, "ok")) {
                        ok++;
                    } else {
                        failed++;
                        const char *e = json_string_value(json_object_get(o, "error"));
                        if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", e ? e : "?");
                    }
                    double s = json_number_value(json_object_get(o, "started_at"));
                    double f = json_number_value(json_object_get(o, "finished_at"));
                    if (s > 0 && (first_start == 0 || s < first_start)) first_start = s;
                    if (s > last_start) last_start = s;
                    if (f > last_finish) last_finish = f;
                    if (f > 0 && (first_finish == 0 || f < first_finish)) first_finish = f;
                    const char *w = json_string_value(json_object_get(o, "worker"));
                    if (w) {
                        int k;
                        for (k = 0; k < nworkers; k++)
                            if (!strcmp(workers[k], w)) break;
                        if (k == nworkers && nworkers < MAX_WORKERS)
                            snprintf(workers[nworkers++], sizeof workers[0], "%s", w);
                    }
                    if (expect_words >= 0 && st && !strcmp(st, "ok")) {
                        json_t *res = json_object_get(o, "result");
                        json_t *wc = json_object_get(res, "words");
                        if (!json_is_integer(wc) || json_integer_value(wc) != expect_words) bad_words++;
                    }
                    json_decref(o);
                }
            }
            freeReplyObject(r);
        }
    }
    json_t *err = json_string(first_error);
    char *e = json_dumps(err, JSON_ENCODE_ANY);
    printf("{\"n\":%ld,\"found\":%ld,\"ok\":%ld,\"failed\":%ld,\"unparsable\":%ld,\"bad_words\":%ld,"
           "\"first_start\":%.6f,\"last_start\":%.6f,\"first_finish\":%.6f,\"last_finish\":%.6f,"
           "\"workers\":%d,\"first_error\":%s}\n",
           n, found, ok, failed, unparsable, bad_words, first_start, last_start, first_finish, last_finish,
           nworkers, e ? e : "\"\"");
    free(e);
    json_decref(err);
    redisFree(c);
    return 0;
}

/* ---- latency ---------------------------------------------------------------- */

static int cmd_latency(int argc, char **argv) {
    if (argc < 9) return 2;
    const char *sock = argv[2], *qkey = argv[3], *channel = argv[4], *rprefix = argv[5];
    long n = parse_long(argv[6], "N");
    long warmup = parse_long(argv[7], "WARMUP");
    double budget = atof(argv[8]);
    if (budget <= 0) budget = 60;

    redisContext *sub = connect_sock(sock, 5);
    redisContext *cmd = connect_sock(sock, 5);
    redisReply *r = redisCommand(sub, "SUBSCRIBE %s", channel);
    if (!r) die_ctx(sub, "SUBSCRIBE");
    freeReplyObject(r);

    double *start = calloc((size_t)n + 1, sizeof *start);
    double *visible = calloc((size_t)n + 1, sizeof *visible);
    if (!start || !visible) return 1;
    long done = 0, missing_result = 0, not_ok = 0, timeouts = 0;
    double deadline = now_mono() + budget;
    char payload[256], id[64];

    for (long i = 0; i < warmup + n; i++) {
        if (now_mono() > deadline) break;
        snprintf(id, sizeof id, "lat%ld", i);
        double t0 = now_real();
        int len = snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"handler\":\"noop\",\"enqueued_at\":%.6f}",
                           id, t0);
        r = redisCommand(cmd, "RPUSH %s %b", qkey, payload, (size_t)len);
        if (!r) die_ctx(cmd, "RPUSH");
        freeReplyObject(r);

        /* Wait for this job's event; other events (none expected) are skipped. */
        double t1 = 0;
        int got = 0;
        while (!got) {
            void *rv;
            if (redisGetReply(sub, &rv) != REDIS_OK) {
                if (sub->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    timeouts++;
                    fprintf(stderr, "jqload: no event for %s within 5 s\n", id);
                    goto out;
                }
                die_ctx(sub, "subscription");
            }
            double t = now_real();
            redisReply *m = rv;
            if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 && m->element[2]->type == REDIS_REPLY_STRING) {
                json_t *o = json_loadb(m->element[2]->str, m->element[2]->len, 0, NULL);
                const char *eid = json_string_value(json_object_get(o, "id"));
                const char *ev = json_string_value(json_object_get(o, "event"));
                if (eid && ev && !strcmp(eid, id)) {
                    if (!strcmp(ev, "ok")) {
                        t1 = t;
                        got = 1;
                    } else if (!strcmp(ev, "failed") || !strcmp(ev, "dead")) {
                        not_ok++;
                        got = 2;
                    }
                }
                json_decref(o);
            }
            freeReplyObject(m);
        }
        if (got != 1) continue;

        r = redisCommand(cmd, "GET %s%s", rprefix, id);
        if (!r) die_ctx(cmd, "GET");
        double started = 0;
        if (r->type == REDIS_REPLY_STRING) {
            json_t *o = json_loadb(r->str, r->len, 0, NULL);
            const char *st = json_string_value(json_object_get(o, "status"));
            if (!st || strcmp(st, "ok")) not_ok++;
            started = json_number_value(json_object_get(o, "started_at"));
            json_decref(o);
        } else {
            missing_result++;
        }
        freeReplyObject(r);
        if (i >= warmup && started > 0) {
            start[done] = (started - t0) * 1e3;
            visible[done] = (t1 - t0) * 1e3;
            done++;
        }
    }
out:
    printf("{\"n\":%ld,\"done\":%ld,\"missing_result\":%ld,\"not_ok\":%ld,\"timeouts\":%ld,\"start\":[", n, done,
           missing_result, not_ok, timeouts);
    for (long i = 0; i < done; i++) printf(i ? ",%.4f" : "%.4f", start[i]);
    printf("],\"visible\":[");
    for (long i = 0; i < done; i++) printf(i ? ",%.4f" : "%.4f", visible[i]);
    printf("]}\n");
    free(start);
    free(visible);
    redisFree(sub);
    redisFree(cmd);
    return 0;
}

int main(int argc, char **argv) {
    int rc = 2;
    if (argc >= 2 && !strcmp(argv[1], "enqueue"))
        rc = cmd_enqueue(argc, argv);
    else if (argc >= 2 && !strcmp(argv[1], "collect"))
        rc = cmd_collect(argc, argv);
    else if (argc >= 2 && !strcmp(argv[1], "latency"))
        rc = cmd_latency(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: jqload enqueue SOCK KEY N IDPREFIX HANDLER [ARGS_JSON]\n"
                        "       jqload collect SOCK RESULT_PREFIX IDPREFIX N [EXPECT_WORDS]\n"
                        "       jqload latency SOCK QUEUE_KEY CHANNEL RESULT_PREFIX N WARMUP TIMEOUT_S\n");
    return rc;
}
