/*
 * Supervisor process. Owns a libev loop (ev_loop_new: the default loop would
 * reap children itself, and we reap with wait4 to keep each worker's rusage),
 * the worker records, the shared worker slots and its own Redis connection.
 * Invariant: a worker's in-flight lists are put back (or their running job
 * recorded as failed) before its record is dropped, retrying while Redis is
 * away.
 */
#include "supervisor.h"

#include <errno.h>
#include <ev.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backoff.h"
#include "functions.h"
#include "handlers/handlers.h"
#include "job.h"
#include "log.h"
#include "notify.h"
#include "plugin.h"
#include "queue.h"
#include "slots.h"
#include "worker.h"

#define TICK_SECONDS 0.02

typedef struct wrec {
    pid_t pid;                    /* 0 once reaped */
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
    struct wrec *next;
} wrec;

#define RATE_SAMPLES 64   /* totals kept for the rates, at most one a second */
#define RATE_WINDOW 60.0  /* seconds */

struct jobq_supervisor {
    struct ev_loop *loop;
    jobq_config cfg;              /* owned */
    jobq_config_loader reload;
    void *reload_ctx;
    jobq_queue *q;                /* owned */
    jobq_slot *slots;             /* shared with workers */
    wrec *workers;                /* owned list: live and awaiting recovery */
    int next_number;
    char host[256];
    char daemon_id[300];
    double started_at;
    bool redis_down;
    int redis_failures;
    double redis_retry_at;
    bool ready;                   /* READY=1 sent */
    bool stopping;
    double stop_deadline;
    int crash_failures;           /* consecutive workers that died doing nothing */
    double respawn_at;
    double next_heartbeat;
    double next_promote;
    uint64_t watchdog_usec;
    double next_watchdog;
    int exit_status;
    unsigned long long done_by_gone, failed_by_gone; /* totals of reaped workers */
    /* Job totals at each heartbeat of the last minute, oldest first, for
     * the rates published in the daemon's info. */
    struct rate_sample {
        double t;
        unsigned long long done, failed;
    } rates[RATE_SAMPLES];
    int nrates;
    ev_signal sig_term, sig_int, sig_hup, sig_chld;
    ev_timer tick;
};

static int count_active(const jobq_supervisor *s) {
    int n = 0;
    for (const wrec *w = s->workers; w; w = w->next)
        if (w->pid && !w->retiring) n++;
    return n;
}

static int free_slot(jobq_supervisor *s) {
    for (int i = 0; i < JOBQ_MAX_SLOTS; i++) {
        bool used = false;
        for (const wrec *w = s->workers; w; w = w->next)
            if (w->slot == i) used = true;
        if (!used) return i;
    }
    return -1;
}

static void wrec_free(wrec *w) {
    free(w->prefix);
    for (int i = 0; i < w->nq; i++) free(w->queues[i]);
    free(w);
}

/* ---- Redis connection ---- */

static bool ensure_redis(jobq_supervisor *s, double now) {
    if (jobq_queue_connected(s->q)) return true;
    if (now < s->redis_retry_at) return false;
    jobq_err err;
    if (jobq_queue_connect(s->q, &err) == 0) {
        if (s->redis_down) jobq_log_info("connected to Redis again at %s", jobq_queue_url_redacted(s->q));
        else jobq_log_info("connected to Redis at %s", jobq_queue_url_redacted(s->q));
        s->redis_down = false;
        s->redis_failures = 0;
        /* The FCALL enqueue library; a server without FUNCTION (Redis < 7)
         * still serves plain RPUSH producers. */
        int loaded = jobq_functions_ensure(s->q, &err);
        if (loaded == 1) jobq_log_info("installed the jobq function library (version %d)", JOBQ_FUNCTIONS_VERSION);
        if (loaded < 0) {
            jobq_log_warn("cannot install the jobq function library: %s", err.msg);
            if (err.code == JOBQ_E_IO) {
                s->redis_down = true;
                return false;
            }
        }
        return true;
    }
    if (!s->redis_down) jobq_log_warn("Redis unavailable (%s); retrying with backoff", err.msg);
    s->redis_down = true;
    s->redis_failures++;
    s->redis_retry_at = now + jobq_backoff_delay(s->redis_failures, 0.1, 5.0);
    return false;
}

