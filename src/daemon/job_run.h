/*
 * Running one job in a worker: parse and dispatch the payload, publish it in
 * the worker's slot (so the supervisor can time it out or recover it), apply
 * the queue's kernel limits around the handler, and decide its outcome.
 */
#ifndef JOBQ_JOB_RUN_H
#define JOBQ_JOB_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/job.h"
#include "daemon/slots.h"
#include "protocol/outcome.h"

/* What a worker passes to run a job of one of its queues. */
typedef struct jobq_run_ctx {
    jobq_slot *slot;                   /* the worker's slot */
    const char *worker_id;             /* "host:pid" */
    const jobq_outcome_policy *policy;
    int queue_index;                   /* in the worker's queue list */
    const char *queue;                 /* its name */
    const jobq_job_defaults *defaults; /* of the queue */
    const jobq_queue_settings *settings; /* of the queue: rlimits */
    /* Publish an event without waiting (NULL: events are not sent); send_now
     * writes it at once, otherwise it leaves with the next command. */
    void (*publish)(void *udata, int queue_index, const char *event_json, bool send_now);
    void *udata;
    const jobq_job_host *host;         /* what the plugin API reaches through a job (borrowed) */
    /* For a job with depends_on: a jobq_gate (daemon/depends.h); on
     * JOBQ_GATE_FAIL why says which dependency failed. NULL: run it. */
    int (*gate)(void *udata, int queue_index, struct jobq_job *job, char *why, size_t why_size);
} jobq_run_ctx;

/* jobq_run_job's return for a job that must not be recorded: parked until
 * its dependencies end, or left in flight to be put back. */
#define JOBQ_RUN_SKIPPED (-2.0)

/* Parse and run payload (borrowed until out is committed) into job, and
 * fill out with its outcome. alone: it is the only job of its take (its
 * "started" event is sent at once). Returns the seconds its handler ran,
 * -1 when its outcome could not be built (out of memory): out is then
 * empty and the job must stay in flight, or JOBQ_RUN_SKIPPED (out empty,
 * nothing to commit; job still to be released with jobq_job_fini). */
double jobq_run_job(const jobq_run_ctx *ctx, const char *payload, size_t len, bool alone,
                    struct jobq_job *job, jobq_outcome *out);

#endif
