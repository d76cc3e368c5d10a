/*
 * jobq status: one snapshot of the queues (found with SCAN, each counted
 * from its own keys), the daemons and workers from the registry (a daemon
 * without its heartbeat key is dead) and the counters of every queue's
 * stats hash, printed for humans or as JSON. The same snapshot feeds
 * jobq metrics (metrics.c) and jobq web.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/job.h"
#include "protocol/daemons.h"
#include "protocol/flow.h"

/* Each daemon of the registry (protocol/daemons.h): its info with "id",
 * "alive" and its busy workers' "running_for". The queues it serves are
 * added to qs when qs is given. NULL after printing the error. */
static json_t *daemons(jobq_cli *c, double now, jobq_cli_queues *qs) {
    jobq_daemon_entry *entries;
    size_t n;
    jobq_err err;
    if (jobq_daemons_list(c->r, c->key_prefix, &entries, &n, &err) != 0) return jobq_cli_redis_error(c, &err), NULL;
    json_t *out = json_array();
    for (size_t i = 0; out && i < n; i++) {
        json_t *info = json_loads(entries[i].info, 0, NULL);
        if (!json_is_object(info)) {
            json_decref(info);
            info = json_object();
        }
        json_t *d = json_pack("{s:s, s:b}", "id", entries[i].id, "alive", entries[i].alive);
        json_object_update_missing(d, info);
        json_decref(info);
        size_t j;
        json_t *w, *qname;
        json_array_foreach(json_object_get(d, "workers"), j, w) {
            json_t *started = json_object_get(w, "job_started_at");
            if (json_is_number(started))
                json_object_set_new(w, "running_for", json_real(now - json_number_value(started)));
        }
        json_array_foreach(json_object_get(d, "queues"), j, qname) {
            if (qs && json_is_string(qname)) jobq_cli_queues_add(qs, json_string_value(qname));
        }
        json_array_append_new(out, d);
    }
    jobq_daemons_free(entries, n);
    return out;
}

json_t *jobq_cli_daemons(jobq_cli *c) { return daemons(c, jobq_now(), NULL); }

/* The stored progress of job id as {"fraction", "message", "time"}, or
 * NULL when there is none (or it cannot be read). */
json_t *jobq_cli_progress(jobq_cli *c, const char *id) {
    char *text = NULL;
    jobq_err err;
    if (jobq_flow_progress(c->r, c->key_prefix, id, &text, &err) != 0) return NULL;
    json_t *e = json_loads(text, 0, NULL);
    free(text);
    json_t *f = json_object_get(e, "progress"), *m = json_object_get(e, "message"), *t = json_object_get(e, "time");
    json_t *out = json_is_number(f) ? json_pack("{s:O, s:O, s:O}", "fraction", f, "message", m ? m : json_null(),
                                                "time", t ? t : json_null())
                                    : NULL;
    json_decref(e);
    return out;
}

/* Add to each busy worker of a live daemon its job's stored "progress". */
static void add_progress(jobq_cli *c, json_t *ds) {
    size_t i, j;
    json_t *d, *w;
    json_array_foreach(ds, i, d) {
        if (!json_is_true(json_object_get(d, "alive"))) continue;
        json_array_foreach(json_object_get(d, "workers"), j, w) {
            const char *job = json_string_value(json_object_get(w, "job"));
            json_t *p = job ? jobq_cli_progress(c, job) : NULL;
            if (p) json_object_set_new(w, "progress", p);
        }
    }
}

/* The counts of one queue, each command run only for the keys the scan
 * found. */
typedef struct queue_counts {
    long long waiting, inflight, scheduled, parked, dead;
    long long processed, failed, retried, rejected, cancelled; /* the stats counters, in this order */
} queue_counts;

/* One count to make: a command on one key of queue q, whose reply goes to
 * the field at offset (an in-flight list adds to inflight; the stats hash
 * fills the five counters). */
