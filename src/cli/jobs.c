/*
 * jobq enqueue, result and cancel: finding a job (scheduled, waiting,
 * running or parked, in any queue) and waiting for its result, which never
 * polls: it subscribes to <prefix>:events before acting and reads the
 * result after the job's end. Every write is a protocol/jobs.h operation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/job.h"
#include "protocol/jobs.h"

/* ---- results and waiting ---- */

/* The result of id: 0 with *out, 1 when there is none, -1 after printing. */
static int get_result(jobq_cli *c, const char *id, json_t **out) {
    char *text = NULL;
    jobq_err err;
    *out = NULL;
    int rc = jobq_jobs_result(c->r, c->key_prefix, id, &text, &err);
    if (rc != 0) return rc < 0 ? jobq_cli_redis_error(c, &err) : 1;
    json_error_t jerr;
    *out = json_loads(text, 0, &jerr);
    free(text);
    if (!*out) {
        jobq_cli_error("the result of job %s is not JSON: %s", id, jerr.text);
        return -1;
    }
    return 0;
}

/* Print a result; 0 when its status is "ok", 1 otherwise. */
static int print_result(json_t *result) {
    jobq_cli_print_json(result, true);
    const char *status = json_string_value(json_object_get(result, "status"));
    return status && strcmp(status, "ok") == 0 ? JOBQ_CLI_OK : JOBQ_CLI_FAILED;
}

static bool is_terminal(json_t *event, const char *id) {
    static const char *const terminal[] = {"ok", "failed", "dead", "cancelled"};
    const char *eid = json_string_value(json_object_get(event, "id"));
    const char *name = json_string_value(json_object_get(event, "event"));
    if (!eid || !name || strcmp(eid, id) != 0) return false;
    for (size_t i = 0; i < sizeof terminal / sizeof *terminal; i++)
        if (strcmp(name, terminal[i]) == 0) return true;
    return false;
}

/* Is result the outcome of the job enqueued at enqueued_at (0: of any)?
 * A worker copies enqueued_at from the payload into the result, so an older
 * result of a job with the same id does not count. */
static bool is_fresh(json_t *result, double enqueued_at) {
    json_t *v = json_object_get(result, "enqueued_at");
    return enqueued_at <= 0 || (json_is_number(v) && json_number_value(v) >= enqueued_at - 1e-3);
}

/* When a payload was enqueued (its own "enqueued_at", else the one a worker
 * recorded), or 0. */
static double enqueued_at_of(json_t *payload) {
    json_t *enq = json_object_get(payload, "enqueued_at");
    if (!json_is_number(enq)) enq = json_object_get(json_object_get(payload, JOBQ_META_FIELD), "enqueued_at");
    return json_is_number(enq) ? json_number_value(enq) : 0;
}

/* Read events on *sub until one ends job id (0 with *terminal), the
 * subscription times out (1: *sub is then freed and NULL) or deadline passes
 * (JOBQ_CLI_TIMEOUT). -1 after printing a lost connection. */
static int next_terminal(jobq_redis **sub, const char *id, double deadline, json_t **terminal) {
    for (;;) {
        double left = deadline - jobq_now();
        if (left <= 0) return JOBQ_CLI_TIMEOUT;
        json_t *m = NULL;
        jobq_err err;
        int r = jobq_redis_read_json(*sub, left < 10 ? left : 10, &m, &err);
        if (r == 1) { /* the connection is closed after a timeout */
            jobq_redis_free(*sub);
            *sub = NULL;
            return 1;
        }
        if (r < 0) return jobq_cli_error("lost the connection to Redis while waiting: %s", err.msg), -1;
        json_t *event = jobq_cli_message_event(m);
        json_decref(m);
        if (event && is_terminal(event, id)) {
            *terminal = event;
            return 0;
        }
        json_decref(event);
    }
}

/* What a terminal event says, as a result, for a job that ended without
 * one (a payload rejected before it had an id). Takes terminal. */
