/*
 * Worker process: take jobs in batches into per-queue in-flight lists, run
 * their handlers, and commit every outcome of a batch in one transaction.
 * A job leaves its in-flight list only in the transaction that records its
 * outcome, so a worker that dies at any point loses nothing: the supervisor
 * puts what is left back on the queue.
 */
#include "worker.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "handlers/handlers.h"
#include "job.h"
#include "log.h"
#include "plugin.h"
#include "queue.h"
#include "registry.h"

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

void jobq_worker_inflight_key(char *buf, size_t size, const char *prefix, const char *queue,
                              const char *worker_id) {
    snprintf(buf, size, "%s:inflight:%s:%s", prefix, queue, worker_id);
}

typedef struct worker {
    const jobq_worker_params *p;
    const jobq_config *cfg;
    jobq_queue *q;
    char id[128];                           /* host:pid */
    int nq;
    char inflight[JOBQ_MAX_QUEUES][400];
    char queue_keys[JOBQ_MAX_QUEUES][300];
    const char *inflight_ptrs[JOBQ_MAX_QUEUES];
    const char *queue_ptrs[JOBQ_MAX_QUEUES];
    jobq_job_defaults defaults[JOBQ_MAX_QUEUES]; /* per queue */
    jobq_queue_settings settings[JOBQ_MAX_QUEUES];  /* per queue: rlimits */
    int batch;          /* current adaptive batch size */
    bool redis_down;    /* for logging once per state change */
    bool reclaim_own;   /* a take may have moved jobs we never saw */
    bool must_exit;     /* an outcome could not be built: exit, the supervisor requeues */
    int connect_failures;
    unsigned long long jobs_done;
    unsigned rng;
} worker;

/* Everything one job of a batch needs until its outcome is committed. */
typedef struct job_work {
    struct jobq_job job;
    char *result_json, *event_json, *dead_json, *retry_payload;
} job_work;

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {
    }
}

/* Connect (again) with capped exponential backoff until connected or told to
 * stop. Logs once when Redis goes away and once when it is back. */
