/*
 * Test plugin "no_entry": a loadable shared object that exports a function,
 * but not jobq_plugin_init. The host must refuse it.
 */
#include "jobq/plugin.h"

JOBQ_PLUGIN_EXPORT int jobq_plugin_init_v0(void);

int jobq_plugin_init_v0(void) { return JOBQ_OK; }
