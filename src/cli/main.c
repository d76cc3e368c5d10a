/*
 * jobq, the command-line client: entry point, where Redis is, the event
 * subscription (jobq events and every --wait) and jobq functions. The other
 * subcommands live in jobs.c, status.c, metrics.c, dead.c, migrate.c and
 * web.c.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/job.h"
#include "protocol/functions.h"
#include "protocol/scripts.h"
#include "protocol/tls.h"

#define DEFAULT_URL "redis://127.0.0.1:6379/0"

/* ---- connection ---- */

/* A connected handle on c's URL, or NULL after printing why. */
static jobq_redis *connect_to(jobq_cli *c, const char *source) {
    jobq_err err;
    /* The URL as resolved, with the config file's other [redis] settings. */
    char *file_url = c->settings->redis_url;
    c->settings->redis_url = c->url;
    jobq_redis *r = jobq_redis_open_config(c->settings, 5.0, &err);
    c->settings->redis_url = file_url;
    if (!r) {
        jobq_cli_error("%s: %s", source, err.msg);
        return NULL;
    }
    jobq_redis_set_password(r, c->password);
    if (jobq_redis_connect(r, &err) != 0) {
        jobq_cli_error("%s", err.msg);
        jobq_redis_free(r);
        return NULL;
    }
    return r;
}

/* Load -c FILE, else the default config file when readable, into cfg:
 * 1 loaded, 0 there is none, -1 after printing why. */
static int load_config(const jobq_cli *c, jobq_config *cfg, const char **path) {
    jobq_err err;
    *path = c->config_path;
    if (!*path && access(JOBQ_DEFAULT_CONFIG_PATH, R_OK) == 0) *path = JOBQ_DEFAULT_CONFIG_PATH;
    if (!*path) return 0;
    if (jobq_config_load(cfg, *path, &err) != 0) return jobq_cli_error("%s", err.msg), -1;
    return 1;
}

/* The password of the config file's [redis] section into c->password. */
static int take_password(jobq_cli *c, jobq_config *cfg) {
    jobq_err err;
    if (jobq_config_load_secrets(cfg, &err) != 0) return jobq_cli_error("%s", err.msg), -1;
    if (cfg->redis_password && !(c->password = strdup(cfg->redis_password)))
        return jobq_cli_error("out of memory"), -1;
    return 0;
}

/* c->url and c->key_prefix: copies of url and prefix, else the defaults. */
static int set_names(jobq_cli *c, const char *url, const char *prefix) {
    c->url = strdup(url ? url : DEFAULT_URL);
    c->key_prefix = strdup(prefix ? prefix : "jobq");
    if (!c->url || !c->key_prefix) return jobq_cli_error("out of memory"), -1;
    if (!jobq_key_valid_prefix(c->key_prefix))
        return jobq_cli_error("bad key prefix '%s': use 1 to 64 of A-Z a-z 0-9 _ . : -", c->key_prefix), -1;
    return 0;
}

/* Where Redis is and the key prefix: --redis, else $JOBQ_REDIS_URL, else
 * the config file's (which also gives the password), else the defaults;
 * *source names where the URL came from. 0, or -1 after printing why. */
static int resolve(jobq_cli *c, const char **source) {
    const char *env = getenv("JOBQ_REDIS_URL");
    const char *url = c->redis_url, *prefix = c->prefix, *path = NULL;
    *source = "--redis";
    if (!url && env && *env) {
        url = env;
        *source = "JOBQ_REDIS_URL";
    }
    jobq_config *cfg = c->settings = calloc(1, sizeof *cfg);
    if (!cfg) return jobq_cli_error("out of memory"), -1;
    int have = load_config(c, cfg, &path), rc = 0;
    if (have < 0) return -1;
    if (!have) jobq_config_defaults(cfg);
    if (have && !url) {
        url = cfg->redis_url;
        *source = path;
        rc = take_password(c, cfg);
    }
    if (have && !prefix) prefix = cfg->prefix;
    if (!url) *source = "default URL";
    if (rc == 0) rc = set_names(c, url, prefix);
    return rc;
}

