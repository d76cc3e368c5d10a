/*
 * Worker process: take jobs in batches into per-queue in-flight lists, run
 * them (job_run.c), and commit every outcome of a batch in one script.
 * A job leaves its in-flight list only in the commit that records its
 * outcome, so a worker that dies at any point loses nothing: the supervisor
 * puts what is left back on the queue. A worker dies with its supervisor
 * (PR_SET_PDEATHSIG), never takes while its daemon's lease has lapsed, and
 * stops taking while its commits are refused.
 */
#include "daemon/worker.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/log.h"
#include "daemon/depends.h"
#include "core/random.h"
#include "core/weights.h"
#include "daemon/handlers/handlers.h"
#include "daemon/job_run.h"
#include "daemon/plugin.h"
#include "protocol/documents.h"
#include "protocol/jobs.h"
#include "protocol/flow.h"
#include "protocol/queue.h"

/* A job whose handler runs this long counts as slow: batches shrink to one
 * job, and the unstarted rest of a batch goes back to its queue. */
#define SLOW_JOB_SECONDS 0.002
/* Seconds a Redis reply may take (beyond a blocking command's own time),
 * at most: see jobq_config_io_timeout. */
#define IO_TIMEOUT_SECONDS 5.0
/* Flow control: how soon a paused queue, a queue at its concurrency limit,
 * and an empty limited queue (never blocked on) are looked at again. */
#define PAUSED_RECHECK_SECONDS 0.25
#define LIMITED_RECHECK_SECONDS 0.05
/* Longest sleep when every queue is paused, limited or away. */
#define IDLE_SLEEP_SECONDS 0.1
/* A worker of one queue blocks this long per take, and looks at its
 * signals and its supervisor in between. */
#define ONE_QUEUE_BLOCK_SECONDS 1.0
/* Latency histogram increments go with a commit at most this often (or
 * when the worker finds nothing to do): a job alone in its batch then does
 * not pay Redis for them (about 5 us of Redis CPU per commit). */
#define HISTO_SEND_SECONDS 1.0

/* Set by SIGTERM/SIGINT outside a take: finish the current job, then exit. */
static volatile sig_atomic_t stop_requested;
/* Some plugin has a worker exit hook: a stop while idle waits for the take
 * to return (at most its block time) instead of leaving at once, so that
 * the hook runs. */
static volatile sig_atomic_t stop_idle_gracefully;
/* Set by SIGUSR1 (the supervisor heard that the master changed): reconnect. */
static volatile sig_atomic_t reconnect_requested;

static void on_reconnect_signal(int sig) {
    (void)sig;
    reconnect_requested = 1;
}
/* The worker's slot, for the signal handler. */
static jobq_slot *signal_slot;

static void on_stop_signal(int sig) {
    jobq_slot *s = signal_slot;
    int state = s ? atomic_load(&s->state) : JOBQ_SLOT_IDLE;
    if (state == JOBQ_SLOT_RUNNING && s && atomic_load(&s->timed_out) != 0 &&
        (unsigned)atomic_load(&s->timed_out) == atomic_load(&s->seq)) {
        /* The supervisor gave up on this job: die of the signal, and take
         * the process group the job started (an exec handler's) along. */
        int group = atomic_load(&s->child_pgid);
        if (group > 0) kill(-group, SIGKILL);
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    if (state == JOBQ_SLOT_IDLE && stop_idle_gracefully) {
        stop_requested = 1; /* what the take brings stays in flight: see the main loop */
        return;
    }
    if (state == JOBQ_SLOT_IDLE || state == JOBQ_SLOT_STARTING) {
        /* Blocked in Redis or connecting: nothing of ours is running. A job
         * moved into in-flight but not yet read is put back by the
         * supervisor, so leaving now loses nothing. */
        _exit(0);
    }
    stop_requested = 1;
}

static void setup_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_reconnect_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

typedef struct worker {
    const jobq_worker_params *p;
    const jobq_config *cfg;
    jobq_redis *redis;
    char id[128];                                   /* host:pid */
    int nq;
    jobq_qkeys *keys;                               /* owned, nq of them */
    jobq_job_defaults defaults[JOBQ_MAX_QUEUES];    /* per queue */
    jobq_queue_settings settings[JOBQ_MAX_QUEUES];  /* per queue: rlimits */
    jobq_flow_limits limits[JOBQ_MAX_QUEUES];       /* per queue: concurrency, rate_limit */
    jobq_outcome_policy policy;
    int batch;               /* current adaptive batch size */
    bool redis_down;         /* for logging once per state change */
    bool fenced;             /* the daemon's lease lapsed: for logging once */
    double lease_needed;     /* seconds of lease a commit needs to write its results */
    struct qstate {
        double down_until;   /* its cluster shard is away: skip the queue until then */
        int failures;        /* consecutive ones, for the backoff */
        bool unsure;         /* a take may have moved jobs we never saw: put them back first */
        bool registered;     /* its in-flight list is registered in the holders */
        bool paused;         /* the last take found it paused: never blocked on */
        double recheck_at;   /* paused or at a limit: no take before this (jobq_now) */
        jobq_histo_acc histo; /* latency increments not sent yet (owned) */
        double histo_since;  /* jobq_monotonic() of the oldest of them; 0: none */
    } qs[JOBQ_MAX_QUEUES];
    int home;                /* the queue this worker blocks on when all are empty */
    bool queue_dry;          /* one queue, and it was empty after the last take: block at once */
    jobq_taken prefetched;   /* taken with the last commit, to run next (one queue only) */
    bool has_prefetched;
    double uncovered_busy;   /* when a queue no worker blocks on last had jobs (jobq_now) */
    int running_qi;          /* the queue of the job running now (progress events) */
    int refusals;            /* consecutive refused commits */
    bool unacked;            /* the last commit was not acknowledged by enough replicas */
    bool results_first;      /* a result riding with its commit was refused: results go first, alone */
    bool block_sent;         /* a blocking take of queue 0 rode with the last commit: read it next */
    double parent_checked_at; /* jobq_monotonic() of the last orphaned() in the main loop */
    bool must_exit;          /* an outcome could not be built: exit, the supervisor requeues */
    int connect_failures;
    unsigned long long jobs_done;
    jobq_job_host host;      /* what the plugin API reaches through a running job */
    bool hooks_started;      /* the plugins' worker init hooks ran */
    double progress_at;      /* when the last progress event went out */
    char progress_id[JOBQ_JOB_ID_MAX + 1]; /* of which job */
    struct jobq_job *jobs;   /* owned: batch_size of them */
    jobq_outcome *outs;      /* owned: batch_size of them */
} worker;

/* Sleep s seconds, or less when told to stop or to reconnect (the master
 * changed: a commit waiting out a backoff is sent to the new one at once). */
static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested && !reconnect_requested) {
    }
}

