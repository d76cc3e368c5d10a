/*
 * The daemon's queue operations over a jobq_redis (see queue.h). Each call
 * touches the keys of one queue only, through the scripts of scripts.c or
 * single-key commands; replies are checked for shape before use.
 */
#include "protocol/queue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "protocol/histo.h"
#include "protocol/keys.h"
#include "protocol/redis_internal.h"

static int unexpected(jobq_err *err, const char *what) {
    jobq_err_set(err, JOBQ_E_REPLY, "%s: unexpected reply", what);
    return -1;
}

/* ---- worker side ---- */

void jobq_taken_fini(jobq_taken *t) {
    if (t->reply) freeReplyObject(t->reply);
    free(t->payloads);
    free(t->lens);
    memset(t, 0, sizeof *t);
}

/* Point out's items at the string elements reply->element[from..]. */
static int hold_items(jobq_taken *out, redisReply *reply, size_t from, jobq_err *err) {
    size_t n = reply->elements - from;
    out->reply = reply;
    out->payloads = calloc(n ? n : 1, sizeof *out->payloads);
    out->lens = calloc(n ? n : 1, sizeof *out->lens);
    if (!out->payloads || !out->lens) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *e = reply->element[from + i];
        if (e->type != REDIS_REPLY_STRING) return unexpected(err, "take");
        out->payloads[i] = e->str;
        out->lens[i] = e->len;
    }
    out->n = n;
    return 0;
}

static int fenced(jobq_err *err, const char *daemon_id, const char *queue) {
    jobq_err_set(err, JOBQ_E_FENCED, "the lease of daemon %s on queue %s has lapsed", daemon_id, queue);
    return -1;
}

/* The take script's KEYS and ARGV, and the strings they point into. */
typedef struct take_call {
    char maxs[16], shares[16], conc[16], rate_n[24], rate_ms[32];
    const char *keys[6], *args[8];
} take_call;

static void take_call_make(take_call *c, const jobq_qkeys *k, const char *daemon_id, int max, int share_among,
                           const jobq_flow_limits *limits) {
    jobq_flow_limits none = {0, 0, 0};
    if (!limits) limits = &none;
    snprintf(c->maxs, sizeof c->maxs, "%d", max > 0 ? max : 1);
    snprintf(c->shares, sizeof c->shares, "%d", share_among > 1 ? share_among : 1);
    snprintf(c->conc, sizeof c->conc, "%d", limits->concurrency > 0 ? limits->concurrency : 0);
    snprintf(c->rate_n, sizeof c->rate_n, "%ld", limits->rate_n > 0 ? limits->rate_n : 0);
    snprintf(c->rate_ms, sizeof c->rate_ms, "%.3f", limits->rate_period * 1000);
    const char *keys[] = {k->queue, k->inflight, k->leases, k->paused, k->running, k->starts};
    const char *args[] = {c->maxs, c->shares, daemon_id, c->conc, c->rate_n, c->rate_ms, k->events, k->publish};
    memcpy(c->keys, keys, sizeof keys);
    memcpy(c->args, args, sizeof args);
}

/* Read the take script's reply into out (which then owns it). */
static int read_take(redisReply *reply, const jobq_qkeys *k, const char *daemon_id, jobq_taken *out,
                     jobq_err *err) {
    long long left, lease_ms = 0, wait = 0;
    if (!jobq_reply_is_array(reply, 1) || !jobq_reply_integer(reply->element[0], &left) ||
        (left >= 0 && (reply->elements < 3 || !jobq_reply_integer(reply->element[1], &lease_ms) ||
                       !jobq_reply_integer(reply->element[2], &wait)))) {
        freeReplyObject(reply);
        return unexpected(err, "take");
    }
    if (left < 0) {
        freeReplyObject(reply);
        return fenced(err, daemon_id, k->name);
    }
    out->still_waiting = left;
    out->lease_left = (double)lease_ms / 1000;
    out->paused = wait < 0;
    out->wait = wait > 0 ? (double)wait / 1000 : 0;
    long long heard = 1;
    bool empty = reply->elements == 3; /* nothing taken */
    if (empty || !jobq_reply_integer(reply->element[3], &heard)) {
        freeReplyObject(reply);
        return empty ? 0 : unexpected(err, "take");
    }
    out->unheard = heard == 0;
    if (hold_items(out, reply, 4, err) != 0) {
        jobq_taken_fini(out);
        return -1;
    }
    return 0;
}

int jobq_queue_take(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, int max, int share_among,
                    const jobq_flow_limits *limits, jobq_taken *out, jobq_err *err) {
    memset(out, 0, sizeof *out);
    take_call c;
    take_call_make(&c, k, daemon_id, max, share_among, limits);
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_TAKE, 6, c.keys, 8, c.args, NULL);
    return reply ? read_take(reply, k, daemon_id, out, err) : -1;
}

/* The blocking take's commands: BLMOVE into the in-flight list, the
 * confirm script right after it, and an LLEN that tells the worker whether
 * more jobs wait (take a batch next) or not (block again at once), all in
 * one round trip. */
/* The confirm script's KEYS and ARGV. */
typedef struct confirm_call {
    const char *keys[4], *args[3];
} confirm_call;

static void confirm_call_make(confirm_call *c, const jobq_qkeys *k, const char *daemon_id) {
    const char *keys[] = {k->leases, k->inflight, k->queue, k->paused};
    const char *args[] = {daemon_id, k->events, k->publish};
    memcpy(c->keys, keys, sizeof keys);
    memcpy(c->args, args, sizeof args);
}

