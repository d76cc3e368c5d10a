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
 *   jqload push SOCK TEMPLATE_JSON N IDPREFIX RATE T0FILE
 *       Enqueue N jobs of any system from a template of Redis commands, all
 *       at once (RATE 0) or open loop at RATE jobs/s; see cmd_push.
 *
 *   jqload results SOCK SCHEME IDPREFIX N T0FILE [EXPECT_WORDS]
 *       After a run, read the result documents (pipelined MGET / HMGET) and
 *       print enqueue -> start / finish percentiles and the throughput; see
 *       cmd_results.
 *
 * Every wait is bounded (socket timeouts); exit status 0 on success, 1 on a
 * Redis error, 2 on bad usage.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <sys/prctl.h>
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


/* ---- push: bulk or open loop, from a template -------------------------------
 *
 *   jqload push SOCK TEMPLATE_JSON N IDPREFIX RATE T0FILE
 *
 * TEMPLATE_JSON is a file holding a JSON array of Redis commands (each an
 * array of strings) that enqueue one job of some system; in every argument
 * "@@ID@@" becomes the job's id (<IDPREFIX><i>) and "@@T0@@" its enqueue
 * time (CLOCK_REALTIME, Unix seconds with 6 decimals) taken just before the
 * job's commands are written to the socket. The commands of a job are sent
 * in order on one connection. An argument written {"b64": "..."} is raw
 * bytes (base64), sent as they are.
 *
 * RATE 0: all N jobs as fast as possible (1,000 per pipelined window).
 * RATE > 0: open loop, job i is due at start + i / RATE on the monotonic
 * clock whatever happens to the jobs already sent (completions are never
 * waited for); the producer sleeps until the next due time, then sends
 * every job due by then in one write and reads their replies. The lag of
 * each send behind its due time is reported. T0FILE receives the N enqueue
 * times as native doubles, for `jqload results`.
 */

typedef struct tmpl_arg {
    char **parts;   /* literal pieces between placeholders */
    size_t *plens;
    int *holes;     /* after piece k: 0 none, 1 id, 2 t0 */
    int nparts;
} tmpl_arg;

typedef struct tmpl_cmd {
    int argc;
    tmpl_arg *args;
} tmpl_cmd;

static void tmpl_split(tmpl_arg *a, const char *s) {
    a->nparts = 0;
    size_t cap = 4;
    a->parts = malloc(cap * sizeof *a->parts);
    a->plens = malloc(cap * sizeof *a->plens);
    a->holes = malloc(cap * sizeof *a->holes);
    for (;;) {
        const char *id = strstr(s, "@@ID@@"), *t0 = strstr(s, "@@T0@@");
        const char *hole = id && (!t0 || id < t0) ? id : t0;
        if ((size_t)a->nparts + 1 >= cap) {
            cap *= 2;
            a->parts = realloc(a->parts, cap * sizeof *a->parts);
            a->plens = realloc(a->plens, cap * sizeof *a->plens);
            a->holes = realloc(a->holes, cap * sizeof *a->holes);
        }
        size_t len = hole ? (size_t)(hole - s) : strlen(s);
        a->parts[a->nparts] = strndup(s, len);
        a->plens[a->nparts] = len;
        a->holes[a->nparts] = !hole ? 0 : hole == id ? 1 : 2;
        a->nparts++;
        if (!hole) break;
        s = hole + 6;
    }
}

static char *b64_decode(const char *in, size_t *outlen) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in);
    char *out = malloc(n / 4 * 3 + 3);
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *p = strchr(tbl, in[i]);
        if (!p || !in[i]) continue;
        v = (v << 6) | (unsigned)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((v >> bits) & 0xff);
        }
    }
    *outlen = o;
    return out;
}

