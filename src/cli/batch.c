/*
 * jobq batch create and jobq batch status: a group of jobs queued in one
 * step with a callback job queued once all of them ended (protocol/batch.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/job.h"
#include "protocol/batch.h"

#define MAX_ARGS 1000      /* jobs given on the command line */
#define MAX_STDIN 1000000  /* jobs read from stdin */

static const char batch_usage[] =
    "Usage: jobq batch create [-q QUEUE] [--id ID] [--ttl S] --callback JOB-JSON [JOB-JSON...]\n"
    "       jobq batch status [-q QUEUE] [--json] ID\n"
    "create: queue the jobs (JSON objects as for RPUSH; read one per line from stdin\n"
    "when none is given) as one batch on QUEUE (default \"default\"), and print the\n"
    "batch id. When every job of the batch has ended for good (ok, failed, dead or\n"
    "cancelled while running), the callback job is queued once on the same queue,\n"
    "its args.batch = {\"id\", \"total\", \"ok\", \"failed\"} added to its own args.\n"
    "status: the batch's counts; without -q every queue is searched.\n\n"
    "  -q, --queue QUEUE     the batch's queue\n"
    "      --id ID           the batch id (default: a random one)\n"
    "      --callback JSON   the callback job, e.g. '{\"handler\":\"report\",\"args\":{\"to\":\"ops\"}}'\n"
    "      --ttl S           seconds the batch is kept once done (default 86400)\n"
    "      --json            status as JSON\n";

typedef struct batch_opts {
    const char *queue;
    const char *id;
    const char *callback;
    double ttl;
    bool as_json;
} batch_opts;

/* Jobs from stdin, one JSON object per non-blank line: a new array of n
 * strings (free with free_lines), or NULL after printing why. */
static char **read_lines(size_t *n) {
    char **lines = NULL, *line = NULL;
    size_t cap = 0, size = 0;
    ssize_t len;
    *n = 0;
    while ((len = getline(&line, &size, stdin)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len) continue;
        if (*n == MAX_STDIN) {
            jobq_cli_error("batch: more than %d jobs on stdin", MAX_STDIN);
            goto fail;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(lines, cap * sizeof *grown);
            if (!grown) goto nomem;
            lines = grown;
        }
        if (!(lines[*n] = strdup(line))) goto nomem;
        (*n)++;
    }
    free(line);
    return lines ? lines : calloc(1, sizeof *lines);
nomem:
    jobq_cli_error("out of memory");
fail:
    free(line);
    for (size_t i = 0; i < *n; i++) free(lines[i]);
    free(lines);
    return NULL;
}

static void free_lines(char **lines, size_t n) {
    for (size_t i = 0; lines && i < n; i++) free(lines[i]);
    free(lines);
}

static int create(jobq_cli *c, const batch_opts *o, const char **args, int nargs) {
    if (!o->callback) return jobq_cli_error("batch create: --callback JOB-JSON is required"), JOBQ_CLI_USAGE;
    char id[JOBQ_JOB_ID_MAX + 1];
    if (o->id) snprintf(id, sizeof id, "%s", o->id);
    else jobq_job_new_id(id, sizeof id);
    char **lines = NULL;
    size_t n = (size_t)nargs;
    if (nargs == 0 && !(lines = read_lines(&n))) return JOBQ_CLI_USAGE;
    if (jobq_cli_connect(c) != 0) {
        free_lines(lines, n);
        return JOBQ_CLI_USAGE;
    }
    json_t *ids = NULL;
    jobq_err err;
    int rc = jobq_batch_create(c->r, c->key_prefix, o->queue, id, o->callback,
                               lines ? (const char *const *)lines : args, n, (int)o->ttl, &ids, &err);
    free_lines(lines, n);
    if (rc != 0) {
        if (err.code == JOBQ_E_INVALID) return jobq_cli_error("batch create: %s", err.msg), JOBQ_CLI_USAGE;
        return jobq_cli_redis_error(c, &err), JOBQ_CLI_USAGE;
    }
    printf("%s\n", id);
    json_decref(ids);
    return JOBQ_CLI_OK;
}

