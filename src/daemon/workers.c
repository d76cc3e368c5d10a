/*
 * The supervisor's worker records: fork and reap workers, record the job a
 * dead worker was running through the one outcome policy, put the rest of
 * its in-flight lists back, stop overrunning and stuck workers, and cancel
 * jobs on request. Invariant: a record is freed only after its in-flight
 * lists were put back and forgotten in the same script.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/log.h"
#include "core/random.h"
#include "daemon/notify.h"
#include "daemon/plugin.h"
#include "daemon/supervisor_internal.h"
#include "daemon/worker.h"
#include "protocol/keys.h"

/* A worker stuck in a take this long past the take's own bound is killed
 * (stopped with SIGSTOP, or wedged): the job it may hold goes back. */
#define STUCK_TAKE_GRACE 2.0

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

void jobq_workers_free_all(jobq_supervisor *s) {
    while (s->workers) {
        wrec *w = s->workers;
        s->workers = w->next;
        wrec_free(w);
    }
}

int jobq_workers_active(const jobq_supervisor *s) {
    int n = 0;
    for (const wrec *w = s->workers; w; w = w->next)
        if (w->state == WREC_RUNNING && !w->retiring) n++;
    return n;
}

static void spawn(jobq_supervisor *s) {
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
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: drop the supervisor's loop and connection, then become a
         * worker. It never returns into the loop, and _exit skips the
         * parent's atexit handlers and stdio buffers, as a forked child must. */
        ev_loop_destroy(s->loop);
        s->loop = NULL;
        jobq_redis_free(s->redis);
        s->redis = NULL;
        jobq_notify_forget();
        jobq_worker_params params = {&s->cfg, sl, w->number, s->daemon_id, s->host, parent};
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
    w->state = WREC_RUNNING;
    w->pid = pid;
    w->started_at = ev_now(s->loop);
    w->next = s->workers;
    s->workers = w;
    jobq_log_debug("started worker[%d] pid %d", w->number, (int)pid);
}

void jobq_workers_spawn_missing(jobq_supervisor *s) {
    if (ev_now(s->loop) < s->respawn_at) return;
    for (int i = jobq_workers_active(s); i < s->cfg.workers; i++) spawn(s);
}

/* Kill the process group a worker's job started, if any (its pgid stays
 * reserved while the worker has not reaped its leader). */
static void kill_child_group(jobq_supervisor *s, const wrec *w) {
    int group = atomic_exchange(&s->slots[w->slot].child_pgid, 0);
    if (group > 0) kill(-group, SIGKILL);
}

void jobq_workers_kill(jobq_supervisor *s, wrec *w) {
    kill(w->pid, SIGKILL);
    kill_child_group(s, w);
}

void jobq_workers_signal(jobq_supervisor *s, int sig, bool retire) {
    for (wrec *w = s->workers; w; w = w->next) {
        if (w->state != WREC_RUNNING) continue;
        if (retire) w->retiring = true;
        kill(w->pid, sig);
    }
}

void jobq_workers_totals(const jobq_supervisor *s, int *live, int *busy, unsigned long long *done,
                         unsigned long long *failed) {
    *live = *busy = 0;
    *done = s->done_by_gone;
    *failed = s->failed_by_gone;
    for (const wrec *w = s->workers; w; w = w->next) {
        if (w->state != WREC_RUNNING) continue;
        (*live)++;
        jobq_slot *sl = &s->slots[w->slot];
        if (atomic_load(&sl->state) == JOBQ_SLOT_RUNNING) (*busy)++;
        *done += atomic_load(&sl->jobs_done);
        *failed += atomic_load(&sl->jobs_failed);
    }
}

/* The worker's id: its in-flight lists are named after it. */
static void worker_id(const jobq_supervisor *s, const wrec *w, char *buf, size_t size) {
    snprintf(buf, size, "%s:%d", s->host, (int)w->pid);
}

