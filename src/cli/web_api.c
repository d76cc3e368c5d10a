/*
 * jobq web's JSON API and /metrics, over the jobq client's functions (the
 * snapshot of `jobq status --json`, the dead lists, job lookup, retry,
 * purge, cancel) on its one Redis connection, used under the lock. A
 * sampler thread takes a snapshot every --sample-every seconds for
 * the rate history the page plots; /api/snapshot answers from a snapshot
 * at most a second old. A failed Redis call answers 502 with its message
 * (URLs in messages are always redacted), an unreachable Redis 503.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/web.h"
#include "core/job.h"

#define DEAD_LIMIT_DEFAULT 50
#define DEAD_LIMIT_MAX 500
#define PAYLOAD_SHOWN 4096 /* bytes of a dead job's payload in /api/dead */

/* ---- the connection ---- */

int jobq_web_redis_begin(jobq_web *w, struct MHD_Connection *conn, enum MHD_Result *result) {
    pthread_mutex_lock(&w->lock);
    jobq_redis *r = w->cli->r;
    jobq_err err;
    if (!jobq_redis_connected(r) && jobq_redis_connect(r, &err) != 0) {
        pthread_mutex_unlock(&w->lock);
        if (conn) *result = jobq_web_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Redis is unreachable: %s", err.msg);
        return -1;
    }
    return 0;
}

void jobq_web_redis_end(jobq_web *w) { pthread_mutex_unlock(&w->lock); }

/* 502 with the message of the client call that failed. */
static enum MHD_Result failed(jobq_web_request *rq) {
    const char *msg = jobq_cli_last_error();
    return jobq_web_error(rq->conn, MHD_HTTP_BAD_GATEWAY, "%s", msg[0] ? msg : "Redis error");
}

/* ---- snapshots and their history (under the lock) ---- */

/* A fresh snapshot, kept in the cache: a new reference, or NULL. */
static json_t *take_snapshot(jobq_web *w) {
    json_t *s = jobq_cli_snapshot(w->cli);
    if (!s) return NULL;
    json_decref(w->snapshot);
    w->snapshot = json_incref(s);
    w->snapshot_at = jobq_now();
    return s;
}

static void add_sample(jobq_web *w, json_t *s) {
    json_t *q = json_object(), *queue;
    size_t i;
    json_array_foreach(json_object_get(s, "queues"), i, queue) {
        json_object_set_new(q, json_string_value(json_object_get(queue, "name")),
                            json_pack("[I, I]", json_integer_value(json_object_get(queue, "processed")),
                                      json_integer_value(json_object_get(queue, "failed"))));
    }
    char *text = q ? json_dumps(q, JSON_COMPACT) : NULL;
    json_decref(q);
    if (!text) return;
    size_t at;
    if (w->history_n < JOBQ_WEB_HISTORY) {
        at = (w->history_first + w->history_n++) % JOBQ_WEB_HISTORY;
    } else {
        at = w->history_first;
        w->history_first = (w->history_first + 1) % JOBQ_WEB_HISTORY;
        free(w->history[at].q);
    }
    w->history[at] = (jobq_web_sample){json_number_value(json_object_get(s, "time")), text};
}