/* The supervisor is gone (kill -9): a worker never outlives it, since a new
 * daemon would reclaim and rerun whatever it runs. */
static bool orphaned(const worker *w) { return getppid() != w->p->supervisor_pid; }

/* orphaned(), looked at once a second at most: the main loop's backstop
 * (PR_SET_PDEATHSIG already kills a worker whose supervisor died), where a
 * system call per batch would cost every job. */
static bool orphaned_lately(worker *w) {
    double now = jobq_monotonic();
    if (now - w->parent_checked_at < 1.0) return false;
    w->parent_checked_at = now;
    return orphaned(w);
}

/* ---- connection and queues ---- */

/* Connect (again) with capped exponential backoff until connected or told to
 * stop. Logs once when Redis goes away and once when it is back. Every
 * queue is then re-registered and its in-flight list put back before its
 * next take: a take whose reply was lost may have moved jobs there. */
static int ensure_connected(worker *w) {
    int short_of_memory = 0;
    while (!jobq_redis_connected(w->redis)) {
        if (stop_requested || orphaned(w)) return -1;
        jobq_err err;
        if (jobq_redis_connect(w->redis, &err) != 0 && err.code == JOBQ_E_NOMEM && ++short_of_memory >= 3) {
            /* This process, not Redis, is short of memory: a fresh worker
             * does better than backing off here. */
            jobq_log_err("cannot connect to Redis: %s; leaving this worker's jobs to a fresh one", err.msg);
            w->must_exit = true;
            return -1;
        }
        if (jobq_redis_connected(w->redis)) {
            if (w->redis_down) jobq_log_info("connected to Redis again at %s", jobq_redis_url_redacted(w->redis));
            w->redis_down = false;
            w->connect_failures = 0;
            for (int i = 0; i < w->nq; i++) w->qs[i].registered = false;
            return 0;
        }
        if (!w->redis_down) jobq_log_warn("Redis unavailable (%s); retrying with backoff", err.msg);
        w->redis_down = true;
        w->connect_failures++;
        sleep_seconds(err.code == JOBQ_E_NOMEM ? 0.01 : jobq_backoff_delay(w->connect_failures, 0.05, 2.0));
    }
    return 0;
}

static void lost_connection(worker *w, const jobq_err *err) {
    if (!w->redis_down) jobq_log_warn("lost Redis connection: %s; reconnecting", err->msg);
    w->redis_down = true;
    for (int i = 0; i < w->nq; i++) w->qs[i].unsure = true;
    w->block_sent = false;
    jobq_redis_disconnect(w->redis);
}

static bool queue_up(const worker *w, int i) { return jobq_now() >= w->qs[i].down_until; }

/* Queue i's Redis failed (a broken connection, or a server that is now a
 * read-only replica: a failover demoted it). One server (or a sentinel's
 * master) is all of Redis: reconnect, which asks the sentinels again. On a
 * cluster only that queue's shard is away: skip the queue for a while and
 * serve the others. */
static void queue_failed(worker *w, int i, const jobq_err *err) {
    if (!jobq_redis_is_cluster(w->redis) || !jobq_redis_connected(w->redis) || err->code == JOBQ_E_READONLY) {
        lost_connection(w, err);
        return;
    }
    struct qstate *q = &w->qs[i];
    if (q->failures++ == 0)
        jobq_log_warn("queue %s is unreachable (%s); serving the other queues meanwhile", w->keys[i].name, err->msg);
    q->down_until = jobq_now() + jobq_backoff_delay(q->failures, 0.05, 2.0);
    q->unsure = true;
    q->registered = false;
}

