/*
 * libFuzzer harness: jobq_job_parse on arbitrary bytes, under a small and a
 * large max_payload, then every document built from the parsed (or
 * rejected) job, as the worker builds them. Oracles besides the sanitizers:
 * each document is valid JSON, and the payload of a retry parses again as
 * the same job one attempt further on.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "protocol/documents.h"

#define NOW 1700000000.5
#define WORKER "fuzzhost:4242"

/* A document must be valid JSON (NULL only when memory ran out). */
static void check_doc(char *doc, const char *what) {
    if (!doc) return;
    json_error_t jerr;
    json_t *v = json_loads(doc, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v) {
        fprintf(stderr, "fuzz_job: %s is not valid JSON (%s): %s\n", what, jerr.text, doc);
        abort();
    }
    json_decref(v);
    free(doc);
}

/* The next attempt's payload must parse as the same job, one attempt on. */
static void check_retry(const struct jobq_job *job, bool died) {
    char *retry = jobq_doc_retry_payload(job, job->error, died);
    if (!retry) return;
    /* The worker retries only within max_attempts and the poison limit;
     * past them jobq writes no retry payload, so there is nothing to check. */
    bool retried = job->attempt < job->max_attempts && job->deaths + (died ? 1 : 0) < JOBQ_JOB_ATTEMPTS_MAX;
    if (retried) {
        jobq_job_defaults unlimited = {30, 3, 3600, 0};
        struct jobq_job next;
        jobq_err err;
        if (jobq_job_parse(&next, retry, strlen(retry), job->queue, &unlimited, NOW + 1, &err) != 0) {
            fprintf(stderr, "fuzz_job: retry payload does not parse: %s\n%s\n", err.msg, retry);
            abort();
        }
        if (strcmp(next.id, job->id) != 0 || next.attempt != job->attempt + 1 ||
            next.deaths != job->deaths + (died ? 1 : 0) || strcmp(next.handler, job->handler) != 0) {
            fprintf(stderr, "fuzz_job: retry changed the job: id %s -> %s, attempt %d -> %d, deaths %d -> %d\n%s\n",
                    job->id, next.id, job->attempt, next.attempt, job->deaths, next.deaths, retry);
            abort();
        }
        jobq_job_fini(&next);
    }
    free(retry);
}

static void one(const uint8_t *data, size_t size, long max_payload) {
    jobq_job_defaults defaults = {180, 3, 86400, max_payload};
    struct jobq_job job;
    jobq_err err;
    jobq_err_clear(&err);
    const char *raw = (const char *)data;
    bool died = size & 1;
    if (jobq_job_parse(&job, raw, size, "default", &defaults, NOW, &err) != 0) {
        /* Rejected: what the worker writes for a payload it cannot run. */
        jobq_job_set_failed(&job, "%s", err.msg);
        job.finished_at = NOW;
        check_doc(jobq_doc_dead(&job, err.msg, NOW), "dead entry of a rejected payload");
        check_doc(jobq_doc_result(&job, WORKER), "result of a rejected payload");
        check_doc(jobq_doc_event(&job, "dead", WORKER, NOW), "dead event");
        check_doc(jobq_doc_retry_payload(&job, err.msg, died), "retry payload of a rejected payload");
        jobq_job_fini(&job);
        return;
    }
    /* Ran: as echo would (result = args), then as a failure. */
    job.started_at = NOW;
    job.finished_at = NOW + 0.25;
    if (job.args) job.result = json_incref(job.args);
    (void)jobq_job_api_args_json(&job);
    check_doc(jobq_doc_event(&job, "started", WORKER, NOW), "started event");
    check_doc(jobq_doc_progress(&job, WORKER, NOW, 0.5, job.handler), "progress event");
    check_doc(jobq_doc_result(&job, WORKER), "ok result");
    /* A failure message taken from the payload itself: any bytes but NUL. */
    jobq_job_set_failed(&job, "handler said: %.*s", (int)(size > 300 ? 300 : size), raw);
    check_doc(jobq_doc_result(&job, WORKER), "failed result");
    check_doc(jobq_doc_event(&job, "retrying", WORKER, NOW), "retrying event");
    check_doc(jobq_doc_dead(&job, job.error, NOW), "dead entry");
    check_retry(&job, died);
    jobq_job_fini(&job);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one(data, size, 64);
    one(data, size, 1048576);
    return 0;
}
