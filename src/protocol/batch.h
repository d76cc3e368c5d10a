/*
 * Batches: a group of jobs queued in one step together with a callback job
 * that the commit of the group's last job queues, once, with the counts of
 * jobs that ended ok and failed in its args.batch. A batch lives in one
 * queue (its hash jobq:{q}:batch:<id>, its jobs and its callback), so all
 * of it is in that queue's hash slot.
 */
#ifndef JOBQ_BATCH_H
#define JOBQ_BATCH_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"
#include "protocol/redis.h"

/*
 * Queue the n jobs (JSON objects as text; "batch": id is added to each)
 * on queue as batch id, whose callback (a job object with a "handler";
 * its "args", when given, an object without a "batch" member; its "id"
 * defaults to "<id>.callback") is queued when all of them ended for good.
 * The batch is kept ttl seconds after that. *ids: a new array of the jobs'
 * ids. 0, or -1 with err (JOBQ_E_INVALID for a bad job or callback, with
 * why; a batch id already in use is refused by Redis).
 */
int jobq_batch_create(jobq_redis *r, const char *prefix, const char *queue, const char *id, const char *callback,
                      const char *const *jobs, size_t n, int ttl, json_t **ids, jobq_err *err);

/* The batch id of queue: a new object {"id", "queue", "total", "ok",
 * "failed", "pending", "callback", "created_at", "callback_at" (null while
 * pending)}; 0 with *out, 1 when there is no such batch, -1 with err. */
int jobq_batch_status(jobq_redis *r, const char *prefix, const char *queue, const char *id, json_t **out,
                      jobq_err *err);

#endif
