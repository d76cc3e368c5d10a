/*
 * The supervisor's state, shared by its four files: supervisor.c (the
 * loop, its periodic steps, reload and stop), workers.c (worker records:
 * spawn, reap, recover, timeouts, cancels), upkeep.c (Redis: connection,
 * heartbeat and leases, reclaim of dead daemons, promotion) and cron.c
 * (periodic jobs). Nothing here is used outside src/daemon/.
 */
#ifndef JOBQ_SUPERVISOR_INTERNAL_H
#define JOBQ_SUPERVISOR_INTERNAL_H

#include <ev.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "core/config.h"
#include "daemon/slots.h"
#include "daemon/supervisor.h"
#include "protocol/queue.h"
#include "protocol/redis.h"

/* A worker record's life: running, then reaped and waiting until its
 * in-flight lists are recovered (retried while Redis refuses), then freed. */
enum wrec_state { WREC_RUNNING, WREC_REAPED };

typedef struct wrec {
    enum wrec_state state;
    pid_t pid;                    /* kept after reaping: it names the in-flight lists */
    int number;
    int slot;
    double started_at;
    bool retiring;                /* told to stop (reload or shutdown) */
    bool shutdown_kill;           /* killed at the shutdown deadline */
    double kill_at;               /* SIGKILL due (overrun job), 0 = none */
    unsigned timeout_seq;         /* slot seq of the job we timed out */
    unsigned cancel_seq;          /* slot seq of the job we cancelled */
    char *prefix;                 /* owned copies: the config may change */
    char *queues[JOBQ_MAX_QUEUES];
    int nq;
    /* filled when reaped */
    int status;
    struct rusage ru;
    bool had_job, job_timed_out, job_cancelled, job_handled;
    jobq_slot_job job;
    unsigned long long jobs_done;
    int recover_failures;         /* recovery attempts Redis refused */
    double recover_at;            /* next attempt */
    struct wrec *next;
} wrec;

#define JOBQ_SUPERVISOR_STEPS 13 /* the periodic steps of supervisor.c */
#define JOBQ_SUPERVISOR_IO_TIMEOUT 2.0 /* seconds a Redis reply to the supervisor may take, at most */
#define RATE_SAMPLES 64   /* totals kept for the rates, at most one a second */
#define RATE_WINDOW 60.0  /* seconds */

struct jobq_supervisor {
    struct ev_loop *loop;
    jobq_config cfg;              /* owned */
    jobq_config_loader reload;
    void *reload_ctx;
    jobq_redis *redis;            /* owned */
    jobq_qkeys *keys;             /* owned: the keys of cfg's queues */
    jobq_slot *slots;             /* shared with workers */
    wrec *workers;                /* owned list: running and awaiting recovery */
    int next_number;
    char host[256];
    char daemon_id[300];
    double started_at;
    bool redis_down;
    int redis_failures;
    double redis_retry_at;
    bool leased;                  /* the leases were taken at least once */
    bool heartbeat_now;           /* run the heartbeat step at the next tick (reconnected) */
    bool ready;                   /* READY=1 sent */
    bool stopping;
    double stop_deadline;
    int crash_failures;           /* consecutive workers that died doing nothing */
    double respawn_at;
    uint64_t watchdog_usec;
    int exit_status;
    unsigned long long done_by_gone, failed_by_gone; /* totals of reaped workers */
    char bad_queue_type[JOBQ_MAX_QUEUES][16]; /* last undeliverable type seen, per queue */
    unsigned long long parked_cursor[JOBQ_MAX_QUEUES]; /* where the sweep of parked jobs goes on, per queue */
    /* Job totals at each heartbeat of the last minute, oldest first, for
     * the rates published in the daemon's info. */
    struct rate_sample {
        double t;
        unsigned long long done, failed;
    } rates[RATE_SAMPLES];
    int nrates;
    struct jobq_cron_state *cron; /* owned (cron.c); NULL until its first step */
    ev_signal sig_term, sig_int, sig_hup, sig_chld;
    ev_timer tick;
    double next_run[JOBQ_SUPERVISOR_STEPS]; /* per periodic step (supervisor.c) */
};

