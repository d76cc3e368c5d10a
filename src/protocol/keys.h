/*
 * The key catalog: every Redis key and channel name jobq uses is built here
 * and nowhere else. The keys of queue Q carry the hash tag {Q}, so every key
 * one script or transaction touches lies in one Redis Cluster hash slot
 * (shared/DESIGN.md, "Keys"); the result, registry and event names are
 * outside any queue's slot and are only ever used by single-key commands.
 */
#ifndef JOBQ_KEYS_H
#define JOBQ_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "protocol/redis.h"

/* Longest key any builder writes (a prefix of 64, a queue of 64, a worker id
 * of ~300, an id of 128 and the fixed parts fit). */
#define JOBQ_KEY_MAX 640

/* What a queue-scoped key holds: the part after "<prefix>:{<queue>}:". */
enum jobq_key_kind {
    JOBQ_KEY_QUEUE,     /* list: waiting jobs */
    JOBQ_KEY_SCHEDULED, /* sorted set: delayed jobs and retries by due time */
    JOBQ_KEY_DEAD,      /* list: jobs given up, newest first */
    JOBQ_KEY_INFLIGHT,  /* list (with a worker id): jobs one worker has taken */
    JOBQ_KEY_HOLDERS,   /* hash: in-flight list -> id of the daemon it belongs to */
    JOBQ_KEY_LEASES,    /* sorted set: daemon id -> lease expiry (Redis time, ms) */
    JOBQ_KEY_STATS,     /* hash: processed, failed, retried, rejected, cancelled */
    JOBQ_KEY_CANCEL,    /* sorted set: ids of running jobs to cancel, by request time */
    JOBQ_KEY_UNIQUE,    /* sorted set: ids held by jobq_enqueue_unique -> expiry */
    JOBQ_KEY_IDS,       /* string: counter for ids assigned by jobq_enqueue */
    JOBQ_KEY_PROBE,     /* (with a type suffix) scratch keys of the start-up permission check */
    JOBQ_KEY_EVENTS,    /* sharded pub/sub channel of the queue's events (Redis Cluster) */
    JOBQ_KEY_HISTO,     /* hash: latency histogram bucket counters (protocol/histo.h) */
    JOBQ_KEY_KIND_COUNT
};

/* The key of queue for kind: "<prefix>:{<queue>}:<kind>", and for
 * JOBQ_KEY_INFLIGHT and JOBQ_KEY_PROBE "<prefix>:{<queue>}:<kind>:<suffix>"
 * (suffix, a worker id or a type name, is ignored for the other kinds).
 * Returns buf. */
char *jobq_key(char *buf, size_t size, const char *prefix, enum jobq_key_kind kind, const char *queue,
               const char *suffix);

/* "<prefix>:result:<id>": a job's outcome, readable from the id alone. */
char *jobq_key_result(char *buf, size_t size, const char *prefix, const char *id);

/* "<prefix>:events": the pub/sub channel of job events. */
char *jobq_key_events(char *buf, size_t size, const char *prefix);

/* "<prefix>:daemons": hash of daemon id -> its info JSON. */
char *jobq_key_daemons(char *buf, size_t size, const char *prefix);

/* "<prefix>:daemon:<id>": the daemon's heartbeat, a string with a TTL. */
char *jobq_key_heartbeat(char *buf, size_t size, const char *prefix, const char *daemon_id);

/* A SCAN MATCH pattern for every queue-scoped key under prefix:
 * "<prefix>:{*}:*" with the prefix's glob characters escaped. */
char *jobq_key_scan_pattern(char *buf, size_t size, const char *prefix);

/* Split a queue-scoped key of prefix into its queue (copied into queue,
 * queue_size bytes) and kind. false when key is not one (another prefix, no
 * hash tag, an unknown kind). */
bool jobq_key_parse(const char *key, const char *prefix, char *queue, size_t queue_size,
                    enum jobq_key_kind *kind);

/* The fields of a queue's stats hash (the commit script writes the same). */
#define JOBQ_STATS_PROCESSED "processed" /* jobs finished: ok, or failed for good */
#define JOBQ_STATS_FAILED "failed"       /* of which failed (for good, or rejected) */
#define JOBQ_STATS_RETRIED "retried"     /* attempts that failed and were scheduled again */
#define JOBQ_STATS_REJECTED "rejected"   /* of the failed: payloads dead-lettered without running */
#define JOBQ_STATS_CANCELLED "cancelled" /* running jobs stopped by jobq cancel */

#define JOBQ_QKEY_MAX 160     /* a queue-scoped key */
#define JOBQ_INFLIGHT_MAX 480 /* an in-flight list key (with a worker id) */

/* The keys of one queue, built once and used for every call. */
typedef struct jobq_qkeys {
    char name[65];        /* the queue */
    char prefix[65];      /* the key prefix */
    char queue[JOBQ_QKEY_MAX], scheduled[JOBQ_QKEY_MAX], dead[JOBQ_QKEY_MAX], holders[JOBQ_QKEY_MAX],
        leases[JOBQ_QKEY_MAX], stats[JOBQ_QKEY_MAX], cancel[JOBQ_QKEY_MAX], unique[JOBQ_QKEY_MAX],
        histo[JOBQ_QKEY_MAX];
    char inflight[JOBQ_INFLIGHT_MAX]; /* worker worker_id's list; "" without one */
    char events[JOBQ_QKEY_MAX];       /* the events channel: <prefix>:events, or on a cluster
                                       * the queue's sharded <prefix>:{<q>}:events */
    const char *publish;              /* "PUBLISH", or "SPUBLISH" on a cluster */
} jobq_qkeys;

/* Fill k for queue under prefix, for Redis r (a cluster has sharded event
 * channels); worker_id ("host:pid") names the in-flight list, or NULL. */
void jobq_qkeys_init(jobq_qkeys *k, const jobq_redis *r, const char *prefix, const char *queue,
                     const char *worker_id);

/* A queue name is 1 to 64 of A-Z a-z 0-9 _ . : - (no braces, so the hash
 * tag is exactly the name). */
bool jobq_key_valid_queue(const char *name);

/* A key prefix is 1 to 64 of the same characters. */
bool jobq_key_valid_prefix(const char *prefix);

/* The Redis Cluster hash slot of key (CRC16 of its hash tag, or of the
 * whole key when it has none), 0..16383. */
unsigned jobq_key_slot(const char *key, size_t len);

#endif
