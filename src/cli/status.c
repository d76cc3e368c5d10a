/*
 * jobq status and jobq metrics: one snapshot of the queues, the daemons and
 * workers from the registry (a daemon without its heartbeat key is dead) and
 * the counters, printed for humans, as JSON, or as Prometheus text.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/job.h"

/* Per-queue scheduled and dead counts decode at most this many entries. */
#define SAMPLE_LIMIT 10000

static json_t *queue_entry(json_t *queues, const char *name) {
    json_t *q = json_object_get(queues, name);
    if (!q) {
        q = json_pack("{s:s, s:i, s:i, s:i, s:i}", "name", name, "waiting", 0, "inflight", 0,
                      "scheduled", 0, "dead", 0);
        json_object_set_new(queues, name, q);
    }
    return q;
}

static void add_count(json_t *queues, const char *name, const char *field, json_int_t n) {
    json_t *q = queue_entry(queues, name);
    json_object_set_new(q, field, json_integer(json_integer_value(json_object_get(q, field)) + n));
}

static json_int_t integer_reply(jobq_cli *c, int argc, const char **argv, bool *ok) {
    json_t *r;
    if (jobq_cli_command(c, &r, argc, argv, NULL) != 0) {
        *ok = false;
        return 0;
    }
    json_int_t n = json_is_integer(r)  ? json_integer_value(r)
                   : json_is_string(r) ? strtoll(json_string_value(r), NULL, 10)
                                       : 0;
    json_decref(r);
    return n;
}

/* Daemons from the registry, each with "alive" and its workers' running
 * time. Adds their queues to queues. */
static json_t *daemons(jobq_cli *c, double now, json_t *queues, bool *ok) {
    char key[512];
    jobq_cli_key(c, key, sizeof key, "daemons");
    const char *argv[] = {"HGETALL", key};
    json_t *r, *out = json_array();
    if (jobq_cli_command(c, &r, 2, argv, NULL) != 0) {
        *ok = false;
        return out;
    }
    for (size_t i = 0; i + 1 < json_array_size(r); i += 2) {
        const char *id = json_string_value(json_array_get(r, i));
        json_t *info = json_loads(json_string_value(json_array_get(r, i + 1)), 0, NULL);
        if (!id) continue;
        if (!json_is_object(info)) {
            json_decref(info);
            info = json_object();
        }
        char hb[600];
        jobq_cli_key(c, hb, sizeof hb, "daemon:%s", id);
        const char *exists[] = {"EXISTS", hb};
        bool alive = integer_reply(c, 2, exists, ok) > 0;
        json_t *d = json_pack("{s:s, s:b}", "id", id, "alive", alive);
        json_object_update_missing(d, info);
        size_t j;
        json_t *w, *qname;
        json_array_foreach(json_object_get(d, "workers"), j, w) {
            json_t *started = json_object_get(w, "job_started_at");
            if (json_is_number(started))
                json_object_set_new(w, "running_for", json_real(now - json_number_value(started)));
        }
        json_array_foreach(json_object_get(d, "queues"), j, qname) {
            if (json_is_string(qname)) queue_entry(queues, json_string_value(qname));
        }
        json_array_append_new(out, d);
        json_decref(info);
    }
    json_decref(r);
    return out;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The queue of a scheduled payload or a dead entry. */
static const char *entry_queue(json_t *doc, bool dead) {
    const char *q = json_string_value(json_object_get(json_object_get(doc, "_jobq"), "queue"));
    if (!q) q = json_string_value(json_object_get(doc, "queue"));
    return q && *q ? q : dead ? NULL : "default";
}

/* Count the entries of a scheduled set or the dead list per queue. Returns
 * the total; *sampled when only the first SAMPLE_LIMIT were decoded. */
static json_int_t count_per_queue(jobq_cli *c, const char *key, bool zset, json_t *queues, bool *sampled,
                                  bool *ok) {
    const char *argv[] = {zset ? "ZCARD" : "LLEN", key};
    json_int_t total = integer_reply(c, 2, argv, ok);
    if (!*ok || total == 0) return total;
    if (total > SAMPLE_LIMIT) *sampled = true;
    json_t *all = jobq_cli_range(c, key, zset, SAMPLE_LIMIT);
    if (!all) {
        *ok = false;
        return total;
    }
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s) {
        json_t *doc = json_loadb(json_string_value(s), json_string_length(s), 0, NULL);
        const char *q = entry_queue(doc, !zset);
        if (q) add_count(queues, q, zset ? "scheduled" : "dead", 1);
        json_decref(doc);
    }
    json_decref(all);
    return total;
}