/* After a failed call: log once and schedule a reconnect. */
static void redis_failed(jobq_supervisor *s, const jobq_err *err, const char *what) {
    if (err->code == JOBQ_E_IO) {
        if (!s->redis_down) jobq_log_warn("lost Redis connection during %s: %s", what, err->msg);
        s->redis_down = true;
        jobq_queue_disconnect(s->q);
    } else {
        jobq_log_err("%s: %s", what, err->msg);
    }
}

/* ---- workers ---- */

static void spawn_worker(jobq_supervisor *s) {
    int slot = free_slot(s);
    if (slot < 0) {
        jobq_log_err("no free worker slot (more than %d workers)", JOBQ_MAX_SLOTS);
        return;
    }
    wrec *w = calloc(1, sizeof *w);
    if (!w) return;
    w->slot = slot;
    w->number = ++s->next_number;
    w->prefix = strdup(s->cfg.prefix);
    w->nq = s->cfg.nqueues;
    bool ok = w->prefix != NULL;
    for (int i = 0; i < w->nq; i++) ok = (w->queues[i] = strdup(s->cfg.queues[i])) && ok;
    if (!ok) {
        jobq_log_err("out of memory starting a worker");
        wrec_free(w);
        return;
    }
    jobq_slot *sl = &s->slots[slot];
    memset(sl, 0, sizeof *sl);
    atomic_store(&sl->state, JOBQ_SLOT_STARTING);

    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: drop the supervisor's loop and connection, then become a
         * worker. It never returns into the loop, and _exit skips the
         * parent's atexit handlers and stdio buffers, as a forked child must. */
        ev_loop_destroy(s->loop);
        s->loop = NULL;
        jobq_queue_free(s->q);
        s->q = NULL;
        jobq_notify_forget();
        jobq_worker_params params = {&s->cfg, sl, w->number, s->daemon_id, s->host};
        int status = jobq_worker_main(&params);
        jobq_plugin_unload_all();
        _exit(status);
    }
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        jobq_log_err("cannot fork a worker: %s", strerror(fork_errno));
        wrec_free(w);
        s->crash_failures++;
        s->respawn_at = ev_now(s->loop) + jobq_backoff_delay(s->crash_failures, 0.1, 30);
        return;
    }
    w->pid = pid;
    w->started_at = ev_now(s->loop);
    w->next = s->workers;
    s->workers = w;
    jobq_log_debug("started worker[%d] pid %d", w->number, (int)pid);
}

static void signal_workers(jobq_supervisor *s, int sig, bool retire) {
    for (wrec *w = s->workers; w; w = w->next) {
        if (!w->pid) continue;
        if (retire) w->retiring = true;
        kill(w->pid, sig);
    }
}

static void describe_exit(const wrec *w, char *buf, size_t size) {
    double cpu = (double)w->ru.ru_utime.tv_sec + (double)w->ru.ru_utime.tv_usec / 1e6 +
                 (double)w->ru.ru_stime.tv_sec + (double)w->ru.ru_stime.tv_usec / 1e6;
    if (WIFSIGNALED(w->status)) {
        int sig = WTERMSIG(w->status);
        const char *abbrev = sigabbrev_np(sig);
        snprintf(buf, size, "killed by signal SIG%s (%s)%s; max RSS %ld KiB, CPU %.2f s",
                 abbrev ? abbrev : "?", strsignal(sig), WCOREDUMP(w->status) ? ", core dumped" : "",
                 w->ru.ru_maxrss, cpu);
    } else {
        snprintf(buf, size, "exited with status %d; max RSS %ld KiB, CPU %.2f s",
                 WEXITSTATUS(w->status), w->ru.ru_maxrss, cpu);
    }
}

/* Record the outcome of the job a dead worker was running. 0 when done (or
 * nothing to do), -1 when Redis failed (retry later). */
