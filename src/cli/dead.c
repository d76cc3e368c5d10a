/*
 * jobq dead: list, show, retry and purge the dead-letter list (<prefix>:dead,
 * newest first). A retry removes the exact entry and re-pushes its payload in
 * one script, with fresh attempts, so two retries never queue a job twice.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/job.h"

static const char dead_usage[] =
    "Usage: jobq dead list [--json] [--limit N]\n"
    "       jobq dead show ID\n"
    "       jobq dead retry ID | jobq dead retry --all\n"
    "       jobq dead purge\n"
    "Jobs that failed for good, or could not be read, newest first.\n\n"
    "  list   one line per job (--limit N, default 100; 0: all); --json: a JSON array\n"
    "  show   the whole entry of job ID as JSON: payload, last error, every attempt's error\n"
    "  retry  put job ID (--all: every job whose payload is a JSON object) back on its\n"
    "         queue with fresh attempts, and forget its failed result\n"
    "  purge  delete every entry\n";

/* KEYS: dead list, queue, result; ARGV: entry, payload, event, channel. */
static const char retry_lua[] = "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
                                "redis.call('RPUSH', KEYS[2], ARGV[2])\n"
                                "redis.call('DEL', KEYS[3])\n"
                                "redis.call('PUBLISH', ARGV[4], ARGV[3])\n"
                                "return 1\n";

static const char purge_lua[] = "local n = redis.call('LLEN', KEYS[1])\n"
                                "redis.call('DEL', KEYS[1])\n"
                                "return n\n";

/* One line of text: newlines and tabs as spaces, cut at max bytes. */
static void one_line(char *buf, size_t size, const char *s, size_t max) {
    size_t n = 0;
    for (; s && *s && n + 4 < size; s++) {
        if (n >= max) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        buf[n++] = (*s == '\n' || *s == '\t' || *s == '\r') ? ' ' : *s;
    }
    buf[n] = '\0';
}

static int dead_list(jobq_cli *c, bool as_json, long limit) {
    char key[512];
    jobq_cli_key(c, key, sizeof key, "dead");
    const char *llen[] = {"LLEN", key};
    json_t *total_r, *entries;
    if (jobq_cli_command(c, &total_r, 2, llen, NULL) != 0) return JOBQ_CLI_USAGE;
    json_int_t total = json_integer_value(total_r);
    json_decref(total_r);
    if (!(entries = jobq_cli_range(c, key, false, limit))) return JOBQ_CLI_USAGE;
    json_t *docs = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(entries, i, s) {
        json_t *doc = json_loadb(json_string_value(s), json_string_length(s), 0, NULL);
        json_array_append_new(docs, doc ? doc : json_pack("{s:O}", "unreadable", s));
    }
    json_decref(entries);
    if (as_json) {
        jobq_cli_print_json(docs, true);
        json_decref(docs);
        return JOBQ_CLI_OK;
    }
    if (total == 0) {
        printf("no dead jobs\n");
        json_decref(docs);
        return JOBQ_CLI_OK;
    }
    jobq_cli_table t;
    jobq_cli_table_init(&t, 6, 1u << 4);
    jobq_cli_table_add(&t, "ID", "QUEUE", "HANDLER", "FAILED AT", "ATTEMPTS", "ERROR");
    json_t *d;
    json_array_foreach(docs, i, d) {
        char when[40], attempts[16], error[128];
        json_t *at = json_object_get(d, "failed_at");
        jobq_cli_time(when, sizeof when, json_is_number(at) ? json_number_value(at) : 0, false);
        snprintf(attempts, sizeof attempts, "%lld",
                 (long long)json_integer_value(json_object_get(d, "attempts")));
        one_line(error, sizeof error, json_string_value(json_object_get(d, "error")), 80);
        const char *id = json_string_value(json_object_get(d, "id"));
        const char *handler = json_string_value(json_object_get(d, "handler"));
        jobq_cli_table_add(&t, id ? id : "-", json_string_value(json_object_get(d, "queue")),
                           handler ? handler : "-", when, attempts, error);
    }
    jobq_cli_table_print(&t, stdout, 0);
    jobq_cli_table_fini(&t);
    if ((json_int_t)json_array_size(docs) < total)
        printf("(showing the newest %zu of %lld: --limit 0 shows all)\n", json_array_size(docs),
               (long long)total);
    json_decref(docs);
    return JOBQ_CLI_OK;
}

/* The newest entry for job id: its exact text (a JSON string) in *raw and
 * decoded in *doc (new references). 1 found, 0 not, -1 error. */
