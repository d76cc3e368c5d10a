/*
 * The daemon's scripted queue operations, one queue (one hash slot) per
 * call: take jobs into a worker's in-flight list, commit their outcomes,
 * put a list back, promote due jobs, and the lease that fences a daemon
 * that was declared dead, with the reclaim of dead daemons' lists. No
 * redisReply leaves this file except inside a jobq_taken.
 */
#ifndef JOBQ_QUEUE_H
#define JOBQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "protocol/histo.h"
#include "protocol/keys.h"
#include "protocol/outcome.h"
#include "protocol/redis.h"

/* ---- worker side ---- */

typedef struct jobq_taken {
    void *reply;             /* owned hiredis reply backing the payloads */
    const char **payloads;   /* owned array; each borrowed from reply */
    size_t *lens;            /* owned */
    size_t n;
    long long still_waiting; /* jobs left in the queue after this take */
    double lease_left;       /* seconds the daemon's lease still ran at the take */
    bool paused;             /* the queue is paused: nothing was taken */
    double wait;             /* > 0: a limit of the queue is reached; seconds until a
                              * take may succeed again (nothing was taken) */
    bool unheard;            /* nobody listened to the events channel at the take */
} jobq_taken;

/* The flow limits of a queue a take enforces ([queue.NAME]); 0: none. */
typedef struct jobq_flow_limits {
    int concurrency;         /* jobs in flight at once, over every daemon */
    long rate_n;             /* takes per rate_period seconds, over every daemon */
    double rate_period;
} jobq_flow_limits;

/*
 * Take up to max jobs from k's queue, moved atomically into k's in-flight
 * list, but no more than the queue's length divided by share_among (the
 * workers serving it; at least one job), and nothing while the queue is
 * paused (out->paused) or more than its limits allow (out->wait; limits
 * may be NULL). daemon_id's lease on the queue must be current: otherwise
 * -1 with JOBQ_E_FENCED and nothing taken. Returns 0 (out->n may be 0), or
 * -1 with err. Release out with jobq_taken_fini.
 */
int jobq_queue_take(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, int max, int share_among,
                    const jobq_flow_limits *limits, jobq_taken *out, jobq_err *err);

/* Block up to block seconds for one job of k's queue (BLMOVE into the
 * in-flight list; for a queue without limits), the lease checked in the
 * same round trip right after the move: a fenced daemon's worker gets -1
 * with JOBQ_E_FENCED and what it moved is back at the head of the queue;
 * when the queue was paused meanwhile, what it moved is back too and
 * out->paused is set. out->still_waiting is the queue's length right after
 * (LLEN, same round trip). 0 (out->n is 0 or 1), or -1. */
int jobq_queue_take_blocking(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, double block,
                             jobq_taken *out, jobq_err *err);

/* Read the blocking take that rode with a commit (jobq_take_next.deferred),
 * as jobq_queue_take_blocking. */
int jobq_queue_take_blocking_finish(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, double block,
                                    jobq_taken *out, jobq_err *err);
void jobq_taken_fini(jobq_taken *t);

/* Register k's in-flight list as daemon_id's, so that another daemon can
 * put its jobs back if this one dies. */
int jobq_queue_register(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, jobq_err *err);

/* What a late commit checks first (see jobq_queue_commit). */
typedef struct jobq_commit_check {
    const char *daemon_id; /* whose lease on the queue */
    double min_lease;      /* seconds it must still run for the results to be written */
} jobq_commit_check;

/* A take of up to max jobs (see jobq_queue_take; no limits) that
 * jobq_queue_commit sends in the same round trip as its script, right
 * after it: the take that would follow anyway costs no round trip. */