void *jobq_web_sampler(void *arg) {
    jobq_web *w = arg;
    double next = 0;
    while (!atomic_load(&w->stop)) {
        if (jobq_now() >= next) {
            next = jobq_now() + w->sample_every;
            enum MHD_Result ignored;
            if (jobq_web_redis_begin(w, NULL, &ignored) == 0) {
                json_t *s = take_snapshot(w);
                if (s) add_sample(w, s);
                json_decref(s);
                jobq_web_redis_end(w);
            }
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

void jobq_web_api_fini(jobq_web *w) {
    json_decref(w->snapshot);
    w->snapshot = NULL;
    for (size_t i = 0; i < w->history_n; i++) free(w->history[(w->history_first + i) % JOBQ_WEB_HISTORY].q);
    w->history_n = 0;
}

/* ---- latency summaries ---- */

/* The q-quantile of histogram h as Prometheus' histogram_quantile computes
 * it (linear within the bucket; the highest finite bound when it falls in
 * +Inf); NaN without observations. */
static double quantile(const jobq_histo_series *h, double q) {
    if (h->count == 0) return NAN;
    double rank = q * (double)h->count, seen = 0;
    for (int b = 0; b < JOBQ_HISTO_BUCKETS; b++) {
        double in = (double)h->buckets[b];
        if (seen + in >= rank && in > 0) {
            if (b == JOBQ_HISTO_BUCKETS - 1) return jobq_histo_bound(b - 1);
            double lo = b == 0 ? 0 : jobq_histo_bound(b - 1), hi = jobq_histo_bound(b);
            return lo + (hi - lo) * (rank - seen) / in;
        }
        seen += in;
    }
    return jobq_histo_bound(JOBQ_HISTO_BUCKETS - 2);
}

static json_t *number_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* [{queue, handler, kind, count, sum, p50, p90, p99}] of snapshot s's
 * queues (locked), or NULL after printing. */
static json_t *latency(jobq_web *w, json_t *s) {
    jobq_histo_series *hs;
    size_t n;
    const char **names;
    if (jobq_cli_histograms(w->cli, s, &hs, &n, &names) != 0) return NULL;
    json_t *out = json_array();
    for (size_t i = 0; out && i < n; i++) {
        const jobq_histo_series *h = &hs[i];
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:I, s:f, s:o, s:o, s:o}", "queue", names[h->queue],
                                             "handler", h->handler, "kind", jobq_histo_kind_name(h->kind), "count",
                                             (json_int_t)h->count, "sum", h->sum, "p50",
                                             number_or_null(quantile(h, 0.5)), "p90",
                                             number_or_null(quantile(h, 0.9)), "p99",
                                             number_or_null(quantile(h, 0.99))));
    }
    jobq_histo_free(hs, n);
    free(names);
    return out;
}

/* ---- GET ---- */

enum MHD_Result jobq_web_api_snapshot(jobq_web *w, jobq_web_request *rq) {
    enum MHD_Result result;
    if (jobq_web_redis_begin(w, rq->conn, &result) != 0) return result;
    json_t *s = w->snapshot && jobq_now() - w->snapshot_at < 1.0 ? json_incref(w->snapshot) : take_snapshot(w);
    json_t *lat = s ? latency(w, s) : NULL;
    jobq_web_redis_end(w);
    if (!s || !lat) {
        json_decref(s);
        return failed(rq);
    }
    json_t *out = json_copy(s); /* the cached one stays as it is */
    json_decref(s);
    json_object_set_new(out, "latency", lat);
    json_object_set_new(out, "writable", json_boolean(w->token != NULL));
    json_object_set_new(out, "version", json_string(JOBQ_VERSION));
    return jobq_web_json(rq->conn, MHD_HTTP_OK, out);
}

enum MHD_Result jobq_web_api_history(jobq_web *w, jobq_web_request *rq) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return jobq_web_error(rq->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    fprintf(f, "{\"interval\":%g,\"points\":[", w->sample_every);
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->history_n; i++) {
        const jobq_web_sample *p = &w->history[(w->history_first + i) % JOBQ_WEB_HISTORY];
        fprintf(f, "%s{\"t\":%.3f,\"queues\":%s}", i ? "," : "", p->t, p->q);
    }
    pthread_mutex_unlock(&w->lock);
    fputs("]}", f);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        free(text);
        return jobq_web_error(rq->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    enum MHD_Result rc = jobq_web_send(rq->conn, MHD_HTTP_OK, "application/json", text, len);
    free(text);
    return rc;
}

/* The queue argument (NULL when absent); false after answering 400. */
static bool queue_arg(const char *queue, jobq_web_request *rq, enum MHD_Result *result) {
    if (!queue || jobq_key_valid_queue(queue)) return true;
    *result = jobq_web_error(rq->conn, MHD_HTTP_BAD_REQUEST, "bad queue name: use 1 to 64 of A-Z a-z 0-9 _ . : -");
    return false;
}

