/*
 * Job model: parse and validate a payload (jansson) and hold the handler's
 * outcome. Pure: no I/O besides reading the clock and the random source for
 * ids. Every field a producer (or a forger) controls is bounded here.
 */
#include "core/job.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json_writer.h"
#include "core/random.h"

double jobq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double jobq_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void jobq_job_new_id(char *buf, size_t size) {
    unsigned long long a = jobq_random_u64(), b = jobq_random_u64();
    snprintf(buf, size, "%016llx%016llx", a, b);
}

bool jobq_job_valid_name(const char *s, size_t len, size_t max) {
    if (!s || len == 0 || len > max) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static bool valid_string(json_t *v, size_t max) {
    return json_is_string(v) && jobq_job_valid_name(json_string_value(v), json_string_length(v), max);
}

static int positive_number(json_t *v, double max, double *out) {
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    if (!(d > 0) || !isfinite(d) || d > max) return -1;
    *out = d;
    return 0;
}

/* An integer in [min, max] or -1. */
static int bounded_int(json_t *v, long long min, long long max, int *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) return -1;
    *out = (int)n;
    return 0;
}

/* jansson reports an allocation that failed while decoding as a syntax
 * error ("invalid token", "string or '}' expected"), or with no message at
 * all: its allocations go through these, which note a failure, so that a
 * valid payload met by a lack of memory is not judged malformed. */
static _Thread_local bool decode_out_of_memory;

static void *noting_malloc(size_t size) {
    void *p = malloc(size);
    if (!p) decode_out_of_memory = true;
    return p;
}

static void noting_free(void *p) { free(p); }

static void install_noting_alloc(void) { json_set_alloc_funcs(noting_malloc, noting_free); }

/* Decode raw; an integer too large for 64 bits is read as a real instead
 * of refusing the whole payload. NULL with *nomem set when memory ran out. */
static json_t *load(const char *raw, size_t len, json_error_t *jerr, bool *nomem) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_noting_alloc);
    size_t flags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY;
    decode_out_of_memory = false;
    /* jansson leaves the error code unset when an insertion fails. */
    memset(jerr, 0, sizeof *jerr);
    json_t *root = json_loadb(raw, len, flags, jerr);
    if (!root && !decode_out_of_memory && json_error_code(jerr) == json_error_numeric_overflow)
        root = json_loadb(raw, len, flags | JSON_DECODE_INT_AS_REAL, jerr);
    *nomem = !root && (decode_out_of_memory || json_error_code(jerr) == json_error_out_of_memory);
    return root;
}

/* "_jobq", written by jobq itself when it retries a job; anything else in
 * it is forged and refused rather than trusted. */
static int read_meta(struct jobq_job *job, json_t *meta, jobq_err *err) {
    if (!meta) return 0;
    const char *bad = NULL;
    json_t *v;
    double d;
    if (!json_is_object(meta)) bad = "must be an object";
    else if ((v = json_object_get(meta, "attempts")) && bounded_int(v, 0, JOBQ_JOB_ATTEMPTS_MAX, &job->attempt) != 0)
        bad = "attempts must be an integer from 0 to 1000";
    else if ((v = json_object_get(meta, "deaths")) && bounded_int(v, 0, JOBQ_JOB_ATTEMPTS_MAX, &job->deaths) != 0)
        bad = "deaths must be an integer from 0 to 1000";
    else if ((v = json_object_get(meta, "id")) && !valid_string(v, JOBQ_JOB_ID_MAX))
        bad = "id must be a string of 1 to 128 bytes without control characters";
    else if ((v = json_object_get(meta, "enqueued_at")) && positive_number(v, 1e12, &d) != 0)
        bad = "enqueued_at must be a positive number";
    else if ((v = json_object_get(meta, "queued_at")) && positive_number(v, 1e12, &d) != 0)
        bad = "queued_at must be a positive number";
    else if ((v = json_object_get(meta, "unique")) && !json_is_boolean(v))
        bad = "unique must be true or false";
    else if ((v = json_object_get(meta, "errors")) && (!json_is_array(v) || json_array_size(v) > 1000))
        bad = "errors must be an array of at most 1000 entries";
    if (bad) {
        jobq_err_set(err, JOBQ_E_INVALID, "'%s' is jobq's own and was altered: %s", JOBQ_META_FIELD, bad);
        return -1;
    }
    if (json_object_get(meta, "attempts")) job->attempt += 1; /* attempts done before this one */
    job->errors = json_object_get(meta, "errors");
    job->unique = json_is_true(json_object_get(meta, "unique"));
    if (positive_number(json_object_get(meta, "enqueued_at"), 1e12, &d) == 0) job->enqueued_at = d;
    if (positive_number(json_object_get(meta, "queued_at"), 1e12, &d) == 0) job->queued_at = d;
    return 0;
}

