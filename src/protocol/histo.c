/*
 * Latency histograms (see histo.h): the fixed buckets, increments
 * aggregated in C before a commit sends them, and reading them back for
 * /metrics and the dashboard.
 */
#include "protocol/histo.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/keys.h"
#include "protocol/redis_internal.h"

static const char *const les[JOBQ_HISTO_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1",     "2.5",    "5",     "10",   "30",    "60",   "300", "+Inf",
};
static const double bounds[JOBQ_HISTO_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, INFINITY,
};

const char *jobq_histo_kind_name(enum jobq_histo_kind kind) { return kind == JOBQ_HISTO_WAIT ? "wait" : "run"; }

double jobq_histo_bound(int i) { return i >= 0 && i < JOBQ_HISTO_BUCKETS ? bounds[i] : INFINITY; }

const char *jobq_histo_le(int i) { return i >= 0 && i < JOBQ_HISTO_BUCKETS ? les[i] : "+Inf"; }

int jobq_histo_bucket(double seconds) {
    int i = 0;
    while (i < JOBQ_HISTO_BUCKETS - 1 && !(seconds <= bounds[i])) i++;
    return i;
}

/* ---- increments gathered before a commit sends them ---- */

/* One distinct field: a bucket (bucket >= 0) or a sum (-1). */
struct jobq_histo_cell {
    char *handler; /* owned */
    enum jobq_histo_kind kind;
    int bucket;
    unsigned long long count;
    double sum;
};

/* The cell of (handler, kind, bucket), added when new; NULL without memory. */
static struct jobq_histo_cell *cell_of(jobq_histo_acc *a, const char *handler, enum jobq_histo_kind kind,
                                       int bucket) {
    for (size_t i = 0; i < a->n; i++) {
        struct jobq_histo_cell *c = &a->cells[i];
        if (c->kind == kind && c->bucket == bucket && strcmp(c->handler, handler) == 0) return c;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 8;
        struct jobq_histo_cell *grown = realloc(a->cells, cap * sizeof *grown);
        if (!grown) return NULL;
        a->cells = grown;
        a->cap = cap;
    }
    char *copy = strdup(handler);
    if (!copy) return NULL;
    a->cells[a->n] = (struct jobq_histo_cell){copy, kind, bucket, 0, 0};
    return &a->cells[a->n++];
}

static int observe(jobq_histo_acc *a, const char *handler, enum jobq_histo_kind kind, double seconds) {
    if (!(seconds >= 0)) return 0; /* not observed (or NaN) */
    struct jobq_histo_cell *b = cell_of(a, handler, kind, jobq_histo_bucket(seconds));
    if (!b) return -1;
    b->count++;
    struct jobq_histo_cell *s = cell_of(a, handler, kind, -1);
    if (!s) return -1;
    s->sum += seconds;
    return 0;
}

int jobq_histo_add(jobq_histo_acc *a, const jobq_outcome *outs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const jobq_outcome *o = &outs[i];
        if (!o->handler) continue;
        if (observe(a, o->handler, JOBQ_HISTO_WAIT, o->wait_seconds) != 0 ||
            observe(a, o->handler, JOBQ_HISTO_RUN, o->run_seconds) != 0)
            return -1;
    }
    return 0;
}

void jobq_histo_clear(jobq_histo_acc *a) {
    for (size_t i = 0; i < a->n; i++) free(a->cells[i].handler);
    a->n = 0;
}

void jobq_histo_acc_fini(jobq_histo_acc *a) {
    jobq_histo_clear(a);
    free(a->cells);
    memset(a, 0, sizeof *a);
}

void jobq_histo_args_free(char **args, size_t nargs) {
    for (size_t i = 0; args && i < nargs; i++) free(args[i]);
    free(args);
}

