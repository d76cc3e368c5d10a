/*
 * The job model: a payload as taken from Redis, parsed and validated with
 * jansson, plus the outcome a handler produces. struct jobq_job is what
 * plugins see, opaquely, as `jobq_job`. The documents built from a job
 * (result, event, dead entry, retry payload) are in protocol/documents.h.
 */
#ifndef JOBQ_JOB_H
#define JOBQ_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "jobq/plugin.h"

/* Bounds of the per-job fields (the config's ranges are the same). */
#define JOBQ_JOB_ID_MAX 128           /* bytes */
#define JOBQ_JOB_TIMEOUT_MAX 604800.0 /* seconds */
#define JOBQ_JOB_ATTEMPTS_MAX 1000
#define JOBQ_JOB_RESULT_TTL_MAX 31536000

/* Per-queue defaults for the fields a job may leave out. */
typedef struct jobq_job_defaults {
    double timeout;   /* seconds */
    int max_attempts;
    int result_ttl;   /* seconds */
    long max_payload; /* bytes */
} jobq_job_defaults;

/* jobq's own bookkeeping kept in the payload under "_jobq" across retries:
 * attempts, deaths, enqueued_at, errors, the assigned id, unique. */
#define JOBQ_META_FIELD "_jobq"

struct jobq_job {
    json_t *root;         /* owned: the parsed payload, or NULL when not JSON */
    const char *raw;      /* borrowed: the payload exactly as taken from Redis */
    size_t raw_len;
    const char *queue;    /* borrowed: queue it was taken from */
    const char *id;       /* borrowed from root, or id_buf when assigned */
    bool id_assigned;     /* true when the payload had no id */
    char id_buf[JOBQ_JOB_ID_MAX + 1];
    const char *handler;  /* borrowed from root; NULL when missing */
    json_t *args;         /* borrowed from root; NULL when absent */
    json_t *errors;       /* borrowed from root: earlier attempts' errors, or NULL */
    double timeout;       /* seconds, job field or default */
    int max_attempts;
    int result_ttl;
    int attempt;          /* 1-based number of this attempt */
    int deaths;           /* times this job took its worker down before */
    bool unique;          /* queued by jobq_enqueue_unique: its hold ends with it */
    double enqueued_at;   /* from the payload, else the time it was taken */
    double queued_at;     /* when this attempt was queued again (_jobq.queued_at: a retry's
                           * due time, a dead job's retry), else 0 */
    double started_at, finished_at, deadline; /* Unix seconds */
    /* outcome, set by the handler through the plugin API */
    json_t *result;       /* owned, NULL = JSON null */
    char *error;          /* owned, NULL unless failed */
    bool failed;
    char *args_json;      /* owned cache for job_args_json */
};

/*
 * Parse and validate payload raw (borrowed: it must outlive the job) taken
 * from queue. On success returns 0. On failure returns -1 with err saying why
 * (not JSON, not an object, no string handler, a field out of range, a
 * forged "_jobq"...); job is then still filled as far as it could be (id
 * when the payload had a valid one), so the caller can dead-letter it and
 * write a result under that id. err->code JOBQ_E_NOMEM means memory ran out
 * while decoding: the payload was not judged and must not be dead-lettered
 * (leave it in flight). Either way release with jobq_job_fini.
 * Integers beyond 64 bits are kept as reals.
 */
int jobq_job_parse(struct jobq_job *job, const char *raw, size_t raw_len, const char *queue,
                   const jobq_job_defaults *defaults, double now, jobq_err *err);

/* Release what job owns. */
void jobq_job_fini(struct jobq_job *job);

/* Mark the job failed with a message (copied); replaces any earlier one. */
void jobq_job_set_failed(struct jobq_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A valid job id or handler name: 1..max bytes, no control characters
 * (NUL included). */
bool jobq_job_valid_name(const char *s, size_t len, size_t max);

/* Fill buf (>= 33 bytes) with a new random 32-hex-digit id. */
void jobq_job_new_id(char *buf, size_t size);

/* Host side of the plugin API: the job accessors of struct jobq_api. */
const char *jobq_job_api_id(const jobq_job *job);
int jobq_job_api_attempt(const jobq_job *job);
const char *jobq_job_api_args_json(const jobq_job *job);
const char *jobq_job_api_arg_string(const jobq_job *job, const char *key);
int jobq_job_api_arg_number(const jobq_job *job, const char *key, double *out);
double jobq_job_api_time_left(const jobq_job *job);
int jobq_job_api_set_result_json(jobq_job *job, const char *json);
int jobq_job_api_fail(jobq_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Seconds since the epoch, fractional. */
double jobq_now(void);
/* Seconds on a clock that never jumps (CLOCK_MONOTONIC), for intervals. */
double jobq_monotonic(void);

#endif
