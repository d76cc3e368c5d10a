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
#include "daemon/handlers/handlers.h"
#include "daemon/job_run.h"
#include "daemon/plugin.h"
#include "protocol/documents.h"
#include "protocol/queue.h"

/* A job whose handler runs this long counts as slow: batches shrink to one
 * job, and the unstarted rest of a batch goes back to its queue. */
#define SLOW_JOB_SECONDS 0.002

/* Set by SIGTERM/SIGINT outside a take: finish the current job, then exit. */
static volatile sig_atomic_t stop_requested;
/* The worker's slot, for the signal handler. */
static jobq_slot *signal_slot;

static void on_stop_signal(int sig) {
    jobq_slot *s = signal_slot;
    int state = s ? atomic_load(&s->state) : JOBQ_SLOT_IDLE;
    if (state == JOBQ_SLOT_RUNNING && s && atomic_load(&s->timed_out) != 0 &&
        (unsigned)atomic_load(&s->timed_out) == atomic_load(&s->seq)) {
        /* The supervisor gave up on this job: die of the signal. */
        signal(sig, SIG_DFL);
        raise(sig);
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
    jobq_outcome_policy policy;
    int batch;               /* current adaptive batch size */
    bool redis_down;         /* for logging once per state change */
    bool fenced;             /* the daemon's lease lapsed: for logging once */
    int refusals;            /* consecutive refused commits */
    bool reclaim_own;        /* a take may have moved jobs we never saw */
    bool must_exit;          /* an outcome could not be built: exit, the supervisor requeues */
    int connect_failures;
    unsigned long long jobs_done;
    struct jobq_job *jobs;   /* owned: batch_size of them */
    jobq_outcome *outs;      /* owned: batch_size of them */
} worker;

static worker *progress_worker; /* for the plugin API's progress hook */

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {
    }
}

/* The supervisor is gone (kill -9): a worker never outlives it, since a new
 * daemon would reclaim and rerun whatever it runs. */
static bool orphaned(const worker *w) { return getppid() != w->p->supervisor_pid; }

/* ---- connection ---- */

/* Connect (again) with capped exponential backoff until connected or told to
 * stop, registering the in-flight lists. Logs once when Redis goes away and
 * once when it is back. */
static int ensure_connected(worker *w) {
    while (!jobq_redis_connected(w->redis)) {
        if (stop_requested || orphaned(w)) return -1;
        jobq_err err;
        int rc = jobq_redis_connect(w->redis, &err);
        for (int i = 0; rc == 0 && i < w->nq; i++) rc = jobq_queue_register(w->redis, &w->keys[i], w->p->daemon_id, &err);
        if (rc == 0) {
            if (w->redis_down) jobq_log_info("connected to Redis again at %s", jobq_redis_url_redacted(w->redis));
            w->redis_down = false;
            w->connect_failures = 0;
            return 0;
        }
        if (!w->redis_down) jobq_log_warn("Redis unavailable (%s); retrying with backoff", err.msg);
        jobq_redis_disconnect(w->redis);
        w->redis_down = true;
        w->connect_failures++;
        sleep_seconds(jobq_backoff_delay(w->connect_failures, 0.05, 2.0));
    }
    return 0;
}

static void lost_connection(worker *w, const jobq_err *err) {
    if (!w->redis_down) jobq_log_warn("lost Redis connection: %s; reconnecting", err->msg);
    w->redis_down = true;
    w->reclaim_own = true;
    jobq_redis_disconnect(w->redis);
}

/* A take or commit that failed: reconnect after a broken connection, wait
 * out a lapsed lease, back off after a refusal. */
static void take_failed(worker *w, const jobq_err *err) {
    if (err->code == JOBQ_E_IO) {
        lost_connection(w, err);
    } else if (err->code == JOBQ_E_FENCED) {
        if (!w->fenced)
            jobq_log_warn("%s (the supervisor stalled, or another daemon declared this one dead); "
                          "taking no jobs until it renews", err->msg);
        w->fenced = true;
        sleep_seconds(0.2);
    } else {
        /* Out of memory after the take script ran: what it moved into our
         * in-flight lists never reached us, so it goes back before the next
         * take (nobody else would put it back while we live). */
        if (err->code == JOBQ_E_NOMEM) w->reclaim_own = true;
        /* e.g. a queue key of the wrong type: said once a minute, not per try */
        static char last[sizeof err->msg];
        static double last_at;
        double now = jobq_now();
        if (strcmp(last, err->msg) != 0 || now - last_at >= 60) {
            jobq_log_err("taking jobs: %s (retrying every second)", err->msg);
            snprintf(last, sizeof last, "%s", err->msg);
            last_at = now;
        }
        sleep_seconds(1);
    }
}

