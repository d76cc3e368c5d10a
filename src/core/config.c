/*
 * jobqd configuration: static const option tables (the fixed sections, and
 * the keys of [queue.NAME] sections) drive the defaults, the INI loader (inih
 * fed by our own line reader, so comments, line numbers, section names and
 * unknown sections do not depend on how libinih was built), range checks and
 * jobq_config_print. Queue sections keep which keys they set; inheritance
 * from [jobs] happens at lookup. No mutable state at file scope. The
 * [queue.NAME]/[cron.NAME] sections are stored by config_sections.c, the
 * Redis password file read by config_secrets.c.
 */
#include "core/config.h"
#include "core/config_sections.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/cronspec.h"
#include "core/log.h"
#include "core/redis_url.h"

#ifndef JOBQ_PLUGIN_DIR
#define JOBQ_PLUGIN_DIR "/usr/lib/jobq/plugins"
#endif

#define MAX_QUEUE_NAME JOBQ_MAX_QUEUE_NAME
#define QUEUE_SECTION "queue."   /* [queue.NAME] */
#define QUEUE_SECTION_LEN (sizeof QUEUE_SECTION - 1)
#define CRON_SECTION "cron."     /* [cron.NAME] */
#define CRON_SECTION_LEN (sizeof CRON_SECTION - 1)
#define SYNTAX_ERROR "syntax error (expected 'key = value' or '[section]')"
#define KIB 1024.0
#define MIB (1024.0 * 1024)
#define GIB (1024.0 * 1024 * 1024)

enum opt_type {
    T_INT,      /* int */
    T_DOUBLE,   /* double; seconds may be fractional */
    T_LONG,     /* long; plain integer */
    T_BYTES,    /* long; digits with an optional k/M/G suffix (KiB/MiB/GiB) */
    T_BOOL,     /* bool */
    T_STRING,   /* char *, owned; min/max bound its length */
    T_LOGLEVEL, /* int JOBQ_LOG_* */
    T_QUEUES,   /* queues[]/nqueues, through jobq_config_set_queues */
    T_RATE,     /* jobq_rate: "N/PERIOD" (10/1s, 600/1m); min/max bound N */
};

/* Extra check of a string value: 0, or -1 with why filled. */
typedef int (*string_check)(const char *value, char *why, size_t size);

struct option {
    const char *section;
    const char *name;
    enum opt_type type;
    size_t offset;     /* of the member in jobq_config (queue keys: jobq_queue_settings) */
    const char *def;   /* default, as it would be written in the file; queue keys: unused */
    double min, max;   /* value range; length range for strings */
    string_check check; /* T_STRING only; may be NULL */
    const char *help;
};

static int check_url(const char *value, char *why, size_t size);
static int check_prefix(const char *value, char *why, size_t size);
static int check_abs_path(const char *value, char *why, size_t size);
static int check_secret(const char *value, char *why, size_t size);
static int check_timezone(const char *value, char *why, size_t size);
static int check_cronspec(const char *value, char *why, size_t size);
static int check_json(const char *value, char *why, size_t size);
static int check_queue(const char *value, char *why, size_t size);
static int check_handler(const char *value, char *why, size_t size);

#define OFF(member) offsetof(jobq_config, member)