typedef struct blocking_call {
    char secs[32];
    const char *blmove[6], *llen[2];
    confirm_call confirm;
    jobq_cmd cmds[3]; /* cmds[1] owns its EVALSHA: release with jobq_cmd_fini */
} blocking_call;

static int blocking_call_make(blocking_call *c, jobq_redis *r, const jobq_qkeys *k, const char *daemon_id,
                              double block, jobq_err *err) {
    snprintf(c->secs, sizeof c->secs, "%.3f", block);
    const char *blmove[] = {"BLMOVE", k->queue, k->inflight, "LEFT", "RIGHT", c->secs};
    const char *llen[] = {"LLEN", k->queue};
    memcpy(c->blmove, blmove, sizeof blmove);
    memcpy(c->llen, llen, sizeof llen);
    confirm_call_make(&c->confirm, k, daemon_id);
    c->cmds[0] = (jobq_cmd){.route = k->queue, .argc = 6, .argv = c->blmove};
    c->cmds[2] = (jobq_cmd){.route = k->queue, .argc = 2, .argv = c->llen};
    return jobq_redis_eval_cmd(r, err, JOBQ_SCRIPT_CONFIRM, 4, c->confirm.keys, 3, c->confirm.args, NULL,
                               &c->cmds[1]);
}

/* Read the blocking take's three replies (freed here) into out. */
static int read_blocking(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, redisReply **replies,
                         jobq_taken *out, jobq_err *err) {
    redisReply *moved = replies[0], *confirm = replies[1];
    long long waiting = 0;
    if (jobq_reply_integer(replies[2], &waiting)) out->still_waiting = waiting;
    freeReplyObject(replies[2]);
    if (jobq_reply_is_noscript(confirm)) {
        /* The server lost the script between load and call: run it alone. */
        freeReplyObject(confirm);
        confirm_call cc;
        confirm_call_make(&cc, k, daemon_id);
        confirm = jobq_redis_eval(r, err, JOBQ_SCRIPT_CONFIRM, 4, cc.keys, 3, cc.args, NULL);
        if (!confirm) {
            freeReplyObject(moved);
            return -1;
        }
    }
    int rc = 0;
    long long lease_ms = -1, heard = 1;
    bool confirmed = jobq_reply_is_array(confirm, 2) && jobq_reply_integer(confirm->element[0], &lease_ms) &&
                     jobq_reply_integer(confirm->element[1], &heard) && lease_ms >= 0;
    if (moved->type == REDIS_REPLY_ERROR) rc = jobq_redis_reply_error(err, "BLMOVE", moved);
    else if (confirm->type == REDIS_REPLY_ERROR) rc = jobq_redis_reply_error(err, "confirm", confirm);
    else if (confirmed) {
        out->lease_left = (double)lease_ms / 1000;
        out->unheard = heard == 0;
    } else if (!jobq_reply_integer(confirm, &lease_ms) || lease_ms >= 0) rc = unexpected(err, "confirm");
    else if (lease_ms == -2) out->paused = true; /* what it moved is back on the queue */
    else rc = fenced(err, daemon_id, k->name);
    freeReplyObject(confirm);
    if (rc == 0 && !out->paused && moved->type == REDIS_REPLY_STRING) {
        out->reply = moved;
        out->payloads = malloc(sizeof *out->payloads);
        out->lens = malloc(sizeof *out->lens);
        if (!out->payloads || !out->lens) {
            /* The job is in the in-flight list: the caller puts it back. */
            jobq_taken_fini(out);
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            return -1;
        }
        out->payloads[0] = moved->str;
        out->lens[0] = moved->len;
        out->n = 1;
        return 0;
    }
    freeReplyObject(moved);
    return rc;
}

int jobq_queue_take_blocking(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, double block,
                             jobq_taken *out, jobq_err *err) {
    memset(out, 0, sizeof *out);
    blocking_call c;
    if (blocking_call_make(&c, r, k, daemon_id, block, err) != 0) return -1;
    redisReply *replies[3];
    int rc = jobq_redis_pipeline(r, err, "BLMOVE", c.cmds, 3, block, replies);
    jobq_cmd_fini(&c.cmds[1]);
    return rc == 0 ? read_blocking(r, k, daemon_id, replies, out, err) : -1;
}

int jobq_queue_take_blocking_finish(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, double block,
                                    jobq_taken *out, jobq_err *err) {
    memset(out, 0, sizeof *out);
    redisReply *replies[3];
    if (jobq_redis_read_deferred(r, err, "BLMOVE", block, 3, replies) != 0) return -1;
    return read_blocking(r, k, daemon_id, replies, out, err);
}

int jobq_queue_register(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, jobq_err *err) {
    const char *argv[] = {"HSET", k->holders, k->inflight, daemon_id};
    redisReply *reply = jobq_redis_call(r, err, "register in-flight list", k->holders, 4, argv, NULL);
    if (!reply) return -1;
    freeReplyObject(reply);
    return 0;
}

/* The result SETs of a batch's outcomes (only for the jobs still held,
 * when held is given), as pipeline commands, and their storage. */
typedef struct result_cmds {
    jobq_cmd *cmds;
    char (*keys)[JOBQ_KEY_MAX];
    char (*ttls)[24];
    const char *(*argvs)[5];
    size_t n;
} result_cmds;

