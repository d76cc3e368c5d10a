/*
 * Unit tests of the wordcount SSRF address classifier
 * (src/daemon/handlers/addr_policy.c): both edges of every refused IPv4 and
 * IPv6 range, the IPv4-mapped, IPv4-compatible and NAT64 forms, public neighbours just
 * outside each range, other families, and the text shown in messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "daemon/handlers/addr_policy.h"

static jobq_addr_class class4(const char *text) {
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons(80);
    if (inet_pton(AF_INET, text, &in.sin_addr) != 1) fail_msg("bad IPv4 literal %s", text);
    return jobq_addr_policy_classify((const struct sockaddr *)&in, sizeof in);
}

static jobq_addr_class class6(const char *text) {
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(443);
    if (inet_pton(AF_INET6, text, &in6.sin6_addr) != 1) fail_msg("bad IPv6 literal %s", text);
    return jobq_addr_policy_classify((const struct sockaddr *)&in6, sizeof in6);
}

struct want {
    const char *addr;
    jobq_addr_class c;
};

static void check4(const struct want *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        jobq_addr_class got = class4(w[i].addr);
        if (got != w[i].c)
            fail_msg("%s: got %s, want %s", w[i].addr, jobq_addr_policy_describe(got),
                     jobq_addr_policy_describe(w[i].c));
    }
}

static void check6(const struct want *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        jobq_addr_class got = class6(w[i].addr);
        if (got != w[i].c)
            fail_msg("%s: got %s, want %s", w[i].addr, jobq_addr_policy_describe(got),
                     jobq_addr_policy_describe(w[i].c));
    }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Each IPv4 range at both ends, and the addresses just outside it. */
static const struct want v4[] = {
    {"0.0.0.0", JOBQ_ADDR_UNSPECIFIED},
    {"0.255.255.255", JOBQ_ADDR_UNSPECIFIED},
    {"1.0.0.0", JOBQ_ADDR_PUBLIC},
    {"126.255.255.255", JOBQ_ADDR_PUBLIC},
    {"127.0.0.0", JOBQ_ADDR_LOOPBACK},
    {"127.0.0.1", JOBQ_ADDR_LOOPBACK},
    {"127.255.255.255", JOBQ_ADDR_LOOPBACK},
    {"128.0.0.0", JOBQ_ADDR_PUBLIC},
    {"9.255.255.255", JOBQ_ADDR_PUBLIC},
    {"10.0.0.0", JOBQ_ADDR_PRIVATE},
    {"10.255.255.255", JOBQ_ADDR_PRIVATE},
    {"11.0.0.0", JOBQ_ADDR_PUBLIC},
    {"172.15.255.255", JOBQ_ADDR_PUBLIC},
    {"172.16.0.0", JOBQ_ADDR_PRIVATE},
    {"172.31.255.255", JOBQ_ADDR_PRIVATE},
    {"172.32.0.0", JOBQ_ADDR_PUBLIC},
    {"192.167.255.255", JOBQ_ADDR_PUBLIC},
    {"192.168.0.0", JOBQ_ADDR_PRIVATE},
    {"192.168.255.255", JOBQ_ADDR_PRIVATE},
    {"192.169.0.0", JOBQ_ADDR_PUBLIC},
    {"169.253.255.255", JOBQ_ADDR_PUBLIC},
    {"169.254.0.0", JOBQ_ADDR_LINK_LOCAL},
    {"169.254.169.254", JOBQ_ADDR_LINK_LOCAL}, /* cloud metadata */
    {"169.254.255.255", JOBQ_ADDR_LINK_LOCAL},
    {"169.255.0.0", JOBQ_ADDR_PUBLIC},
    {"100.63.255.255", JOBQ_ADDR_PUBLIC},
    {"100.64.0.0", JOBQ_ADDR_SHARED},
    {"100.127.255.255", JOBQ_ADDR_SHARED},
    {"100.128.0.0", JOBQ_ADDR_PUBLIC},
    {"8.8.8.8", JOBQ_ADDR_PUBLIC},
    {"93.184.216.34", JOBQ_ADDR_PUBLIC},
    {"255.255.255.255", JOBQ_ADDR_PUBLIC}, /* not in any refused range; TCP cannot reach it */
};

static void test_ipv4_ranges(void **state) {
    (void)state;
    check4(v4, N(v4));
}

static const struct want v6[] = {
    {"::", JOBQ_ADDR_UNSPECIFIED},
    {"::1", JOBQ_ADDR_LOOPBACK},
    {"::2", JOBQ_ADDR_UNSPECIFIED}, /* IPv4-compatible 0.0.0.2 */
    {"::1:0:0:0", JOBQ_ADDR_PUBLIC},
    {"fe80::", JOBQ_ADDR_LINK_LOCAL},
    {"fe80::1", JOBQ_ADDR_LINK_LOCAL},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", JOBQ_ADDR_LINK_LOCAL},
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", JOBQ_ADDR_PUBLIC},
    {"fec0::", JOBQ_ADDR_PRIVATE}, /* site-local (deprecated) */
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", JOBQ_ADDR_PRIVATE},
    {"fc00::", JOBQ_ADDR_PRIVATE},
    {"fd12:3456:789a::1", JOBQ_ADDR_PRIVATE},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", JOBQ_ADDR_PRIVATE},
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", JOBQ_ADDR_PUBLIC},
    {"ff02::1", JOBQ_ADDR_PUBLIC}, /* multicast: not refused, TCP cannot use it */
    {"2001:4860:4860::8888", JOBQ_ADDR_PUBLIC},
    {"2606:2800:220:1:248:1893:25c8:1946", JOBQ_ADDR_PUBLIC},
};

