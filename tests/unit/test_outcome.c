/* Unit tests for protocol/outcome.c: the one outcome policy (ok, retry with
 * backoff, failed for good, rejected, cancelled, poison) and what each
 * outcome writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/job.h"
#include "protocol/documents.h"
#include "protocol/outcome.h"

static const jobq_job_defaults defaults = {180, 3, 86400, 0};
static const jobq_outcome_policy policy = {1.0, 10.0, 2};

static void parse(struct jobq_job *job, const char *raw) {
    jobq_err err;
    assert_int_equal(jobq_job_parse(job, raw, strlen(raw), "q", &defaults, 1000, &err), 0);
}

static json_t *doc(const char *text) {
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    return o;
}

static void test_ok(void **state) {
    (void)state;
    struct jobq_job job;
    parse(&job, "{\"id\":\"a\",\"handler\":\"echo\",\"_jobq\":{\"unique\":true}}");
    jobq_outcome out;
    assert_int_equal(jobq_outcome_build(&out, &job, JOBQ_CAUSE_RAN, NULL, &policy, "h:1", 2000), 0);
    assert_int_equal(out.kind, JOBQ_OUTCOME_OK);
    assert_string_equal(out.id, "a");
    assert_non_null(out.result_json);
    assert_null(out.dead_json);
    assert_null(out.retry_payload);
    assert_true(out.finished && !out.failed);
    assert_string_equal(out.unique_id, "a"); /* the unique hold ends with the job */
    json_t *e = doc(out.event_json);
    assert_string_equal(json_string_value(json_object_get(e, "event")), "ok");
    json_decref(e);
    jobq_outcome_fini(&out);
    jobq_job_fini(&job);
}

static void test_retry_then_fail(void **state) {
    (void)state;
    struct jobq_job job;
    parse(&job, "{\"id\":\"b\",\"handler\":\"fail\",\"max_attempts\":2}");
    jobq_job_set_failed(&job, "boom");
    jobq_outcome out;
    assert_int_equal(jobq_outcome_build(&out, &job, JOBQ_CAUSE_RAN, NULL, &policy, "h:1", 2000), 0);
    assert_int_equal(out.kind, JOBQ_OUTCOME_RETRY);
    assert_null(out.id); /* no result until it ends */
    assert_non_null(out.retry_payload);
    assert_true(out.retry_delay >= 0.5 && out.retry_delay < 1.0); /* equal jitter on base 1 */
    assert_true(out.retry_at == 2000 + out.retry_delay);
    assert_false(out.finished);
    /* The second attempt borrows its payload from the first outcome's
     * retry payload: that outcome lives until the second job is done. */
    struct jobq_job second;
    parse(&second, out.retry_payload);
    jobq_job_fini(&job);
    assert_int_equal(second.attempt, 2);
    jobq_job_set_failed(&second, "boom again");
    jobq_outcome out2;
    assert_int_equal(jobq_outcome_build(&out2, &second, JOBQ_CAUSE_RAN, NULL, &policy, "h:1", 2001), 0);
    assert_int_equal(out2.kind, JOBQ_OUTCOME_FAILED);
    assert_non_null(out2.result_json);
    assert_non_null(out2.dead_json);
    assert_true(out2.finished && out2.failed);
    json_t *d = doc(out2.dead_json);
    assert_int_equal(json_array_size(json_object_get(d, "errors")), 2);
    json_decref(d);
    jobq_outcome_fini(&out2);
    jobq_job_fini(&second);
    jobq_outcome_fini(&out);
}

/* A job that keeps killing its worker is given up at poison_limit deaths,
 * whatever attempts it has left. */
static void test_poison(void **state) {
    (void)state;
    struct jobq_job job;
    parse(&job, "{\"id\":\"c\",\"handler\":\"crash\",\"max_attempts\":10,\"_jobq\":{\"attempts\":1,\"deaths\":1}}");
    jobq_outcome out;
    assert_int_equal(jobq_outcome_build(&out, &job, JOBQ_CAUSE_DIED, "killed by SIGSEGV", &policy, "h:1", 5), 0);
    assert_int_equal(out.kind, JOBQ_OUTCOME_FAILED);
    assert_non_null(strstr(job.error, "poison job"));
    jobq_outcome_fini(&out);
    jobq_job_fini(&job);
}

