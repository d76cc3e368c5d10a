/*
 * Operations on single jobs that the jobq client (and any other tool) runs:
 * enqueue, read a result, cancel, and the dead-letter actions. Each one is
 * one script over one queue's keys, plus the result key where it needs one,
 * in an order that never loses what it is about.
 */
#ifndef JOBQ_JOBS_H
#define JOBQ_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "protocol/redis.h"

/* Push payload (a job object; it may leave out "id" and "enqueued_at",
 * which are then added) on queue, or schedule it at due (Unix seconds;
 * 0: now). With unique, a job whose id is still held is not queued again
 * and *duplicate is set. The id goes to id_out. With [redis] wait_replicas
 * it waits for the replicas: JOBQ_E_REPLICAS when they did not acknowledge
 * (the job is queued on the primary, id_out set). 0, or -1 with err (a
 * refused job is JOBQ_E_REPLY with the script's reason). */
int jobq_jobs_enqueue(jobq_redis *r, const char *prefix, const char *queue, const char *payload,
                      double due, bool unique, char *id_out, size_t id_size, bool *duplicate,
                      jobq_err *err);

/* The result document of id: 0 with *json (malloc'd; the caller frees),
 * 1 when there is none, -1 with err. */
int jobq_jobs_result(jobq_redis *r, const char *prefix, const char *id, char **json, jobq_err *err);

/* Where a job that no worker holds waits. */
enum jobq_waiting_in {
    JOBQ_WAITING_QUEUE,     /* on the queue */
    JOBQ_WAITING_SCHEDULED, /* in the scheduled set (delayed, or retrying) */
    JOBQ_WAITING_PARKED,    /* in the parked hash, for jobs it depends on */
};

/* Cancel a job of queue that waits in where, given its exact payload:
 * remove it, publish "cancelled", then write its result (status "failed",
 * error "cancelled"). 1 cancelled, 0 it was no longer there (taken,
 * promoted or released meanwhile), -1 with err. */
int jobq_jobs_cancel_waiting(jobq_redis *r, const char *prefix, const char *queue, enum jobq_waiting_in where,
                             const char *payload, size_t len, jobq_err *err);

/* The payload of job id parked in queue (waiting for jobs it depends on):
 * 1 with *payload (malloc'd, *len bytes, NUL-terminated; the caller
 * frees), 0 when it is not parked there, -1 with err. */
int jobq_jobs_parked(jobq_redis *r, const char *prefix, const char *queue, const char *id, char **payload,
                     size_t *len, jobq_err *err);

/* Ask the daemon running job id of queue to stop it (it records it as
 * cancelled); requests expire after a minute. */
int jobq_jobs_request_cancel(jobq_redis *r, const char *prefix, const char *queue, const char *id,
                             jobq_err *err);

/* Put the job of a dead entry of queue (entry: its exact text) back on the
 * queue with fresh attempts, forgetting its failed result. 1 done, 0 the
 * entry was gone, -2 when it cannot be retried (why says so: a payload
 * that is not a JSON object, or was cut), -1 with err. */
int jobq_jobs_dead_retry(jobq_redis *r, const char *prefix, const char *queue, const char *entry,
                         size_t entry_len, char *why, size_t why_size, jobq_err *err);

/* Delete queue's dead list; the number of entries removed, or -1. */
long jobq_jobs_dead_purge(jobq_redis *r, const char *prefix, const char *queue, jobq_err *err);

#endif
