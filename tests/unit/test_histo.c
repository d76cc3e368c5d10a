/* Unit tests for protocol/histo.c: the fixed buckets, and a batch's
 * histogram increments aggregated to one per distinct field (buckets not
 * cumulative, sums as decimals, jobs that did not run left out). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/histo.h"

static void test_buckets(void **state) {
    (void)state;
    assert_int_equal(jobq_histo_bucket(0), 0);
    assert_int_equal(jobq_histo_bucket(0.001), 0); /* le: the bound itself is in */
    assert_int_equal(jobq_histo_bucket(0.0011), 1);
    assert_int_equal(jobq_histo_bucket(1), 9);
    assert_int_equal(jobq_histo_bucket(300), JOBQ_HISTO_BUCKETS - 2);
    assert_int_equal(jobq_histo_bucket(301), JOBQ_HISTO_BUCKETS - 1);
    assert_int_equal(jobq_histo_bucket(NAN), JOBQ_HISTO_BUCKETS - 1);
    assert_string_equal(jobq_histo_le(0), "0.001");
    assert_string_equal(jobq_histo_le(JOBQ_HISTO_BUCKETS - 1), "+Inf");
    assert_true(isinf(jobq_histo_bound(JOBQ_HISTO_BUCKETS - 1)));
    for (int i = 1; i < JOBQ_HISTO_BUCKETS; i++) assert_true(jobq_histo_bound(i) > jobq_histo_bound(i - 1));
}

/* The increment of field in args, or NULL. */
static const char *find(char **args, size_t n, const char *field) {
    for (size_t i = 0; i + 1 < n; i += 2)
        if (strcmp(args[i], field) == 0) return args[i + 1];
    return NULL;
}

static void test_batch(void **state) {
    (void)state;
    jobq_outcome outs[5];
    memset(outs, 0, sizeof outs);
    char noop[] = "noop";
    for (int i = 0; i < 3; i++) outs[i] = (jobq_outcome){.handler = noop, .wait_seconds = 0.002, .run_seconds = 0.0001};
    outs[3] = (jobq_outcome){.handler = "sleep", .wait_seconds = -1, .run_seconds = 0.3};
    outs[4] = (jobq_outcome){.handler = NULL, .wait_seconds = 1, .run_seconds = 1}; /* rejected: did not run */
    char **args;
    size_t n;
    assert_int_equal(jobq_histo_batch(outs, 5, &args, &n), 0);
    /* noop: wait bucket + sum, run bucket + sum; sleep: run bucket + sum. */
    assert_int_equal(n, 2 * 6);
    assert_string_equal(find(args, n, "wait|noop|0.0025"), "3");
    assert_string_equal(find(args, n, "run|noop|0.001"), "3");
    assert_string_equal(find(args, n, "run|sleep|0.5"), "1");
    assert_true(fabs(strtod(find(args, n, "wait|noop|sum"), NULL) - 0.006) < 1e-9);
    assert_true(fabs(strtod(find(args, n, "run|sleep|sum"), NULL) - 0.3) < 1e-9);
    assert_null(find(args, n, "wait|sleep|sum"));
    jobq_histo_args_free(args, n);
    /* Nothing that ran: no increment at all. */
    assert_int_equal(jobq_histo_batch(outs + 4, 1, &args, &n), 0);
    assert_int_equal(n, 0);
    assert_null(args);
}

/* Increments gathered over several batches add up per field, own their
 * handler names, and are gone once cleared. */
static void test_gathered(void **state) {
    (void)state;
    jobq_histo_acc acc = {0};
    char name[] = "noop";
    jobq_outcome one = {.handler = name, .wait_seconds = 0.002, .run_seconds = 0.0001};
    assert_int_equal(jobq_histo_add(&acc, &one, 1), 0);
    strcpy(name, "gone"); /* the outcome's handler is freed with its batch */
    jobq_outcome two[2] = {{.handler = "noop", .wait_seconds = 0.002, .run_seconds = 0.0001},
                           {.handler = "noop", .wait_seconds = 0.5, .run_seconds = -1}};
    assert_int_equal(jobq_histo_add(&acc, two, 2), 0);
    char **args;
    size_t n;
    assert_int_equal(jobq_histo_args(&acc, &args, &n), 0);
    assert_int_equal(n, 2 * 5); /* wait: two buckets and the sum; run: one bucket and the sum */
    assert_string_equal(find(args, n, "wait|noop|0.0025"), "2");
    assert_string_equal(find(args, n, "wait|noop|0.5"), "1");
    assert_string_equal(find(args, n, "run|noop|0.001"), "2");
    assert_true(fabs(strtod(find(args, n, "wait|noop|sum"), NULL) - 0.504) < 1e-9);
    assert_null(find(args, n, "run|gone|0.001"));
    jobq_histo_args_free(args, n);
    jobq_histo_clear(&acc);
    assert_int_equal(jobq_histo_args(&acc, &args, &n), 0);
    assert_int_equal(n, 0);
    assert_null(args);
    jobq_histo_acc_fini(&acc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_gathered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
