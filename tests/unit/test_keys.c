/* Unit tests for protocol/keys.c: the key catalog (names, the {queue} hash
 * tag, parsing back), name validation, and Redis Cluster key slots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/keys.h"

static void test_queue_keys(void **state) {
    (void)state;
    char buf[JOBQ_KEY_MAX];
    assert_string_equal(jobq_key(buf, sizeof buf, "jobq", JOBQ_KEY_QUEUE, "default", NULL), "jobq:{default}:queue");
    assert_string_equal(jobq_key(buf, sizeof buf, "p", JOBQ_KEY_SCHEDULED, "a.b", NULL), "p:{a.b}:scheduled");
    assert_string_equal(jobq_key(buf, sizeof buf, "jobq", JOBQ_KEY_INFLIGHT, "q", "host:42"),
                        "jobq:{q}:inflight:host:42");
    assert_string_equal(jobq_key_result(buf, sizeof buf, "jobq", "id:1"), "jobq:result:id:1");
    assert_string_equal(jobq_key_events(buf, sizeof buf, "jobq"), "jobq:events");
    assert_string_equal(jobq_key_heartbeat(buf, sizeof buf, "jobq", "h:1"), "jobq:daemon:h:1");
    assert_string_equal(jobq_key_scan_pattern(buf, sizeof buf, "a*b"), "a\\*b:{*}:*");
}

static void test_parse(void **state) {
    (void)state;
    char q[65];
    enum jobq_key_kind kind;
    assert_true(jobq_key_parse("jobq:{default}:queue", "jobq", q, sizeof q, &kind));
    assert_string_equal(q, "default");
    assert_int_equal(kind, JOBQ_KEY_QUEUE);
    assert_true(jobq_key_parse("jobq:{a:b}:inflight:host:1", "jobq", q, sizeof q, &kind));
    assert_string_equal(q, "a:b");
    assert_int_equal(kind, JOBQ_KEY_INFLIGHT);
    assert_true(jobq_key_parse("jobq:{x}:stats", "jobq", q, sizeof q, &kind));
    assert_int_equal(kind, JOBQ_KEY_STATS);
    assert_false(jobq_key_parse("jobq:{x}:inflight", "jobq", q, sizeof q, &kind)); /* the list needs a worker */
    assert_false(jobq_key_parse("jobq:{x}:queuex", "jobq", q, sizeof q, &kind));
    assert_false(jobq_key_parse("other:{x}:queue", "jobq", q, sizeof q, &kind));
    assert_false(jobq_key_parse("jobq:queue:x", "jobq", q, sizeof q, &kind));
    assert_false(jobq_key_parse("jobq:{}:queue", "jobq", q, sizeof q, &kind));
    assert_false(jobq_key_parse("jobqx:{x}:queue", "jobq", q, sizeof q, &kind));
}

static void test_names(void **state) {
    (void)state;
    assert_true(jobq_key_valid_queue("default"));
    assert_true(jobq_key_valid_queue("a-b_c.d:e"));
    assert_false(jobq_key_valid_queue(""));
    assert_false(jobq_key_valid_queue("a{b}"));
    assert_false(jobq_key_valid_queue("a b"));
    char long_name[66];
    memset(long_name, 'x', 65);
    long_name[65] = '\0';
    assert_false(jobq_key_valid_queue(long_name));
    assert_false(jobq_key_valid_prefix("jobq{"));
    assert_true(jobq_key_valid_prefix("jobq"));
}

/* Slots as Redis Cluster computes them (CLUSTER KEYSLOT). */
static void test_slots(void **state) {
    (void)state;
    assert_int_equal(jobq_key_slot("foo", 3), 12182);
    assert_int_equal(jobq_key_slot("bar", 3), 5061);
    assert_int_equal(jobq_key_slot("123456789", 9), 0x31c3);
    /* The hash tag decides; an empty tag does not count. */
    const char *a = "jobq:{default}:queue", *b = "jobq:{default}:inflight:h:1";
    assert_int_equal(jobq_key_slot(a, strlen(a)), jobq_key_slot(b, strlen(b)));
    assert_int_equal(jobq_key_slot(a, strlen(a)), jobq_key_slot("default", 7));
    assert_int_equal(jobq_key_slot("{}x", 3), jobq_key_slot("{}x", 3));
    assert_int_not_equal(jobq_key_slot("{}x", 3), jobq_key_slot("x", 1));
    assert_int_equal(jobq_key_slot("a{b}{c}", 7), jobq_key_slot("b", 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_keys),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
