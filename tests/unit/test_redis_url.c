/*
 * Unit tests of the Redis URL parser (src/core/redis_url.c): every accepted form,
 * percent-decoding, each kind of error (and that no error repeats a
 * password), and the redacted printable form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/redis_url.h"

static void parse_ok(const char *text, jobq_redis_url *u) {
    jobq_err err;
    jobq_err_clear(&err);
    int rc = jobq_redis_url_parse(text, u, &err);
    if (rc != 0) print_error("parse of '%s' failed: %s\n", text, err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(err.code, JOBQ_E_NONE);
}

/* Parse must fail with JOBQ_E_INVALID, a message containing want, and leave
 * *u zeroed. */
static void parse_fails(const char *text, const char *want) {
    jobq_redis_url u;
    memset(&u, 0x5a, sizeof u);
    jobq_err err;
    jobq_err_clear(&err);
    int rc = jobq_redis_url_parse(text, &u, &err);
    if (rc == 0 || !strstr(err.msg, want))
        print_error("'%s': rc=%d msg='%s', wanted '%s'\n", text, rc, err.msg, want);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, JOBQ_E_INVALID);
    assert_non_null(strstr(err.msg, want));
    assert_null(u.host);
    assert_null(u.socket_path);
    assert_null(u.user);
    assert_null(u.password);
    jobq_redis_url_fini(&u);
}

static void test_tcp_full(void **state) {
    (void)state;
    jobq_redis_url u;
    parse_ok("redis://127.0.0.1:6379/0", &u);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_null(u.socket_path);
    assert_null(u.user);
    assert_null(u.password);
    jobq_redis_url_fini(&u);

    parse_ok("redis://cache.example.com:6380/15", &u);
    assert_string_equal(u.host, "cache.example.com");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 15);
    jobq_redis_url_fini(&u);
}

static void test_tcp_defaults(void **state) {
    (void)state;
    jobq_redis_url u;
    parse_ok("redis://localhost", &u);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    jobq_redis_url_fini(&u);

    parse_ok("redis://localhost/", &u);
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    jobq_redis_url_fini(&u);

    parse_ok("redis://h/7", &u);
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 7);
    jobq_redis_url_fini(&u);

    parse_ok("REDIS://h:1/1000000", &u);
    assert_int_equal(u.port, 1);
    assert_int_equal(u.db, 1000000);
    jobq_redis_url_fini(&u);

    parse_ok("redis://h:65535", &u);
    assert_int_equal(u.port, 65535);
    jobq_redis_url_fini(&u);
}

static void test_credentials(void **state) {
    (void)state;
    jobq_redis_url u;
    parse_ok("redis://:secret@host", &u);
    assert_null(u.user);
    assert_string_equal(u.password, "secret");
    assert_string_equal(u.host, "host");
    assert_int_equal(u.port, 6379);
    jobq_redis_url_fini(&u);

    parse_ok("redis://alice:secret@host:7000/3", &u);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "secret");
    assert_string_equal(u.host, "host");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);
    jobq_redis_url_fini(&u);

    /* the last '@' ends the credentials; ':' after the first belongs to the password */
    parse_ok("redis://:p@ss:w@host", &u);
    assert_string_equal(u.password, "p@ss:w");
    assert_string_equal(u.host, "host");
    jobq_redis_url_fini(&u);

    /* ":@" is no credentials at all */
    parse_ok("redis://:@host", &u);
    assert_null(u.user);
    assert_null(u.password);
    jobq_redis_url_fini(&u);
}

static void test_percent_decoding(void **state) {
    (void)state;
    jobq_redis_url u;
    parse_ok("redis://us%40er%3a1:p%3Aa%2Fss%25%20x%23@host", &u);
    assert_string_equal(u.user, "us@er:1");
    assert_string_equal(u.password, "p:a/ss% x#");
    jobq_redis_url_fini(&u);

    parse_ok("unix:///run/redis.sock?user=b%26b&password=a%3D1%26", &u);
    assert_string_equal(u.user, "b&b");
    assert_string_equal(u.password, "a=1&");
    jobq_redis_url_fini(&u);
}