typedef struct count_cmd {
    size_t q;
    enum { COUNT_SET, COUNT_ADD, COUNT_STATS } how;
    size_t offset;
    int argc;
    const char *argv[7];
    char key[JOBQ_KEY_MAX];
} count_cmd;

#define COUNT_BATCH 512 /* commands per pipeline */

/* Store the reply v of command k into counts. A key of another type (someone
 * SET it) counts 0, with a warning, instead of failing the whole status.
 * 0, or -1 after printing. */
static int take_count(const count_cmd *k, json_t *v, queue_counts *counts) {
    queue_counts *n = &counts[k->q];
    const char *error = json_string_value(json_object_get(v, "error"));
    if (error && !strstr(error, "WRONGTYPE")) return jobq_cli_error("Redis error: %s", error), -1;
    if (error) {
        char shown[300];
        fprintf(stderr, "jobq: warning: %s holds another type of value (counted as 0)\n",
                jobq_cli_escape(shown, sizeof shown, k->argv[1], strlen(k->argv[1])));
        return 0;
    }
    if (k->how == COUNT_STATS) {
        long long *fields[] = {&n->processed, &n->failed, &n->retried, &n->rejected, &n->cancelled};
        for (size_t i = 0; i < 5; i++) {
            const char *s = json_string_value(json_array_get(v, i));
            *fields[i] = s ? strtoll(s, NULL, 10) : 0;
        }
        return 0;
    }
    long long *field = (long long *)((char *)n + k->offset);
    if (k->how == COUNT_ADD) *field += json_integer_value(v);
    else *field = json_integer_value(v);
    return 0;
}

/* Run the counts cmds[0..n) in one pipeline. 0, or -1 after printing. */
static int run_counts(jobq_cli *c, const count_cmd *cmds, size_t n, queue_counts *counts) {
    int argcs[COUNT_BATCH] = {0};
    const char *const *argvs[COUNT_BATCH] = {0};
    json_t *replies[COUNT_BATCH];
    for (size_t i = 0; i < n; i++) {
        argcs[i] = cmds[i].argc;
        argvs[i] = cmds[i].argv;
    }
    jobq_err err;
    if (jobq_redis_commands_json(c->r, n, argcs, argvs, replies, &err) != 0) return jobq_cli_redis_error(c, &err);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) rc = take_count(&cmds[i], replies[i], counts);
        json_decref(replies[i]);
    }
    return rc;
}

/* Count every queue of qs from its own keys (each command only for the
 * keys the scan found), COUNT_BATCH commands per round trip, into
 * counts[i] (zeroed here). 0, or -1 after printing. */
static int count_queues(jobq_cli *c, const jobq_cli_queues *qs, queue_counts *counts) {
    static const struct {
        enum jobq_key_kind kind;
        const char *command;
        size_t offset;
    } lengths[] = {
        {JOBQ_KEY_QUEUE, "LLEN", offsetof(queue_counts, waiting)},
        {JOBQ_KEY_SCHEDULED, "ZCARD", offsetof(queue_counts, scheduled)},
        {JOBQ_KEY_PARKED, "HLEN", offsetof(queue_counts, parked)},
        {JOBQ_KEY_DEAD, "LLEN", offsetof(queue_counts, dead)},
    };
    const size_t nlengths = sizeof lengths / sizeof *lengths;
    count_cmd *cmds = calloc(COUNT_BATCH, sizeof *cmds);
    if (!cmds) return jobq_cli_error("out of memory"), -1;
    memset(counts, 0, qs->n * sizeof *counts);
    size_t n = 0;
    int rc = 0;
    for (size_t q = 0; rc == 0 && q < qs->n; q++) {
        const jobq_cli_queue *queue = &qs->q[q];
        size_t ninflight = json_array_size(queue->inflight);
        /* The keys of this queue: its lengths, in-flight lists, stats. */
        for (size_t j = 0; rc == 0 && j < nlengths + ninflight + 1; j++) {
            count_cmd *k = &cmds[n];
            if (j < nlengths) {
                if (!(queue->kinds & (1u << lengths[j].kind))) continue;
                *k = (count_cmd){q, COUNT_SET, lengths[j].offset, 2, {lengths[j].command, NULL}, ""};
                jobq_cli_key(c, k->key, lengths[j].kind, queue->name);
            } else if (j < nlengths + ninflight) {
                *k = (count_cmd){q, COUNT_ADD, offsetof(queue_counts, inflight), 2, {"LLEN", NULL}, ""};
                snprintf(k->key, sizeof k->key, "%s",
                         json_string_value(json_array_get(queue->inflight, j - nlengths)));
            } else {
                if (!(queue->kinds & (1u << JOBQ_KEY_STATS))) continue;
                *k = (count_cmd){q, COUNT_STATS, 0, 7, {"HMGET", NULL, JOBQ_STATS_PROCESSED, JOBQ_STATS_FAILED,
                                                        JOBQ_STATS_RETRIED, JOBQ_STATS_REJECTED, JOBQ_STATS_CANCELLED}, ""};
                jobq_cli_key(c, k->key, JOBQ_KEY_STATS, queue->name);
            }
            k->argv[1] = k->key;
            if (++n == COUNT_BATCH) {
                rc = run_counts(c, cmds, n, counts);
                n = 0;
            }
        }
    }
    if (rc == 0 && n) rc = run_counts(c, cmds, n, counts);
    free(cmds);
    return rc;
}