static void queue_ok(worker *w, int i) {
    if (w->qs[i].failures) jobq_log_info("queue %s is reachable again", w->keys[i].name);
    w->qs[i].failures = 0;
}

/* Before a take from queue i: its in-flight list registered, and whatever
 * it may hold from a take whose reply was lost put back. false when Redis
 * failed (handled). */
static bool prepare_queue(worker *w, int i) {
    struct qstate *q = &w->qs[i];
    jobq_err err;
    if (!q->registered) {
        if (jobq_queue_register(w->redis, &w->keys[i], w->p->daemon_id, &err) != 0) {
            queue_failed(w, i, &err);
            return false;
        }
        q->registered = true;
    }
    if (q->unsure) {
        long n = jobq_queue_requeue(w->redis, &w->keys[i], false, &err);
        if (n < 0) {
            if (err.code == JOBQ_E_IO) queue_failed(w, i, &err);
            else jobq_log_err("putting back unstarted jobs: %s", err.msg);
            return false;
        }
        if (n > 0) jobq_log_info("put back %ld job(s) of queue %s taken while the connection was lost", n,
                                 w->keys[i].name);
        q->unsure = false;
    }
    return true;
}

/* A take that failed: a lapsed lease is waited out, a broken connection
 * handled per queue, anything else (a queue key of the wrong type) said
 * once a minute while that queue is skipped for a second. */
static void take_failed(worker *w, int i, const jobq_err *err) {
    if (err->code == JOBQ_E_IO || err->code == JOBQ_E_READONLY) {
        queue_failed(w, i, err);
    } else if (err->code == JOBQ_E_FENCED) {
        if (!w->fenced)
            jobq_log_warn("%s (the supervisor stalled, or another daemon declared this one dead); "
                          "taking no jobs until it renews", err->msg);
        w->fenced = true;
        sleep_seconds(0.2);
    } else {
        /* Out of memory after the take script ran: what it moved into our
         * in-flight list never reached us, so it goes back before the next
         * take (nobody else would put it back while we live). */
        if (err->code == JOBQ_E_NOMEM) w->qs[i].unsure = true;
        /* e.g. a queue key of the wrong type: said once a minute, not per try */
        static char last[sizeof err->msg];
        static double last_at;
        double now = jobq_now();
        if (strcmp(last, err->msg) != 0 || now - last_at >= 60) {
            jobq_log_err("taking jobs from queue %s: %s (retrying every second)", w->keys[i].name, err->msg);
            snprintf(last, sizeof last, "%s", err->msg);
            last_at = now;
        }
        w->qs[i].down_until = now + 1;
    }
}

static void publish_event(void *udata, int qi, const char *event_json, bool send_now) {
    worker *w = udata;
    if (!jobq_redis_connected(w->redis) || !queue_up(w, qi)) return;
    jobq_err err;
    if (jobq_redis_publish_nowait(w->redis, w->keys[qi].events, event_json, send_now, &err) != 0)
        queue_failed(w, qi, &err);
}

/* ---- take, run, commit ---- */

/* A queue with a concurrency or rate limit is only taken from by the take
 * script, never by BLMOVE. */
static bool limited(const worker *w, int i) { return w->limits[i].concurrency > 0 || w->limits[i].rate_n > 0; }

/* A take from queue i found nothing: note when to look again (paused, at
 * a limit, or an empty limited queue). */
static void note_empty_take(worker *w, int i, const jobq_taken *t) {
    struct qstate *q = &w->qs[i];
    double now = jobq_now(), jitter = 0.5 + jobq_random01();
    q->paused = t->paused;
    if (t->paused) q->recheck_at = now + PAUSED_RECHECK_SECONDS * jitter;
    else if (t->wait > 0) q->recheck_at = now + (w->limits[i].rate_n > 0 ? t->wait : t->wait * jitter);
    else if (limited(w, i)) q->recheck_at = now + LIMITED_RECHECK_SECONDS * jitter;
}

/* A blocking take from queue i ended with rc (and err): queue i, or -1. */
static int blocking_take_done(worker *w, int i, int rc, const jobq_taken *t, const jobq_err *err) {
    if (rc != 0) {
        take_failed(w, i, err);
        return -1;
    }
    queue_ok(w, i);
    w->fenced = false;
    if (t->paused) note_empty_take(w, i, t); /* paused while blocked: what came went back */
    w->queue_dry = t->still_waiting == 0;
    return i;
}

/* Take the next batch from the first queue that has jobs and is reachable,
 * trying them in priority order (or, with weights, in a random order drawn
 * by weight); a paused queue, or one at its limit, is skipped until it is
 * worth looking again. With none waiting, block on this worker's home
 * queue, or the next one without limits that is not paused (workers of
 * several queues spread over them, so a job on any queue wakes some worker
 * at once; each looks at the others at least every 100 ms, and at a limited
 * queue when it may take again); with no such queue, sleep until then. The
 * index of the queue taken from with t filled (t->n may be 0), or -1 after
 * a failure. */