int jobq_histo_args(const jobq_histo_acc *a, char ***args, size_t *nargs) {
    *args = NULL;
    *nargs = 0;
    if (a->n == 0) return 0;
    char **out = calloc(2 * a->n, sizeof *out);
    if (!out) return -1;
    for (size_t i = 0; i < a->n; i++) {
        const struct jobq_histo_cell *c = &a->cells[i];
        const char *kind = jobq_histo_kind_name(c->kind);
        const char *le = c->bucket >= 0 ? les[c->bucket] : "sum";
        size_t len = strlen(kind) + strlen(c->handler) + strlen(le) + 3;
        out[2 * i] = malloc(len);
        out[2 * i + 1] = malloc(32);
        if (!out[2 * i] || !out[2 * i + 1]) {
            jobq_histo_args_free(out, 2 * a->n);
            return -1;
        }
        snprintf(out[2 * i], len, "%s|%s|%s", kind, c->handler, le);
        if (c->bucket >= 0) snprintf(out[2 * i + 1], 32, "%llu", c->count);
        else snprintf(out[2 * i + 1], 32, "%.9f", c->sum);
    }
    *args = out;
    *nargs = 2 * a->n;
    return 0;
}

int jobq_histo_send(jobq_redis *r, const char *key, const jobq_histo_acc *a, jobq_err *err) {
    char **args;
    size_t nargs;
    if (jobq_histo_args(a, &args, &nargs) != 0) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    size_t n = nargs / 2;
    jobq_cmd *cmds = calloc(n ? n : 1, sizeof *cmds);
    const char *(*argvs)[4] = calloc(n ? n : 1, sizeof *argvs);
    redisReply **replies = calloc(n ? n : 1, sizeof *replies);
    int rc = -1;
    if (!cmds || !argvs || !replies) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) { /* args are in cell order */
        bool sum = a->cells[i].bucket < 0;
        const char *argv[] = {sum ? "HINCRBYFLOAT" : "HINCRBY", key, args[2 * i], args[2 * i + 1]};
        memcpy(argvs[i], argv, sizeof argv);
        cmds[i] = (jobq_cmd){.route = key, .argc = 4, .argv = argvs[i]};
    }
    if (jobq_redis_pipeline(r, err, "adding to the histograms", cmds, n, 0, replies) == 0) {
        for (size_t i = 0; i < n; i++) freeReplyObject(replies[i]); /* refusals too: metrics only */
        rc = 0;
    }
out:
    free(cmds);
    free(argvs);
    free(replies);
    jobq_histo_args_free(args, nargs);
    return rc;
}

int jobq_histo_batch(const jobq_outcome *outs, size_t n, char ***args, size_t *nargs) {
    jobq_histo_acc a = {0};
    int rc = jobq_histo_add(&a, outs, n) == 0 ? jobq_histo_args(&a, args, nargs) : -1;
    jobq_histo_acc_fini(&a);
    return rc;
}

/* ---- reading ---- */

typedef struct series_list {
    jobq_histo_series *s;
    size_t n, cap;
} series_list;

void jobq_histo_free(jobq_histo_series *s, size_t n) {
    for (size_t i = 0; s && i < n; i++) free(s[i].handler);
    free(s);
}

/* The series of (queue, kind, handler) in l, added when new (from index
 * first on: the series of this queue); NULL without memory. */
static jobq_histo_series *series_of(series_list *l, size_t first, size_t queue, enum jobq_histo_kind kind,
                                    const char *handler, size_t hlen) {
    for (size_t i = first; i < l->n; i++) {
        jobq_histo_series *s = &l->s[i];
        if (s->kind == kind && strlen(s->handler) == hlen && memcmp(s->handler, handler, hlen) == 0) return s;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        jobq_histo_series *grown = realloc(l->s, cap * sizeof *grown);
        if (!grown) return NULL;
        l->s = grown;
        l->cap = cap;
    }
    jobq_histo_series *s = &l->s[l->n];
    memset(s, 0, sizeof *s);
    if (!(s->handler = malloc(hlen + 1))) return NULL;
    memcpy(s->handler, handler, hlen);
    s->handler[hlen] = '\0';
    s->queue = queue;
    s->kind = kind;
    l->n++;
    return s;
}

/* Add one field and value of queue's hash to l. 0 (a field jobq does not
 * know is skipped), or -1 without memory. */
