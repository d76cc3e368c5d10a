/*
 * Unit tests of URL redaction for wordcount (src/daemon/handlers/url_redact.c):
 * userinfo hidden in every form curl could read as credentials, URLs without
 * it unchanged, and the check of curl's error text for leaked pieces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/handlers/url_redact.h"

static void redacts_to(const char *url, const char *want) {
    char *got = jobq_url_redact(url);
    assert_non_null(got);
    if (strcmp(got, want) != 0) fail_msg("redact(%s) = %s, want %s", url, got, want);
    free(got);
}

static void test_userinfo_hidden(void **state) {
    (void)state;
    redacts_to("http://user:secret@127.0.0.1:8080/x", "http://***@127.0.0.1:8080/x");
    redacts_to("https://user@example.test/", "https://***@example.test/");
    redacts_to("http://:secret@h/", "http://***@h/");
    redacts_to("http://user:@h", "http://***@h");
    redacts_to("http://@h/", "http://***@h/");
    redacts_to("HTTP://u:p@h?q=1#f", "HTTP://***@h?q=1#f");
    redacts_to("http://u%40x:p%3Aw@h/", "http://***@h/");
    /* several '@': everything up to the last one of the authority */
    redacts_to("http://u:p@ss@h/a@b", "http://***@h/a@b");
    /* odd slash counts and backslashes after the scheme */
    redacts_to("http:/u:p@h/", "http:/***@h/");
    redacts_to("http:///u:p@h/", "http:///***@h/");
    redacts_to("http:\\\\u:p@h/", "http:\\\\***@h/");
    /* a backslash does not end the authority */
    redacts_to("http://u:p\\w@h/", "http://***@h/");
    /* no scheme: the authority starts at the beginning */
    redacts_to("user:secret@h/x", "***@h/x");
    redacts_to("ftp://user:secret@h/", "ftp://***@h/");
    redacts_to("http://[::1]:80/", "http://[::1]:80/");
    redacts_to("http://u:p@[::1]:80/", "http://***@[::1]:80/");
}

static void test_unchanged(void **state) {
    (void)state;
    const char *same[] = {
        "http://127.0.0.1:8080/words.txt", "https://example.test/a@b", "http://h/?to=a@b",
        "http://h#x@y", "http://h", "", "x", "http://", "mailto", "http:",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) redacts_to(same[i], same[i]);
    assert_null(jobq_url_redact(NULL));
}

static void test_leaks(void **state) {
    (void)state;
    const char *url = "http://alice:s%65cret@h/";
    assert_true(jobq_url_redact_leaks(url, "bad URL http://alice:s%65cret@h/"));
    assert_true(jobq_url_redact_leaks(url, "login alice failed"));
    assert_true(jobq_url_redact_leaks(url, "password s%65cret"));
    assert_true(jobq_url_redact_leaks(url, "password secret")); /* decoded */
    assert_false(jobq_url_redact_leaks(url, "Failed to connect to h port 80: Connection refused"));
    assert_false(jobq_url_redact_leaks(url, ""));
    assert_false(jobq_url_redact_leaks("http://h/", "alice secret"));
    assert_false(jobq_url_redact_leaks(NULL, "x"));
    assert_false(jobq_url_redact_leaks(url, NULL));
    /* empty pieces never match: ":pw@" has no user, "u@" no password */
    assert_false(jobq_url_redact_leaks("http://:pw@h/", "any text"));
    assert_true(jobq_url_redact_leaks("http://:pw@h/", "the pw"));
    assert_false(jobq_url_redact_leaks("http://u@h/", "none"));
    assert_true(jobq_url_redact_leaks("http://u@h/", "user u"));
    /* a '%' at the end or with bad hex stays as written */
    assert_true(jobq_url_redact_leaks("http://a:b%@h/", "b%"));
    assert_true(jobq_url_redact_leaks("http://a:b%zz@h/", "b%zz"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_userinfo_hidden),
        cmocka_unit_test(test_unchanged),
        cmocka_unit_test(test_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