static int take_batch(worker *w, jobq_taken *t) {
    jobq_err err;
    memset(t, 0, sizeof *t);
    if (w->block_sent) { /* rode with the last commit, on queue 0 (the only one) */
        w->block_sent = false;
        int rc = jobq_queue_take_blocking_finish(w->redis, &w->keys[0], w->p->daemon_id, ONE_QUEUE_BLOCK_SECONDS, t,
                                                 &err);
        return blocking_take_done(w, 0, rc, t, &err);
    }
    if (w->has_prefetched) { /* taken with the last commit, from queue 0 (the only one) */
        *t = w->prefetched;
        w->has_prefetched = false;
        memset(&w->prefetched, 0, sizeof w->prefetched);
        w->qs[0].paused = t->paused;
        w->queue_dry = t->still_waiting == 0;
        if (t->n > 0) return 0;
        note_empty_take(w, 0, t);
        jobq_taken_fini(t);
    }
    /* A worker of one queue that saw it empty after its last take goes
     * straight to the blocking take: the non-blocking one would find
     * nothing (or at most the job the blocking take returns at once) and
     * cost every job of a lightly loaded queue a round trip. The queue's
     * length comes back with every take, so a queue that fills up is
     * taken from in batches again from the next take on. A limited or
     * paused queue is never taken by the blocking take. */
    bool straight_to_block = w->nq == 1 && w->queue_dry && !limited(w, 0) && !w->qs[0].paused;
    int order[JOBQ_MAX_QUEUES];
    jobq_weights_order(w->cfg->weights, w->nq, jobq_random01, order);
    for (int k = straight_to_block ? w->nq : 0; k < w->nq; k++) {
        int i = order[k];
        if (!queue_up(w, i) || jobq_now() < w->qs[i].recheck_at || !prepare_queue(w, i)) continue;
        /* One job at a time from a limited queue: no batch holds slots it does
         * not use, and a job starts when its take was counted. */
        int max = limited(w, i) ? 1 : w->batch;
        if (jobq_queue_take(w->redis, &w->keys[i], w->p->daemon_id, max, w->cfg->workers, &w->limits[i], t,
                            &err) != 0) {
            take_failed(w, i, &err);
            if (err.code == JOBQ_E_FENCED || !jobq_redis_connected(w->redis)) return -1;
            continue;
        }
        queue_ok(w, i);
        w->qs[i].paused = false;
        w->queue_dry = t->still_waiting == 0;
        if (t->n > 0 && i >= w->cfg->workers) w->uncovered_busy = jobq_now();
        if (t->n > 0) return i;
        note_empty_take(w, i, t);
        jobq_taken_fini(t);
    }
    double now = jobq_now(), recheck = 0;
    for (int i = 0; i < w->nq; i++)
        if (w->qs[i].recheck_at > now && (recheck == 0 || w->qs[i].recheck_at < recheck)) recheck = w->qs[i].recheck_at;
    int home = -1;
    for (int k = 0; k < w->nq && home < 0; k++) {
        int i = (w->home + k) % w->nq;
        if (queue_up(w, i) && !limited(w, i) && !w->qs[i].paused) home = i;
    }
    if (home < 0 || !prepare_queue(w, home)) {
        /* every queue is away, paused or limited for now */
        double nap = recheck > now ? recheck - now : 0.05;
        sleep_seconds(nap < IDLE_SLEEP_SECONDS ? nap : IDLE_SLEEP_SECONDS);
        return -1;
    }
    /* Workers block on queues 0..workers-1 (one home each); with more
     * queues than workers the others have nobody blocked on them, and a job
     * there waits for a worker to look: every 100 ms, or every 10 ms for
     * the 2 s after one of them had jobs (measured: a queue without a
     * blocked worker at 1,000 jobs/s, enqueue -> start p50 49 ms with 100
     * ms; the short wait only costs polls while such a queue is in use). A
     * limited queue is looked at again when it may take. */
    double block = w->nq == 1 ? ONE_QUEUE_BLOCK_SECONDS : jobq_now() - w->uncovered_busy < 2.0 ? 0.01 : 0.1;
    if (recheck > now && recheck - now < block) block = recheck - now < 0.002 ? 0.002 : recheck - now;
    int rc = jobq_queue_take_blocking(w->redis, &w->keys[home], w->p->daemon_id, block, t, &err);
    return blocking_take_done(w, home, rc, t, &err);
}

/* A take that rode with a commit is not used (the commit failed, or the
 * take did): what it may have moved into the in-flight list goes back
 * before the next take. */
static void drop_next_take(worker *w, int qi, jobq_take_next *next) {
    if (!next->sent) return;
    if (next->deferred) jobq_redis_disconnect(w->redis); /* its replies are not worth waiting for */
    else if (next->rc == 0) jobq_taken_fini(&next->taken);
    w->qs[qi].unsure = true;
    next->sent = next->deferred = false;
}

/* Does a take surely follow the commit of this batch (done jobs of queue
 * qi, taken by t)? One queue without limits, nothing of it to put back
 * first, the worker staying: then it rides with the commit; the blocking
 * take when the queue ran dry. */
