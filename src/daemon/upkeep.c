/*
 * The supervisor's Redis upkeep: its connection, the heartbeat with the
 * per-queue leases that fence a daemon declared dead, the reclaim of dead
 * daemons' in-flight lists, and the promotion of due scheduled jobs (with
 * burial of jobs whose queue key cannot take them, and cancel requests).
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/log.h"
#include "daemon/supervisor_internal.h"
#include "protocol/daemons.h"
#include "protocol/documents.h"
#include "protocol/functions.h"
#include "protocol/keys.h"

/* Scheduled jobs moved per queue and promotion round. */
#define PROMOTE_LIMIT 1000

/* ---- connection ---- */

static void ensure_functions(jobq_supervisor *s) {
    /* The FCALL enqueue library; a server without FUNCTION (Redis < 7)
     * still serves RPUSH producers. Checked again on every heartbeat, so a
     * FUNCTION FLUSH is repaired. */
    jobq_err err;
    int loaded = jobq_functions_ensure(s->redis, &err);
    if (loaded == 1) jobq_log_info("installed the jobq function library");
    if (loaded < 0) {
        if (err.code == JOBQ_E_IO) jobq_upkeep_failed(s, &err, "installing the function library");
        else jobq_log_warn("cannot install the jobq function library: %s", err.msg);
    }
}

bool jobq_upkeep_connect(jobq_supervisor *s, double now) {
    if (jobq_redis_connected(s->redis)) return true;
    if (now < s->redis_retry_at) return false;
    jobq_err err;
    if (jobq_redis_connect(s->redis, &err) == 0) {
        jobq_log_info("connected to Redis %sat %s", s->redis_down ? "again " : "", jobq_redis_url_redacted(s->redis));
        /* Renew the leases at once: while Redis was away (a failover) they
         * may have lapsed, and the workers take nothing until they are. */
        if (s->redis_down) s->heartbeat_now = true;
        s->redis_down = false;
        s->redis_failures = 0;
        ensure_functions(s);
        return jobq_redis_connected(s->redis);
    }
    if (!s->redis_down) jobq_log_warn("Redis unavailable (%s); retrying with backoff", err.msg);
    s->redis_down = true;
    s->redis_failures++;
    s->redis_retry_at = now + jobq_backoff_delay(s->redis_failures, 0.1, 5.0);
    return false;
}

void jobq_upkeep_failed(jobq_supervisor *s, const jobq_err *err, const char *what) {
    if (err->code == JOBQ_E_IO && jobq_redis_is_cluster(s->redis) && jobq_redis_connected(s->redis)) {
        /* One shard is away (a failover): the others go on; said once a minute. */
        static double last_at;
        double now = ev_now(s->loop);
        if (now - last_at >= 60) jobq_log_warn("%s: %s (a cluster node is away; retrying)", what, err->msg);
        last_at = now;
        return;
    }
    if (err->code == JOBQ_E_IO || err->code == JOBQ_E_READONLY) {
        if (!s->redis_down)
            jobq_log_warn("%s during %s: %s; reconnecting with backoff",
                          err->code == JOBQ_E_READONLY ? "Redis is a read-only replica" : "lost Redis connection",
                          what, err->msg);
        s->redis_down = true;
        s->redis_failures++;
        s->redis_retry_at = ev_now(s->loop) + jobq_backoff_delay(s->redis_failures, 0.1, 5.0);
        jobq_redis_disconnect(s->redis);
    } else {
        jobq_log_err("%s: %s", what, err->msg);
    }
}

int jobq_upkeep_set_keys(jobq_supervisor *s, jobq_err *err) {
    jobq_qkeys *keys = calloc((size_t)s->cfg.nqueues, sizeof *keys);
    if (!keys) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    for (int i = 0; i < s->cfg.nqueues; i++) jobq_qkeys_init(&keys[i], s->redis, s->cfg.prefix, s->cfg.queues[i], NULL);
    free(s->keys);
    s->keys = keys;
    memset(s->bad_queue_type, 0, sizeof s->bad_queue_type);
    return 0;
}

/* ---- permissions ---- */

