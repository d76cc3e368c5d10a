/*
 * The documents jobq writes for a job, each built in one place: the result
 * (<prefix>:result:<id>), the events (<prefix>:events; "queued" is built by
 * the enqueue script), the dead-letter entry and the payload of the next
 * attempt. All are compact JSON, malloc'd (the caller frees), or NULL when
 * memory ran out.
 */
#ifndef JOBQ_DOCUMENTS_H
#define JOBQ_DOCUMENTS_H

#include <stdbool.h>

#include "core/job.h"

/* A dead entry keeps at most this many bytes of the raw payload; a longer
 * one is cut, with "payload_truncated", "payload_bytes" and
 * "payload_fnv1a64" saying so. */
#define JOBQ_DEAD_PAYLOAD_MAX 65536

/* A dead entry and a retry payload keep the last this many errors. */
#define JOBQ_ERRORS_KEPT 20

/* The result document for the job's current outcome; worker is the worker
 * id ("host:pid"). */
char *jobq_doc_result(const struct jobq_job *job, const char *worker);

/* An event: "event", "id", "queue", "handler", "attempt", "worker", "time"
 * and "error" when the job failed. */
char *jobq_doc_event(const struct jobq_job *job, const char *event, const char *worker, double now);

/* A "progress" event: the event's members plus "progress" (fraction) and,
 * when given, "message". */
char *jobq_doc_progress(const struct jobq_job *job, const char *worker, double now, double fraction,
                        const char *message);

/* A dead-letter entry for a job (parsed or not) with its last error. */
char *jobq_doc_dead(const struct jobq_job *job, const char *error, double now);

/* The payload of the next attempt: the original with the attempt count,
 * deaths, enqueued_at, the assigned id, this attempt's error and the next
 * attempt's due time (queued_at; not when due_at <= 0) recorded under
 * "_jobq". NULL when the job never parsed. */
char *jobq_doc_retry_payload(const struct jobq_job *job, const char *error, bool died, double due_at);

#endif
