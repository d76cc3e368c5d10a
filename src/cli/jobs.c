/*
 * jobq enqueue, result and cancel: finding a job (scheduled, waiting,
 * running) and waiting for its result, which never polls: it subscribes to
 * <prefix>:events before acting and reads the result after the job's end.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/job.h"

/* ---- results and waiting ---- */

/* GET the result of id: 0 with *out, 1 when there is none, -1 on error. */
static int get_result(jobq_cli *c, const char *id, json_t **out) {
    char key[512];
    jobq_cli_key(c, key, sizeof key, "result:%s", id);
    const char *argv[] = {"GET", key};
    json_t *r;
    *out = NULL;
    if (jobq_cli_command(c, &r, 2, argv, NULL) != 0) return -1;
    if (json_is_null(r)) {
        json_decref(r);
        return 1;
    }
    json_error_t jerr;
    *out = json_loads(json_string_value(r) ? json_string_value(r) : "", 0, &jerr);
    json_decref(r);
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
    const char *eid = json_string_value(json_object_get(event, "id"));
    const char *name = json_string_value(json_object_get(event, "event"));
    if (!eid || !name || strcmp(eid, id) != 0) return false;
    return !strcmp(name, "ok") || !strcmp(name, "failed") || !strcmp(name, "dead") ||
           !strcmp(name, "cancelled");
}

/* Is result the outcome of the job enqueued at enqueued_at (0: of any)?
 * A worker copies enqueued_at from the payload into the result, so an older
 * result of a job with the same id does not count. */
static bool is_fresh(json_t *result, double enqueued_at) {
    json_t *v = json_object_get(result, "enqueued_at");
    return enqueued_at <= 0 || (json_is_number(v) && json_number_value(v) >= enqueued_at - 1e-3);
}

/*
 * Wait up to timeout seconds (< 0: forever) for the result of id (of the
 * job enqueued at enqueued_at; 0: any). *sub is a subscription made before
 * the job was pushed, or NULL (one is made here). Reads events, not the
 * result key, while waiting; re-reads the result after a terminal event and
 * every 10 s (a reconnect), so nothing is missed. 0 with *result,
 * JOBQ_CLI_TIMEOUT, or JOBQ_CLI_USAGE after printing.
 */
static int wait_result(jobq_cli *c, jobq_queue **sub, const char *id, double enqueued_at, double timeout,
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
        if (rc == 0) {
            json_decref(*result);
            *result = NULL;
        }
        if (terminal) {
            /* Finished without a result (a payload rejected before it had
             * an id): report what the event says. */
            const char *name = json_string_value(json_object_get(terminal, "event"));
            json_t *err = json_object_get(terminal, "error");
            *result = json_pack("{s:s, s:s, s:O, s:s}", "id", id, "status",
                                strcmp(name, "ok") == 0 ? "ok" : "failed", "error",
                                err ? err : json_null(), "event", name);
            json_decref(terminal);
            return JOBQ_CLI_OK;
        }
        if (jobq_now() >= deadline) return JOBQ_CLI_TIMEOUT;
        if (!*sub) {
            if (!(*sub = jobq_cli_subscribe(c))) return JOBQ_CLI_USAGE;
            continue; /* read the result again: it may have come before we subscribed */
        }
        for (;;) {
            double left = deadline - jobq_now();
            if (left <= 0) return JOBQ_CLI_TIMEOUT;
            json_t *m = NULL;
            jobq_err err;
            int r = jobq_queue_read_json(*sub, left < 10 ? left : 10, &m, &err);
            if (r == 1) { /* the connection is closed after a timeout */
                jobq_queue_free(*sub);
                *sub = NULL;
                break;
            }
            if (r < 0) {
                jobq_cli_error("lost the connection to Redis while waiting: %s", err.msg);
                return JOBQ_CLI_USAGE;
            }
            json_t *event = jobq_cli_message_event(m);
            json_decref(m);
            if (event && is_terminal(event, id)) {
                terminal = event;
                break;
            }
            json_decref(event);
        }
    }
    json_decref(terminal);
    return JOBQ_CLI_USAGE;
}

/* Finish a wait: print the result, or say it timed out. */
static int report_wait(int rc, json_t *result, const char *id, double timeout) {
    if (rc == JOBQ_CLI_TIMEOUT) {
        fflush(stdout);
        fprintf(stderr, "jobq: timed out after %g s waiting for job %s\n", timeout, id);
        return JOBQ_CLI_TIMEOUT;
    }
    if (rc != JOBQ_CLI_OK) return rc;
    rc = print_result(result);
    json_decref(result);
    return rc;
}

