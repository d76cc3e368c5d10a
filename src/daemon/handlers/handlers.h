/*
 * The built-in handlers. Each init has the signature of jobq_plugin_init and
 * registers through the same struct jobq_api as a plugin; the daemon calls
 * them in the supervisor before workers fork.
 */
#ifndef JOBQ_HANDLERS_H
#define JOBQ_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include "jobq/plugin.h"

/* Registers "wordcount" (GET an http/https URL, count the body's words).
 * Does no network or curl setup: libcurl is loaded by the first job, or by
 * jobq_wordcount_configure with preload. */
int jobq_wordcount_init(jobq_plugin *p, const struct jobq_api *api);

/* Settings for wordcount, set by the daemon from the config before workers
 * fork: max_body in bytes (a larger body fails the job), connect_timeout in
 * seconds (a value <= 0 keeps the default: 64 MiB, 10 s). With preload,
 * libcurl is loaded now, in the calling process, so that the workers it
 * forks share its pages; otherwise each worker loads it at its first job.
 * Returns 0, or -1 with why (why_size bytes) when preloading failed (the
 * settings are applied anyway, and workers will try again). */
int jobq_wordcount_configure(long max_body, double connect_timeout, bool preload, char *why,
                             size_t why_size);

/* Free the worker's reused curl handle (call at worker exit). Safe to call
 * when no handle was ever made, and more than once. */
void jobq_wordcount_cleanup(void);

/* Registers "noop", "echo" and "sleep": always available. */
int jobq_testing_init(jobq_plugin *p, const struct jobq_api *api);

/* Registers "fail", "crash", "hang" and "abort": only with test_handlers=yes,
 * since crash, hang and abort take the worker down on purpose. */
int jobq_testing_unsafe_init(jobq_plugin *p, const struct jobq_api *api);

#endif