static bool take_follows(const worker *w, int qi, const jobq_taken *t, size_t done, bool give_back) {
    unsigned long long max_jobs = (unsigned long long)w->cfg->max_jobs_per_worker;
    return w->nq == 1 && qi == 0 && done > 0 && !limited(w, 0) && !t->paused && !w->qs[0].unsure && queue_up(w, 0) &&
           !give_back && !stop_requested && !w->must_exit && (max_jobs == 0 || w->jobs_done + done < max_jobs);
}

/* The outcomes of this batch were recorded, but Redis refused a result
 * that rode with them (an ACL on result keys only, say): write the results
 * again until they land, or the supervisor is gone (a stopping daemon
 * kills its workers after shutdown_timeout). From now on this worker
 * writes results in their own round trip before each commit, so a
 * refusal keeps the jobs in flight instead. */
static bool write_results_again(worker *w, int qi, size_t n, jobq_err *err) {
    jobq_log_err("Redis refused the result of a job it recorded (%s); writing the results again, and from now on "
                 "before their commits", err->msg);
    w->results_first = true;
    for (int tries = 1;; tries++) {
        if (ensure_connected(w) == 0 && jobq_queue_write_results(w->redis, &w->keys[qi], w->outs, n, err) == 0) {
            jobq_log_info("results written again (try %d)", tries);
            return true;
        }
        if (orphaned(w) || w->must_exit) return false;
        if (tries == 1 || tries % 60 == 0) jobq_log_err("writing results again: %s", err->msg);
        sleep_seconds(jobq_backoff_delay(tries, 0.1, 5.0));
    }
}

/* Commit until it lands, or the worker must stop (its outcomes then stay
 * in flight for the supervisor). A refusal (maxmemory, a missing
 * permission, a key of the wrong type) is retried with backoff, and no job
 * is taken meanwhile. lease_until: when the daemon's lease, as it stood at
 * the take, ends; near it (or on a second try) the jobs may have been put
 * back and handed to another daemon, so the commit first checks which are
 * still in flight and that the lease runs long enough, and writes no
 * result for the others. */
static bool commit_batch(worker *w, int qi, size_t n, double lease_until, jobq_take_next *next) {
    bool late = false; /* sent again after Redis failed or refused: time has passed */
    struct qstate *q = &w->qs[qi];
    static const jobq_histo_acc no_histo;
    if (n > 0 && jobq_histo_add(&q->histo, w->outs, n) == 0 && q->histo_since == 0) q->histo_since = jobq_monotonic();
    bool with_histo = q->histo.n > 0 && jobq_monotonic() - q->histo_since >= HISTO_SEND_SECONDS;
    for (int tries = 0; n > 0; tries++) {
        if (ensure_connected(w) != 0) return false;
        jobq_err err;
        jobq_commit_report report;
        jobq_commit_check check = {w->p->daemon_id, w->lease_needed};
        bool verify = late || jobq_monotonic() >= lease_until - w->lease_needed;
        jobq_commit_opts opts = {verify ? &check : NULL, next, with_histo ? &q->histo : &no_histo,
                                 w->results_first};
        int rc = jobq_queue_commit(w->redis, &w->keys[qi], w->outs, n, &opts, &report, &err);
        if (rc != 0 && next) drop_next_take(w, qi, next);
        next = NULL; /* first try only: jobs must run soon after their take (the lease it read) */
        if ((rc == 0 || report.unwritten) && with_histo) { /* the script ran: applied, or given up */
            jobq_histo_clear(&q->histo);
            q->histo_since = 0;
        }
        if (report.unwritten) return write_results_again(w, qi, n, &err);
        if (rc == 0) {
            if (w->refusals) jobq_log_info("outcomes recorded again after %d refused commit(s)", w->refusals);
            bool retried_durable = w->unacked; /* the first try was recorded but not yet replicated */
            w->refusals = 0;
            w->unacked = false;
            if (report.skipped && !retried_durable)
                jobq_log_warn("%zu job(s) of this batch were no longer in flight (reclaimed by another "
                              "daemon, or already recorded): their outcomes were not written again", report.skipped);
            return true;
        }
        if (reconnect_requested) { /* the supervisor heard that the master changed */
            reconnect_requested = 0;
            jobq_err moved = {JOBQ_E_IO, "the master changed"};
            lost_connection(w, &moved);
            late = true;
            continue;
        }
        if (err.code == JOBQ_E_IO || err.code == JOBQ_E_READONLY) {
            /* Sent again once Redis (or the queue's shard, after a failover)
             * answers: a job already recorded is not recorded twice. */
            queue_failed(w, qi, &err);
            late = true;
            if (stop_requested || orphaned(w)) return false;
            if (jobq_redis_connected(w->redis)) sleep_seconds(w->qs[qi].down_until - jobq_now());
            continue;
        }
        if (err.code == JOBQ_E_FENCED) {
            /* The lease is about to lapse (a stalled supervisor): wait for
             * its renewal, or for the jobs to be reclaimed (then nothing is
             * written for them). */
            if (!w->fenced) jobq_log_warn("%s", err.msg);
            w->fenced = true;
            late = true;
            if (stop_requested || orphaned(w)) return false;
            sleep_seconds(0.2);
            continue;
        }
        if (err.code == JOBQ_E_NOMEM) {
            /* This process is short of memory, not Redis: a few quick tries,
             * then a fresh worker (the jobs stay in flight, uncharged, and
             * the supervisor puts them back). */
            if (tries >= 3 || stop_requested || orphaned(w)) {
                jobq_log_err("out of memory recording %zu outcome(s); leaving them in flight for a fresh "
                             "worker", n);
                w->must_exit = true;
                return false;
            }
            sleep_seconds(jobq_backoff_delay(tries + 1, 0.01, 0.1));
            continue;
        }
        late = true;
        if (err.code == JOBQ_E_REPLICAS) w->unacked = true;
        if (w->refusals++ == 0)
            jobq_log_err("Redis refused to record %zu outcome(s): %s; the jobs stay in flight, no job is "
                         "taken, and the commit is retried", n, err.msg);
        if (stop_requested || orphaned(w)) return false;
        /* Not enough replicas: the WAIT itself took wait_timeout, which
         * paces the retries; a replica that resyncs is used at once. */
        if (err.code != JOBQ_E_REPLICAS) sleep_seconds(jobq_backoff_delay(w->refusals, 0.1, 5.0));
    }
    return true;
}

