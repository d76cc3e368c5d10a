/*
 * Dependencies (see depends.h). A job is parked only after its own check
 * found a dependency pending, and checked again right after parking: a
 * dependency that ended in between (its commit found nobody waiting) is
 * seen then, so no job stays parked for a dependency that has ended. The
 * results are what tells: a job's result is written before its commit,
 * and only once it ended for good.
 */
#include "daemon/depends.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "protocol/depends.h"
#include "protocol/queue.h"

/* ids of a depends_on array (borrowed from it), n of them. */
static size_t dep_ids(json_t *deps, const char **ids) {
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(deps) && n < JOBQ_DEPENDS_MAX; i++) {
        const char *id = json_string_value(json_array_get(deps, i));
        if (id) ids[n++] = id;
    }
    return n;
}

/* How many of ids are still pending; the first failed one into why. */
static int check(jobq_redis *r, const char *prefix, const char **ids, size_t n, const char **pending,
                 size_t *npending, char *why, size_t why_size, jobq_err *err) {
    enum jobq_dep_state states[JOBQ_DEPENDS_MAX];
    char whys[JOBQ_DEPENDS_MAX][200];
    if (jobq_depends_states(r, prefix, ids, n, states, whys, err) != 0) return -1;
    *npending = 0;
    for (size_t i = 0; i < n; i++) {
        if (states[i] == JOBQ_DEP_FAILED) {
            snprintf(why, why_size, "dependency '%s' %s", ids[i], whys[i]);
            return JOBQ_GATE_FAIL;
        }
        if (states[i] == JOBQ_DEP_PENDING) pending[(*npending)++] = ids[i];
    }
    return *npending ? JOBQ_GATE_SKIP : JOBQ_GATE_RUN;
}

int jobq_depends_gate(jobq_redis *r, const jobq_qkeys *k, const struct jobq_job *job, char *why, size_t why_size,
                      jobq_err *err) {
    const char *ids[JOBQ_DEPENDS_MAX], *pending[JOBQ_DEPENDS_MAX];
    size_t n = dep_ids(job->depends_on, ids), npending = 0;
    int g = check(r, k->prefix, ids, n, pending, &npending, why, why_size, err);
    if (g != JOBQ_GATE_SKIP) return g;
    int parked = jobq_depends_park(r, k, job->raw, job->raw_len, job->id, pending, npending, err);
    if (parked < 0) return -1;
    if (parked == 0) return JOBQ_GATE_SKIP; /* not in flight any more: not ours */
    jobq_log_info("waiting for %zu of %zu dependenc%s (first: %s)", npending, n, n == 1 ? "y" : "ies", pending[0]);
    /* Ended meanwhile? Then nobody would release it: do it now. */
    const char *still[JOBQ_DEPENDS_MAX];
    size_t nstill = 0;
    char ignored[300];
    if (check(r, k->prefix, pending, npending, still, &nstill, ignored, sizeof ignored, err) < 0) return -1;
    if (nstill == 0 && jobq_depends_release(r, k, job->id, err) < 0) return -1;
    return JOBQ_GATE_SKIP;
}

/* Release parked job id (payload text) when none of its dependencies is
 * pending. 1 released, 0 not, -1 with err. */
static int maybe_release(jobq_redis *r, const jobq_qkeys *k, const char *id, const char *payload, size_t len,
                         jobq_err *err) {
    json_t *doc = json_loadb(payload, len, 0, NULL);
    const char *ids[JOBQ_DEPENDS_MAX], *pending[JOBQ_DEPENDS_MAX];
    size_t n = dep_ids(json_object_get(doc, "depends_on"), ids), npending = 0;
    char why[300];
    int rc = 0;
    /* A payload that cannot say what it waits for goes back too: its
     * worker judges it. */
    int g = n ? check(r, k->prefix, ids, n, pending, &npending, why, sizeof why, err) : JOBQ_GATE_RUN;
    if (g < 0) rc = -1;
    else if (g != JOBQ_GATE_SKIP) rc = jobq_depends_release(r, k, id, err);
    json_decref(doc);
    return rc;
}

long jobq_depends_sweep(jobq_redis *r, const jobq_qkeys *k, unsigned long long *cursor, jobq_err *err) {
    long released = 0;
    size_t walked = 0;
    do {
        char **ids, **payloads;
        size_t *lens, n;
        if (jobq_depends_scan(r, k, cursor, &ids, &payloads, &lens, &n, err) != 0) return -1;
        int rc = 0;
        for (size_t i = 0; i < n && rc >= 0; i++) {
            rc = maybe_release(r, k, ids[i], payloads[i], lens[i], err);
            if (rc > 0) released++;
        }
        walked += n;
        jobq_queue_free_list(ids, NULL, n);
        jobq_queue_free_list(payloads, lens, n);
        if (rc < 0) return -1;
    } while (*cursor != 0 && walked < JOBQ_SWEEP_MAX);
    return released;
}