static void test_ipv6_ranges(void **state) {
    (void)state;
    check6(v6, N(v6));
}

/* ::ffff:a.b.c.d, ::a.b.c.d and 64:ff9b::a.b.c.d are classified as a.b.c.d. */
static void test_ipv4_in_ipv6(void **state) {
    (void)state;
    char text[64];
    for (size_t i = 0; i < N(v4); i++) {
        snprintf(text, sizeof text, "::ffff:%s", v4[i].addr);
        struct want m = {text, v4[i].c};
        check6(&m, 1);
        snprintf(text, sizeof text, "64:ff9b::%s", v4[i].addr);
        struct want n = {text, v4[i].c};
        check6(&n, 1);
        snprintf(text, sizeof text, "::%s", v4[i].addr);
        struct want c = {text, v4[i].c};
        check6(&c, 1);
    }
    /* next to those prefixes, the embedded IPv4 address means nothing */
    static const struct want near[] = {
        {"::fffe:127.0.0.1", JOBQ_ADDR_PUBLIC},
        {"1::ffff:127.0.0.1", JOBQ_ADDR_PUBLIC},
        {"64:ff9b:1::7f00:1", JOBQ_ADDR_PUBLIC},
        {"::ffff:0:7f00:1", JOBQ_ADDR_PUBLIC}, /* IPv4-translated, not mapped */
    };
    check6(near, N(near));
}

static void test_not_ip(void **state) {
    (void)state;
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "/tmp/x.sock");
    assert_int_equal(jobq_addr_policy_classify((const struct sockaddr *)&un, sizeof un), JOBQ_ADDR_NOT_IP);
    assert_int_equal(jobq_addr_policy_classify(NULL, 0), JOBQ_ADDR_NOT_IP);

    /* a length too short for the family is not read past */
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(0x08080808);
    assert_int_equal(jobq_addr_policy_classify((const struct sockaddr *)&in, sizeof in), JOBQ_ADDR_PUBLIC);
    assert_int_equal(jobq_addr_policy_classify((const struct sockaddr *)&in, sizeof in - 1), JOBQ_ADDR_NOT_IP);
    assert_int_equal(jobq_addr_policy_classify((const struct sockaddr *)&in, 1), JOBQ_ADDR_NOT_IP);
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_addr.s6_addr[0] = 0x20;
    assert_int_equal(jobq_addr_policy_classify((const struct sockaddr *)&in6, sizeof in6), JOBQ_ADDR_PUBLIC);
    assert_int_equal(jobq_addr_policy_classify((const struct sockaddr *)&in6, sizeof(struct sockaddr_in)),
                     JOBQ_ADDR_NOT_IP);
}

/* The address as messages show it, and the reason of each class. */
static void test_format_and_describe(void **state) {
    (void)state;
    char buf[INET6_ADDRSTRLEN];
    struct sockaddr_in in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    assert_string_equal(jobq_addr_policy_format((const struct sockaddr *)&in, sizeof in, buf, sizeof buf),
                        "127.0.0.1");
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr);
    assert_string_equal(jobq_addr_policy_format((const struct sockaddr *)&in6, sizeof in6, buf, sizeof buf),
                        "::ffff:10.1.2.3");
    assert_string_equal(jobq_addr_policy_format(NULL, 0, buf, sizeof buf), "(not an IP address)");
    char tiny[4];
    jobq_addr_policy_format((const struct sockaddr *)&in6, sizeof in6, tiny, sizeof tiny);
    assert_true(strlen(tiny) < sizeof tiny);

    assert_string_equal(jobq_addr_policy_describe(JOBQ_ADDR_LOOPBACK), "a loopback address");
    assert_string_equal(jobq_addr_policy_describe(JOBQ_ADDR_PRIVATE), "a private address");
    assert_string_equal(jobq_addr_policy_describe(JOBQ_ADDR_LINK_LOCAL), "a link-local address");
    assert_string_equal(jobq_addr_policy_describe(JOBQ_ADDR_UNSPECIFIED), "an unspecified address");
    assert_string_equal(jobq_addr_policy_describe(JOBQ_ADDR_SHARED), "a shared (carrier-grade NAT) address");
    assert_string_equal(jobq_addr_policy_describe(JOBQ_ADDR_NOT_IP), "not an IP address");
    assert_string_equal(jobq_addr_policy_describe(JOBQ_ADDR_PUBLIC), "a public address");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_ranges),
        cmocka_unit_test(test_ipv6_ranges),
        cmocka_unit_test(test_ipv4_in_ipv6),
        cmocka_unit_test(test_not_ip),
        cmocka_unit_test(test_format_and_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