enum MHD_Result jobq_web_api_dead(jobq_web *w, jobq_web_request *rq) {
    enum MHD_Result result;
    const char *queue = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "queue");
    const char *limit_arg = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (queue && !*queue) queue = NULL;
    if (!queue_arg(queue, rq, &result)) return result;
    long limit = DEAD_LIMIT_DEFAULT;
    if (limit_arg) {
        char *end;
        limit = strtol(limit_arg, &end, 10);
        if (!*limit_arg || *end || limit < 1 || limit > DEAD_LIMIT_MAX)
            return jobq_web_error(rq->conn, MHD_HTTP_BAD_REQUEST, "limit: 1 to %d", DEAD_LIMIT_MAX);
    }
    if (jobq_web_redis_begin(w, rq->conn, &result) != 0) return result;
    json_t *d = jobq_cli_dead_entries(w->cli, queue, limit);
    jobq_web_redis_end(w);
    if (!d) return failed(rq);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(d, "entries"), i, e) {
        json_t *p = json_object_get(e, "payload");
        if (json_is_string(p) && json_string_length(p) > PAYLOAD_SHOWN) {
            json_object_set_new(e, "payload", json_stringn(json_string_value(p), PAYLOAD_SHOWN));
            json_object_set_new(e, "payload_cut", json_true());
        }
    }
    return jobq_web_json(rq->conn, MHD_HTTP_OK, d);
}

/* The job id in the path after /api/job/ (up to the "/cancel" suffix when
 * given); false after answering 400. */
static bool job_id(jobq_web_request *rq, const char *suffix, char *id, size_t size, enum MHD_Result *result) {
    const char *start = rq->url + strlen("/api/job/");
    size_t len = strlen(start) - (suffix ? strlen(suffix) : 0);
    if (len == 0 || len >= size || !jobq_job_valid_name(start, len, JOBQ_JOB_ID_MAX)) {
        *result = jobq_web_error(rq->conn, MHD_HTTP_BAD_REQUEST,
                                 "a job id is 1 to %d bytes without control characters", JOBQ_JOB_ID_MAX);
        return false;
    }
    memcpy(id, start, len);
    id[len] = '\0';
    return true;
}

enum MHD_Result jobq_web_api_job(jobq_web *w, jobq_web_request *rq) {
    enum MHD_Result result;
    char id[JOBQ_JOB_ID_MAX + 1];
    if (!job_id(rq, NULL, id, sizeof id, &result)) return result;
    if (jobq_web_redis_begin(w, rq->conn, &result) != 0) return result;
    json_t *j = jobq_cli_job_lookup(w->cli, id);
    jobq_web_redis_end(w);
    if (!j) return failed(rq);
    const char *state = json_string_value(json_object_get(j, "state"));
    return jobq_web_json(rq->conn, strcmp(state, "unknown") == 0 ? MHD_HTTP_NOT_FOUND : MHD_HTTP_OK, j);
}

