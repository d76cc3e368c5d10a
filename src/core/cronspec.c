/*
 * Cron schedules (see cronspec.h): a field parser over bit sets, and a
 * next-tick search that walks calendar days (pure arithmetic) and converts
 * only matching wall-clock minutes to Unix time, with mktime under the
 * wanted TZ. The time zone is process state: it is set and restored around
 * each computation, never left changed.
 */
#include "core/cronspec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SEARCH_DAYS (366 * 9)       /* Feb 29 on a given weekday is rarer, but not 9 years rare */
#define EVERY_MAX (366L * 86400)

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* One field: its range and, for months and weekdays, its names. */
typedef struct field {
    const char *what;
    int lo, hi;
    const char *const *names; /* names[i] is lo + i */
    int nnames;
} field;

static const field fields[5] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day of month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 12},
    {"day of week", 0, 7, day_names, 7},
};

/* A number or a name at *p (advanced past it): 0 with *v, or -1. */
static int atom(const field *f, const char **p, int *v) {
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long n = 0;
        while (isdigit((unsigned char)*s) && n < 1000) n = n * 10 + (*s++ - '0');
        if (isdigit((unsigned char)*s)) return -1;
        *v = (int)n;
        *p = s;
        return 0;
    }
    for (int i = 0; i < f->nnames; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *v = f->lo + i;
            *p = s + 3;
            return 0;
        }
    }
    return -1;
}

/* Parse one field of len bytes at s into *bits. */
static int parse_field(const field *f, const char *s, size_t len, uint64_t *bits, char *why, size_t why_size) {
    char text[128];
    if (len == 0 || len >= sizeof text) {
        snprintf(why, why_size, "bad %s field", f->what);
        return -1;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    *bits = 0;
    char *save = NULL;
    for (char *item = strtok_r(text, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        const char *p = item;
        int a, b, step = 1;
        bool star = *p == '*';
        if (star) {
            a = f->lo;
            b = f->hi == 7 ? 6 : f->hi;
            p++;
        } else {
            if (atom(f, &p, &a) != 0) goto bad;
            b = a;
            if (*p == '-') {
                p++;
                if (atom(f, &p, &b) != 0) goto bad;
                if (f->hi == 7 && b == 0 && a > 0) b = 7; /* fri-sun */
            }
        }
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p)) goto bad;
            step = (int)strtol(p, (char **)&p, 10);
            if (step < 1 || step > f->hi + 1) goto bad;
            if (!star && b == a) b = f->hi == 7 ? 6 : f->hi; /* "N/S": from N to the end */
        }
        if (*p || a < f->lo || a > f->hi || b < f->lo || b > f->hi || b < a) goto bad;
        for (int v = a; v <= b; v += step) *bits |= 1ULL << (f->hi == 7 && v == 7 ? 0 : v);
        continue;
    bad:
        snprintf(why, why_size, "bad %s field '%s' (expected %d-%d%s, ranges, lists and steps)", f->what, item,
                 f->lo, f->hi, f->names ? " or names" : "");
        return -1;
    }
    return 0;
}

/* "10s", "1h30m", "2d": whole seconds, 1 to EVERY_MAX. */
static int parse_duration(const char *s, long *out) {
    long total = 0;
    if (!*s) return -1;
    while (*s) {
        if (!isdigit((unsigned char)*s)) return -1;
        char *end;
        long n = strtol(s, &end, 10);
        if (n < 0 || n > EVERY_MAX) return -1;
        long mult;
        switch (*end) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: return -1;
        }
        total += n * mult;
        if (total > EVERY_MAX) return -1;
        s = end + 1;
    }
    if (total < 1) return -1;
    *out = total;
    return 0;
}

int jobq_cronspec_parse(jobq_cronspec *out, const char *text, char *why, size_t why_size) {
    static const struct {
        const char *alias, *spec;
    } aliases[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    };
    memset(out, 0, sizeof *out);
    while (isspace((unsigned char)*text)) text++;
    if (strncmp(text, "@every", 6) == 0 && isspace((unsigned char)text[6])) {
        const char *d = text + 6;
        while (isspace((unsigned char)*d)) d++;
        char dur[64];
        snprintf(dur, sizeof dur, "%s", d);
        for (size_t n = strlen(dur); n > 0 && isspace((unsigned char)dur[n - 1]); n--) dur[n - 1] = '\0';
        if (parse_duration(dur, &out->every) != 0) {
            snprintf(why, why_size, "bad @every duration '%.40s' (whole seconds from 1s to 366d, e.g. 10s, 5m, "
                                    "1h30m)", d);
            return -1;
        }
        return 0;
    }
    if (*text == '@') {
        for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++) {
            size_t n = strlen(aliases[i].alias);
            if (strncmp(text, aliases[i].alias, n) != 0) continue;
            const char *rest = text + n;
            while (isspace((unsigned char)*rest)) rest++;
            if (!*rest) return jobq_cronspec_parse(out, aliases[i].spec, why, why_size);
        }
        snprintf(why, why_size, "unknown schedule '%.40s' (aliases: @yearly @annually @monthly @weekly @daily "
                                "@midnight @hourly, or @every DURATION)", text);
        return -1;
    }
    uint64_t bits[5];
    const char *p = text;
    for (int i = 0; i < 5; i++) {
        while (isspace((unsigned char)*p)) p++;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (p == start) {
            snprintf(why, why_size, "expected 5 fields (minute hour day-of-month month day-of-week), got %d", i);
            return -1;
        }
        if (parse_field(&fields[i], start, (size_t)(p - start), &bits[i], why, why_size) != 0) return -1;
        if (i == 2) out->dom_star = *start == '*';
        if (i == 4) out->dow_star = *start == '*';
    }
    while (isspace((unsigned char)*p)) p++;
    if (*p) {
        snprintf(why, why_size, "expected 5 fields, got more ('%.20s')", p);
        return -1;
    }
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->weekdays = (uint8_t)bits[4];
    return 0;
}