/* The id: the payload's own, else the one assigned on an earlier attempt,
 * else a new random one. */
static int read_id(struct jobq_job *job, jobq_err *err) {
    json_t *id = json_object_get(job->root, "id");
    if (valid_string(id, JOBQ_JOB_ID_MAX)) {
        job->id = json_string_value(id);
        return 0;
    }
    json_t *meta = json_object_get(job->root, JOBQ_META_FIELD);
    const char *assigned = json_is_object(meta) && valid_string(json_object_get(meta, "id"), JOBQ_JOB_ID_MAX)
                               ? json_string_value(json_object_get(meta, "id"))
                               : NULL;
    if (assigned) snprintf(job->id_buf, sizeof job->id_buf, "%s", assigned);
    else jobq_job_new_id(job->id_buf, sizeof job->id_buf);
    job->id = job->id_buf;
    job->id_assigned = true;
    if (id && !json_is_null(id)) {
        jobq_err_set(err, JOBQ_E_INVALID, "'id' must be a string of 1 to 128 bytes without control characters");
        return -1;
    }
    return 0;
}

static int read_handler(struct jobq_job *job, jobq_err *err) {
    json_t *handler = json_object_get(job->root, "handler");
    if (!handler) {
        jobq_err_set(err, JOBQ_E_INVALID, "payload has no 'handler' field");
        return -1;
    }
    if (!valid_string(handler, 1024)) {
        jobq_err_set(err, JOBQ_E_INVALID, "'handler' must be a non-empty string without control characters");
        return -1;
    }
    job->handler = json_string_value(handler);
    return 0;
}

/* timeout, max_attempts and result_ttl: the job's, within bounds. */
static int read_limits(struct jobq_job *job, jobq_err *err) {
    json_t *v;
    if ((v = json_object_get(job->root, "timeout")) && !json_is_null(v) &&
        positive_number(v, JOBQ_JOB_TIMEOUT_MAX, &job->timeout) != 0) {
        jobq_err_set(err, JOBQ_E_INVALID, "'timeout' must be a positive number of seconds, at most %g",
                     JOBQ_JOB_TIMEOUT_MAX);
        return -1;
    }
    if ((v = json_object_get(job->root, "max_attempts")) && !json_is_null(v) &&
        bounded_int(v, 1, JOBQ_JOB_ATTEMPTS_MAX, &job->max_attempts) != 0) {
        jobq_err_set(err, JOBQ_E_INVALID, "'max_attempts' must be an integer from 1 to %d", JOBQ_JOB_ATTEMPTS_MAX);
        return -1;
    }
    if ((v = json_object_get(job->root, "result_ttl")) && !json_is_null(v) &&
        bounded_int(v, 1, JOBQ_JOB_RESULT_TTL_MAX, &job->result_ttl) != 0) {
        jobq_err_set(err, JOBQ_E_INVALID, "'result_ttl' must be an integer number of seconds from 1 to %d",
                     JOBQ_JOB_RESULT_TTL_MAX);
        return -1;
    }
    return 0;
}

