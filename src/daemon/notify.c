/* systemd notifications via sd_notify (libsystemd); see notify.h. */
#include "daemon/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <systemd/sd-daemon.h>

static int enabled;

uint64_t jobq_notify_init(void) {
    const char *sock = getenv("NOTIFY_SOCKET");
    enabled = sock && *sock;
    uint64_t usec = 0;
    if (enabled && sd_watchdog_enabled(0, &usec) > 0) return usec;
    return 0;
}

void jobq_notify_forget(void) { enabled = 0; }

void jobq_notify_ready(void) {
    if (enabled) sd_notify(0, "READY=1");
}

void jobq_notify_reloading(void) {
    /* MONOTONIC_USEC lets Type=notify-reload (systemd >= 253) tell this
     * reload from an older one. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (enabled)
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                   (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

void jobq_notify_stopping(void) {
    if (enabled) sd_notify(0, "STOPPING=1");
}

void jobq_notify_watchdog(void) {
    if (enabled) sd_notify(0, "WATCHDOG=1");
}

void jobq_notify_status(const char *fmt, ...) {
    if (!enabled) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", buf);
}

void jobq_notify_extend_timeout(uint64_t usec) {
    if (enabled) sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
}