static void result_cmds_free(result_cmds *rs) {
    free(rs->cmds);
    free(rs->keys);
    free(rs->ttls);
    free(rs->argvs);
    memset(rs, 0, sizeof *rs);
}

static int result_cmds_make(result_cmds *rs, const jobq_qkeys *k, const jobq_outcome *outs, const bool *held,
                            size_t n, jobq_err *err) {
    memset(rs, 0, sizeof *rs);
    rs->cmds = calloc(n ? n : 1, sizeof *rs->cmds);
    rs->keys = calloc(n ? n : 1, sizeof *rs->keys);
    rs->ttls = calloc(n ? n : 1, sizeof *rs->ttls);
    rs->argvs = calloc(n ? n : 1, sizeof *rs->argvs);
    if (!rs->cmds || !rs->keys || !rs->ttls || !rs->argvs) {
        result_cmds_free(rs);
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!outs[i].id || !outs[i].result_json || (held && !held[i])) continue;
        size_t m = rs->n++;
        jobq_key_result(rs->keys[m], sizeof rs->keys[m], k->prefix, outs[i].id);
        snprintf(rs->ttls[m], sizeof rs->ttls[m], "%d", outs[i].result_ttl > 0 ? outs[i].result_ttl : 86400);
        const char *argv[] = {"SET", rs->keys[m], outs[i].result_json, "EX", rs->ttls[m]};
        memcpy(rs->argvs[m], argv, sizeof argv);
        rs->cmds[m] = (jobq_cmd){.route = rs->keys[m], .argc = 5, .argv = rs->argvs[m]};
    }
    return 0;
}

/* The first error among the replies to the result SETs (err set), or 0. */
static int results_refused(redisReply *const *replies, size_t n, jobq_err *err) {
    for (size_t i = 0; i < n; i++)
        if (replies[i]->type == REDIS_REPLY_ERROR) return jobq_redis_reply_error(err, "writing a result", replies[i]);
    return 0;
}

/* Write the results of outs (one pipeline), then WAIT for [redis]
 * wait_replicas: durable before the jobs leave their in-flight list. 0
 * when every one was written. */
static int write_results(jobq_redis *r, const jobq_qkeys *k, const jobq_outcome *outs, const bool *held,
                         size_t n, jobq_err *err) {
    result_cmds rs;
    if (result_cmds_make(&rs, k, outs, held, n, err) != 0) return -1;
    redisReply **replies = calloc(rs.n ? rs.n : 1, sizeof *replies);
    const char **routes = calloc(rs.n ? rs.n : 1, sizeof *routes);
    int rc = -1;
    if (!replies || !routes) jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    else if (jobq_redis_pipeline(r, err, "writing a result", rs.cmds, rs.n, 0, replies) == 0) {
        rc = results_refused(replies, rs.n, err);
        for (size_t i = 0; i < rs.n; i++) {
            freeReplyObject(replies[i]);
            routes[i] = rs.keys[i];
        }
        if (rc == 0) rc = jobq_redis_wait(r, routes, rs.n, err);
    }
    free(replies);
    free(routes);
    result_cmds_free(&rs);
    return rc;
}

int jobq_queue_write_results(jobq_redis *r, const jobq_qkeys *k, const jobq_outcome *outs, size_t n,
                             jobq_err *err) {
    return write_results(r, k, outs, NULL, n, err);
}

/* held[i]: is outs[i]'s job still in k's in-flight list? And how long does
 * check->daemon_id's lease on the queue still run (Redis time)? One
 * pipeline: an LPOS per job, the lease's ZSCORE and TIME, all on the
 * queue's node. */
static int check_flight(jobq_redis *r, const jobq_qkeys *k, const jobq_outcome *outs, size_t n,
                        const jobq_commit_check *check, bool *held, double *lease_left, jobq_err *err) {
    size_t m = n + 2;
    jobq_cmd *cmds = calloc(m, sizeof *cmds);
    redisReply **replies = calloc(m, sizeof *replies);
    const char *(*argvs)[3] = calloc(m, sizeof *argvs);
    size_t(*lens)[3] = calloc(m, sizeof *lens);
    int rc = -1;
    if (!cmds || !replies || !argvs || !lens) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        argvs[i][0] = "LPOS";
        argvs[i][1] = k->inflight;
        argvs[i][2] = outs[i].payload;
        lens[i][0] = 4;
        lens[i][1] = strlen(k->inflight);
        lens[i][2] = outs[i].payload_len;
        cmds[i] = (jobq_cmd){.route = k->inflight, .argc = 3, .argv = argvs[i], .lens = lens[i]};
    }
    argvs[n][0] = "ZSCORE";
    argvs[n][1] = k->leases;
    argvs[n][2] = check->daemon_id;
    cmds[n] = (jobq_cmd){.route = k->leases, .argc = 3, .argv = argvs[n]};
    argvs[n + 1][0] = "TIME";
    cmds[n + 1] = (jobq_cmd){.route = k->leases, .argc = 1, .argv = argvs[n + 1]};
    if (jobq_redis_pipeline(r, err, "checking jobs in flight", cmds, m, 0, replies) != 0) goto out;
    rc = 0;
    for (size_t i = 0; i < m; i++)
        if (replies[i]->type == REDIS_REPLY_ERROR && rc == 0)
            rc = jobq_redis_reply_error(err, "checking jobs in flight", replies[i]);
    for (size_t i = 0; i < n; i++) held[i] = replies[i]->type == REDIS_REPLY_INTEGER;
    const redisReply *lease = replies[n], *time = replies[n + 1];
    *lease_left = -1;
    if (rc == 0 && jobq_reply_is_string(lease) && jobq_reply_is_array(time, 2) &&
        jobq_reply_is_string(time->element[0]) && jobq_reply_is_string(time->element[1]))
        *lease_left = (strtod(lease->str, NULL) - (strtod(time->element[0]->str, NULL) * 1000 +
                                                   strtod(time->element[1]->str, NULL) / 1000)) / 1000;
    for (size_t i = 0; i < m; i++) freeReplyObject(replies[i]);