static void publish_event(void *udata, const char *event_json, bool send_now) {
    worker *w = udata;
    if (!jobq_redis_connected(w->redis)) return;
    jobq_err err;
    if (jobq_redis_publish_nowait(w->redis, w->keys[0].events, event_json, send_now, &err) != 0)
        lost_connection(w, &err);
}

/* ---- take, run, commit ---- */

/* Take the next batch from the first queue (highest priority) that has
 * jobs; with none waiting, block on the first queue. The index of the queue
 * taken from with t filled (t->n may be 0), or -1 after a failure. */
static int take_batch(worker *w, jobq_taken *t) {
    jobq_err err;
    for (int i = 0; i < w->nq; i++) {
        if (jobq_queue_take(w->redis, &w->keys[i], w->p->daemon_id, w->batch, w->cfg->workers, t, &err) != 0) {
            take_failed(w, &err);
            return -1;
        }
        if (t->n > 0) return i;
        jobq_taken_fini(t);
    }
    /* A single queue can block on BLMOVE and wake at once; with several we
     * block on the first and look at the others at least every 100 ms. */
    double block = w->nq == 1 ? 1.0 : 0.1;
    if (jobq_queue_take_blocking(w->redis, &w->keys[0], w->p->daemon_id, block, t, &err) != 0) {
        take_failed(w, &err);
        return -1;
    }
    w->fenced = false;
    return 0;
}

/* Commit until it lands, or the worker must stop (its outcomes then stay
 * in flight for the supervisor). A refusal (maxmemory, a missing
 * permission, a key of the wrong type) is retried with backoff, and no job
 * is taken meanwhile. */
static bool commit_batch(worker *w, int qi, size_t n) {
    while (n > 0) {
        if (ensure_connected(w) != 0) return false;
        jobq_err err;
        size_t skipped = 0;
        if (jobq_queue_commit(w->redis, &w->keys[qi], w->outs, n, &skipped, &err) == 0) {
            if (w->refusals) jobq_log_info("outcomes recorded again after %d refused commit(s)", w->refusals);
            w->refusals = 0;
            if (skipped)
                jobq_log_warn("%zu job(s) of this batch were no longer in flight (reclaimed by another "
                              "daemon, or already recorded): their outcomes were not written again", skipped);
            return true;
        }
        if (err.code == JOBQ_E_IO) {
            lost_connection(w, &err);
            continue;
        }
        if (w->refusals++ == 0)
            jobq_log_err("Redis refused to record %zu outcome(s): %s; the jobs stay in flight, no job is "
                         "taken, and the commit is retried", n, err.msg);
        if (stop_requested || orphaned(w)) return false;
        sleep_seconds(jobq_backoff_delay(w->refusals, 0.1, 5.0));
    }
    return true;
}

/* With every outcome of ours committed, whatever our in-flight lists still
 * hold was never started: move it back to the head of its queue, in order.
 * Clears reclaim_own once done; false while Redis is unreachable. */
static bool put_back_unstarted(worker *w, bool after_lost_connection) {
    for (int i = 0; i < w->nq; i++) {
        jobq_err err;
        long n = jobq_queue_requeue(w->redis, &w->keys[i], false, &err);
        if (n < 0 && err.code == JOBQ_E_IO) {
            lost_connection(w, &err);
            return false;
        }
        if (n < 0) jobq_log_err("putting back unstarted jobs: %s", err.msg);
        else if (n > 0 && after_lost_connection)
            jobq_log_info("put back %ld job(s) taken while the connection was lost", n);
        else if (n > 0)
            jobq_log_debug("put back %ld unstarted job(s) of a batch that turned slow", n);
    }
    w->reclaim_own = false;
    return true;
}

static void release_batch(worker *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (w->jobs[i].failed) atomic_fetch_add(&w->p->slot->jobs_failed, 1);
        jobq_outcome_fini(&w->outs[i]);
        jobq_job_fini(&w->jobs[i]);
    }
}

