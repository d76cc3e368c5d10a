/*
 * Job model: parse/validate a payload (jansson), hold the handler's outcome,
 * and build the JSON documents derived from a job. Pure: no I/O besides
 * reading the clock and the random source for ids.
 */
#include "job.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <resolv.h>

#include "json_writer.h"

double jobq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void jobq_job_new_id(char *buf, size_t size) {
    /* Per-process generator seeded from the kernel once: 128 random bits per
     * id without a syscall per job. Re-seeded when the pid changes (fork). */
    static unsigned long long state[2];
    static pid_t seeded_pid;
    pid_t pid = getpid();
    if (seeded_pid != pid) {
        if (getrandom(state, sizeof state, 0) != sizeof state) {
            state[0] = (unsigned long long)time(NULL) ^ ((unsigned long long)pid << 32);
            state[1] = (unsigned long long)clock() * 2654435761ULL + 1;
        }
        seeded_pid = pid;
    }
    unsigned long long out[2];
    for (int i = 0; i < 2; i++) { /* xorshift128+ */
        unsigned long long s1 = state[0];
        const unsigned long long s0 = state[1];
        state[0] = s0;
        s1 ^= s1 << 23;
        state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        out[i] = state[1] + s0;
    }
    snprintf(buf, size, "%016llx%016llx", out[0], out[1]);
}