int jobq_workers_lists(const jobq_supervisor *s, int qi, char (*bufs)[JOBQ_INFLIGHT_MAX], int max) {
    int n = 0;
    const char *queue = s->cfg.queues[qi];
    for (const wrec *w = s->workers; w && n < max; w = w->next) {
        bool serves = strcmp(w->prefix, s->cfg.prefix) == 0; /* not a worker of an older config */
        bool found = false;
        for (int i = 0; serves && i < w->nq; i++) found = found || strcmp(w->queues[i], queue) == 0;
        if (!found) continue;
        char id[300];
        worker_id(s, w, id, sizeof id);
        jobq_key(bufs[n++], JOBQ_INFLIGHT_MAX, s->cfg.prefix, JOBQ_KEY_INFLIGHT, queue, id);
    }
    return n;
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
        snprintf(buf, size, "exited with status %d; max RSS %ld KiB, CPU %.2f s", WEXITSTATUS(w->status),
                 w->ru.ru_maxrss, cpu);
    }
}

/* Record what a reaped worker was doing, and whether to back off restarts. */
static void note_exit(jobq_supervisor *s, wrec *w) {
    jobq_slot *sl = &s->slots[w->slot];
    w->had_job = jobq_slot_read_job(sl, &w->job);
    unsigned seq = atomic_load(&sl->seq);
    w->job_timed_out = w->had_job && w->timeout_seq == seq && (unsigned)atomic_load(&sl->timed_out) == seq;
    w->job_cancelled = w->had_job && w->cancel_seq == seq;
    w->jobs_done = atomic_load(&sl->jobs_done);
    kill_child_group(s, w); /* a program its job started must not outlive it */
    s->done_by_gone += w->jobs_done;
    s->failed_by_gone += atomic_load(&sl->jobs_failed);
    atomic_store(&sl->state, JOBQ_SLOT_FREE);
    bool clean = WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0;
    char why[300];
    describe_exit(w, why, sizeof why);
    if (clean && !w->had_job)
        jobq_log_debug("worker[%d] pid %d exited", w->number, (int)w->pid);
    else if (w->had_job && w->job.id[0])
        jobq_log_warn("worker[%d] pid %d %s while running job %s", w->number, (int)w->pid, why, w->job.id);
    else if (w->had_job)
        jobq_log_warn("worker[%d] pid %d %s while reading a job's payload", w->number, (int)w->pid, why);
    else
        jobq_log_warn("worker[%d] pid %d %s", w->number, (int)w->pid, why);
    /* Restart at once after a worker that did work or was taken down by a
     * job; back off when workers keep dying without doing anything. */
    if (!clean && !w->had_job && w->jobs_done == 0 && !w->retiring) {
        s->crash_failures++;
        double delay = jobq_backoff_delay(s->crash_failures, 0.1, 30);
        s->respawn_at = ev_now(s->loop) + delay;
        jobq_log_warn("workers keep dying; next start in %.1fs", delay);
    } else if (!w->retiring) {
        s->crash_failures = 0;
    }
}

void jobq_workers_reap(jobq_supervisor *s) {
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid <= 0) break;
        wrec *w = s->workers;
        while (w && !(w->state == WREC_RUNNING && w->pid == pid)) w = w->next;
        if (!w) continue;
        w->status = status;
        w->ru = ru;
        w->state = WREC_REAPED;
        note_exit(s, w);
    }
}

/* Record the outcome of the job a dead worker was running, from its
 * in-flight list k. 0 when done (or nothing to do), -1 to retry later. */
