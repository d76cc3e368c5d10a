/*
 * The daemon registry: <prefix>:daemons (daemon id -> its info JSON: host,
 * pid, queues, workers and their jobs) and each daemon's heartbeat key
 * <prefix>:daemon:<id>, whose expiry marks it dead for `jobq status`. The
 * per-queue leases that fence a daemon live in queue.h.
 */
#ifndef JOBQ_DAEMONS_H
#define JOBQ_DAEMONS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "protocol/redis.h"

typedef struct jobq_daemon_entry {
    char *id;   /* owned */
    char *info; /* owned: the info JSON as stored */
    bool alive; /* its heartbeat key exists */
} jobq_daemon_entry;

/* Write daemon_id's heartbeat (TTL ttl seconds) and registry entry. */
int jobq_daemons_heartbeat(jobq_redis *r, const char *prefix, const char *daemon_id, const char *info_json,
                           double ttl, jobq_err *err);

/* Every registered daemon, with whether its heartbeat is current. 0 with
 * *out (count *n; free with jobq_daemons_free), or -1 with err. */
int jobq_daemons_list(jobq_redis *r, const char *prefix, jobq_daemon_entry **out, size_t *n, jobq_err *err);
void jobq_daemons_free(jobq_daemon_entry *d, size_t n);

/* Remove daemon_id's heartbeat and registry entry (clean exit, or a dead
 * daemon whose work was reclaimed). */
int jobq_daemons_forget(jobq_redis *r, const char *prefix, const char *daemon_id, jobq_err *err);

#endif
