/*
 * Test plugin "duplicate": registers "dup_first" (a new name), then "echo",
 * which a built-in owns. The host must refuse the plugin, keep the built-in
 * echo and remove dup_first too.
 */
#include "jobq/plugin.h"

static int handler(jobq_job *job, void *udata) {
    (void)job;
    (void)udata;
    return JOBQ_OK;
}

int jobq_plugin_init(jobq_plugin *p, const struct jobq_api *api) {
    if (JOBQ_PLUGIN_BEGIN(p, api, "duplicate", "1.0") != JOBQ_OK) return JOBQ_ERR;
    if (api->register_handler(p, "dup_first", handler, NULL) != JOBQ_OK) return JOBQ_ERR;
    return api->register_handler(p, "echo", handler, NULL);
}