static json_t *result_from_event(const char *id, json_t *terminal) {
    const char *name = json_string_value(json_object_get(terminal, "event"));
    json_t *err = json_object_get(terminal, "error");
    json_t *r = json_pack("{s:s, s:s, s:O, s:s}", "id", id, "status", strcmp(name, "ok") == 0 ? "ok" : "failed",
                          "error", err ? err : json_null(), "event", name);
    json_decref(terminal);
    return r;
}

/*
 * Wait up to timeout seconds (< 0: forever) for the result of id (of the
 * job enqueued at enqueued_at; 0: any). *sub is a subscription made before
 * the job was pushed, or NULL (one is made here). Reads events, not the
 * result key, while waiting; re-reads the result after a terminal event and
 * every 10 s (a reconnect), so nothing is missed. 0 with *result,
 * JOBQ_CLI_TIMEOUT, or JOBQ_CLI_USAGE after printing.
 */
static int wait_result(jobq_cli *c, jobq_redis **sub, const char *id, double enqueued_at, double timeout,
                       json_t **result) {
    double deadline = timeout < 0 ? INFINITY : jobq_now() + timeout;
    json_t *terminal = NULL;
    for (;;) {
        int rc = get_result(c, id, result);
        if (rc < 0) break;
        if (rc == 0 && (terminal || is_fresh(*result, enqueued_at))) {
            json_decref(terminal);
            return JOBQ_CLI_OK;
        }
        json_decref(*result);
        *result = NULL;
        if (terminal) {
            *result = result_from_event(id, terminal);
            return JOBQ_CLI_OK;
        }
        if (jobq_now() >= deadline) return JOBQ_CLI_TIMEOUT;
        if (!*sub) {
            if (!(*sub = jobq_cli_subscribe(c, NULL))) return JOBQ_CLI_USAGE;
            continue; /* read the result again: it may have come before we subscribed */
        }
        rc = next_terminal(sub, id, deadline, &terminal);
        if (rc == JOBQ_CLI_TIMEOUT) return rc;
        if (rc < 0) break;
    }
    json_decref(terminal);
    return JOBQ_CLI_USAGE;
}

/* Finish a wait: print the result, or say it timed out. */
static int report_wait(int rc, json_t *result, const char *id, double timeout) {
    if (rc == JOBQ_CLI_TIMEOUT) {
        jobq_cli_error("timed out after %g s waiting for job %s", timeout, id);
        return JOBQ_CLI_TIMEOUT;
    }
    if (rc != JOBQ_CLI_OK) return rc;
    rc = print_result(result);
    json_decref(result);
    return rc;
}

static bool valid_id(const char *id) { return jobq_job_valid_name(id, strlen(id), JOBQ_JOB_ID_MAX); }

/* ---- finding a job ---- */

enum { FOUND_NONE, FOUND_SCHEDULED, FOUND_WAITING, FOUND_RUNNING, FOUND_PARKED };

/* Each FOUND_ kind as a word. */
static const char *const found_as[] = {"unknown", "scheduled", "waiting", "running", "parked"};

typedef struct found {
    int kind;
    json_t *raw; /* the exact payload (a JSON string), or NULL */
    json_t *job; /* the decoded payload, or NULL */
    char queue[256];
    char daemon[300]; /* FOUND_RUNNING: the daemon running it, when known */
} found;

static void found_fini(found *f) {
    json_decref(f->raw);
    json_decref(f->job);
    memset(f, 0, sizeof *f);
}

/* Look for job id among the payloads (JSON strings) of the list or sorted
 * set key. 1 found (f->raw and f->job set), 0 not, -1 after printing. */
static int find_in(jobq_cli *c, const char *key, bool zset, const char *id, found *f) {
    json_t *arr = jobq_cli_range(c, key, zset, 0);
    if (!arr) return -1;
    size_t i;
    json_t *s;
    int rc = 0;
    json_array_foreach(arr, i, s) {
        const char *text = json_string_value(s);
        if (!text || !memmem(text, json_string_length(s), id, strlen(id))) continue;
        json_t *job = json_loadb(text, json_string_length(s), 0, NULL);
        const char *jid = jobq_cli_payload_id(job);
        if (jid && strcmp(jid, id) == 0) {
            f->raw = json_incref(s);
            f->job = job;
            rc = 1;
            break;
        }
        json_decref(job);
    }
    json_decref(arr);
    return rc;
}