int jobq_upkeep_probe(jobq_supervisor *s) {
    char message[400];
    snprintf(message, sizeof message, "jobqd %s checking its permissions", s->daemon_id);
    int rc = 0;
    for (int q = 0; rc == 0 && q < s->cfg.nqueues; q++) {
        char problems[2048];
        bool fatal = false;
        jobq_err err;
        int found = jobq_queue_probe(s->redis, &s->keys[q], message, problems, sizeof problems, &fatal, &err);
        if (found < 0) {
            jobq_upkeep_failed(s, &err, "checking Redis permissions");
            rc = -1;
        } else if (found > 0 && fatal) {
            jobq_log_err("Redis at %s refuses commands jobq needs on queue %s: %s. Grant them to this user "
                         "(ACL) or restore the commands; jobqd cannot record outcomes without them",
                         jobq_redis_url_redacted(s->redis), s->cfg.queues[q], problems);
            rc = 1;
        } else if (found > 0) {
            jobq_log_warn("Redis refuses some commands on queue %s for now: %s", s->cfg.queues[q], problems);
        }
    }
    return rc;
}

/* ---- heartbeat and leases ---- */

/* Record this heartbeat's totals and add to info the jobs done and failed
 * per minute over the last minute (or since the start, when younger). */
static void add_rates(jobq_supervisor *s, double now, json_t *info) {
    int live, busy;
    unsigned long long done, failed;
    jobq_workers_totals(s, &live, &busy, &done, &failed);
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

/* The resident memory of process pid in bytes (/proc/PID/statm), or -1. */
static long long rss_of(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned long long size, resident;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return got == 2 && page > 0 ? (long long)(resident * (unsigned long long)page) : -1;
}

/* The registry entry: host, pid, version, queues, workers and their jobs
 * and resident memory. */
static char *daemon_info(jobq_supervisor *s, double now) {
    json_t *workers = json_array();
    int busy = 0;
    for (wrec *w = s->workers; w; w = w->next) {
        if (w->state != WREC_RUNNING) continue;
        jobq_slot *sl = &s->slots[w->slot];
        jobq_slot_job job;
        json_t *o = json_pack("{s:i, s:i}", "number", w->number, "pid", (int)w->pid);
        if (jobq_slot_read_job(sl, &job) && job.id[0]) {
            busy++;
            json_object_set_new(o, "job", json_string(job.id));
            json_object_set_new(o, "queue", json_string(w->queues[job.queue_index]));
            json_object_set_new(o, "job_started_at", json_real(job.started_at));
        }
        json_object_set_new(o, "jobs_done", json_integer((json_int_t)atomic_load(&sl->jobs_done)));
        long long rss = rss_of(w->pid);
        if (rss >= 0) json_object_set_new(o, "rss_bytes", json_integer((json_int_t)rss));
        json_array_append_new(workers, o);
    }
    json_t *queues = json_array();
    for (int i = 0; i < s->cfg.nqueues; i++) json_array_append_new(queues, json_string(s->cfg.queues[i]));
    json_t *info = json_pack("{s:s, s:i, s:f, s:f, s:s, s:o, s:o, s:i}", "host", s->host, "pid", (int)getpid(),
                             "started_at", s->started_at, "heartbeat_at", now, "version", JOBQ_VERSION,
                             "queues", queues, "workers", workers, "busy", busy);
    long long rss = rss_of(getpid());
    if (info && rss >= 0) json_object_set_new(info, "rss_bytes", json_integer((json_int_t)rss));
    if (info) add_rates(s, now, info);
    char *str = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    return str;
}

/* Renew the lease on every queue served, re-registering the in-flight
 * lists of this daemon's workers (a daemon declared dead gets them back). */
static void renew_leases(jobq_supervisor *s) {
    int records = 0;
    for (const wrec *w = s->workers; w; w = w->next) records++;
    char (*lists)[JOBQ_INFLIGHT_MAX] = calloc((size_t)records + 1, sizeof *lists);
    const char **ptrs = calloc((size_t)records + 1, sizeof *ptrs);
    for (int q = 0; lists && ptrs && q < s->cfg.nqueues && jobq_redis_connected(s->redis); q++) {
        int n = jobq_workers_lists(s, q, lists, records);
        for (int i = 0; i < n; i++) ptrs[i] = lists[i];
        int previous = 0;
        jobq_err err;
        if (jobq_queue_lease(s->redis, &s->keys[q], s->daemon_id, s->cfg.heartbeat_ttl, ptrs, n, &previous,
                             &err) != 0) {
            jobq_upkeep_failed(s, &err, "renewing the lease");
            continue;
        }
        if (s->leased && previous != 1)
            jobq_log_warn("this daemon's lease on queue %s had %s (the supervisor was stopped, cut off from "
                          "Redis, or the queue's shard failed over); renewed it and re-registered %d in-flight "
                          "list(s); jobs another daemon reclaimed meanwhile may run twice, their outcomes are "
                          "recorded once",
                          s->cfg.queues[q], previous == 0 ? "been taken away" : "lapsed", n);
    }
    if (!lists || !ptrs) jobq_log_err("out of memory renewing the leases");
    else if (jobq_redis_connected(s->redis)) s->leased = true;
    free(lists);
    free(ptrs);
}

void jobq_upkeep_heartbeat(jobq_supervisor *s, double now) {
    char *info = daemon_info(s, now);
    jobq_err err;
    if (info && jobq_daemons_heartbeat(s->redis, s->cfg.prefix, s->daemon_id, info, s->cfg.heartbeat_ttl, &err) != 0)
        jobq_upkeep_failed(s, &err, "heartbeat");
    free(info);
    renew_leases(s);
    if (jobq_redis_connected(s->redis)) ensure_functions(s);
}

/* ---- reclaim ---- */

static bool pid_alive(int pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

/* A registered daemon that is gone: its heartbeat expired, or on this host
 * its process is dead (or is us: a restart that got the same pid, in a
 * container). It is forgotten only once none of its queues still holds its
 * lease or lists: a heartbeat can expire before the lease does. */
typedef struct gone_daemon {
    const char *id;   /* borrowed from the registry listing */
    json_t *queues;   /* owned: the queues it said it served */
    bool forced;      /* known dead: its lists go back without waiting for the lease */
    bool keep;        /* something of it is still in Redis: forget it later */
} gone_daemon;

static bool serves(const gone_daemon *g, const char *queue) {
    size_t i;
    json_t *v;
    json_array_foreach(g->queues, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), queue) == 0) return true;
    }
    return false;
}

