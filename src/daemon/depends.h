/*
 * Job dependencies in the daemon: the gate a worker passes a job with
 * "depends_on" through before running it (run it, fail it naming the
 * dependency that failed, or park it until its dependencies end), and the
 * supervisor's sweep that releases parked jobs whose dependencies are on
 * other queues (the commit of a dependency releases the waiters of its own
 * queue at once).
 */
#ifndef JOBQ_DAEMON_DEPENDS_H
#define JOBQ_DAEMON_DEPENDS_H

#include <stddef.h>

#include "core/job.h"
#include "protocol/keys.h"
#include "protocol/redis.h"

enum jobq_gate {
    JOBQ_GATE_RUN,  /* every dependency ended ok */
    JOBQ_GATE_FAIL, /* one failed for good: why names it; fail the job without running it */
    JOBQ_GATE_SKIP, /* parked (or no longer ours): nothing to record */
};

/* Decide for job (taken from k's queue, in k's in-flight list) whose
 * depends_on is set. Parking takes it out of the in-flight list. Returns a
 * jobq_gate, or -1 with err when Redis failed (the job is still in flight). */
int jobq_depends_gate(jobq_redis *r, const jobq_qkeys *k, const struct jobq_job *job, char *why, size_t why_size,
                      jobq_err *err);

/* Release the parked jobs of k whose dependencies have all ended, walking
 * at most JOBQ_SWEEP_MAX of them from *cursor (kept by the caller between
 * calls; 0 starts over). The number released, or -1 with err. */
#define JOBQ_SWEEP_MAX 1000
long jobq_depends_sweep(jobq_redis *r, const jobq_qkeys *k, unsigned long long *cursor, jobq_err *err);

#endif