/* Grouped by section: jobq_config_print writes one header per run. */
static const struct option options[] = {
    {"daemon", "workers", T_INT, OFF(workers), "4", 1, 1024, NULL, "worker processes"},
    {"daemon", "queues", T_QUEUES, OFF(queues), "default", 1, JOBQ_MAX_QUEUES, NULL,
     "queues served, comma-separated, highest priority first; or each with a weight (a:6,b:3,c:1) for weighted selection"},
    {"daemon", "shutdown_timeout", T_DOUBLE, OFF(shutdown_timeout), "30", 0, 86400, NULL,
     "seconds running jobs get to finish on SIGTERM"},
    {"daemon", "log_level", T_LOGLEVEL, OFF(log_level), "info", 0, 0, NULL,
     "error, warn, info or debug"},
    {"daemon", "test_handlers", T_BOOL, OFF(test_handlers), "no", 0, 0, NULL,
     "yes enables the fail and crash handlers, for tests only"},
    {"daemon", "heartbeat_interval", T_DOUBLE, OFF(heartbeat_interval), "5", 0.1, 3600, NULL,
     "seconds between supervisor heartbeats"},
    {"daemon", "heartbeat_ttl", T_DOUBLE, OFF(heartbeat_ttl), "15", 1, 86400, NULL,
     "seconds before a silent daemon counts as dead; more than heartbeat_interval"},
    {"daemon", "kill_grace", T_DOUBLE, OFF(kill_grace), "5", 0, 3600, NULL,
     "seconds between SIGTERM and SIGKILL for a worker whose job overran"},
    {"daemon", "max_jobs_per_worker", T_INT, OFF(max_jobs_per_worker), "0", 0, 1e9, NULL,
     "replace a worker after this many jobs; 0 = never"},
    {"daemon", "max_worker_rss", T_BYTES, OFF(max_worker_rss), "0", 0, 1024 * GIB, NULL,
     "replace a worker whose resident memory exceeds this; 0 = never"},
    {"daemon", "batch_size", T_INT, OFF(batch_size), "64", 1, 1000, NULL,
     "most jobs a worker takes per Redis round trip"},

    {"redis", "url", T_STRING, OFF(redis_url), "redis://127.0.0.1:6379/0", 1, 1024, check_url,
     "redis://[[user]:password@]host[:port][/db], rediss://..., unix:///path/redis.sock[?db=N], "
     "redis+sentinel://host[:port][,host[:port]...]/master_name[/db] or redis+cluster://host:port[,host:port...]"},
    {"redis", "prefix", T_STRING, OFF(prefix), "jobq", 1, 64, check_prefix,
     "first part of every key, characters A-Z a-z 0-9 _ . : -"},
    {"redis", "password_file", T_STRING, OFF(redis_password_file), "", 0, 4095, check_abs_path,
     "absolute path of a file (mode 600) whose first line is the Redis password; empty = none"},
    {"redis", "sentinel_password", T_STRING, OFF(sentinel_password), "", 0, 4096, check_secret,
     "password of the sentinels themselves (redis+sentinel://), when they need their own"},
    {"redis", "wait_replicas", T_INT, OFF(wait_replicas), "0", 0, 64, NULL,
     "an enqueue by jobq and every outcome commit wait for this many replicas (WAIT); 0 = none"},
    {"redis", "wait_timeout", T_DOUBLE, OFF(wait_timeout), "1", 0.001, 60, NULL,
     "seconds a WAIT for wait_replicas may take before it counts as not acknowledged"},
    {"redis", "tls_ca_file", T_STRING, OFF(tls_ca_file), "", 0, 4095, check_abs_path,
     "rediss://: PEM file of the CA(s) that sign the server certificate; empty = the system's"},
    {"redis", "tls_cert_file", T_STRING, OFF(tls_cert_file), "", 0, 4095, check_abs_path,
     "rediss://: client certificate (PEM) for servers that require one; empty = none"},
    {"redis", "tls_key_file", T_STRING, OFF(tls_key_file), "", 0, 4095, check_abs_path,
     "rediss://: the client certificate's private key (PEM)"},
    {"redis", "tls_server_name", T_STRING, OFF(tls_server_name), "", 0, 255, NULL,
     "rediss://: the name the server certificate must carry; empty = the host of the URL"},

    {"jobs", "timeout", T_DOUBLE, OFF(job_timeout), "180", 0.001, 604800, NULL,
     "seconds a job may run"},
    {"jobs", "max_attempts", T_INT, OFF(max_attempts), "3", 1, 1000, NULL,
     "runs before a failing job goes to the dead-letter set"},
    {"jobs", "result_ttl", T_INT, OFF(result_ttl), "86400", 1, 31536000, NULL,
     "seconds a result is kept"},
    {"jobs", "max_payload", T_BYTES, OFF(max_payload), "1048576", 64, 512 * MIB, NULL,
     "largest job accepted, in bytes; larger ones go to the dead-letter set"},
    {"jobs", "retry_backoff_base", T_DOUBLE, OFF(retry_backoff_base), "1", 0, 86400, NULL,
     "seconds; a retry waits base * 2^(attempt-1), jittered"},
    {"jobs", "retry_backoff_max", T_DOUBLE, OFF(retry_backoff_max), "300", 0, 604800, NULL,
     "seconds; the longest retry delay"},
    {"jobs", "poison_limit", T_INT, OFF(poison_limit), "3", 1, 1000, NULL,
     "a job that killed its worker this many times goes to the dead-letter set"},

    {"plugins", "dir", T_STRING, OFF(plugins_dir), JOBQ_PLUGIN_DIR, 1, 4095, NULL,
     "directory of handler plugins (*.so)"},

    {"wordcount", "max_body", T_BYTES, OFF(wordcount_max_body), "64M", 1, 16 * GIB, NULL,
     "bytes; a larger response body fails the job"},
    {"wordcount", "connect_timeout", T_DOUBLE, OFF(wordcount_connect_timeout), "10", 0.1, 300, NULL,
     "seconds to connect to the server"},
    {"wordcount", "preload", T_BOOL, OFF(wordcount_preload), "no", 0, 0, NULL,
     "load libcurl in the supervisor so that workers share it (yes) or in each worker at its first job (no)"},
    {"wordcount", "deny_private", T_BOOL, OFF(wordcount_deny_private), "no", 0, 0, NULL,
     "yes refuses to connect to loopback, private, link-local, unspecified and CGNAT addresses, after redirects too"},

    {"cron", "timezone", T_STRING, OFF(cron_timezone), "", 0, 200, check_timezone,
     "time zone of cron specs (e.g. Europe/Berlin, UTC); empty = the host's local time"},
};

#define NOPTIONS (sizeof options / sizeof options[0])

#define QOFF(member) offsetof(jobq_queue_settings, member)

/* Keys of a [queue.NAME] section, in jobq_queue_settings order; the index of
 * a key is its bit in jobq_config_queue_section.set. Unset keys inherit. */
static const struct option queue_options[] = {
    {"queue.NAME", "timeout", T_DOUBLE, QOFF(timeout), "", 0.001, 604800, NULL,
     "seconds a job of this queue may run; unset = [jobs] timeout"},
    {"queue.NAME", "max_attempts", T_INT, QOFF(max_attempts), "", 1, 1000, NULL,
     "runs before a failing job goes to the dead-letter set; unset = [jobs] max_attempts"},
    {"queue.NAME", "result_ttl", T_INT, QOFF(result_ttl), "", 1, 31536000, NULL,
     "seconds a result is kept; unset = [jobs] result_ttl"},
    {"queue.NAME", "rlimit_as", T_BYTES, QOFF(rlimit_as), "", 16 * MIB, 1024 * 1024 * GIB, NULL,
     "address space of the worker while it runs a job of this queue; unset = no limit"},
    {"queue.NAME", "rlimit_cpu", T_LONG, QOFF(rlimit_cpu), "", 1, 86400, NULL,
     "CPU seconds a job of this queue may use; unset = no limit"},
    {"queue.NAME", "rlimit_nofile", T_LONG, QOFF(rlimit_nofile), "", 16, 1048576, NULL,
     "open files of the worker while it runs a job of this queue; unset = no limit"},
    {"queue.NAME", "concurrency", T_INT, QOFF(concurrency), "", 1, 1000000, NULL,
     "jobs of this queue running at once, across every daemon; unset = no limit"},
    {"queue.NAME", "rate_limit", T_RATE, QOFF(rate_limit), "", 1, 1000000, NULL,
     "jobs of this queue started per period across every daemon, N/PERIOD (10/1s, 600/1m); unset = no limit"},
};

#define NQOPTIONS (sizeof queue_options / sizeof queue_options[0])
_Static_assert(NQOPTIONS <= sizeof(unsigned) * CHAR_BIT, "one bit per queue key");

#define COFF(member) offsetof(jobq_config_cron, member)

/* Keys of a [cron.NAME] section (strings). */
static const struct option cron_options[] = {
    {"cron.NAME", "spec", T_STRING, COFF(spec), "", 1, 190, check_cronspec,
     "when: MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK, an alias (@hourly, @daily...) or @every DURATION; required"},
    {"cron.NAME", "handler", T_STRING, COFF(handler), "", 1, 128, check_handler,
     "the handler of the job queued at each tick; required"},
    {"cron.NAME", "args", T_STRING, COFF(args), "", 0, 190, check_json, "the job's args, any JSON value; unset = none"},
    {"cron.NAME", "queue", T_STRING, COFF(queue), "", 1, 64, check_queue, "the queue it goes to; unset = default"},
    {"cron.NAME", "timezone", T_STRING, COFF(timezone), "", 0, 200, check_timezone,
     "time zone of the spec; unset = [cron] timezone"},
};