out:
    free(cmds);
    free(replies);
    free(argvs);
    free(lens);
    return rc;
}

/* The counter flags of an outcome (see the commit script). */
static const char *outcome_flags(const jobq_outcome *o) {
    switch (o->kind) {
    case JOBQ_OUTCOME_OK: return o->finished ? "f" : "";
    case JOBQ_OUTCOME_RETRY: return "r";
    case JOBQ_OUTCOME_FAILED: return "fx";
    case JOBQ_OUTCOME_REJECTED: return "fxd";
    case JOBQ_OUTCOME_CANCELLED: return "c";
    }
    return "";
}

/* The commit script's KEYS and ARGV for n outcomes, and their storage. */
typedef struct commit_call {
    const char **args, **keys;
    size_t *lens, nargs, nkeys;
    char *dues;
    char (*flags)[12];
    char (*links)[JOBQ_KEY_MAX]; /* per job: its waiters, its batch */
    char **histo;
    size_t nhisto;
    char count[24];
} commit_call;

static void commit_call_free(commit_call *c) {
    free(c->args);
    free(c->lens);
    free(c->dues);
    free(c->flags);
    free(c->keys);
    free(c->links);
    jobq_histo_args_free(c->histo, c->nhisto);
}

static int commit_call_make(commit_call *c, const jobq_qkeys *k, const jobq_outcome *outs, size_t n,
                            const jobq_histo_acc *histo, jobq_err *err) {
    memset(c, 0, sizeof *c);
    if ((histo ? jobq_histo_args(histo, &c->histo, &c->nhisto) : jobq_histo_batch(outs, n, &c->histo, &c->nhisto)) !=
        0) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    /* ARGV: 3, 7 per job, the n ids, the histogram pairs; KEYS: 9 fixed,
     * then per job its waiters and its batch (see the commit script). */
    size_t njobs = 3 + 8 * n;
    c->nargs = njobs + c->nhisto;
    c->nkeys = 9 + 2 * n;
    c->args = calloc(c->nargs, sizeof *c->args);
    c->lens = calloc(c->nargs, sizeof *c->lens);
    c->dues = calloc(n, 32);
    c->flags = calloc(n, sizeof *c->flags);
    c->keys = calloc(c->nkeys, sizeof *c->keys);
    c->links = calloc(2 * n, sizeof *c->links);
    if (!c->args || !c->lens || !c->dues || !c->flags || !c->keys || !c->links) {
        commit_call_free(c);
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    snprintf(c->count, sizeof c->count, "%zu", n);
    c->args[0] = k->events;
    c->args[1] = k->publish;
    c->args[2] = c->count;
    for (size_t i = 0; i < n; i++) {
        const jobq_outcome *o = &outs[i];
        const char **a = c->args + 3 + 7 * i;
        char *due = c->dues + 32 * i;
        if (o->retry_payload) snprintf(due, 32, "%.6f", o->retry_at);
        a[0] = o->payload;
        bool ended = o->ended && o->id; /* with an id: others may wait for it */
        snprintf(c->flags[i], sizeof c->flags[i], "%s%s%s%s", outcome_flags(o), ended ? "e" : "",
                 ended && o->kind == JOBQ_OUTCOME_OK ? "k" : "", ended && o->batch_id ? "b" : "");
        a[1] = c->flags[i];
        a[2] = o->dead_json ? o->dead_json : "";
        a[3] = due;
        a[4] = o->retry_payload ? o->retry_payload : "";
        a[5] = o->event_json ? o->event_json : "";
        a[6] = o->unique_id ? o->unique_id : "";
        c->args[3 + 7 * n + i] = ended ? o->id : "";
        jobq_key(c->links[2 * i], JOBQ_KEY_MAX, k->prefix, JOBQ_KEY_WAITERS, k->name, ended ? o->id : "");
        jobq_key(c->links[2 * i + 1], JOBQ_KEY_MAX, k->prefix, JOBQ_KEY_BATCH, k->name,
                 ended && o->batch_id ? o->batch_id : "");
        c->keys[9 + 2 * i] = c->links[2 * i];
        c->keys[10 + 2 * i] = c->links[2 * i + 1];
    }
    for (size_t i = 0; i < c->nhisto; i++) c->args[njobs + i] = c->histo[i];
    for (size_t i = 0; i < c->nargs; i++) c->lens[i] = strlen(c->args[i]);
    for (size_t i = 0; i < n; i++) c->lens[3 + 7 * i] = outs[i].payload_len;
    const char *fixed[] = {k->inflight, k->dead, k->scheduled, k->stats, k->unique,
                           k->histo, k->queue, k->parked, k->running};
    memcpy(c->keys, fixed, sizeof fixed);
    return 0;
}

/* Read the reply of the take that rode with a commit into next. */
static void read_next_take(const jobq_qkeys *k, redisReply *reply, jobq_take_next *next) {
    jobq_err take_err; /* unused: a take that failed here fails again, and is told, at the next take */
    next->sent = !jobq_reply_is_noscript(reply); /* else it did not run: nothing taken */
    if (!next->sent) freeReplyObject(reply);
    else if (reply->type == REDIS_REPLY_ERROR) {
        next->rc = jobq_redis_reply_error(&take_err, "take", reply);
        freeReplyObject(reply);
    } else {
        next->rc = read_take(reply, k, next->daemon_id, &next->taken, &take_err);
    }
}

/* One round trip: the result SETs rs (may be NULL), the script c, and the
 * take next (may be NULL) right after it. The script's reply, or NULL with
 * err. *unwritten: the script ran but Redis refused a result (err says
 * why); only possible with rs, sent where commands run in the order sent,
 * so that a refusal of the script's first write follows a maxmemory
 * refusal of a SET (see the commit script). */
static redisReply *send_commit(jobq_redis *r, const jobq_qkeys *k, const result_cmds *rs, const commit_call *c,
                               jobq_take_next *next, bool *unwritten, jobq_err *err) {
    bool blocking = next && next->block > 0;
    size_t nres = rs ? rs->n : 0, n = nres + 1 + (next ? (blocking ? 3 : 1) : 0);
    jobq_cmd *cmds = calloc(n, sizeof *cmds);
    redisReply **replies = calloc(n, sizeof *replies);
    redisReply *reply = NULL;
    *unwritten = false;
    if (!cmds || !replies) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    if (nres) memcpy(cmds, rs->cmds, nres * sizeof *cmds);
    if (jobq_redis_eval_cmd(r, err, JOBQ_SCRIPT_COMMIT, (int)c->nkeys, c->keys, (int)c->nargs, c->args, c->lens,
                            &cmds[nres]) != 0)
        goto out;
    take_call t;
    blocking_call b;
    int made = 0;
    if (next && !blocking) {
        take_call_make(&t, k, next->daemon_id, next->max, next->share_among, NULL);
        made = jobq_redis_eval_cmd(r, err, JOBQ_SCRIPT_TAKE, 6, t.keys, 8, t.args, NULL, &cmds[nres + 1]);
    } else if (blocking && (made = blocking_call_make(&b, r, k, next->daemon_id, next->block, err)) == 0) {
        memcpy(&cmds[nres + 1], b.cmds, sizeof b.cmds);
    }
    if (made != 0) {
        jobq_cmd_fini(&cmds[nres]);
        goto out;
    }
    /* A blocking take's replies are left for jobq_queue_take_blocking_finish. */
    int rc = blocking ? jobq_redis_pipeline_defer(r, err, "commit", cmds, n, nres + 1, replies)
                      : jobq_redis_pipeline(r, err, "commit", cmds, n, 0, replies);
    jobq_cmd_fini(&cmds[nres]);
    if (next) jobq_cmd_fini(&cmds[nres + (blocking ? 2 : 1)]);
    if (rc != 0) { /* a take may have run, its reply lost */
        if (next) {
            next->sent = true;
            next->rc = -1;
        }
        goto out;
    }
    if (blocking) next->sent = next->deferred = true;
    else if (next) read_next_take(k, replies[nres + 1], next);
    jobq_err refusal;
    int refused = results_refused(replies, nres, &refusal);
    for (size_t i = 0; i < nres; i++) freeReplyObject(replies[i]);
    reply = replies[nres];
    if (jobq_reply_is_noscript(reply) && blocking) {
        /* Nothing more can go on this connection before the take's replies:
         * sent again (and the script loaded again) on a fresh one. */
        freeReplyObject(reply);
        reply = NULL;
        jobq_err_set(err, JOBQ_E_IO, "commit: Redis lost jobq's scripts (SCRIPT FLUSH, or a restart); "
                     "reconnecting to send it again");
    } else if (jobq_reply_is_noscript(reply)) { /* the server lost it: loaded again, alone */
        freeReplyObject(reply);
        reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_COMMIT, (int)c->nkeys, c->keys, (int)c->nargs, c->args, c->lens);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        jobq_redis_reply_error(err, "commit", reply);
        freeReplyObject(reply);
        reply = NULL;
    }
    if (refused) {
        *err = refusal; /* the cause, whether or not the script ran */
        *unwritten = reply != NULL;
    }
out:
    free(cmds);
    free(replies);
    return reply;
}