static tmpl_cmd *tmpl_load(const char *path, int *ncmds) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root || !json_is_array(root) || json_array_size(root) == 0) {
        fprintf(stderr, "jqload: template %s: %s\n", path, root ? "not a non-empty array" : jerr.text);
        exit(2);
    }
    *ncmds = (int)json_array_size(root);
    tmpl_cmd *cmds = calloc((size_t)*ncmds, sizeof *cmds);
    for (int c = 0; c < *ncmds; c++) {
        json_t *cmd = json_array_get(root, (size_t)c);
        if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
            fprintf(stderr, "jqload: template %s: command %d is not a non-empty array\n", path, c);
            exit(2);
        }
        cmds[c].argc = (int)json_array_size(cmd);
        cmds[c].args = calloc((size_t)cmds[c].argc, sizeof *cmds[c].args);
        for (int k = 0; k < cmds[c].argc; k++) {
            json_t *arg = json_array_get(cmd, (size_t)k);
            const char *b64 = json_string_value(json_object_get(arg, "b64"));
            if (b64) { /* {"b64": "..."}: binary bytes, no placeholders */
                tmpl_arg *ta = &cmds[c].args[k];
                ta->nparts = 1;
                ta->parts = malloc(sizeof *ta->parts);
                ta->plens = malloc(sizeof *ta->plens);
                ta->holes = calloc(1, sizeof *ta->holes);
                ta->parts[0] = b64_decode(b64, &ta->plens[0]);
                continue;
            }
            const char *s = json_string_value(arg);
            if (!s) {
                fprintf(stderr, "jqload: template %s: command %d has a non-string argument\n", path, c);
                exit(2);
            }
            tmpl_split(&cmds[c].args[k], s);
        }
    }
    json_decref(root);
    return cmds;
}

/* Append job i's commands to c's output buffer. */
static void tmpl_append(redisContext *c, const tmpl_cmd *cmds, int ncmds, const char *prefix, long i, double t0) {
    char id[96], ts[40];
    int idlen = snprintf(id, sizeof id, "%s%ld", prefix, i);
    int tslen = snprintf(ts, sizeof ts, "%.6f", t0);
    static char *buf[64];
    static size_t bufcap[64];
    const char *argv[64];
    size_t argvlen[64];
    for (int k = 0; k < ncmds; k++) {
        int argc = cmds[k].argc < 64 ? cmds[k].argc : 64;
        for (int a = 0; a < argc; a++) {
            const tmpl_arg *ta = &cmds[k].args[a];
            size_t need = 1;
            for (int p = 0; p < ta->nparts; p++)
                need += ta->plens[p] + (ta->holes[p] == 1 ? (size_t)idlen : ta->holes[p] == 2 ? (size_t)tslen : 0);
            if (bufcap[a] < need) {
                bufcap[a] = need * 2;
                buf[a] = realloc(buf[a], bufcap[a]);
            }
            size_t off = 0;
            for (int p = 0; p < ta->nparts; p++) {
                memcpy(buf[a] + off, ta->parts[p], ta->plens[p]);
                off += ta->plens[p];
                if (ta->holes[p] == 1) memcpy(buf[a] + off, id, (size_t)idlen), off += (size_t)idlen;
                else if (ta->holes[p] == 2) memcpy(buf[a] + off, ts, (size_t)tslen), off += (size_t)tslen;
            }
            argvlen[a] = off;
        }
        /* hiredis copies the arguments into its buffer: buf[] is reused. */
        for (int a = 0; a < argc; a++) argv[a] = buf[a];
        redisAppendCommandArgv(c, argc, argv, argvlen);
    }
}

