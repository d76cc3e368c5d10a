/*
 * Latency histograms by queue and handler: how long jobs waited (enqueued,
 * or queued again for a retry, to handler start) and ran (handler start to
 * end).
 * The daemons keep them in each queue's hash <prefix>:{<q>}:histo, in the
 * queue's hash slot, written by the commit script with one increment per
 * distinct field of what a worker gathered since its last such commit (a
 * second at most; never a key per job). Fields:
 *   "<kind>|<handler>|<le>"  observations in the bucket whose upper bound is
 *                            le (one of the fixed bounds below; not
 *                            cumulative: the reader adds them up)
 *   "<kind>|<handler>|sum"   the seconds observed, summed
 * where kind is "wait" or "run". The count is the sum of the buckets.
 */
#ifndef JOBQ_HISTO_H
#define JOBQ_HISTO_H

#include <stddef.h>

#include "core/err.h"
#include "protocol/outcome.h"
#include "protocol/redis.h"

/* The fixed buckets (seconds), the last +Inf. */
#define JOBQ_HISTO_BUCKETS 17

enum jobq_histo_kind { JOBQ_HISTO_WAIT, JOBQ_HISTO_RUN, JOBQ_HISTO_KINDS };

/* "wait" or "run". */
const char *jobq_histo_kind_name(enum jobq_histo_kind kind);

/* Upper bound of bucket i (INFINITY for the last) and its label as
 * Prometheus writes it ("0.005", "+Inf"). Static. */
double jobq_histo_bound(int i);
const char *jobq_histo_le(int i);

/* The bucket an observation of seconds falls in. */
int jobq_histo_bucket(double seconds);

/* Increments gathered over one or more batches, one per distinct field,
 * until a commit sends them. Zero-initialise; release with
 * jobq_histo_acc_fini. */
typedef struct jobq_histo_acc {
    struct jobq_histo_cell *cells; /* owned */
    size_t n, cap;
} jobq_histo_acc;

/* Add the observations of n outcomes (those with a handler: they ran).
 * 0, or -1 when memory ran out (some may have been added). */
int jobq_histo_add(jobq_histo_acc *a, const jobq_outcome *outs, size_t n);
/* The increments of a as (field, increment) pairs, as jobq_histo_batch. */
int jobq_histo_args(const jobq_histo_acc *a, char ***args, size_t *nargs);
/* Add what a holds to the histogram hash key (one queue's), without a
 * commit: for a worker with nothing to commit. A key of another type is
 * left alone (metrics never block jobs). 0, or -1 with err (JOBQ_E_IO). */
int jobq_histo_send(jobq_redis *r, const char *key, const jobq_histo_acc *a, jobq_err *err);
/* Forget what a holds (sent, or given up). */
void jobq_histo_clear(jobq_histo_acc *a);
void jobq_histo_acc_fini(jobq_histo_acc *a);

/*
 * The histogram increments of a batch of outcomes: pairs of (field,
 * increment) in *args (2 * *nargs / 2 strings; each malloc'd, free with
 * jobq_histo_args_free), one pair per distinct field; sums are decimal
 * fractions (HINCRBYFLOAT), buckets integers (HINCRBY). An outcome counts
 * when it has a handler (it ran). 0, or -1 when memory ran out (nothing
 * to free then).
 */
int jobq_histo_batch(const jobq_outcome *outs, size_t n, char ***args, size_t *nargs);
void jobq_histo_args_free(char **args, size_t nargs);

/* One histogram read back: a kind of one handler of one queue. */
typedef struct jobq_histo_series {
    size_t queue;                                 /* index into the queues asked for */
    enum jobq_histo_kind kind;
    char *handler;                                /* owned */
    unsigned long long buckets[JOBQ_HISTO_BUCKETS]; /* per bucket, not cumulative */
    unsigned long long count;                     /* sum of the buckets */
    double sum;                                   /* seconds */
} jobq_histo_series;

/*
 * Read the histograms of nq queues (one HGETALL each, pipelined per node),
 * sorted by queue index, kind and handler. A histo key of another type, a
 * field jobq does not know or a value that is not a number are skipped.
 * 0 with *out (count *n; free with jobq_histo_free), or -1 with err.
 */
int jobq_histo_read(jobq_redis *r, const char *prefix, const char *const *queues, size_t nq,
                    jobq_histo_series **out, size_t *n, jobq_err *err);
void jobq_histo_free(jobq_histo_series *s, size_t n);

#endif
