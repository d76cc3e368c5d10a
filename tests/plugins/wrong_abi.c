/*
 * Test plugin "wrong_abi": claims a plugin ABI one above the daemon's, then
 * ignores begin's refusal and registers "wrong_abi_hello" anyway. The host
 * must refuse the plugin and keep none of its handlers.
 */
#include "jobq/plugin.h"

static int hello(jobq_job *job, void *udata) {
    (void)job;
    (void)udata;
    return JOBQ_OK;
}

int jobq_plugin_init(jobq_plugin *p, const struct jobq_api *api) {
    (void)api->begin(p, JOBQ_PLUGIN_ABI + 1, "wrong_abi", "1.0");
    (void)api->register_handler(p, "wrong_abi_hello", hello, NULL);
    return JOBQ_OK;
}
