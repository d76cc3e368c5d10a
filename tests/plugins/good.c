/*
 * Test plugin "good": a well-behaved plugin registering "plugin_hello",
 * which returns {"hello": <args.name, or "world">} and logs through the host.
 */
#include <stdio.h>

#include "jobq/plugin.h"

static const struct jobq_api *api;

static int hello(jobq_job *job, void *udata) {
    (void)udata;
    const char *name = api->job_arg_string(job, "name");
    char result[512], *o = result;
    const char *end = result + sizeof result - 8; /* room for an escape and "} */

    if (!name) name = "world";
    api->log(job, JOBQ_LOG_INFO, "plugin_hello: greeting %s", name);
    o += sprintf(o, "{\"hello\":\"");
    for (; *name; name++) { /* JSON-escape; name came from JSON, so it is UTF-8 */
        unsigned char c = (unsigned char)*name;
        if (o >= end) return api->job_fail(job, "plugin_hello: name is too long");
        if (c == '"' || c == '\\') o += sprintf(o, "\\%c", c);
        else if (c < 0x20) o += sprintf(o, "\\u%04x", c);
        else *o++ = (char)c;
    }
    sprintf(o, "\"}");
    if (api->job_set_result_json(job, result) != JOBQ_OK)
        return api->job_fail(job, "plugin_hello: the host refused the result");
    return JOBQ_OK;
}

int jobq_plugin_init(jobq_plugin *p, const struct jobq_api *host) {
    api = host;
    if (JOBQ_PLUGIN_BEGIN(p, host, "good", "1.0") != JOBQ_OK) return JOBQ_ERR;
    host->log(NULL, JOBQ_LOG_INFO, "good: registering plugin_hello");
    return host->register_handler(p, "plugin_hello", hello, NULL);
}
