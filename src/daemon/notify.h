/*
 * systemd integration through libsystemd's sd_notify: readiness, status
 * lines, reload/stop announcements, watchdog pings and stop-timeout
 * extension. Every call is a no-op when not started by systemd.
 */
#ifndef JOBQ_NOTIFY_H
#define JOBQ_NOTIFY_H

#include <stdint.h>

/* Read NOTIFY_SOCKET/WATCHDOG_USEC; returns the watchdog interval in
 * microseconds (0 when the watchdog is off). Unsets nothing, so children
 * can be told apart by jobq_notify_forget in the worker. */
uint64_t jobq_notify_init(void);

/* Drop the notify state in a child process (workers never notify). */
void jobq_notify_forget(void);

void jobq_notify_ready(void);
void jobq_notify_reloading(void);
void jobq_notify_stopping(void);
void jobq_notify_watchdog(void);
void jobq_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void jobq_notify_extend_timeout(uint64_t usec);

#endif