#define NCOPTIONS (sizeof cron_options / sizeof cron_options[0])

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* ---- small helpers ---- */

static const struct option *find_option(const char *section, const char *name) {
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (strcmp(options[i].section, section) == 0 && strcmp(options[i].name, name) == 0)
            return &options[i];
    }
    return NULL;
}

static const struct option *find_queue_option(const char *name) {
    for (size_t i = 0; i < NQOPTIONS; i++) {
        if (strcmp(queue_options[i].name, name) == 0) return &queue_options[i];
    }
    return NULL;
}

static size_t field_size(enum opt_type type) {
    switch (type) {
    case T_INT: case T_LOGLEVEL: return sizeof(int);
    case T_DOUBLE: return sizeof(double);
    case T_LONG: case T_BYTES: return sizeof(long);
    case T_BOOL: return sizeof(bool);
    case T_STRING: return sizeof(char *);
    case T_RATE: return sizeof(jobq_rate);
    case T_QUEUES: break;
    }
    assert(!"no plain field for this type");
    return 0;
}

static bool section_known(const char *name, size_t len) {
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (strlen(options[i].section) == len && strncmp(options[i].section, name, len) == 0) return true;
    }
    return false;
}

/* value for quoting in a message: at most 48 characters, then "...". */
static const char *clip(const char *value, char *buf, size_t size) {
    snprintf(buf, size, "%.48s%s", value, strlen(value) > 48 ? "..." : "");
    return buf;
}

/* Whole numbers in full (604800, not 6.048e+05); otherwise the shortest %g
 * form that reads back as the same double. */
static void fmt_double(double v, char *buf, size_t size) {
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, size, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* Bytes with the largest exact suffix: 67108864 -> "64M". */
static void fmt_bytes(long long v, char *buf, size_t size) {
    static const struct {
        long long mult;
        char suffix;
    } units[] = {{1LL << 30, 'G'}, {1LL << 20, 'M'}, {1LL << 10, 'K'}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (v != 0 && v % units[i].mult == 0) {
            snprintf(buf, size, "%lld%c", v / units[i].mult, units[i].suffix);
            return;
        }
    }
    snprintf(buf, size, "%lld", v);
}

/* "min to max" in the option's own notation. */
static void fmt_range(const struct option *o, char *buf, size_t size) {
    char lo[32], hi[32];
    if (o->type == T_BYTES) {
        fmt_bytes((long long)o->min, lo, sizeof lo);
        fmt_bytes((long long)o->max, hi, sizeof hi);
    } else if (o->type == T_INT || o->type == T_LONG) {
        snprintf(lo, sizeof lo, "%.0f", o->min);
        snprintf(hi, sizeof hi, "%.0f", o->max);
    } else {
        fmt_double(o->min, lo, sizeof lo);
        fmt_double(o->max, hi, sizeof hi);
    }
    snprintf(buf, size, "%s to %s", lo, hi);
}

static int parse_int(const char *s, long long *out) {
    const char *p = s + (*s == '-' || *s == '+');
    if (!isdigit((unsigned char)*p)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out) {
    if (!*s || strspn(s, "0123456789.eE+-") != strlen(s) || !strpbrk(s, "0123456789")) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_bytes(const char *s, long long *out) {
    if (!isdigit((unsigned char)*s)) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    unsigned long long mult = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mult = 1ULL << 10; break;
        case 'm': case 'M': mult = 1ULL << 20; break;
        case 'g': case 'G': mult = 1ULL << 30; break;
        default: return -1;
        }
        if (end[1]) return -1;
    }
    if (v > (unsigned long long)LLONG_MAX / mult) return -1;
    *out = (long long)(v * mult);
    return 0;
}

static int parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = false, 0;
    }
    return -1;
}

static bool name_chars_ok(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr("_.:-", c)) return false;
    }
    return true;
}

static int check_url(const char *value, char *why, size_t size) {
    jobq_redis_url url;
    jobq_err e;
    jobq_err_clear(&e);
    int rc = jobq_redis_url_parse(value, &url, &e);
    if (rc == 0) jobq_redis_url_fini(&url);
    else snprintf(why, size, "%s", e.msg);
    return rc;
}

static int check_abs_path(const char *value, char *why, size_t size) {
    if (!*value || *value == '/') return 0;
    char c[64];
    snprintf(why, size, "expected an absolute path (or nothing), got '%s'", clip(value, c, sizeof c));
    return -1;
}

/* Any value; marks a secret, printed as *** (see print_value). */
static int check_secret(const char *value, char *why, size_t size) {
    (void)value;
    (void)why;
    (void)size;
    return 0;
}

static int check_timezone(const char *value, char *why, size_t size) {
    if (jobq_cronspec_valid_tz(value)) return 0;
    char c[64];
    snprintf(why, size, "unknown time zone '%s' (a name under /usr/share/zoneinfo such as Europe/Berlin, or UTC)",
             clip(value, c, sizeof c));
    return -1;
}

static int check_cronspec(const char *value, char *why, size_t size) {
    jobq_cronspec spec;
    return jobq_cronspec_parse(&spec, value, why, size);
}

static int check_json(const char *value, char *why, size_t size) {
    json_error_t jerr;
    json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
    if (!v && *value) {
        snprintf(why, size, "not valid JSON: %s", jerr.text);
        return -1;
    }
    json_decref(v);
    return 0;
}

static int check_queue(const char *value, char *why, size_t size) {
    if (name_chars_ok(value, strlen(value))) return 0;
    char c[64];
    snprintf(why, size, "queue name '%s' has a character outside [A-Za-z0-9_.:-]", clip(value, c, sizeof c));
    return -1;
}

static int check_handler(const char *value, char *why, size_t size) {
    for (const char *s = value; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            snprintf(why, size, "a handler name has no control characters");
            return -1;
        }
    }
    return 0;
}

/* "N/PERIOD": N an integer, PERIOD [number]unit with unit ms, s, m, h or d
 * (1s, 1m, 500ms, 2h; the number defaults to 1). 0, or -1. */