static int find_entry(jobq_cli *c, const char *id, json_t **raw, json_t **doc) {
    char key[512];
    jobq_cli_key(c, key, sizeof key, "dead");
    json_t *all = jobq_cli_range(c, key, false, 0);
    if (!all) return -1;
    size_t i;
    json_t *s;
    int rc = 0;
    json_array_foreach(all, i, s) {
        const char *text = json_string_value(s);
        if (!text || !strstr(text, id)) continue;
        json_t *d = json_loadb(text, json_string_length(s), 0, NULL);
        const char *did = json_string_value(json_object_get(d, "id"));
        if (did && strcmp(did, id) == 0) {
            *raw = json_incref(s);
            *doc = d;
            rc = 1;
            break;
        }
        json_decref(d);
    }
    json_decref(all);
    return rc;
}

/*
 * Re-queue one dead entry (raw: its exact text, doc: decoded) and name its
 * queue in queue_out. 1 done, 0 it was no longer there, -1 after printing an
 * error, -2 when its payload cannot be retried (why in reason).
 */
static int retry_entry(jobq_cli *c, json_t *raw, json_t *doc, char *reason, size_t reason_size,
                       char *queue_out, size_t queue_size) {
    json_t *payload_s = json_object_get(doc, "payload");
    const char *id = json_string_value(json_object_get(doc, "id"));
    json_t *payload = json_is_string(payload_s) ? json_loadb(json_string_value(payload_s),
                                                             json_string_length(payload_s), 0, NULL)
                                                : NULL;
    if (!json_is_object(payload) || !id) {
        snprintf(reason, reason_size, "its payload is not a JSON object");
        json_decref(payload);
        return -2;
    }
    /* Fresh attempts: drop the attempt bookkeeping, keep the assigned id
     * and the queue. */
    json_t *meta = json_object_get(payload, "_jobq");
    if (json_is_object(meta)) {
        json_object_del(meta, "attempts");
        json_object_del(meta, "deaths");
        json_object_del(meta, "errors");
    }
    const char *own_id = json_string_value(json_object_get(payload, "id"));
    if (!own_id || !*own_id) {
        if (!json_is_object(meta)) json_object_set_new(payload, "_jobq", meta = json_object());
        json_object_set_new(meta, "id", json_string(id));
    }
    const char *queue = json_string_value(json_object_get(meta, "queue"));
    if (!queue) queue = json_string_value(json_object_get(doc, "queue"));
    if (!queue || !*queue) queue = json_string_value(json_object_get(payload, "queue"));
    if (!queue || !*queue) queue = "default";
    snprintf(queue_out, queue_size, "%s", queue);
    if (json_is_object(meta) && json_object_size(meta) == 0) json_object_del(payload, "_jobq");
    char dead_key[512], queue_key[512], result_key[512], channel[300];
    jobq_cli_key(c, dead_key, sizeof dead_key, "dead");
    jobq_cli_key(c, queue_key, sizeof queue_key, "queue:%s", queue);
    jobq_cli_key(c, result_key, sizeof result_key, "result:%s", id);
    jobq_cli_key(c, channel, sizeof channel, "events");
    json_t *handler = json_object_get(payload, "handler");
    json_t *event = json_pack("{s:s, s:s, s:s, s:O, s:f}", "event", "queued", "id", id, "queue", queue,
                              "handler", handler ? handler : json_null(), "time", jobq_now());
    char *ptext = json_dumps(payload, JSON_COMPACT), *etext = json_dumps(event, JSON_COMPACT);
    json_decref(payload);
    json_decref(event);
    const char *argv[] = {
        "EVAL", retry_lua, "3",    dead_key, queue_key, result_key, json_string_value(raw),
        ptext,  etext,     channel};
    size_t lens[10];
    for (int i = 0; i < 10; i++) lens[i] = argv[i] ? strlen(argv[i]) : 0;
    lens[6] = json_string_length(raw);
    json_t *r = NULL;
    int rc = ptext && etext ? jobq_cli_command(c, &r, 10, argv, lens) : -1;
    if (rc == 0) rc = json_integer_value(r) == 1 ? 1 : 0;
    json_decref(r);
    free(ptext);
    free(etext);
    return rc;
}

