/*
 * One job in a worker (see job_run.h). The slot names the job from before
 * its payload is parsed, so a payload that crashes the worker is charged to
 * that job (and ends as a poison job) instead of killing worker after
 * worker.
 */
#include "daemon/job_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"
#include "core/random.h"
#include "daemon/registry.h"
#include "protocol/documents.h"

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

/* Publish in the slot the job about to be parsed (id still unknown) or run. */
static void publish_slot(const jobq_run_ctx *ctx, const char *id, const char *payload, size_t len,
                         double started_at, double timeout) {
    jobq_slot_job sj;
    memset(&sj, 0, sizeof sj);
    snprintf(sj.id, sizeof sj.id, "%s", id);
    sj.queue_index = ctx->queue_index;
    sj.started_at = started_at;
    sj.deadline = started_at + timeout;
    sj.timeout = timeout;
    sj.payload_hash = jobq_fnv1a64(payload, len);
    sj.payload_len = len;
    jobq_slot_begin_job(ctx->slot, &sj);
}

/* Build out; on failure log it (the job stays in flight). */
static double finish(const jobq_run_ctx *ctx, struct jobq_job *job, enum jobq_outcome_cause cause,
                     const char *why, jobq_outcome *out, double took) {
    jobq_slot_set_state(ctx->slot, JOBQ_SLOT_BUSY);
    if (jobq_outcome_build(out, job, cause, why, ctx->policy, ctx->worker_id, jobq_now()) != 0) {
        jobq_log_err("out of memory recording the outcome of job %s; leaving it in flight for redelivery",
                     job->id ? job->id : "(no id)");
        return -1;
    }
    switch (out->kind) {
    case JOBQ_OUTCOME_REJECTED:
        jobq_log_warn("dead-lettered a payload from queue %s: %s", ctx->queue, why);
        break;
    case JOBQ_OUTCOME_RETRY:
        jobq_log_info("attempt %d of %d failed: %s; retrying in %.2fs", job->attempt, job->max_attempts,
                      job->error, out->retry_delay);
        break;
    case JOBQ_OUTCOME_FAILED:
        jobq_log_warn("failed after %d attempt(s): %s", job->attempt, job->error);
        break;
    default: break;
    }
    return took;
}

double jobq_run_job(const jobq_run_ctx *ctx, const char *payload, size_t len, bool alone,
                    struct jobq_job *job, jobq_outcome *out) {
    double now = jobq_now();
    jobq_err err;
    publish_slot(ctx, "", payload, len, now, ctx->defaults->timeout);
    if (jobq_job_parse(job, payload, len, ctx->queue, ctx->defaults, now, &err) != 0) {
        if (err.code == JOBQ_E_NOMEM) {
            /* Not judged, so not dead: it stays in flight, and the slot
             * leaves RUNNING so that the supervisor does not charge it
             * when this worker exits. */
            jobq_slot_set_state(ctx->slot, JOBQ_SLOT_BUSY);
            memset(out, 0, sizeof *out);
            jobq_log_err("out of memory reading a payload from queue %s; leaving it in flight for redelivery",
                         ctx->queue);
            return -1;
        }
        return finish(ctx, job, JOBQ_CAUSE_REJECTED, err.msg, out, 0);
    }
    const jobq_handler *h = jobq_registry_find(job->handler);
    if (!h) {
        char why[200];
        snprintf(why, sizeof why, "unknown handler '%.100s'", job->handler);
        return finish(ctx, job, JOBQ_CAUSE_REJECTED, why, out, 0);
    }
    jobq_log_set_job(job->id);
    job->started_at = now;
    job->deadline = now + job->timeout;
    publish_slot(ctx, job->id, payload, len, now, job->timeout);
    if (ctx->publish) {
        char *ev = jobq_doc_event(job, "started", ctx->worker_id, now);
        if (ev) ctx->publish(ctx->udata, ctx->queue_index, ev, alone);
        free(ev);
    }
    limits saved;
    apply_limits(ctx->settings, &saved);
    int rc = h->fn(job, h->udata);
    restore_limits(ctx->settings, &saved);

    job->finished_at = jobq_now();
    if (rc != JOBQ_OK) job->failed = true;
    jobq_log_debug("%s in %.3f ms", job->failed ? "failed" : "done", (job->finished_at - job->started_at) * 1e3);
    double took = finish(ctx, job, JOBQ_CAUSE_RAN, NULL, out, job->finished_at - job->started_at);
    jobq_log_set_job(NULL);
    return took;
}