enum MHD_Result jobq_web_metrics(jobq_web *w, jobq_web_request *rq) {
    enum MHD_Result result;
    if (jobq_web_redis_begin(w, rq->conn, &result) != 0) return result;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    json_t *s = f ? take_snapshot(w) : NULL;
    int rc = s ? jobq_cli_metrics_write(w->cli, s, f) : -1;
    jobq_web_redis_end(w);
    json_decref(s);
    if (f) fclose(f);
    if (rc != 0) {
        free(text);
        return failed(rq);
    }
    result = jobq_web_send(rq->conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return result;
}

enum MHD_Result jobq_web_health(jobq_web *w, jobq_web_request *rq) {
    enum MHD_Result result;
    if (jobq_web_redis_begin(w, rq->conn, &result) != 0) return result;
    const char *argv[] = {"PING"};
    json_t *pong = NULL;
    int rc = jobq_cli_command(w->cli, &pong, 1, argv, NULL);
    jobq_web_redis_end(w);
    json_decref(pong);
    if (rc != 0) return failed(rq);
    return jobq_web_send(rq->conn, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n", 3);
}

/* ---- POST (the token was checked before the body was read) ---- */

enum MHD_Result jobq_web_api_auth(jobq_web *w, jobq_web_request *rq) {
    (void)w;
    return jobq_web_json(rq->conn, MHD_HTTP_OK, json_pack("{s:b}", "ok", true));
}

/* The request body as a JSON object (a new reference), or NULL after
 * answering 400. */
static json_t *body_object(jobq_web_request *rq, enum MHD_Result *result) {
    json_error_t jerr;
    json_t *b = rq->len ? json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    if (json_is_object(b)) return b;
    json_decref(b);
    *result = jobq_web_error(rq->conn, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
    return NULL;
}

/* A string member of b, NULL when absent; false after answering 400 when
 * it is there but not a non-empty string. */
static bool string_member(json_t *b, const char *name, const char **out, jobq_web_request *rq, enum MHD_Result *result) {
    json_t *v = json_object_get(b, name);
    *out = NULL;
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v) || !json_string_length(v)) {
        *result = jobq_web_error(rq->conn, MHD_HTTP_BAD_REQUEST, "'%s' must be a non-empty string", name);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

enum MHD_Result jobq_web_api_dead_retry(jobq_web *w, jobq_web_request *rq) {
    enum MHD_Result result;
    json_t *b = body_object(rq, &result);
    if (!b) return result;
    const char *id, *queue;
    if (!string_member(b, "id", &id, rq, &result) || !string_member(b, "queue", &queue, rq, &result) ||
        !queue_arg(queue, rq, &result))
        goto out;
    if (!id || !jobq_job_valid_name(id, strlen(id), JOBQ_JOB_ID_MAX)) {
        result = jobq_web_error(rq->conn, MHD_HTTP_BAD_REQUEST, "give the dead job's \"id\"");
        goto out;
    }
    if (jobq_web_redis_begin(w, rq->conn, &result) != 0) goto out;
    char on[256] = "", why[160] = "";
    int r = jobq_cli_dead_retry_id(w->cli, queue, id, on, sizeof on, why, sizeof why);
    jobq_web_redis_end(w);
    if (r == 1) result = jobq_web_json(rq->conn, MHD_HTTP_OK, json_pack("{s:s, s:s}", "retried", id, "queue", on));
    else if (r == 0) result = jobq_web_error(rq->conn, MHD_HTTP_NOT_FOUND, "no dead job %s", id);
    else if (r == -2) result = jobq_web_error(rq->conn, MHD_HTTP_CONFLICT, "job %s cannot be retried: %s", id, why);
    else result = failed(rq);
out:
    json_decref(b);
    return result;
}

enum MHD_Result jobq_web_api_dead_purge(jobq_web *w, jobq_web_request *rq) {
    enum MHD_Result result;
    json_t *b = body_object(rq, &result);
    if (!b) return result;
    const char *queue;
    bool all = json_is_true(json_object_get(b, "all"));
    if (!string_member(b, "queue", &queue, rq, &result) || !queue_arg(queue, rq, &result)) goto out;
    if (!queue == !all) {
        result = jobq_web_error(rq->conn, MHD_HTTP_BAD_REQUEST, "give a \"queue\", or \"all\": true (not both)");
        goto out;
    }
    if (jobq_web_redis_begin(w, rq->conn, &result) != 0) goto out;
    long long removed = jobq_cli_dead_purge_lists(w->cli, queue);
    jobq_web_redis_end(w);
    result = removed < 0 ? failed(rq) : jobq_web_json(rq->conn, MHD_HTTP_OK, json_pack("{s:I}", "removed", (json_int_t)removed));
out:
    json_decref(b);
    return result;
}

enum MHD_Result jobq_web_api_job_cancel(jobq_web *w, jobq_web_request *rq) {
    enum MHD_Result result;
    char id[JOBQ_JOB_ID_MAX + 1], queue[256] = "";
    if (!job_id(rq, "/cancel", id, sizeof id, &result)) return result;
    if (jobq_web_redis_begin(w, rq->conn, &result) != 0) return result;
    const char *how = NULL;
    int r = jobq_cli_job_cancel(w->cli, id, &how, queue, sizeof queue);
    jobq_web_redis_end(w);
    if (r == 1) return jobq_web_json(rq->conn, MHD_HTTP_OK, json_pack("{s:s, s:s, s:s}", "id", id, "cancelled", how, "queue", queue));
    if (r == 0 && strcmp(how, "finished") == 0)
        return jobq_web_error(rq->conn, MHD_HTTP_CONFLICT, "job %s has already finished: nothing to cancel", id);
    if (r == 0) return jobq_web_error(rq->conn, MHD_HTTP_NOT_FOUND, "no job %s is waiting, scheduled, parked or running", id);
    return failed(rq);
}