static int dead_retry_all(jobq_cli *c) {
    char key[512];
    jobq_cli_key(c, key, sizeof key, "dead");
    json_t *all = jobq_cli_range(c, key, false, 0);
    if (!all) return JOBQ_CLI_USAGE;
    long retried = 0, kept = 0;
    int rc = JOBQ_CLI_OK;
    /* Oldest first, so the jobs queue in the order they died. */
    for (size_t i = json_array_size(all); i-- > 0;) {
        json_t *raw = json_array_get(all, i);
        json_t *doc = json_loadb(json_string_value(raw), json_string_length(raw), 0, NULL);
        char why[128], queue[128];
        int r = doc ? retry_entry(c, raw, doc, why, sizeof why, queue, sizeof queue) : -2;
        json_decref(doc);
        if (r == -1) {
            rc = JOBQ_CLI_USAGE;
            break;
        }
        if (r == 1) retried++;
        if (r == -2) kept++;
    }
    json_decref(all);
    printf("retried %ld dead job(s)", retried);
    if (kept) printf("; kept %ld whose payload is not a JSON object (see jobq dead list)", kept);
    putchar('\n');
    return rc;
}

int jobq_cli_dead(jobq_cli *c, int argc, char **argv) {
    enum { O_JSON = 1, O_LIMIT, O_ALL };
    static const jobq_cli_opt opts[] = {{"json", 0, JOBQ_CLI_NOARG, O_JSON},
                                        {"limit", 'n', JOBQ_CLI_ARG, O_LIMIT},
                                        {"all", 'a', JOBQ_CLI_NOARG, O_ALL},
                                        {NULL, 0, 0, 0}};
    const char *action = NULL, *id = NULL, *v;
    bool as_json = false, all = false;
    double limit = 100;
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, c, opts, argc, argv);
    int o;
    while ((o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        if (o == JOBQ_CLI_HELP) return fputs(dead_usage, stdout), JOBQ_CLI_OK;
        if (o == JOBQ_CLI_BAD) return JOBQ_CLI_USAGE;
        if (o == O_JSON) as_json = true;
        if (o == O_ALL) all = true;
        if (o == O_LIMIT &&
            jobq_cli_number(c, "--limit", v, 0, 1e9, "a number of entries (0: all)", &limit) != 0)
            return JOBQ_CLI_USAGE;
        if (o == JOBQ_CLI_POSITIONAL) {
            if (!action)
                action = v;
            else if (!id)
                id = v;
            else
                return jobq_cli_error("dead: unexpected argument '%s'", v);
        }
    }
    if (!action) action = "list";
    bool list = !strcmp(action, "list"), show = !strcmp(action, "show"),
         retry = !strcmp(action, "retry"), purge = !strcmp(action, "purge");
    if (!list && !show && !retry && !purge)
        return jobq_cli_error(
            "dead: unknown action '%s': use list, show ID, retry ID, retry --all or purge", action);
    if ((list || purge) && id) return jobq_cli_error("dead %s: unexpected argument '%s'", action, id);
    if (show && !id) return jobq_cli_error("dead show: missing ID");
    if (retry && !id && !all) return jobq_cli_error("dead retry: missing ID (or --all)");
    if (retry && id && all) return jobq_cli_error("dead retry: give an ID or --all, not both");
    if (all && !retry) return jobq_cli_error("dead %s: --all goes with retry", action);
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;

    if (list) return dead_list(c, as_json, (long)limit);
    if (purge) {
        char key[512];
        jobq_cli_key(c, key, sizeof key, "dead");
        const char *eval[] = {"EVAL", purge_lua, "1", key};
        json_t *r;
        if (jobq_cli_command(c, &r, 4, eval, NULL) != 0) return JOBQ_CLI_USAGE;
        printf("removed %lld dead job(s)\n", (long long)json_integer_value(r));
        json_decref(r);
        return JOBQ_CLI_OK;
    }
    if (all) return dead_retry_all(c);
    for (int tries = 0; tries < 3; tries++) {
        json_t *raw = NULL, *doc = NULL;
        int found = find_entry(c, id, &raw, &doc);
        if (found < 0) return JOBQ_CLI_USAGE;
        if (found == 0) return jobq_cli_error("no dead job %s (see jobq dead list)", id);
        if (show) {
            jobq_cli_print_json(doc, true);
            json_decref(raw);
            json_decref(doc);
            return JOBQ_CLI_OK;
        }
        char why[128], queue[128];
        int r = retry_entry(c, raw, doc, why, sizeof why, queue, sizeof queue);
        json_decref(raw);
        json_decref(doc);
        if (r == 1) {
            printf("retrying job %s on queue %s\n", id, queue);
            return JOBQ_CLI_OK;
        }
        if (r == -2) return jobq_cli_error("dead retry: job %s cannot be retried: %s", id, why);
        if (r == -1) return JOBQ_CLI_USAGE;
        /* 0: the entry changed under us (retried by someone else?): look again */
    }
    return jobq_cli_error("dead retry: job %s kept changing; try again", id);
}
