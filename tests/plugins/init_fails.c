/*
 * Test plugin "init_fails": begins, registers "never_there", then returns
 * JOBQ_ERR from its init. The host must refuse it and remove never_there.
 */
#include "jobq/plugin.h"

static int handler(jobq_job *job, void *udata) {
    (void)job;
    (void)udata;
    return JOBQ_OK;
}

int jobq_plugin_init(jobq_plugin *p, const struct jobq_api *api) {
    if (JOBQ_PLUGIN_BEGIN(p, api, "init_fails", "1.0") != JOBQ_OK) return JOBQ_ERR;
    if (api->register_handler(p, "never_there", handler, NULL) != JOBQ_OK) return JOBQ_ERR;
    api->log(NULL, JOBQ_LOG_INFO, "init_fails: failing on purpose");
    return JOBQ_ERR;
}
