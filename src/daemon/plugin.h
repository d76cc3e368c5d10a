/*
 * Plugin host: the struct jobq_api table given to every plugin and built-in,
 * and the loader that dlopens every *.so of the plugin directory. Runs in the
 * supervisor before workers fork; workers inherit the loaded set.
 */
#ifndef JOBQ_PLUGIN_HOST_H
#define JOBQ_PLUGIN_HOST_H

#include <stdbool.h>

#include "core/config.h"
#include "core/err.h"
#include "jobq/plugin.h"

/* The host's API table (static, lives for the process). */
const struct jobq_api *jobq_plugin_api(void);

/*
 * Register the built-in handlers (noop, echo, sleep, wordcount; fail, crash,
 * hang and abort too when test_handlers), then load every *.so in dir (sorted
 * by name; dir may be NULL or missing: then no plugins, with an info line).
 * A plugin that cannot be loaded, lacks jobq_plugin_init, was built for
 * another ABI, registers a name that exists, or whose init fails is refused
 * with one warning naming the file and why, and the others still load.
 * Returns the number of plugins loaded, or -1 with err when a built-in could
 * not be registered (a bug, not a user error).
 */
int jobq_plugin_load_all(bool test_handlers, const char *dir, jobq_err *err);

/* The same for the daemon's configuration: the built-ins (test handlers per
 * cfg), then the [exec.NAME] handlers, then the plugins of cfg's plugin
 * directory, each able to read its [plugin.NAME] section. A [plugin.NAME]
 * section no loaded plugin calls itself is warned about. cfg is borrowed
 * for the call. */
int jobq_plugin_load_config(const jobq_config *cfg, jobq_err *err);

/* In a worker, right after fork: run every plugin's worker init hook, in
 * load order (a failure is logged, and that plugin's jobs then fail).
 * Returns true when some plugin has an exit hook to run at the end. */
bool jobq_plugin_worker_start(void);

/* At a worker's clean exit: the exit hooks, in reverse order, of the
 * plugins whose init hook succeeded. */
void jobq_plugin_worker_stop(void);

/* May the handlers of plugin owner (a registry entry's owner) run in this
 * worker? false with why when its worker init hook failed. */
bool jobq_plugin_ready(const void *owner, char *why, size_t why_size);

/* Forget every handler and dlclose every plugin (before a reload, at exit). */
void jobq_plugin_unload_all(void);

#endif
