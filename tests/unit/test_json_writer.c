/* Unit tests for json_writer.c: the per-job result and event documents'
 * encoder must produce exactly what jansson reads back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json_writer.h"

/* Parse what the writer produced; fails the test when it is not JSON. */
static json_t *reparse(char *s) {
    assert_non_null(s);
    json_error_t err;
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, &err);
    if (!o) fail_msg("not JSON (%s): %s", err.text, s);
    free(s);
    return o;
}

/* The plugin API's json_escape: a literal jansson reads back, snprintf-like
 * sizes, U+FFFD for bytes that are not UTF-8. */
static void test_escape(void **state) {
    (void)state;
    char out[64];
    static const char in[] = "a\"b\\c\n\x01\xff\xc3\xa9\0z";
    size_t n = jobq_json_escape(in, sizeof in - 1, out, sizeof out);
    assert_string_equal(out, "\"a\\\"b\\\\c\\n\\u0001\\ufffd\xc3\xa9\\u0000z\"");
    assert_int_equal(n, strlen(out));
    json_t *v = json_loads(out, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(v);
    assert_int_equal(json_string_length(v), 14); /* U+FFFD and é take 3 and 2 bytes */
    json_decref(v);
    assert_int_equal(jobq_json_escape(in, sizeof in - 1, NULL, 0), n); /* measure only */
    char small[5];
    assert_int_equal(jobq_json_escape("abcdef", 6, small, sizeof small), 8);
    assert_string_equal(small, "\"abc"); /* cut, terminated */
    assert_int_equal(jobq_json_escape("", 0, small, sizeof small), 2);
    assert_string_equal(small, "\"\"");
}

static void test_members_in_order(void **state) {
    (void)state;
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    jobq_json_writer_string(&w, "id", "a1");
    jobq_json_writer_int(&w, "n", -42);
    jobq_json_writer_string(&w, "none", NULL);
    jobq_json_writer_value(&w, "v", NULL);
    char *s = jobq_json_writer_finish(&w);
    assert_string_equal(s, "{\"id\":\"a1\",\"n\":-42,\"none\":null,\"v\":null}");
    free(s);

    jobq_json_writer_begin(&w);
    s = jobq_json_writer_finish(&w);
    assert_string_equal(s, "{}");
    free(s);
}

static void test_strings_are_escaped(void **state) {
    (void)state;
    const char *tricky = "quote\" back\\slash\nnew\ttab \x01 caf\xc3\xa9 \xe2\x82\xac";
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    jobq_json_writer_string(&w, "s", tricky);
    char *s = jobq_json_writer_finish(&w);
    /* ASCII only on the wire (non-ASCII as \u escapes). */
    for (const char *p = s; *p; p++) assert_true((unsigned char)*p < 0x80);
    json_t *o = reparse(s);
    assert_string_equal(json_string_value(json_object_get(o, "s")), tricky);
    json_decref(o);
}

static void test_bytes_that_are_not_utf8_become_question_marks(void **state) {
    (void)state;
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    jobq_json_writer_string(&w, "error", "bad \xff\xfe byte");
    json_t *o = reparse(jobq_json_writer_finish(&w));
    assert_string_equal(json_string_value(json_object_get(o, "error")), "bad ?? byte");
    json_decref(o);
}

static void test_times_keep_microseconds(void **state) {
    (void)state;
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    jobq_json_writer_time(&w, "t", 1795658125.523603);
    jobq_json_writer_time(&w, "whole", 1000);
    jobq_json_writer_time(&w, "early", 0.0000015);
    jobq_json_writer_time(&w, "unset", 0);
    jobq_json_writer_time(&w, "negative", -5);
    jobq_json_writer_time(&w, "far", 1e300);
    char *s = jobq_json_writer_finish(&w);
    assert_non_null(strstr(s, "\"t\":1795658125.523603,"));
    assert_non_null(strstr(s, "\"whole\":1000.000000,"));
    assert_non_null(strstr(s, "\"early\":0.000002,"));
    json_t *o = reparse(s);
    assert_true(json_is_real(json_object_get(o, "whole")));
    assert_float_equal(json_real_value(json_object_get(o, "t")), 1795658125.523603, 1e-6);
    assert_true(json_is_null(json_object_get(o, "unset")));
    assert_true(json_is_null(json_object_get(o, "negative")));
    assert_float_equal(json_real_value(json_object_get(o, "far")), 1e300, 1e285);
    json_decref(o);
}

static void test_values_of_any_size(void **state) {
    (void)state;
    /* Larger than the first buffer, so the writer must grow and re-encode. */
    json_t *big = json_array();
    for (int i = 0; i < 2000; i++) json_array_append_new(big, json_sprintf("item %d \xc3\xa9", i));
    json_t *nested = json_pack("{s:O, s:b, s:f}", "list", big, "ok", 1, "x", 0.5);
    jobq_json_writer w;
    jobq_json_writer_begin(&w);
    jobq_json_writer_string(&w, "id", "big");
    jobq_json_writer_value(&w, "result", nested);
    json_t *o = reparse(jobq_json_writer_finish(&w));
    assert_true(json_equal(json_object_get(o, "result"), nested));
    assert_string_equal(json_string_value(json_object_get(o, "id")), "big");
    json_decref(o);
    json_decref(nested);
    json_decref(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_in_order),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_strings_are_escaped),
        cmocka_unit_test(test_bytes_that_are_not_utf8_become_question_marks),
        cmocka_unit_test(test_times_keep_microseconds),
        cmocka_unit_test(test_values_of_any_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