/* The commit's round trips: with check, which jobs are still held and how
 * long the lease runs; the results (and their WAIT); then the script c,
 * with the take next when given. Where commands run in the order sent and
 * count as done without a WAIT, the results ride with the script, unless
 * results_alone. The script's reply, or NULL with err (*unwritten: see
 * send_commit). */
static redisReply *write_and_commit(jobq_redis *r, const jobq_qkeys *k, const jobq_outcome *outs, size_t n,
                                    const jobq_commit_check *check, bool results_alone, const commit_call *c,
                                    jobq_take_next *next, bool *unwritten, jobq_err *err) {
    *unwritten = false;
    if (!check && !results_alone && jobq_redis_in_order(r)) {
        result_cmds rs;
        if (result_cmds_make(&rs, k, outs, NULL, n, err) != 0) return NULL;
        redisReply *reply = send_commit(r, k, &rs, c, next, unwritten, err);
        result_cmds_free(&rs);
        return reply;
    }
    bool *held = check ? calloc(n, sizeof *held) : NULL;
    if (check && !held) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return NULL;
    }
    double lease_left = 0;
    int wrote = check ? check_flight(r, k, outs, n, check, held, &lease_left, err) : 0;
    bool any_held = false;
    for (size_t i = 0; check && i < n; i++) any_held = any_held || held[i];
    if (wrote == 0 && check && any_held && lease_left < check->min_lease) {
        /* A result write that hangs past the lease could land after
         * another daemon recorded the job's outcome: wait for the renewal. */
        jobq_err_set(err, JOBQ_E_FENCED, "the lease on queue %s runs %.1f s more, under the %.1f s a write may "
                     "take: outcomes wait for its renewal", k->name, lease_left, check->min_lease);
        wrote = -1;
    }
    if (wrote == 0) wrote = write_results(r, k, outs, held, n, err);
    free(held);
    if (wrote != 0) return NULL;
    return send_commit(r, k, NULL, c, next, unwritten, err);
}

