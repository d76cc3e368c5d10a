/*
 * The outcome policy, one for worker and supervisor: given a job and how its
 * attempt ended, decide ok, retry (with backoff and seeded jitter), failed
 * for good, dead-lettered or cancelled, and build every document the commit
 * writes. Out of memory for a needed document means nothing is written and
 * the job stays in flight for redelivery: an outcome is never half built.
 */
#ifndef JOBQ_OUTCOME_H
#define JOBQ_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>

#include "core/job.h"

/* How an attempt ended. */
enum jobq_outcome_cause {
    JOBQ_CAUSE_RAN,       /* the handler returned: ok, or failed per job->failed */
    JOBQ_CAUSE_REJECTED,  /* the payload cannot run (bad JSON, unknown handler): dead at once */
    JOBQ_CAUSE_DIED,      /* its worker died (a crash, a kill, a resource limit) */
    JOBQ_CAUSE_TIMED_OUT, /* the supervisor stopped it for overrunning its timeout */
    JOBQ_CAUSE_CANCELLED, /* jobq cancel */
};

/* What was decided. */
enum jobq_outcome_kind {
    JOBQ_OUTCOME_OK,
    JOBQ_OUTCOME_RETRY,     /* scheduled again after retry_delay */
    JOBQ_OUTCOME_FAILED,    /* failed for good: result, dead entry, "failed" event */
    JOBQ_OUTCOME_REJECTED,  /* never ran: dead entry, "dead" event, a result when it has its own id */
    JOBQ_OUTCOME_CANCELLED, /* result "cancelled", "cancelled" event */
};

typedef struct jobq_outcome_policy {
    double backoff_base; /* seconds: delay = base * 2^(attempt-1), jittered */
    double backoff_max;  /* seconds */
    int poison_limit;    /* a job that took its worker down this often fails for good */
} jobq_outcome_policy;

/* What to write for one job, all in one commit. */
typedef struct jobq_outcome {
    enum jobq_outcome_kind kind;
    double retry_delay;      /* seconds (RETRY) */
    const char *payload;     /* borrowed: the exact in-flight payload to remove */
    size_t payload_len;
    const char *id;          /* borrowed: the result's id; NULL: no result */
    int result_ttl;          /* seconds */
    char *result_json;       /* owned documents; NULL: none */
    char *event_json;
    char *dead_json;
    char *retry_payload;
    double retry_at;         /* Unix seconds (RETRY) */
    const char *unique_id;   /* borrowed: id whose unique hold ends; NULL: none */
    bool finished;           /* counts as processed */
    bool failed;             /* counts as failed */
    const char *handler;     /* borrowed: the handler that ran, for the latency histograms
                              * (protocol/histo.h); NULL when it did not run */
    double wait_seconds;     /* enqueued -> handler start of a first attempt; < 0: not observed */
    double run_seconds;      /* handler start -> end; < 0: not observed */
} jobq_outcome;

/*
 * Decide the outcome of job's attempt and fill out (which borrows from job:
 * keep job alive until out is committed). why: the rejection reason
 * (REJECTED) or how the worker ended (DIED, TIMED_OUT). worker: the worker
 * id for documents. Sets job's error for the failing causes. Returns 0, or
 * -1 when memory ran out: out is then empty and must not be committed.
 */
int jobq_outcome_build(jobq_outcome *out, struct jobq_job *job, enum jobq_outcome_cause cause,
                       const char *why, const jobq_outcome_policy *policy, const char *worker,
                       double now);

/* Free the documents out owns and zero it. */
void jobq_outcome_fini(jobq_outcome *out);

/* "ok", "retrying", "failed", "dead" or "cancelled". */
const char *jobq_outcome_event_name(enum jobq_outcome_kind kind);

#endif
