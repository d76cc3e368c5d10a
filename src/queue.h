/*
 * jobq's Redis protocol: one blocking hiredis connection with its key names,
 * scripts and every command jobq sends (take, commit outcomes, requeue,
 * promote, heartbeat, reclaim, enqueue, result reads). Owns its redisContext;
 * no redisReply leaves this file except inside a jobq_taken.
 */
#ifndef JOBQ_QUEUE_H
#define JOBQ_QUEUE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "err.h"
#include "scripts.h"

typedef struct jobq_queue jobq_queue;

/* A new, unconnected handle for url with key prefix (both copied). NULL with
 * err when the URL is invalid. io_timeout: seconds any reply may take beyond
 * a command's own blocking time. */
jobq_queue *jobq_queue_new(const char *url, const char *prefix, double io_timeout, jobq_err *err);
void jobq_queue_free(jobq_queue *q);

/* Use this password (copied; NULL keeps the URL's) for AUTH instead of the
 * one in the URL, e.g. from a credential file. */
void jobq_queue_set_password(jobq_queue *q, const char *password);

/* Connect, AUTH, SELECT and load the scripts. 0, or -1 with err (the handle
 * stays unconnected; call again later). Closes any previous connection. */
int jobq_queue_connect(jobq_queue *q, jobq_err *err);
bool jobq_queue_connected(const jobq_queue *q);
void jobq_queue_disconnect(jobq_queue *q);

/* The URL without its password, for logs. Borrowed. */
const char *jobq_queue_url_redacted(const jobq_queue *q);