/* Look in the key of kind (a list, or the scheduled set) of every queue
 * that has one. On a hit, f->kind = found_as and f->queue are set. 0
 * whether found or not, -1 after printing. */
static int find_in_queues(jobq_cli *c, const jobq_cli_queues *qs, enum jobq_key_kind kind, int found_as,
                          const char *id, found *f) {
    for (size_t i = 0; i < qs->n && !f->kind; i++) {
        if (!(qs->q[i].kinds & (1u << kind))) continue;
        char key[JOBQ_KEY_MAX];
        int hit = find_in(c, jobq_cli_key(c, key, kind, qs->q[i].name), kind == JOBQ_KEY_SCHEDULED, id, f);
        if (hit < 0) return -1;
        if (hit) {
            f->kind = found_as;
            snprintf(f->queue, sizeof f->queue, "%s", qs->q[i].name);
        }
    }
    return 0;
}

/* Look in every in-flight list (a worker took the job). */
static int find_in_flight(jobq_cli *c, const jobq_cli_queues *qs, const char *id, found *f) {
    for (size_t i = 0; i < qs->n; i++) {
        size_t j;
        json_t *k;
        json_array_foreach(qs->q[i].inflight, j, k) {
            int hit = find_in(c, json_string_value(k), false, id, f);
            if (hit < 0) return -1;
            if (hit) {
                f->kind = FOUND_RUNNING;
                snprintf(f->queue, sizeof f->queue, "%s", qs->q[i].name);
                return 0;
            }
        }
    }
    return 0;
}

/* Is job id running on a live daemon's worker? Sets f->kind, f->daemon and
 * f->queue (as the worker reports it). 0, or -1 after printing. */
static int find_on_workers(jobq_cli *c, const char *id, found *f) {
    json_t *daemons = jobq_cli_daemons(c);
    if (!daemons) return -1;
    size_t i;
    json_t *d;
    json_array_foreach(daemons, i, d) {
        size_t j;
        json_t *w;
        if (!json_is_true(json_object_get(d, "alive"))) continue;
        json_array_foreach(json_object_get(d, "workers"), j, w) {
            const char *job = json_string_value(json_object_get(w, "job"));
            if (!job || strcmp(job, id) != 0) continue;
            const char *q = json_string_value(json_object_get(w, "queue"));
            f->kind = FOUND_RUNNING;
            snprintf(f->daemon, sizeof f->daemon, "%s", json_string_value(json_object_get(d, "id")));
            snprintf(f->queue, sizeof f->queue, "%s", q ? q : "");
        }
    }
    json_decref(daemons);
    return 0;
}

/* Look in the parked hash of every queue that has one (a job waiting for
 * the jobs it depends on). 0 whether found or not, -1 after printing. */
static int find_parked(jobq_cli *c, const jobq_cli_queues *qs, const char *id, found *f) {
    for (size_t i = 0; i < qs->n && !f->kind; i++) {
        if (!(qs->q[i].kinds & (1u << JOBQ_KEY_PARKED))) continue;
        char *payload;
        size_t len;
        jobq_err err;
        int hit = jobq_jobs_parked(c->r, c->key_prefix, qs->q[i].name, id, &payload, &len, &err);
        if (hit < 0) return jobq_cli_redis_error(c, &err);
        if (hit) {
            f->kind = FOUND_PARKED;
            f->raw = json_stringn(payload, len);
            f->job = json_loadb(payload, len, 0, NULL);
            snprintf(f->queue, sizeof f->queue, "%s", qs->q[i].name);
            free(payload);
        }
    }
    return 0;
}

/* Where job id is: scheduled, waiting, running (on a live daemon's worker or
 * taken into an in-flight list), parked, or nowhere; looked for in the order
 * a job moves, so that one moving meanwhile is seen at least once (but for
 * a parked job released meanwhile, which the caller's next look finds). 0,
 * or -1 after printing. */