static int ensure_connected(worker *w) {
    while (!jobq_queue_connected(w->q)) {
        if (stop_requested) return -1;
        jobq_err err;
        if (jobq_queue_connect(w->q, &err) == 0) {
            if (jobq_queue_register_inflight(w->q, w->p->daemon_id, w->inflight_ptrs,
                                             (const char *const *)w->cfg->queues, w->nq, &err) != 0) {
                jobq_log_warn("cannot register in-flight lists: %s", err.msg);
                if (!jobq_queue_connected(w->q)) continue;
            }
            if (w->redis_down) jobq_log_info("connected to Redis again at %s", jobq_queue_url_redacted(w->q));
            w->redis_down = false;
            w->connect_failures = 0;
            return 0;
        }
        if (!w->redis_down) jobq_log_warn("Redis unavailable (%s); retrying with backoff", err.msg);
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
    jobq_queue_disconnect(w->q);
}

static double random01(worker *w) {
    w->rng = w->rng * 1103515245u + 12345u;
    return (double)((w->rng >> 8) & 0xffffff) / 16777216.0;
}

/* Fill out with what to write for jw's finished (or rejected) job. */
static void build_outcome(worker *w, job_work *jw, int queue_index, bool rejected,
                          const char *reject_reason, jobq_outcome *out) {
    struct jobq_job *job = &jw->job;
    double now = jobq_now();
    memset(out, 0, sizeof *out);
    out->inflight_key = w->inflight[queue_index];
    out->payload = job->raw;
    out->payload_len = job->raw_len;
    out->result_ttl = job->result_ttl;
    if (rejected) {
        /* Never retried: the payload itself is wrong. */
        jobq_job_set_failed(job, "%s", reject_reason);
        jw->dead_json = jobq_job_dead_json(job, reject_reason, now);
        jw->event_json = jobq_job_event_json(job, "dead", w->id, now);
        if (job->id && !job->id_assigned) {
            job->finished_at = now;
            jw->result_json = jobq_job_result_json(job, w->id);
            out->id = job->id;
        }
        jobq_log_warn("dead-lettered a payload from queue %s: %s", job->queue, reject_reason);
        out->finished = out->failed = true;
    } else if (!job->failed) {
        jw->result_json = jobq_job_result_json(job, w->id);
        jw->event_json = jobq_job_event_json(job, "ok", w->id, now);
        out->id = job->id;
        out->finished = true;
    } else if (job->attempt < job->max_attempts &&
               (jw->retry_payload = jobq_job_retry_payload(job, job->error, false))) {
        /* (A retry payload that cannot be built falls through to the final
         * failure below rather than leaving in-flight with nowhere to go.) */
        double delay = jobq_backoff_retry(job->attempt, w->cfg->retry_backoff_base,
                                          w->cfg->retry_backoff_max, random01(w));
        jw->event_json = jobq_job_event_json(job, "retrying", w->id, now);
        out->retry_at = now + delay;
        jobq_log_info("attempt %d of %d failed: %s; retrying in %.2fs", job->attempt,
                      job->max_attempts, job->error, delay);
    } else {
        jw->result_json = jobq_job_result_json(job, w->id);
        jw->dead_json = jobq_job_dead_json(job, job->error, now);
        jw->event_json = jobq_job_event_json(job, "failed", w->id, now);
        out->id = job->id;
        out->finished = out->failed = true;
        jobq_log_warn("failed after %d attempt(s): %s", job->attempt, job->error);
    }
    /* Out of memory for a document the outcome needs: write nothing and
     * leave the job in flight; this worker then exits and its supervisor
     * puts the job back at the head of its queue. */
    bool dead_expected = rejected || (job->failed && !jw->retry_payload);
    if ((out->id && !jw->result_json) || (dead_expected && !jw->dead_json)) {
        jobq_log_err("out of memory recording the outcome of job %s; leaving it in flight for "
                     "redelivery and exiting", job->id ? job->id : "(no id)");
        memset(out, 0, sizeof *out);
        w->must_exit = true;
        return;
    }
    out->result_json = jw->result_json;
    out->event_json = jw->event_json;
    out->dead_json = jw->dead_json;
    out->retry_payload = jw->retry_payload;
}

/* The soft limits in force before a job's queue limits were applied. */
typedef struct limits {
    struct rlimit as, cpu, nofile;
} limits;

static void lower_soft(int resource, rlim_t value, struct rlimit *saved) {
    getrlimit(resource, saved);
    struct rlimit lim = *saved;
    if (saved->rlim_max != RLIM_INFINITY && value > saved->rlim_max) value = saved->rlim_max;
    lim.rlim_cur = value;
    if (setrlimit(resource, &lim) != 0)
        jobq_log_warn("cannot set resource limit %d: %s", resource, strerror(errno));
}

/* Apply the queue's kernel limits for the coming job. CPU time counts over
 * the worker's whole life, so its limit is what was used so far plus the
 * job's allowance; going over kills the worker with SIGXCPU, which the
 * supervisor records against the job. */
static void apply_limits(const jobq_queue_settings *qs, limits *saved) {
    if (qs->rlimit_as > 0) lower_soft(RLIMIT_AS, (rlim_t)qs->rlimit_as, &saved->as);
    if (qs->rlimit_nofile > 0) lower_soft(RLIMIT_NOFILE, (rlim_t)qs->rlimit_nofile, &saved->nofile);
    if (qs->rlimit_cpu > 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        rlim_t used = (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1;
        lower_soft(RLIMIT_CPU, used + (rlim_t)qs->rlimit_cpu, &saved->cpu);
    }
}

static void restore_limits(const jobq_queue_settings *qs, const limits *saved) {
    if (qs->rlimit_as > 0) setrlimit(RLIMIT_AS, &saved->as);
    if (qs->rlimit_nofile > 0) setrlimit(RLIMIT_NOFILE, &saved->nofile);
    if (qs->rlimit_cpu > 0) setrlimit(RLIMIT_CPU, &saved->cpu);
}

/* Publish the job's "started" event. A job taken alone (idle queue, slow
 * jobs) announces itself at once; within a batch of quick jobs the events
 * leave with the batch's outcomes, so they cost no extra round trip. */
static void announce_start(worker *w, const struct jobq_job *job, bool alone) {
    if (!w->q || !jobq_queue_connected(w->q)) return;
    char *ev = jobq_job_event_json(job, "started", w->id, job->started_at);
    if (!ev) return;
    jobq_err err;
    if (jobq_queue_publish_nowait(w->q, ev, alone, &err) != 0) lost_connection(w, &err);
    free(ev);
}

/* Parse, dispatch and run one job (alone: the only job of its take).
 * Returns the seconds its handler took. */
static double run_one(worker *w, const jobq_taken_item *item, bool alone, job_work *jw,
                      jobq_outcome *out) {
    jobq_err err;
    const char *queue = w->cfg->queues[item->queue_index];
    double now = jobq_now();
    if (jobq_job_parse(&jw->job, item->payload, item->len, queue, &w->defaults[item->queue_index], now,
                       &err) != 0) {
        build_outcome(w, jw, item->queue_index, true, err.msg, out);
        return 0;
    }
    struct jobq_job *job = &jw->job;
    const jobq_handler *h = jobq_registry_find(job->handler);
    if (!h) {
        char why[200];
        snprintf(why, sizeof why, "unknown handler '%.100s'", job->handler);
        build_outcome(w, jw, item->queue_index, true, why, out);
        return 0;
    }
    jobq_log_set_job(job->id);
    job->started_at = now;
    job->deadline = now + job->timeout;
    jobq_slot_job sj;
    memset(&sj, 0, sizeof sj);
    snprintf(sj.id, sizeof sj.id, "%s", job->id);
    sj.queue_index = item->queue_index;
    sj.started_at = now;
    sj.deadline = job->deadline;
    sj.timeout = job->timeout;
    sj.payload_hash = jobq_slots_hash(item->payload, item->len);
    sj.payload_len = item->len;
    jobq_slot_begin_job(w->p->slot, &sj);
    announce_start(w, job, alone);

    limits saved;
    apply_limits(&w->settings[item->queue_index], &saved);
    int rc = h->fn(job, h->udata);
    restore_limits(&w->settings[item->queue_index], &saved);

    jobq_slot_set_state(w->p->slot, JOBQ_SLOT_BUSY);
    job->finished_at = jobq_now();
    if (rc != JOBQ_OK && !job->failed) jobq_job_set_failed(job, "handler '%s' failed", job->handler);
    jobq_log_debug("%s in %.3f ms", job->failed ? "failed" : "done",
                   (job->finished_at - job->started_at) * 1e3);
    build_outcome(w, jw, item->queue_index, false, NULL, out);
    jobq_log_set_job(NULL);
    return job->finished_at - job->started_at;
}

static void release_work(job_work *jw, size_t n) {
    for (size_t i = 0; i < n; i++) {
        jobq_job_fini(&jw[i].job);
        free(jw[i].result_json);
        free(jw[i].event_json);
        free(jw[i].dead_json);
        free(jw[i].retry_payload);
        memset(&jw[i], 0, sizeof jw[i]);
    }
}

/* Commit until it lands or we must stop. True when every outcome landed. */
static bool commit_outcomes(worker *w, const jobq_outcome *outs, size_t n) {
    while (n > 0) {
        if (ensure_connected(w) != 0) return false;
        jobq_err err;
        if (jobq_queue_commit(w->q, outs, n, &err) == 0) return true;
        if (err.code != JOBQ_E_IO) {
            /* The server refused part of it (e.g. a key of the wrong type):
             * what could be written is written; retrying cannot help. */
            jobq_log_err("writing outcomes: %s", err.msg);
            return false;
        }
        lost_connection(w, &err);
    }
    return true;
}

/* With every outcome of ours committed, whatever our in-flight lists still
 * hold was never started: move it back to the head of its queue, in order.
 * Clears reclaim_own once done; false while Redis is unreachable. */
static bool put_back_unstarted(worker *w, bool after_lost_connection) {
    for (int i = 0; i < w->nq; i++) {
        jobq_err err;
        long n = jobq_queue_requeue(w->q, w->inflight_ptrs[i], w->queue_ptrs[i], &err);
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

static long current_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long size = 0, resident = 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static void progress_event(jobq_job *job, double fraction, const char *message);
static worker *progress_worker;

int jobq_worker_main(const jobq_worker_params *p) {
    signal_slot = p->slot;
    setup_signals();
    jobq_log_set_role("worker[%d]", p->number);
    const jobq_config *cfg = p->cfg;
    worker w;
    memset(&w, 0, sizeof w);
    w.p = p;
    w.cfg = cfg;
    snprintf(w.id, sizeof w.id, "%s:%d", p->host, (int)getpid());
    w.nq = cfg->nqueues;
    for (int i = 0; i < w.nq; i++) {
        jobq_worker_inflight_key(w.inflight[i], sizeof w.inflight[i], cfg->prefix, cfg->queues[i], w.id);
        snprintf(w.queue_keys[i], sizeof w.queue_keys[i], "%s:queue:%s", cfg->prefix, cfg->queues[i]);
        w.inflight_ptrs[i] = w.inflight[i];
        w.queue_ptrs[i] = w.queue_keys[i];
    }
    for (int i = 0; i < w.nq; i++) {
        jobq_config_queue_settings(cfg, cfg->queues[i], &w.settings[i]);
        w.defaults[i] = (jobq_job_defaults){w.settings[i].timeout, w.settings[i].max_attempts,
                                            w.settings[i].result_ttl, cfg->max_payload};
    }
    w.batch = 1;
    w.rng = (unsigned)getpid() * 2654435761u;
    progress_worker = &w;
    jobq_plugin_set_progress_hook(progress_event);

    jobq_err err;
    w.q = jobq_queue_new(cfg->redis_url, cfg->prefix, 5.0, &err);
    if (!w.q) {
        jobq_log_err("%s", err.msg);
        return 2;
    }
    jobq_queue_set_password(w.q, cfg->redis_password);
    jobq_log_debug("started as %s", w.id);
    /* A single queue can block on BLMOVE and wake at once; with several we
     * block on the first and look at the others at least every 100 ms. */
    double block = w.nq == 1 ? 1.0 : 0.1;
    size_t cap = (size_t)cfg->batch_size;
    job_work *work = calloc(cap, sizeof *work);
    jobq_outcome *outs = calloc(cap, sizeof *outs);
    int status = 0;
    if (!work || !outs) {
        jobq_log_err("out of memory");
        status = 2;
        goto out;
    }

    while (!stop_requested) {
        jobq_slot_set_state(p->slot, JOBQ_SLOT_IDLE);
        if (stop_requested || ensure_connected(&w) != 0) break;
        if (w.reclaim_own && !put_back_unstarted(&w, true)) continue;
        jobq_taken taken;
        int rc = jobq_queue_take(w.q, w.inflight_ptrs, w.queue_ptrs, w.nq, w.batch, cfg->workers, block,
                                 &taken, &err);
        jobq_slot_set_state(p->slot, JOBQ_SLOT_BUSY);
        if (rc != 0) {
            if (err.code == JOBQ_E_IO) {
                lost_connection(&w, &err);
            } else {
                jobq_log_err("taking jobs: %s", err.msg);
                sleep_seconds(1); /* e.g. a queue key of the wrong type */
            }
            continue;
        }
        size_t done = 0;
        double busy = 0;
        bool give_back = false;
        for (size_t i = 0; i < taken.n; i++) {
            double took = run_one(&w, &taken.items[i], taken.n == 1, &work[i], &outs[i]);
            busy += took;
            done++;
            if (stop_requested) break; /* the rest stay in-flight for the supervisor */
            if (took >= SLOW_JOB_SECONDS && i + 1 < taken.n) {
                /* Jobs turned slow: the rest of the batch goes back to the
                 * head of its queue for idle workers instead of waiting here. */
                give_back = true;
                break;
            }
        }
        if (commit_outcomes(&w, outs, done) && give_back) put_back_unstarted(&w, false);
        for (size_t i = 0; i < done; i++)
            if (work[i].job.failed) atomic_fetch_add(&p->slot->jobs_failed, 1);
        release_work(work, done);
        long long still_waiting = taken.still_waiting;
        jobq_taken_fini(&taken);
        w.jobs_done += done;
        atomic_store(&p->slot->jobs_done, w.jobs_done);

        /* Grow the batch while jobs are short and more are waiting (a deep
         * queue of quick jobs then costs one round trip per batch); take one
         * job at a time when they are slow or the queue runs dry, so that
         * jobs are shared among the workers instead of queueing behind one. */
        if (done == (size_t)w.batch && busy / (double)done < SLOW_JOB_SECONDS && still_waiting > 0) {
            w.batch = w.batch * 2 > cfg->batch_size ? cfg->batch_size : w.batch * 2;
        } else {
            w.batch = 1;
        }
        if (w.must_exit) {
            status = 1;
            break;
        }
        if (cfg->max_jobs_per_worker > 0 && w.jobs_done >= (unsigned long long)cfg->max_jobs_per_worker) {
            jobq_log_info("recycling after %llu jobs (max_jobs_per_worker)", w.jobs_done);
            break;
        }
        if (cfg->max_worker_rss > 0) {
            long rss = current_rss_bytes();
            atomic_store(&p->slot->rss_kb, rss / 1024);
            if (rss > cfg->max_worker_rss) {
                jobq_log_info("recycling: RSS %ld KiB is over max_worker_rss %ld KiB", rss / 1024,
                              cfg->max_worker_rss / 1024);
                break;
            }
        }
    }
out:
    free(work);
    free(outs);
    jobq_wordcount_cleanup();
    jobq_queue_free(w.q);
    progress_worker = NULL;
    return status;
}

/* api->job_progress: publish a "progress" event, at most 10 per second. */
static void progress_event(jobq_job *job, double fraction, const char *message) {
    static double last;
    worker *w = progress_worker;
    double now = jobq_now();
    if (!w || !jobq_queue_connected(w->q) || now - last < 0.1) return;
    last = now;
    char *ev = jobq_job_progress_json(job, w->id, now, fraction, message);
    if (!ev) return;
    /* Sent now, without waiting for Redis: the handler is still running. */
    jobq_err err;
    if (jobq_queue_publish_nowait(w->q, ev, true, &err) != 0) lost_connection(w, &err);
    free(ev);
}