/* Rates and worker counts over the live daemons. */
typedef struct daemon_totals {
    json_int_t workers, busy;
    double per_minute[2], window;
    bool have_rates;
} daemon_totals;

static void sum_daemons(json_t *ds, daemon_totals *t) {
    size_t i;
    json_t *d;
    memset(t, 0, sizeof *t);
    json_array_foreach(ds, i, d) {
        if (!json_is_true(json_object_get(d, "alive"))) continue;
        json_t *pr = json_object_get(d, "processed_per_minute"), *fr = json_object_get(d, "failed_per_minute");
        if (json_is_number(pr) && json_is_number(fr)) {
            t->have_rates = true;
            t->per_minute[0] += json_number_value(pr);
            t->per_minute[1] += json_number_value(fr);
            double w = json_number_value(json_object_get(d, "rate_window"));
            if (w > t->window) t->window = w;
        }
        size_t j;
        json_t *w;
        json_array_foreach(json_object_get(d, "workers"), j, w) {
            t->workers++;
            if (json_is_string(json_object_get(w, "job"))) t->busy++;
        }
    }
}

json_t *jobq_cli_snapshot(jobq_cli *c) {
    double now = jobq_now();
    jobq_cli_queues qs;
    json_t *ds = NULL, *list = json_array();
    queue_counts total = {0}, *counts = NULL;
    if (jobq_cli_queues_scan(c, &qs) != 0 || !(ds = daemons(c, now, &qs))) goto fail;
    add_progress(c, ds);
    jobq_cli_queues_sort(&qs);
    counts = calloc(qs.n ? qs.n : 1, sizeof *counts);
    if (!counts) {
        jobq_cli_error("out of memory");
        goto fail;
    }
    if (count_queues(c, &qs, counts) != 0) goto fail;
    for (size_t i = 0; i < qs.n; i++) {
        const queue_counts n = counts[i];
        json_array_append_new(
            list, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "name", qs.q[i].name,
                            "waiting", (json_int_t)n.waiting, "inflight", (json_int_t)n.inflight, "scheduled",
                            (json_int_t)n.scheduled, "parked", (json_int_t)n.parked, "dead", (json_int_t)n.dead,
                            "processed",
                            (json_int_t)n.processed, "failed", (json_int_t)n.failed, "retried",
                            (json_int_t)n.retried, "rejected", (json_int_t)n.rejected, "cancelled",
                            (json_int_t)n.cancelled, "paused", (qs.q[i].kinds & (1u << JOBQ_KEY_PAUSED)) != 0));
        total.waiting += n.waiting;
        total.inflight += n.inflight;
        total.scheduled += n.scheduled;
        total.parked += n.parked;
        total.dead += n.dead;
        total.processed += n.processed;
        total.failed += n.failed;
    }
    jobq_cli_queues_fini(&qs);
    free(counts);
    daemon_totals t;
    sum_daemons(ds, &t);
    return json_pack("{s:f, s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:b, s:o, s:{s:I, s:I},"
                     " s:{s:I, s:I, s:o, s:o, s:o}}",
                     "time", now, "redis", jobq_redis_url_redacted(c->r), "prefix", c->key_prefix, "queues", list,
                     "totals", "waiting", (json_int_t)total.waiting, "inflight", (json_int_t)total.inflight,
                     "scheduled", (json_int_t)total.scheduled, "parked", (json_int_t)total.parked, "dead",
                     (json_int_t)total.dead, "per_queue_sampled", false, "daemons", ds, "workers", "total",
                     t.workers, "busy", t.busy,
                     "jobs", "processed", (json_int_t)total.processed, "failed", (json_int_t)total.failed,
                     "processed_per_minute", t.have_rates ? json_real(t.per_minute[0]) : json_null(),
                     "failed_per_minute", t.have_rates ? json_real(t.per_minute[1]) : json_null(), "rate_window",
                     t.have_rates ? json_real(t.window) : json_null());