int jobq_queue_commit(jobq_redis *r, const jobq_qkeys *k, const jobq_outcome *outs, size_t n,
                      const jobq_commit_opts *opts, jobq_commit_report *report, jobq_err *err) {
    const jobq_commit_check *check = opts ? opts->check : NULL;
    jobq_take_next *next = opts ? opts->next : NULL;
    jobq_commit_report ignored;
    if (!report) report = &ignored;
    memset(report, 0, sizeof *report);
    if (next) {
        next->sent = next->deferred = false;
        next->rc = 0;
        memset(&next->taken, 0, sizeof next->taken);
    }
    if (n == 0) return 0;
    if (check || (next && next->block > 0 && !jobq_redis_in_order(r))) next = NULL;
    commit_call call;
    if (commit_call_make(&call, k, outs, n, opts ? opts->histo : NULL, err) != 0) return -1;
    redisReply *reply = write_and_commit(r, k, outs, n, check, opts && opts->results_alone, &call, next,
                                         &report->unwritten, err);
    commit_call_free(&call);
    if (!reply) return -1;
    int rc = 0;
    if (reply->type != REDIS_REPLY_ARRAY) rc = unexpected(err, "commit");
    else report->skipped = reply->elements;
    freeReplyObject(reply);
    if (report->unwritten) return -1; /* err: why a result was refused */
    const char *route = k->inflight;
    return rc == 0 ? jobq_redis_wait(r, &route, 1, err) : rc;
}

long jobq_queue_requeue(jobq_redis *r, const jobq_qkeys *k, bool unregister, jobq_err *err) {
    const char *keys[] = {k->inflight, k->queue, k->holders, k->running};
    const char *args[] = {unregister ? "1" : "0"};
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_REQUEUE, 4, keys, 1, args, NULL);
    if (!reply) return -1;
    long long n = 0;
    bool ok = jobq_reply_integer(reply, &n);
    freeReplyObject(reply);
    return ok ? (long)n : unexpected(err, "requeue");
}

/* ---- supervisor side ---- */

int jobq_queue_lease(jobq_redis *r, const jobq_qkeys *k, const char *daemon_id, double ttl,
                     const char *const *lists, int n, int *previous, jobq_err *err) {
    const char **args = calloc((size_t)n + 2, sizeof *args);
    if (!args) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    char ms[32];
    snprintf(ms, sizeof ms, "%lld", (long long)llround(ttl * 1000));
    args[0] = daemon_id;
    args[1] = ms;
    for (int i = 0; i < n; i++) args[2 + i] = lists[i];
    const char *keys[] = {k->leases, k->holders};
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_LEASE, 2, keys, n + 2, args, NULL);
    free(args);
    if (!reply) return -1;
    long long v = 0;
    bool ok = jobq_reply_integer(reply, &v);
    freeReplyObject(reply);
    if (!ok) return unexpected(err, "lease");
    *previous = (int)v;
    return 0;
}

void jobq_queue_free_list(char **items, size_t *lens, size_t n) {
    for (size_t i = 0; items && i < n; i++) free(items[i]);
    free(items);
    free(lens);
}

/* Copy the elements reply->element[from], [from + step]... (strings; any
 * other type as ""). */
static int copy_array(const redisReply *reply, size_t from, size_t step, char ***items, size_t **lens,
                      size_t *n, jobq_err *err) {
    size_t count = reply->elements > from ? (reply->elements - from + step - 1) / step : 0;
    *items = calloc(count ? count : 1, sizeof **items);
    if (lens) *lens = calloc(count ? count : 1, sizeof **lens);
    *n = 0;
    if (!*items || (lens && !*lens)) goto nomem;
    for (size_t i = from; i < reply->elements; i += step) {
        const redisReply *e = reply->element[i];
        char *copy = jobq_reply_copy(e);
        if (!copy) goto nomem;
        (*items)[*n] = copy;
        if (lens) (*lens)[*n] = jobq_reply_is_string(e) ? e->len : 0;
        (*n)++;
    }
    return 0;
nomem:
    jobq_queue_free_list(*items, lens ? *lens : NULL, *n);
    *items = NULL;
    if (lens) *lens = NULL;
    *n = 0;
    jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    return -1;
}

