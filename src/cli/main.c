/*
 * jobq, the command-line client: entry point, where Redis is, the event
 * subscription (jobq events and every --wait) and jobq functions. The other
 * subcommands live in cli_jobs.c, cli_status.c and cli_dead.c.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/config.h"
#include "protocol/functions.h"
#include "core/job.h"

#define DEFAULT_URL "redis://127.0.0.1:6379/0"

/* ---- connection ---- */

int jobq_cli_connect(jobq_cli *c) {
    if (c->q) return 0;
    const char *env = getenv("JOBQ_REDIS_URL");
    const char *url = c->redis_url, *source = "--redis", *prefix = c->prefix;
    if (!url && env && *env) {
        url = env;
        source = "JOBQ_REDIS_URL";
    }
    jobq_config cfg;
    bool have_cfg = false, url_from_file = false;
    jobq_err err;
    if (!url || !prefix) {
        const char *path = c->config_path;
        if (!path && access(JOBQ_DEFAULT_CONFIG_PATH, R_OK) == 0) path = JOBQ_DEFAULT_CONFIG_PATH;
        if (path) {
            if (jobq_config_load(&cfg, path, &err) != 0) return jobq_cli_error("%s", err.msg), -1;
            have_cfg = true;
            if (!url) {
                url = cfg.redis_url;
                source = path;
                url_from_file = true;
            }
            if (!prefix) prefix = cfg.prefix;
        }
    }
    c->url = strdup(url ? url : DEFAULT_URL);
    c->key_prefix = strdup(prefix ? prefix : "jobq");
    int rc = -1;
    if (url_from_file) {
        if (jobq_config_load_secrets(&cfg, &err) != 0) {
            jobq_cli_error("%s", err.msg);
            goto out;
        }
        if (cfg.redis_password) c->password = strdup(cfg.redis_password);
    }
    if (!c->url || !c->key_prefix) {
        jobq_cli_error("out of memory");
        goto out;
    }
    c->q = jobq_queue_new(c->url, c->key_prefix, 5.0, &err);
    if (!c->q) {
        jobq_cli_error("%s: %s", url ? source : "default URL", err.msg);
        goto out;
    }
    jobq_queue_set_password(c->q, c->password);
    if (jobq_queue_connect(c->q, &err) != 0) {
        jobq_cli_error("%s", err.msg);
        jobq_queue_free(c->q);
        c->q = NULL;
        goto out;
    }
    rc = 0;
out:
    if (have_cfg) jobq_config_fini(&cfg);
    return rc;
}

jobq_queue *jobq_cli_connect_another(jobq_cli *c) {
    jobq_err err;
    jobq_queue *q = jobq_queue_new(c->url, c->key_prefix, 5.0, &err);
    if (!q) {
        jobq_cli_error("%s", err.msg);
        return NULL;
    }
    jobq_queue_set_password(q, c->password);
    if (jobq_queue_connect(q, &err) != 0) {
        jobq_cli_error("%s", err.msg);
        jobq_queue_free(q);
        return NULL;
    }
    return q;
}

/* ---- events ---- */

jobq_queue *jobq_cli_subscribe(jobq_cli *c) {
    jobq_queue *s = jobq_cli_connect_another(c);
    if (!s) return NULL;
    char channel[300];
    jobq_cli_key(c, channel, sizeof channel, "events");
    const char *argv[] = {"SUBSCRIBE", channel};
    jobq_err err = {0};
    json_t *confirm = NULL;
    int rc = jobq_queue_send(s, &err, 2, argv);
    if (rc == 0) rc = jobq_queue_read_json(s, 5, &confirm, &err);
    json_decref(confirm);
    if (rc != 0) {
        jobq_cli_error("cannot subscribe to %s: %s", channel, rc > 0 ? "no reply" : err.msg);
        jobq_queue_free(s);
        return NULL;
    }
    return s;
}

json_t *jobq_cli_message_event(json_t *m) {
    const char *kind = json_string_value(json_array_get(m, 0));
    const char *data = json_string_value(json_array_get(m, 2));
    if (!kind || strcmp(kind, "message") != 0 || !data) return NULL;
    json_t *e = json_loads(data, 0, NULL);
    if (json_is_object(e)) return e;
    json_decref(e);
    return NULL;
}

