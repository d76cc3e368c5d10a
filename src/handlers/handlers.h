/*
 * The built-in handlers. Each init has the signature of jobq_plugin_init and
 * registers through the same struct jobq_api as a plugin; the daemon calls
 * them in the supervisor before workers fork.
 */
#ifndef JOBQ_HANDLERS_H
#define JOBQ_HANDLERS_H

#include "jobq/plugin.h"

/* Registers "wordcount" (GET an http/https URL, count the body's words).
 * Does no network or curl setup: curl_global_init belongs to main. */
int jobq_wordcount_init(jobq_plugin *p, const struct jobq_api *api);

/* Limits for wordcount, set by the daemon from the config before workers
 * fork: max_body in bytes (a larger body fails the job), connect_timeout in
 * seconds. A value <= 0 keeps the default (64 MiB, 10 s). */
void jobq_wordcount_configure(long max_body, double connect_timeout);

/* Free the worker's reused curl handle (call at worker exit). Safe to call
 * when no handle was ever made, and more than once. */
void jobq_wordcount_cleanup(void);

/* Registers "noop", "echo" and "sleep": always available. */
int jobq_testing_init(jobq_plugin *p, const struct jobq_api *api);

/* Registers "fail", "crash", "hang" and "abort": only with test_handlers=yes,
 * since crash, hang and abort take the worker down on purpose. */
int jobq_testing_unsafe_init(jobq_plugin *p, const struct jobq_api *api);

#endif