/* With nothing to run: send the histogram increments still held. */
static void send_histo(worker *w) {
    for (int i = 0; i < w->nq; i++) {
        struct qstate *q = &w->qs[i];
        if (q->histo.n == 0 || !queue_up(w, i) || !jobq_redis_connected(w->redis)) continue;
        jobq_err err;
        if (jobq_histo_send(w->redis, w->keys[i].histo, &q->histo, &err) != 0) {
            if (err.code == JOBQ_E_IO) queue_failed(w, i, &err);
            continue;
        }
        jobq_histo_clear(&q->histo);
        q->histo_since = 0;
    }
}

/* With every outcome of the batch committed, whatever queue qi's
 * in-flight list still holds was never started (a batch that turned
 * slow): move it back to the head of the queue, in order. */
static void put_back_unstarted(worker *w, int qi) {
    jobq_err err;
    long n = jobq_queue_requeue(w->redis, &w->keys[qi], false, &err);
    if (n < 0 && err.code == JOBQ_E_IO) queue_failed(w, qi, &err);
    else if (n < 0) jobq_log_err("putting back unstarted jobs: %s", err.msg);
    else if (n > 0) jobq_log_debug("put back %ld unstarted job(s) of a batch that turned slow", n);
}

static void release_batch(worker *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (w->jobs[i].failed) atomic_fetch_add(&w->p->slot->jobs_failed, 1);
        jobq_outcome_fini(&w->outs[i]);
        jobq_job_fini(&w->jobs[i]);
    }
}

/* ctx->gate of the jobs this worker runs: a jobq_gate. When Redis fails
 * the job stays in flight and goes back on its queue before the next take
 * from it (a second later when Redis refused). */
static int gate_job(void *udata, int qi, struct jobq_job *job, char *why, size_t why_size) {
    worker *w = udata;
    jobq_err err;
    int g = jobq_depends_gate(w->redis, &w->keys[qi], job, why, why_size, &err);
    if (g >= 0) return g;
    if (err.code == JOBQ_E_IO || err.code == JOBQ_E_READONLY) {
        queue_failed(w, qi, &err);
    } else {
        jobq_log_err("checking the dependencies of job %s: %s; it goes back on its queue", job->id, err.msg);
        w->qs[qi].unsure = true;
        w->qs[qi].down_until = jobq_now() + 1;
    }
    return JOBQ_GATE_SKIP;
}

/* Run the batch t of queue qi and commit it. Adapts the batch size. */
static void run_batch(worker *w, int qi, jobq_taken *t) {
    /* No "started" events that nobody would hear (see the take script). */
    jobq_run_ctx ctx = {w->p->slot, w->id, &w->policy, qi, w->cfg->queues[qi], &w->defaults[qi],
                        &w->settings[qi], t->unheard ? NULL : publish_event, w, &w->host, gate_job};
    w->running_qi = qi;
    double lease_until = jobq_monotonic() + t->lease_left;
    size_t done = 0;
    double busy = 0;
    bool give_back = false;
    for (size_t i = 0; i < t->n; i++) {
        double took = jobq_run_job(&ctx, t->payloads[i], t->lens[i], t->n == 1, &w->jobs[done], &w->outs[done]);
        if (took == JOBQ_RUN_SKIPPED) { /* parked, or left in flight to be put back */
            jobq_job_fini(&w->jobs[done]);
            if (stop_requested) break;
            continue;
        }
        if (took < 0) {
            /* No outcome could be built: commit what is done, then exit;
             * the supervisor puts the rest back. */
            jobq_job_fini(&w->jobs[done]);
            w->must_exit = true;
            break;
        }
        busy += took;
        done++;
        if (stop_requested) break; /* the rest stay in flight for the supervisor */
        if (took >= SLOW_JOB_SECONDS && i + 1 < t->n) {
            /* Jobs turned slow: the rest of the batch goes back to the head
             * of its queue for idle workers instead of waiting here. */
            give_back = true;
            break;
        }
    }
    /* Grow the batch while jobs are short and more are waiting (a deep queue
     * of quick jobs then costs one round trip per batch); take one job at a
     * time when they are slow or the queue runs dry, so that jobs are shared
     * among the workers instead of queueing behind one. */
    if (done == (size_t)w->batch && busy / (double)done < SLOW_JOB_SECONDS && t->still_waiting > 0)
        w->batch = w->batch * 2 > w->cfg->batch_size ? w->cfg->batch_size : w->batch * 2;
    else
        w->batch = 1;
    jobq_take_next next = {.daemon_id = w->p->daemon_id, .max = w->batch, .share_among = w->cfg->workers,
                           .block = t->still_waiting > 0 ? 0 : ONE_QUEUE_BLOCK_SECONDS};
    bool with_take = take_follows(w, qi, t, done, give_back);
    bool committed = commit_batch(w, qi, done, lease_until, with_take ? &next : NULL);
    if (committed && give_back) put_back_unstarted(w, qi);
    if (with_take && committed && next.deferred) {
        w->block_sent = true;
    } else if (with_take && committed && next.sent && next.rc == 0) {
        w->prefetched = next.taken;
        w->has_prefetched = true;
    } else if (with_take) {
        drop_next_take(w, qi, &next);
    }
    release_batch(w, done);
    w->jobs_done += done;
    atomic_store(&w->p->slot->jobs_done, w->jobs_done);
}