fail:
    free(counts);
    jobq_cli_queues_fini(&qs);
    json_decref(ds);
    json_decref(list);
    return NULL;
}

/* ---- status ---- */

static const char status_usage[] =
    "Usage: jobq status [--json] [--watch]\n"
    "Queues (waiting, in-flight, scheduled, parked: waiting for the jobs they\n"
    "depend on, dead), daemons and their workers (current job and how long it\n"
    "has run), the processed/failed totals, and the rates over the last minute\n"
    "that the live daemons report. The queues are those with keys under the\n"
    "prefix (<prefix>:{QUEUE}:...) plus those the registered daemons serve; the\n"
    "totals are summed over them.\n\n"
    "      --json   one JSON document (with --watch: one per line)\n"
    "  -w, --watch  refresh every second until interrupted\n";

/* The queue table: one row per queue plus the totals; a PARKED column only
 * when some job waits for others, a STATE column only when some queue is
 * paused. */
static void print_queues(json_t *s) {
    size_t i;
    json_t *q, *totals = json_object_get(s, "totals");
    bool any_paused = false;
    json_array_foreach(json_object_get(s, "queues"), i, q) any_paused = any_paused || json_is_true(json_object_get(q, "paused"));
    /* The count columns; an optional one only when its total is not 0. */
    static const struct {
        const char *field, *title;
        bool optional;
    } all[] = {{"waiting", "WAITING", false}, {"inflight", "IN-FLIGHT", false}, {"scheduled", "SCHEDULED", false},
               {"parked", "PARKED", true},    {"dead", "DEAD", false}};
    enum { NALL = sizeof all / sizeof *all };
    const char *fields[NALL], *row[1 + NALL + 1]; /* QUEUE, the counts, STATE */
    int ncounts = 0;
    row[0] = "QUEUE";
    for (size_t j = 0; j < NALL; j++) {
        if (all[j].optional && json_integer_value(json_object_get(totals, all[j].field)) == 0) continue;
        fields[ncounts] = all[j].field;
        row[1 + ncounts++] = all[j].title;
    }
    int ncols = 1 + ncounts + any_paused;
    if (any_paused) row[1 + ncounts] = "STATE";
    jobq_cli_table t;
    jobq_cli_table_init(&t, ncols, ((1u << ncounts) - 1) << 1);
    jobq_cli_table_add_row(&t, row);
    char n[NALL][24];
    /* The queues' rows, then the totals' (a NULL queue). */
    json_t *queues = json_object_get(s, "queues");
    for (i = 0; i <= json_array_size(queues); i++) {
        json_t *from = json_array_get(queues, i);
        for (int j = 0; j < ncounts; j++) {
            json_t *count = json_object_get(from ? from : totals, fields[j]);
            snprintf(n[j], sizeof n[j], "%lld", (long long)json_integer_value(count));
            row[1 + j] = n[j];
        }
        row[0] = from ? json_string_value(json_object_get(from, "name")) : "(total)";
        if (any_paused) row[1 + ncounts] = from && json_is_true(json_object_get(from, "paused")) ? "paused" : "";
        jobq_cli_table_add_row(&t, row);
    }
    jobq_cli_table_print(&t, stdout, 0);
    jobq_cli_table_fini(&t);
}

