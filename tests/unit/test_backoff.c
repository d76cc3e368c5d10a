/* Unit tests for backoff.c: worker restart, reconnect and retry delays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/backoff.h"

static void test_delay_grows_and_caps(void **state) {
    (void)state;
    assert_true(jobq_backoff_delay(0, 0.1, 30) == 0);
    assert_true(jobq_backoff_delay(-3, 0.1, 30) == 0);
    assert_float_equal(jobq_backoff_delay(1, 0.1, 30), 0.1, 1e-12);
    assert_float_equal(jobq_backoff_delay(2, 0.1, 30), 0.2, 1e-12);
    assert_float_equal(jobq_backoff_delay(5, 0.1, 30), 1.6, 1e-12);
    assert_float_equal(jobq_backoff_delay(9, 0.1, 30), 25.6, 1e-9);
    assert_float_equal(jobq_backoff_delay(10, 0.1, 30), 30, 1e-12);
    assert_float_equal(jobq_backoff_delay(1000000, 0.1, 30), 30, 1e-12);
}

static void test_delay_zero_base(void **state) {
    (void)state;
    assert_true(jobq_backoff_delay(4, 0, 30) == 0);
}

static void test_retry_has_equal_jitter(void **state) {
    (void)state;
    /* attempt 3, base 1 -> 4 s: between 2 and 4 s */
    assert_float_equal(jobq_backoff_retry(3, 1, 300, 0.0), 2.0, 1e-12);
    assert_float_equal(jobq_backoff_retry(3, 1, 300, 0.5), 3.0, 1e-12);
    assert_true(jobq_backoff_retry(3, 1, 300, 0.999999) < 4.0);
    assert_true(jobq_backoff_retry(3, 1, 300, 7.0) < 4.0);   /* clamped */
    assert_float_equal(jobq_backoff_retry(3, 1, 300, -1), 2.0, 1e-12);
    /* the cap bounds the jittered delay too */
    assert_true(jobq_backoff_retry(40, 1, 300, 0.99) <= 300);
    assert_true(jobq_backoff_retry(40, 1, 300, 0.0) >= 150);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_grows_and_caps),
        cmocka_unit_test(test_delay_zero_base),
        cmocka_unit_test(test_retry_has_equal_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