static int settle_running_job(jobq_supervisor *s, wrec *w, const char *inflight, const char *why) {
    char **items = NULL;
    size_t *lens = NULL, n = 0;
    jobq_err err;
    if (jobq_queue_list(s->q, inflight, &items, &lens, &n, &err) != 0) {
        redis_failed(s, &err, "reading a dead worker's in-flight list");
        return err.code == JOBQ_E_IO ? -1 : 0;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] != w->job.payload_len || jobq_slots_hash(items[i], lens[i]) != w->job.payload_hash)
            continue;
        const char *queue = w->queues[w->job.queue_index];
        jobq_queue_settings qs;
        jobq_config_queue_settings(&s->cfg, queue, &qs);
        jobq_job_defaults defaults = {qs.timeout, qs.max_attempts, qs.result_ttl, 0};
        struct jobq_job job;
        double now = jobq_now();
        /* Parsed "as of" its start, so a payload without enqueued_at gets
         * the start time there, as the worker gave it. */
        if (jobq_job_parse(&job, items[i], lens[i], queue, &defaults, w->job.started_at, &err) != 0) {
            jobq_job_fini(&job);
            break; /* cannot happen for a job that ran; leave it to the requeue */
        }
        if (job.id_assigned) snprintf(job.id_buf, sizeof job.id_buf, "%.39s", w->job.id); /* keep its id */
        job.started_at = w->job.started_at;
        job.finished_at = now;
        char error[512], worker_id[300];
        bool died = !w->job_timed_out && !w->job_cancelled;
        if (w->job_timed_out)
            snprintf(error, sizeof error, "timed out after %g s (worker %s)", w->job.timeout, why);
        else
            snprintf(error, sizeof error, "worker died: %s", why);
        jobq_job_set_failed(&job, "%s", error);
        snprintf(worker_id, sizeof worker_id, "%s:%d", s->host, (int)w->pid);
        jobq_outcome out = {.inflight_key = inflight, .payload = items[i], .payload_len = lens[i],
                            .result_ttl = job.result_ttl};
        char *result = NULL, *event = NULL, *dead = NULL, *retry = NULL;
        int deaths = job.deaths + (died ? 1 : 0);
        bool poison = died && deaths >= s->cfg.poison_limit;
        if (w->job_cancelled) {
            jobq_job_set_failed(&job, "cancelled");
            result = jobq_job_result_json(&job, worker_id);
            event = jobq_job_event_json(&job, "cancelled", worker_id, now);
            out.id = job.id;
            jobq_log_info("job %s cancelled while running", job.id);
        } else if (!poison && job.attempt < job.max_attempts &&
                   (retry = jobq_job_retry_payload(&job, error, died))) {
            double delay = jobq_backoff_retry(job.attempt, s->cfg.retry_backoff_base,
                                              s->cfg.retry_backoff_max, (double)rand() / RAND_MAX);
            out.retry_payload = retry;
            out.retry_at = now + delay;
            event = jobq_job_event_json(&job, "retrying", worker_id, now);
            jobq_log_warn("job %s: attempt %d of %d failed: %s; retrying in %.2fs", job.id,
                          job.attempt, job.max_attempts, error, delay);
        } else {
            if (poison) {
                char msg[600];
                snprintf(msg, sizeof msg, "poison job: took its worker down %d times; last: %s",
                         deaths, error);
                jobq_job_set_failed(&job, "%s", msg);
            }
            result = jobq_job_result_json(&job, worker_id);
            dead = jobq_job_dead_json(&job, job.error, now);
            event = jobq_job_event_json(&job, "failed", worker_id, now);
            out.id = job.id;
            out.finished = out.failed = true;
            jobq_log_warn("job %s dead after %d attempt(s): %s", job.id, job.attempt, job.error);
        }
        out.result_json = result;
        out.event_json = event;
        out.dead_json = dead;
        if (jobq_queue_commit(s->q, &out, 1, &err) != 0) {
            redis_failed(s, &err, "recording a dead worker's job");
            rc = err.code == JOBQ_E_IO ? -1 : 0;
        }
        free(result);
        free(event);
        free(dead);
        free(retry);
        jobq_job_fini(&job);
        break;
    }
    jobq_queue_free_list(items, lens, n);
    return rc;
}