/* The gone daemons among the registered ds (count *ngone), or NULL when
 * out of memory. */
static gone_daemon *find_gone(const jobq_supervisor *s, const jobq_daemon_entry *ds, size_t n, bool at_start,
                              size_t *ngone) {
    gone_daemon *gone = calloc(n + 1, sizeof *gone);
    *ngone = 0;
    for (size_t i = 0; gone && i < n; i++) {
        bool mine = strcmp(ds[i].id, s->daemon_id) == 0;
        if (mine && !at_start) continue;
        json_t *info = json_loads(ds[i].info, 0, NULL);
        const char *host = json_string_value(json_object_get(info, "host"));
        int pid = (int)json_integer_value(json_object_get(info, "pid"));
        bool dead_here = mine || (host && strcmp(host, s->host) == 0 && !pid_alive(pid));
        if (dead_here || !ds[i].alive) {
            json_t *queues = json_object_get(info, "queues");
            gone[*ngone] = (gone_daemon){ds[i].id, json_is_array(queues) ? json_incref(queues) : json_array(),
                                         dead_here, false};
            (*ngone)++;
        }
        json_decref(info);
    }
    return gone;
}

/* Reclaim queue from the gone daemons; marks those it could not be done
 * for. */
static void reclaim_queue(jobq_supervisor *s, const char *queue, const jobq_reclaim_ask *ask, gone_daemon *gone,
                          size_t ngone) {
    jobq_qkeys k;
    jobq_qkeys_init(&k, s->redis, s->cfg.prefix, queue, NULL);
    jobq_reclaimed done;
    jobq_err err;
    if (jobq_queue_reclaim(s->redis, &k, ask, &done, &err) != 0) {
        char what[128];
        snprintf(what, sizeof what, "reclaiming a dead daemon's jobs of queue %s", queue);
        jobq_upkeep_failed(s, &err, what);
        for (size_t i = 0; i < ngone; i++)
            if (serves(&gone[i], queue) || gone[i].forced) gone[i].keep = true;
        return;
    }
    for (size_t i = 0; i < done.ndropped; i++)
        jobq_log_warn("daemon %s is gone; its lease on queue %s is dropped", done.dropped[i], queue);
    for (size_t i = 0; i < done.nleased; i++)
        for (size_t j = 0; j < ngone; j++)
            if (strcmp(gone[j].id, done.leased[i]) == 0) gone[j].keep = true;
    if (done.moved > 0)
        jobq_log_warn("put %ld in-flight job(s) of gone daemon(s) back on queue %s", done.moved, queue);
    jobq_reclaimed_fini(&done);
}