/* One row of the daemon table for d. */
static void add_daemon_row(jobq_cli_table *t, json_t *d, double now) {
    bool alive = json_is_true(json_object_get(d, "alive"));
    json_t *hb = json_object_get(d, "heartbeat_at"), *st = json_object_get(d, "started_at");
    char up[32] = "-", beat[80] = "-", ago[64], nw[16] = "-", nb[16] = "-", qs[256] = "";
    if (alive && json_is_number(st)) jobq_cli_duration(up, sizeof up, now - json_number_value(st));
    if (json_is_number(hb)) {
        jobq_cli_duration(ago, sizeof ago, now - json_number_value(hb));
        snprintf(beat, sizeof beat, "%s ago", ago);
    }
    if (alive) {
        snprintf(nw, sizeof nw, "%zu", json_array_size(json_object_get(d, "workers")));
        snprintf(nb, sizeof nb, "%lld", (long long)json_integer_value(json_object_get(d, "busy")));
    }
    size_t j;
    json_t *q;
    json_array_foreach(json_object_get(d, "queues"), j, q) {
        size_t len = strlen(qs);
        snprintf(qs + len, sizeof qs - len, "%s%s", len ? "," : "", json_string_value(q) ? json_string_value(q) : "");
    }
    jobq_cli_table_add(t, json_string_value(json_object_get(d, "id")), alive ? "alive" : "dead",
                       json_string_value(json_object_get(d, "version")), up, beat, nw, nb, qs);
}

/* One row of the worker table for worker w of daemon id. */
static void add_worker_row(jobq_cli_table *wt, const char *id, json_t *w) {
    char name[400], pid[16], running[32] = "", done[24], progress[300] = "";
    snprintf(name, sizeof name, "%s #%lld", id, (long long)json_integer_value(json_object_get(w, "number")));
    snprintf(pid, sizeof pid, "%lld", (long long)json_integer_value(json_object_get(w, "pid")));
    snprintf(done, sizeof done, "%lld", (long long)json_integer_value(json_object_get(w, "jobs_done")));
    const char *job = json_string_value(json_object_get(w, "job"));
    json_t *rf = json_object_get(w, "running_for"), *p = json_object_get(w, "progress");
    if (job && json_is_number(rf)) jobq_cli_duration(running, sizeof running, json_number_value(rf));
    if (job && p) {
        const char *m = json_string_value(json_object_get(p, "message"));
        snprintf(progress, sizeof progress, "%.0f%%%s%.200s", json_number_value(json_object_get(p, "fraction")) * 100,
                 m ? " " : "", m ? m : "");
    }
    jobq_cli_table_add(wt, name, pid, job ? "busy" : "idle", job ? json_string_value(json_object_get(w, "queue")) : "",
                       job ? job : "", running, done, progress);
}

/* The daemon table, then the workers of the live ones; a PROGRESS column
 * only when some running job reported progress. */