static void test_ipv6(void **state) {
    (void)state;
    jobq_redis_url u;
    parse_ok("redis://[::1]:6380/2", &u);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    jobq_redis_url_fini(&u);

    parse_ok("redis://:pw@[::ffff:10.0.0.1]", &u);
    assert_string_equal(u.host, "::ffff:10.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_string_equal(u.password, "pw");
    jobq_redis_url_fini(&u);

    parse_ok("redis://[2001:db8::7]/9", &u);
    assert_string_equal(u.host, "2001:db8::7");
    assert_int_equal(u.db, 9);
    jobq_redis_url_fini(&u);
}

static void test_unix(void **state) {
    (void)state;
    jobq_redis_url u;
    parse_ok("unix:///tmp/redis.sock", &u);
    assert_string_equal(u.socket_path, "/tmp/redis.sock");
    assert_null(u.host);
    assert_int_equal(u.db, 0);
    assert_null(u.password);
    jobq_redis_url_fini(&u);

    parse_ok("unix:///var/run/redis/redis-server.sock?db=12", &u);
    assert_string_equal(u.socket_path, "/var/run/redis/redis-server.sock");
    assert_int_equal(u.db, 12);
    jobq_redis_url_fini(&u);

    parse_ok("unix:///s?password=pw&db=1&user=bob", &u);
    assert_string_equal(u.socket_path, "/s");
    assert_int_equal(u.db, 1);
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "pw");
    jobq_redis_url_fini(&u);

    /* empty parameters are ignored; the last db wins */
    parse_ok("unix:///s?&db=1&&db=4", &u);
    assert_int_equal(u.db, 4);
    jobq_redis_url_fini(&u);

    parse_ok("unix:///s?", &u);
    assert_string_equal(u.socket_path, "/s");
    jobq_redis_url_fini(&u);
}

static void test_bad_scheme(void **state) {
    (void)state;
    parse_fails("http://localhost:6379", "unknown scheme 'http'");
    parse_fails("http://localhost:6379", "redis://, rediss://, unix://");
    parse_fails("tcp://h", "unknown scheme 'tcp'");
    parse_fails("redis+cluster2://h:1", "unknown scheme");
    parse_fails("localhost:6379", "not a Redis URL");
    parse_fails("://h", "not a Redis URL");
    parse_fails("", "empty Redis URL");
    parse_fails(NULL, "empty Redis URL");
}

/* rediss://, redis+sentinel:// and redis+cluster:// (DESIGN.md "Redis URL forms"). */
static void test_tls_sentinel_cluster(void **state) {
    (void)state;
    jobq_redis_url u;
    parse_ok("rediss://:pw@cache.example.com:6380/2", &u);
    assert_true(u.tls);
    assert_int_equal(u.kind, JOBQ_REDIS_SERVER);
    assert_string_equal(u.host, "cache.example.com");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    jobq_redis_url_fini(&u);

    parse_ok("redis+sentinel://u:p@s1,s2:26380,[::1]/my%20master/3", &u);
    assert_int_equal(u.kind, JOBQ_REDIS_SENTINEL);
    assert_false(u.tls);
    assert_int_equal(u.nhosts, 3);
    assert_string_equal(u.hosts[0].host, "s1");
    assert_int_equal(u.hosts[0].port, 26379); /* the sentinel default */
    assert_int_equal(u.hosts[1].port, 26380);
    assert_string_equal(u.hosts[2].host, "::1");
    assert_string_equal(u.master_name, "my master");
    assert_int_equal(u.db, 3);
    assert_string_equal(u.user, "u");
    jobq_redis_url_fini(&u);

    parse_ok("rediss+sentinel://s1/m", &u);
    assert_true(u.tls);
    assert_string_equal(u.master_name, "m");
    jobq_redis_url_fini(&u);

    parse_ok("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001", &u);
    assert_int_equal(u.kind, JOBQ_REDIS_CLUSTER);
    assert_int_equal(u.nhosts, 2);
    assert_int_equal(u.hosts[1].port, 7001);
    assert_int_equal(u.db, 0);
    jobq_redis_url_fini(&u);

    parse_fails("redis+sentinel://s1", "names the master");
    parse_fails("redis+sentinel://s1/", "names the master");
    parse_fails("redis+cluster://h", "needs its port");
    parse_fails("redis+cluster://h:1/2", "only db 0");
    parse_fails("redis://a:1,b:2", "several hosts");
    parse_fails("redis+cluster://h:1,", "empty host");
}