int jobq_queue_holders(jobq_redis *r, const jobq_qkeys *k, char ***lists, char ***daemons, size_t *n,
                       jobq_err *err) {
    const char *argv[] = {"HGETALL", k->holders};
    redisReply *reply = jobq_redis_call(r, err, "HGETALL holders", k->holders, 2, argv, NULL);
    if (!reply) return -1;
    size_t n2 = 0;
    int rc = reply->type == REDIS_REPLY_ARRAY ? 0 : unexpected(err, "HGETALL holders");
    if (rc == 0) rc = copy_array(reply, 0, 2, lists, NULL, n, err);
    if (rc == 0 && copy_array(reply, 1, 2, daemons, NULL, &n2, err) != 0) {
        jobq_queue_free_list(*lists, NULL, *n);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

int jobq_queue_reclaim(jobq_redis *r, const jobq_qkeys *k, const jobq_reclaim_ask *ask, jobq_reclaimed *out,
                       jobq_err *err) {
    memset(out, 0, sizeof *out);
    char **lists = NULL, **daemons = NULL;
    size_t n = 0;
    if (jobq_queue_holders(r, k, &lists, &daemons, &n, err) != 0) return -1;
    const char **keys = calloc(n + 4, sizeof *keys);
    const char **args = calloc((size_t)ask->nforced + (size_t)ask->nwatched + 2, sizeof *args);
    int rc = -1;
    if (!keys || !args) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        goto out;
    }
    keys[0] = k->leases;
    keys[1] = k->holders;
    keys[2] = k->queue;
    keys[3] = k->running;
    int nkeys = 4;
    for (size_t i = 0; i < n; i++)
        if (!ask->self || strcmp(daemons[i], ask->self) != 0) keys[nkeys++] = lists[i];
    char nforced[16];
    snprintf(nforced, sizeof nforced, "%d", ask->nforced);
    int nargs = 0;
    args[nargs++] = ask->self ? ask->self : "";
    args[nargs++] = nforced;
    for (int i = 0; i < ask->nforced; i++) args[nargs++] = ask->forced[i];
    for (int i = 0; i < ask->nwatched; i++) args[nargs++] = ask->watched[i];
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_RECLAIM, nkeys, keys, nargs, args, NULL);
    if (!reply) goto out;
    long long moved, ndropped;
    char **names = NULL;
    size_t nnames = 0;
    if (!jobq_reply_is_array(reply, 2) || !jobq_reply_integer(reply->element[0], &moved) ||
        !jobq_reply_integer(reply->element[1], &ndropped) || ndropped < 0 ||
        (size_t)ndropped > reply->elements - 2) {
        unexpected(err, "reclaim");
    } else if (copy_array(reply, 2, 1, &names, NULL, &nnames, err) == 0) {
        /* One allocation split in two: the dropped daemons, then the leased. */
        out->moved = (long)moved;
        out->dropped = names;
        out->ndropped = (size_t)ndropped;
        out->leased = names + ndropped;
        out->nleased = nnames - (size_t)ndropped;
        rc = 0;
    }
    freeReplyObject(reply);
out:
    free(keys);
    free(args);
    jobq_queue_free_list(lists, NULL, n);
    jobq_queue_free_list(daemons, NULL, n);
    return rc;
}

void jobq_reclaimed_fini(jobq_reclaimed *out) {
    jobq_queue_free_list(out->dropped, NULL, out->ndropped + out->nleased);
    memset(out, 0, sizeof *out);
}

long jobq_queue_promote(jobq_redis *r, const jobq_qkeys *k, int limit, double *next_due,
                        char *bad_type, size_t bad_type_size, char ***cancel_ids, size_t *ncancel,
                        jobq_err *err) {
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *keys[] = {k->scheduled, k->queue, k->cancel};
    const char *args[] = {lim};
    *cancel_ids = NULL;
    *ncancel = 0;
    *next_due = 0;
    if (bad_type_size) bad_type[0] = '\0';
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_PROMOTE, 3, keys, 1, args, NULL);
    if (!reply) return -1;
    long long moved = 0;
    long rc = -1;
    if (!jobq_reply_is_array(reply, 3) || !jobq_reply_integer(reply->element[0], &moved)) {
        unexpected(err, "promote");
    } else {
        if (reply->element[1]->type == REDIS_REPLY_STRING) *next_due = strtod(reply->element[1]->str, NULL);
        if (reply->element[2]->type == REDIS_REPLY_STRING)
            snprintf(bad_type, bad_type_size, "%s", reply->element[2]->str);
        rc = copy_array(reply, 3, 1, cancel_ids, NULL, ncancel, err) == 0 ? (long)moved : -1;
    }
    freeReplyObject(reply);
    return rc;
}

int jobq_queue_due(jobq_redis *r, const jobq_qkeys *k, int limit, char ***items, size_t **lens, size_t *n,
                   jobq_err *err) {
    char now[40], lim[16];
    snprintf(now, sizeof now, "%.6f", jobq_now());
    snprintf(lim, sizeof lim, "%d", limit);
    const char *argv[] = {"ZRANGEBYSCORE", k->scheduled, "-inf", now, "LIMIT", "0", lim};
    redisReply *reply = jobq_redis_call(r, err, "ZRANGEBYSCORE scheduled", k->scheduled, 7, argv, NULL);
    if (!reply) return -1;
    int rc = reply->type == REDIS_REPLY_ARRAY ? copy_array(reply, 0, 1, items, lens, n, err)
                                              : unexpected(err, "ZRANGEBYSCORE scheduled");
    freeReplyObject(reply);
    return rc;
}