typedef struct jobq_take_next {
    const char *daemon_id;
    int max, share_among;
    double block;     /* > 0: instead, the blocking take (jobq_queue_take_blocking), when the
                         queue ran dry; only where jobq_queue_commit sends everything in order */
    bool sent;        /* out: the take may have run (moved jobs); rc and taken tell how */
    bool deferred;    /* out: the blocking take was sent; read it with
                         jobq_queue_take_blocking_finish before anything else is sent */
    int rc;           /* out: 0, or -1 (the worker takes as usual; a failure is told then) */
    jobq_taken taken; /* out, with rc 0: release with jobq_taken_fini */
} jobq_take_next;

/* What rides with a commit besides its outcomes (each may be NULL). */
typedef struct jobq_commit_opts {
    const jobq_commit_check *check; /* a commit that may be late: check first (below) */
    jobq_take_next *next;           /* a take to send with the script (below) */
    const jobq_histo_acc *histo;    /* the histogram increments to add; NULL: those of the outcomes */
    bool results_alone;             /* results in a round trip of their own, even where they could ride */
} jobq_commit_opts;

/* What a commit reports besides its return value. */
typedef struct jobq_commit_report {
    size_t skipped; /* jobs no longer in flight: nothing was written for them twice */
    bool unwritten; /* the outcomes were recorded but Redis refused a result (see below) */
} jobq_commit_report;

/*
 * Commit the outcomes of n jobs of k's in-flight list: first the results
 * (a job's result is written before its job leaves the in-flight list, so
 * a crash between the two only repeats the job), then one script that
 * records the rest for each job still in flight, and the histogram
 * increments opts->histo (applied only when every job was recorded, so a
 * commit sent again does not count them twice). report (may be NULL)
 * counts the jobs no longer there (reclaimed by another daemon, or already
 * committed by an earlier try whose reply was lost). On one server or a
 * sentinel's master without [redis] wait_replicas, the results and the
 * script go in one round trip: Redis runs them in that order, and the
 * script refuses to start past maxmemory as a SET does; if a result is
 * refused all the same (an ACL on result keys only), -1 comes with
 * report->unwritten and err: the jobs are recorded, and their results must
 * be written again (jobq_queue_write_results) before anything else, and
 * opts->results_alone keeps a refusal from recording the jobs. With
 * opts->check, the results too are written only for the jobs still in flight,
 * and only while check->daemon_id's lease still runs check->min_lease
 * seconds (else -1 with JOBQ_E_FENCED: retry once it was renewed); one
 * more round trip, for outcomes that may be late (a lease that may end
 * soon, a commit sent again). With [redis] wait_replicas, the results and
 * then the commit wait for that many replicas. 0, or -1 with err:
 * JOBQ_E_IO (nothing known; send it again after reconnecting), a refusal
 * such as JOBQ_E_OOM (no job left its in-flight list), or JOBQ_E_REPLICAS
 * (not durable yet: send it again, jobs already recorded are skipped).
 * With opts->next (and no check), the take it describes rides with the script:
 * next->sent says whether it may have run, whatever the commit's own
 * result (after a lost reply, with rc -1: what it moved is in the
 * in-flight list, unseen).
 */
int jobq_queue_commit(jobq_redis *r, const jobq_qkeys *k, const jobq_outcome *outs, size_t n,
                      const jobq_commit_opts *opts, jobq_commit_report *report, jobq_err *err);

/* Write the results of n outcomes again, after a commit that recorded them
 * came back with report->unwritten. 0, or -1 with err. */
int jobq_queue_write_results(jobq_redis *r, const jobq_qkeys *k, const jobq_outcome *outs, size_t n,
                             jobq_err *err);

/* Move every job of k's in-flight list back to the head of its queue, in
 * order; with unregister, forget the list in the same step. The count, or
 * -1 with err (nothing moved or forgotten). */
long jobq_queue_requeue(jobq_redis *r, const jobq_qkeys *k, bool unregister, jobq_err *err);

/* ---- supervisor side ---- */

/* Renew daemon_id's lease on k's queue for ttl seconds and register its
 * in-flight lists (n of them). *previous: 0 it had no lease (the first one,
 * or it was declared dead and its lists were reclaimed), 1 renewed, 2 the
 * old one had lapsed. 0, or -1 with err. */