json_t *jobq_cli_daemons(jobq_cli *c) {
    bool ok = true;
    json_t *queues = json_object();
    json_t *ds = daemons(c, jobq_now(), queues, &ok);
    json_decref(queues);
    if (ok) return ds;
    json_decref(ds);
    return NULL;
}

json_t *jobq_cli_snapshot(jobq_cli *c) {
    bool ok = true, sampled = false;
    double now = jobq_now();
    json_t *queues = json_object();
    json_t *ds = daemons(c, now, queues, &ok);

    char key[512], prefix[512];
    size_t plen = strlen(jobq_cli_key(c, prefix, sizeof prefix, "queue:"));
    json_t *keys = ok ? jobq_cli_scan(c, "queue:") : NULL;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        queue_entry(queues, json_string_value(k) + plen);
    }
    json_decref(keys);

    /* <prefix>:inflight:<queue>:<host>:<pid> */
    plen = strlen(jobq_cli_key(c, prefix, sizeof prefix, "inflight:"));
    json_int_t inflight = 0;
    keys = ok ? jobq_cli_scan(c, "inflight:") : NULL;
    json_array_foreach(keys, i, k) {
        char name[512];
        snprintf(name, sizeof name, "%s", json_string_value(k) + plen);
        char *cut = strrchr(name, ':');
        if (cut) *cut = '\0';
        if (!cut || !(cut = strrchr(name, ':'))) continue;
        *cut = '\0';
        const char *argv[] = {"LLEN", json_string_value(k)};
        json_int_t n = integer_reply(c, 2, argv, &ok);
        if (n > 0 || json_object_get(queues, name)) add_count(queues, name, "inflight", n);
        inflight += n;
    }
    json_decref(keys);

    json_int_t scheduled = 0, dead = 0;
    if (ok) {
        jobq_cli_key(c, key, sizeof key, "scheduled");
        scheduled = count_per_queue(c, key, true, queues, &sampled, &ok);
    }
    if (ok) {
        jobq_cli_key(c, key, sizeof key, "dead");
        dead = count_per_queue(c, key, false, queues, &sampled, &ok);
    }

    /* Waiting counts, and the queues sorted by name. */
    json_int_t waiting = 0;
    size_t nq = json_object_size(queues), at = 0;
    const char **names = calloc(nq ? nq : 1, sizeof *names);
    const char *name;
    json_t *q;
    json_object_foreach(queues, name, q) {
        if (names) names[at++] = name;
    }
    if (names) qsort(names, at, sizeof *names, cmp_names);
    json_t *list = json_array();
    for (i = 0; i < at; i++) {
        name = names[i];
        q = json_object_get(queues, name);
        jobq_cli_key(c, key, sizeof key, "queue:%s", name);
        const char *argv[] = {"LLEN", key};
        json_int_t n = ok ? integer_reply(c, 2, argv, &ok) : 0;
        json_object_set_new(q, "waiting", json_integer(n));
        waiting += n;
        json_array_append(list, q);
    }
    free(names);
    char kp[512], kf[512];
    jobq_cli_key(c, kp, sizeof kp, "stats:processed");
    jobq_cli_key(c, kf, sizeof kf, "stats:failed");
    const char *gp[] = {"GET", kp}, *gf[] = {"GET", kf};
    json_int_t processed = ok ? integer_reply(c, 2, gp, &ok) : 0;
    json_int_t failed = ok ? integer_reply(c, 2, gf, &ok) : 0;

    /* Each live daemon reports its own rates over the last minute. */
    json_int_t total_workers = 0, busy = 0;
    double per_minute[2] = {0, 0}, window = 0;
    bool have_rates = false;
    json_t *d;
    json_array_foreach(ds, i, d) {
        if (!json_is_true(json_object_get(d, "alive"))) continue;
        json_t *pr = json_object_get(d, "processed_per_minute"), *fr = json_object_get(d, "failed_per_minute");
        if (json_is_number(pr) && json_is_number(fr)) {
            have_rates = true;
            per_minute[0] += json_number_value(pr);
            per_minute[1] += json_number_value(fr);
            double w = json_number_value(json_object_get(d, "rate_window"));
            if (w > window) window = w;
        }
        size_t j;
        json_t *w;
        json_array_foreach(json_object_get(d, "workers"), j, w) {
            total_workers++;
            if (json_is_string(json_object_get(w, "job"))) busy++;
        }
    }
    json_decref(queues);
    if (!ok) {
        json_decref(ds);
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:f, s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I}, s:b, s:o, s:{s:I, s:I},"
                     " s:{s:I, s:I, s:o, s:o, s:o}}",
                     "time", now, "redis", jobq_queue_url_redacted(c->q), "prefix", c->key_prefix,
                     "queues", list, "totals", "waiting", (json_int_t)waiting, "inflight", inflight,
                     "scheduled", scheduled, "dead", dead, "per_queue_sampled", sampled, "daemons", ds,
                     "workers", "total", total_workers, "busy", busy, "jobs", "processed", processed,
                     "failed", failed, "processed_per_minute",
                     have_rates ? json_real(per_minute[0]) : json_null(), "failed_per_minute",
                     have_rates ? json_real(per_minute[1]) : json_null(), "rate_window",
                     have_rates ? json_real(window) : json_null());
}