/* ---- life cycle ---- */

static long current_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long size = 0, resident = 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* Time to leave and let the supervisor start a fresh worker? */
static bool should_recycle(worker *w) {
    const jobq_config *cfg = w->cfg;
    if (cfg->max_jobs_per_worker > 0 && w->jobs_done >= (unsigned long long)cfg->max_jobs_per_worker) {
        jobq_log_info("recycling after %llu jobs (max_jobs_per_worker)", w->jobs_done);
        return true;
    }
    if (cfg->max_worker_rss > 0) {
        long rss = current_rss_bytes();
        atomic_store(&w->p->slot->rss_kb, rss / 1024);
        if (rss > cfg->max_worker_rss) {
            jobq_log_info("recycling: RSS %ld KiB is over max_worker_rss %ld KiB", rss / 1024,
                          cfg->max_worker_rss / 1024);
            return true;
        }
    }
    return false;
}

static void progress_event(void *ctx, jobq_job *job, double fraction, const char *message);
static void child_group(void *ctx, int pgid);
static int enqueue_followup(void *ctx, jobq_job *job, const char *queue, const char *job_json, int flags,
                            char *id, size_t id_size, jobq_err *err);

static int worker_init(worker *w, const jobq_worker_params *p) {
    memset(w, 0, sizeof *w);
    const jobq_config *cfg = p->cfg;
    w->p = p;
    w->cfg = cfg;
    snprintf(w->id, sizeof w->id, "%s:%d", p->host, (int)getpid());
    w->nq = cfg->nqueues;
    w->home = (p->number - 1) % (w->nq > 0 ? w->nq : 1);
    w->batch = 1;
    w->policy = (jobq_outcome_policy){cfg->retry_backoff_base, cfg->retry_backoff_max, cfg->poison_limit};
    w->keys = calloc((size_t)w->nq, sizeof *w->keys);
    w->jobs = calloc((size_t)cfg->batch_size, sizeof *w->jobs);
    w->outs = calloc((size_t)cfg->batch_size, sizeof *w->outs);
    jobq_err err;
    w->lease_needed = 2 * jobq_config_io_timeout(cfg, IO_TIMEOUT_SECONDS);
    w->redis = jobq_redis_open_config(cfg, jobq_config_io_timeout(cfg, IO_TIMEOUT_SECONDS), &err);
    if (!w->keys || !w->jobs || !w->outs || !w->redis) {
        jobq_log_err("cannot start: %s", w->redis ? "out of memory" : err.msg);
        return -1;
    }
    for (int i = 0; i < w->nq; i++) {
        jobq_qkeys_init(&w->keys[i], w->redis, cfg->prefix, cfg->queues[i], w->id);
        jobq_config_queue_settings(cfg, cfg->queues[i], &w->settings[i]);
        w->limits[i] = (jobq_flow_limits){w->settings[i].concurrency, w->settings[i].rate_limit.n,
                                          w->settings[i].rate_limit.period};
        w->defaults[i] = (jobq_job_defaults){w->settings[i].timeout, w->settings[i].max_attempts,
                                             w->settings[i].result_ttl, cfg->max_payload};
    }
    w->host = (jobq_job_host){.ctx = w, .progress = progress_event, .enqueue = enqueue_followup,
                              .child_group = child_group};
    stop_idle_gracefully = jobq_plugin_worker_start();
    w->hooks_started = true;
    return 0;
}

static void worker_fini(worker *w) {
    if (w->has_prefetched) jobq_taken_fini(&w->prefetched); /* in flight: the supervisor puts it back */
    if (w->redis && !w->block_sent) send_histo(w); /* else the connection waits for the take's replies */
    for (int i = 0; i < w->nq; i++) jobq_histo_acc_fini(&w->qs[i].histo);
    if (w->hooks_started) jobq_plugin_worker_stop();
    free(w->keys);
    free(w->jobs);
    free(w->outs);
    jobq_wordcount_cleanup();
    jobq_redis_free(w->redis);
}

