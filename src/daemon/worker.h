/*
 * A worker process: its own Redis connection, a take -> run -> commit loop
 * over its queues, and its slot in shared memory. Runs in a child forked by
 * the supervisor and never returns to the supervisor's code.
 */
#ifndef JOBQ_WORKER_H
#define JOBQ_WORKER_H

#include <sys/types.h>

#include "core/config.h"
#include "daemon/slots.h"

typedef struct jobq_worker_params {
    const jobq_config *cfg; /* borrowed (the child's copy) */
    jobq_slot *slot;        /* this worker's slot in shared memory */
    int number;             /* worker number, for logs */
    const char *daemon_id;  /* "<host>:<supervisor pid>" */
    const char *host;
    pid_t supervisor_pid;   /* the worker exits when its parent is no longer this */
} jobq_worker_params;

/* Run the worker until told to stop or recycled. Call first thing in the
 * child after fork (it resets signal handling). Returns the process exit
 * status: 0 on a clean stop or recycle. */
int jobq_worker_main(const jobq_worker_params *p);

#endif