static void print_daemons(json_t *s) {
    double now = json_number_value(json_object_get(s, "time"));
    json_t *ds = json_object_get(s, "daemons"), *d, *w;
    size_t i, j;
    if (json_array_size(ds) == 0) {
        printf("no daemons registered\n");
        return;
    }
    bool any_progress = false;
    json_array_foreach(ds, i, d) {
        json_array_foreach(json_object_get(d, "workers"), j, w) any_progress = any_progress || json_object_get(w, "progress");
    }
    jobq_cli_table t, wt;
    jobq_cli_table_init(&t, 8, 0x60);
    jobq_cli_table_init(&wt, any_progress ? 8 : 7, 0x62);
    jobq_cli_table_add(&t, "DAEMON", "STATE", "VERSION", "UP", "HEARTBEAT", "WORKERS", "BUSY", "QUEUES");
    jobq_cli_table_add(&wt, "WORKER", "PID", "STATE", "QUEUE", "JOB", "RUNNING", "DONE", "PROGRESS");
    json_array_foreach(ds, i, d) {
        add_daemon_row(&t, d, now);
        if (!json_is_true(json_object_get(d, "alive"))) continue;
        const char *id = json_string_value(json_object_get(d, "id"));
        json_array_foreach(json_object_get(d, "workers"), j, w) add_worker_row(&wt, id, w);
    }
    jobq_cli_table_print(&t, stdout, 0);
    putchar('\n');
    if (wt.rows > 1)
        jobq_cli_table_print(&wt, stdout, 0);
    else
        printf("no live workers\n");
    jobq_cli_table_fini(&t);
    jobq_cli_table_fini(&wt);
}

/* The processed/failed counters and the rates of the last minute. */
static void print_job_totals(json_t *s) {
    json_t *jobs = json_object_get(s, "jobs");
    json_t *pr = json_object_get(jobs, "processed_per_minute"), *fr = json_object_get(jobs, "failed_per_minute");
    printf("jobs: %lld processed, %lld failed", (long long)json_integer_value(json_object_get(jobs, "processed")),
           (long long)json_integer_value(json_object_get(jobs, "failed")));
    if (json_is_number(pr) && json_is_number(fr)) {
        char window[64];
        jobq_cli_duration(window, sizeof window, json_number_value(json_object_get(jobs, "rate_window")));
        printf("; last minute: %.1f/min processed, %.1f/min failed (measured over %s)\n", json_number_value(pr),
               json_number_value(fr), window);
    } else {
        printf("; rate: n/a (no live daemon reports one yet)\n");
    }
}

static void print_status(json_t *s) {
    char when[64];
    jobq_cli_time(when, sizeof when, json_number_value(json_object_get(s, "time")), false);
    printf("jobq %s  redis %s  prefix %s  %s\n\n", JOBQ_VERSION, json_string_value(json_object_get(s, "redis")),
           json_string_value(json_object_get(s, "prefix")), when);
    print_queues(s);
    putchar('\n');
    print_daemons(s);
    putchar('\n');
    print_job_totals(s);
}

typedef struct status_opts {
    bool as_json, watch;
} status_opts;

int jobq_cli_status(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {
        JOBQ_CLI_OPT_FLAG("json", 0, status_opts, as_json),
        JOBQ_CLI_OPT_FLAG("watch", 'w', status_opts, watch),
        JOBQ_CLI_OPT_END,
    };
    status_opts o = {false, false};
    int nargs;
    const jobq_cli_spec spec = {status_usage, opts, &o, NULL, 0, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    bool as_json = o.as_json, watch = o.watch;
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    bool tty = isatty(STDOUT_FILENO);
    int shown = 0;
    for (;;) {
        double started = jobq_now();
        json_t *s = jobq_redis_connected(c->r) ? jobq_cli_snapshot(c) : NULL;
        if (!s && !watch) return JOBQ_CLI_USAGE;
        if (s) {
            if (as_json) {
                jobq_cli_print_json(s, !watch);
            } else {
                if (watch && tty)
                    fputs("\033[H\033[2J", stdout);
                else if (watch && shown++ > 0)
                    putchar('\n');
                print_status(s);
                fflush(stdout);
            }
            json_decref(s);
        } else {
            jobq_err err;
            if (jobq_redis_connect(c->r, &err) != 0) jobq_cli_error("%s; retrying", err.msg);
        }
        if (!watch || ferror(stdout)) return JOBQ_CLI_OK;
        double left = 1.0 - (jobq_now() - started);
        if (left > 0) {
            struct timespec ts = {0, (long)(left * 1e9)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
    }
}
