/*
 * jobq status and jobq metrics: one snapshot of the queues (found with SCAN,
 * each counted from its own keys), the daemons and workers from the registry
 * (a daemon without its heartbeat key is dead) and the counters of every
 * queue's stats hash, printed for humans, as JSON, or as Prometheus text.
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

/* The counts of one queue, each command run only for the keys the scan
 * found. */
typedef struct queue_counts {
    long long waiting, inflight, scheduled, dead, processed, failed;
} queue_counts;

/* "processed" and "failed" of the stats hash: HMGET. */
static int stats_of(jobq_cli *c, const char *key, queue_counts *n) {
    const char *argv[] = {"HMGET", key, JOBQ_STATS_PROCESSED, JOBQ_STATS_FAILED};
    json_t *r;
    if (jobq_cli_command(c, &r, 4, argv, NULL) != 0) return -1;
    const char *p = json_string_value(json_array_get(r, 0)), *f = json_string_value(json_array_get(r, 1));
    n->processed = p ? strtoll(p, NULL, 10) : 0;
    n->failed = f ? strtoll(f, NULL, 10) : 0;
    json_decref(r);
    return 0;
}

/* A count (LLEN, ZCARD) of key argv[1]; a key of another type (someone
 * SET it) counts 0, with a warning, instead of failing the whole status. */
static int count_of(jobq_cli *c, long long *out, const char **argv) {
    json_t *r;
    jobq_err err;
    *out = 0;
    if (jobq_redis_command_json(c->r, &r, &err, 2, argv, NULL) != 0) {
        if (err.code != JOBQ_E_REPLY || !strstr(err.msg, "WRONGTYPE")) return jobq_cli_redis_error(c, &err), -1;
        char shown[300];
        fprintf(stderr, "jobq: warning: %s holds another type of value (counted as 0)\n",
                jobq_cli_escape(shown, sizeof shown, argv[1], strlen(argv[1])));
        return 0;
    }
    *out = json_integer_value(r);
    json_decref(r);
    return 0;
}

static int count_queue(jobq_cli *c, const jobq_cli_queue *q, queue_counts *n) {
    static const struct {
        enum jobq_key_kind kind;
        const char *command;
        size_t offset;
    } lengths[] = {
        {JOBQ_KEY_QUEUE, "LLEN", offsetof(queue_counts, waiting)},
        {JOBQ_KEY_SCHEDULED, "ZCARD", offsetof(queue_counts, scheduled)},
        {JOBQ_KEY_DEAD, "LLEN", offsetof(queue_counts, dead)},
    };
    char key[JOBQ_KEY_MAX];
    memset(n, 0, sizeof *n);
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        if (!(q->kinds & (1u << lengths[i].kind))) continue;
        const char *argv[] = {lengths[i].command, jobq_cli_key(c, key, lengths[i].kind, q->name)};
        if (count_of(c, (long long *)((char *)n + lengths[i].offset), argv) != 0) return -1;
    }
    size_t i;
    json_t *k;
    json_array_foreach(q->inflight, i, k) {
        const char *argv[] = {"LLEN", json_string_value(k)};
        long long len;
        if (count_of(c, &len, argv) != 0) return -1;
        n->inflight += len;
    }
    if (q->kinds & (1u << JOBQ_KEY_STATS)) return stats_of(c, jobq_cli_key(c, key, JOBQ_KEY_STATS, q->name), n);
    return 0;
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
    queue_counts total = {0};
    if (jobq_cli_queues_scan(c, &qs) != 0 || !(ds = daemons(c, now, &qs))) goto fail;
    jobq_cli_queues_sort(&qs);
    for (size_t i = 0; i < qs.n; i++) {
        queue_counts n;
        if (count_queue(c, &qs.q[i], &n) != 0) goto fail;
        json_array_append_new(list, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "name", qs.q[i].name,
                                              "waiting", (json_int_t)n.waiting, "inflight", (json_int_t)n.inflight,
                                              "scheduled", (json_int_t)n.scheduled, "dead", (json_int_t)n.dead,
                                              "processed", (json_int_t)n.processed, "failed", (json_int_t)n.failed));
        total.waiting += n.waiting;
        total.inflight += n.inflight;
        total.scheduled += n.scheduled;
        total.dead += n.dead;
        total.processed += n.processed;
        total.failed += n.failed;
    }
    jobq_cli_queues_fini(&qs);
    daemon_totals t;
    sum_daemons(ds, &t);
    return json_pack("{s:f, s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I}, s:b, s:o, s:{s:I, s:I},"
                     " s:{s:I, s:I, s:o, s:o, s:o}}",
                     "time", now, "redis", jobq_redis_url_redacted(c->r), "prefix", c->key_prefix, "queues", list,
                     "totals", "waiting", (json_int_t)total.waiting, "inflight", (json_int_t)total.inflight,
                     "scheduled", (json_int_t)total.scheduled, "dead", (json_int_t)total.dead,
                     "per_queue_sampled", false, "daemons", ds, "workers", "total", t.workers, "busy", t.busy,
                     "jobs", "processed", (json_int_t)total.processed, "failed", (json_int_t)total.failed,
                     "processed_per_minute", t.have_rates ? json_real(t.per_minute[0]) : json_null(),
                     "failed_per_minute", t.have_rates ? json_real(t.per_minute[1]) : json_null(), "rate_window",
                     t.have_rates ? json_real(t.window) : json_null());