/* Run the batch t of queue qi and commit it. Adapts the batch size. */
static void run_batch(worker *w, int qi, jobq_taken *t) {
    jobq_run_ctx ctx = {w->p->slot, w->id, &w->policy, qi, w->cfg->queues[qi], &w->defaults[qi],
                        &w->settings[qi], publish_event, w};
    size_t done = 0;
    double busy = 0;
    bool give_back = false;
    for (size_t i = 0; i < t->n; i++) {
        double took = jobq_run_job(&ctx, t->payloads[i], t->lens[i], t->n == 1, &w->jobs[i], &w->outs[i]);
        if (took < 0) {
            /* No outcome could be built: commit what is done, then exit;
             * the supervisor puts the rest back. */
            jobq_job_fini(&w->jobs[i]);
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
    if (commit_batch(w, qi, done) && give_back) put_back_unstarted(w, false);
    release_batch(w, done);
    w->jobs_done += done;
    atomic_store(&w->p->slot->jobs_done, w->jobs_done);
    /* Grow the batch while jobs are short and more are waiting (a deep queue
     * of quick jobs then costs one round trip per batch); take one job at a
     * time when they are slow or the queue runs dry, so that jobs are shared
     * among the workers instead of queueing behind one. */
    if (done == (size_t)w->batch && busy / (double)done < SLOW_JOB_SECONDS && t->still_waiting > 0)
        w->batch = w->batch * 2 > w->cfg->batch_size ? w->cfg->batch_size : w->batch * 2;
    else
        w->batch = 1;
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

static void progress_event(jobq_job *job, double fraction, const char *message);

static int worker_init(worker *w, const jobq_worker_params *p) {
    memset(w, 0, sizeof *w);
    const jobq_config *cfg = p->cfg;
    w->p = p;
    w->cfg = cfg;
    snprintf(w->id, sizeof w->id, "%s:%d", p->host, (int)getpid());
    w->nq = cfg->nqueues;
    w->batch = 1;
    w->policy = (jobq_outcome_policy){cfg->retry_backoff_base, cfg->retry_backoff_max, cfg->poison_limit};
    w->keys = calloc((size_t)w->nq, sizeof *w->keys);
    w->jobs = calloc((size_t)cfg->batch_size, sizeof *w->jobs);
    w->outs = calloc((size_t)cfg->batch_size, sizeof *w->outs);
    jobq_err err;
    w->redis = jobq_redis_new(cfg->redis_url, 5.0, &err);
    if (!w->keys || !w->jobs || !w->outs || !w->redis) {
        jobq_log_err("cannot start: %s", w->redis ? "out of memory" : err.msg);
        return -1;
    }
    jobq_redis_set_password(w->redis, cfg->redis_password);
    for (int i = 0; i < w->nq; i++) {
        jobq_qkeys_init(&w->keys[i], cfg->prefix, cfg->queues[i], w->id);
        jobq_config_queue_settings(cfg, cfg->queues[i], &w->settings[i]);
        w->defaults[i] = (jobq_job_defaults){w->settings[i].timeout, w->settings[i].max_attempts,
                                             w->settings[i].result_ttl, cfg->max_payload};
    }
    progress_worker = w;
    jobq_plugin_set_progress_hook(progress_event);
    return 0;
}

static void worker_fini(worker *w) {
    free(w->keys);
    free(w->jobs);
    free(w->outs);
    jobq_wordcount_cleanup();
    jobq_redis_free(w->redis);
    progress_worker = NULL;
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
    while (!stop_requested && !orphaned(&w)) {
        jobq_slot_set_state(p->slot, JOBQ_SLOT_IDLE);
        if (ensure_connected(&w) != 0) break;
        if (w.reclaim_own && !put_back_unstarted(&w, true)) continue;
        jobq_taken taken;
        /* The supervisor kills a worker that stays in a take far longer than
         * a take can last (stopped, wedged): what it took goes back. */
        atomic_store(&p->slot->take_deadline_ms, (long long)((jobq_now() + 1.0 + 5.0 * (w.nq + 1)) * 1000));
        int qi = take_batch(&w, &taken);
        atomic_store(&p->slot->take_deadline_ms, 0);
        jobq_slot_set_state(p->slot, JOBQ_SLOT_BUSY);
        if (qi < 0) continue;
        if (taken.n > 0) run_batch(&w, qi, &taken);
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

/* api->job_progress: publish a "progress" event, at most 10 per second;
 * the first and the final one (1.0) always go out. */
static void progress_event(jobq_job *job, double fraction, const char *message) {
    static double last;
    static char last_id[JOBQ_JOB_ID_MAX + 1];
    worker *w = progress_worker;
    double now = jobq_now();
    bool first = strcmp(job->id, last_id) != 0;
    if (!w || (!first && fraction < 1.0 && now - last < 0.1)) return;
    last = now;
    snprintf(last_id, sizeof last_id, "%s", job->id);
    char *ev = jobq_doc_progress(job, w->id, now, fraction, message);
    if (ev) publish_event(w, ev, true); /* sent now: the handler is still running */
    free(ev);
}