static const char events_usage[] =
    "Usage: jobq events [--json] [--count N]\n"
    "Follow <prefix>:events and print one line per job event until interrupted\n"
    "(reconnecting if Redis goes away).\n\n"
    "      --json     print each event as received (one JSON object per line)\n"
    "  -n, --count N  exit after N events\n";

static void print_event(json_t *e) {
    char when[40];
    json_t *t = json_object_get(e, "time");
    jobq_cli_time(when, sizeof when, json_is_number(t) ? json_number_value(t) : jobq_now(), true);
    const char *name = json_string_value(json_object_get(e, "event"));
    printf("%s  %-9s", when, name ? name : "?");
    static const char *const fields[] = {"id",     "queue",  "handler", "attempt",
                                         "worker", "due_at", "error"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        json_t *v = json_object_get(e, fields[i]);
        if (!v || json_is_null(v)) continue;
        if (json_is_string(v) && strcmp(fields[i], "error") != 0 &&
            !strpbrk(json_string_value(v), " \t\""))
            printf(" %s=%s", fields[i], json_string_value(v));
        else if (json_is_string(v) || json_is_integer(v) || json_is_real(v)) {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            printf(" %s=%s", fields[i], s ? s : "");
            free(s);
        }
    }
    putchar('\n');
}

static int cmd_events(jobq_cli *c, int argc, char **argv) {
    enum { O_JSON = 1, O_COUNT };
    static const jobq_cli_opt opts[] = {
        {"json", 0, JOBQ_CLI_NOARG, O_JSON}, {"count", 'n', JOBQ_CLI_ARG, O_COUNT}, {NULL, 0, 0, 0}};
    bool as_json = false;
    double count = 0;
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, c, opts, argc, argv);
    const char *v;
    int o;
    while ((o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        if (o == JOBQ_CLI_HELP) return fputs(events_usage, stdout), JOBQ_CLI_OK;
        if (o == JOBQ_CLI_BAD) return JOBQ_CLI_USAGE;
        if (o == O_JSON) as_json = true;
        if (o == O_COUNT && jobq_cli_number(c, "--count", v, 1, 1e12, "a positive integer", &count) != 0)
            return JOBQ_CLI_USAGE;
        if (o == JOBQ_CLI_POSITIONAL) return jobq_cli_error("events: unexpected argument '%s'", v);
    }
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    jobq_queue *sub = jobq_cli_subscribe(c);
    if (!sub) return JOBQ_CLI_USAGE;
    double seen = 0;
    int failures = 0;
    while (count == 0 || seen < count) {
        if (!sub) {
            sleep(failures < 5 ? (unsigned)failures : 5);
            if (!(sub = jobq_cli_subscribe(c))) {
                failures++;
                continue;
            }
            if (failures) fprintf(stderr, "jobq: events: connected again\n");
            failures = 0;
        }
        json_t *m = NULL;
        jobq_err err;
        int r = jobq_queue_read_json(sub, 60, &m, &err);
        if (r != 0) { /* timed out (the connection is then closed) or lost */
            if (r < 0) {
                fprintf(stderr, "jobq: events: lost the connection (%s); reconnecting\n", err.msg);
                failures = 1;
            }
            jobq_queue_free(sub);
            sub = NULL;
            continue;
        }
        const char *data = json_string_value(json_array_get(m, 2));
        json_t *event = jobq_cli_message_event(m);
        if (as_json && data) {
            printf("%s\n", data);
        } else if (event) {
            print_event(event);
        }
        fflush(stdout);
        if (event || data) seen++;
        json_decref(event);
        json_decref(m);
    }
    jobq_queue_free(sub);
    return JOBQ_CLI_OK;
}

/* ---- functions ---- */

static const char functions_usage[] =
    "Usage: jobq functions [--load]\n"
    "Print the Redis function library jobqd installs (jobq_enqueue,\n"
    "jobq_enqueue_unique, jobq_version), e.g. for\n"
    "  jobq functions | redis-cli -x FUNCTION LOAD REPLACE\n\n"
    "      --load  install it now unless the server has it (or a newer one)\n";