/* Put a dead worker's in-flight jobs back. 0 when done, -1 to retry later. */
static int recover_worker(jobq_supervisor *s, wrec *w) {
    if (!ensure_redis(s, ev_now(s->loop))) return -1;
    char worker_id[300], why[300];
    snprintf(worker_id, sizeof worker_id, "%s:%d", s->host, (int)w->pid);
    describe_exit(w, why, sizeof why);
    const char *inflight_ptrs[JOBQ_MAX_QUEUES];
    char inflight[JOBQ_MAX_QUEUES][400];
    long moved = 0;
    for (int i = 0; i < w->nq; i++) {
        jobq_worker_inflight_key(inflight[i], sizeof inflight[i], w->prefix, w->queues[i], worker_id);
        inflight_ptrs[i] = inflight[i];
        if (w->had_job && !w->job_handled && !w->shutdown_kill && i == w->job.queue_index) {
            if (settle_running_job(s, w, inflight[i], why) != 0) return -1;
            w->job_handled = true;
        }
        char queue_key[300];
        snprintf(queue_key, sizeof queue_key, "%s:queue:%s", w->prefix, w->queues[i]);
        jobq_err err;
        long n = jobq_queue_requeue(s->q, inflight[i], queue_key, &err);
        if (n < 0) {
            redis_failed(s, &err, "requeueing a dead worker's jobs");
            if (err.code == JOBQ_E_IO) return -1;
        } else {
            moved += n;
        }
    }
    jobq_err err;
    if (jobq_queue_unregister_inflight(s->q, s->daemon_id, inflight_ptrs, w->nq, &err) != 0 &&
        err.code == JOBQ_E_IO) {
        redis_failed(s, &err, "unregistering in-flight lists");
        return -1;
    }
    if (moved > 0) jobq_log_info("put %ld in-flight job(s) of worker[%d] back on their queues", moved, w->number);
    return 0;
}

static void reap(jobq_supervisor *s) {
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid <= 0) break;
        wrec *w = s->workers;
        while (w && w->pid != pid) w = w->next;
        if (!w) continue;
        jobq_slot *sl = &s->slots[w->slot];
        w->status = status;
        w->ru = ru;
        w->had_job = jobq_slot_read_job(sl, &w->job);
        unsigned seq = atomic_load(&sl->seq);
        w->job_timed_out = w->had_job && w->timeout_seq == seq && (unsigned)atomic_load(&sl->timed_out) == seq;
        w->job_cancelled = w->had_job && w->cancel_seq == seq;
        w->jobs_done = atomic_load(&sl->jobs_done);
        s->done_by_gone += w->jobs_done;
        s->failed_by_gone += atomic_load(&sl->jobs_failed);
        atomic_store(&sl->state, JOBQ_SLOT_FREE);
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        char why[300];
        describe_exit(w, why, sizeof why);
        if (clean && !w->had_job) {
            jobq_log_debug("worker[%d] pid %d exited", w->number, (int)pid);
        } else if (w->had_job) {
            jobq_log_warn("worker[%d] pid %d %s while running job %s", w->number, (int)pid, why, w->job.id);
        } else {
            jobq_log_warn("worker[%d] pid %d %s", w->number, (int)pid, why);
        }
        /* Restart at once after a worker that did work or was taken down by
         * a job; back off when workers keep dying without doing anything. */
        if (!clean && !w->had_job && w->jobs_done == 0 && !w->retiring) {
            s->crash_failures++;
            double delay = jobq_backoff_delay(s->crash_failures, 0.1, 30);
            s->respawn_at = ev_now(s->loop) + delay;
            jobq_log_warn("workers keep dying; next start in %.1fs", delay);
        } else if (!w->retiring) {
            s->crash_failures = 0;
        }
        w->pid = -pid; /* reaped; negative keeps the id for recovery */
    }
}

/* Recover reaped workers and drop their records. */
static void recover_reaped(jobq_supervisor *s) {
    for (wrec **pp = &s->workers; *pp;) {
        wrec *w = *pp;
        if (w->pid < 0) {
            w->pid = -w->pid;
            int rc = recover_worker(s, w);
            if (rc != 0) {
                w->pid = -w->pid;
                break; /* Redis away: try again next tick */
            }
            *pp = w->next;
            wrec_free(w);
            continue;
        }
        pp = &w->next;
    }
}