static int find_job(jobq_cli *c, const char *id, found *f) {
    memset(f, 0, sizeof *f);
    jobq_cli_queues qs;
    int rc = jobq_cli_queues_scan(c, &qs);
    if (rc == 0) rc = find_in_queues(c, &qs, JOBQ_KEY_SCHEDULED, FOUND_SCHEDULED, id, f);
    if (rc == 0 && !f->kind) rc = find_in_queues(c, &qs, JOBQ_KEY_QUEUE, FOUND_WAITING, id, f);
    if (rc == 0 && !f->kind) rc = find_on_workers(c, id, f);
    /* The in-flight list also names the queue when the worker did not. */
    if (rc == 0 && (!f->kind || !f->queue[0])) {
        found inflight = {0};
        rc = find_in_flight(c, &qs, id, &inflight);
        if (inflight.kind) {
            snprintf(inflight.daemon, sizeof inflight.daemon, "%s", f->daemon);
            found_fini(f);
            *f = inflight;
        }
    }
    if (rc == 0 && !f->kind) rc = find_parked(c, &qs, id, f);
    jobq_cli_queues_fini(&qs);
    return rc;
}

/* The ids of job's "depends_on", comma-separated, into buf (cut to size). */
static void depends_list(char *buf, size_t size, json_t *job) {
    size_t i, used = 0;
    json_t *dep;
    buf[0] = '\0';
    json_array_foreach(json_object_get(job, "depends_on"), i, dep) {
        const char *d = json_string_value(dep);
        if (!d || used >= size) continue;
        int w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", d);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* ---- enqueue ---- */

static const char enqueue_usage[] =
    "Usage: jobq enqueue [OPTIONS] HANDLER [ARGS-JSON]\n"
    "Put a job on a queue (<prefix>:{QUEUE}:queue, or its :scheduled set with\n"
    "--delay) and print its id. ARGS-JSON (any JSON value; - reads it from\n"
    "standard input) is handed to the handler as its args.\n\n"
    "  -q, --queue QUEUE   the queue (default: default)\n"
    "      --id ID         the job's id (default: a new random one)\n"
    "      --timeout S     seconds the job may run (default: the daemon's)\n"
    "      --attempts N    attempts before it is given up (default: the daemon's)\n"
    "      --result-ttl S  seconds its result is kept (default: the daemon's)\n"
    "      --delay S       run it no sooner than S seconds from now\n"
    "  -u, --unique        queue it only if no job with this id queued with\n"
    "                      --unique (or FCALL jobq_enqueue_unique) is still waiting\n"
    "                      or running; otherwise print the id, say so on stderr,\n"
    "                      queue nothing and exit 0 (with --wait: wait for that job)\n"
    "  -w, --wait[=S]      wait (up to S seconds; default: no limit) and print the\n"
    "                      result instead of the id\n\n"
    "Exit status: 0 queued, or already queued with --unique (with --wait: the job\n"
    "succeeded), 1 the job failed, 2 usage or connection error, 3 --wait timed out.\n";

typedef struct enqueue_opts {
    const char *queue, *id;
    double timeout, attempts, ttl, delay; /* 0: not given */
    bool unique;
    jobq_cli_wait wait;
} enqueue_opts;

static const jobq_cli_opt enqueue_options[] = {
    JOBQ_CLI_OPT_STRING("queue", 'q', enqueue_opts, queue),
    JOBQ_CLI_OPT_STRING("id", 0, enqueue_opts, id),
    JOBQ_CLI_OPT_NUMBER("timeout", 0, enqueue_opts, timeout, 1e-3, JOBQ_JOB_TIMEOUT_MAX,
                        "a positive number of seconds up to 604800"),
    JOBQ_CLI_OPT_INTEGER("attempts", 0, enqueue_opts, attempts, 1, JOBQ_JOB_ATTEMPTS_MAX,
                         "an integer from 1 to 1000"),
    JOBQ_CLI_OPT_INTEGER("result-ttl", 0, enqueue_opts, ttl, 1, JOBQ_JOB_RESULT_TTL_MAX,
                         "whole seconds from 1 to 31536000"),
    JOBQ_CLI_OPT_NUMBER("delay", 0, enqueue_opts, delay, 0, 1e9, "a number of seconds >= 0"),
    JOBQ_CLI_OPT_FLAG("unique", 'u', enqueue_opts, unique),
    JOBQ_CLI_OPT_WAIT(enqueue_opts, wait),
    JOBQ_CLI_OPT_END,
};

/* The payload members that come from options: given when > 0. */
static const struct {
    const char *member;
    size_t offset;
    bool integer;
} payload_fields[] = {
    {"timeout", offsetof(enqueue_opts, timeout), false},
    {"max_attempts", offsetof(enqueue_opts, attempts), true},
    {"result_ttl", offsetof(enqueue_opts, ttl), true},
};

/* The job's payload (a new reference) from o, handler and args (taken),
 * stamped now. */
static json_t *build_payload(const enqueue_opts *o, const char *id, const char *handler, json_t *args,
                             double now) {
    json_t *job = json_pack("{s:s, s:s}", "id", id, "handler", handler);
    if (!job) {
        json_decref(args);
        return NULL;
    }
    if (args) json_object_set_new(job, "args", args);
    for (size_t i = 0; i < sizeof payload_fields / sizeof *payload_fields; i++) {
        double v = *(const double *)((const char *)o + payload_fields[i].offset);
        if (v <= 0) continue;
        bool whole = payload_fields[i].integer || (v == floor(v) && v < 1e15);
        json_object_set_new(job, payload_fields[i].member, whole ? json_integer((json_int_t)v) : json_real(v));
    }
    json_object_set_new(job, "enqueued_at", json_real(now));
    return job;
}

/* ARGS-JSON: text, or standard input for "-". NULL after printing. */
static json_t *parse_args(const char *text) {
    json_error_t jerr;
    size_t flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES;
    json_t *args = strcmp(text, "-") == 0 ? json_loadf(stdin, flags, &jerr) : json_loads(text, flags, &jerr);
    if (!args)
        jobq_cli_error("enqueue: ARGS-JSON is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                       jerr.column);
    return args;
}

/* Are handler, the queue and the id usable? 0, or -1 after printing why. */
static int check_enqueue(const enqueue_opts *o, const char *handler) {
    if (!handler || !*handler) return jobq_cli_error("enqueue: missing HANDLER (see 'jobq enqueue --help')"), -1;
    if (!jobq_job_valid_name(handler, strlen(handler), strlen(handler)))
        return jobq_cli_error("enqueue: bad HANDLER: control characters are not allowed"), -1;
    if (!jobq_key_valid_queue(o->queue))
        return jobq_cli_error("enqueue: bad queue name '%s': use 1 to 64 of A-Z a-z 0-9 _ . : -", o->queue), -1;
    if (o->id && !valid_id(o->id))
        return jobq_cli_error("enqueue: --id must be 1 to %d bytes without control characters", JOBQ_JOB_ID_MAX), -1;
    return 0;
}

/* --unique found the id held: the enqueued_at of the job already queued
 * (0 when it is not found any more), for --wait. */
static double held_job_enqueued_at(jobq_cli *c, const char *id) {
    found f;
    double at = find_job(c, id, &f) == 0 ? enqueued_at_of(f.job) : 0;
    found_fini(&f);
    return at;
}

int jobq_cli_enqueue(jobq_cli *c, int argc, char **argv) {
    enqueue_opts o = {.queue = "default", .wait = {false, -1}};
    const char *args_in[2] = {NULL, NULL};
    int nargs;
    const jobq_cli_spec spec = {enqueue_usage, enqueue_options, &o, args_in, 2,
                                " (ARGS-JSON is one argument: quote it)"};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    const char *handler = args_in[0];
    if (check_enqueue(&o, handler) != 0) return JOBQ_CLI_USAGE;
    json_t *args = args_in[1] ? parse_args(args_in[1]) : NULL;
    if (args_in[1] && !args) return JOBQ_CLI_USAGE;
    char new_id[40];
    if (!o.id) {
        jobq_job_new_id(new_id, sizeof new_id);
        o.id = new_id;
    }
    double now = jobq_now();
    json_t *job = build_payload(&o, o.id, handler, args, now);
    char *payload = job ? json_dumps(job, JSON_COMPACT) : NULL;
    json_decref(job);

    int rc = JOBQ_CLI_USAGE;
    jobq_redis *sub = NULL;
    json_t *result = NULL;
    if (!payload) {
        jobq_cli_error("out of memory");
        goto out;
    }
    if (jobq_cli_connect(c) != 0) goto out;
    if (o.wait.on && !(sub = jobq_cli_subscribe(c, o.queue))) goto out;
    char id[JOBQ_JOB_ID_MAX + 1];
    bool duplicate = false;
    jobq_err err;
    if (jobq_jobs_enqueue(c->r, c->key_prefix, o.queue, payload, o.delay > 0 ? now + o.delay : 0, o.unique, id,
                          sizeof id, &duplicate, &err) != 0) {
        if (err.code == JOBQ_E_REPLICAS) {
            /* Queued on the primary, not yet on enough replicas. */
            printf("%s\n", id);
            jobq_cli_error("job %s is queued, but not durable yet: %s ([redis] wait_replicas); a failover "
                           "now could lose it", id, err.msg);
        } else {
            jobq_cli_redis_error(c, &err);
        }
        goto out;
    }
    double enqueued_at = now;
    if (duplicate) {
        jobq_cli_error("job %s is already queued (unique): nothing queued", id);
        if (o.wait.on) enqueued_at = held_job_enqueued_at(c, id);
    }
    if (!o.wait.on) {
        printf("%s\n", id);
        rc = JOBQ_CLI_OK;
        goto out;
    }
    rc = wait_result(c, &sub, id, enqueued_at, o.wait.seconds, &result);
    rc = report_wait(rc, result, id, o.wait.seconds);
out:
    jobq_redis_free(sub);
    free(payload);
    return rc;
}

/* ---- result ---- */

/* The arguments shared by `result` and `cancel`: ID [--wait[=S]]. Returns
 * JOBQ_CLI_PARSED, or the exit status to return. */
typedef struct id_opts {
    jobq_cli_wait wait;
} id_opts;

static int parse_id_and_wait(jobq_cli *c, int argc, char **argv, const char *usage, const char **id,
                             jobq_cli_wait *wait) {
    static const jobq_cli_opt opts[] = {JOBQ_CLI_OPT_WAIT(id_opts, wait), JOBQ_CLI_OPT_END};
    id_opts o = {{false, -1}};
    const char *args[1] = {NULL};
    int nargs;
    const jobq_cli_spec spec = {usage, opts, &o, args, 1, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (!args[0]) return jobq_cli_error("%s: missing ID (see 'jobq %s --help')", c->cmd, c->cmd);
    if (!valid_id(args[0]))
        return jobq_cli_error("%s: a job id is 1 to %d bytes without control characters", c->cmd, JOBQ_JOB_ID_MAX);
    *id = args[0];
    *wait = o.wait;
    return JOBQ_CLI_PARSED;
}

static const char result_usage[] =
    "Usage: jobq result ID [--wait[=S]]\n"
    "Print the result of job ID (<prefix>:result:ID) as JSON.\n\n"
    "  -w, --wait[=S]  wait (up to S seconds; default: no limit) for it\n\n"
    "Exit status: 0 the job succeeded, 1 it failed, 2 no such job (or an error),\n"
    "3 it has no result yet (still waiting or running, or --wait timed out).\n";

int jobq_cli_result(jobq_cli *c, int argc, char **argv) {
    const char *id = NULL;
    jobq_cli_wait wait;
    int parsed = parse_id_and_wait(c, argc, argv, result_usage, &id, &wait);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    json_t *result = NULL;
    if (wait.on) {
        jobq_redis *sub = NULL;
        int rc = wait_result(c, &sub, id, 0, wait.seconds, &result);
        rc = report_wait(rc, result, id, wait.seconds);
        jobq_redis_free(sub);
        return rc;
    }
    int rc = get_result(c, id, &result);
    if (rc < 0) return JOBQ_CLI_USAGE;
    if (rc == 0) {
        rc = print_result(result);
        json_decref(result);
        return rc;
    }
    found f;
    if (find_job(c, id, &f) != 0) return JOBQ_CLI_USAGE;
    int kind = f.kind;
    char queue[256], waits[300] = "";
    snprintf(queue, sizeof queue, "%s", f.queue);
    if (kind == FOUND_PARKED) depends_list(waits, sizeof waits, f.job);
    found_fini(&f);
    if (kind == FOUND_NONE)
        return jobq_cli_error("no job %s: no result (never run, or expired) and not queued, parked or running", id);
    char progress[300] = "";
    json_t *p = kind == FOUND_RUNNING ? jobq_cli_progress(c, id) : NULL;
    if (p) {
        const char *m = json_string_value(json_object_get(p, "message"));
        json_t *t = json_object_get(p, "time");
        char ago[32] = "";
        if (json_is_number(t)) jobq_cli_duration(ago, sizeof ago, jobq_now() - json_number_value(t));
        snprintf(progress, sizeof progress, "; progress %.0f%%%s%.200s%s%s%s",
                 json_number_value(json_object_get(p, "fraction")) * 100, m ? ": " : "", m ? m : "",
                 ago[0] ? " (" : "", ago, ago[0] ? " ago)" : "");
        json_decref(p);
    }
    jobq_cli_error("job %s has no result yet: it is %s%s%s%s%s%s (use --wait)", id, found_as[kind],
                   queue[0] ? " in queue " : "", queue, waits[0] ? ", depending on " : "", waits, progress);
    return JOBQ_CLI_TIMEOUT;
}

/* ---- cancel ---- */

static const char cancel_usage[] =
    "Usage: jobq cancel ID [--wait[=S]]\n"
    "Cancel job ID, looked for in every queue. A waiting or scheduled job is\n"
    "removed and recorded as failed with error \"cancelled\"; a running one is\n"
    "stopped by its daemon (asked through <prefix>:{QUEUE}:cancel), which records\n"
    "it the same way.\n\n"
    "  -w, --wait[=S]  wait (up to S seconds) until the job is recorded, print its result\n\n"
    "Exit status: 0 cancelled (or requested), 1 with --wait: it finished otherwise,\n"
    "2 no such job (or an error), 3 --wait timed out.\n";

/* Print why there is nothing to cancel: 0 it finished, 1 there is no such
 * job, -1 an error (printed too). */
static int nothing_to_cancel(jobq_cli *c, const char *id) {
    json_t *result = NULL;
    int got = get_result(c, id, &result);
    if (got == 0) {
        const char *status = json_string_value(json_object_get(result, "status"));
        jobq_cli_error("job %s has already finished (status %s): nothing to cancel", id, status ? status : "?");
        json_decref(result);
    } else if (got > 0) {
        jobq_cli_error("no job %s is waiting, scheduled, parked or running", id);
    }
    return got;
}

/* Cancel the job found in f. 1 done, 0 it moved meanwhile (look again), -1
 * after printing. */
static int cancel_found(jobq_cli *c, const char *id, const found *f, bool quiet) {
    jobq_err err;
    if (f->kind == FOUND_RUNNING) {
        if (!f->queue[0]) return jobq_cli_error("job %s is running, but its queue is not known", id), -1;
        if (jobq_jobs_request_cancel(c->r, c->key_prefix, f->queue, id, &err) != 0)
            return jobq_cli_redis_error(c, &err);
        if (!quiet) {
            printf("job %s is running", id);
            if (f->daemon[0]) printf(" on "), jobq_cli_put(stdout, f->daemon);
            printf("; its daemon will stop it and record it as failed (\"cancelled\")\n");
        }
        return 1;
    }
    static const enum jobq_waiting_in waits_in[] = {[FOUND_WAITING] = JOBQ_WAITING_QUEUE,
                                                    [FOUND_SCHEDULED] = JOBQ_WAITING_SCHEDULED,
                                                    [FOUND_PARKED] = JOBQ_WAITING_PARKED};
    int done = jobq_jobs_cancel_waiting(c->r, c->key_prefix, f->queue, waits_in[f->kind], json_string_value(f->raw),
                                        json_string_length(f->raw), &err);
    if (done < 0) return jobq_cli_redis_error(c, &err);
    if (done && !quiet) {
        printf("cancelled job %s (it was %s in queue ", id, found_as[f->kind]);
        jobq_cli_put(stdout, f->queue);
        printf(")\n");
    }
    return done;
}

/* Find job id and cancel it, looking again a few times when it moves
 * (taken, promoted) between finding and removing it; quiet: no message
 * on success. 1 done (*f says where it was), 0 nothing to cancel (after
 * printing why; *gone: "finished" or "unknown"), -1 after printing. */
static int find_and_cancel(jobq_cli *c, const char *id, bool quiet, found *f, const char **gone) {
    int done = 0;
    memset(f, 0, sizeof *f);
    for (int tries = 0; tries < 5 && done == 0; tries++) {
        found_fini(f);
        if (find_job(c, id, f) != 0) return -1;
        if (f->kind == FOUND_NONE) {
            int got = nothing_to_cancel(c, id);
            if (got < 0) return -1;
            *gone = got == 0 ? "finished" : "unknown";
            return 0;
        }
        if ((done = cancel_found(c, id, f, quiet)) < 0) return -1;
    }
    if (!done) return jobq_cli_error("job %s kept moving; try again", id), -1;
    return 1;
}

int jobq_cli_job_cancel(jobq_cli *c, const char *id, const char **how, char *queue_out, size_t queue_size) {
    found f;
    int rc = find_and_cancel(c, id, true, &f, how);
    if (rc == 1) {
        *how = f.kind == FOUND_RUNNING ? "requested" : "removed";
        snprintf(queue_out, queue_size, "%s", f.queue);
    }
    found_fini(&f);
    return rc;
}

json_t *jobq_cli_job_lookup(jobq_cli *c, const char *id) {
    json_t *result = NULL;
    int rc = get_result(c, id, &result);
    if (rc < 0) return NULL;
    if (rc == 0) return json_pack("{s:s, s:s, s:o}", "id", id, "state", "finished", "result", result);
    found f;
    if (find_job(c, id, &f) != 0) return found_fini(&f), NULL;
    json_t *out = json_pack("{s:s, s:s}", "id", id, "state", found_as[f.kind]);
    if (out && f.queue[0]) json_object_set_new(out, "queue", json_string(f.queue));
    if (out && f.daemon[0]) json_object_set_new(out, "daemon", json_string(f.daemon));
    if (out && f.job) json_object_set(out, "payload", f.job);
    else if (out && f.raw) json_object_set(out, "payload_text", f.raw);
    found_fini(&f);
    if (!out) jobq_cli_error("out of memory");
    return out;
}

int jobq_cli_cancel(jobq_cli *c, int argc, char **argv) {
    const char *id = NULL;
    jobq_cli_wait wait;
    int parsed = parse_id_and_wait(c, argc, argv, cancel_usage, &id, &wait);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    jobq_redis *sub = NULL;
    if (wait.on && !(sub = jobq_cli_subscribe(c, NULL))) return JOBQ_CLI_USAGE;
    int rc = JOBQ_CLI_USAGE;
    found f;
    const char *gone;
    if (find_and_cancel(c, id, wait.on, &f, &gone) != 1) goto out;
    rc = JOBQ_CLI_OK;
    if (wait.on) {
        json_t *result = NULL;
        rc = wait_result(c, &sub, id, enqueued_at_of(f.job), wait.seconds, &result);
        if (rc == JOBQ_CLI_OK) {
            const char *error = json_string_value(json_object_get(result, "error"));
            jobq_cli_print_json(result, true);
            rc = error && strcmp(error, "cancelled") == 0 ? JOBQ_CLI_OK : JOBQ_CLI_FAILED;
            json_decref(result);
        } else {
            rc = report_wait(rc, NULL, id, wait.seconds);
        }
    }
out:
    found_fini(&f);
    jobq_redis_free(sub);
    return rc;
}
