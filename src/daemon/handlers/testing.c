/*
 * Built-in handlers for smoke tests and benchmarks: noop, echo and sleep
 * (always registered), and fail, crash, hang, abort, spin and progress
 * (registered only with test_handlers = yes: some take their worker down).
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "daemon/handlers/handlers.h"

#ifndef JOBQ_VERSION
#define JOBQ_VERSION "unknown"
#endif

#define MAX_SLEEP_S 1e9 /* ~31 years: longer than any job timeout */

static const struct jobq_api *api; /* host table, set by either init */

static int noop(jobq_job *job, void *udata) {
    (void)job;
    (void)udata;
    return JOBQ_OK;
}

static int echo(jobq_job *job, void *udata) {
    (void)udata;
    if (api->job_set_result_json(job, api->job_args_json(job)) != JOBQ_OK)
        return api->job_fail(job, "echo: the host refused the args as a result");
    return JOBQ_OK;
}

/* args.seconds as compact JSON when args is an object that has it (of any
 * type), else NULL. The caller frees. */
static char *seconds_json(jobq_job *job) {
    json_t *args = json_loads(api->job_args_json(job), JSON_DECODE_ANY, NULL);
    json_t *v = json_is_object(args) ? json_object_get(args, "seconds") : NULL;
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(args);
    return text;
}

static int sleep_handler(jobq_job *job, void *udata) {
    (void)udata;
    double seconds = 0;

    if (api->job_arg_number(job, "seconds", &seconds) != JOBQ_OK) {
        char *given = seconds_json(job);
        if (given) {
            api->job_fail(job, "sleep: args.seconds must be a non-negative number, got %s", given);
            free(given);
            return JOBQ_ERR;
        }
    }
    if (!(seconds >= 0)) /* also catches NaN */
        return api->job_fail(job, "sleep: args.seconds must be a non-negative number, got %g",
                             seconds);

    double s = seconds > MAX_SLEEP_S ? MAX_SLEEP_S : seconds;
    struct timespec left = {.tv_sec = (time_t)s};
    left.tv_nsec = (long)((s - (double)left.tv_sec) * 1e9);
    if (left.tv_nsec > 999999999L) left.tv_nsec = 999999999L;
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }

    json_t *o = json_pack("{s:f}", "slept", seconds);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    if (!text) return api->job_fail(job, "sleep: out of memory building the result");
    int rc = api->job_set_result_json(job, text);
    free(text);
    if (rc != JOBQ_OK) return api->job_fail(job, "sleep: the host refused the result");
    return JOBQ_OK;
}

static int fail(jobq_job *job, void *udata) {
    (void)udata;
    const char *message = api->job_arg_string(job, "message");
    return api->job_fail(job, "%s", message ? message : "failed on purpose");
}

/* Die of SIGSEGV for real: default disposition (not a sanitizer's or a
 * plugin's handler), signal unblocked, then raise. */
static int crash(jobq_job *job, void *udata) {
    (void)udata;
    sigset_t set;
    struct sigaction sa = {.sa_handler = SIG_DFL};

    api->log(job, JOBQ_LOG_DEBUG, "crash: raising SIGSEGV");
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    signal(SIGSEGV, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGSEGV);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGSEGV);
    abort(); /* not reached unless SIGSEGV could not be made fatal */
}

/* Never return; only the daemon's timeout (SIGKILL) ends it. */
static int hang(jobq_job *job, void *udata) {
    (void)udata;
    api->log(job, JOBQ_LOG_DEBUG, "hang: sleeping until killed");
    for (;;) {
        struct timespec ts = {.tv_sec = 3600};
        nanosleep(&ts, NULL);
    }
    return JOBQ_ERR; /* not reached */
}

/* Burn CPU for args.seconds (default: until killed): exercises rlimit_cpu. */
static int spin(jobq_job *job, void *udata) {
    (void)udata;
    double seconds = 1e9;
    api->job_arg_number(job, "seconds", &seconds);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    volatile unsigned long counter = 0;
    do {
        for (int i = 0; i < 1000000; i++) counter++;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
    return JOBQ_OK;
}

/* Report progress: args.steps (default 4) steps over args.seconds (default
 * 1), then 1.0 ("done"), then stay running args.after seconds (default 0). */
static int progress(jobq_job *job, void *udata) {
    (void)udata;
    double steps = 4, seconds = 1, after = 0;
    api->job_arg_number(job, "steps", &steps);
    api->job_arg_number(job, "seconds", &seconds);
    api->job_arg_number(job, "after", &after);
    if (!(steps >= 1 && steps <= 1e6 && seconds >= 0 && seconds <= 3600 && after >= 0 && after <= 3600))
        return api->job_fail(job, "progress: args.steps 1..1e6, args.seconds and args.after 0..3600");
    char message[64];
    for (int i = 0; i < (int)steps; i++) {
        snprintf(message, sizeof message, "step %d of %d", i + 1, (int)steps);
        api->job_progress(job, i / steps, message);
        double s = seconds / steps;
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    api->job_progress(job, 1.0, "done");
    struct timespec ts = {(time_t)after, (long)((after - (double)(time_t)after) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return JOBQ_OK;
}

static int abort_handler(jobq_job *job, void *udata) {
    (void)udata;
    api->log(job, JOBQ_LOG_DEBUG, "abort: calling abort()");
    abort();
}

int jobq_testing_init(jobq_plugin *p, const struct jobq_api *host) {
    api = host;
    if (JOBQ_PLUGIN_BEGIN(p, host, "builtin-testing", JOBQ_VERSION) != JOBQ_OK) return JOBQ_ERR;
    if (host->register_handler(p, "noop", noop, NULL) != JOBQ_OK) return JOBQ_ERR;
    if (host->register_handler(p, "echo", echo, NULL) != JOBQ_OK) return JOBQ_ERR;
    if (host->register_handler(p, "sleep", sleep_handler, NULL) != JOBQ_OK) return JOBQ_ERR;
    return JOBQ_OK;
}

int jobq_testing_unsafe_init(jobq_plugin *p, const struct jobq_api *host) {
    api = host;
    if (JOBQ_PLUGIN_BEGIN(p, host, "builtin-testing-unsafe", JOBQ_VERSION) != JOBQ_OK)
        return JOBQ_ERR;
    if (host->register_handler(p, "fail", fail, NULL) != JOBQ_OK) return JOBQ_ERR;
    if (host->register_handler(p, "crash", crash, NULL) != JOBQ_OK) return JOBQ_ERR;
    if (host->register_handler(p, "hang", hang, NULL) != JOBQ_OK) return JOBQ_ERR;
    if (host->register_handler(p, "abort", abort_handler, NULL) != JOBQ_OK) return JOBQ_ERR;
    if (host->register_handler(p, "spin", spin, NULL) != JOBQ_OK) return JOBQ_ERR;
    if (host->register_handler(p, "progress", progress, NULL) != JOBQ_OK) return JOBQ_ERR;
    return JOBQ_OK;
}
