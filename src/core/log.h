/*
 * Leveled logging to stderr, one line per event, tagged with the process role
 * ("supervisor", "worker[2]", "jobq") and the current job id when there is one.
 * Under systemd (JOURNAL_STREAM matches stderr) lines carry sd-daemon <N>
 * priority prefixes; otherwise they start with an ISO timestamp.
 */
#ifndef JOBQ_LOG_H
#define JOBQ_LOG_H

#include <stdarg.h>

#include "jobq/plugin.h" /* JOBQ_LOG_ERROR .. JOBQ_LOG_DEBUG */

/* Set the role tag (copied, printf-style) and re-detect the journal. */
void jobq_log_set_role(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Messages above level are dropped. Default JOBQ_LOG_INFO. */
void jobq_log_set_level(int level);
int jobq_log_get_level(void);

/* Parse "error", "warn"/"warning", "info", "debug"; 0 on success, -1 if unknown. */
int jobq_log_level_parse(const char *name, int *level);

/* The current job id added to every line (copied; NULL clears). */
void jobq_log_set_job(const char *job_id);

/* Write one line. The job id tag comes from jobq_log_set_job unless job_id is
 * given. errno is preserved. */
void jobq_log_vwrite(int level, const char *job_id, const char *fmt, va_list ap);
void jobq_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define jobq_log_err(...) jobq_log_write(JOBQ_LOG_ERROR, __VA_ARGS__)
#define jobq_log_warn(...) jobq_log_write(JOBQ_LOG_WARN, __VA_ARGS__)
#define jobq_log_info(...) jobq_log_write(JOBQ_LOG_INFO, __VA_ARGS__)
#define jobq_log_debug(...) \
    do { \
        if (jobq_log_get_level() >= JOBQ_LOG_DEBUG) jobq_log_write(JOBQ_LOG_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