static void test_rejected(void **state) {
    (void)state;
    struct jobq_job job;
    jobq_err err;
    const char *raw = "{\"handler\":\"noop\",\"timeout\":-1}";
    assert_int_equal(jobq_job_parse(&job, raw, strlen(raw), "q", &defaults, 1000, &err), -1);
    jobq_outcome out;
    assert_int_equal(jobq_outcome_build(&out, &job, JOBQ_CAUSE_REJECTED, err.msg, &policy, "h:1", 5), 0);
    assert_int_equal(out.kind, JOBQ_OUTCOME_REJECTED);
    assert_null(out.id); /* no own id: nobody can ask for a result */
    assert_non_null(out.dead_json);
    json_t *e = doc(out.event_json);
    assert_string_equal(json_string_value(json_object_get(e, "event")), "dead");
    json_decref(e);
    jobq_outcome_fini(&out);
    jobq_job_fini(&job);
}

static void test_cancelled_and_timed_out(void **state) {
    (void)state;
    struct jobq_job job;
    parse(&job, "{\"id\":\"d\",\"handler\":\"sleep\",\"max_attempts\":1,\"timeout\":2}");
    jobq_outcome out;
    assert_int_equal(jobq_outcome_build(&out, &job, JOBQ_CAUSE_CANCELLED, NULL, &policy, "h:1", 5), 0);
    assert_int_equal(out.kind, JOBQ_OUTCOME_CANCELLED);
    assert_string_equal(job.error, "cancelled");
    assert_false(out.finished);
    assert_null(out.dead_json);
    jobq_outcome_fini(&out);
    jobq_job_fini(&job);
    parse(&job, "{\"id\":\"e\",\"handler\":\"sleep\",\"max_attempts\":1,\"timeout\":2}");
    assert_int_equal(jobq_outcome_build(&out, &job, JOBQ_CAUSE_TIMED_OUT, "killed by SIGTERM", &policy, "h:1", 5), 0);
    assert_int_equal(out.kind, JOBQ_OUTCOME_FAILED);
    assert_non_null(strstr(job.error, "timed out after 2 s"));
    jobq_outcome_fini(&out);
    jobq_job_fini(&job);
}

/* jansson's allocations, failing the one numbered fail_at (0-based). */
static long allocations, fail_at = -1;

static void *failing_malloc(size_t size) {
    return allocations++ == fail_at ? NULL : malloc(size);
}

/* A dead entry or a retry payload built while one of jansson's allocations
 * fails is NULL or whole: never without its id, handler, args, payload or
 * attempt count (json_copy drops a member it cannot insert; json_dumps
 * loses an object key it cannot write). */
static void test_documents_whole_or_null_when_memory_runs_out(void **state) {
    (void)state;
    struct jobq_job job;
    parse(&job, "{\"id\":\"m\",\"handler\":\"fail\",\"args\":{\"message\":\"boom\"},"
                "\"_jobq\":{\"attempts\":1,\"errors\":[{\"attempt\":1,\"error\":\"x\",\"at\":1.5}]}}");
    json_malloc_t old_malloc;
    json_free_t old_free;
    json_get_alloc_funcs(&old_malloc, &old_free);
    json_set_alloc_funcs(failing_malloc, free);
    int whole = 0;
    for (fail_at = 0; fail_at < 200; fail_at++) {
        allocations = 0;
        char *retry = jobq_doc_retry_payload(&job, "boom", false, 2001);
        char *dead = jobq_doc_dead(&job, "boom", 2000);
        long used = allocations;
        allocations = -1000000; /* nothing fails while checking */
        if (retry) {
            json_t *r = doc(retry);
            assert_string_equal(json_string_value(json_object_get(r, "id")), "m");
            assert_string_equal(json_string_value(json_object_get(r, "handler")), "fail");
            assert_non_null(json_object_get(r, "args"));
            json_t *meta = json_object_get(r, "_jobq");
            assert_int_equal(json_integer_value(json_object_get(meta, "attempts")), 2);
            assert_int_equal(json_array_size(json_object_get(meta, "errors")), 2);
            json_decref(r);
        }
        if (dead) {
            json_t *d = doc(dead);
            assert_string_equal(json_string_value(json_object_get(d, "id")), "m");
            assert_true(json_is_string(json_object_get(d, "payload")) ||
                        json_is_string(json_object_get(d, "payload_base64")));
            assert_int_equal(json_array_size(json_object_get(d, "errors")), 2);
            json_decref(d);
        }
        whole += retry && dead;
        free(retry);
        free(dead);
        if (fail_at >= used) break; /* no allocation failed: all paths seen */
    }
    json_set_alloc_funcs(old_malloc, old_free);
    assert_true(whole > 0);
    jobq_job_fini(&job);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_retry_then_fail),
        cmocka_unit_test(test_poison),
        cmocka_unit_test(test_rejected),
        cmocka_unit_test(test_cancelled_and_timed_out),
        cmocka_unit_test(test_documents_whole_or_null_when_memory_runs_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