static int json_positive_number(json_t *v, double *out) {
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    if (!(d > 0) || !isfinite(d)) return -1;
    *out = d;
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
    job->root = json_loadb(raw, raw_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (!job->root) {
        jobq_err_set(err, JOBQ_E_INVALID, "payload is not valid JSON: %s at line %d column %d",
                     jerr.text, jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(job->root)) {
        jobq_err_set(err, JOBQ_E_INVALID, "payload is not a JSON object");
        return -1;
    }
    json_t *id = json_object_get(job->root, "id");
    if (json_is_string(id) && json_string_length(id) > 0 && json_string_length(id) <= 128) {
        job->id = json_string_value(id);
    } else if (id && !json_is_null(id)) {
        jobq_err_set(err, JOBQ_E_INVALID, "'id' must be a non-empty string of at most 128 bytes");
        return -1;
    }
    json_t *meta = json_object_get(job->root, JOBQ_META_FIELD);
    if (!job->id) {
        /* A retried job keeps the id assigned on its first attempt. */
        const char *assigned = json_string_value(json_object_get(meta, "id"));
        if (assigned && strlen(assigned) < sizeof job->id_buf) {
            snprintf(job->id_buf, sizeof job->id_buf, "%s", assigned);
        } else {
            jobq_job_new_id(job->id_buf, sizeof job->id_buf);
        }
        job->id = job->id_buf;
        job->id_assigned = true;
    }
    json_t *handler = json_object_get(job->root, "handler");
    if (!handler) {
        jobq_err_set(err, JOBQ_E_INVALID, "payload has no 'handler' field");
        return -1;
    }
    if (!json_is_string(handler) || json_string_length(handler) == 0) {
        jobq_err_set(err, JOBQ_E_INVALID, "'handler' must be a non-empty string");
        return -1;
    }
    job->handler = json_string_value(handler);
    job->args = json_object_get(job->root, "args");

    double d;
    json_t *v;
    if ((v = json_object_get(job->root, "timeout")) && !json_is_null(v)) {
        if (json_positive_number(v, &d) != 0) {
            jobq_err_set(err, JOBQ_E_INVALID, "'timeout' must be a positive number of seconds");
            return -1;
        }
        job->timeout = d;
    }
    if ((v = json_object_get(job->root, "max_attempts")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000) {
            jobq_err_set(err, JOBQ_E_INVALID, "'max_attempts' must be an integer from 1 to 1000");
            return -1;
        }
        job->max_attempts = (int)json_integer_value(v);
    }
    if ((v = json_object_get(job->root, "result_ttl")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 31536000) {
            jobq_err_set(err, JOBQ_E_INVALID,
                         "'result_ttl' must be an integer number of seconds from 1 to 31536000");
            return -1;
        }
        job->result_ttl = (int)json_integer_value(v);
    }
    if (json_positive_number(json_object_get(job->root, "enqueued_at"), &d) == 0)
        job->enqueued_at = d;
    else if (json_positive_number(json_object_get(meta, "enqueued_at"), &d) == 0)
        job->enqueued_at = d;
    if (json_is_integer(json_object_get(meta, "attempts")))
        job->attempt = (int)json_integer_value(json_object_get(meta, "attempts")) + 1;
    if (json_is_integer(json_object_get(meta, "deaths")))
        job->deaths = (int)json_integer_value(json_object_get(meta, "deaths"));
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


/* Result and event documents are written once per job: they go through
 * the JSON writer rather than a jansson tree (see json_writer.h). */
char *jobq_job_result_json(const struct jobq_job *job, const char *worker) {
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    jobq_json_writer_string(&w, "id", job->id);
    jobq_json_writer_string(&w, "status", job->failed ? "failed" : "ok");
    jobq_json_writer_value(&w, "result", job->result);
    if (job->failed) jobq_json_writer_string(&w, "error", job->error ? job->error : "failed");
    jobq_json_writer_int(&w, "attempts", job->attempt);
    jobq_json_writer_string(&w, "worker", worker);
    jobq_json_writer_string(&w, "queue", job->queue ? job->queue : "");
    jobq_json_writer_string(&w, "handler", job->handler);
    jobq_json_writer_time(&w, "enqueued_at", job->enqueued_at);
    jobq_json_writer_time(&w, "started_at", job->started_at);
    jobq_json_writer_time(&w, "finished_at", job->finished_at);
    return jobq_json_writer_finish(&w);
}

/* The members every event has, in order, into a begun writer. */
static void event_members(jobq_json_writer *w, const struct jobq_job *job, const char *event,
                          const char *worker, double now) {
    jobq_json_writer_string(w, "event", event);
    jobq_json_writer_string(w, "id", job->id);
    jobq_json_writer_string(w, "queue", job->queue ? job->queue : "");
    jobq_json_writer_string(w, "handler", job->handler);
    jobq_json_writer_int(w, "attempt", job->attempt);
    jobq_json_writer_string(w, "worker", worker);
    jobq_json_writer_time(w, "time", now);
}

char *jobq_job_event_json(const struct jobq_job *job, const char *event, const char *worker,
                          double now) {
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    event_members(&w, job, event, worker, now);
    if (job->failed && job->error) jobq_json_writer_string(&w, "error", job->error);
    return jobq_json_writer_finish(&w);
}

char *jobq_job_progress_json(const struct jobq_job *job, const char *worker, double now,
                             double fraction, const char *message) {
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    event_members(&w, job, "progress", worker, now);
    json_t *f = json_real(fraction);
    jobq_json_writer_value(&w, "progress", f);
    json_decref(f);
    if (message) jobq_json_writer_string(&w, "message", message);
    return jobq_json_writer_finish(&w);
}

char *jobq_job_dead_json(const struct jobq_job *job, const char *error, double now) {
    json_t *o = json_object();
    json_object_set_new(o, "id", job->id ? json_string(job->id) : json_null());
    json_object_set_new(o, "queue", json_string(job->queue ? job->queue : ""));
    json_object_set_new(o, "handler", job->handler ? json_string(job->handler) : json_null());
    json_object_set_new(o, "error", json_string(error ? error : "failed"));
    json_t *payload = json_stringn(job->raw, job->raw_len); /* NULL unless valid UTF-8 */
    if (payload) {
        json_object_set_new(o, "payload", payload);
    } else { /* keep bytes that are not UTF-8 losslessly */
        size_t size = 4 * ((job->raw_len + 2) / 3) + 1;
        char *b64 = malloc(size);
        if (b64 && b64_ntop((const unsigned char *)job->raw, job->raw_len, b64, size) >= 0)
            json_object_set_new(o, "payload_base64", json_string(b64));
        free(b64);
        json_object_set_new(o, "payload", json_null());
    }
    json_object_set_new(o, "failed_at", json_real(now));
    json_object_set_new(o, "attempts", json_integer(job->attempt));
    json_t *meta = job->root ? json_object_get(job->root, JOBQ_META_FIELD) : NULL;
    json_t *errors = json_object_get(meta, "errors");
    json_t *all = json_is_array(errors) ? json_deep_copy(errors) : json_array();
    json_array_append_new(all, json_pack("{s:i, s:s, s:f}", "attempt", job->attempt, "error",
                                         error ? error : "failed", "at", now));
    json_object_set_new(o, "errors", all);
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

char *jobq_job_retry_payload(const struct jobq_job *job, const char *error, bool died) {
    if (!job->root || !json_is_object(job->root)) return NULL;
    json_t *copy = json_copy(job->root); /* shallow: members shared, meta replaced */
    json_t *old_meta = json_object_get(job->root, JOBQ_META_FIELD);
    json_t *meta = json_is_object(old_meta) ? json_deep_copy(old_meta) : json_object();
    json_object_set_new(meta, "attempts", json_integer(job->attempt));
    json_object_set_new(meta, "deaths", json_integer(job->deaths + (died ? 1 : 0)));
    json_object_set_new(meta, "queue", json_string(job->queue ? job->queue : "default"));
    json_object_set_new(meta, "enqueued_at", json_real(job->enqueued_at));
    if (job->id_assigned) json_object_set_new(meta, "id", json_string(job->id));
    json_t *errors = json_object_get(meta, "errors");
    if (!json_is_array(errors)) {
        errors = json_array();
        json_object_set_new(meta, "errors", errors);
    }
    json_array_append_new(errors, json_pack("{s:i, s:s, s:f}", "attempt", job->attempt, "error",
                                            error ? error : "failed", "at", jobq_now()));
    json_object_set_new(copy, JOBQ_META_FIELD, meta);
    char *s = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(copy);
    return s;
}

/* ---- plugin API accessors ---- */

const char *jobq_job_api_id(const jobq_job *job) { return job->id; }

int jobq_job_api_attempt(const jobq_job *job) { return job->attempt; }

const char *jobq_job_api_args_json(const jobq_job *job) {
    struct jobq_job *j = (struct jobq_job *)job; /* lazily filled cache */
    if (!j->args_json) {
        j->args_json = j->args ? json_dumps(j->args, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (!j->args_json) j->args_json = strdup("null");
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