static void read_replies(redisContext *c, long count, long *errors) {
    for (long k = 0; k < count; k++) {
        redisReply *r;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) die_ctx(c, "push");
        if (r->type == REDIS_REPLY_ERROR) {
            if (*errors == 0) fprintf(stderr, "jqload: push: %s\n", r->str);
            (*errors)++;
        }
        freeReplyObject(r);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pctl(const double *v, long n, double p) {
    if (n <= 0) return NAN;
    long k = (long)ceil(p / 100.0 * (double)n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return v[k];
}

static void sleep_until_mono(double t) {
    struct timespec ts = {(time_t)t, (long)((t - floor(t)) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int cmd_push(int argc, char **argv) {
    if (argc < 8) return 2;
    const char *sock = argv[2], *tpath = argv[3], *prefix = argv[5], *t0path = argv[7];
    long n = parse_long(argv[4], "N");
    double rate = atof(argv[6]);
    int ncmds;
    tmpl_cmd *cmds = tmpl_load(tpath, &ncmds);
    redisContext *c = connect_sock(sock, 30);
    double *t0s = calloc((size_t)n + 1, sizeof *t0s);
    double *lags = calloc((size_t)n + 1, sizeof *lags);
    if (!t0s || !lags) return 1;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake on time, not up to 50 us late */
    long errors = 0, bursts = 0;
    double start = now_mono() + 0.005, first_send = 0, last_send = 0;
    if (rate <= 0) {
        start = now_mono();
        for (long base = 0; base < n; base += 1000) {
            long end = base + 1000 < n ? base + 1000 : n;
            for (long i = base; i < end; i++) {
                t0s[i] = now_real();
                tmpl_append(c, cmds, ncmds, prefix, i, t0s[i]);
            }
            read_replies(c, (end - base) * ncmds, &errors);
        }
        first_send = start;
        last_send = now_mono();
    } else {
        long next = 0;
        while (next < n) {
            double now = now_mono();
            long due = (long)floor((now - start) * rate) + 1;
            if (due > n) due = n;
            if (due <= next) {
                sleep_until_mono(start + (double)next / rate);
                continue;
            }
            for (long i = next; i < due; i++) {
                double t = now_mono();
                lags[i] = t - (start + (double)i / rate);
                if (i == 0) first_send = t;
                t0s[i] = now_real();
                tmpl_append(c, cmds, ncmds, prefix, i, t0s[i]);
            }
            last_send = now_mono();
            bursts++;
            read_replies(c, (due - next) * ncmds, &errors);
            next = due;
        }
    }
    FILE *f = fopen(t0path, "wb");
    if (!f || fwrite(t0s, sizeof *t0s, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
        fprintf(stderr, "jqload: cannot write %s\n", t0path);
        return 1;
    }
    double span = last_send - first_send;
    qsort(lags, (size_t)n, sizeof *lags, cmp_double);
    printf("{\"sent\":%ld,\"errors\":%ld,\"rate\":%.1f,\"achieved_rate\":%.1f,\"seconds\":%.6f,\"bursts\":%ld,"
           "\"lag_p50_ms\":%.4f,\"lag_p99_ms\":%.4f,\"lag_max_ms\":%.4f}\n",
           n, errors, rate, span > 0 ? (double)(n - 1) / span : 0, now_mono() - start, bursts,
           rate > 0 ? pctl(lags, n, 50) * 1e3 : 0, rate > 0 ? pctl(lags, n, 99) * 1e3 : 0,
           rate > 0 ? lags[n - 1] * 1e3 : 0);
    free(t0s);
    free(lags);
    redisFree(c);
    return errors ? 1 : 0;
}

/* ---- results: latencies and throughput from the result documents -------------
 *
 *   jqload results SOCK SCHEME IDPREFIX N T0FILE [EXPECT_WORDS]
 *
 * Reads, after a run, where each system keeps a job's outcome, pipelined
 * (jobq, sidekiq and celery: MGET of 500 keys a command; rq and BullMQ:
 * HMGET per job hash), and prints one JSON line: how many were found / ok /
 * failed, enqueue -> start and enqueue -> finish percentiles in ms (p50,
 * p99, p999, max; a job not finished counts as infinitely late, printed as
 * null), and throughput = ok jobs / (last finish - first start).
 *
 *   scheme   where                        start               finish
 *   jobq     GET jobq:result:<id>         started_at          finished_at
 *   sidekiq  GET bench:result:<id>        started_at          finished_at   (written by the job)
 *   celery   GET celery-task-meta-<id>    result.started_at   date_done
 *   rq       HMGET rq:job:<id>            started_at          ended_at
 *   bullmq   HMGET bull:default:<id>      returnvalue.started_at   finishedOn (ms)
 */

/* ISO 8601 UTC ("2024-06-07T10:11:12.123456", with or without Z / +00:00). */
static double parse_iso(const char *s, size_t len) {
    char buf[64];
    if (!s || len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    double sec = 0;
    if (sscanf(buf, "%d-%d-%dT%d:%d:%lf", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = 0;
    return (double)timegm(&tm) + sec;
}

typedef struct outcome {
    int found, ok;
    double start, finish;
    long words; /* -1 unknown */
    char err[128];
} outcome;

static double jnum(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

static long jwords(json_t *res) {
    json_t *w = json_object_get(res, "words");
    return json_is_integer(w) ? (long)json_integer_value(w) : -1;
}

static void parse_doc(const char *scheme, const char *s, size_t len, outcome *o) {
    json_t *d = json_loadb(s, len, 0, NULL);
    o->found = 1;
    o->words = -1;
    if (!d) {
        snprintf(o->err, sizeof o->err, "unparsable result");
        return;
    }
    const char *st = json_string_value(json_object_get(d, "status"));
    if (!strcmp(scheme, "jobq")) {
        o->ok = st && !strcmp(st, "ok");
        o->start = jnum(d, "started_at");
        o->finish = jnum(d, "finished_at");
        o->words = jwords(json_object_get(d, "result"));
        if (!o->ok) snprintf(o->err, sizeof o->err, "%s", json_string_value(json_object_get(d, "error")) ?: "?");
    } else if (!strcmp(scheme, "sidekiq")) {
        o->ok = 1;
        o->start = jnum(d, "started_at");
        o->finish = jnum(d, "finished_at");
        o->words = jwords(d);
    } else { /* celery */
        json_t *res = json_object_get(d, "result");
        o->ok = st && !strcmp(st, "SUCCESS");
        o->start = jnum(res, "started_at");
        const char *dd = json_string_value(json_object_get(d, "date_done"));
        o->finish = dd ? parse_iso(dd, strlen(dd)) : 0;
        o->words = jwords(res);
        if (!o->ok) snprintf(o->err, sizeof o->err, "celery status %s", st ? st : "?");
    }
    json_decref(d);
}

static const char *str_el(redisReply *r, size_t i, size_t *len) {
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements || r->element[i]->type != REDIS_REPLY_STRING) return NULL;
    *len = r->element[i]->len;
    return r->element[i]->str;
}

static int cmd_results(int argc, char **argv) {
    if (argc < 7) return 2;
    const char *sock = argv[2], *scheme = argv[3], *prefix = argv[4], *t0path = argv[6];
    long n = parse_long(argv[5], "N");
    long expect_words = argc > 7 ? parse_long(argv[7], "EXPECT_WORDS") : -1;
    bool hashes = !strcmp(scheme, "rq") || !strcmp(scheme, "bullmq");
    const char *kp = !strcmp(scheme, "jobq") ? "jobq:result:" : !strcmp(scheme, "sidekiq") ? "bench:result:"
                   : !strcmp(scheme, "celery") ? "celery-task-meta-" : !strcmp(scheme, "rq") ? "rq:job:"
                   : !strcmp(scheme, "bullmq") ? "bull:default:" : NULL;
    if (!kp) {
        fprintf(stderr, "jqload: unknown scheme %s\n", scheme);
        return 2;
    }
    double *t0s = calloc((size_t)n + 1, sizeof *t0s);
    outcome *outs = calloc((size_t)n + 1, sizeof *outs);
    FILE *f = fopen(t0path, "rb");
    if (!t0s || !outs || !f || fread(t0s, sizeof *t0s, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "jqload: cannot read %ld enqueue times from %s\n", n, t0path);
        return 1;
    }
    fclose(f);
    redisContext *c = connect_sock(sock, 30);
    const long window = 500;
    char key[256];
    for (long base = 0; base < n; base += window) {
        long end = base + window < n ? base + window : n;
        if (hashes) {
            for (long i = base; i < end; i++) {
                snprintf(key, sizeof key, "%s%s%ld", kp, prefix, i);
                if (!strcmp(scheme, "rq")) redisAppendCommand(c, "HMGET %s status started_at ended_at exc_info", key);
                else redisAppendCommand(c, "HMGET %s finishedOn returnvalue failedReason", key);
            }
            for (long i = base; i < end; i++) {
                redisReply *r;
                if (redisGetReply(c, (void **)&r) != REDIS_OK) die_ctx(c, "HMGET");
                outcome *o = &outs[i];
                o->words = -1;
                size_t l0 = 0, l1 = 0, l2 = 0;
                const char *a = str_el(r, 0, &l0), *b = str_el(r, 1, &l1), *cc = str_el(r, 2, &l2);
                if (!strcmp(scheme, "rq") && a) {
                    /* queued, started...: not finished yet (counted as missing) */
                    o->ok = l0 == 8 && !memcmp(a, "finished", 8);
                    o->found = o->ok || (l0 == 6 && !memcmp(a, "failed", 6));
                    o->start = parse_iso(b, l1);
                    o->finish = parse_iso(cc, l2);
                    if (!o->ok) snprintf(o->err, sizeof o->err, "rq status %.*s", (int)l0, a);
                } else if (!strcmp(scheme, "bullmq") && (a || cc)) {
                    o->found = 1;
                    o->ok = a && !cc;
                    o->finish = a ? strtod(a, NULL) / 1e3 : 0;
                    json_t *rv = b ? json_loadb(b, l1, JSON_DECODE_ANY, NULL) : NULL;
                    o->start = jnum(rv, "started_at");
                    o->words = jwords(rv);
                    json_decref(rv);
                    if (cc) snprintf(o->err, sizeof o->err, "%.*s", (int)(l2 < 120 ? l2 : 120), cc);
                }
                freeReplyObject(r);
            }
        } else {
            const char **av = calloc((size_t)(end - base) + 1, sizeof *av);
            char (*keys)[96] = calloc((size_t)(end - base), sizeof *keys);
            av[0] = "MGET";
            for (long i = base; i < end; i++) {
                snprintf(keys[i - base], sizeof keys[0], "%s%s%ld", kp, prefix, i);
                av[i - base + 1] = keys[i - base];
            }
            redisReply *r = redisCommandArgv(c, (int)(end - base) + 1, av, NULL);
            if (!r) die_ctx(c, "MGET");
            if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)(end - base)) {
                fprintf(stderr, "jqload: MGET: unexpected reply\n");
                return 1;
            }
            for (long i = base; i < end; i++) {
                redisReply *e = r->element[i - base];
                if (e->type == REDIS_REPLY_STRING) parse_doc(scheme, e->str, e->len, &outs[i]);
            }
            freeReplyObject(r);
            free(av);
            free(keys);
        }
    }
    redisFree(c);
    long found = 0, ok = 0, failed = 0, bad_words = 0, bad_times = 0;
    double first_start = 0, last_finish = 0;
    double *ls = malloc(sizeof(double) * (size_t)(n + 1)), *lf = malloc(sizeof(double) * (size_t)(n + 1));
    char first_error[128] = "";
    for (long i = 0; i < n; i++) {
        outcome *o = &outs[i];
        ls[i] = lf[i] = INFINITY;
        if (!o->found) continue;
        found++;
        if (!o->ok) {
            failed++;
            if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", o->err);
            continue;
        }
        ok++;
        if (o->start <= 0 || o->finish <= 0) {
            bad_times++;
            continue;
        }
        /* rq keeps its results pickled: its word counts are not checked here. */
        if (expect_words >= 0 && strcmp(scheme, "rq") != 0 && o->words != expect_words) bad_words++;
        ls[i] = (o->start - t0s[i]) * 1e3;
        lf[i] = (o->finish - t0s[i]) * 1e3;
        if (first_start == 0 || o->start < first_start) first_start = o->start;
        if (o->finish > last_finish) last_finish = o->finish;
    }
    qsort(ls, (size_t)n, sizeof *ls, cmp_double);
    qsort(lf, (size_t)n, sizeof *lf, cmp_double);
    double window_s = last_finish - first_start;
    double t0min = n ? t0s[0] : 0;
    json_t *err = json_string(first_error);
    char *e = json_dumps(err, JSON_ENCODE_ANY);
    printf("{\"scheme\":\"%s\",\"n\":%ld,\"found\":%ld,\"ok\":%ld,\"failed\":%ld,\"bad_times\":%ld,"
           "\"bad_words\":%ld,\"first_start\":%.6f,\"last_finish\":%.6f,\"throughput\":%.1f,"
           "\"first_t0\":%.6f,\"first_error\":%s",
           scheme, n, found, ok, failed, bad_times, bad_words, first_start, last_finish,
           window_s > 0 ? (double)ok / window_s : 0, t0min, e ? e : "\"\"");
    const char *names[] = {"start", "finish"};
    double *arrs[] = {ls, lf};
    const double ps[] = {50, 99, 99.9, 100};
    const char *pn[] = {"p50", "p99", "p999", "max"};
    for (int a = 0; a < 2; a++) {
        printf(",\"%s\":{", names[a]);
        for (int k = 0; k < 4; k++) {
            double v = pctl(arrs[a], n, ps[k]);
            if (isfinite(v)) printf("%s\"%s\":%.4f", k ? "," : "", pn[k], v);
            else printf("%s\"%s\":null", k ? "," : "", pn[k]);
        }
        printf("}");
    }
    printf("}\n");
    free(e);
    json_decref(err);
    free(ls);
    free(lf);
    free(t0s);
    free(outs);
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
    else if (argc >= 2 && !strcmp(argv[1], "push"))
        rc = cmd_push(argc, argv);
    else if (argc >= 2 && !strcmp(argv[1], "results"))
        rc = cmd_results(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: jqload enqueue SOCK KEY N IDPREFIX HANDLER [ARGS_JSON]\n"
                        "       jqload collect SOCK RESULT_PREFIX IDPREFIX N [EXPECT_WORDS]\n"
                        "       jqload latency SOCK QUEUE_KEY CHANNEL RESULT_PREFIX N WARMUP TIMEOUT_S\n"
                        "       jqload push SOCK TEMPLATE_JSON N IDPREFIX RATE T0FILE\n"
                        "       jqload results SOCK SCHEME IDPREFIX N T0FILE [EXPECT_WORDS]\n");
    return rc;
}
