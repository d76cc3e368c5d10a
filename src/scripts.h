/*
 * The Lua scripts jobq runs inside Redis, each atomic: batched take into an
 * in-flight list, requeue of an in-flight list, promotion of due scheduled
 * jobs, and reclaim of a dead daemon's in-flight lists.
 */
#ifndef JOBQ_SCRIPTS_H
#define JOBQ_SCRIPTS_H

enum jobq_script {
    JOBQ_SCRIPT_TAKE,    /* KEYS: n in-flight lists then n queues; ARGV: max, n,
                            workers sharing the queues. Returns the jobs still
                            waiting, n counts, then the taken payloads. */
    JOBQ_SCRIPT_REQUEUE, /* KEYS: in-flight, queue. Moves all to the queue's head
                            keeping their order. Returns the count. */
    JOBQ_SCRIPT_PROMOTE, /* KEYS: scheduled, cancel requests; ARGV: now, queue key
                            prefix, limit, cancel expiry cutoff. Returns {moved,
                            next due score or false, cancel ids...}. */
    JOBQ_SCRIPT_RECLAIM, /* KEYS: heartbeat, in-flight hash, daemons hash;
                            ARGV: daemon id, force. Returns jobs moved or -1 when
                            the daemon is alive. */
    JOBQ_SCRIPT_COUNT
};

/* Lua source of a script (static). */
const char *jobq_script_source(enum jobq_script s);

/* Name for logs. */
const char *jobq_script_name(enum jobq_script s);

#endif
