/*
 * The Prometheus text exposition, one writer for `jobq metrics` (stdout, or
 * a file written atomically for node_exporter's textfile collector) and
 * `jobq web`'s /metrics: queue depths, job counters by outcome, workers,
 * daemons and the wait/run latency histograms of every queue
 * (protocol/histo.h). Every family has its HELP and TYPE line once, label
 * values are escaped, and histogram buckets are cumulative up to +Inf.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "protocol/histo.h"

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

static long long count_of(json_t *o, const char *field) {
    return (long long)json_integer_value(json_object_get(o, field));
}

/* jobq_jobs_total and jobq_queue_jobs, per queue. */
static void queue_metrics(json_t *s, FILE *out) {
    size_t i;
    json_t *q;
    help(out, "jobq_jobs_total", "counter",
         "Job attempts by how they ended: ok; retried (failed, scheduled again); failed (failed for good "
         "after its last attempt, dead-lettered); dead (rejected without running, dead-lettered); cancelled "
         "(stopped while running).");
    json_array_foreach(json_object_get(s, "queues"), i, q) {
        long long failed = count_of(q, "failed"), rejected = count_of(q, "rejected");
        const struct {
            const char *outcome;
            long long n;
        } rows[] = {
            {"ok", count_of(q, "processed") - failed},
            {"retried", count_of(q, "retried")},
            {"failed", failed - rejected},
            {"dead", rejected},
            {"cancelled", count_of(q, "cancelled")},
        };
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
            fputs("jobq_jobs_total{queue=\"", out);
            label(out, json_string_value(json_object_get(q, "name")));
            fprintf(out, "\",outcome=\"%s\"} %lld\n", rows[r].outcome, rows[r].n > 0 ? rows[r].n : 0);
        }
    }
    help(out, "jobq_queue_jobs", "gauge",
         "Jobs of the queue by state: waiting, scheduled (delayed or retrying), running (taken by a worker), "
         "parked (waiting for the jobs it depends on), dead (in the dead-letter list).");
    static const struct {
        const char *state, *field;
    } states[] = {{"waiting", "waiting"}, {"scheduled", "scheduled"}, {"running", "inflight"},
                  {"parked", "parked"},   {"dead", "dead"}};
    json_array_foreach(json_object_get(s, "queues"), i, q) {
        for (size_t k = 0; k < sizeof states / sizeof *states; k++) {
            fputs("jobq_queue_jobs{queue=\"", out);
            label(out, json_string_value(json_object_get(q, "name")));
            fprintf(out, "\",state=\"%s\"} %lld\n", states[k].state, count_of(q, states[k].field));
        }
    }
}

/* jobq_workers and jobq_daemons, from the live daemons. */
static void daemon_metrics(json_t *s, FILE *out) {
    size_t i;
    json_t *d;
    long long alive = 0, dead = 0, workers = 0, busy = 0;
    json_array_foreach(json_object_get(s, "daemons"), i, d) {
        if (!json_is_true(json_object_get(d, "alive"))) {
            dead++;
            continue;
        }
        alive++;
        size_t j;
        json_t *w;
        json_array_foreach(json_object_get(d, "workers"), j, w) {
            workers++;
            busy += json_is_string(json_object_get(w, "job"));
        }
    }
    help(out, "jobq_workers", "gauge", "Worker processes of live daemons: busy (running a job) or idle.");
    fprintf(out, "jobq_workers{state=\"busy\"} %lld\njobq_workers{state=\"idle\"} %lld\n", busy, workers - busy);
    help(out, "jobq_daemons", "gauge", "Live daemons (heartbeat present).");
    fprintf(out, "jobq_daemons %lld\n", alive);
    help(out, "jobq_daemons_dead", "gauge", "Registered daemons whose heartbeat has expired.");
    fprintf(out, "jobq_daemons_dead %lld\n", dead);
}

