/* Unit tests for core/job.c (parsing and validation of every payload kind,
 * forged "_jobq" members included) and protocol/documents.c (the result,
 * progress, dead-letter and retry documents built from a job). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/job.h"
#include "protocol/documents.h"

static const jobq_job_defaults defaults = {180, 3, 86400, 1024};

static int parse(struct jobq_job *job, const char *raw, jobq_err *err) {
    return jobq_job_parse(job, raw, strlen(raw), "default", &defaults, 1000.0, err);
}

static void expect_reject(const char *raw, const char *needle) {
    struct jobq_job job;
    jobq_err err;
    jobq_err_clear(&err);
    assert_int_equal(parse(&job, raw, &err), -1);
    assert_int_equal(err.code, JOBQ_E_INVALID);
    if (!strstr(err.msg, needle)) fail_msg("'%s' not in '%s'", needle, err.msg);
    jobq_job_fini(&job);
}

static void test_minimal_job(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    assert_int_equal(parse(&job, "{\"handler\":\"noop\"}", &err), 0);
    assert_string_equal(job.handler, "noop");
    assert_true(job.id_assigned);
    assert_int_equal(strlen(job.id), 32);
    assert_null(job.args);
    assert_true(job.timeout == 180);
    assert_int_equal(job.max_attempts, 3);
    assert_int_equal(job.result_ttl, 86400);
    assert_int_equal(job.attempt, 1);
    assert_true(job.enqueued_at == 1000.0);
    jobq_job_fini(&job);
}

static void test_full_job(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    const char *raw = "{\"id\":\"a1\",\"handler\":\"wordcount\",\"args\":{\"url\":\"http://x/\"},"
                      "\"timeout\":30,\"max_attempts\":5,\"result_ttl\":60,\"enqueued_at\":999.5,"
                      "\"extra\":[1,2]}";
    assert_int_equal(parse(&job, raw, &err), 0);
    assert_string_equal(job.id, "a1");
    assert_false(job.id_assigned);
    assert_true(job.timeout == 30);
    assert_int_equal(job.max_attempts, 5);
    assert_int_equal(job.result_ttl, 60);
    assert_true(job.enqueued_at == 999.5);
    assert_string_equal(jobq_job_api_arg_string(&job, "url"), "http://x/");
    assert_string_equal(jobq_job_api_args_json(&job), "{\"url\":\"http://x/\"}");
    double d = 0;
    assert_int_equal(jobq_job_api_arg_number(&job, "url", &d), JOBQ_ERR);
    jobq_job_fini(&job);
}

static void test_bad_payloads(void **state) {
    (void)state;
    expect_reject("{not json", "not valid JSON");
    expect_reject("", "not valid JSON");
    expect_reject("[1,2]", "not a JSON object");
    expect_reject("\"str\"", "not a JSON object");
    expect_reject("42", "not a JSON object");
    expect_reject("{\"id\":\"x\"}", "no 'handler'");
    expect_reject("{\"handler\":5}", "'handler' must be a non-empty string");
    expect_reject("{\"handler\":\"\"}", "'handler' must be a non-empty string");
    expect_reject("{\"handler\":\"echo\\u0000zzz\"}", "without control characters");
    expect_reject("{\"handler\":\"echo\\nx\"}", "without control characters");
    expect_reject("{\"handler\":\"noop\",\"timeout\":1e308}", "at most 604800");
    expect_reject("{\"handler\":\"noop\",\"timeout\":-1}", "'timeout'");
    expect_reject("{\"handler\":\"noop\",\"timeout\":\"5\"}", "'timeout'");
    expect_reject("{\"handler\":\"noop\",\"max_attempts\":0}", "'max_attempts'");
    expect_reject("{\"handler\":\"noop\",\"max_attempts\":1.5}", "'max_attempts'");
    expect_reject("{\"handler\":\"noop\",\"result_ttl\":0}", "'result_ttl'");
    expect_reject("{\"handler\":\"noop\",\"id\":7}", "'id'");
    expect_reject("{\"handler\":\"noop\",\"id\":\"victim\\u0000evil\"}", "'id'");
    expect_reject("{\"handler\":\"noop\",\"id\":\"\\u0000\"}", "'id'");
    expect_reject("{\"handler\":\"noop\",\"id\":\"n2\\n2099 error FORGED\"}", "'id'");
    expect_reject("{\"handler\":\"noop\",\"handler\":\"echo\"}", "not valid JSON");
}

static void test_oversize_payload(void **state) {
    (void)state;
    char big[2048];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "{\"handler\":\"noop\"}", 18);
    expect_reject(big, "over the limit of 1024");
}

static void test_rejected_job_keeps_its_id(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    assert_int_equal(parse(&job, "{\"id\":\"keep\",\"handler\":7}", &err), -1);
    assert_string_equal(job.id, "keep");
    assert_false(job.id_assigned);
    char *dead = jobq_doc_dead(&job, err.msg, 1234.5);
    json_t *o = json_loads(dead, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "keep");
    assert_string_equal(json_string_value(json_object_get(o, "payload")), "{\"id\":\"keep\",\"handler\":7}");
    assert_string_equal(json_string_value(json_object_get(o, "queue")), "default");
    assert_true(json_real_value(json_object_get(o, "failed_at")) == 1234.5);
    json_decref(o);
    free(dead);
    jobq_job_fini(&job);
}

static void test_dead_entry_keeps_non_utf8_payload(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    const char raw[] = "\xff\xfe garbage";
    assert_int_equal(jobq_job_parse(&job, raw, sizeof raw - 1, "q", &defaults, 1, &err), -1);
    char *dead = jobq_doc_dead(&job, err.msg, 1);
    json_t *o = json_loads(dead, 0, NULL);
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "payload")));
    assert_string_equal(json_string_value(json_object_get(o, "payload_base64")), "//4gZ2FyYmFnZQ==");
    json_decref(o);
    free(dead);
    jobq_job_fini(&job);
}

static void test_result_json(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    assert_int_equal(parse(&job, "{\"id\":\"r1\",\"handler\":\"echo\",\"args\":[1]}", &err), 0);
    job.started_at = 1001;
    job.finished_at = 1002;
    assert_int_equal(jobq_job_api_set_result_json(&job, "{\"words\":3}"), JOBQ_OK);
    assert_int_equal(jobq_job_api_set_result_json(&job, "{bad"), JOBQ_ERR);
    char *s = jobq_doc_result(&job, "host:1");
    json_t *o = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "ok");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "result"), "words")), 3);
    assert_null(json_object_get(o, "error"));
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
    assert_string_equal(json_string_value(json_object_get(o, "worker")), "host:1");
    assert_true(json_real_value(json_object_get(o, "enqueued_at")) == 1000);
    json_decref(o);
    free(s);
    assert_int_equal(jobq_job_api_fail(&job, "bad %d", 7), JOBQ_ERR);
    s = jobq_doc_result(&job, "host:1");
    o = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(o, "error")), "bad 7");
    json_decref(o);
    free(s);
    jobq_job_fini(&job);
}

static void test_progress_event_json(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    assert_int_equal(parse(&job, "{\"id\":\"p1\",\"handler\":\"echo\"}", &err), 0);
    char *s = jobq_doc_progress(&job, "host:1", 1795658125.5, 0.25, "half \"way\"");
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "progress");
    assert_string_equal(json_string_value(json_object_get(o, "id")), "p1");
    assert_string_equal(json_string_value(json_object_get(o, "worker")), "host:1");
    assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 1);
    assert_true(json_real_value(json_object_get(o, "progress")) == 0.25);
    assert_string_equal(json_string_value(json_object_get(o, "message")), "half \"way\"");
    assert_float_equal(json_real_value(json_object_get(o, "time")), 1795658125.5, 1e-6);
    json_decref(o);
    free(s);
    s = jobq_doc_progress(&job, "host:1", 1795658125.5, 1, NULL);
    o = json_loads(s, 0, NULL);
    assert_null(json_object_get(o, "message"));
    json_decref(o);
    free(s);
    jobq_job_fini(&job);
}

static void test_retry_payload_carries_attempts(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    assert_int_equal(parse(&job, "{\"handler\":\"fail\",\"args\":{\"m\":1}}", &err), 0);
    char first_id[40];
    strcpy(first_id, job.id);
    char *retry = jobq_doc_retry_payload(&job, "boom 1", true, 0);
    jobq_job_fini(&job);
    /* the second attempt parses the retried payload */
    assert_int_equal(parse(&job, retry, &err), 0);
    assert_int_equal(job.attempt, 2);
    assert_int_equal(job.deaths, 1);
    assert_string_equal(job.id, first_id); /* the assigned id survives retries */
    char *retry2 = jobq_doc_retry_payload(&job, "boom 2", false, 0);
    jobq_job_fini(&job);
    assert_int_equal(parse(&job, retry2, &err), 0);
    assert_int_equal(job.attempt, 3);
    assert_int_equal(job.deaths, 1);
    char *dead = jobq_doc_dead(&job, "boom 3", 5);
    json_t *o = json_loads(dead, 0, NULL);
    json_t *errors = json_object_get(o, "errors");
    assert_int_equal(json_array_size(errors), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "error")), "boom 1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 2), "error")), "boom 3");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 3);
    json_decref(o);
    free(dead);
    free(retry);
    free(retry2);
    jobq_job_fini(&job);
}

