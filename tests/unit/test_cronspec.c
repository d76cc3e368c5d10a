/* Unit tests for cronspec.c: crontab fields, aliases, @every, and the next
 * tick across the tricky cases (day-of-month vs day-of-week, DST changes in
 * both directions, Feb 29, a configured time zone). Expected times were
 * computed with Python's zoneinfo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cronspec.h"

static jobq_cronspec parse_ok(const char *text) {
    jobq_cronspec s;
    char why[256] = "";
    if (jobq_cronspec_parse(&s, text, why, sizeof why) != 0) fail_msg("'%s' refused: %s", text, why);
    return s;
}

static void refused(const char *text, const char *needle) {
    jobq_cronspec s;
    char why[256] = "";
    assert_int_equal(jobq_cronspec_parse(&s, text, why, sizeof why), -1);
    if (!strstr(why, needle)) fail_msg("'%s': message '%s' lacks '%s'", text, why, needle);
}

static void test_fields(void **state) {
    (void)state;
    jobq_cronspec s = parse_ok("*/15 0-6/2 1,15 jan-mar mon-fri");
    assert_true(s.minutes == ((1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45)));
    assert_int_equal(s.hours, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 6));
    assert_int_equal(s.days, (1u << 1) | (1u << 15));
    assert_int_equal(s.months, (1u << 1) | (1u << 2) | (1u << 3));
    assert_int_equal(s.weekdays, 0x3e);
    assert_false(s.dom_star);
    assert_true(s.every == 0);
    s = parse_ok("0 0 * * 7");        /* 7 is Sunday too */
    assert_int_equal(s.weekdays, 1);
    s = parse_ok("0 0 * * FRI-SUN");  /* names in any case; sun ends a range as 7 */
    assert_int_equal(s.weekdays, (1u << 5) | (1u << 6) | 1u);
    s = parse_ok("5/20 * * * 5-7");
    assert_true(s.minutes == ((1ULL << 5) | (1ULL << 25) | (1ULL << 45)));
    assert_int_equal(s.weekdays, (1u << 5) | (1u << 6) | 1u);
    s = parse_ok("  @hourly ");
    assert_true(s.minutes == 1 && s.hours == 0xffffff && s.dom_star && s.dow_star);
    s = parse_ok("@weekly");
    assert_int_equal(s.weekdays, 1);
    s = parse_ok("@every 1h30m");
    assert_true(s.every == 5400);
    s = parse_ok("@every 10s");
    assert_true(s.every == 10);
}

static void test_refusals(void **state) {
    (void)state;
    refused("60 * * * *", "minute");
    refused("* 24 * * *", "hour");
    refused("* * 0 * *", "day of month");
    refused("* * * 13 *", "month");
    refused("* * * * 8", "day of week");
    refused("5-1 * * * *", "minute");
    refused("*/0 * * * *", "minute");
    refused("* * * *", "5 fields");
    refused("* * * * * *", "more");
    refused("* * * foo *", "month");
    refused("@reboot", "unknown schedule");
    refused("@every 0s", "@every");
    refused("@every 10", "@every");
    refused("@every 1.5s", "@every");
    refused("@every 400d", "@every");
    refused("", "5 fields");
}

static void test_every_is_aligned_to_the_epoch(void **state) {
    (void)state;
    jobq_cronspec s = parse_ok("@every 10s");
    assert_true(jobq_cronspec_next(&s, "UTC", 1000) == 1010);
    assert_true(jobq_cronspec_next(&s, "UTC", 1005) == 1010);
    assert_true(jobq_cronspec_next(&s, "Europe/Berlin", 1009) == 1010); /* no zone in it */
}

static void test_feb_29(void **state) {
    (void)state;
    jobq_cronspec s = parse_ok("0 0 29 2 *");
    assert_true(jobq_cronspec_next(&s, "UTC", 1735689600) == 1835395200);          /* 2025-01-01 -> 2028-02-29 */
    assert_true(jobq_cronspec_next(&s, "Europe/Berlin", 1709251200) == 1835391600); /* local midnight */
    s = parse_ok("0 0 30 2 *");
    assert_true(jobq_cronspec_next(&s, "UTC", 1735689600) == -1);                   /* never */
}