static int cmd_functions(jobq_cli *c, int argc, char **argv) {
    enum { O_LOAD = 1 };
    static const jobq_cli_opt opts[] = {{"load", 0, JOBQ_CLI_NOARG, O_LOAD}, {NULL, 0, 0, 0}};
    bool load = false;
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, c, opts, argc, argv);
    const char *v;
    int o;
    while ((o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        if (o == JOBQ_CLI_HELP) return fputs(functions_usage, stdout), JOBQ_CLI_OK;
        if (o == JOBQ_CLI_BAD) return JOBQ_CLI_USAGE;
        if (o == O_LOAD) load = true;
        if (o == JOBQ_CLI_POSITIONAL) return jobq_cli_error("functions: unexpected argument '%s'", v);
    }
    if (!load) {
        fputs(jobq_functions_source(), stdout);
        return JOBQ_CLI_OK;
    }
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    jobq_err err;
    int rc = jobq_functions_ensure(c->q, &err);
    if (rc < 0) return jobq_cli_error("cannot install the function library: %s", err.msg);
    printf(rc ? "installed the jobq function library, version %d\n"
              : "the jobq function library is up to date (version %d or newer)\n",
           JOBQ_FUNCTIONS_VERSION);
    return JOBQ_CLI_OK;
}

/* ---- main ---- */

static const char usage[] =
    "Usage: jobq [--redis URL] [--prefix P] [-c FILE] COMMAND [ARGS]\n"
    "The jobq client: enqueue jobs, wait for results, inspect and repair queues.\n\n"
    "Commands (jobq COMMAND --help for details):\n"
    "  enqueue [-q QUEUE] [--id ID] [--timeout S] [--attempts N] [--delay S]\n"
    "          [--wait[=S]] HANDLER [ARGS-JSON]    queue a job, print its id\n"
    "  result ID [--wait[=S]]           print a job's result\n"
    "  status [--json] [--watch]        queues, daemons, workers and totals\n"
    "  dead list|show ID|retry ID|retry --all|purge\n"
    "                                   jobs that failed for good\n"
    "  cancel ID                        remove a waiting job, stop a running one\n"
    "  events [--json]                  follow job events, one line each\n"
    "  metrics [-o FILE]                Prometheus text exposition\n"
    "  functions [--load]               the Redis function library (FCALL jobq_enqueue)\n\n"
    "Options (accepted anywhere on the line):\n"
    "      --redis URL    redis://[[user]:password@]host[:port][/db] or\n"
    "                     unix:///path/redis.sock[?db=N]; else $JOBQ_REDIS_URL, else\n"
    "                     the config file's [redis] url, else " DEFAULT_URL "\n"
    "      --prefix P     key prefix; else the config file's, else jobq\n"
    "  -c, --config FILE  read [redis] url, prefix and password_file from FILE\n"
    "                     (default " JOBQ_DEFAULT_CONFIG_PATH " when readable)\n"
    "      --version      print the version\n"
    "  -h, --help         print this help\n\n"
    "Exit status: 0 ok, 1 the job failed, 2 usage or connection error,\n"
    "3 a wait timed out (or no result yet).\n";

typedef struct subcommand {
    const char *name;
    int (*run)(jobq_cli *c, int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
    {"enqueue", jobq_cli_enqueue}, {"result", jobq_cli_result},  {"status", jobq_cli_status},
    {"dead", jobq_cli_dead},       {"cancel", jobq_cli_cancel},  {"events", cmd_events},
    {"metrics", jobq_cli_metrics}, {"functions", cmd_functions},
};

int main(int argc, char **argv) {
    enum { O_VERSION = 1 };
    static const jobq_cli_opt opts[] = {{"version", 'V', JOBQ_CLI_NOARG, O_VERSION}, {NULL, 0, 0, 0}};
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
            printf("jobq %s\n", JOBQ_VERSION);
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
    jobq_queue_free(c.q);
    free(c.url_copy);
    free(c.url);
    free(c.key_prefix);
    if (c.password) explicit_bzero(c.password, strlen(c.password));
    free(c.password);
    return status;
}