static void enforce_timeouts(jobq_supervisor *s, double now) {
    for (wrec *w = s->workers; w; w = w->next) {
        if (w->pid <= 0) continue;
        if (w->kill_at > 0 && now >= w->kill_at) {
            jobq_log_warn("worker[%d] pid %d did not stop; sending SIGKILL", w->number, (int)w->pid);
            kill(w->pid, SIGKILL);
            w->kill_at = 0;
            continue;
        }
        jobq_slot *sl = &s->slots[w->slot];
        jobq_slot_job job;
        if (!jobq_slot_read_job(sl, &job)) continue;
        unsigned seq = atomic_load(&sl->seq);
        if (now < job.deadline || w->timeout_seq == seq) continue;
        w->timeout_seq = seq;
        atomic_store(&sl->timed_out, (int)seq);
        jobq_log_warn("job %s overran its timeout of %g s; stopping worker[%d]", job.id, job.timeout,
                      w->number);
        if (s->cfg.kill_grace > 0) {
            kill(w->pid, SIGTERM);
            w->kill_at = now + s->cfg.kill_grace;
        } else {
            kill(w->pid, SIGKILL);
        }
    }
}

/* Stop the workers running jobs whose cancellation was requested (by
 * `jobq cancel`); requests for jobs not running here are left for the
 * daemon that runs them, and expire after a minute. */
static void handle_cancels(jobq_supervisor *s, char **ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        for (wrec *w = s->workers; w; w = w->next) {
            if (w->pid <= 0) continue;
            jobq_slot *sl = &s->slots[w->slot];
            jobq_slot_job job;
            if (!jobq_slot_read_job(sl, &job) || strcmp(job.id, ids[i]) != 0) continue;
            w->cancel_seq = atomic_load(&sl->seq);
            jobq_log_info("cancelling job %s: stopping worker[%d]", job.id, w->number);
            kill(w->pid, SIGKILL);
            jobq_err err;
            if (jobq_queue_cancel_done(s->q, ids[i], &err) != 0) redis_failed(s, &err, "cancel");
            break;
        }
    }
}

/* ---- heartbeat, registry, reclaim ---- */

/* Live and busy workers, and the jobs this daemon has done and failed since
 * it started (workers that exited included). */
static void job_totals(const jobq_supervisor *s, int *live, int *busy, unsigned long long *done,
                       unsigned long long *failed) {
    *live = *busy = 0;
    *done = s->done_by_gone;
    *failed = s->failed_by_gone;
    for (const wrec *w = s->workers; w; w = w->next) {
        if (w->pid <= 0) continue;
        (*live)++;
        jobq_slot *sl = &s->slots[w->slot];
        if (atomic_load(&sl->state) == JOBQ_SLOT_RUNNING) (*busy)++;
        *done += atomic_load(&sl->jobs_done);
        *failed += atomic_load(&sl->jobs_failed);
    }
}

/* Record this heartbeat's totals and add to info the jobs done and failed
 * per minute over the last minute (or since the start, when younger). */
static void add_rates(jobq_supervisor *s, double now, json_t *info) {
    int live, busy;
    unsigned long long done, failed;
    job_totals(s, &live, &busy, &done, &failed);
    if (s->nrates == 0) s->rates[s->nrates++] = (struct rate_sample){s->started_at, 0, 0};
    /* The base is the newest sample at least a minute old (else the first). */
    int drop = 0;
    while (drop < s->nrates - 1 && now - s->rates[drop + 1].t >= RATE_WINDOW) drop++;
    bool keep = now - s->rates[s->nrates - 1].t >= 1.0; /* one sample a second at most */
    if (keep && drop == 0 && s->nrates == RATE_SAMPLES) drop = 1;
    memmove(s->rates, s->rates + drop, (size_t)(s->nrates - drop) * sizeof *s->rates);
    s->nrates -= drop;
    if (keep) s->rates[s->nrates++] = (struct rate_sample){now, done, failed};
    const struct rate_sample *base = &s->rates[0];
    double window = now - base->t;
    if (window < 0.5 || done < base->done || failed < base->failed) return;
    json_object_set_new(info, "processed_per_minute", json_real((double)(done - base->done) * 60 / window));
    json_object_set_new(info, "failed_per_minute", json_real((double)(failed - base->failed) * 60 / window));
    json_object_set_new(info, "rate_window", json_real(window));
}