/* Format "<prefix>:<rest>" into buf, rest from fmt and ap. Returns buf. */
char *jobq_key_vformat(char *buf, size_t size, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Format "<prefix>:<rest>" into buf with q's prefix. Returns buf. */
char *jobq_queue_key(const jobq_queue *q, char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- worker side ---- */

typedef struct jobq_taken_item {
    int queue_index;     /* index into the queues given to take */
    const char *payload; /* borrowed from the jobq_taken, NUL-terminated */
    size_t len;
} jobq_taken_item;

typedef struct jobq_taken {
    void *reply;            /* owned hiredis reply(s) backing the payloads */
    void *reply2;
    jobq_taken_item *items; /* owned */
    size_t n;
    long long still_waiting; /* jobs left in the queues after this take (0 after a block) */
} jobq_taken;

/*
 * Take up to max jobs from queue_keys[0..nq) in that order, each moved
 * atomically into inflight_keys[i] of its queue, but no more than a queue's
 * length divided by share_among (the workers serving it; at least one job).
 * When none is waiting and
 * block > 0, block up to block seconds on the first queue (BLMOVE). Returns
 * 0 (out->n may be 0), or -1 with err (connection lost: reconnect).
 * Release out with jobq_taken_fini.
 */
int jobq_queue_take(jobq_queue *q, const char *const *inflight_keys,
                    const char *const *queue_keys, int nq, int max, int share_among,
                    double block, jobq_taken *out, jobq_err *err);
void jobq_taken_fini(jobq_taken *t);

/* What to write for one finished (or given-up) job, all in one transaction. */
typedef struct jobq_outcome {
    const char *inflight_key; /* the list holding payload; NULL: not in-flight */
    const char *payload;      /* exact in-flight payload to remove */
    size_t payload_len;
    const char *id;           /* result key id; NULL: no result written */
    const char *result_json;  /* result document (with id) */
    int result_ttl;           /* seconds */
    const char *event_json;   /* published on <prefix>:events; NULL: none */
    const char *dead_json;    /* pushed on <prefix>:dead; NULL: not dead */
    const char *retry_payload; /* added to <prefix>:scheduled; NULL: no retry */
    double retry_at;          /* its due time, Unix seconds */
    bool finished;            /* counts in stats:processed */
    bool failed;              /* counts in stats:failed */
} jobq_outcome;

/* Publish message on <prefix>:events without waiting for the reply, which
 * is read before that of the next command. With send_now it is written to
 * the socket at once; otherwise it leaves with the next command (commit).
 * 0, or -1 with err on a connection error. */
int jobq_queue_publish_nowait(jobq_queue *q, const char *message, bool send_now, jobq_err *err);

/* Write n outcomes in one MULTI/EXEC round trip. 0, or -1 with err: on a
 * connection error nothing is known to be written and the caller retries the
 * same outcomes after reconnecting (writes are idempotent enough: a result
 * is overwritten, LREM of a gone payload is a no-op). */
int jobq_queue_commit(jobq_queue *q, const jobq_outcome *outs, size_t n, jobq_err *err);

/* Register in-flight list keys (with their queues) under the daemon, so any
 * daemon can reclaim them if this one dies. */
int jobq_queue_register_inflight(jobq_queue *q, const char *daemon_id, const char *const *inflight_keys,
                                 const char *const *queue_names, int n, jobq_err *err);

/* ---- supervisor side ---- */

/* Move every job of inflight_key back to the head of queue_key, in order.
 * Returns the number moved, or -1 with err. */
long jobq_queue_requeue(jobq_queue *q, const char *inflight_key, const char *queue_key, jobq_err *err);

/* Forget in-flight keys of a worker that has been recovered. */
int jobq_queue_unregister_inflight(jobq_queue *q, const char *daemon_id,
                                   const char *const *inflight_keys, int n, jobq_err *err);

/* The whole in-flight list (for finding a crashed worker's job). Each element
 * malloc'd into *items (count *n); free with jobq_queue_free_list. */
int jobq_queue_list(jobq_queue *q, const char *key, char ***items, size_t **lens, size_t *n,
                    jobq_err *err);
void jobq_queue_free_list(char **items, size_t *lens, size_t n);

/* Move due scheduled jobs (score <= now) to their queues, at most limit.
 * Returns the number moved and sets *next_due (0 when nothing is scheduled).
 * Also drops cancel requests (<prefix>:cancel, a sorted set of job ids by
 * request time) older than 60 s and returns the pending ones in *cancel_ids
 * (count *ncancel; free with jobq_queue_free_list). */
long jobq_queue_promote(jobq_queue *q, double now, int limit, double *next_due, char ***cancel_ids,
                        size_t *ncancel, jobq_err *err);

/* Forget a cancel request once handled. */
int jobq_queue_cancel_done(jobq_queue *q, const char *id, jobq_err *err);

/* Write the daemon's heartbeat (TTL ttl seconds) and registry entry. */
int jobq_queue_heartbeat(jobq_queue *q, const char *daemon_id, const char *info_json, double ttl,
                         jobq_err *err);

/* Daemon ids in the registry, with their info JSON. Free with jobq_queue_free_list. */
int jobq_queue_daemons(jobq_queue *q, char ***ids, char ***infos, size_t *n, jobq_err *err);

/* Reclaim the in-flight jobs of daemon_id if its heartbeat has expired (or
 * always when force). Returns the jobs moved, -2 when the daemon is alive,
 * -1 with err on failure. */
long jobq_queue_reclaim(jobq_queue *q, const char *daemon_id, bool force, jobq_err *err);

/* Remove this daemon's heartbeat and registry entry (clean exit). */
int jobq_queue_deregister(jobq_queue *q, const char *daemon_id, jobq_err *err);

/* ---- generic ---- */

/* Run one command and convert its whole reply to JSON: strings and status
 * replies become strings, integers integers, nil null, arrays arrays. A
 * server error reply is -1 with err (JOBQ_E_REPLY); a broken connection -1
 * with JOBQ_E_IO. *out is a new reference. argvlen may be NULL. */
int jobq_queue_command_json(jobq_queue *q, json_t **out, jobq_err *err, int argc, const char **argv,
                            const size_t *argvlen);

/* Send a command without waiting for its reply (e.g. SUBSCRIBE). */
int jobq_queue_send(jobq_queue *q, jobq_err *err, int argc, const char **argv);

/* Read the next reply (e.g. a pub/sub message) as JSON, waiting at most
 * timeout seconds. 0 with *out set; 1 when the time ran out (the connection
 * is then closed: a timed-out hiredis context is unusable); -1 with err. */
int jobq_queue_read_json(jobq_queue *q, double timeout, json_t **out, jobq_err *err);

#endif
