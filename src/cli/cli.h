/*
 * Internals shared by the jobq client's files (cli.c, cli_jobs.c,
 * cli_status.c, cli_dead.c, cli_util.c). Subcommands return the exit status:
 * 0 ok, 1 the job failed, 2 usage or connection error, 3 a wait timed out.
 */
#ifndef JOBQ_CLI_H
#define JOBQ_CLI_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "protocol/queue.h"

enum { JOBQ_CLI_OK = 0, JOBQ_CLI_FAILED = 1, JOBQ_CLI_USAGE = 2, JOBQ_CLI_TIMEOUT = 3 };

/* One invocation: where Redis is and the connection, made on first use. */
typedef struct jobq_cli {
    const char *redis_url;   /* --redis (a scrubbed copy), else NULL */
    const char *prefix;      /* --prefix, else NULL */
    const char *config_path; /* -c, else NULL */
    char *url_copy;          /* owned: --redis before the password was scrubbed */
    char *url;               /* owned: the URL in use, once resolved */
    char *key_prefix;        /* owned: the prefix in use, once resolved */
    char *password;          /* owned: from the config's secrets, or NULL */
    jobq_queue *q;           /* owned; NULL until jobq_cli_connect */
    const char *cmd;         /* subcommand name for messages, e.g. "dead retry" */
} jobq_cli;

/* Print "jobq: <message>" as one line on stderr. Returns JOBQ_CLI_USAGE. */
int jobq_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Resolve the URL and prefix (--redis, $JOBQ_REDIS_URL, the config file,
 * the default) and connect. 0, or -1 after printing why. */
int jobq_cli_connect(jobq_cli *c);

/* A new connection to the same server (for SUBSCRIBE), or NULL after
 * printing why. Free with jobq_queue_free. */
jobq_queue *jobq_cli_connect_another(jobq_cli *c);

/* A connection subscribed to <prefix>:events (confirmed), or NULL after
 * printing why. Free with jobq_queue_free. */
jobq_queue *jobq_cli_subscribe(jobq_cli *c);

/* The event (a new reference) carried by a pub/sub message as read with
 * jobq_queue_read_json, or NULL when it is not a JSON object message. */
json_t *jobq_cli_message_event(json_t *m);

/* "<prefix>:<rest>" into buf (needs jobq_cli_connect first). Returns buf. */
char *jobq_cli_key(jobq_cli *c, char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Run a command on c's connection; argvlen may be NULL. 0 with *out (a new
 * reference), or -1 after printing the error. */
int jobq_cli_command(jobq_cli *c, json_t **out, int argc, const char **argv, const size_t *argvlen);

/* Keys matching "<prefix>:<rest>*" (rest is taken literally), via SCAN.
 * A new JSON array of strings, or NULL after printing the error. */
json_t *jobq_cli_scan(jobq_cli *c, const char *rest);

/* The whole list or sorted set at key, fetched in pages, as a new JSON array
 * of strings (at most limit elements; limit <= 0: all). NULL on error. */
json_t *jobq_cli_range(jobq_cli *c, const char *key, bool zset, long limit);

/* The job id of a payload (its "id", else the id a worker assigned in
 * "_jobq"), or NULL. Borrowed from payload. */
const char *jobq_cli_payload_id(json_t *payload);

/* ---- command-line options ---- */

enum { JOBQ_CLI_NOARG, JOBQ_CLI_ARG, JOBQ_CLI_OPTARG /* an optional number */ };

typedef struct jobq_cli_opt {
    const char *name; /* long name without "--" */
    char letter;      /* short option, 0 for none */
    int arg;          /* JOBQ_CLI_NOARG, _ARG or _OPTARG */
    int id;           /* > 0, returned by jobq_cli_next */
} jobq_cli_opt;

typedef struct jobq_cli_parser {
    jobq_cli *cli;            /* global options land here */
    const jobq_cli_opt *opts; /* ends with an entry whose id is 0 */
    int argc;
    char **argv;
    int i;                /* next argv index */
    bool positional_only; /* after "--" */
} jobq_cli_parser;

enum { JOBQ_CLI_POSITIONAL = 0, JOBQ_CLI_END = -1, JOBQ_CLI_BAD = -2, JOBQ_CLI_HELP = -3 };

/* Start parsing argv[1..argc) of subcommand c->cmd. */
void jobq_cli_parser_init(jobq_cli_parser *p, jobq_cli *c, const jobq_cli_opt *opts, int argc,
                          char **argv);

/* The next option's id with *value (its argument, or NULL), a positional
 * argument (JOBQ_CLI_POSITIONAL, *value set), JOBQ_CLI_HELP for -h/--help,
 * JOBQ_CLI_END, or JOBQ_CLI_BAD after printing why. --redis, --prefix and
 * -c/--config are taken anywhere and stored in the jobq_cli. An _OPTARG
 * option takes "--opt=S", or "--opt S" when S is a number. */
int jobq_cli_next(jobq_cli_parser *p, const char **value);

/* Parse value as a number in [min, max] for option name. 0, or -1 after
 * printing "jobq: CMD: --name expects what, got 'value'". */
int jobq_cli_number(const jobq_cli *c, const char *name, const char *value, double min, double max,
                    const char *what, double *out);

/* ---- output ---- */

/* An aligned text table: the first row added is the header. */
typedef struct jobq_cli_table {
    int ncols;
    unsigned right; /* bit i set: column i is right-aligned */
    char **cells;   /* owned, rows * ncols */
    int rows, cap;
} jobq_cli_table;

void jobq_cli_table_init(jobq_cli_table *t, int ncols, unsigned right);
/* Add a row of ncols strings (copied; NULL prints as empty). */
void jobq_cli_table_add(jobq_cli_table *t, ...);
void jobq_cli_table_print(const jobq_cli_table *t, FILE *out, int indent);
void jobq_cli_table_fini(jobq_cli_table *t);

/* "850ms", "12.3s", "5m12s", "3h04m", "2d03h" into buf. */
char *jobq_cli_duration(char *buf, size_t size, double seconds);
/* Local time "2026-11-25 23:40:01" (with ".123" when millis) into buf. */
char *jobq_cli_time(char *buf, size_t size, double t, bool millis);

/* Print a JSON value on stdout, indented (pretty) or compact, and a newline. */
void jobq_cli_print_json(json_t *v, bool pretty);

/* ---- subcommands (argv[0] is the subcommand name) ---- */

int jobq_cli_enqueue(jobq_cli *c, int argc, char **argv);
int jobq_cli_result(jobq_cli *c, int argc, char **argv);
int jobq_cli_cancel(jobq_cli *c, int argc, char **argv);
int jobq_cli_status(jobq_cli *c, int argc, char **argv);
int jobq_cli_metrics(jobq_cli *c, int argc, char **argv);
int jobq_cli_dead(jobq_cli *c, int argc, char **argv);

/* The queue snapshot both status and metrics print: a new JSON object
 * documented in tests/README-cli.md (jobq status --json), or NULL after
 * printing the error. */
json_t *jobq_cli_snapshot(jobq_cli *c);

/* The daemon registry: a new JSON array of each daemon's info with "id",
 * "alive" (its heartbeat key exists) and each busy worker's "running_for"
 * (seconds), or NULL after printing the error. */
json_t *jobq_cli_daemons(jobq_cli *c);

#endif
