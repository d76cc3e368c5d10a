/*
 * Worker slots: a table in anonymous shared memory, mapped by the supervisor
 * before forking, where each worker publishes what it is doing (state, job id,
 * deadline, payload fingerprint) without a syscall per job. The supervisor
 * reads it to enforce timeouts and to tell which job a dead worker was running.
 * Each slot is written by one worker only; readers use the sequence counter.
 */
#ifndef JOBQ_SLOTS_H
#define JOBQ_SLOTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JOBQ_MAX_SLOTS 2048

enum jobq_slot_state {
    JOBQ_SLOT_FREE = 0, /* no worker */
    JOBQ_SLOT_STARTING, /* forked, connecting */
    JOBQ_SLOT_IDLE,     /* waiting for jobs (may be blocked in Redis) */
    JOBQ_SLOT_RUNNING,  /* inside a handler */
    JOBQ_SLOT_BUSY,     /* between handlers: parsing, committing */
};

typedef struct jobq_slot_job {
    char id[136];          /* job id */
    int queue_index;       /* index in the worker's queue list */
    double started_at;     /* Unix seconds */
    double deadline;       /* Unix seconds */
    double timeout;        /* seconds */
    uint64_t payload_hash; /* jobq_slots_hash of the in-flight payload */
    uint64_t payload_len;
} jobq_slot_job;

typedef struct jobq_slot {
    atomic_int state;        /* enum jobq_slot_state; written by the worker */
    atomic_int timed_out;    /* set by the supervisor before it sends SIGTERM */
    atomic_uint seq;         /* odd while the worker writes job */
    jobq_slot_job job;       /* valid while state == RUNNING */
    atomic_ullong jobs_done; /* jobs finished by this worker */
    atomic_ullong jobs_failed; /* of which failed (for good or to be retried) */
    atomic_long rss_kb;      /* last measured RSS */
    atomic_llong take_deadline_ms; /* while in a take: when it must have returned
                                    * (Unix ms); 0 outside one */
    atomic_int child_pgid;   /* process group a running job started (exec handlers), 0 = none:
                              * killed with the worker, by the worker on SIGTERM and by the
                              * supervisor when it SIGKILLs or reaps the worker */
} jobq_slot;

/* Map n zeroed slots shared with future children. NULL on failure (errno). */
jobq_slot *jobq_slots_map(size_t n);
void jobq_slots_unmap(jobq_slot *slots, size_t n);

/* Worker: publish the job about to run, then the state change. */
void jobq_slot_begin_job(jobq_slot *s, const jobq_slot_job *job);
void jobq_slot_set_state(jobq_slot *s, enum jobq_slot_state st);

/* Supervisor: a consistent copy of the running job; false when the slot is
 * not running one or could not be read consistently. */
bool jobq_slot_read_job(jobq_slot *s, jobq_slot_job *out);

#endif