long jobq_queue_bury(jobq_redis *r, const jobq_qkeys *k, char *const *members, const size_t *member_lens,
                     char *const *entries, size_t n, jobq_err *err) {
    const char **args = calloc(2 * n + 1, sizeof *args);
    size_t *lens = calloc(2 * n + 1, sizeof *lens);
    if (!args || !lens) {
        free(args);
        free(lens);
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        args[2 * i] = members[i];
        lens[2 * i] = member_lens[i];
        args[2 * i + 1] = entries[i];
        lens[2 * i + 1] = strlen(entries[i]);
    }
    const char *keys[] = {k->scheduled, k->dead};
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_BURY, 2, keys, (int)(2 * n), args, lens);
    free(args);
    free(lens);
    if (!reply) return -1;
    long long count = 0;
    bool ok = jobq_reply_integer(reply, &count);
    freeReplyObject(reply);
    return ok ? (long)count : unexpected(err, "bury");
}

int jobq_queue_cancel_done(jobq_redis *r, const jobq_qkeys *k, const char *id, jobq_err *err) {
    const char *argv[] = {"ZREM", k->cancel, id};
    redisReply *reply = jobq_redis_call(r, err, "ZREM cancel", k->cancel, 3, argv, NULL);
    if (!reply) return -1;
    freeReplyObject(reply);
    return 0;
}

int jobq_queue_list(jobq_redis *r, const char *key, char ***items, size_t **lens, size_t *n, jobq_err *err) {
    const char *argv[] = {"LRANGE", key, "0", "-1"};
    redisReply *reply = jobq_redis_call(r, err, "LRANGE", key, 4, argv, NULL);
    if (!reply) return -1;
    int rc = reply->type == REDIS_REPLY_ARRAY ? copy_array(reply, 0, 1, items, lens, n, err)
                                              : unexpected(err, "LRANGE");
    freeReplyObject(reply);
    return rc;
}

/* Add "what: why; " to problems. A refusal is fatal unless it is
 * maxmemory (it passes) or about the probe's own channel (an ACL may allow
 * only the events channel itself). */
static void add_problem(char *problems, size_t size, const char *what, const char *why, bool *fatal) {
    size_t n = strlen(problems);
    if (n < size) snprintf(problems + n, size - n, "%s%s", what ? what : "", why);
    if (!strstr(why, "OOM") && !strstr(why, "channel")) *fatal = true;
}

int jobq_queue_probe(jobq_redis *r, const jobq_qkeys *k, const char *message, char *problems,
                     size_t problems_size, bool *fatal, jobq_err *err) {
    problems[0] = '\0';
    *fatal = false;
    char keys[4][JOBQ_QKEY_MAX];
    static const char *const types[] = {"list", "zset", "hash", "string"};
    for (int i = 0; i < 4; i++) jobq_key(keys[i], sizeof keys[i], k->prefix, JOBQ_KEY_PROBE, k->name, types[i]);
    const char *kp[] = {keys[0], keys[1], keys[2], keys[3]};
    char channel[JOBQ_QKEY_MAX + 8];
    snprintf(channel, sizeof channel, "%s:probe", k->events); /* nobody listens there */
    const char *args[] = {channel, message, k->publish};
    jobq_err e;
    redisReply *reply = jobq_redis_eval(r, &e, JOBQ_SCRIPT_PROBE, 4, kp, 3, args, NULL);
    if (!reply) {
        if (e.code == JOBQ_E_IO) {
            *err = e;
            return -1;
        }
        add_problem(problems, problems_size, "EVALSHA: ", e.msg, fatal); /* refused before any command ran */
    } else {
        for (size_t i = 0; jobq_reply_is_array(reply, 0) && i < reply->elements; i++) {
            const redisReply *el = reply->element[i];
            if (jobq_reply_is_string(el)) {
                char line[600];
                snprintf(line, sizeof line, "%.*s; ", (int)el->len, el->str);
                add_problem(problems, problems_size, NULL, line, fatal);
            }
        }
        freeReplyObject(reply);
    }
    /* Results are single-key writes outside the queue's slot; the key of
     * job id "" is nobody's (ids have 1 to 128 bytes). */
    char result[JOBQ_KEY_MAX];
    jobq_key_result(result, sizeof result, k->prefix, "");
    const char *blmove[] = {"BLMOVE", keys[0], keys[0], "LEFT", "RIGHT", "0.001"};
    const char *set[] = {"SET", result, message, "PX", "1000"};
    const char *del[] = {"DEL", result};
    const jobq_cmd singles[] = {{.route = keys[0], .argc = 6, .argv = blmove},
                                {.route = result, .argc = 5, .argv = set},
                                {.route = result, .argc = 2, .argv = del}};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++) {
        reply = jobq_redis_call(r, &e, singles[i].argv[0], singles[i].route, singles[i].argc, singles[i].argv, NULL);
        if (reply) {
            freeReplyObject(reply);
        } else if (e.code == JOBQ_E_IO) {
            *err = e;
            return -1;
        } else {
            add_problem(problems, problems_size, "", e.msg, fatal);
        }
    }
    size_t n = strlen(problems);
    if (n >= 2 && problems[n - 2] == ';') problems[n - 2] = '\0';
    return problems[0] ? 1 : 0;
}