static int parse_rate(const char *s, long long *n, double *period) {
    const char *slash = strchr(s, '/');
    if (!slash || slash == s) return -1;
    char num[32];
    if ((size_t)(slash - s) >= sizeof num) return -1;
    memcpy(num, s, (size_t)(slash - s));
    num[slash - s] = '\0';
    if (parse_int(num, n) != 0) return -1;
    const char *p = slash + 1;
    double count = 1;
    if (isdigit((unsigned char)*p)) {
        char *end;
        count = strtod(p, &end);
        p = end;
    }
    static const struct {
        const char *unit;
        double seconds;
    } units[] = {{"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (strcmp(p, units[i].unit) == 0) {
            *period = count * units[i].seconds;
            return isfinite(*period) && *period > 0 ? 0 : -1;
        }
    }
    return -1;
}

/* A period as its largest exact unit: 1s, 1m, 500ms, 90s. */
static void fmt_period(double seconds, char *buf, size_t size) {
    static const struct {
        const char *unit;
        double seconds;
    } units[] = {{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        double n = seconds / units[i].seconds;
        if (n >= 1 && n == floor(n) && n < 1e9) {
            snprintf(buf, size, "%.0f%s", n, units[i].unit);
            return;
        }
    }
    char ms[32];
    fmt_double(seconds * 1000, ms, sizeof ms);
    snprintf(buf, size, "%sms", ms);
}

static int check_prefix(const char *value, char *why, size_t size) {
    if (name_chars_ok(value, strlen(value))) return 0;
    char c[64];
    snprintf(why, size, "'%s' has a character outside [A-Za-z0-9_.:-]", clip(value, c, sizeof c));
    return -1;
}

/* Convert text for option o and store it in base (a jobq_config, or a
 * jobq_queue_settings for a queue key). Returns 0; -1 with why set when the
 * text is not acceptable; -2 when out of memory. */
static int set_option(void *base, const struct option *o, const char *text, char *why, size_t size) {
    void *field = (char *)base + o->offset;
    char range[80], c[64];
    fmt_range(o, range, sizeof range);
    clip(text, c, sizeof c);
    switch (o->type) {
    case T_INT: {
        long long v;
        if (parse_int(text, &v) != 0 || v < (long long)o->min || v > (long long)o->max) {
            snprintf(why, size, "expected an integer from %s, got '%s'", range, c);
            return -1;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case T_LONG: {
        long long v;
        if (parse_int(text, &v) != 0 || v < (long long)o->min || v > (long long)o->max || v > LONG_MAX) {
            snprintf(why, size, "expected an integer from %s, got '%s'", range, c);
            return -1;
        }
        *(long *)field = (long)v;
        return 0;
    }
    case T_DOUBLE: {
        double v;
        if (parse_double(text, &v) != 0 || v < o->min || v > o->max) {
            snprintf(why, size, "expected a number from %s, got '%s'", range, c);
            return -1;
        }
        *(double *)field = v;
        return 0;
    }
    case T_BYTES: {
        long long v;
        if (parse_bytes(text, &v) != 0 || v < (long long)o->min || v > (long long)o->max ||
            v > LONG_MAX) {
            snprintf(why, size, "expected a size from %s (bytes, or with a K, M or G suffix), got '%s'",
                     range, c);
            return -1;
        }
        *(long *)field = (long)v;
        return 0;
    }
    case T_BOOL:
        if (parse_bool(text, (bool *)field) != 0) {
            snprintf(why, size, "expected yes or no (or true/false, on/off, 1/0), got '%s'", c);
            return -1;
        }
        return 0;
    case T_LOGLEVEL:
        if (jobq_log_level_parse(text, (int *)field) != 0) {
            snprintf(why, size, "expected error, warn, info or debug, got '%s'", c);
            return -1;
        }
        return 0;
    case T_QUEUES: {
        jobq_err e;
        jobq_err_clear(&e);
        if (jobq_config_set_queues((jobq_config *)base, text, &e) != 0) {
            snprintf(why, size, "%s", e.msg);
            return e.code == JOBQ_E_NOMEM ? -2 : -1;
        }
        return 0;
    }
    case T_RATE: {
        long long n;
        double period;
        if (parse_rate(text, &n, &period) != 0 || n < (long long)o->min || n > (long long)o->max ||
            period < 0.001 || period > 86400) {
            snprintf(why, size, "expected N/PERIOD with N from %s and a period from 1ms to 1d "
                     "(10/1s, 600/1m, 5/500ms), got '%s'", range, c);
            return -1;
        }
        *(jobq_rate *)field = (jobq_rate){(long)n, period};
        return 0;
    }
    case T_STRING: {
        size_t len = strlen(text);
        if (len < (size_t)o->min || len > (size_t)o->max) {
            snprintf(why, size, "expected %.0f to %.0f characters, got %zu", o->min, o->max, len);
            return -1;
        }
        if (o->check && o->check(text, why, size) != 0) return -1;
        char *copy = strdup(text);
        if (!copy) {
            snprintf(why, size, "out of memory");
            return -2;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    }
    assert(!"unknown option type");
    return -1;
}

/* ---- public: defaults, strings, queues ---- */

void jobq_config_defaults(jobq_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NOPTIONS; i++) {
        char why[256];
        int rc = set_option(cfg, &options[i], options[i].def, why, sizeof why);
        /* A default the table itself rejects is a programmer error; out of
         * memory leaves the member NULL, which jobq_config_load reports. */
        assert(rc != -1);
        (void)rc;
    }
}

void jobq_config_set_string(char **member, const char *value) {
    if (!value) {
        free(*member);
        *member = NULL;
        return;
    }
    char *copy = strdup(value);
    if (!copy) return; /* keep the old value rather than leave a hole */
    free(*member);
    *member = copy;
}

/* A queue name of len bytes at b: 0, or -1 with err saying what is wrong
 * (empty names are the caller's to report, with their context). */
static int check_queue_name(const char *b, size_t len, jobq_err *err) {
    if (len > MAX_QUEUE_NAME) {
        jobq_err_set(err, JOBQ_E_INVALID, "queue name '%.20s...' is longer than %d characters", b, MAX_QUEUE_NAME);
        return -1;
    }
    if (!name_chars_ok(b, len)) {
        jobq_err_set(err, JOBQ_E_INVALID, "queue name '%.*s' has a character outside [A-Za-z0-9_.:-]", (int)len,
                     b);
        return -1;
    }
    return 0;
}

/* The weight suffix ":N" (1 to 4 digits) ending the len bytes at b: its
 * value (0 when out of range) with *len cut before it, or -1 when there is
 * none. */
static int weight_suffix(const char *b, size_t *len) {
    size_t digits = 0;
    while (digits < *len && isdigit((unsigned char)b[*len - 1 - digits])) digits++;
    if (digits == 0 || digits > 4 || digits + 1 >= *len || b[*len - 1 - digits] != ':') return -1;
    int w = atoi(b + *len - digits);
    *len -= digits + 1;
    return w >= 1 && w <= JOBQ_MAX_WEIGHT ? w : 0;
}

int jobq_config_set_queues(jobq_config *cfg, const char *csv, jobq_err *err) {
    char *names[JOBQ_MAX_QUEUES];
    int weights[JOBQ_MAX_QUEUES] = {0};
    int n = 0, weighted = 0;
    const char *p = csv ? csv : "";
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *b = p, *e = comma ? comma : p + strlen(p);
        while (b < e && isspace((unsigned char)*b)) b++;
        while (e > b && isspace((unsigned char)e[-1])) e--;
        size_t len = (size_t)(e - b);
        int i;
        if (len == 0) {
            char c[64];
            jobq_err_set(err, JOBQ_E_INVALID, "empty queue name in '%s'", clip(csv ? csv : "", c, sizeof c));
            goto fail;
        }
        int w = weight_suffix(b, &len);
        if (w == 0) {
            jobq_err_set(err, JOBQ_E_INVALID, "queue '%.*s': a weight is a whole number from 1 to %d",
                         (int)(e - b), b, JOBQ_MAX_WEIGHT);
            goto fail;
        }
        if (check_queue_name(b, len, err) != 0) goto fail;
        if (n == JOBQ_MAX_QUEUES) {
            jobq_err_set(err, JOBQ_E_INVALID, "more than %d queues", JOBQ_MAX_QUEUES);
            goto fail;
        }
        for (i = 0; i < n; i++) {
            if (strlen(names[i]) == len && memcmp(names[i], b, len) == 0) break;
        }
        if (i < n) {
            jobq_err_set(err, JOBQ_E_INVALID, "queue '%.*s' is listed twice", (int)len, b);
            goto fail;
        }
        if (!(names[n] = strndup(b, len))) {
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            goto fail;
        }
        weights[n] = w > 0 ? w : 0;
        weighted += w > 0;
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    if (weighted > 0 && weighted < n) {
        jobq_err_set(err, JOBQ_E_INVALID, "give every queue a weight (queue:N) or none, in '%.60s'", csv);
        goto fail;
    }
    for (int i = 0; i < cfg->nqueues; i++) free(cfg->queues[i]);
    memset(cfg->queues, 0, sizeof cfg->queues);
    memcpy(cfg->queues, names, (size_t)n * sizeof names[0]);
    memcpy(cfg->weights, weights, sizeof weights);
    cfg->nqueues = n;
    return 0;
fail:
    for (int i = 0; i < n; i++) free(names[i]);
    return -1;
}

void jobq_config_wipe_secret(char **secret) {
    if (!*secret) return;
    explicit_bzero(*secret, strlen(*secret));
    free(*secret);
    *secret = NULL;
}

void jobq_config_fini(jobq_config *cfg) {
    if (!cfg) return;
    for (int i = 0; i < cfg->nqueues; i++) free(cfg->queues[i]);
    free(cfg->redis_url);
    free(cfg->prefix);
    free(cfg->redis_password_file);
    jobq_config_wipe_secret(&cfg->redis_password);
    jobq_config_wipe_secret(&cfg->sentinel_password);
    free(cfg->tls_ca_file);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->tls_server_name);
    free(cfg->plugins_dir);
    jobq_config_named_fini(cfg);
    free(cfg->cron_timezone);
    for (int i = 0; i < cfg->ncrons; i++) {
        jobq_config_cron *c = &cfg->crons[i];
        free(c->spec);
        free(c->handler);
        free(c->args);
        free(c->queue);
        free(c->timezone);
    }
    memset(cfg, 0, sizeof *cfg);
}

/* ---- queue sections ---- */

static jobq_config_queue_section *find_queue_section(const jobq_config *cfg, const char *name, size_t len) {
    for (int i = 0; i < cfg->nqueue_sections; i++) {
        const jobq_config_queue_section *q = &cfg->queue_sections[i];
        if (strlen(q->values.name) == len && memcmp(q->values.name, name, len) == 0)
            return (jobq_config_queue_section *)q;
    }
    return NULL;
}

double jobq_config_io_timeout(const jobq_config *cfg, double cap) {
    double span = (cfg->heartbeat_ttl - cfg->heartbeat_interval) / 3;
    return span < cap ? (span > 0.1 ? span : 0.1) : cap;
}

void jobq_config_queue_settings(const jobq_config *cfg, const char *queue, jobq_queue_settings *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", queue ? queue : "");
    out->timeout = cfg->job_timeout;
    out->max_attempts = cfg->max_attempts;
    out->result_ttl = cfg->result_ttl;
    const jobq_config_queue_section *q = queue ? find_queue_section(cfg, queue, strlen(queue)) : NULL;
    if (!q) return;
    for (size_t i = 0; i < NQOPTIONS; i++) {
        if (!(q->set & (1u << i))) continue;
        size_t off = queue_options[i].offset;
        memcpy((char *)out + off, (const char *)&q->values + off, field_size(queue_options[i].type));
    }
}

/* ---- loading ---- */

struct load {
    jobq_config *cfg;
    FILE *fp;
    char *buf;                /* getline buffer, owned */
    size_t bufsz;
    int lineno;               /* line last handed to inih */
    int read_errno;           /* set when reading failed */
    int err_line;             /* first error we found; 0 = none */
    int err_code;
    char why[256];
    int set_line[NOPTIONS];   /* line that last set each option; 0 = default */
    int qsec;                 /* index of the [queue.NAME] section being read; -1 = other */
    enum jobq_named_kind nkind; /* an [exec.NAME] or [plugin.NAME] section being read... */
    int nsec;                 /* ...and its index (config_sections.h) */
    int csec;                 /* index of the [cron.NAME] section being read; -1 = other */
};

static void fail(struct load *ld, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(struct load *ld, int code, const char *fmt, ...) {
    if (ld->err_line) return;
    ld->err_line = ld->lineno;
    ld->err_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->why, sizeof ld->why, fmt, ap);
    va_end(ap);
}

/* Cut an inline comment: ';' or '#' preceded by a space or tab. */
static void strip_inline_comment(char *s) {
    for (size_t i = 1; s[i]; i++) {
        if ((s[i] == ';' || s[i] == '#') && (s[i - 1] == ' ' || s[i - 1] == '\t')) {
            s[i] = '\0';
            return;
        }
    }
}

/* A "[queue.NAME]" header (name is NAME, len bytes) on the current line:
 * make its section current, creating it on first sight. We keep the name
 * ourselves because inih cuts long section names. */
static void open_queue_section(struct load *ld, const char *name, size_t len) {
    jobq_config *cfg = ld->cfg;
    jobq_err e;
    char c[64];
    snprintf(c, sizeof c, "%.*s%s", (int)(len > 48 ? 48 : len), name, len > 48 ? "..." : "");
    if (len == 0) {
        fail(ld, JOBQ_E_CONFIG, "empty queue name in section [%s]", QUEUE_SECTION);
        return;
    }
    if (check_queue_name(name, len, &e) != 0) {
        fail(ld, JOBQ_E_CONFIG, "bad section [%s%s]: %s", QUEUE_SECTION, c, e.msg);
        return;
    }
    jobq_config_queue_section *q = find_queue_section(cfg, name, len);
    if (!q) {
        if (cfg->nqueue_sections == JOBQ_MAX_QUEUES) {
            fail(ld, JOBQ_E_CONFIG, "[%s%s]: more than %d [queue.NAME] sections", QUEUE_SECTION, c,
                 JOBQ_MAX_QUEUES);
            return;
        }
        q = &cfg->queue_sections[cfg->nqueue_sections++];
        memset(q, 0, sizeof *q);
        memcpy(q->values.name, name, len);
    }
    ld->qsec = (int)(q - cfg->queue_sections);
}

/* A "[cron.NAME]" header: make its section current (created on first
 * sight). */
static void open_cron_section(struct load *ld, const char *name, size_t len) {
    jobq_config *cfg = ld->cfg;
    char c[64];
    snprintf(c, sizeof c, "%.*s%s", (int)(len > 48 ? 48 : len), name, len > 48 ? "..." : "");
    if (len == 0 || len > JOBQ_MAX_QUEUE_NAME || !name_chars_ok(name, len)) {
        fail(ld, JOBQ_E_CONFIG, "bad section [%s%s]: a cron entry's name is 1 to %d of A-Z a-z 0-9 _ . : -",
             CRON_SECTION, c, JOBQ_MAX_QUEUE_NAME);
        return;
    }
    for (int i = 0; i < cfg->ncrons; i++) {
        if (strlen(cfg->crons[i].name) == len && memcmp(cfg->crons[i].name, name, len) == 0) {
            ld->csec = i;
            return;
        }
    }
    if (cfg->ncrons == JOBQ_MAX_CRON) {
        fail(ld, JOBQ_E_CONFIG, "[%s%s]: more than %d [cron.NAME] sections", CRON_SECTION, c, JOBQ_MAX_CRON);
        return;
    }
    jobq_config_cron *e = &cfg->crons[cfg->ncrons];
    memset(e, 0, sizeof *e);
    memcpy(e->name, name, len);
    e->line = ld->lineno;
    ld->csec = cfg->ncrons++;
}

/* inih reads through this: one call per line, so ld->lineno is the line the
 * handler is called for. Lines reach inih without leading blanks (so none
 * reads as a multi-line continuation), comments, or a BOM. */
static char *read_line(char *str, int num, void *stream) {
    struct load *ld = stream;
    errno = 0;
    ssize_t n = getline(&ld->buf, &ld->bufsz, ld->fp);
    if (n < 0) {
        if (ferror(ld->fp)) ld->read_errno = errno ? errno : EIO;
        return NULL;
    }
    ld->lineno++;
    snprintf(str, (size_t)num, "\n");
    char *s = ld->buf;
    if ((size_t)n != strlen(s)) {
        fail(ld, JOBQ_E_CONFIG, "NUL byte in the line");
        return str;
    }
    if (ld->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
    while (isspace((unsigned char)*s)) s++;
    if (*s == ';' || *s == '#' || !*s) return str;
    strip_inline_comment(s);
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1])) s[--len] = '\0';
    if (*s == '[') {
        char *close = strchr(s, ']');
        ld->qsec = ld->csec = -1;
        ld->nkind = JOBQ_NAMED_NONE;
        char why[224];
        int named = close ? jobq_config_named_open(ld->cfg, s + 1, (size_t)(close - s - 1), ld->lineno, &ld->nkind,
                                                   &ld->nsec, why, sizeof why)
                          : 0;
        if (close && (size_t)(close - s - 1) >= QUEUE_SECTION_LEN &&
            strncmp(s + 1, QUEUE_SECTION, QUEUE_SECTION_LEN) == 0) {
            open_queue_section(ld, s + 1 + QUEUE_SECTION_LEN, (size_t)(close - s - 1 - QUEUE_SECTION_LEN));
        } else if (close && (size_t)(close - s - 1) >= CRON_SECTION_LEN &&
                   strncmp(s + 1, CRON_SECTION, CRON_SECTION_LEN) == 0) {
            open_cron_section(ld, s + 1 + CRON_SECTION_LEN, (size_t)(close - s - 1 - CRON_SECTION_LEN));
        } else if (named < 0) {
            ld->nkind = JOBQ_NAMED_NONE;
            fail(ld, named == -2 ? JOBQ_E_NOMEM : JOBQ_E_CONFIG, "%s", why);
        } else if (named == 0 && close && !section_known(s + 1, (size_t)(close - s - 1))) {
            bool queue = (size_t)(close - s - 1) == QUEUE_SECTION_LEN - 1 &&
                         strncmp(s + 1, QUEUE_SECTION, QUEUE_SECTION_LEN - 1) == 0;
            fail(ld, JOBQ_E_CONFIG, "unknown section [%.*s]%s", (int)(close - s - 1 > 64 ? 64 : close - s - 1),
                 s + 1, queue ? " (per-queue settings go in [queue.NAME])" : "");
        }
        if (close && close[1])
            fail(ld, JOBQ_E_CONFIG, "unexpected text after [%.*s]", (int)(close - s - 1), s + 1);
    }
    if (len + 2 > (size_t)num) {
        fail(ld, JOBQ_E_CONFIG, "line too long (at most %d characters, not counting comments)", num - 2);
        return str;
    }
    memcpy(str, s, len);
    memcpy(str + len, "\n", 2);
    return str;
}

/* name = value inside the current [queue.NAME] section. */
static int on_queue_pair(struct load *ld, const char *name, const char *value) {
    jobq_config_queue_section *q = &ld->cfg->queue_sections[ld->qsec];
    const struct option *o = find_queue_option(name);
    if (!o) {
        fail(ld, JOBQ_E_CONFIG, "unknown key '%s' in section [%s%s]", name, QUEUE_SECTION, q->values.name);
        return 0;
    }
    char why[224];
    int rc = set_option(&q->values, o, value ? value : "", why, sizeof why);
    if (rc != 0) {
        fail(ld, rc == -2 ? JOBQ_E_NOMEM : JOBQ_E_CONFIG, "bad value for '%s' in [%s%s]: %s", name,
             QUEUE_SECTION, q->values.name, why);
        return 0;
    }
    q->set |= 1u << (o - queue_options);
    return 1;
}

/* name = value inside the current [cron.NAME] section. */
static int on_cron_pair(struct load *ld, const char *name, const char *value) {
    jobq_config_cron *e = &ld->cfg->crons[ld->csec];
    const struct option *o = NULL;
    for (size_t i = 0; i < NCOPTIONS && !o; i++)
        if (strcmp(cron_options[i].name, name) == 0) o = &cron_options[i];
    if (!o) {
        fail(ld, JOBQ_E_CONFIG, "unknown key '%s' in section [%s%s]", name, CRON_SECTION, e->name);
        return 0;
    }
    char why[224];
    int rc = set_option(e, o, value ? value : "", why, sizeof why);
    if (rc != 0) {
        fail(ld, rc == -2 ? JOBQ_E_NOMEM : JOBQ_E_CONFIG, "bad value for '%s' in [%s%s]: %s", name, CRON_SECTION,
             e->name, why);
        return 0;
    }
    return 1;
}

static int on_pair(void *user, const char *section, const char *name, const char *value) {
    struct load *ld = user;
    if (ld->err_line) return 1; /* only the first error counts; inih reads on */
    if (!*name) {
        fail(ld, JOBQ_E_CONFIG, "%s", SYNTAX_ERROR);
        return 0;
    }
    if (!*section) {
        fail(ld, JOBQ_E_CONFIG,
             "'%s' is outside any section (put it under [daemon], [redis], [jobs], [plugins] or [wordcount])",
             name);
        return 0;
    }
    if (value && (*value == ';' || *value == '#')) {
        /* "key =#x" would print back as "key = #x", which reads as empty. */
        fail(ld, JOBQ_E_CONFIG, "the value of '%s' starts with '%c', which after a space starts a comment", name,
             *value);
        return 0;
    }
    if (ld->qsec >= 0) return on_queue_pair(ld, name, value);
    if (ld->nkind != JOBQ_NAMED_NONE) {
        char why[224];
        int rc = jobq_config_named_pair(ld->cfg, ld->nkind, ld->nsec, name, value ? value : "", why, sizeof why);
        if (rc != 0) fail(ld, rc == -2 ? JOBQ_E_NOMEM : JOBQ_E_CONFIG, "%s", why);
        return rc == 0;
    }
    if (ld->csec >= 0) return on_cron_pair(ld, name, value);
    const struct option *o = find_option(section, name);
    if (!o) {
        if (section_known(section, strlen(section)))
            fail(ld, JOBQ_E_CONFIG, "unknown key '%s' in section [%s]", name, section);
        else
            fail(ld, JOBQ_E_CONFIG, "unknown section [%s]", section);
        return 0;
    }
    char why[224];
    int rc = set_option(ld->cfg, o, value ? value : "", why, sizeof why);
    if (rc != 0) {
        fail(ld, rc == -2 ? JOBQ_E_NOMEM : JOBQ_E_CONFIG, "bad value for '%s' in [%s]: %s", name, section,
             why);
        return 0;
    }
    ld->set_line[o - options] = ld->lineno;
    return 1;
}

/* Rules between options, checked once the whole file is read. */
static int check_relations(const jobq_config *cfg, const struct load *ld, const char *path, jobq_err *err) {
    int named_line;
    char why[224];
    if (jobq_config_named_check(cfg, &named_line, why, sizeof why) != 0) {
        jobq_err_set(err, JOBQ_E_CONFIG, "%s:%d: %s", path, named_line, why);
        return -1;
    }
    for (int i = 0; i < cfg->ncrons; i++) {
        const jobq_config_cron *e = &cfg->crons[i];
        if (e->spec && e->handler) continue;
        jobq_err_set(err, JOBQ_E_CONFIG, "%s:%d: [%s%s] needs a '%s'", path, e->line, CRON_SECTION, e->name,
                     e->spec ? "handler" : "spec");
        return -1;
    }
    if (cfg->heartbeat_ttl > cfg->heartbeat_interval) return 0;
    size_t ttl = (size_t)(find_option("daemon", "heartbeat_ttl") - options);
    size_t iv = (size_t)(find_option("daemon", "heartbeat_interval") - options);
    int line = ld->set_line[ttl] > ld->set_line[iv] ? ld->set_line[ttl] : ld->set_line[iv];
    char a[32], b[32];
    fmt_double(cfg->heartbeat_ttl, a, sizeof a);
    fmt_double(cfg->heartbeat_interval, b, sizeof b);
    jobq_err_set(err, JOBQ_E_CONFIG,
                 "%s:%d: heartbeat_ttl (%s) must be greater than heartbeat_interval (%s) in [daemon]", path, line,
                 a, b);
    return -1;
}

int jobq_config_load(jobq_config *cfg, const char *path, jobq_err *err) {
    jobq_config_defaults(cfg);
    if (!cfg->redis_url || !cfg->prefix || !cfg->redis_password_file || !cfg->plugins_dir || !cfg->cron_timezone ||
        cfg->nqueues == 0) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        jobq_config_fini(cfg);
        return -1;
    }
    struct load *ld = calloc(1, sizeof *ld);
    if (!ld) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        jobq_config_fini(cfg);
        return -1;
    }
    int rc = -1;
    ld->cfg = cfg;
    ld->qsec = ld->csec = -1;
    ld->fp = fopen(path, "re");
    if (!ld->fp) {
        jobq_err_set(err, JOBQ_E_IO, "cannot open config file '%s': %s", path, strerror(errno));
        goto out;
    }
    int first = ini_parse_stream(read_line, ld, on_pair, ld);
    if (ld->read_errno) {
        jobq_err_set(err, JOBQ_E_IO, "cannot read config file '%s': %s", path, strerror(ld->read_errno));
    } else if (first == -2) {
        jobq_err_set(err, JOBQ_E_NOMEM, "%s: out of memory", path);
    } else if (first > 0 && (ld->err_line == 0 || first < ld->err_line)) {
        jobq_err_set(err, JOBQ_E_CONFIG, "%s:%d: %s", path, first, SYNTAX_ERROR);
    } else if (ld->err_line) {
        jobq_err_set(err, ld->err_code, "%s:%d: %s", path, ld->err_line, ld->why);
    } else if (first < 0) {
        jobq_err_set(err, JOBQ_E_IO, "cannot read config file '%s'", path);
    } else {
        rc = check_relations(cfg, ld, path, err);
    }