static int add_field(series_list *l, size_t first, size_t queue, const redisReply *f, const redisReply *v) {
    if (!jobq_reply_is_string(f) || !jobq_reply_is_string(v)) return 0;
    const char *s = f->str, *end = f->str + f->len;
    const char *bar1 = memchr(s, '|', f->len);
    const char *bar2 = NULL;
    for (const char *p = end; p-- > s;)
        if (*p == '|') {
            bar2 = p;
            break;
        }
    if (!bar1 || bar2 == bar1) return 0;
    enum jobq_histo_kind kind;
    if (bar1 - s == 4 && memcmp(s, "wait", 4) == 0) kind = JOBQ_HISTO_WAIT;
    else if (bar1 - s == 3 && memcmp(s, "run", 3) == 0) kind = JOBQ_HISTO_RUN;
    else return 0;
    char le[32], num[64];
    size_t lelen = (size_t)(end - bar2 - 1);
    if (lelen == 0 || lelen >= sizeof le || v->len >= sizeof num) return 0;
    memcpy(le, bar2 + 1, lelen);
    le[lelen] = '\0';
    memcpy(num, v->str, v->len);
    num[v->len] = '\0';
    char *rest;
    double value = strtod(num, &rest);
    if (rest == num || *rest || !isfinite(value) || value < 0) return 0;
    int bucket = -1;
    if (strcmp(le, "sum") != 0) {
        double bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, &rest);
        if (bound != INFINITY && (rest == le || *rest)) return 0;
        bucket = jobq_histo_bucket(bound); /* a bound of another jobq version: the next one up */
    }
    jobq_histo_series *hs = series_of(l, first, queue, kind, bar1 + 1, (size_t)(bar2 - bar1 - 1));
    if (!hs) return -1;
    if (bucket < 0) {
        hs->sum += value;
    } else {
        hs->buckets[bucket] += (unsigned long long)value;
        hs->count += (unsigned long long)value;
    }
    return 0;
}

static int cmp_series(const void *a, const void *b) {
    const jobq_histo_series *x = a, *y = b;
    if (x->queue != y->queue) return x->queue < y->queue ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    return strcmp(x->handler, y->handler);
}

int jobq_histo_read(jobq_redis *r, const char *prefix, const char *const *queues, size_t nq,
                    jobq_histo_series **out, size_t *n, jobq_err *err) {
    *out = NULL;
    *n = 0;
    if (nq == 0) return 0;
    char (*keys)[JOBQ_QKEY_MAX] = calloc(nq, sizeof *keys);
    const char *(*argvs)[2] = calloc(nq, sizeof *argvs);
    jobq_cmd *cmds = calloc(nq, sizeof *cmds);
    redisReply **replies = calloc(nq, sizeof *replies);
    series_list l = {0};
    int rc = -1;
    if (!keys || !argvs || !cmds || !replies) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nq; i++) {
        jobq_key(keys[i], sizeof keys[i], prefix, JOBQ_KEY_HISTO, queues[i], NULL);
        argvs[i][0] = "HGETALL";
        argvs[i][1] = keys[i];
        cmds[i] = (jobq_cmd){.route = keys[i], .argc = 2, .argv = argvs[i]};
    }
    if (jobq_redis_pipeline(r, err, "HGETALL histo", cmds, nq, 0, replies) != 0) goto out;
    rc = 0;
    for (size_t i = 0; i < nq; i++) {
        const redisReply *h = replies[i];
        size_t first = l.n;
        /* A key of another type (an error reply) reads as no histogram. */
        for (size_t j = 0; rc == 0 && h->type == REDIS_REPLY_ARRAY && j + 1 < h->elements; j += 2)
            if (add_field(&l, first, i, h->element[j], h->element[j + 1]) != 0) rc = -1;
        freeReplyObject(replies[i]);
    }
    if (rc != 0) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        jobq_histo_free(l.s, l.n);
    } else {
        if (l.n) qsort(l.s, l.n, sizeof *l.s, cmp_series);
        *out = l.s;
        *n = l.n;
    }
out:
    free(keys);
    free(argvs);
    free(cmds);
    free(replies);
    return rc;
}
