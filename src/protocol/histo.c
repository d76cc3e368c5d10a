/*
 * Latency histograms (see histo.h): the fixed buckets, a batch's
 * increments aggregated in C before the commit sends them, and reading them
 * back for /metrics and the dashboard.
 */
#include "protocol/histo.h"

#include <math.h>
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

/* ---- a batch's increments ---- */

/* One distinct field of a batch: a bucket (bucket >= 0) or a sum (-1). */
typedef struct cell {
    const char *handler; /* borrowed from the outcome */
    enum jobq_histo_kind kind;
    int bucket;
    unsigned long long count;
    double sum;
} cell;

typedef struct cells {
    cell *c;
    size_t n, cap;
} cells;

/* The cell of (handler, kind, bucket), added when new; NULL without memory. */
static cell *cell_of(cells *cs, const char *handler, enum jobq_histo_kind kind, int bucket) {
    for (size_t i = 0; i < cs->n; i++) {
        cell *c = &cs->c[i];
        if (c->kind == kind && c->bucket == bucket && (c->handler == handler || strcmp(c->handler, handler) == 0))
            return c;
    }
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? 2 * cs->cap : 8;
        cell *grown = realloc(cs->c, cap * sizeof *grown);
        if (!grown) return NULL;
        cs->c = grown;
        cs->cap = cap;
    }
    cs->c[cs->n] = (cell){handler, kind, bucket, 0, 0};
    return &cs->c[cs->n++];
}

static int observe(cells *cs, const char *handler, enum jobq_histo_kind kind, double seconds) {
    if (!(seconds >= 0)) return 0; /* not observed (or NaN) */
    cell *b = cell_of(cs, handler, kind, jobq_histo_bucket(seconds));
    if (!b) return -1;
    b->count++;
    cell *s = cell_of(cs, handler, kind, -1);
    if (!s) return -1;
    s->sum += seconds;
    return 0;
}

void jobq_histo_args_free(char **args, size_t nargs) {
    for (size_t i = 0; args && i < nargs; i++) free(args[i]);
    free(args);
}

int jobq_histo_batch(const jobq_outcome *outs, size_t n, char ***args, size_t *nargs) {
    cells cs = {0};
    *args = NULL;
    *nargs = 0;
    for (size_t i = 0; i < n; i++) {
        const jobq_outcome *o = &outs[i];
        if (!o->handler) continue;
        if (observe(&cs, o->handler, JOBQ_HISTO_WAIT, o->wait_seconds) != 0 ||
            observe(&cs, o->handler, JOBQ_HISTO_RUN, o->run_seconds) != 0)
            goto nomem;
    }
    if (cs.n == 0) return 0;
    char **a = calloc(2 * cs.n, sizeof *a);
    if (!a) goto nomem;
    for (size_t i = 0; i < cs.n; i++) {
        const cell *c = &cs.c[i];
        const char *kind = jobq_histo_kind_name(c->kind);
        const char *le = c->bucket >= 0 ? les[c->bucket] : "sum";
        size_t len = strlen(kind) + strlen(c->handler) + strlen(le) + 3;
        a[2 * i] = malloc(len);
        a[2 * i + 1] = malloc(32);
        if (!a[2 * i] || !a[2 * i + 1]) {
            jobq_histo_args_free(a, 2 * cs.n);
            goto nomem;
        }
        snprintf(a[2 * i], len, "%s|%s|%s", kind, c->handler, le);
        if (c->bucket >= 0) snprintf(a[2 * i + 1], 32, "%llu", c->count);
        else snprintf(a[2 * i + 1], 32, "%.9f", c->sum);
    }
    *args = a;
    *nargs = 2 * cs.n;
    free(cs.c);
    return 0;
nomem:
    free(cs.c);
    return -1;
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