/* "_jobq" is jobq's own: out-of-range or mistyped members are refused,
 * never trusted (they used to overflow the attempt counter). */
static void test_forged_meta(void **state) {
    (void)state;
    expect_reject("{\"handler\":\"fail\",\"_jobq\":{\"attempts\":2147483647}}", "attempts must be");
    expect_reject("{\"handler\":\"fail\",\"_jobq\":{\"attempts\":-5}}", "attempts must be");
    expect_reject("{\"handler\":\"fail\",\"_jobq\":{\"deaths\":1e9}}", "deaths must be");
    expect_reject("{\"handler\":\"fail\",\"_jobq\":{\"id\":\"\"}}", "id must be");
    expect_reject("{\"handler\":\"fail\",\"_jobq\":{\"errors\":\"x\"}}", "errors must be");
    expect_reject("{\"handler\":\"fail\",\"_jobq\":[1]}", "must be an object");
    struct jobq_job job;
    jobq_err err;
    assert_int_equal(parse(&job, "{\"handler\":\"fail\",\"_jobq\":{\"attempts\":2,\"deaths\":1}}", &err), 0);
    assert_int_equal(job.attempt, 3);
    assert_int_equal(job.deaths, 1);
    jobq_job_fini(&job);
}

/* An integer beyond 64 bits (what Python writes for 2**64) is read as a
 * real, not refused, and the id stays readable. */