int jobq_cli_connect(jobq_cli *c) {
    if (c->r) return 0;
    const char *source;
    if (resolve(c, &source) != 0) return -1;
    c->r = connect_to(c, source);
    return c->r ? 0 : -1;
}

/* ---- events ---- */

/* Subscribe s to the events of queue, or on a cluster of every queue
 * there is when queue is NULL. 0, or -1 after printing. */
static int subscribe_queues(jobq_cli *c, jobq_redis *s, const char *queue) {
    char channel[JOBQ_KEY_MAX];
    jobq_err err;
    if (!jobq_redis_is_cluster(s)) {
        jobq_key_events(channel, sizeof channel, c->key_prefix);
    } else if (queue) {
        jobq_key(channel, sizeof channel, c->key_prefix, JOBQ_KEY_EVENTS, queue, NULL);
    } else {
        /* Sharded channels: one per queue, on its shard. */
        jobq_cli_queues qs;
        int rc = jobq_cli_queues_scan(c, &qs);
        for (size_t i = 0; rc == 0 && i < qs.n; i++) rc = subscribe_queues(c, s, qs.q[i].name);
        jobq_cli_queues_fini(&qs);
        return rc;
    }
    if (jobq_redis_subscribe(s, channel, &err) != 0) {
        jobq_cli_error("cannot subscribe to %s: %s", channel, err.msg);
        return -1;
    }
    return 0;
}

jobq_redis *jobq_cli_subscribe(jobq_cli *c, const char *queue) {
    jobq_redis *s = connect_to(c, "--redis");
    if (s && subscribe_queues(c, s, queue) != 0) {
        jobq_redis_free(s);
        s = NULL;
    }
    return s;
}

json_t *jobq_cli_message_event(json_t *m) {
    const char *kind = json_string_value(json_array_get(m, 0));
    json_t *data = json_array_get(m, 2);
    /* "message" (SUBSCRIBE), "smessage" (SSUBSCRIBE, a cluster's sharded channels) */
    if (!kind || (strcmp(kind, "message") != 0 && strcmp(kind, "smessage") != 0) || !json_is_string(data))
        return NULL;
    json_t *e = json_loadb(json_string_value(data), json_string_length(data), 0, NULL);
    if (json_is_object(e)) return e;
    json_decref(e);
    return NULL;
}

static const char events_usage[] =
    "Usage: jobq events [--json] [--count N]\n"
    "Follow <prefix>:events and print one line per job event until interrupted\n"
    "(reconnecting if Redis goes away). Control characters in ids, handlers and\n"
    "errors are shown as \\xNN.\n\n"
    "      --json     print each event as received (one JSON object per line)\n"
    "  -n, --count N  exit after N events\n";

/* One event's line: its time, name and the fields below as name=value. */
static void print_event(json_t *e) {
    char when[40];
    json_t *t = json_object_get(e, "time");
    jobq_cli_time(when, sizeof when, json_is_number(t) ? json_number_value(t) : jobq_now(), true);
    const char *name = json_string_value(json_object_get(e, "event"));
    char shown[64];
    printf("%s  %-9s", when, jobq_cli_escape(shown, sizeof shown, name ? name : "?", name ? strlen(name) : 1));
    static const char *const fields[] = {"id", "queue", "handler", "attempt", "worker", "due_at", "error"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        json_t *v = json_object_get(e, fields[i]);
        char *s = NULL;
        if (json_is_string(v) && strcmp(fields[i], "error") != 0 && !strpbrk(json_string_value(v), " \t\""))
            s = jobq_cli_escape_dup(json_string_value(v), json_string_length(v));
        else if (json_is_string(v) || json_is_integer(v) || json_is_real(v))
            s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!s) continue;
        printf(" %s=", fields[i]);
        jobq_cli_put(stdout, s);
        free(s);
    }
    putchar('\n');
}

/* A message's text for --json: as received, unless it has control
 * characters (valid one-line JSON has none): then escaped. */