out:
    if (ld->fp) fclose(ld->fp);
    free(ld->buf);
    free(ld);
    if (rc != 0) jobq_config_fini(cfg);
    return rc;
}

/* ---- printing ---- */

/* The value of o in base (a jobq_config, or a jobq_queue_settings for a
 * queue key), as the file would spell it. */
static void print_value(const void *base, const struct option *o, FILE *out) {
    const void *field = (const char *)base + o->offset;
    char buf[1100];
    switch (o->type) {
    case T_INT:
        fprintf(out, "%d", *(const int *)field);
        break;
    case T_LONG:
        fprintf(out, "%ld", *(const long *)field);
        break;
    case T_DOUBLE:
        fmt_double(*(const double *)field, buf, sizeof buf);
        fputs(buf, out);
        break;
    case T_BYTES:
        fmt_bytes(*(const long *)field, buf, sizeof buf);
        fputs(buf, out);
        break;
    case T_BOOL:
        fputs(*(const bool *)field ? "yes" : "no", out);
        break;
    case T_LOGLEVEL: {
        int l = *(const int *)field;
        fputs(level_names[l < JOBQ_LOG_ERROR ? JOBQ_LOG_ERROR : l > JOBQ_LOG_DEBUG ? JOBQ_LOG_DEBUG : l], out);
        break;
    }
    case T_QUEUES: {
        const jobq_config *cfg = base;
        for (int i = 0; i < cfg->nqueues; i++) {
            fprintf(out, "%s%s", i ? "," : "", cfg->queues[i]);
            if (cfg->weights[i] > 0) fprintf(out, ":%d", cfg->weights[i]);
        }
        break;
    }
    case T_RATE: {
        const jobq_rate *rate = field;
        fmt_period(rate->period, buf, sizeof buf);
        fprintf(out, "%ld/%s", rate->n, buf);
        break;
    }
    case T_STRING: {
        const char *s = *(char *const *)field;
        if (s && o->check == check_url) {
            jobq_redis_url url;
            if (jobq_redis_url_parse(s, &url, NULL) == 0) {
                jobq_redis_url_format_redacted(&url, buf, sizeof buf);
                jobq_redis_url_fini(&url);
                s = buf;
            } else {
                s = "(not a valid Redis URL)"; /* never echo what may hold a password */
            }
        }
        if (s && *s && o->check == check_secret) s = "***";
        fputs(s ? s : "", out);
        break;
    }
    }
}