int jobq_queue_lease(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, double ttl,
                     const char *const *lists, int n, int *previous, jobq_err *err);

/* Who a reclaim concerns. */
typedef struct jobq_reclaim_ask {
    const char *self;             /* spared; NULL at start-up (its own lists go back too) */
    const char *const *forced;    /* daemons known dead (their process is gone) */
    int nforced;
    const char *const *watched;   /* daemons gone by heartbeat: do they still hold a lease? */
    int nwatched;
} jobq_reclaim_ask;

/* What a reclaim did; free with jobq_reclaimed_fini. */
typedef struct jobq_reclaimed {
    long moved;       /* jobs put back on the queue */
    char **dropped;   /* daemons whose lease and lists were dropped */
    size_t ndropped;
    char **leased;    /* watched daemons whose lease still runs */
    size_t nleased;
} jobq_reclaimed;

/* Put back the jobs of k's queue held by daemons whose lease lapsed, or
 * that are forced, except ask->self. 0 with *out, or -1 with err. */
int jobq_queue_reclaim(jobq_redis *r, const jobq_qkeys *k, const jobq_reclaim_ask *ask, jobq_reclaimed *out,
                       jobq_err *err);
void jobq_reclaimed_fini(jobq_reclaimed *out);

/* Move due scheduled jobs to k's queue (at most limit). Returns the number
 * moved and sets *next_due (0 when nothing is scheduled). When the queue
 * key is not a list nothing moves and *bad_type names its type (static
 * storage until the next call; "" otherwise). The pending cancel requests
 * of the queue come back in *cancel_ids (count *ncancel; free with
 * jobq_queue_free_list). -1 with err. */
long jobq_queue_promote(jobq_redis *r, const jobq_qkeys *k, int limit, double *next_due,
                        char *bad_type, size_t bad_type_size, char ***cancel_ids, size_t *ncancel,
                        jobq_err *err);

/* The due scheduled payloads of k (at most limit), for jobq_queue_bury. */
int jobq_queue_due(jobq_redis *r, const jobq_qkeys *k, int limit, char ***items, size_t **lens, size_t *n,
                   jobq_err *err);

/* Move scheduled members to the dead list with their entries (n pairs).
 * The count moved, or -1 with err. */
long jobq_queue_bury(jobq_redis *r, const jobq_qkeys *k, char *const *members, const size_t *member_lens,
                     char *const *entries, size_t n, jobq_err *err);

/* Forget a handled cancel request. */
int jobq_queue_cancel_done(jobq_redis *r, const jobq_qkeys *k, const char *id, jobq_err *err);

/* Check that Redis lets this connection run what jobq needs on k's queue:
 * every command of the scripts (on scratch keys of the queue's slot),
 * EVALSHA itself, BLMOVE, and SET on a result key (of no job; message is
 * its value for a second); message is published on <events>:probe.
 * Returns 0 when all were accepted, 1 when some were refused (each as
 * "COMMAND: error; " in problems, and in *fatal whether any refusal is
 * permanent: a missing permission or command, not maxmemory), -1 with err
 * when the check itself could not run. */
int jobq_queue_probe(jobq_redis *r, const jobq_qkeys *k, const char *message, char *problems,
                     size_t problems_size, bool *fatal, jobq_err *err);

/* The whole list at key (e.g. a dead worker's in-flight list). Each element
 * malloc'd into *items (count *n); free with jobq_queue_free_list. */
int jobq_queue_list(jobq_redis *r, const char *key, char ***items, size_t **lens, size_t *n, jobq_err *err);
void jobq_queue_free_list(char **items, size_t *lens, size_t n);

/* The held in-flight lists of k's queue: list keys and their daemons
 * (count *n; free both with jobq_queue_free_list). */
int jobq_queue_holders(jobq_redis *r, const jobq_qkeys *k, char ***lists, char ***daemons, size_t *n,
                       jobq_err *err);

#endif