static int settle_running_job(jobq_supervisor *s, wrec *w, const jobq_qkeys *k, const char *why) {
    char **items = NULL;
    size_t *lens = NULL, n = 0;
    jobq_err err;
    if (jobq_queue_list(s->redis, k->inflight, &items, &lens, &n, &err) != 0) {
        jobq_upkeep_failed(s, &err, "reading a dead worker's in-flight list");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] != w->job.payload_len || jobq_fnv1a64(items[i], lens[i]) != w->job.payload_hash) continue;
        jobq_queue_settings qs;
        jobq_config_queue_settings(&s->cfg, k->name, &qs);
        jobq_job_defaults defaults = {qs.timeout, qs.max_attempts, qs.result_ttl, 0};
        jobq_outcome_policy policy = {s->cfg.retry_backoff_base, s->cfg.retry_backoff_max, s->cfg.poison_limit};
        struct jobq_job job;
        double now = jobq_now();
        /* Parsed "as of" its start, so a payload without enqueued_at gets
         * the start time there, as the worker gave it. */
        enum jobq_outcome_cause cause = w->job_cancelled   ? JOBQ_CAUSE_CANCELLED
                                        : w->job_timed_out ? JOBQ_CAUSE_TIMED_OUT
                                                           : JOBQ_CAUSE_DIED;
        char reason[900];
        int parsed = jobq_job_parse(&job, items[i], lens[i], k->name, &defaults, w->job.started_at, &err);
        if (parsed != 0 && err.code == JOBQ_E_NOMEM) {
            /* Our memory, not the job's fault: settled on the next try. */
            jobq_log_err("out of memory reading the job of a dead worker; retrying");
            jobq_job_fini(&job);
            rc = -1;
            break;
        } else if (parsed != 0) {
            snprintf(reason, sizeof reason, "%s (its worker %s reading it)", err.msg, why);
            cause = JOBQ_CAUSE_REJECTED;
        } else {
            snprintf(reason, sizeof reason, "%s", why);
            if (job.id_assigned && w->job.id[0]) snprintf(job.id_buf, sizeof job.id_buf, "%.128s", w->job.id);
            job.started_at = w->job.started_at;
            job.finished_at = now;
        }
        char wid[300];
        worker_id(s, w, wid, sizeof wid);
        jobq_outcome out;
        if (jobq_outcome_build(&out, &job, cause, reason, &policy, wid, now) != 0) {
            jobq_log_err("out of memory recording job %s of a dead worker; retrying", job.id);
            rc = -1;
        } else {
            if (out.kind == JOBQ_OUTCOME_RETRY)
                jobq_log_warn("job %s: attempt %d of %d failed: %s; retrying in %.2fs", job.id, job.attempt,
                              job.max_attempts, job.error, out.retry_delay);
            else
                jobq_log_warn("job %s %s after %d attempt(s): %s", job.id, jobq_outcome_event_name(out.kind),
                              job.attempt, job.error);
            /* The job may have been reclaimed meanwhile: check first. */
            jobq_commit_check check = {s->daemon_id, 2 * jobq_config_io_timeout(&s->cfg, JOBQ_SUPERVISOR_IO_TIMEOUT)};
            jobq_commit_opts opts = {.check = &check};
            if (jobq_queue_commit(s->redis, k, &out, 1, &opts, NULL, &err) != 0) {
                jobq_upkeep_failed(s, &err, "recording a dead worker's job");
                rc = -1;
            }
            jobq_outcome_fini(&out);
        }
        jobq_job_fini(&job);
        break;
    }
    jobq_queue_free_list(items, lens, n);
    return rc;
}

/* Put a dead worker's in-flight jobs back: the queue of the job it was
 * running first (that job is settled before anything of its list moves),
 * then each other queue on its own, so one queue whose key is broken does
 * not hold up the rest. 0 when all is done, -1 to retry (what was done is
 * not done again: an empty list is only forgotten). */
static int recover_worker(jobq_supervisor *s, wrec *w) {
    char wid[300], why[300];
    worker_id(s, w, wid, sizeof wid);
    describe_exit(w, why, sizeof why);
    long moved = 0;
    int rc = 0;
    bool settle = w->had_job && !w->job_handled && !w->shutdown_kill;
    int first = settle && w->job.queue_index >= 0 && w->job.queue_index < w->nq ? w->job.queue_index : 0;
    for (int step = 0; step < w->nq; step++) {
        int i = step == 0 ? first : (step <= first ? step - 1 : step);
        jobq_qkeys k;
        jobq_qkeys_init(&k, s->redis, w->prefix, w->queues[i], wid);
        if (settle && i == w->job.queue_index && !w->job_handled) {
            if (settle_running_job(s, w, &k, why) != 0) {
                rc = -1;
                continue;
            }
            w->job_handled = true;
        }
        jobq_err err;
        long n = jobq_queue_requeue(s->redis, &k, true, &err);
        if (n < 0) {
            char what[128];
            snprintf(what, sizeof what, "putting back a dead worker's jobs of queue %s", w->queues[i]);
            jobq_upkeep_failed(s, &err, what);
            rc = -1;
            if (!jobq_redis_connected(s->redis)) break;
            continue;
        }
        moved += n;
    }
    if (moved > 0) jobq_log_info("put %ld in-flight job(s) of worker[%d] back on their queues", moved, w->number);
    return rc;
}

