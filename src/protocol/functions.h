/*
 * The jobq Redis FUNCTION library (Redis >= 7.0): jobq_enqueue,
 * jobq_enqueue_unique and jobq_version, so that any Redis client,
 * redis-cli included, can enqueue a job and get its id back. Its source is
 * built in scripts.c from the same enqueue code as `jobq enqueue`. jobqd
 * installs it when it connects.
 */
#ifndef JOBQ_FUNCTIONS_H
#define JOBQ_FUNCTIONS_H

#include "core/err.h"
#include "protocol/redis.h"

/*
 * Make sure the server (every primary of a cluster) has this library: FUNCTION LOAD REPLACE it when the
 * server has no "jobq" library, or one whose code differs and whose version
 * is not newer than ours (a newer jobqd's library is kept, never downgraded).
 * Returns 1 when it loaded the library, 0 when nothing was needed, -1 with
 * err: a server error class when the server refused (e.g. Redis before 7.0
 * has no FUNCTION; the connection stays usable), JOBQ_E_IO when the
 * connection broke.
 */
int jobq_functions_ensure(jobq_redis *r, jobq_err *err);

#endif