static bool valid_queue_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > JOBQ_MAX_QUEUE_NAME) return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") == n;
}

static bool valid_id(const char *id) { return *id && strlen(id) <= 128; }

/* ---- enqueue ---- */

static const char enqueue_usage[] =
    "Usage: jobq enqueue [OPTIONS] HANDLER [ARGS-JSON]\n"
    "Put a job on a queue and print its id. ARGS-JSON (any JSON value; - reads it\n"
    "from standard input) is handed to the handler as its args.\n\n"
    "  -q, --queue QUEUE   the queue (default: default)\n"
    "      --id ID         the job's id (default: a new random one)\n"
    "      --timeout S     seconds the job may run (default: the daemon's)\n"
    "      --attempts N    attempts before it is given up (default: the daemon's)\n"
    "      --result-ttl S  seconds its result is kept (default: the daemon's)\n"
    "      --delay S       run it no sooner than S seconds from now\n"
    "  -w, --wait[=S]      wait (up to S seconds; default: no limit) and print the\n"
    "                      result instead of the id\n\n"
    "Exit status: 0 queued (with --wait: the job succeeded), 1 the job failed,\n"
    "2 usage or connection error, 3 --wait timed out.\n";

/* Push payload on its queue (or the scheduled set when due > 0) and publish
 * "queued", atomically. */
static const char push_lua[] = "if ARGV[3] == '' then redis.call('RPUSH', KEYS[1], ARGV[1])\n"
                               "else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end\n"
                               "redis.call('PUBLISH', ARGV[4], ARGV[2])\n"
                               "return 1\n";

static json_t *number_value(double d) {
    return d == floor(d) && fabs(d) < 1e15 ? json_integer((json_int_t)d) : json_real(d);
}

