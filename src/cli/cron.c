/*
 * jobq cron add|list|remove: the cron entries in Redis (protocol/crontab.h)
 * that every jobqd fires. The next tick shown is computed here, with the
 * entry's time zone, else the config file's [cron] timezone.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/cronspec.h"
#include "core/job.h"
#include "protocol/crontab.h"

static const char cron_usage[] =
    "Usage: jobq cron add NAME SPEC HANDLER [ARGS-JSON] [-q QUEUE] [--tz ZONE]\n"
    "       jobq cron list [--json]\n"
    "       jobq cron remove NAME\n"
    "Periodic jobs, kept in Redis (<prefix>:cron) and fired by every running jobqd:\n"
    "each tick queues one job (id cron:NAME:TICK) on QUEUE, once over all daemons.\n"
    "Ticks that fall while no daemon runs are skipped, not made up later.\n\n"
    "  SPEC  MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK (quote it), with *, N, N-M,\n"
    "        lists, /STEP and names (jan, mon); a day matches when either day field\n"
    "        does if both are restricted. Or @yearly @monthly @weekly @daily\n"
    "        @hourly, or @every DURATION (10s, 5m, 1h30m; ticks at multiples of it\n"
    "        since the Unix epoch)\n\n"
    "  -q, --queue QUEUE  the queue its jobs go to (default: default)\n"
    "      --tz ZONE      time zone of SPEC (Europe/Berlin, UTC; default: the config\n"
    "                     file's [cron] timezone, else each daemon's local time)\n"
    "      --json         list: one JSON array\n";

typedef struct cron_opts {
    const char *queue, *tz;
    bool as_json;
} cron_opts;

static void format_tick(long long t, char *buf, size_t size) {
    if (t <= 0) {
        snprintf(buf, size, "never");
        return;
    }
    jobq_cli_time(buf, size, (double)t, false);
}

static int cmd_add(jobq_cli *c, const cron_opts *o, const char **args, int nargs) {
    if (nargs < 4 || nargs > 5)
        return jobq_cli_error("cron add: expected NAME SPEC HANDLER [ARGS-JSON] (see 'jobq cron --help')");
    const char *name = args[1], *spec = args[2], *handler = args[3], *json = nargs == 5 ? args[4] : NULL;
    jobq_cronspec parsed;
    char why[256];
    if (!jobq_crontab_valid_name(name))
        return jobq_cli_error("cron add: bad NAME '%s': use 1 to 64 of A-Z a-z 0-9 _ . : -", name);
    if (jobq_cronspec_parse(&parsed, spec, why, sizeof why) != 0) return jobq_cli_error("cron add: %s", why);
    if (!*handler || !jobq_job_valid_name(handler, strlen(handler), 128))
        return jobq_cli_error("cron add: bad HANDLER (1 to 128 bytes, no control characters)");
    if (o->queue && !jobq_key_valid_queue(o->queue))
        return jobq_cli_error("cron add: bad queue name '%s': use 1 to 64 of A-Z a-z 0-9 _ . : -", o->queue);
    if (json) {
        json_error_t jerr;
        json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
        if (!v) return jobq_cli_error("cron add: ARGS-JSON is not valid JSON: %s", jerr.text);
        json_decref(v);
    }
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    const char *tz = o->tz ? o->tz : c->settings->cron_timezone;
    if (!jobq_cronspec_valid_tz(tz))
        return jobq_cli_error("cron add: unknown time zone '%s' (a name under /usr/share/zoneinfo, or UTC)", tz);
    char *def = jobq_crontab_definition(spec, handler, json, o->queue, tz, "cli");
    if (!def) return jobq_cli_error("out of memory");
    jobq_err err;
    int rc = jobq_crontab_set(c->r, c->key_prefix, name, def, &err);
    free(def);
    if (rc != 0) return jobq_cli_redis_error(c, &err), JOBQ_CLI_USAGE;
    char when[64];
    format_tick(jobq_cronspec_next(&parsed, tz, (long long)jobq_now()), when, sizeof when);
    printf("cron entry ");
    jobq_cli_put(stdout, name);
    printf(" saved; next tick %s%s%s\n", when, *tz ? " " : "", tz);
    return JOBQ_CLI_OK;
}

static int cmd_remove(jobq_cli *c, const char **args, int nargs) {
    if (nargs != 2) return jobq_cli_error("cron remove: expected NAME (see 'jobq cron --help')");
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    jobq_err err;
    int rc = jobq_crontab_remove(c->r, c->key_prefix, args[1], &err);
    if (rc < 0) return jobq_cli_redis_error(c, &err), JOBQ_CLI_USAGE;
    if (rc == 0) return jobq_cli_error("cron remove: no cron entry '%s'", args[1]);
    printf("cron entry ");
    jobq_cli_put(stdout, args[1]);
    printf(" removed\n");
    return JOBQ_CLI_OK;
}

static int cmd_list(jobq_cli *c, const cron_opts *o) {
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    char **names = NULL, **defs = NULL;
    size_t n = 0;
    jobq_err err;
    if (jobq_crontab_list(c->r, c->key_prefix, &names, &defs, &n, &err) != 0)
        return jobq_cli_redis_error(c, &err), JOBQ_CLI_USAGE;
    json_t *list = json_array();
    long long now = (long long)jobq_now();
    for (size_t i = 0; i < n; i++) {
        jobq_crontab_entry e;
        char why[256] = "";
        json_t *row;
        if (jobq_crontab_parse(names[i], defs[i], &e, why, sizeof why) != 0) {
            row = json_pack("{s:s, s:s, s:s}", "name", names[i], "error", why, "definition", defs[i]);
        } else {
            const char *tz = e.timezone[0] ? e.timezone : c->settings->cron_timezone;
            long long next = jobq_cronspec_next(&e.parsed, tz, now);
            row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "name", e.name, "spec", e.spec, "handler",
                            e.handler, "queue", e.queue, "timezone", e.timezone, "source", e.source[0] ? e.source : "cli",
                            "next", next > 0 ? json_integer(next) : json_null());
            json_t *args = e.args ? json_loads(e.args, JSON_DECODE_ANY, NULL) : NULL;
            if (args) json_object_set_new(row, "args", args);
            jobq_crontab_entry_fini(&e);
        }
        json_array_append_new(list, row);
    }
    jobq_crontab_free_list(names, defs, n);
    if (o->as_json) {
        jobq_cli_print_json(list, true);
        json_decref(list);
        return JOBQ_CLI_OK;
    }
    if (json_array_size(list) == 0) {
        printf("no cron entries\n");
        json_decref(list);
        return JOBQ_CLI_OK;
    }
    jobq_cli_table t;
    jobq_cli_table_init(&t, 6, 0);
    jobq_cli_table_add(&t, "NAME", "SPEC", "QUEUE", "HANDLER", "NEXT", "TIMEZONE");
    size_t i;
    json_t *row;
    json_array_foreach(list, i, row) {
        const char *error = json_string_value(json_object_get(row, "error"));
        char when[64];
        json_t *next = json_object_get(row, "next");
        format_tick(json_is_integer(next) ? json_integer_value(next) : 0, when, sizeof when);
        const char *tz = json_string_value(json_object_get(row, "timezone"));
        jobq_cli_table_add(&t, json_string_value(json_object_get(row, "name")),
                           error ? "(invalid)" : json_string_value(json_object_get(row, "spec")),
                           json_string_value(json_object_get(row, "queue")),
                           json_string_value(json_object_get(row, "handler")), error ? error : when,
                           tz && *tz ? tz : "local");
    }
    jobq_cli_table_print(&t, stdout, 0);
    jobq_cli_table_fini(&t);
    json_decref(list);
    return JOBQ_CLI_OK;
}

int jobq_cli_cron(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {
        JOBQ_CLI_OPT_STRING("queue", 'q', cron_opts, queue),
        JOBQ_CLI_OPT_STRING("tz", 0, cron_opts, tz),
        JOBQ_CLI_OPT_FLAG("json", 0, cron_opts, as_json),
        JOBQ_CLI_OPT_END,
    };
    cron_opts o = {NULL, NULL, false};
    const char *args[6] = {0};
    int nargs;
    const jobq_cli_spec spec = {cron_usage, opts, &o, args, 5, " (quote SPEC and ARGS-JSON)"};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (nargs == 0) return jobq_cli_error("cron: missing action: add, list or remove (see 'jobq cron --help')");
    if (strcmp(args[0], "add") == 0) return cmd_add(c, &o, args, nargs);
    if (strcmp(args[0], "remove") == 0) return cmd_remove(c, args, nargs);
    if (strcmp(args[0], "list") == 0) {
        if (nargs != 1) return jobq_cli_error("cron list: unexpected argument '%s'", args[1]);
        return cmd_list(c, &o);
    }
    return jobq_cli_error("cron: unknown action '%s': add, list or remove", args[0]);
}