static void test_bad_host(void **state) {
    (void)state;
    parse_fails("redis://", "empty host");
    parse_fails("redis:///0", "empty host");
    parse_fails("redis://:6379", "empty host");
    parse_fails("redis://:pw@/0", "empty host");
    parse_fails("redis://[]:6379", "empty host");
    parse_fails("redis://[::1", "missing ']'");
    parse_fails("redis://[::1]x", "after ']'");
    parse_fails("redis://ho st", "bad character ' '");
    parse_fails("redis://::1", "IPv6 addresses go in brackets");
}

static void test_bad_port(void **state) {
    (void)state;
    parse_fails("redis://h:0", "bad Redis port '0'");
    parse_fails("redis://h:65536", "bad Redis port '65536'");
    parse_fails("redis://h:99999999999999999999", "bad Redis port");
    parse_fails("redis://h:", "bad Redis port ''");
    parse_fails("redis://h:abc/0", "bad Redis port 'abc'");
    parse_fails("redis://h:-1", "bad Redis port '-1'");
    parse_fails("redis://h:+80", "bad Redis port '+80'");
    parse_fails("redis://h:6379:1", "IPv6 addresses go in brackets");
    parse_fails("redis://[::1]:0", "bad Redis port '0'");
}

static void test_bad_db(void **state) {
    (void)state;
    parse_fails("redis://h/abc", "bad Redis db 'abc'");
    parse_fails("redis://h/-1", "bad Redis db '-1'");
    parse_fails("redis://h/1000001", "bad Redis db '1000001'");
    parse_fails("redis://h/1/2", "bad Redis db '1/2'");
    parse_fails("redis://h/ 1", "bad Redis db ' 1'");
    parse_fails("redis://h/0x1", "bad Redis db '0x1'");
    parse_fails("redis://h?db=1", "unexpected '?'");
    parse_fails("unix:///s?db=", "bad Redis db ''");
    parse_fails("unix:///s?db", "bad Redis db ''");
    parse_fails("unix:///s?db=two", "bad Redis db 'two'");
    parse_fails("unix:///s?db=1000001", "bad Redis db");
}

static void test_bad_socket(void **state) {
    (void)state;
    parse_fails("unix://", "empty socket path");
    parse_fails("unix://?db=1", "empty socket path");
    parse_fails("unix://redis.sock", "not absolute");
    parse_fails("unix:///s?foo=1", "unknown query parameter 'foo'");
    parse_fails("unix:///s?db=1&timeout=3", "unknown query parameter 'timeout'");
    parse_fails("unix:///s?user=bob", "needs a password");
}

