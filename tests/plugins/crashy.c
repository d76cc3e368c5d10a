/*
 * Test plugin "crashy": loads fine and registers "plugin_crash", a handler
 * that writes through a NULL pointer. Its worker dies of SIGSEGV; the daemon
 * records the job as failed and starts a new worker.
 */
#include <stddef.h>

#include "jobq/plugin.h"

/* Not instrumented: under `make check-asan` the fault must be a plain
 * SIGSEGV, not a sanitizer report (which the integration tests count as a
 * bug in jobqd). */
__attribute__((no_sanitize("address", "undefined")))
static int crash(jobq_job *job, void *udata) {
    (void)job;
    (void)udata;
    int *volatile nowhere = NULL; /* volatile: the compiler cannot see it is NULL */
    *nowhere = 42;
    return JOBQ_OK;
}

int jobq_plugin_init(jobq_plugin *p, const struct jobq_api *api) {
    if (JOBQ_PLUGIN_BEGIN(p, api, "crashy", "1.0") != JOBQ_OK) return JOBQ_ERR;
    return api->register_handler(p, "plugin_crash", crash, NULL);
}