static void test_huge_integer_is_kept(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    assert_int_equal(parse(&job, "{\"id\":\"x\",\"handler\":\"echo\",\"args\":{\"n\":12345678901234567890}}", &err), 0);
    assert_string_equal(job.id, "x");
    double n = 0;
    assert_int_equal(jobq_job_api_arg_number(&job, "n", &n), JOBQ_OK);
    assert_float_equal(n, 12345678901234567890.0, 1e4);
    jobq_job_fini(&job);
}

/* A dead entry keeps at most JOBQ_DEAD_PAYLOAD_MAX bytes of the payload,
 * with its length and fingerprint, and only the last errors. */
static void test_dead_entry_is_bounded(void **state) {
    (void)state;
    size_t len = 300000;
    char *raw = malloc(len);
    assert_non_null(raw);
    memset(raw, 1, len); /* control bytes: 6 bytes each once escaped */
    struct jobq_job job;
    jobq_err err;
    assert_int_equal(jobq_job_parse(&job, raw, len, "q", &defaults, 1, &err), -1);
    char *dead = jobq_doc_dead(&job, err.msg, 1);
    assert_non_null(dead);
    assert_true(strlen(dead) < 8 * JOBQ_DEAD_PAYLOAD_MAX);
    json_t *o = json_loads(dead, 0, NULL);
    assert_true(json_is_true(json_object_get(o, "payload_truncated")));
    assert_int_equal(json_integer_value(json_object_get(o, "payload_bytes")), len);
    assert_int_equal(strlen(json_string_value(json_object_get(o, "payload_fnv1a64"))), 16);
    json_decref(o);
    free(dead);
    jobq_job_fini(&job);
    free(raw);
}

static void test_new_ids_differ(void **state) {
    (void)state;
    char a[40], b[40];
    jobq_job_new_id(a, sizeof a);
    jobq_job_new_id(b, sizeof b);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_job),
        cmocka_unit_test(test_full_job),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_oversize_payload),
        cmocka_unit_test(test_rejected_job_keeps_its_id),
        cmocka_unit_test(test_dead_entry_keeps_non_utf8_payload),
        cmocka_unit_test(test_result_json),
        cmocka_unit_test(test_progress_event_json),
        cmocka_unit_test(test_retry_payload_carries_attempts),
        cmocka_unit_test(test_forged_meta),
        cmocka_unit_test(test_huge_integer_is_kept),
        cmocka_unit_test(test_dead_entry_is_bounded),
        cmocka_unit_test(test_new_ids_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