static void test_day_of_month_or_day_of_week(void **state) {
    (void)state;
    long long sep1 = 1725148800; /* 2024-09-01, a Sunday */
    jobq_cronspec s = parse_ok("0 12 13 * 5");                       /* the 13th OR a Friday */
    assert_true(jobq_cronspec_next(&s, "UTC", sep1) == 1725624000);   /* Fri Sep 6 */
    s = parse_ok("0 12 13 * *");
    assert_true(jobq_cronspec_next(&s, "UTC", sep1) == 1726228800);   /* Sep 13 */
    s = parse_ok("0 12 * * fri");
    assert_true(jobq_cronspec_next(&s, "UTC", sep1) == 1725624000);
    s = parse_ok("0 12 */10 * 5");                                   /* '*' first: AND */
    assert_true(jobq_cronspec_next(&s, "UTC", sep1) == 1728648000);   /* Fri Oct 11 */
}

static void test_dst_starts(void **state) {
    (void)state;
    /* New York, 2024-03-10: 02:00 EST jumps to 03:00 EDT. */
    jobq_cronspec s = parse_ok("30 2 * * *");
    long long t = jobq_cronspec_next(&s, "America/New_York", 1710003600); /* Mar 9 12:00 */
    assert_true(t == 1710054000);                                         /* the jump: 03:00 EDT */
    assert_true(jobq_cronspec_next(&s, "America/New_York", t) == 1710138600); /* Mar 11 02:30 EDT */
    s = parse_ok("*/20 2 * * *"); /* three skipped times fire once */
    t = jobq_cronspec_next(&s, "America/New_York", 1710003600);
    assert_true(t == 1710054000);
    assert_true(jobq_cronspec_next(&s, "America/New_York", t) == 1710138600 - 1800);
}

static void test_dst_ends(void **state) {
    (void)state;
    /* New York, 2024-11-03: 02:00 EDT goes back to 01:00 EST; 01:30 occurs twice. */
    jobq_cronspec s = parse_ok("30 1 * * *");
    long long t = jobq_cronspec_next(&s, "America/New_York", 1730563200); /* Nov 2 12:00 */
    assert_true(t == 1730611800);                                         /* 01:30 EDT, the first */
    assert_true(jobq_cronspec_next(&s, "America/New_York", t) == 1730701800); /* Nov 4, not 01:30 EST */
    s = parse_ok("*/30 * * * *");
    assert_true(jobq_cronspec_next(&s, "America/New_York", t) == 1730617200); /* then 02:00 EST */
}

static void test_zone_is_restored(void **state) {
    (void)state;
    setenv("TZ", "Asia/Tokyo", 1);
    jobq_cronspec s = parse_ok("0 9 * * *");
    assert_true(jobq_cronspec_next(&s, "Europe/Berlin", 1719792000) == 1719817200); /* 09:00 CEST */
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    assert_true(jobq_cronspec_next(&s, "", 1719792000) == 1719792000 + 86400); /* 09:00 JST is 00:00 UTC */
    unsetenv("TZ");
    assert_true(jobq_cronspec_next(&s, "UTC", 1719792000) == 1719792000 + 9 * 3600);
    assert_null(getenv("TZ"));
}

static void test_valid_tz(void **state) {
    (void)state;
    assert_true(jobq_cronspec_valid_tz(""));
    assert_true(jobq_cronspec_valid_tz("UTC"));
    assert_true(jobq_cronspec_valid_tz("Europe/Berlin"));
    assert_false(jobq_cronspec_valid_tz("Europe/Nowhere"));
    assert_false(jobq_cronspec_valid_tz("../etc/passwd"));
    assert_false(jobq_cronspec_valid_tz("/etc/localtime"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_every_is_aligned_to_the_epoch),
        cmocka_unit_test(test_feb_29),
        cmocka_unit_test(test_day_of_month_or_day_of_week),
        cmocka_unit_test(test_dst_starts),
        cmocka_unit_test(test_dst_ends),
        cmocka_unit_test(test_zone_is_restored),
        cmocka_unit_test(test_valid_tz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
