/*
 * Cron schedules: parse a SPEC (the 5-field crontab form, an @hourly-style
 * alias, or @every DURATION) and compute its next fire time in a time zone.
 * Pure apart from the time zone database: a zone is applied by setting TZ
 * for the computation and restoring it after (single-threaded callers).
 * A fire time ("tick") is a whole Unix second, the same on every host for
 * the same spec and zone, which is what makes it a cross-daemon identity.
 */
#ifndef JOBQ_CRONSPEC_H
#define JOBQ_CRONSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jobq_cronspec {
    uint64_t minutes;   /* bit m: minute m, 0-59 */
    uint32_t hours;     /* bit h: hour h, 0-23 */
    uint32_t days;      /* bit d: day of month d, 1-31 */
    uint16_t months;    /* bit m: month m, 1-12 */
    uint8_t weekdays;   /* bit w: day of week w, 0 (Sunday) - 6 */
    bool dom_star;      /* the day-of-month field began with '*' */
    bool dow_star;      /* the day-of-week field began with '*' */
    long every;         /* @every: seconds between ticks (ticks at multiples of it
                         * since the Unix epoch); 0 for a crontab schedule */
} jobq_cronspec;

/* Parse text: "MIN HOUR DOM MONTH DOW" (each field '*', N, N-M, lists with
 * ',', steps '/S' after '*' or a range or N; month and weekday names jan..dec,
 * sun..sat; weekday 7 is Sunday), an alias (@yearly, @annually, @monthly,
 * @weekly, @daily, @midnight, @hourly) or "@every DURATION" (whole seconds,
 * 1 s to 366 days: 10s, 5m, 1h30m, 2d). 0, or -1 with why filled. */
int jobq_cronspec_parse(jobq_cronspec *out, const char *text, char *why, size_t why_size);

/* The first tick strictly after `after` (Unix seconds) in time zone tz
 * (an IANA name such as "Europe/Berlin", or "UTC"; NULL or "" = the
 * process's local zone), or -1 when there is none within 9 years (a spec
 * such as "0 0 30 2 *"). Day of month and day of week: when both fields are
 * restricted (neither begins with '*') a day matching either counts, as in
 * Vixie cron. DST: a wall-clock time that occurs twice fires once, at its
 * first occurrence; one that a change skips fires once, at the instant the
 * change ends (02:30 during a 02:00 -> 03:00 jump fires at 03:00). */
long long jobq_cronspec_next(const jobq_cronspec *s, const char *tz, long long after);

/* Is tz usable: "", "UTC", or a zone file under /usr/share/zoneinfo
 * (A-Z a-z 0-9 _ + - / only, no "..")? */
bool jobq_cronspec_valid_tz(const char *tz);

#endif