int jobq_cli_enqueue(jobq_cli *c, int argc, char **argv) {
    enum { O_QUEUE = 1, O_ID, O_TIMEOUT, O_ATTEMPTS, O_TTL, O_DELAY, O_WAIT };
    static const jobq_cli_opt opts[] = {
        {"queue", 'q', JOBQ_CLI_ARG, O_QUEUE},   {"id", 0, JOBQ_CLI_ARG, O_ID},
        {"timeout", 0, JOBQ_CLI_ARG, O_TIMEOUT}, {"attempts", 0, JOBQ_CLI_ARG, O_ATTEMPTS},
        {"result-ttl", 0, JOBQ_CLI_ARG, O_TTL},  {"delay", 0, JOBQ_CLI_ARG, O_DELAY},
        {"wait", 'w', JOBQ_CLI_OPTARG, O_WAIT},  {NULL, 0, 0, 0},
    };
    const char *queue = "default", *id = NULL, *handler = NULL, *args_text = NULL;
    double timeout = 0, attempts = 0, ttl = 0, delay = 0, wait = -1;
    bool waiting = false;
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, c, opts, argc, argv);
    const char *v;
    int o;
    while ((o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        int bad = 0;
        switch (o) {
        case JOBQ_CLI_HELP:
            fputs(enqueue_usage, stdout);
            return JOBQ_CLI_OK;
        case JOBQ_CLI_BAD:
            return JOBQ_CLI_USAGE;
        case O_QUEUE:
            queue = v;
            break;
        case O_ID:
            id = v;
            break;
        case O_TIMEOUT:
            bad =
                jobq_cli_number(c, "--timeout", v, 1e-3, 1e9, "a positive number of seconds", &timeout);
            break;
        case O_ATTEMPTS:
            bad = jobq_cli_number(c, "--attempts", v, 1, 1000, "an integer from 1 to 1000", &attempts);
            break;
        case O_TTL:
            bad = jobq_cli_number(c, "--result-ttl", v, 1, 31536000, "seconds from 1 to 31536000", &ttl);
            break;
        case O_DELAY:
            bad = jobq_cli_number(c, "--delay", v, 0, 1e9, "a number of seconds >= 0", &delay);
            break;
        case O_WAIT:
            waiting = true;
            if (v) bad = jobq_cli_number(c, "--wait", v, 0, 1e9, "a number of seconds >= 0", &wait);
            break;
        case JOBQ_CLI_POSITIONAL:
            if (!handler)
                handler = v;
            else if (!args_text)
                args_text = v;
            else
                return jobq_cli_error(
                    "enqueue: unexpected argument '%s' (ARGS-JSON is one argument: quote it)", v);
            break;
        }
        if (bad) return JOBQ_CLI_USAGE;
    }
    if (!handler || !*handler)
        return jobq_cli_error("enqueue: missing HANDLER (see 'jobq enqueue --help')");
    if (!valid_queue_name(queue))
        return jobq_cli_error("enqueue: bad queue name '%s': use 1 to %d of A-Z a-z 0-9 _ . : -", queue,
                              JOBQ_MAX_QUEUE_NAME);
    if (id && !valid_id(id)) return jobq_cli_error("enqueue: --id must be 1 to 128 bytes");
    if (attempts && attempts != floor(attempts))
        return jobq_cli_error("enqueue: --attempts expects an integer from 1 to 1000, got '%g'",
                              attempts);
    json_t *args = NULL;
    if (args_text) {
        json_error_t jerr;
        size_t flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES;
        args = strcmp(args_text, "-") == 0 ? json_loadf(stdin, flags, &jerr)
                                           : json_loads(args_text, flags, &jerr);
        if (!args)
            return jobq_cli_error("enqueue: ARGS-JSON is not valid JSON: %s (line %d, column %d)",
                                  jerr.text, jerr.line, jerr.column);
    }
    char new_id[40];
    if (!id) {
        jobq_job_new_id(new_id, sizeof new_id);
        id = new_id;
    }
    double now = jobq_now();
    json_t *job = json_pack("{s:s, s:s}", "id", id, "handler", handler);
    if (args) json_object_set_new(job, "args", args);
    if (timeout > 0) json_object_set_new(job, "timeout", number_value(timeout));
    if (attempts > 0) json_object_set_new(job, "max_attempts", json_integer((json_int_t)attempts));
    if (ttl > 0) json_object_set_new(job, "result_ttl", json_integer((json_int_t)ttl));
    if (delay > 0) json_object_set_new(job, "queue", json_string(queue));
    json_object_set_new(job, "enqueued_at", json_real(now));
    json_t *event = json_pack("{s:s, s:s, s:s, s:s, s:f}", "event", "queued", "id", id, "queue", queue,
                              "handler", handler, "time", now);
    if (delay > 0) json_object_set_new(event, "due_at", json_real(now + delay));
    char *payload = json_dumps(job, JSON_COMPACT);
    char *event_text = json_dumps(event, JSON_COMPACT);
    json_decref(job);
    json_decref(event);

    int rc = JOBQ_CLI_USAGE;
    jobq_queue *sub = NULL;
    json_t *reply = NULL, *result = NULL;
    if (!payload || !event_text || jobq_cli_connect(c) != 0) goto out;
    if (waiting && !(sub = jobq_cli_subscribe(c))) goto out;
    char key[512], channel[300], due[40] = "";
    if (delay > 0) {
        jobq_cli_key(c, key, sizeof key, "scheduled");
        snprintf(due, sizeof due, "%.6f", now + delay);
    } else {
        jobq_cli_key(c, key, sizeof key, "queue:%s", queue);
    }
    jobq_cli_key(c, channel, sizeof channel, "events");
    const char *eval[] = {"EVAL", push_lua, "1", key, payload, event_text, due, channel};
    if (jobq_cli_command(c, &reply, 8, eval, NULL) != 0) goto out;
    if (!waiting) {
        printf("%s\n", id);
        rc = JOBQ_CLI_OK;
        goto out;
    }
    rc = wait_result(c, &sub, id, now, wait, &result);
    rc = report_wait(rc, result, id, wait);
out:
    jobq_queue_free(sub);
    json_decref(reply);
    free(payload);
    free(event_text);
    return rc;
}

/* ---- finding a job ---- */

enum { FOUND_NONE, FOUND_SCHEDULED, FOUND_WAITING, FOUND_RUNNING };

typedef struct found {
    int kind;
    char key[512]; /* the list or sorted set holding the payload, if known */
    json_t *raw;   /* the exact payload (a JSON string), or NULL */
    json_t *job;   /* the decoded payload, or NULL */
    char queue[128];
    char daemon[300]; /* FOUND_RUNNING: the daemon running it, when known */
} found;

static void found_fini(found *f) {
    json_decref(f->raw);
    json_decref(f->job);
    memset(f, 0, sizeof *f);
}

/* Look for job id among the payloads (JSON strings) of arr. On a match fill
 * f->raw and f->job and return true. */