int jobq_worker_main(const jobq_worker_params *p) {
    signal_slot = p->slot;
    setup_signals();
    /* Die with the supervisor; it may already be gone by now. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    jobq_log_set_role("worker[%d]", p->number);
    worker w;
    int status = 0;
    if (worker_init(&w, p) != 0) {
        status = 2;
        goto out;
    }
    if (orphaned(&w)) goto out;
    jobq_log_debug("started as %s", w.id);
    while (!stop_requested && !orphaned_lately(&w)) {
        jobq_slot_set_state(p->slot, JOBQ_SLOT_IDLE);
        if (reconnect_requested) {
            reconnect_requested = 0;
            jobq_err moved = {JOBQ_E_IO, "the master changed"};
            lost_connection(&w, &moved);
        }
        if (ensure_connected(&w) != 0) {
            if (w.must_exit) status = 1;
            break;
        }
        jobq_taken taken;
        /* The supervisor kills a worker that stays in a take far longer than
         * a take can last (stopped, wedged): what it took goes back. */
        atomic_store(&p->slot->take_deadline_ms, (long long)((jobq_now() + 1.0 + 5.0 * (w.nq + 1)) * 1000));
        int qi = take_batch(&w, &taken);
        atomic_store(&p->slot->take_deadline_ms, 0);
        jobq_slot_set_state(p->slot, JOBQ_SLOT_BUSY);
        if (qi < 0) continue;
        if (stop_requested) { /* told to stop during the take: the supervisor puts it back */
            jobq_taken_fini(&taken);
            break;
        }
        if (taken.n > 0) run_batch(&w, qi, &taken);
        else send_histo(&w);
        jobq_taken_fini(&taken);
        if (w.must_exit) {
            status = 1;
            break;
        }
        if (should_recycle(&w)) break;
    }
out:
    worker_fini(&w);
    return status;
}

/* api->job_progress: publish a "progress" event and store it as the job's
 * last progress (<prefix>:progress:<id>, until a minute past the job's
 * deadline), at most 10 per second; the first and the final one (1.0)
 * always go out. A message is kept to its first 200 bytes. */
static void progress_event(void *ctx, jobq_job *job, double fraction, const char *message) {
    worker *w = ctx;
    double now = jobq_now();
    bool first = strcmp(job->id, w->progress_id) != 0;
    if (!first && fraction < 1.0 && now - w->progress_at < 0.1) return;
    w->progress_at = now;
    snprintf(w->progress_id, sizeof w->progress_id, "%s", job->id);
    char cut[201];
    if (message && strlen(message) >= sizeof cut) {
        size_t n = sizeof cut - 1;
        while (n > 0 && ((unsigned char)message[n] & 0xc0) == 0x80) n--; /* not inside a UTF-8 sequence */
        memcpy(cut, message, n);
        cut[n] = '\0';
        message = cut;
    }
    char *ev = jobq_doc_progress(job, w->id, now, fraction, message);
    if (ev) publish_event(w, w->running_qi, ev, true); /* sent now: the handler is still running */
    jobq_err err;
    if (ev && jobq_redis_connected(w->redis) && queue_up(w, w->running_qi) &&
        jobq_flow_store_progress(w->redis, w->cfg->prefix, job->id, ev, job->deadline - now + 60, &err) != 0)
        queue_failed(w, w->running_qi, &err);
    free(ev);
}

/* The running job started process group pgid (0: it ended): published in
 * the slot, so that whoever kills this worker for the job kills it too. */
static void child_group(void *ctx, int pgid) {
    worker *w = ctx;
    atomic_store(&w->p->slot->child_pgid, pgid);
}

/* api->job_enqueue: the follow-up goes out on this worker's connection, to
 * any queue (on a cluster, the shard that holds it). */
static int enqueue_followup(void *ctx, jobq_job *job, const char *queue, const char *job_json, int flags,
                            char *id, size_t id_size, jobq_err *err) {
    worker *w = ctx;
    const char *q = queue ? queue : job->queue;
    if (!q || !jobq_key_valid_queue(q)) {
        jobq_err_set(err, JOBQ_E_INVALID, "'%.80s' is not a queue name (1 to 64 of A-Z a-z 0-9 _ . : -)",
                     q ? q : "(none)");
        return -1;
    }
    if (!jobq_redis_connected(w->redis)) { /* not waited for here: the handler decides */
        jobq_err_set(err, JOBQ_E_IO, "Redis is unreachable");
        return -1;
    }
    bool duplicate = false;
    if (jobq_jobs_enqueue(w->redis, w->cfg->prefix, q, job_json, 0, (flags & JOBQ_ENQUEUE_UNIQUE) != 0, id, id_size,
                          &duplicate, err) != 0) {
        if (err->code == JOBQ_E_REPLICAS) { /* queued on the primary, not yet on enough replicas */
            jobq_log_warn("follow-up job %s: %s", id, err->msg);
            return 0;
        }
        if (err->code == JOBQ_E_IO || err->code == JOBQ_E_READONLY) lost_connection(w, err);
        return -1;
    }
    if (duplicate) jobq_log_debug("follow-up job %s is already queued (unique)", id);
    return 0;
}