static char *daemon_info(jobq_supervisor *s, double now) {
    json_t *workers = json_array();
    int busy = 0;
    for (wrec *w = s->workers; w; w = w->next) {
        if (w->pid <= 0) continue;
        jobq_slot *sl = &s->slots[w->slot];
        jobq_slot_job job;
        json_t *o = json_pack("{s:i, s:i}", "number", w->number, "pid", (int)w->pid);
        if (jobq_slot_read_job(sl, &job)) {
            busy++;
            json_object_set_new(o, "job", json_string(job.id));
            json_object_set_new(o, "queue", json_string(w->queues[job.queue_index]));
            json_object_set_new(o, "job_started_at", json_real(job.started_at));
        }
        json_object_set_new(o, "jobs_done", json_integer((json_int_t)atomic_load(&sl->jobs_done)));
        json_array_append_new(workers, o);
    }
    json_t *queues = json_array();
    for (int i = 0; i < s->cfg.nqueues; i++) json_array_append_new(queues, json_string(s->cfg.queues[i]));
    json_t *info = json_pack("{s:s, s:i, s:f, s:f, s:s, s:o, s:o, s:i}", "host", s->host, "pid",
                             (int)getpid(), "started_at", s->started_at, "heartbeat_at", now,
                             "version", JOBQ_VERSION, "queues", queues, "workers", workers, "busy", busy);
    if (info) add_rates(s, now, info);
    char *str = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    return str;
}

