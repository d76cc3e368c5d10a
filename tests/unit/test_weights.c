/* Unit tests for weights.c: strict order without weights, and the share
 * each queue gets of first places over many draws. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/random.h"
#include "core/weights.h"

static double fixed_value;
static double fixed(void) { return fixed_value; }

static void test_strict_without_weights(void **state) {
    (void)state;
    int w[3] = {0, 0, 0}, order[3];
    jobq_weights_order(w, 3, jobq_random01, order);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 2);
}

static void test_draw_follows_the_weights(void **state) {
    (void)state;
    int w[3] = {6, 3, 1}, order[3];
    fixed_value = 0.0;     /* the first slice: critical, then default, low */
    jobq_weights_order(w, 3, fixed, order);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 2);
    fixed_value = 0.95;    /* the last slice: low first; then 0.95 of the rest (default 3, critical 6) */
    jobq_weights_order(w, 3, fixed, order);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 1);
}

static void test_first_place_shares(void **state) {
    (void)state;
    int w[3] = {6, 3, 1}, order[3], first[3] = {0, 0, 0};
    const int draws = 100000;
    for (int i = 0; i < draws; i++) {
        jobq_weights_order(w, 3, jobq_random01, order);
        first[order[0]]++;
        /* every queue appears once */
        assert_int_equal(order[0] + order[1] + order[2], 3);
        assert_true(order[0] != order[1] && order[1] != order[2] && order[0] != order[2]);
    }
    assert_in_range(first[0], 59000, 61000);
    assert_in_range(first[1], 29000, 31000);
    assert_in_range(first[2], 9300, 10700);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_without_weights),
        cmocka_unit_test(test_draw_follows_the_weights),
        cmocka_unit_test(test_first_place_shares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