void jobq_upkeep_reclaim(jobq_supervisor *s, bool at_start) {
    jobq_daemon_entry *ds = NULL;
    size_t n = 0, ngone = 0;
    jobq_err err;
    if (jobq_daemons_list(s->redis, s->cfg.prefix, &ds, &n, &err) != 0) {
        jobq_upkeep_failed(s, &err, "listing daemons");
        return;
    }
    gone_daemon *gone = find_gone(s, ds, n, at_start, &ngone);
    const char **forced = calloc(n + 1, sizeof *forced);
    const char **watched = calloc(n + 1, sizeof *watched);
    json_t *queues = json_object();
    if (!gone || !forced || !watched || !queues) {
        jobq_log_err("out of memory reclaiming gone daemons' jobs");
        goto out;
    }
    /* Our own queues, where a gone daemon may have left lists it never
     * listed, and every queue a gone daemon served. */
    for (int i = 0; i < s->cfg.nqueues; i++) json_object_set_new(queues, s->cfg.queues[i], json_true());
    for (size_t i = 0; i < ngone; i++) {
        size_t j;
        json_t *v;
        json_array_foreach(gone[i].queues, j, v) {
            if (json_is_string(v) && jobq_key_valid_queue(json_string_value(v)))
                json_object_set_new(queues, json_string_value(v), json_true());
        }
    }
    jobq_reclaim_ask ask = {at_start ? NULL : s->daemon_id, forced, 0, watched, 0};
    for (size_t i = 0; i < ngone; i++) {
        if (gone[i].forced) forced[ask.nforced++] = gone[i].id;
        else watched[ask.nwatched++] = gone[i].id;
    }
    const char *queue;
    json_t *v;
    json_object_foreach(queues, queue, v) {
        if (!jobq_redis_connected(s->redis)) goto out;
        reclaim_queue(s, queue, &ask, gone, ngone);
    }
    for (size_t i = 0; i < ngone; i++) {
        if (gone[i].keep) continue;
        if (jobq_daemons_forget(s->redis, s->cfg.prefix, gone[i].id, &err) != 0) {
            jobq_upkeep_failed(s, &err, "forgetting a gone daemon");
            break;
        }
        if (strcmp(gone[i].id, s->daemon_id) != 0) jobq_log_info("forgot daemon %s (gone)", gone[i].id);
    }
out:
    for (size_t i = 0; gone && i < ngone; i++) json_decref(gone[i].queues);
    json_decref(queues);
    free(gone);
    free(forced);
    free(watched);
    jobq_daemons_free(ds, n);
}

/* ---- promotion ---- */

/* The due jobs of queue qi cannot be delivered (its key is a type_name):
 * move them to its dead list with the reason. */
static void bury_due(jobq_supervisor *s, int qi, const char *type_name) {
    const jobq_qkeys *k = &s->keys[qi];
    if (strcmp(s->bad_queue_type[qi], type_name) != 0)
        jobq_log_err("queue key %s is a %s, not a list: due scheduled jobs of queue %s go to its dead list",
                     k->queue, type_name, k->name);
    snprintf(s->bad_queue_type[qi], sizeof s->bad_queue_type[qi], "%s", type_name);
    char **items = NULL, *entries[PROMOTE_LIMIT] = {0};
    size_t *lens = NULL, n = 0;
    jobq_err err;
    if (jobq_queue_due(s->redis, k, PROMOTE_LIMIT, &items, &lens, &n, &err) != 0) {
        jobq_upkeep_failed(s, &err, "reading due jobs");
        return;
    }
    char why[300];
    snprintf(why, sizeof why, "cannot deliver to %s: it is a %s, not a list", k->queue, type_name);
    jobq_job_defaults defaults = {JOBQ_JOB_TIMEOUT_MAX, 1, 86400, 0};
    double now = jobq_now();
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        struct jobq_job job;
        jobq_job_parse(&job, items[i], lens[i], k->name, &defaults, now, &err);
        ok = ok && (entries[i] = jobq_doc_dead(&job, why, now)) != NULL;
        jobq_job_fini(&job);
    }
    if (ok && n > 0 && jobq_queue_bury(s->redis, k, items, lens, entries, n, &err) < 0)
        jobq_upkeep_failed(s, &err, "burying undeliverable jobs");
    for (size_t i = 0; i < n; i++) free(entries[i]);
    jobq_queue_free_list(items, lens, n);
}

void jobq_upkeep_promote(jobq_supervisor *s) {
    for (int q = 0; q < s->cfg.nqueues && jobq_redis_connected(s->redis); q++) {
        double next_due;
        char bad[16];
        char **cancel_ids = NULL;
        size_t ncancel = 0;
        jobq_err err;
        if (jobq_queue_promote(s->redis, &s->keys[q], PROMOTE_LIMIT, &next_due, bad, sizeof bad, &cancel_ids,
                               &ncancel, &err) < 0) {
            jobq_upkeep_failed(s, &err, "promote");
            continue;
        }
        if (bad[0]) bury_due(s, q, bad);
        else s->bad_queue_type[q][0] = '\0';
        if (ncancel) jobq_workers_cancel(s, q, cancel_ids, ncancel);
        jobq_queue_free_list(cancel_ids, NULL, ncancel);
    }
}