static bool match_payloads(json_t *arr, const char *id, found *f) {
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s) {
        const char *text = json_string_value(s);
        if (!text || !strstr(text, id)) continue;
        json_t *job = json_loadb(text, json_string_length(s), 0, NULL);
        const char *jid = jobq_cli_payload_id(job);
        if (jid && strcmp(jid, id) == 0) {
            f->raw = json_incref(s);
            f->job = job;
            return true;
        }
        json_decref(job);
    }
    return false;
}

/* Where job id is: scheduled, waiting, running (on a live daemon's worker or
 * taken into an in-flight list), or nowhere. 0, or -1 after printing. */
/* Look for id in every list whose key is <prefix>:<pattern>...; on a hit set
 * f->kind to kind and f->key. 0 whether found or not, -1 on a Redis error. */
static int find_in_lists(jobq_cli *c, const char *pattern, const char *id, int kind, found *f) {
    json_t *keys = jobq_cli_scan(c, pattern);
    if (!keys) return -1;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        json_t *arr = jobq_cli_range(c, json_string_value(k), false, 0);
        if (!arr) {
            json_decref(keys);
            return -1;
        }
        bool hit = match_payloads(arr, id, f);
        json_decref(arr);
        if (hit) {
            f->kind = kind;
            snprintf(f->key, sizeof f->key, "%s", json_string_value(k));
            break;
        }
    }
    json_decref(keys);
    return 0;
}

static int find_job(jobq_cli *c, const char *id, found *f) {
    memset(f, 0, sizeof *f);
    char key[512];
    jobq_cli_key(c, key, sizeof key, "scheduled");
    json_t *arr = jobq_cli_range(c, key, true, 0);
    if (!arr) return -1;
    if (match_payloads(arr, id, f)) {
        f->kind = FOUND_SCHEDULED;
        snprintf(f->key, sizeof f->key, "%s", key);
        json_t *meta = json_object_get(f->job, "_jobq");
        const char *q = json_string_value(json_object_get(meta, "queue"));
        if (!q) q = json_string_value(json_object_get(f->job, "queue"));
        snprintf(f->queue, sizeof f->queue, "%s", q && *q ? q : "default");
    }
    json_decref(arr);
    if (f->kind) return 0;

    if (find_in_lists(c, "queue:", id, FOUND_WAITING, f) != 0) return -1;
    if (f->kind) {
        char qprefix[300];
        size_t plen = strlen(jobq_cli_key(c, qprefix, sizeof qprefix, "queue:"));
        snprintf(f->queue, sizeof f->queue, "%s", f->key + plen);
        return 0;
    }

    /* Running: a live daemon's worker says so, or an in-flight list has it. */
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
            if (job && strcmp(job, id) == 0) {
                f->kind = FOUND_RUNNING;
                snprintf(f->daemon, sizeof f->daemon, "%s", json_string_value(json_object_get(d, "id")));
                const char *q = json_string_value(json_object_get(w, "queue"));
                snprintf(f->queue, sizeof f->queue, "%s", q ? q : "");
            }
        }
    }
    json_decref(daemons);
    if (f->kind) return 0;
    return find_in_lists(c, "inflight:", id, FOUND_RUNNING, f);
}

/* ---- result ---- */

/* The arguments shared by `result` and `cancel`: ID [--wait[=S]]. Returns
 * PARSED, or the exit status to return (help printed, or a usage error). */
enum { PARSED = -1 };
static int parse_id_and_wait(jobq_cli *c, int argc, char **argv, const char *name, const char *usage,
                             const char **id, bool *waiting, double *wait) {
    enum { O_WAIT = 1 };
    static const jobq_cli_opt opts[] = {{"wait", 'w', JOBQ_CLI_OPTARG, O_WAIT}, {NULL, 0, 0, 0}};
    const char *v;
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, c, opts, argc, argv);
    int o;
    while ((o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        if (o == JOBQ_CLI_HELP) return fputs(usage, stdout), JOBQ_CLI_OK;
        if (o == JOBQ_CLI_BAD) return JOBQ_CLI_USAGE;
        if (o == O_WAIT) {
            *waiting = true;
            if (v && jobq_cli_number(c, "--wait", v, 0, 1e9, "a number of seconds >= 0", wait) != 0)
                return JOBQ_CLI_USAGE;
        } else if (!*id) {
            *id = v;
        } else {
            return jobq_cli_error("%s: unexpected argument '%s'", name, v);
        }
    }
    if (!*id) return jobq_cli_error("%s: missing ID (see 'jobq %s --help')", name, name);
    if (!valid_id(*id)) return jobq_cli_error("%s: a job id is 1 to 128 bytes", name);
    return PARSED;
}