void jobq_workers_recover(jobq_supervisor *s, double now) {
    for (wrec **pp = &s->workers; *pp;) {
        wrec *w = *pp;
        if (w->state != WREC_REAPED || now < w->recover_at) {
            pp = &w->next;
            continue;
        }
        if (!jobq_upkeep_connect(s, now)) return;
        if (recover_worker(s, w) != 0) {
            w->recover_failures++;
            w->recover_at = now + jobq_backoff_delay(w->recover_failures, 0.1, 5.0);
            if (w->recover_failures == 1)
                jobq_log_warn("cannot put back the in-flight jobs of worker[%d] yet; they stay in Redis "
                              "and this is retried", w->number);
            pp = &w->next;
            continue;
        }
        if (w->recover_failures) jobq_log_info("recovered worker[%d]'s in-flight jobs", w->number);
        *pp = w->next;
        wrec_free(w);
    }
}

/* A take returns within its block time plus the I/O timeout; a worker far
 * past that is not running (SIGSTOP) or is wedged. */
static bool stuck_in_take(jobq_slot *sl, double now) {
    long long deadline = atomic_load(&sl->take_deadline_ms);
    return atomic_load(&sl->state) == JOBQ_SLOT_IDLE && deadline > 0 &&
           now * 1000 > (double)deadline + STUCK_TAKE_GRACE * 1000;
}

void jobq_workers_enforce_timeouts(jobq_supervisor *s, double now) {
    for (wrec *w = s->workers; w; w = w->next) {
        if (w->state != WREC_RUNNING) continue;
        if (w->kill_at > 0 && now >= w->kill_at) {
            jobq_log_warn("worker[%d] pid %d did not stop; sending SIGKILL", w->number, (int)w->pid);
            jobq_workers_kill(s, w);
            w->kill_at = 0;
            continue;
        }
        jobq_slot *sl = &s->slots[w->slot];
        if (stuck_in_take(sl, now) && w->kill_at == 0) {
            jobq_log_warn("worker[%d] pid %d is stuck taking a job (stopped?); killing it, what it took "
                          "goes back to the queue", w->number, (int)w->pid);
            kill(w->pid, SIGKILL);
            w->kill_at = now + 3600; /* once */
            continue;
        }
        jobq_slot_job job;
        if (!jobq_slot_read_job(sl, &job)) continue;
        unsigned seq = atomic_load(&sl->seq);
        if (now < job.deadline || w->timeout_seq == seq) continue;
        w->timeout_seq = seq;
        atomic_store(&sl->timed_out, (int)seq);
        jobq_log_warn("job %s overran its timeout of %g s; stopping worker[%d]", job.id, job.timeout, w->number);
        if (s->cfg.kill_grace > 0) {
            kill(w->pid, SIGTERM); /* it kills its job's process group, then itself */
            w->kill_at = now + s->cfg.kill_grace;
        } else {
            jobq_workers_kill(s, w);
        }
    }
}

void jobq_workers_cancel(jobq_supervisor *s, int qi, char **ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        for (wrec *w = s->workers; w; w = w->next) {
            if (w->state != WREC_RUNNING) continue;
            jobq_slot *sl = &s->slots[w->slot];
            jobq_slot_job job;
            if (!jobq_slot_read_job(sl, &job) || strcmp(job.id, ids[i]) != 0) continue;
            w->cancel_seq = atomic_load(&sl->seq);
            jobq_log_info("cancelling job %s: stopping worker[%d]", job.id, w->number);
            jobq_workers_kill(s, w);
            jobq_err err;
            if (jobq_queue_cancel_done(s->redis, &s->keys[qi], ids[i], &err) != 0)
                jobq_upkeep_failed(s, &err, "cancel");
            break;
        }
    }
}
