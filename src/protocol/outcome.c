/*
 * The outcome policy (see outcome.h): one decision, one place, for the
 * worker (a handler returned, a payload was rejected) and the supervisor (a
 * worker died, timed out or was cancelled mid-job).
 */
#include "protocol/outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/random.h"
#include "protocol/documents.h"

const char *jobq_outcome_event_name(enum jobq_outcome_kind kind) {
    static const char *const names[] = {[JOBQ_OUTCOME_OK] = "ok", [JOBQ_OUTCOME_RETRY] = "retrying",
                                        [JOBQ_OUTCOME_FAILED] = "failed", [JOBQ_OUTCOME_REJECTED] = "dead",
                                        [JOBQ_OUTCOME_CANCELLED] = "cancelled"};
    return kind <= JOBQ_OUTCOME_CANCELLED ? names[kind] : "?";
}

/* Mark job failed for cause, and say whether its worker died with it. */
static bool mark_failure(struct jobq_job *job, enum jobq_outcome_cause cause, const char *why,
                         const jobq_outcome_policy *policy) {
    switch (cause) {
    case JOBQ_CAUSE_RAN:
        if (job->failed && !job->error) jobq_job_set_failed(job, "handler '%s' failed", job->handler);
        return false;
    case JOBQ_CAUSE_REJECTED: jobq_job_set_failed(job, "%s", why); return false;
    case JOBQ_CAUSE_TIMED_OUT:
        jobq_job_set_failed(job, "timed out after %g s (worker %s)", job->timeout, why);
        return false;
    case JOBQ_CAUSE_CANCELLED: jobq_job_set_failed(job, "cancelled"); return false;
    case JOBQ_CAUSE_DIED:
        if (job->deaths + 1 >= policy->poison_limit)
            jobq_job_set_failed(job, "poison job: took its worker down %d times; last: worker died: %s",
                                job->deaths + 1, why);
        else
            jobq_job_set_failed(job, "worker died: %s", why);
        return true;
    }
    return false;
}

static enum jobq_outcome_kind decide(const struct jobq_job *job, enum jobq_outcome_cause cause,
                                     bool died, const jobq_outcome_policy *policy) {
    if (cause == JOBQ_CAUSE_REJECTED) return JOBQ_OUTCOME_REJECTED;
    if (cause == JOBQ_CAUSE_CANCELLED) return JOBQ_OUTCOME_CANCELLED;
    if (!job->failed) return JOBQ_OUTCOME_OK;
    bool poison = died && job->deaths + 1 >= policy->poison_limit;
    return !poison && job->attempt < job->max_attempts ? JOBQ_OUTCOME_RETRY : JOBQ_OUTCOME_FAILED;
}

int jobq_outcome_build(jobq_outcome *out, struct jobq_job *job, enum jobq_outcome_cause cause,
                       const char *why, const jobq_outcome_policy *policy, const char *worker,
                       double now) {
    memset(out, 0, sizeof *out);
    bool died = mark_failure(job, cause, why, policy);
    out->kind = decide(job, cause, died, policy);
    out->payload = job->raw;
    out->payload_len = job->raw_len;
    out->result_ttl = job->result_ttl;
    /* NULL only when memory ran out (a job to retry parsed): failing it for
     * good would spend the attempts it has left on a lack of memory, so it
     * stays in flight like any outcome that cannot be built. */
    if (out->kind == JOBQ_OUTCOME_RETRY) {
        out->retry_delay = jobq_backoff_retry(job->attempt, policy->backoff_base, policy->backoff_max,
                                              jobq_random01());
        out->retry_at = now + out->retry_delay;
        if (!(out->retry_payload = jobq_doc_retry_payload(job, job->error, died, out->retry_at))) {
            jobq_outcome_fini(out);
            return -1;
        }
    }
    bool final = out->kind != JOBQ_OUTCOME_RETRY;
    /* A rejected payload without its own id has no result: nobody can ask. */
    bool result = out->kind != JOBQ_OUTCOME_RETRY && !(out->kind == JOBQ_OUTCOME_REJECTED && job->id_assigned);
    bool dead = out->kind == JOBQ_OUTCOME_FAILED || out->kind == JOBQ_OUTCOME_REJECTED;
    if (job->finished_at <= 0) job->finished_at = now;
    if (result) {
        out->id = job->id;
        out->result_json = jobq_doc_result(job, worker);
    }
    if (dead) out->dead_json = jobq_doc_dead(job, job->error, now);
    out->event_json = jobq_doc_event(job, jobq_outcome_event_name(out->kind), worker, now);
    /* The counters count jobs that ran to an end; a cancelled one did not. */
    out->finished = final && out->kind != JOBQ_OUTCOME_CANCELLED;
    out->failed = out->finished && out->kind != JOBQ_OUTCOME_OK;
    if (final && job->unique) out->unique_id = job->id;
    out->wait_seconds = out->run_seconds = -1;
    if (out->kind != JOBQ_OUTCOME_REJECTED && job->handler && job->started_at > 0) {
        out->handler = job->handler;
        /* The wait of this attempt: since it was queued again (a retry's
         * due time, a dead job's retry), else since enqueued. A payload
         * without enqueued_at (a plain RPUSH) was given its start time as
         * parsed: its wait is not known. */
        double since = job->queued_at > 0 ? job->queued_at : job->enqueued_at != job->started_at ? job->enqueued_at : 0;
        if (since > 0) out->wait_seconds = job->started_at > since ? job->started_at - since : 0;
        out->run_seconds = job->finished_at > job->started_at ? job->finished_at - job->started_at : 0;
    }
    if ((result && !out->result_json) || (dead && !out->dead_json)) {
        jobq_outcome_fini(out);
        return -1;
    }
    return 0;
}

void jobq_outcome_fini(jobq_outcome *out) {
    free(out->result_json);
    free(out->event_json);
    free(out->dead_json);
    free(out->retry_payload);
    memset(out, 0, sizeof *out);
}