/* ---- status ---- */

static const char status_usage[] =
    "Usage: jobq status [--json] [--watch]\n"
    "Queues (waiting, in-flight, scheduled, dead), daemons and their workers\n"
    "(current job and how long it has run), the processed/failed totals, and\n"
    "the rates over the last minute that the live daemons report.\n\n"
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
    if (json_is_true(json_object_get(s, "per_queue_sampled")))
        printf("(per-queue scheduled and dead counts cover the first %d entries)\n", SAMPLE_LIMIT);

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

int jobq_cli_status(jobq_cli *c, int argc, char **argv) {
    enum { O_JSON = 1, O_WATCH };
    static const jobq_cli_opt opts[] = {
        {"json", 0, JOBQ_CLI_NOARG, O_JSON}, {"watch", 'w', JOBQ_CLI_NOARG, O_WATCH}, {NULL, 0, 0, 0}};
    bool as_json = false, watch = false;
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, c, opts, argc, argv);
    const char *v;
    int o;
    while ((o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        if (o == JOBQ_CLI_HELP) return fputs(status_usage, stdout), JOBQ_CLI_OK;
        if (o == JOBQ_CLI_BAD) return JOBQ_CLI_USAGE;
        if (o == O_JSON) as_json = true;
        if (o == O_WATCH) watch = true;
        if (o == JOBQ_CLI_POSITIONAL) return jobq_cli_error("status: unexpected argument '%s'", v);
    }
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    bool tty = isatty(STDOUT_FILENO);
    int shown = 0;
    for (;;) {
        double started = jobq_now();
        json_t *s = jobq_queue_connected(c->q) ? jobq_cli_snapshot(c) : NULL;
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
            if (jobq_queue_connect(c->q, &err) != 0) jobq_cli_error("%s; retrying", err.msg);
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

int jobq_cli_metrics(jobq_cli *c, int argc, char **argv) {
    enum { O_OUTPUT = 1 };
    static const jobq_cli_opt opts[] = {{"output", 'o', JOBQ_CLI_ARG, O_OUTPUT}, {NULL, 0, 0, 0}};
    const char *path = NULL;
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, c, opts, argc, argv);
    const char *v;
    int o;
    while ((o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        if (o == JOBQ_CLI_HELP) return fputs(metrics_usage, stdout), JOBQ_CLI_OK;
        if (o == JOBQ_CLI_BAD) return JOBQ_CLI_USAGE;
        if (o == O_OUTPUT) path = v;
        if (o == JOBQ_CLI_POSITIONAL) return jobq_cli_error("metrics: unexpected argument '%s'", v);
    }
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