static const char result_usage[] =
    "Usage: jobq result ID [--wait[=S]]\n"
    "Print the result of job ID as JSON.\n\n"
    "  -w, --wait[=S]  wait (up to S seconds; default: no limit) for it\n\n"
    "Exit status: 0 the job succeeded, 1 it failed, 2 no such job (or an error),\n"
    "3 it has no result yet (still waiting or running, or --wait timed out).\n";

int jobq_cli_result(jobq_cli *c, int argc, char **argv) {
    const char *id = NULL;
    double wait = -1;
    bool waiting = false;
    int parsed = parse_id_and_wait(c, argc, argv, "result", result_usage, &id, &waiting, &wait);
    if (parsed != PARSED) return parsed;
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    json_t *result = NULL;
    if (waiting) {
        jobq_queue *sub = NULL;
        int rc = wait_result(c, &sub, id, 0, wait, &result);
        rc = report_wait(rc, result, id, wait);
        jobq_queue_free(sub);
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
    static const char *const where[] = {"", "scheduled", "waiting", "running"};
    int kind = f.kind;
    char queue[128];
    snprintf(queue, sizeof queue, "%s", f.queue);
    found_fini(&f);
    if (kind == FOUND_NONE)
        return jobq_cli_error("no job %s: no result (never run, or expired) and not queued or running",
                              id);
    fflush(stdout);
    fprintf(stderr, "jobq: job %s has no result yet: it is %s%s%s (use --wait)\n", id, where[kind],
            queue[0] ? " in queue " : "", queue);
    return JOBQ_CLI_TIMEOUT;
}

/* ---- cancel ---- */

static const char cancel_usage[] =
    "Usage: jobq cancel ID [--wait[=S]]\n"
    "Cancel job ID. A waiting or scheduled job is removed and recorded as failed\n"
    "with error \"cancelled\"; a running one is stopped by its daemon, which records\n"
    "it the same way.\n\n"
    "  -w, --wait[=S]  wait (up to S seconds) until the job is recorded, print its result\n\n"
    "Exit status: 0 cancelled (or requested), 1 with --wait: it finished otherwise,\n"
    "2 no such job (or an error), 3 --wait timed out.\n";

/* Remove the exact payload from its list or sorted set and, if it was still
 * there, write its result and publish "cancelled". */
static const char cancel_lua[] = "local n\n"
                                 "if ARGV[1] == 'z' then n = redis.call('ZREM', KEYS[1], ARGV[2])\n"
                                 "else n = redis.call('LREM', KEYS[1], 1, ARGV[2]) end\n"
                                 "if n == 0 then return 0 end\n"
                                 "redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])\n"
                                 "redis.call('PUBLISH', ARGV[6], ARGV[5])\n"
                                 "return 1\n";

/* Cancel a found waiting or scheduled job. 1 done, 0 it was gone, -1 error. */
static int cancel_waiting(jobq_cli *c, const char *id, const found *f) {
    double now = jobq_now();
    json_t *meta = json_object_get(f->job, "_jobq");
    json_t *attempts = json_object_get(meta, "attempts");
    json_t *enq = json_object_get(f->job, "enqueued_at");
    if (!json_is_number(enq)) enq = json_object_get(meta, "enqueued_at");
    json_t *handler = json_object_get(f->job, "handler");
    json_t *result =
        json_pack("{s:s, s:s, s:n, s:s, s:I, s:n, s:s, s:O, s:O, s:n, s:f}", "id", id, "status",
                  "failed", "result", "error", "cancelled", "attempts",
                  (json_int_t)(json_is_integer(attempts) ? json_integer_value(attempts) : 0), "worker",
                  "queue", f->queue, "handler", handler ? handler : json_null(), "enqueued_at",
                  json_is_number(enq) ? enq : json_null(), "started_at", "finished_at", now);
    json_t *event = json_pack("{s:s, s:s, s:s, s:O, s:I, s:f, s:s}", "event", "cancelled", "id", id,
                              "queue", f->queue, "handler", handler ? handler : json_null(), "attempt",
                              json_integer_value(json_object_get(result, "attempts")), "time", now,
                              "error", "cancelled");
    json_t *ttl_v = json_object_get(f->job, "result_ttl");
    char ttl[24], rkey[512], channel[300];
    snprintf(ttl, sizeof ttl, "%lld",
             json_is_integer(ttl_v) && json_integer_value(ttl_v) > 0
                 ? (long long)json_integer_value(ttl_v)
                 : 86400LL);
    jobq_cli_key(c, rkey, sizeof rkey, "result:%s", id);
    jobq_cli_key(c, channel, sizeof channel, "events");
    char *rtext = json_dumps(result, JSON_COMPACT), *etext = json_dumps(event, JSON_COMPACT);
    json_decref(result);
    json_decref(event);
    const char *argv[] = {"EVAL",
                          cancel_lua,
                          "2",
                          f->key,
                          rkey,
                          f->kind == FOUND_SCHEDULED ? "z" : "l",
                          json_string_value(f->raw),
                          rtext,
                          ttl,
                          etext,
                          channel};
    size_t lens[11];
    for (int i = 0; i < 11; i++) lens[i] = argv[i] ? strlen(argv[i]) : 0;
    lens[6] = json_string_length(f->raw);
    json_t *r = NULL;
    int rc = rtext && etext ? jobq_cli_command(c, &r, 11, argv, lens) : -1;
    if (rc == 0) rc = json_integer_value(r) == 1 ? 1 : 0;
    json_decref(r);
    free(rtext);
    free(etext);
    return rc;
}

int jobq_cli_cancel(jobq_cli *c, int argc, char **argv) {
    const char *id = NULL;
    double wait = -1;
    bool waiting = false;
    int parsed = parse_id_and_wait(c, argc, argv, "cancel", cancel_usage, &id, &waiting, &wait);
    if (parsed != PARSED) return parsed;
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    jobq_queue *sub = NULL;
    if (waiting && !(sub = jobq_cli_subscribe(c))) return JOBQ_CLI_USAGE;
    int rc = JOBQ_CLI_USAGE;
    found f = {0};
    /* A job may move (be taken, promoted) between finding and removing it:
     * look again a few times. */
    for (int tries = 0; tries < 5; tries++) {
        found_fini(&f);
        if (find_job(c, id, &f) != 0) goto out;
        if (f.kind == FOUND_SCHEDULED || f.kind == FOUND_WAITING) {
            int done = cancel_waiting(c, id, &f);
            if (done < 0) goto out;
            if (done == 0) continue;
            if (!waiting)
                printf("cancelled job %s (it was %s in queue %s)\n", id,
                       f.kind == FOUND_SCHEDULED ? "scheduled" : "waiting", f.queue);
            rc = JOBQ_CLI_OK;
            break;
        }
        if (f.kind == FOUND_RUNNING) {
            char key[512], score[40];
            jobq_cli_key(c, key, sizeof key, "cancel");
            snprintf(score, sizeof score, "%.6f", jobq_now());
            const char *zadd[] = {"ZADD", key, score, id};
            json_t *r;
            if (jobq_cli_command(c, &r, 4, zadd, NULL) != 0) goto out;
            json_decref(r);
            if (!waiting)
                printf("job %s is running%s%s; its daemon will stop it and record it as failed "
                       "(\"cancelled\")\n",
                       id, f.daemon[0] ? " on " : "", f.daemon);
            rc = JOBQ_CLI_OK;
            break;
        }
        json_t *result = NULL;
        int got = get_result(c, id, &result);
        if (got == 0) {
            const char *status = json_string_value(json_object_get(result, "status"));
            jobq_cli_error("job %s has already finished (status %s): nothing to cancel", id,
                           status ? status : "?");
            json_decref(result);
        } else if (got > 0) {
            jobq_cli_error("no job %s is waiting, scheduled or running", id);
        }
        goto out;
    }
    if (rc == JOBQ_CLI_USAGE) {
        jobq_cli_error("job %s kept moving; try again", id);
        goto out;
    }
    if (waiting) {
        json_t *result = NULL;
        json_t *enq = json_object_get(f.job, "enqueued_at");
        if (!json_is_number(enq)) enq = json_object_get(json_object_get(f.job, "_jobq"), "enqueued_at");
        rc = wait_result(c, &sub, id, json_is_number(enq) ? json_number_value(enq) : 0, wait, &result);
        if (rc == JOBQ_CLI_OK) {
            const char *error = json_string_value(json_object_get(result, "error"));
            jobq_cli_print_json(result, true);
            rc = error && strcmp(error, "cancelled") == 0 ? JOBQ_CLI_OK : JOBQ_CLI_FAILED;
            json_decref(result);
        } else {
            rc = report_wait(rc, NULL, id, wait);
        }
    }
out:
    found_fini(&f);
    jobq_queue_free(sub);
    return rc;
}
