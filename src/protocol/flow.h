/*
 * Flow state a client or a worker reads and writes outside the take
 * script: a queue's pause flag (<prefix>:{Q}:paused, which the take and
 * confirm scripts obey) and the stored progress of running jobs
 * (<prefix>:progress:<id>, the last progress event, with a TTL). Each call
 * is one single-key command.
 */
#ifndef JOBQ_FLOW_H
#define JOBQ_FLOW_H

#include <stdbool.h>

#include "core/err.h"
#include "protocol/redis.h"

/* Pause queue: no daemon takes its jobs until jobq_flow_resume (running
 * jobs finish). info_json (e.g. who and when) is stored as the flag's
 * value. 1 paused now, 0 it was paused already, -1 with err. */
int jobq_flow_pause(jobq_redis *r, const char *prefix, const char *queue, const char *info_json, jobq_err *err);

/* Resume queue. 1 resumed, 0 it was not paused, -1 with err. */
int jobq_flow_resume(jobq_redis *r, const char *prefix, const char *queue, jobq_err *err);

/* Is queue paused? 0 with *paused and *info (the flag's value, malloc'd,
 * or NULL; may be NULL to skip), -1 with err. */
int jobq_flow_paused(jobq_redis *r, const char *prefix, const char *queue, bool *paused, char **info,
                     jobq_err *err);

/* Store the last progress (an event document) of running job id for ttl
 * seconds, without waiting for the reply (a worker's handler is running).
 * 0, or -1 with err on a connection error. */
int jobq_flow_store_progress(jobq_redis *r, const char *prefix, const char *id, const char *event_json, double ttl,
                             jobq_err *err);

/* The stored progress of job id: 0 with *json (malloc'd; the caller
 * frees), 1 when there is none, -1 with err. */
int jobq_flow_progress(jobq_redis *r, const char *prefix, const char *id, char **json, jobq_err *err);

#endif
