/*
 * The supervisor: a libev loop that forks and reaps workers, restarts the
 * ones that die (with backoff when they keep dying), recovers their in-flight
 * jobs, enforces job timeouts, promotes scheduled jobs, heartbeats, reclaims
 * dead daemons' work, and handles TERM/INT (drain) and HUP (reload).
 */
#ifndef JOBQ_SUPERVISOR_H
#define JOBQ_SUPERVISOR_H

#include "core/config.h"
#include "core/err.h"

/* Builds a fresh configuration for a reload (file + environment + flags).
 * 0, or -1 with err naming file:line. */
typedef int (*jobq_config_loader)(jobq_config *out, void *ctx, jobq_err *err);

typedef struct jobq_supervisor jobq_supervisor;

/* Take over *cfg (moved: the caller's struct is zeroed). NULL with err when
 * the shared memory or event loop cannot be set up or the URL is bad. */
jobq_supervisor *jobq_supervisor_new(jobq_config *cfg, jobq_config_loader reload, void *reload_ctx,
                                     jobq_err *err);

/* Run until stopped by SIGTERM/SIGINT. Returns the exit status (0 after a
 * clean drain). Never returns in worker children (they _exit). */
int jobq_supervisor_run(jobq_supervisor *s);

void jobq_supervisor_free(jobq_supervisor *s);

/* Give the built-in handlers their settings from cfg ([wordcount]), before
 * workers fork: at start and on every reload. */
void jobq_supervisor_configure_handlers(const jobq_config *cfg);

#endif
