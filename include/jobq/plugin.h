/*
 * jobq handler plugin ABI: the only public header of jobq.
 *
 * A plugin is a shared object that exports one function, jobq_plugin_init().
 * The daemon calls it once, in the supervisor, before workers fork; the plugin
 * registers its handlers through the API table it is given and returns.
 * Handlers then run in worker processes, one job at a time per process.
 *
 * Compatibility promise: within one JOBQ_PLUGIN_ABI value, struct jobq_api
 * only ever grows at its end and no member changes meaning, so a plugin built
 * against an older header keeps working with a newer daemon. A plugin that
 * wants a member added later checks api->size first (JOBQ_API_HAS below).
 * An incompatible change bumps JOBQ_PLUGIN_ABI, and the daemon then refuses
 * plugins built for another value with one log line naming the file.
 *
 * Ownership: every pointer the host hands to a plugin is borrowed and valid
 * for the duration of the call (job pointers: until the handler returns).
 * Every string or buffer a plugin hands to the host is copied by the host
 * before the call returns. Neither side frees the other's memory.
 *
 * Build a plugin:  cc -shared -fPIC -o x.so x.c $(pkg-config --cflags --libs jobq)
 */
#ifndef JOBQ_PLUGIN_H
#define JOBQ_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bump on any incompatible change to this header. */
#define JOBQ_PLUGIN_ABI 1

/* Return values of every int-returning call and of handlers. */
enum { JOBQ_OK = 0, JOBQ_ERR = -1 };

/* Log levels for api->log. */
enum { JOBQ_LOG_ERROR = 0, JOBQ_LOG_WARN = 1, JOBQ_LOG_INFO = 2, JOBQ_LOG_DEBUG = 3 };

/* One per loaded shared object; opaque; valid during jobq_plugin_init only. */
typedef struct jobq_plugin jobq_plugin;

/* The job being run; opaque; valid until the handler returns. */
typedef struct jobq_job jobq_job;

/*
 * A handler runs one job. It returns JOBQ_OK when the job succeeded (the
 * result is what it set with job_set_result_json, or JSON null if it set
 * none) and JOBQ_ERR when it failed (the error is the message given to
 * job_fail, or a generic one). udata is the pointer given at registration.
 * A handler may block; the daemon enforces the job's timeout by killing the
 * worker process, so a handler needs no timeout logic of its own, though it
 * may read job_time_left to bound its own waits.
 */
typedef int (*jobq_handler_fn)(jobq_job *job, void *udata);

struct jobq_api {
    /* Frozen: these first three members never move in any ABI version. */
    uint32_t abi;  /* JOBQ_PLUGIN_ABI of the daemon */
    uint32_t size; /* sizeof(struct jobq_api) of the daemon */

    /*
     * The plugin's first call, from jobq_plugin_init (use JOBQ_PLUGIN_BEGIN).
     * name: short plugin name used in logs (copied). version: free text.
     * Returns JOBQ_ERR when abi differs from the daemon's; the plugin must
     * then return JOBQ_ERR from its init.
     */
    int (*begin)(jobq_plugin *p, int abi, const char *name, const char *version);

    /*
     * Register a handler under name (copied; [A-Za-z0-9_.-], 1..64 chars).
     * Only valid inside jobq_plugin_init. Returns JOBQ_ERR when the name is
     * invalid or already taken (by a built-in or another plugin).
     */
    int (*register_handler)(jobq_plugin *p, const char *name, jobq_handler_fn fn,
                            void *udata);

    /* Log through the daemon's logger; job may be NULL (e.g. during init). */
    void (*log)(const jobq_job *job, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* The job's id (never NULL). Borrowed. */
    const char *(*job_id)(const jobq_job *job);

    /* 1 on the first attempt, 2 on the first retry, and so on. */
    int (*job_attempt)(const jobq_job *job);

    /* The job's args as compact JSON text ("null" when absent). Borrowed.
     * Never NULL: when memory runs out it is "null" too, and the attempt
     * fails whatever the handler returns. */
    const char *(*job_args_json)(const jobq_job *job);

    /* args[key] when args is an object and that member is a string, else NULL.
     * Borrowed. */
    const char *(*job_arg_string)(const jobq_job *job, const char *key);

    /* args[key] when it is a number: stores it in *out and returns JOBQ_OK;
     * otherwise JOBQ_ERR and *out is untouched. */
    int (*job_arg_number)(const jobq_job *job, const char *key, double *out);

    /* Seconds left before the daemon kills this job for overrunning. */
    double (*job_time_left)(const jobq_job *job);

    /* Set the job's result to this JSON text (copied). JOBQ_ERR when the
     * text is not valid JSON; the result is then left as it was. */
    int (*job_set_result_json)(jobq_job *job, const char *json);

    /* Record the job's failure message (printf-style, copied). Returns
     * JOBQ_ERR, so a handler can end with `return api->job_fail(...)`. */
    int (*job_fail)(jobq_job *job, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

    /* Report progress: fraction in [0,1] (clamped), message may be NULL.
     * Published as a "progress" event; cheap to call, rate-limited by host. */
    void (*job_progress)(jobq_job *job, double fraction, const char *message);

    /* New members go here, at the end. */
};

/* True when the daemon's table has member m (for members added later). */
#define JOBQ_API_HAS(api, m) \
    ((api)->size >= offsetof(struct jobq_api, m) + sizeof((api)->m))

#define JOBQ_PLUGIN_EXPORT __attribute__((visibility("default")))

/* The one symbol a plugin defines. Return JOBQ_OK, or JOBQ_ERR to be unloaded
 * (whatever it registered is then removed). It runs in the supervisor before
 * workers fork: register handlers and nothing heavier (no threads, sockets). */
JOBQ_PLUGIN_EXPORT int jobq_plugin_init(jobq_plugin *p, const struct jobq_api *api);

#define JOBQ_PLUGIN_BEGIN(p, api, name, version) \
    ((api)->begin((p), JOBQ_PLUGIN_ABI, (name), (version)))

#ifdef __cplusplus
}
#endif

#endif /* JOBQ_PLUGIN_H */