bool jobq_cronspec_valid_tz(const char *tz) {
    if (!tz || !*tz || strcmp(tz, "UTC") == 0) return true;
    if (strlen(tz) > 200 || strstr(tz, "..") || *tz == '/') return false;
    for (const char *s = tz; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_+-/", *s)) return false;
    char path[256];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", tz);
    return access(path, R_OK) == 0;
}

/* ---- calendar arithmetic ---- */

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_days(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* 0 = Sunday (Sakamoto). */
static int weekday(int y, int m, int d) {
    static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3) y--;
    return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

static bool day_matches(const jobq_cronspec *s, int y, int m, int d) {
    if (!(s->months & (1u << m))) return false;
    bool dom = s->days & (1u << d), dow = s->weekdays & (1u << weekday(y, m, d));
    return s->dom_star || s->dow_star ? dom && dow : dom || dow;
}

/* ---- wall-clock time to Unix time, in the current TZ ---- */

/* Seconds of the wall-clock time of t as if it were UTC (for comparisons). */
static long long wall_of(time_t t) {
    struct tm tm;
    localtime_r(&t, &tm);
    return (long long)timegm(&tm);
}

/* The Unix time of wall-clock y-m-d h:mi: its first occurrence when it
 * occurs twice (DST ends), the end of the jump when it does not occur (DST
 * starts). */
static long long from_wall(int y, int m, int d, int h, int mi) {
    struct tm want = {0};
    want.tm_year = y - 1900;
    want.tm_mon = m - 1;
    want.tm_mday = d;
    want.tm_hour = h;
    want.tm_min = mi;
    long long best = -1;
    for (int dst = 0; dst <= 1; dst++) {
        struct tm tm = want;
        tm.tm_isdst = dst;
        time_t t = mktime(&tm);
        if (t == (time_t)-1) continue;
        struct tm back;
        localtime_r(&t, &back);
        if (back.tm_year == want.tm_year && back.tm_mon == want.tm_mon && back.tm_mday == want.tm_mday &&
            back.tm_hour == h && back.tm_min == mi && (best < 0 || t < best))
            best = t;
    }
    if (best >= 0) return best;
    /* Skipped: the first instant whose wall clock is at or past it. Within
     * a day of a jump forward the wall clock only moves forward. */
    struct tm w = want;
    long long target = (long long)timegm(&w);
    long long lo = target - 2 * 86400, hi = target + 2 * 86400;
    while (lo < hi) {
        long long mid = lo + (hi - lo) / 2;
        if (wall_of((time_t)mid) >= target) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* The search proper, in the current TZ. */
static long long next_local(const jobq_cronspec *s, long long after) {
    long long start = after - ((after % 60) + 60) % 60 + 60; /* the next whole minute */
    time_t st = (time_t)start;
    struct tm tm;
    localtime_r(&st, &tm);
    int y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday, h = tm.tm_hour, mi = tm.tm_min;
    for (int day = 0; day < SEARCH_DAYS; day++) {
        if (day_matches(s, y, m, d)) {
            for (; h < 24; h++, mi = 0) {
                if (!(s->hours & (1u << h))) continue;
                for (; mi < 60; mi++) {
                    if (!(s->minutes & (1ULL << mi))) continue;
                    long long t = from_wall(y, m, d, h, mi);
                    if (t > after) return t;
                }
            }
        }
        h = mi = 0;
        if (++d > month_days(y, m)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    return -1;
}

long long jobq_cronspec_next(const jobq_cronspec *s, const char *tz, long long after) {
    if (s->every > 0) return (after / s->every + 1) * s->every;
    if (!tz || !*tz) return next_local(s, after);
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    if (old && !saved) return -1;
    setenv("TZ", tz, 1);
    tzset();
    long long t = next_local(s, after);
    if (saved) setenv("TZ", saved, 1);
    else unsetenv("TZ");
    tzset();
    free(saved);
    return t;
}