/* Errors about credentials never repeat them. */
static void test_bad_credentials(void **state) {
    (void)state;
    const char *cases[][2] = {
        {"redis://:s3cr%zzet@h", "bad percent-escape in the Redis password"},
        {"redis://:s3cr%2@h", "bad percent-escape in the Redis password"},
        {"redis://:s3cr%00et@h", "bad percent-escape in the Redis password"},
        {"redis://us%g1er:s3cret@h", "bad percent-escape in the Redis user"},
        {"redis://s3cret@h", "':password@'"},
        {"redis://alice:@h", "needs a password"},
        {"redis://:s3c/ret@h", "percent-encode"},
        {"redis://:s3c?ret@h", "percent-encode"},
        {"redis://:s3c#ret@h:1x", "percent-encode"},
        {"unix:///s?password=s3cr%zz", "bad percent-escape in the Redis password"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_fails(cases[i][0], cases[i][1]);
        jobq_redis_url u;
        jobq_err err;
        jobq_redis_url_parse(cases[i][0], &u, &err);
        assert_null(strstr(err.msg, "s3c"));
    }
}

static void test_null_err(void **state) {
    (void)state;
    jobq_redis_url u;
    assert_int_equal(jobq_redis_url_parse("bogus", &u, NULL), -1);
    assert_null(u.host);
    assert_int_equal(jobq_redis_url_parse("redis://h", &u, NULL), 0);
    jobq_redis_url_fini(&u);
    jobq_redis_url_fini(&u); /* a zeroed struct is fine */
    jobq_redis_url_fini(NULL);
}

static void format(const char *text, char *buf, size_t size) {
    jobq_redis_url u;
    parse_ok(text, &u);
    jobq_redis_url_format_redacted(&u, buf, size);
    jobq_redis_url_fini(&u);
}

static void test_redacted(void **state) {
    (void)state;
    char buf[256];
    format("redis://user:pass@host", buf, sizeof buf);
    assert_string_equal(buf, "redis://user:***@host:6379/0");
    format("redis://:pass@host:6380/2", buf, sizeof buf);
    assert_string_equal(buf, "redis://:***@host:6380/2");
    format("redis://host", buf, sizeof buf);
    assert_string_equal(buf, "redis://host:6379/0");
    format("redis://[::1]:6380/2", buf, sizeof buf);
    assert_string_equal(buf, "redis://[::1]:6380/2");
    format("redis://a%40b%3Ac:pw@h", buf, sizeof buf);
    assert_string_equal(buf, "redis://a%40b%3Ac:***@h:6379/0");
    format("unix:///tmp/r.sock", buf, sizeof buf);
    assert_string_equal(buf, "unix:///tmp/r.sock?db=0");
    format("unix:///tmp/r.sock?db=3&password=pw&user=u", buf, sizeof buf);
    assert_string_equal(buf, "unix:///tmp/r.sock?db=3&user=u&password=***");
    format("rediss+sentinel://:pw@a,b:2/m%2F1/4", buf, sizeof buf);
    assert_string_equal(buf, "rediss+sentinel://:***@a:26379,b:2/m%2F1/4");
    format("redis+cluster://u:pw@a:1,[::1]:2", buf, sizeof buf);
    assert_string_equal(buf, "redis+cluster://u:***@a:1,[::1]:2");
}

/* Without a password the redacted form is a full URL that parses back. */
static void test_redacted_round_trip(void **state) {
    (void)state;
    const char *urls[] = {"redis://h.example:7000/5", "redis://[2001:db8::1]:1/0", "unix:///a/b.sock?db=9",
                          "rediss://h:1/2", "redis+sentinel://a:1,b:2/m/3", "redis+cluster://a:1,b:2"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char buf[256];
        jobq_redis_url a, b;
        parse_ok(urls[i], &a);
        jobq_redis_url_format_redacted(&a, buf, sizeof buf);
        parse_ok(buf, &b);
        if (a.host) assert_string_equal(a.host, b.host);
        if (a.socket_path) assert_string_equal(a.socket_path, b.socket_path);
        assert_int_equal(a.port, b.port);
        assert_int_equal(a.db, b.db);
        jobq_redis_url_fini(&a);
        jobq_redis_url_fini(&b);
    }
}

static void test_redacted_truncates(void **state) {
    (void)state;
    char buf[12];
    memset(buf, 'x', sizeof buf);
    format("redis://user:pass@host", buf, sizeof buf);
    assert_string_equal(buf, "redis://use");
    char one[1] = {'x'};
    format("redis://h", one, sizeof one);
    assert_int_equal(one[0], '\0');
    jobq_redis_url zero;
    memset(&zero, 0, sizeof zero);
    char b2[64];
    jobq_redis_url_format_redacted(&zero, b2, sizeof b2); /* must not crash */
    assert_non_null(strstr(b2, "redis://"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_full),
        cmocka_unit_test(test_tcp_defaults),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_percent_decoding),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_bad_scheme),
        cmocka_unit_test(test_tls_sentinel_cluster),
        cmocka_unit_test(test_bad_host),
        cmocka_unit_test(test_bad_port),
        cmocka_unit_test(test_bad_db),
        cmocka_unit_test(test_bad_socket),
        cmocka_unit_test(test_bad_credentials),
        cmocka_unit_test(test_null_err),
        cmocka_unit_test(test_redacted),
        cmocka_unit_test(test_redacted_round_trip),
        cmocka_unit_test(test_redacted_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