static void print_raw(json_t *data) {
    const char *s = json_string_value(data);
    size_t len = json_string_length(data);
    bool plain = true;
    for (size_t i = 0; i < len && plain; i++) plain = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (plain) {
        fwrite(s, 1, len, stdout);
    } else {
        char *e = jobq_cli_escape_dup(s, len);
        fputs(e ? e : "", stdout);
        free(e);
    }
    putchar('\n');
}

typedef struct events_opts {
    bool as_json;
    double count;
} events_opts;

static int cmd_events(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {
        JOBQ_CLI_OPT_FLAG("json", 0, events_opts, as_json),
        JOBQ_CLI_OPT_INTEGER("count", 'n', events_opts, count, 1, 1e12, "a positive integer"),
        JOBQ_CLI_OPT_END,
    };
    events_opts o = {false, 0};
    int nargs;
    const jobq_cli_spec spec = {events_usage, opts, &o, NULL, 0, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    jobq_redis *sub = jobq_cli_subscribe(c, NULL);
    if (!sub) return JOBQ_CLI_USAGE;
    double seen = 0;
    int failures = 0;
    while (o.count == 0 || seen < o.count) {
        if (!sub) {
            sleep(failures < 5 ? (unsigned)failures : 5);
            if (!(sub = jobq_cli_subscribe(c, NULL))) {
                failures++;
                continue;
            }
            if (failures) fprintf(stderr, "jobq: events: connected again\n");
            failures = 0;
        }
        json_t *m = NULL;
        jobq_err err;
        int r = jobq_redis_read_json(sub, 60, &m, &err);
        if (r != 0) { /* timed out (the connection is then closed) or lost */
            if (r < 0) {
                jobq_cli_error("events: lost the connection (%s); reconnecting", err.msg);
                failures = 1;
            }
            jobq_redis_free(sub);
            sub = NULL;
            continue;
        }
        json_t *data = json_array_get(m, 2);
        const char *kind = json_string_value(json_array_get(m, 0));
        bool message = kind && (strcmp(kind, "message") == 0 || strcmp(kind, "smessage") == 0) &&
                       json_is_string(data);
        json_t *event = jobq_cli_message_event(m);
        if (o.as_json && message)
            print_raw(data);
        else if (event)
            print_event(event);
        fflush(stdout);
        if (message) seen++;
        json_decref(event);
        json_decref(m);
    }
    jobq_redis_free(sub);
    return JOBQ_CLI_OK;
}

/* ---- functions ---- */

static const char functions_usage[] =
    "Usage: jobq functions [--load]\n"
    "Print the Redis function library jobqd installs (jobq_enqueue,\n"
    "jobq_enqueue_unique, jobq_version), e.g. for\n"
    "  jobq functions | redis-cli -x FUNCTION LOAD REPLACE\n\n"
    "      --load  install it now unless the server has it (or a newer one)\n";

typedef struct functions_opts {
    bool load;
} functions_opts;

static int cmd_functions(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {JOBQ_CLI_OPT_FLAG("load", 0, functions_opts, load), JOBQ_CLI_OPT_END};
    functions_opts o = {false};
    int nargs;
    const jobq_cli_spec spec = {functions_usage, opts, &o, NULL, 0, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (!o.load) {
        fputs(jobq_script_function_library(), stdout);
        return JOBQ_CLI_OK;
    }
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    jobq_err err;
    int rc = jobq_functions_ensure(c->r, &err);
    if (rc < 0) return jobq_cli_error("cannot install the function library: %s", err.msg);
    printf(rc ? "installed the jobq function library, version %d\n"
              : "the jobq function library is up to date (version %d or newer)\n",
           jobq_script_function_version());
    return JOBQ_CLI_OK;
}

/* ---- main ---- */

static const char usage[] =
    "Usage: jobq [OPTIONS] COMMAND [ARGS]\n"
    "The jobq client: enqueue jobs, wait for results, inspect and repair queues.\n\n"
    "Commands (jobq COMMAND --help for details):\n"
    "  enqueue [-q QUEUE] [--id ID] [--timeout S] [--attempts N] [--delay S]\n"
    "          [--unique] [--wait[=S]] HANDLER [ARGS-JSON]\n"
    "                                   queue a job, print its id\n"
    "  result ID [--wait[=S]]           print a job's result\n"
    "  status [--json] [--watch]        queues, daemons, workers and totals\n"
    "  dead [-q QUEUE] list|show ID|retry ID|retry --all|purge\n"
    "                                   jobs that failed for good\n"
    "  cancel ID                        remove a waiting job, stop a running one\n"
    "  events [--json]                  follow job events, one line each\n"
    "  metrics [-o FILE]                Prometheus text exposition\n"
    "  web [--listen ADDR:PORT] [--token-file FILE]\n"
    "                                   the dashboard, /metrics and the JSON API\n"
    "  functions [--load]               the Redis function library (FCALL jobq_enqueue)\n"
    "  migrate [--dry-run]              move jobs from the keys of jobq 0.1.0\n\n"
    "Options (accepted anywhere on the line):\n"
    "      --redis URL    redis://[[user]:password@]host[:port][/db] or\n"
    "                     unix:///path/redis.sock[?db=N]; else $JOBQ_REDIS_URL, else\n"
    "                     the config file's [redis] url, else " DEFAULT_URL "\n"
    "      --prefix P     key prefix; else the config file's, else jobq\n"
    "  -c, --config FILE  read [redis] url, prefix and password_file from FILE\n"
    "                     (default " JOBQ_DEFAULT_CONFIG_PATH " when readable)\n"
    "      --version      print the version\n"
    "  -h, --help         print this help\n\n"
    "Keys: the keys of queue Q are <prefix>:{Q}:queue, :scheduled, :dead, ...\n"
    "(see README.md, \"Redis keys\"); results are <prefix>:result:<id>.\n\n"
    "Exit status: 0 ok, 1 the job failed, 2 usage or connection error,\n"
    "3 a wait timed out (or no result yet).\n";

typedef struct subcommand {
    const char *name;
    int (*run)(jobq_cli *c, int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
    {"enqueue", jobq_cli_enqueue}, {"result", jobq_cli_result},   {"status", jobq_cli_status},
    {"dead", jobq_cli_dead},       {"cancel", jobq_cli_cancel},   {"events", cmd_events},
    {"metrics", jobq_cli_metrics}, {"functions", cmd_functions}, {"migrate", jobq_cli_migrate},
    {"web", jobq_cli_web},
};

int main(int argc, char **argv) {
    enum { O_VERSION = 1 };
    static const jobq_cli_opt opts[] = {JOBQ_CLI_OPT_ID("version", 'V', JOBQ_CLI_NOARG, O_VERSION),
                                        JOBQ_CLI_OPT_END};
    jobq_cli c = {0};
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, &c, opts, argc, argv);
    const char *v;
    int o, status = -1;
    while (status < 0 && (o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        if (o == JOBQ_CLI_HELP) {
            fputs(usage, stdout);
            status = JOBQ_CLI_OK;
        } else if (o == O_VERSION) {
            printf("jobq %s (TLS %s)\n", JOBQ_VERSION, jobq_tls_available() ? "yes" : "no: built with hiredis 0.14");
            status = JOBQ_CLI_OK;
        } else if (o == JOBQ_CLI_BAD) {
            status = JOBQ_CLI_USAGE;
        } else if (o == JOBQ_CLI_POSITIONAL) {
            const subcommand *s = NULL;
            for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
                if (strcmp(subcommands[i].name, v) == 0) s = &subcommands[i];
            if (!s) {
                status = jobq_cli_error("unknown command '%s' (see 'jobq --help')", v);
            } else {
                c.cmd = s->name;
                status = s->run(&c, argc - (p.i - 1), argv + (p.i - 1));
            }
        }
    }
    if (status < 0) status = jobq_cli_error("missing command (see 'jobq --help')");
    fflush(stdout);
    if (ferror(stdout)) status = status ? status : jobq_cli_error("cannot write the output");
    jobq_redis_free(c.r);
    free(c.url_copy);
    free(c.url);
    free(c.key_prefix);
    if (c.password) explicit_bzero(c.password, strlen(c.password));
    free(c.password);
    jobq_config_fini(c.settings);
    free(c.settings);
    return status;
}
