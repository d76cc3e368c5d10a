/*
 * The jobq Redis FUNCTION library (Redis >= 7.0): jobq_enqueue,
 * jobq_enqueue_unique and jobq_version, so any Redis client, redis-cli
 * included, can enqueue a job and get its id back. jobqd installs it at start.
 */
#ifndef JOBQ_FUNCTIONS_H
#define JOBQ_FUNCTIONS_H

#include "err.h"
#include "queue.h"

/* Version of the library; bumped on every change of its source. */
#define JOBQ_FUNCTIONS_VERSION 1

/* The library's Lua source, starting with "#!lua name=jobq" (static). */
const char *jobq_functions_source(void);

/*
 * Make sure the server has this library: FUNCTION LOAD REPLACE it when the
 * server has no "jobq" library, or one whose code differs and whose version
 * is not newer than ours (a newer jobqd's library is kept, never downgraded).
 * Returns 1 when it loaded the library, 0 when nothing was needed, -1 with
 * err: JOBQ_E_REPLY when the server refused (e.g. Redis before 7.0 has no
 * FUNCTION; the connection stays usable), JOBQ_E_IO when the connection broke.
 */
int jobq_functions_ensure(jobq_queue *q, jobq_err *err);

#endif