int jobq_job_parse(struct jobq_job *job, const char *raw, size_t raw_len, const char *queue,
                   const jobq_job_defaults *defaults, double now, jobq_err *err) {
    memset(job, 0, sizeof *job);
    job->raw = raw;
    job->raw_len = raw_len;
    job->queue = queue;
    job->timeout = defaults->timeout;
    job->max_attempts = defaults->max_attempts;
    job->result_ttl = defaults->result_ttl;
    job->attempt = 1;
    job->enqueued_at = now;

    if (defaults->max_payload > 0 && raw_len > (size_t)defaults->max_payload) {
        jobq_err_set(err, JOBQ_E_INVALID, "payload is %zu bytes, over the limit of %ld (max_payload)",
                     raw_len, defaults->max_payload);
        return -1;
    }
    json_error_t jerr;
    bool nomem;
    job->root = load(raw, raw_len, &jerr, &nomem);
    if (nomem) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory decoding the payload");
        return -1;
    }
    if (!job->root) {
        jobq_err_set(err, JOBQ_E_INVALID, "payload is not valid JSON: %s at line %d column %d", jerr.text,
                     jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(job->root)) {
        jobq_err_set(err, JOBQ_E_INVALID, "payload is not a JSON object");
        return -1;
    }
    if (read_id(job, err) != 0 || read_meta(job, json_object_get(job->root, JOBQ_META_FIELD), err) != 0 ||
        read_handler(job, err) != 0 || read_limits(job, err) != 0)
        return -1;
    job->args = json_object_get(job->root, "args");
    double d;
    if (positive_number(json_object_get(job->root, "enqueued_at"), 1e12, &d) == 0) job->enqueued_at = d;
    return 0;
}

void jobq_job_fini(struct jobq_job *job) {
    json_decref(job->root);
    json_decref(job->result);
    free(job->error);
    free(job->args_json);
    memset(job, 0, sizeof *job);
}

static void set_failed_v(struct jobq_job *job, const char *fmt, va_list ap) {
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    free(job->error);
    job->error = msg ? msg : strdup("handler failed");
    job->failed = true;
}

void jobq_job_set_failed(struct jobq_job *job, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_failed_v(job, fmt, ap);
    va_end(ap);
}

/* ---- plugin API accessors ---- */

const char *jobq_job_api_id(const jobq_job *job) { return job->id; }

int jobq_job_api_attempt(const jobq_job *job) { return job->attempt; }

const char *jobq_job_api_args_json(const jobq_job *job) {
    struct jobq_job *j = (struct jobq_job *)job; /* lazily filled cache */
    if (!j->args || json_is_null(j->args)) return "null";
    if (!j->args_json) j->args_json = jobq_json_dumps(j->args, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!j->args_json) {
        /* Out of memory. The handler gets "null" (never NULL), and the
         * attempt fails whatever it returns: it did not see its args. */
        jobq_job_set_failed(j, "out of memory encoding the job's args");
        return "null";
    }
    return j->args_json;
}

const char *jobq_job_api_arg_string(const jobq_job *job, const char *key) {
    return json_string_value(json_object_get(job->args, key));
}

int jobq_job_api_arg_number(const jobq_job *job, const char *key, double *out) {
    json_t *v = json_object_get(job->args, key);
    if (!json_is_number(v)) return JOBQ_ERR;
    *out = json_number_value(v);
    return JOBQ_OK;
}

double jobq_job_api_time_left(const jobq_job *job) {
    double left = job->deadline - jobq_now();
    return left > 0 ? left : 0;
}

int jobq_job_api_set_result_json(jobq_job *job, const char *json) {
    if (!json) return JOBQ_ERR;
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    if (!v) return JOBQ_ERR;
    json_decref(job->result);
    job->result = v;
    return JOBQ_OK;
}

int jobq_job_api_fail(jobq_job *job, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_failed_v(job, fmt, ap);
    va_end(ap);
    return JOBQ_ERR;
}