static bool pid_alive(int pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

/* Reclaim the in-flight work of daemons that are gone: on this host, a
 * predecessor whose pid is dead (or is our own pid: a restart in a
 * container); anywhere, one whose heartbeat expired. */
static void reclaim_dead_daemons(jobq_supervisor *s, bool at_start) {
    char **ids = NULL, **infos = NULL;
    size_t n = 0;
    jobq_err err;
    if (jobq_queue_daemons(s->q, &ids, &infos, &n, &err) != 0) {
        redis_failed(s, &err, "listing daemons");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool mine = strcmp(ids[i], s->daemon_id) == 0;
        if (mine && !at_start) continue;
        json_t *info = json_loads(infos[i], 0, NULL);
        const char *host = json_string_value(json_object_get(info, "host"));
        int pid = (int)json_integer_value(json_object_get(info, "pid"));
        bool force = mine || (host && strcmp(host, s->host) == 0 && !pid_alive(pid));
        json_decref(info);
        long moved = jobq_queue_reclaim(s->q, ids[i], force, &err);
        if (moved == -1) {
            redis_failed(s, &err, "reclaiming a dead daemon's jobs");
            break;
        }
        if (moved >= 0)
            jobq_log_warn("daemon %s is gone; put %ld of its in-flight job(s) back on their queues",
                          ids[i], moved);
    }
    jobq_queue_free_list(ids, NULL, n);
    jobq_queue_free_list(infos, NULL, n);
}

static void heartbeat(jobq_supervisor *s, double now) {
    char *info = daemon_info(s, now);
    jobq_err err;
    if (info && jobq_queue_heartbeat(s->q, s->daemon_id, info, s->cfg.heartbeat_ttl, &err) != 0)
        redis_failed(s, &err, "heartbeat");
    free(info);
    if (jobq_queue_connected(s->q)) reclaim_dead_daemons(s, false);
}

static void update_status(jobq_supervisor *s) {
    int live, busy;
    unsigned long long done, failed;
    job_totals(s, &live, &busy, &done, &failed);
    jobq_notify_status("%s; workers: %d busy, %d idle; jobs: %llu done, %llu failed; Redis %s",
                       s->stopping ? "stopping" : "running", busy, live - busy, done, failed,
                       s->redis_down ? "reconnecting" : "connected");
}

/* ---- reload and stop ---- */

static void do_reload(jobq_supervisor *s) {
    jobq_notify_reloading();
    jobq_config fresh;
    jobq_err err;
    if (s->reload(&fresh, s->reload_ctx, &err) != 0) {
        jobq_log_err("reload refused, keeping the running configuration: %s", err.msg);
        jobq_notify_ready();
        return;
    }
    bool same_password = (!fresh.redis_password && !s->cfg.redis_password) ||
                         (fresh.redis_password && s->cfg.redis_password &&
                          strcmp(fresh.redis_password, s->cfg.redis_password) == 0);
    if (strcmp(fresh.redis_url, s->cfg.redis_url) != 0 || strcmp(fresh.prefix, s->cfg.prefix) != 0 ||
        !same_password) {
        jobq_queue *nq = jobq_queue_new(fresh.redis_url, fresh.prefix, 2.0, &err);
        if (!nq) {
            jobq_log_err("reload refused: %s", err.msg);
            jobq_config_fini(&fresh);
            jobq_notify_ready();
            return;
        }
        jobq_queue_set_password(nq, fresh.redis_password);
        jobq_queue_free(s->q);
        s->q = nq;
        s->redis_down = false;
        s->redis_retry_at = 0;
    }
    jobq_plugin_unload_all();
    if (jobq_plugin_load_all(fresh.test_handlers, fresh.plugins_dir, &err) < 0)
        jobq_log_err("%s", err.msg);
    char why[300];
    if (jobq_wordcount_configure(fresh.wordcount_max_body, fresh.wordcount_connect_timeout,
                                 fresh.wordcount_preload, why, sizeof why) != 0)
        jobq_log_warn("wordcount: preload: %s; workers will try again", why);
    jobq_log_set_level(fresh.log_level);
    jobq_config_fini(&s->cfg);
    s->cfg = fresh;
    signal_workers(s, SIGTERM, true);
    s->crash_failures = 0;
    s->respawn_at = 0;
    jobq_log_info("configuration reloaded: %d worker(s) on queue(s) %s%s", s->cfg.workers,
                  s->cfg.queues[0], s->cfg.nqueues > 1 ? ",..." : "");
    jobq_notify_ready();
}

static void begin_stop(jobq_supervisor *s, const char *why) {
    if (s->stopping) {
        jobq_log_info("%s again: stopping now", why);
        s->stop_deadline = ev_now(s->loop);
        return;
    }
    s->stopping = true;
    s->stop_deadline = ev_now(s->loop) + s->cfg.shutdown_timeout;
    jobq_notify_stopping();
    jobq_log_info("%s: stopping; running jobs get up to %g s", why, s->cfg.shutdown_timeout);
    signal_workers(s, SIGTERM, true);
    update_status(s);
    if (s->cfg.shutdown_timeout > 0)
        jobq_notify_extend_timeout((uint64_t)((s->cfg.shutdown_timeout + 10) * 1e6));
}

static void finish_stop(jobq_supervisor *s) {
    bool pending = s->workers != NULL;
    if (!pending && jobq_queue_connected(s->q)) {
        jobq_err err;
        if (jobq_queue_deregister(s->q, s->daemon_id, &err) != 0) redis_failed(s, &err, "deregister");
    } else if (pending) {
        jobq_log_err("Redis unreachable: in-flight jobs of stopped workers stay in Redis and are "
                     "reclaimed by the next jobqd start (or another daemon after %g s)",
                     s->cfg.heartbeat_ttl);
    }
    jobq_log_info("stopped");
    ev_break(s->loop, EVBREAK_ALL);
}

/* ---- callbacks ---- */

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)revents;
    jobq_supervisor *s = ev_userdata(loop);
    switch (w->signum) {
    case SIGTERM: begin_stop(s, "SIGTERM"); break;
    case SIGINT: begin_stop(s, "SIGINT"); break;
    case SIGHUP:
        if (!s->stopping) do_reload(s);
        break;
    case SIGCHLD: reap(s); break;
    }
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)t;
    (void)revents;
    jobq_supervisor *s = ev_userdata(loop);
    ev_now_update(loop);
    double now = ev_now(loop);
    reap(s);
    bool connected = ensure_redis(s, now);
    if (connected && !s->ready && !s->stopping) {
        /* First contact: take back what a predecessor left, then start. */
        reclaim_dead_daemons(s, true);
        heartbeat(s, now);
        for (int i = count_active(s); i < s->cfg.workers; i++) spawn_worker(s);
        s->ready = true;
        s->next_heartbeat = now + s->cfg.heartbeat_interval;
        jobq_log_info("ready: %d worker(s) serving %d queue(s) as %s", s->cfg.workers, s->cfg.nqueues,
                      s->daemon_id);
        jobq_notify_ready();
        update_status(s);
    }
    recover_reaped(s);
    enforce_timeouts(s, now);
    if (s->stopping) {
        if (now >= s->stop_deadline) {
            for (wrec *w = s->workers; w; w = w->next) {
                if (w->pid > 0 && !w->shutdown_kill) {
                    jobq_log_warn("worker[%d] still running at the shutdown deadline; killing it, "
                                  "its job goes back to the queue", w->number);
                    w->shutdown_kill = true;
                    kill(w->pid, SIGKILL);
                }
            }
        }
        bool live = false;
        for (wrec *w = s->workers; w; w = w->next) live = live || w->pid > 0;
        if (!s->workers || (!live && now >= s->stop_deadline + 5)) {
            finish_stop(s);
            return;
        }
    } else if (s->ready) {
        if (now >= s->respawn_at)
            for (int i = count_active(s); i < s->cfg.workers; i++) spawn_worker(s);
        if (connected && now >= s->next_promote) {
            double next_due;
            char **cancel_ids = NULL;
            size_t ncancel = 0;
            jobq_err err;
            if (jobq_queue_promote(s->q, now, 1000, &next_due, &cancel_ids, &ncancel, &err) < 0)
                redis_failed(s, &err, "promote");
            if (ncancel) handle_cancels(s, cancel_ids, ncancel);
            jobq_queue_free_list(cancel_ids, NULL, ncancel);
            s->next_promote = now + 0.05;
        }
        if (now >= s->next_heartbeat) {
            s->next_heartbeat = now + s->cfg.heartbeat_interval;
            if (connected) heartbeat(s, now);
            update_status(s);
        }
    }
    /* Ping the watchdog only from a turning loop whose Redis is either
     * connected or being retried on schedule. */
    if (s->watchdog_usec && now >= s->next_watchdog) {
        jobq_notify_watchdog();
        s->next_watchdog = now + (double)s->watchdog_usec / 2e6;
    }
}