void jobq_config_print(const jobq_config *cfg, FILE *out) {
    const char *section = NULL;
    fputs("# jobq configuration (the Redis password is shown as ***)\n", out);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        if (!section || strcmp(section, o->section) != 0) {
            fprintf(out, "\n[%s]\n", o->section);
            section = o->section;
        }
        char range[80];
        if (o->type == T_INT || o->type == T_DOUBLE || o->type == T_BYTES) {
            fmt_range(o, range, sizeof range);
            fprintf(out, "; %s. Range %s; default: %s\n", o->help, range, o->def);
        } else {
            fprintf(out, "; %s. Default: %s\n", o->help, *o->def ? o->def : "(empty)");
        }
        fprintf(out, "%s = ", o->name);
        print_value(cfg, o, out);
        fputc('\n', out);
    }
    for (int i = 0; i < cfg->nqueue_sections; i++) {
        const jobq_config_queue_section *q = &cfg->queue_sections[i];
        jobq_queue_settings eff;
        jobq_config_queue_settings(cfg, q->values.name, &eff);
        fprintf(out, "\n[%s%s]\n; jobs of queue '%s'; a key left out inherits from [jobs] (a limit: none)\n",
                QUEUE_SECTION, q->values.name, q->values.name);
        for (size_t k = 0; k < NQOPTIONS; k++) {
            const struct option *o = &queue_options[k];
            if (q->set & (1u << k)) {
                fprintf(out, "%s = ", o->name);
                print_value(&q->values, o, out);
            } else if (o->offset == QOFF(timeout) || o->offset == QOFF(max_attempts) ||
                       o->offset == QOFF(result_ttl)) {
                fprintf(out, "; %s = ", o->name);
                print_value(&eff, o, out);
                fputs(" (from [jobs])", out);
            } else {
                fprintf(out, "; %s = (no limit)", o->name);
            }
            fputc('\n', out);
        }
    }
    jobq_config_named_print(cfg, out);
    for (int i = 0; i < cfg->ncrons; i++) {
        const jobq_config_cron *e = &cfg->crons[i];
        fprintf(out, "\n[%s%s]\n", CRON_SECTION, e->name);
        for (size_t k = 0; k < NCOPTIONS; k++) {
            const char *v = *(char *const *)((const char *)e + cron_options[k].offset);
            if (v) fprintf(out, "%s = %s\n", cron_options[k].name, v);
        }
    }
}
