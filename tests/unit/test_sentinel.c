/* Unit tests for sentinel.c: reading the sentinels' announcements. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/sentinel.h"

static void test_promoted_slave(void **state) {
    (void)state;
    jobq_sentinel_event ev;
    assert_int_equal(jobq_sentinel_parse_event("+promoted-slave",
                                               "slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379",
                                               "mymaster", &ev),
                     1);
    assert_string_equal(ev.channel, "+promoted-slave");
    assert_string_equal(ev.host, "127.0.0.1");
    assert_int_equal(ev.port, 6381);
    /* IPv6 and host names (announce-hostnames) come as they are */
    assert_int_equal(jobq_sentinel_parse_event("+promoted-slave",
                                               "slave [::1]:7001 ::1 7001 @ mymaster ::1 7000", "mymaster", &ev),
                     1);
    assert_string_equal(ev.host, "::1");
    assert_int_equal(ev.port, 7001);
    assert_int_equal(jobq_sentinel_parse_event("+promoted-slave",
                                               "slave redis-b:6379 redis-b 6379 @ mymaster redis-a 6379",
                                               "mymaster", &ev),
                     1);
    assert_string_equal(ev.host, "redis-b");
}

static void test_selected_slave(void **state) {
    (void)state;
    jobq_sentinel_event ev;
    assert_int_equal(jobq_sentinel_parse_event("+selected-slave",
                                               "slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379",
                                               "mymaster", &ev),
                     1);
    assert_string_equal(ev.channel, "+selected-slave");
    assert_string_equal(ev.host, "127.0.0.1");
    assert_int_equal(ev.port, 6381);
}

static void test_switch_master(void **state) {
    (void)state;
    jobq_sentinel_event ev;
    assert_int_equal(
        jobq_sentinel_parse_event("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster", &ev), 1);
    assert_string_equal(ev.channel, "+switch-master");
    assert_string_equal(ev.host, "127.0.0.1");
    assert_int_equal(ev.port, 6380);
}

static void test_other_masters_and_garbage(void **state) {
    (void)state;
    jobq_sentinel_event ev;
    /* another master of the same sentinels */
    assert_int_equal(jobq_sentinel_parse_event("+promoted-slave",
                                               "slave 127.0.0.1:6381 127.0.0.1 6381 @ other 127.0.0.1 6379",
                                               "mymaster", &ev),
                     0);
    assert_int_equal(
        jobq_sentinel_parse_event("+switch-master", "mymaster2 127.0.0.1 6379 127.0.0.1 6380", "mymaster", &ev), 0);
    assert_int_equal(
        jobq_sentinel_parse_event("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster2", &ev), 0);
    /* a master-type event, another channel, malformed texts */
    assert_int_equal(jobq_sentinel_parse_event("+promoted-slave", "master mymaster 127.0.0.1 6379", "mymaster", &ev),
                     0);
    assert_int_equal(jobq_sentinel_parse_event("+failover-state-reconf-slaves", "master mymaster 127.0.0.1 6379",
                                               "mymaster", &ev),
                     0);
    assert_int_equal(jobq_sentinel_parse_event("+switch-master", "", "mymaster", &ev), 0);
    assert_int_equal(jobq_sentinel_parse_event("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1", "mymaster", &ev),
                     0);
    assert_int_equal(
        jobq_sentinel_parse_event("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 70000", "mymaster", &ev), 0);
    assert_int_equal(
        jobq_sentinel_parse_event("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 63x9", "mymaster", &ev), 0);
    assert_int_equal(
        jobq_sentinel_parse_event("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 0", "mymaster", &ev), 0);
    assert_int_equal(jobq_sentinel_parse_event("+switch-master", "mymaster  127.0.0.1 6379 127.0.0.1 6380",
                                               "mymaster", &ev),
                     0);
    assert_int_equal(jobq_sentinel_parse_event("+promoted-slave",
                                               "slave a b c d e f g h i j k l m n o p q r s t u v w x y z",
                                               "mymaster", &ev),
                     0);
    char long_text[2000];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    assert_int_equal(jobq_sentinel_parse_event("+switch-master", long_text, "mymaster", &ev), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promoted_slave),
        cmocka_unit_test(test_selected_slave),
        cmocka_unit_test(test_switch_master),
        cmocka_unit_test(test_other_masters_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
