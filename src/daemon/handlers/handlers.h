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

/* Settings for wordcount, from the [wordcount] section of the config. */
typedef struct jobq_wordcount_settings {
    long max_body;          /* bytes; a larger body fails the job; <= 0: 64 MiB */
    double connect_timeout; /* seconds; <= 0: 10 s */
    bool deny_private;      /* refuse to connect to loopback, private, link-local,
                             * unspecified and CGNAT addresses (addr_policy.h) */
    bool preload;           /* load libcurl now, in the calling process */
} jobq_wordcount_settings;

/* Apply s (copied), set by the daemon from the config before workers fork.
 * With deny_private, every connection a job makes, after redirects too, is
 * checked at the address libcurl is about to connect to, and the job fails
 * with the reason when it is refused; proxies from the environment are then
 * not used. With preload, libcurl is loaded now, in the calling process, so
 * that the workers it forks share its pages; otherwise each worker loads it
 * at its first job. Returns 0, or -1 with why (why_size bytes) when
 * preloading failed (the settings are applied anyway, and workers will try
 * again). */
int jobq_wordcount_configure(const jobq_wordcount_settings *s, char *why, size_t why_size);

/* Free the worker's reused curl handle (call at worker exit). Safe to call
 * when no handle was ever made, and more than once. */
void jobq_wordcount_cleanup(void);

/* Registers "noop", "echo" and "sleep": always available. */
int jobq_testing_init(jobq_plugin *p, const struct jobq_api *api);

/* Registers "fail", "crash", "hang" and "abort": only with test_handlers=yes,
 * since crash, hang and abort take the worker down on purpose. */
int jobq_testing_unsafe_init(jobq_plugin *p, const struct jobq_api *api);

#endif