fail:
    jobq_cli_queues_fini(&qs);
    json_decref(ds);
    json_decref(list);
    return NULL;
}

/* ---- status ---- */

static const char status_usage[] =
    "Usage: jobq status [--json] [--watch]\n"
    "Queues (waiting, in-flight, scheduled, dead), daemons and their workers\n"
    "(current job and how long it has run), the processed/failed totals, and\n"
    "the rates over the last minute that the live daemons report. The queues\n"
    "are those with keys under the prefix (<prefix>:{QUEUE}:...) plus those the\n"
    "registered daemons serve; the totals are summed over them.\n\n"
    "      --json   one JSON document (with --watch: one per line)\n"
    "  -w, --watch  refresh every second until interrupted\n";

static void print_status(json_t *s) {
    char buf[64], buf2[64];
    double now = json_number_value(json_object_get(s, "time"));
    jobq_cli_time(buf, sizeof buf, now, false);
    printf("jobq %s  redis %s  prefix %s  %s\n\n", JOBQ_VERSION,
           json_string_value(json_object_get(s, "redis")),
           json_string_value(json_object_get(s, "prefix")), buf);

    jobq_cli_table t;
    jobq_cli_table_init(&t, 5, 0x1e);
    jobq_cli_table_add(&t, "QUEUE", "WAITING", "IN-FLIGHT", "SCHEDULED", "DEAD");
    size_t i;
    json_t *q;
    static const char *const cols[] = {"waiting", "inflight", "scheduled", "dead"};
    char n[4][24];
    json_array_foreach(json_object_get(s, "queues"), i, q) {
        for (int j = 0; j < 4; j++)
            snprintf(n[j], sizeof n[j], "%lld",
                     (long long)json_integer_value(json_object_get(q, cols[j])));
        jobq_cli_table_add(&t, json_string_value(json_object_get(q, "name")), n[0], n[1], n[2], n[3]);
    }
    json_t *totals = json_object_get(s, "totals");
    for (int j = 0; j < 4; j++)
        snprintf(n[j], sizeof n[j], "%lld",
                 (long long)json_integer_value(json_object_get(totals, cols[j])));
    jobq_cli_table_add(&t, "(total)", n[0], n[1], n[2], n[3]);
    jobq_cli_table_print(&t, stdout, 0);
    jobq_cli_table_fini(&t);

    json_t *ds = json_object_get(s, "daemons"), *d;
    putchar('\n');
    if (json_array_size(ds) == 0) printf("no daemons registered\n");
    jobq_cli_table wt;
    jobq_cli_table_init(&t, 8, 0x60);
    jobq_cli_table_init(&wt, 7, 0x62);
    jobq_cli_table_add(&t, "DAEMON", "STATE", "VERSION", "UP", "HEARTBEAT", "WORKERS", "BUSY", "QUEUES");
    jobq_cli_table_add(&wt, "WORKER", "PID", "STATE", "QUEUE", "JOB", "RUNNING", "DONE");
    json_array_foreach(ds, i, d) {
        bool alive = json_is_true(json_object_get(d, "alive"));
        const char *id = json_string_value(json_object_get(d, "id"));
        json_t *hb = json_object_get(d, "heartbeat_at"), *st = json_object_get(d, "started_at");
        char up[32] = "-", beat[80] = "-", nw[16] = "-", nb[16] = "-", qs[256] = "";
        if (alive && json_is_number(st)) jobq_cli_duration(up, sizeof up, now - json_number_value(st));
        if (json_is_number(hb)) {
            jobq_cli_duration(buf, sizeof buf, now - json_number_value(hb));
            snprintf(beat, sizeof beat, "%s ago", buf);
        }
        json_t *workers = json_object_get(d, "workers"), *w;
        if (alive) {
            snprintf(nw, sizeof nw, "%zu", json_array_size(workers));
            snprintf(nb, sizeof nb, "%lld", (long long)json_integer_value(json_object_get(d, "busy")));
        }
        size_t j;
        json_array_foreach(json_object_get(d, "queues"), j, q) {
            size_t len = strlen(qs);
            snprintf(qs + len, sizeof qs - len, "%s%s", len ? "," : "",
                     json_string_value(q) ? json_string_value(q) : "");
        }
        jobq_cli_table_add(&t, id, alive ? "alive" : "dead",
                           json_string_value(json_object_get(d, "version")), up, beat, nw, nb, qs);
        if (!alive) continue;
        json_array_foreach(workers, j, w) {
            char name[400], pid[16], running[32] = "", done[24];
            snprintf(name, sizeof name, "%s #%lld", id,
                     (long long)json_integer_value(json_object_get(w, "number")));
            snprintf(pid, sizeof pid, "%lld", (long long)json_integer_value(json_object_get(w, "pid")));
            snprintf(done, sizeof done, "%lld",
                     (long long)json_integer_value(json_object_get(w, "jobs_done")));
            const char *job = json_string_value(json_object_get(w, "job"));
            json_t *rf = json_object_get(w, "running_for");
            if (job && json_is_number(rf))
                jobq_cli_duration(running, sizeof running, json_number_value(rf));
            jobq_cli_table_add(&wt, name, pid, job ? "busy" : "idle",
                               job ? json_string_value(json_object_get(w, "queue")) : "", job ? job : "",
                               running, done);
        }
    }
    if (json_array_size(ds)) {
        jobq_cli_table_print(&t, stdout, 0);
        putchar('\n');
        if (wt.rows > 1)
            jobq_cli_table_print(&wt, stdout, 0);
        else
            printf("no live workers\n");
    }
    jobq_cli_table_fini(&t);
    jobq_cli_table_fini(&wt);

    json_t *jobs = json_object_get(s, "jobs");
    json_t *pr = json_object_get(jobs, "processed_per_minute"),
           *fr = json_object_get(jobs, "failed_per_minute");
    printf("\njobs: %lld processed, %lld failed",
           (long long)json_integer_value(json_object_get(jobs, "processed")),
           (long long)json_integer_value(json_object_get(jobs, "failed")));
    if (json_is_number(pr) && json_is_number(fr)) {
        jobq_cli_duration(buf2, sizeof buf2, json_number_value(json_object_get(jobs, "rate_window")));
        printf("; last minute: %.1f/min processed, %.1f/min failed (measured over %s)\n",
               json_number_value(pr), json_number_value(fr), buf2);
    } else {
        printf("; rate: n/a (no live daemon reports one yet)\n");
    }
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

/* ---- metrics ---- */

static const char metrics_usage[] =
    "Usage: jobq metrics [-o FILE]\n"
    "Print queue depths, in-flight, scheduled and dead jobs, the processed and\n"
    "failed counters and the workers in the Prometheus text format.\n\n"
    "  -o, --output FILE  write FILE atomically instead (for node_exporter's\n"
    "                     textfile collector: FILE ends in .prom)\n";

/* A label value with \, " and newline escaped. */
static void label(FILE *out, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"') fputc('\\', out);
        if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

static void help(FILE *out, const char *name, const char *type, const char *text) {
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static void write_metrics(json_t *s, FILE *out) {
    size_t i;
    json_t *q, *d;
    static const struct {
        const char *name, *field, *help;
    } per_queue[] = {
        {"jobq_queue_waiting", "waiting", "Jobs waiting in the queue."},
        {"jobq_queue_inflight", "inflight", "Jobs of the queue taken by a worker and not finished."},
    };
    for (size_t m = 0; m < 2; m++) {
        help(out, per_queue[m].name, "gauge", per_queue[m].help);
        json_array_foreach(json_object_get(s, "queues"), i, q) {
            fprintf(out, "%s{queue=\"", per_queue[m].name);
            label(out, json_string_value(json_object_get(q, "name")));
            fprintf(out, "\"} %lld\n",
                    (long long)json_integer_value(json_object_get(q, per_queue[m].field)));
        }
    }
    json_t *totals = json_object_get(s, "totals"), *jobs = json_object_get(s, "jobs");
    help(out, "jobq_scheduled", "gauge", "Delayed jobs and retries waiting for their time.");
    fprintf(out, "jobq_scheduled %lld\n",
            (long long)json_integer_value(json_object_get(totals, "scheduled")));
    help(out, "jobq_dead", "gauge", "Jobs in the dead-letter list.");
    fprintf(out, "jobq_dead %lld\n", (long long)json_integer_value(json_object_get(totals, "dead")));
    help(out, "jobq_jobs_processed_total", "counter", "Jobs finished, succeeded or failed for good.");
    fprintf(out, "jobq_jobs_processed_total %lld\n",
            (long long)json_integer_value(json_object_get(jobs, "processed")));
    help(out, "jobq_jobs_failed_total", "counter", "Jobs that failed for good.");
    fprintf(out, "jobq_jobs_failed_total %lld\n",
            (long long)json_integer_value(json_object_get(jobs, "failed")));

    /* Workers of live daemons, summed per host. */
    json_t *hosts = json_object();
    long long alive = 0, dead = 0;
    json_array_foreach(json_object_get(s, "daemons"), i, d) {
        if (!json_is_true(json_object_get(d, "alive"))) {
            dead++;
            continue;
        }
        alive++;
        const char *host = json_string_value(json_object_get(d, "host"));
        json_t *h = json_object_get(hosts, host ? host : "");
        if (!h) json_object_set_new(hosts, host ? host : "", h = json_pack("[i, i]", 0, 0));
        json_t *ws = json_object_get(d, "workers");
        json_array_set_new(
            h, 0,
            json_integer(json_integer_value(json_array_get(h, 0)) + (json_int_t)json_array_size(ws)));
        json_array_set_new(h, 1,
                           json_integer(json_integer_value(json_array_get(h, 1)) +
                                        json_integer_value(json_object_get(d, "busy"))));
    }
    static const char *const wnames[] = {"jobq_workers", "jobq_workers_busy"};
    static const char *const whelp[] = {"Worker processes of live daemons.", "Workers running a job."};
    for (int m = 0; m < 2; m++) {
        help(out, wnames[m], "gauge", whelp[m]);
        const char *host;
        json_t *h;
        json_object_foreach(hosts, host, h) {
            fprintf(out, "%s{host=\"", wnames[m]);
            label(out, host);
            fprintf(out, "\"} %lld\n", (long long)json_integer_value(json_array_get(h, (size_t)m)));
        }
    }
    json_decref(hosts);
    help(out, "jobq_daemons", "gauge", "Live daemons (heartbeat present).");
    fprintf(out, "jobq_daemons %lld\n", alive);
    help(out, "jobq_daemons_dead", "gauge", "Registered daemons whose heartbeat has expired.");
    fprintf(out, "jobq_daemons_dead %lld\n", dead);
}

typedef struct metrics_opts {
    const char *path;
} metrics_opts;

int jobq_cli_metrics(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {JOBQ_CLI_OPT_STRING("output", 'o', metrics_opts, path), JOBQ_CLI_OPT_END};
    metrics_opts o = {NULL};
    int nargs;
    const jobq_cli_spec spec = {metrics_usage, opts, &o, NULL, 0, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    const char *path = o.path;
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    json_t *s = jobq_cli_snapshot(c);
    if (!s) return JOBQ_CLI_USAGE;
    if (!path) {
        write_metrics(s, stdout);
        json_decref(s);
        return JOBQ_CLI_OK;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        json_decref(s);
        return jobq_cli_error("metrics: cannot write %s: %s", tmp, strerror(errno));
    }
    write_metrics(s, f);
    json_decref(s);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return jobq_cli_error("metrics: cannot write %s: %s", path, strerror(e));
    }
    return JOBQ_CLI_OK;
}
