/*
 * Exec handlers: each [exec.NAME] section of the config registers handler
 * NAME, which runs the section's program once per job (args JSON on stdin,
 * result JSON on stdout; see exec.c for the whole protocol). The program
 * and its arguments come from the config only, never from a job.
 */
#ifndef JOBQ_EXEC_H
#define JOBQ_EXEC_H

#include "core/config.h"
#include "jobq/plugin.h"

/* Build the handlers of cfg's [exec.NAME] sections (copied), replacing any
 * earlier set. Runs in the supervisor before workers fork, so the user
 * names are looked up once: a `user` that does not exist, or any `user`
 * while jobqd does not run as root, is logged now and fails each job of
 * that handler with the reason. Returns the number of handlers built. */
int jobq_exec_configure(const jobq_config *cfg);

/* Register the handlers built by jobq_exec_configure through api (the
 * signature of jobq_plugin_init). A NAME already taken (by a built-in) is
 * skipped with a warning; the others still register. */
int jobq_exec_init(jobq_plugin *p, const struct jobq_api *api);

/* Free the handlers (after the registry forgot them). */
void jobq_exec_unload(void);

#endif
