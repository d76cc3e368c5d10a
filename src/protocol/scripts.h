/*
 * Every Lua script jobq runs inside Redis, and the one way to run them
 * (EVALSHA, loaded on a connection at its first use). Each script declares
 * every key it touches in KEYS, all of one queue's hash slot, and checks the
 * types of the keys it writes before its first write, so a refused script
 * leaves nothing half done. Events go out with PUBLISH on <prefix>:events,
 * or SPUBLISH on the queue's own <prefix>:{<q>}:events on a cluster (the
 * caller passes the command). The FUNCTION library (functions.c) is built
 * from the same enqueue source.
 */
#ifndef JOBQ_SCRIPTS_H
#define JOBQ_SCRIPTS_H

#include <stddef.h>

#include "core/err.h"

enum jobq_script {
    JOBQ_SCRIPT_TAKE,       /* KEYS queue, in-flight, leases, paused, running, starts;
                               ARGV max, share, daemon, concurrency, rate n, rate ms.
                               {-1} when the lease is gone; else {left, lease ms, wait,
                               payloads...} (wait: 0, -1 paused, ms until a limit allows) */
    JOBQ_SCRIPT_CONFIRM,    /* KEYS leases, in-flight, queue, paused; ARGV daemon, channel,
                               publish command. Runs right after BLMOVE: {lease ms left,
                               heard}, -1 fenced or -2 paused after putting back what it
                               moved */
    JOBQ_SCRIPT_REQUEUE,    /* KEYS in-flight, queue, holders, running; ARGV unregister
                               (0|1). Moves the list to the queue's head; count */
    JOBQ_SCRIPT_COMMIT,     /* KEYS in-flight, dead, scheduled, stats, unique, histo, queue,
                               parked, running, then 2 per job (waiters, batch); ARGV
                               channel, publish command, n, then 7 per job, then the n ids,
                               then histogram (field, increment) pairs.
                               {skipped job numbers} */
    JOBQ_SCRIPT_PROMOTE,    /* KEYS scheduled, queue, cancel; ARGV limit.
                               {moved, next due or false, bad type or false, cancels...} */
    JOBQ_SCRIPT_BURY,       /* KEYS scheduled, dead; ARGV member, entry pairs. Count */
    JOBQ_SCRIPT_LEASE,      /* KEYS leases, holders; ARGV daemon, ttl ms, lists...
                               0 had none, 1 renewed, 2 it had expired */
    JOBQ_SCRIPT_RECLAIM,    /* KEYS leases, holders, queue, running, lists...; ARGV own id,
                               forced ids... {moved, daemons declared gone...} */
    JOBQ_SCRIPT_ENQUEUE,    /* KEYS queue, scheduled, unique, ids; ARGV job, due, unique,
                               channel, publish command. {id, duplicate} (the code of
                               FCALL jobq_enqueue) */
    JOBQ_SCRIPT_CRON_FIRE,  /* KEYS queue, scheduled, unique, ids, cronticks; ARGV job,
                               tick member, tick time, channel, publish command.
                               {1, id} queued, {0} the tick was fired already */
    JOBQ_SCRIPT_CANCEL,     /* KEYS queue, scheduled or parked, unique; ARGV payload,
                               l|z|h, id, event, channel, publish command. 1 removed,
                               0 gone */
    JOBQ_SCRIPT_DEAD_RETRY, /* KEYS dead, queue; ARGV entry, payload, id, queue, handler,
                               channel, publish command. 1 re-queued, 0 the entry was gone */
    JOBQ_SCRIPT_DEAD_PURGE, /* KEYS dead. The count removed */
    JOBQ_SCRIPT_PROBE,      /* KEYS probe list, zset, hash, string; ARGV channel, message,
                               publish command.
                               {"COMMAND: error"...} for each command Redis refused */
    JOBQ_SCRIPT_PARK,       /* KEYS in-flight, parked, waiters sets...; ARGV payload, id.
                               1 parked, 0 it was no longer in flight */
    JOBQ_SCRIPT_RELEASE,    /* KEYS parked, queue; ARGV id. 1 back on the queue, 0 not parked */
    JOBQ_SCRIPT_BATCH,      /* KEYS queue, scheduled, unique, ids, batch; ARGV channel, publish
                               command, batch id, callback id, handler, members, args
                               members, ttl, jobs... {job ids} */
    JOBQ_SCRIPT_COUNT
};

/* Lua source of a script (static). */
const char *jobq_script_source(enum jobq_script s);

/* Name for messages. */
const char *jobq_script_name(enum jobq_script s);

/* The source of the jobq FUNCTION library ("#!lua name=jobq"...; static):
 * jobq_enqueue, jobq_enqueue_unique, jobq_enqueue_unique_ex and
 * jobq_version over the enqueue code of JOBQ_SCRIPT_ENQUEUE. */
const char *jobq_script_function_library(void);

/* The library's version (jobq_version), bumped on every change of it. */
int jobq_script_function_version(void);

#endif