/* The queue holding batch id: o->queue, else the first queue with it. */
static int find_queue(jobq_cli *c, const batch_opts *o, const char *id, json_t **status) {
    jobq_err err;
    if (o->queue) {
        int rc = jobq_batch_status(c->r, c->key_prefix, o->queue, id, status, &err);
        return rc < 0 ? jobq_cli_redis_error(c, &err) : rc;
    }
    jobq_cli_queues qs;
    if (jobq_cli_queues_scan(c, &qs) != 0) return -1;
    int rc = 1;
    for (size_t i = 0; rc == 1 && i < qs.n; i++) {
        if (!(qs.q[i].kinds & (1u << JOBQ_KEY_BATCH)) || !jobq_key_valid_queue(qs.q[i].name)) continue;
        rc = jobq_batch_status(c->r, c->key_prefix, qs.q[i].name, id, status, &err);
        if (rc < 0) rc = jobq_cli_redis_error(c, &err);
    }
    jobq_cli_queues_fini(&qs);
    return rc;
}

static int status(jobq_cli *c, const batch_opts *o, const char *id) {
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    json_t *s = NULL;
    int rc = find_queue(c, o, id, &s);
    if (rc < 0) return JOBQ_CLI_USAGE;
    if (rc == 1) return jobq_cli_error("batch: no batch %s%s%s", id, o->queue ? " in queue " : "",
                                       o->queue ? o->queue : ""), JOBQ_CLI_FAILED;
    if (o->as_json) {
        jobq_cli_print_json(s, false);
    } else {
        json_t *at = json_object_get(s, "callback_at");
        char when[40] = "";
        if (json_is_number(at)) jobq_cli_time(when, sizeof when, json_number_value(at), false);
        printf("batch %s on queue %s: %lld job(s), %lld ok, %lld failed, %lld pending; callback %s %s%s\n",
               json_string_value(json_object_get(s, "id")), json_string_value(json_object_get(s, "queue")),
               (long long)json_integer_value(json_object_get(s, "total")),
               (long long)json_integer_value(json_object_get(s, "ok")),
               (long long)json_integer_value(json_object_get(s, "failed")),
               (long long)json_integer_value(json_object_get(s, "pending")),
               json_string_value(json_object_get(s, "callback")), *when ? "queued at " : "not queued yet", when);
    }
    json_decref(s);
    return JOBQ_CLI_OK;
}

int jobq_cli_batch(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {
        JOBQ_CLI_OPT_STRING("queue", 'q', batch_opts, queue),
        JOBQ_CLI_OPT_STRING("id", 0, batch_opts, id),
        JOBQ_CLI_OPT_STRING("callback", 0, batch_opts, callback),
        JOBQ_CLI_OPT_INTEGER("ttl", 0, batch_opts, ttl, 1, 31536000, "a number of seconds from 1 to 31536000"),
        JOBQ_CLI_OPT_FLAG("json", 0, batch_opts, as_json),
        JOBQ_CLI_OPT_END,
    };
    batch_opts o = {NULL, NULL, NULL, 86400, false};
    static const char *args[MAX_ARGS + 1];
    int nargs;
    const jobq_cli_spec spec = {batch_usage, opts, &o, args, MAX_ARGS + 1, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (nargs == 0) return jobq_cli_error("batch: use create or status (see 'jobq batch --help')"), JOBQ_CLI_USAGE;
    if (o.queue && !jobq_key_valid_queue(o.queue))
        return jobq_cli_error("batch: bad queue name '%s': use 1 to 64 of A-Z a-z 0-9 _ . : -", o.queue), JOBQ_CLI_USAGE;
    if (strcmp(args[0], "create") == 0) {
        if (!o.queue) o.queue = "default";
        return create(c, &o, args + 1, nargs - 1);
    }
    if (strcmp(args[0], "status") == 0) {
        if (nargs != 2) return jobq_cli_error("batch status: give one batch ID"), JOBQ_CLI_USAGE;
        return status(c, &o, args[1]);
    }
    return jobq_cli_error("batch: unknown action '%s': use create or status", args[0]), JOBQ_CLI_USAGE;
}