/* ---- lifecycle ---- */

jobq_supervisor *jobq_supervisor_new(jobq_config *cfg, jobq_config_loader reload, void *reload_ctx,
                                     jobq_err *err) {
    jobq_supervisor *s = calloc(1, sizeof *s);
    if (!s) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    s->reload = reload;
    s->reload_ctx = reload_ctx;
    if (gethostname(s->host, sizeof s->host) != 0) snprintf(s->host, sizeof s->host, "localhost");
    snprintf(s->daemon_id, sizeof s->daemon_id, "%s:%d", s->host, (int)getpid());
    s->slots = jobq_slots_map(JOBQ_MAX_SLOTS);
    if (!s->slots) {
        jobq_err_set(err, JOBQ_E_NOMEM, "cannot map worker slots: %s", strerror(errno));
        goto fail;
    }
    s->q = jobq_queue_new(s->cfg.redis_url, s->cfg.prefix, 2.0, err);
    if (!s->q) goto fail;
    jobq_queue_set_password(s->q, s->cfg.redis_password);
    s->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    if (!s->loop) {
        jobq_err_set(err, JOBQ_E_NOMEM, "cannot create the event loop");
        goto fail;
    }
    ev_set_userdata(s->loop, s);
    return s;
fail:
    jobq_supervisor_free(s);
    return NULL;
}

int jobq_supervisor_run(jobq_supervisor *s) {
    signal(SIGPIPE, SIG_IGN);
    s->started_at = jobq_now();
    s->watchdog_usec = jobq_notify_init();
    ev_signal_init(&s->sig_term, on_signal, SIGTERM);
    ev_signal_init(&s->sig_int, on_signal, SIGINT);
    ev_signal_init(&s->sig_hup, on_signal, SIGHUP);
    ev_signal_init(&s->sig_chld, on_signal, SIGCHLD);
    ev_signal_start(s->loop, &s->sig_term);
    ev_signal_start(s->loop, &s->sig_int);
    ev_signal_start(s->loop, &s->sig_hup);
    ev_signal_start(s->loop, &s->sig_chld);
    ev_timer_init(&s->tick, on_tick, 0., TICK_SECONDS);
    ev_timer_start(s->loop, &s->tick);
    jobq_log_info("jobqd %s starting: %d worker(s), queues %s%s, Redis %s", JOBQ_VERSION, s->cfg.workers,
                  s->cfg.queues[0], s->cfg.nqueues > 1 ? " (and more)" : "", jobq_queue_url_redacted(s->q));
    ev_run(s->loop, 0);
    return s->exit_status;
}

void jobq_supervisor_free(jobq_supervisor *s) {
    if (!s) return;
    while (s->workers) {
        wrec *w = s->workers;
        s->workers = w->next;
        wrec_free(w);
    }
    if (s->loop) ev_loop_destroy(s->loop);
    jobq_queue_free(s->q);
    jobq_slots_unmap(s->slots, JOBQ_MAX_SLOTS);
    jobq_config_fini(&s->cfg);
    free(s);
}
