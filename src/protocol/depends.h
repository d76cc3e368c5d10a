/*
 * The Redis side of job dependencies ("depends_on"): the state of the jobs a
 * job waits for, read from their results (which any daemon can read, on any
 * shard), and the parked jobs of a queue: parking one in the same step that
 * takes it out of flight and registers it with the jobs it waits for (in
 * the queue's slot), and releasing one back onto its queue. The commit of a
 * job of the same queue releases its waiters itself (scripts.c, LUA_ENDED).
 */
#ifndef JOBQ_DEPENDS_H
#define JOBQ_DEPENDS_H

#include <stddef.h>

#include "core/err.h"
#include "protocol/keys.h"
#include "protocol/redis.h"

enum jobq_dep_state {
    JOBQ_DEP_PENDING, /* no result yet: not ended, not even queued, or its result expired */
    JOBQ_DEP_OK,      /* ended ok */
    JOBQ_DEP_FAILED,  /* ended any other way (failed for good, dead, cancelled) */
};

/* The states of the n jobs ids (one pipeline of GETs); for a FAILED one its
 * status and error, as "failed: why" (cut), into whys[i]. 0, or -1 with err
 * (states untouched). */
int jobq_depends_states(jobq_redis *r, const char *prefix, const char *const *ids, size_t n,
                        enum jobq_dep_state *states, char (*whys)[200], jobq_err *err);

/* Park job id (payload: its exact in-flight text, len bytes) of k's
 * in-flight list in k's parked hash, waiting for the n jobs pending. 1
 * parked, 0 it was not in flight any more, -1 with err (nothing done). */
int jobq_depends_park(jobq_redis *r, const jobq_qkeys *k, const char *payload, size_t len, const char *id,
                      const char *const *pending, size_t n, jobq_err *err);

/* Put parked job id of k back at the tail of k's queue. 1 moved, 0 it was
 * not parked (released already), -1 with err. */
int jobq_depends_release(jobq_redis *r, const jobq_qkeys *k, const char *id, jobq_err *err);

/* One page of k's parked jobs (HSCAN from *cursor, which is updated; 0 once
 * the hash was walked): ids and payloads, *n of each; free both with
 * jobq_queue_free_list. 0, or -1 with err. */
int jobq_depends_scan(jobq_redis *r, const jobq_qkeys *k, unsigned long long *cursor, char ***ids,
                      char ***payloads, size_t **lens, size_t *n, jobq_err *err);

#endif