/* ---- workers.c ---- */

/* Start workers until cfg.workers are running (none while respawn waits). */
void jobq_workers_spawn_missing(jobq_supervisor *s);
/* Reap exited workers (wait4): their records become WREC_REAPED. */
void jobq_workers_reap(jobq_supervisor *s);
/* Recover reaped workers' in-flight lists (record the job a dead worker
 * was running, put the rest back) and free their records; a record stays
 * while Redis refuses, and is retried with backoff. */
void jobq_workers_recover(jobq_supervisor *s, double now);
/* Stop workers whose job overran its timeout, and workers stuck in a take
 * (stopped, wedged) while a job may already be theirs. */
void jobq_workers_enforce_timeouts(jobq_supervisor *s, double now);
/* Kill the workers running jobs of queue qi whose ids are in ids. */
void jobq_workers_cancel(jobq_supervisor *s, int qi, char **ids, size_t n);
/* SIGKILL worker w and the process group its job started (exec handlers). */
void jobq_workers_kill(jobq_supervisor *s, wrec *w);
/* Send sig to every running worker (retire: they are not replaced). */
void jobq_workers_signal(jobq_supervisor *s, int sig, bool retire);
/* Running workers not retiring. */
int jobq_workers_active(const jobq_supervisor *s);
/* Live and busy workers, and the jobs done and failed since the start. */
void jobq_workers_totals(const jobq_supervisor *s, int *live, int *busy, unsigned long long *done,
                         unsigned long long *failed);
/* The in-flight list keys of queue qi of every worker record (running or
 * awaiting recovery), into lists (bufs of JOBQ_INFLIGHT_MAX bytes, room
 * for max); returns the count. */
int jobq_workers_lists(const jobq_supervisor *s, int qi, char (*bufs)[JOBQ_INFLIGHT_MAX], int max);
void jobq_workers_free_all(jobq_supervisor *s);

/* ---- upkeep.c ---- */

/* Connected to Redis, (re)connecting with backoff when not. On a new
 * connection the FUNCTION library is installed. */
bool jobq_upkeep_connect(jobq_supervisor *s, double now);
/* After a failed Redis call: log once, drop a broken connection. */
void jobq_upkeep_failed(jobq_supervisor *s, const jobq_err *err, const char *what);
/* Check once that Redis lets jobq run every command it needs on each
 * queue: 0 yes (or only maxmemory refusals, logged), 1 a permanent refusal
 * (logged as one clear error), -1 Redis failed (try again). */
int jobq_upkeep_probe(jobq_supervisor *s);
/* Heartbeat, leases on every queue served (re-registering the in-flight
 * lists), and the function library check. */
void jobq_upkeep_heartbeat(jobq_supervisor *s, double now);
/* Put back the work of daemons that are gone (at_start: also what this
 * daemon's id held before, a restart with the same pid), and forget them. */
void jobq_upkeep_reclaim(jobq_supervisor *s, bool at_start);
/* Promote due scheduled jobs of every queue and act on cancel requests. */
void jobq_upkeep_promote(jobq_supervisor *s);
/* Release the parked jobs of every queue served whose dependencies all
 * ended (those on other queues: the commit of a dependency releases the
 * waiters of its own queue itself). */
void jobq_upkeep_release_parked(jobq_supervisor *s);
/* The keys of cfg's queues, (re)built after a config change. */
int jobq_upkeep_set_keys(jobq_supervisor *s, jobq_err *err);

/* ---- cron.c ---- */

/* Write the config's cron entries once (again after jobq_cron_resync),
 * re-read the entries every second and fire due ticks. */
void jobq_cron_step(jobq_supervisor *s, double now);
/* After a reload: write the config's entries again at the next step. */
void jobq_cron_resync(jobq_supervisor *s);
void jobq_cron_free(jobq_supervisor *s);

#endif
