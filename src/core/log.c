/*
 * Logging: level filter, role/job tags, journald priority prefixes. State is
 * per process (set again in each worker after fork); never call from a raw
 * signal handler.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

static int log_level = JOBQ_LOG_INFO;
static char log_role[48] = "jobq";
static char log_job[136];
static int log_to_journal = -1; /* -1: not yet detected */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* sd-daemon priorities: err, warning, info, debug */
static const int journal_prio[] = {3, 4, 6, 7};

/* JOURNAL_STREAM is "dev:ino" of the journal socket; it counts only when
 * stderr is still that socket (not redirected by a wrapper). */
static int detect_journal(void) {
    const char *js = getenv("JOURNAL_STREAM");
    if (!js || !*js) return 0;
    unsigned long long dev, ino;
    if (sscanf(js, "%llu:%llu", &dev, &ino) != 2) return 0;
    struct stat st;
    if (fstat(2, &st) != 0) return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void jobq_log_set_role(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_role, sizeof log_role, fmt, ap);
    va_end(ap);
    log_to_journal = detect_journal();
}

void jobq_log_set_level(int level) {
    if (level < JOBQ_LOG_ERROR) level = JOBQ_LOG_ERROR;
    if (level > JOBQ_LOG_DEBUG) level = JOBQ_LOG_DEBUG;
    log_level = level;
}

int jobq_log_get_level(void) { return log_level; }

int jobq_log_level_parse(const char *name, int *level) {
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *level = JOBQ_LOG_WARN;
        return 0;
    }
    return -1;
}

void jobq_log_set_job(const char *job_id) {
    if (!job_id) {
        log_job[0] = '\0';
        return;
    }
    snprintf(log_job, sizeof log_job, "%s", job_id);
}

void jobq_log_vwrite(int level, const char *job_id, const char *fmt, va_list ap) {
    if (level > log_level) return;
    if (level < JOBQ_LOG_ERROR) level = JOBQ_LOG_ERROR;
    int saved_errno = errno;
    if (log_to_journal < 0) log_to_journal = detect_journal();
    if (!job_id && log_job[0]) job_id = log_job;

    char line[2048];
    int n;
    if (log_to_journal) {
        n = snprintf(line, sizeof line, "<%d>%s: ", journal_prio[level], log_role);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        localtime_r(&ts.tv_sec, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line, sizeof line, "%s.%03ld %-5s %s: ", stamp,
                     ts.tv_nsec / 1000000, level_names[level], log_role);
    }
    if (n < 0) n = 0;
    char text[1600];
    text[0] = '\0';
    if (job_id) snprintf(text, sizeof text, "job=%s ", job_id);
    size_t t = strlen(text);
    vsnprintf(text + t, sizeof text - t, fmt, ap);
    /* One event, one line: control characters from job data (a newline in
     * an id, terminal escapes) are written as \xNN, never as themselves. */
    for (const char *c = text; *c && (size_t)n < sizeof line - 6; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch < 0x20 || ch == 0x7f) n += snprintf(line + n, sizeof line - (size_t)n, "\\x%02x", ch);
        else line[n++] = (char)ch;
    }
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
    errno = saved_errno;
}

void jobq_log_write(int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    jobq_log_vwrite(level, NULL, fmt, ap);
    va_end(ap);
}