/* The two histogram families of the series read for the queues names. */
static void histogram_metrics(const jobq_histo_series *hs, size_t n, const char *const *names, FILE *out) {
    static const struct {
        enum jobq_histo_kind kind;
        const char *name, *help;
    } families[] = {
        {JOBQ_HISTO_WAIT, "jobq_job_wait_seconds",
         "Seconds from enqueue (for a retry: from when it was due) to handler start."},
        {JOBQ_HISTO_RUN, "jobq_job_run_seconds", "Seconds from handler start to its end, every attempt."},
    };
    for (size_t f = 0; f < 2; f++) {
        help(out, families[f].name, "histogram", families[f].help);
        for (size_t i = 0; i < n; i++) {
            const jobq_histo_series *h = &hs[i];
            if (h->kind != families[f].kind) continue;
            unsigned long long cumulative = 0;
            for (int b = 0; b < JOBQ_HISTO_BUCKETS; b++) {
                cumulative += h->buckets[b];
                fprintf(out, "%s_bucket{queue=\"", families[f].name);
                label(out, names[h->queue]);
                fputs("\",handler=\"", out);
                label(out, h->handler);
                fprintf(out, "\",le=\"%s\"} %llu\n", jobq_histo_le(b), cumulative);
            }
            const char *suffixes[] = {"_sum", "_count"};
            for (int k = 0; k < 2; k++) {
                fprintf(out, "%s%s{queue=\"", families[f].name, suffixes[k]);
                label(out, names[h->queue]);
                fputs("\",handler=\"", out);
                label(out, h->handler);
                if (k == 0) fprintf(out, "\"} %.9g\n", h->sum);
                else fprintf(out, "\"} %llu\n", h->count);
            }
        }
    }
}

int jobq_cli_histograms(jobq_cli *c, json_t *s, jobq_histo_series **hs, size_t *n, const char ***names) {
    json_t *queues = json_object_get(s, "queues");
    size_t nq = json_array_size(queues);
    *names = calloc(nq ? nq : 1, sizeof **names);
    if (!*names) return jobq_cli_error("out of memory"), -1;
    for (size_t i = 0; i < nq; i++) (*names)[i] = json_string_value(json_object_get(json_array_get(queues, i), "name"));
    jobq_err err;
    if (jobq_histo_read(c->r, c->key_prefix, *names, nq, hs, n, &err) != 0) {
        free(*names);
        *names = NULL;
        return jobq_cli_redis_error(c, &err);
    }
    return 0;
}

int jobq_cli_metrics_write(jobq_cli *c, json_t *s, FILE *out) {
    jobq_histo_series *hs;
    size_t n;
    const char **names;
    if (jobq_cli_histograms(c, s, &hs, &n, &names) != 0) return -1;
    queue_metrics(s, out);
    daemon_metrics(s, out);
    histogram_metrics(hs, n, names, out);
    jobq_histo_free(hs, n);
    free(names);
    return 0;
}

/* ---- jobq metrics ---- */

static const char metrics_usage[] =
    "Usage: jobq metrics [-o FILE]\n"
    "Print the Prometheus text format: jobs by queue and outcome, queue depths by\n"
    "state, workers, daemons and the wait/run latency histograms (the same as\n"
    "jobq web's /metrics; see README.md, \"Dashboard and metrics\").\n\n"
    "  -o, --output FILE  write FILE atomically instead (for node_exporter's\n"
    "                     textfile collector: FILE ends in .prom)\n";

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
        int rc = jobq_cli_metrics_write(c, s, stdout);
        json_decref(s);
        return rc == 0 ? JOBQ_CLI_OK : JOBQ_CLI_USAGE;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        json_decref(s);
        return jobq_cli_error("metrics: cannot write %s: %s", tmp, strerror(errno));
    }
    int rc = jobq_cli_metrics_write(c, s, f);
    json_decref(s);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed || rc != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        if (rc != 0) return JOBQ_CLI_USAGE;
        return jobq_cli_error("metrics: cannot write %s: %s", path, strerror(e));
    }
    return JOBQ_CLI_OK;
}
