/*
 * Internals shared by the jobq client's files (main.c, util.c, jobs.c,
 * status.c, dead.c, migrate.c, flow.c, cron.c). Every key name comes from protocol/keys.h and
 * every write to a job from protocol/jobs.h; there is no Lua here, and only
 * migrate.c knows the 0.1.0 key names. Subcommands return the exit status:
 * 0 ok, 1 the job failed, 2 usage or connection error, 3 a wait timed out.
 */
#ifndef JOBQ_CLI_H
#define JOBQ_CLI_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

#include "protocol/histo.h"
#include "protocol/keys.h"
#include "protocol/redis.h"

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
    jobq_config *settings;   /* owned: the config file's [redis] settings (TLS, sentinel
                              * password, wait_replicas), or the defaults; NULL until resolved */
    jobq_redis *r;           /* owned; NULL until jobq_cli_connect */
    const char *cmd;         /* subcommand name for messages, e.g. "dead" */
} jobq_cli;

/* Print "jobq: <message>" as one line on stderr, its control characters
 * escaped (jobq_cli_escape). Returns JOBQ_CLI_USAGE. */
int jobq_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message the last jobq_cli_error of this thread printed ("" before
 * any), unescaped, without "jobq: ". Borrowed until the next one. */
const char *jobq_cli_last_error(void);

/* Resolve the URL and prefix (--redis, $JOBQ_REDIS_URL, the config file,
 * the default) and connect. 0, or -1 after printing why. */
int jobq_cli_connect(jobq_cli *c);

/* A new connection subscribed to the events of queue: <prefix>:events on
 * one server (every queue), or on a Redis Cluster the queue's sharded
 * channel, or those of every queue found now when queue is NULL
 * (confirmed). NULL after printing why. Free with jobq_redis_free. */
jobq_redis *jobq_cli_subscribe(jobq_cli *c, const char *queue);

/* The event (a new reference) carried by a pub/sub message as read with
 * jobq_redis_read_json, or NULL when it is not a JSON object message. */
json_t *jobq_cli_message_event(json_t *m);

/* The key of kind for queue under the prefix in use (keys.h), into buf of
 * JOBQ_KEY_MAX bytes. Returns buf. */
char *jobq_cli_key(const jobq_cli *c, char *buf, enum jobq_key_kind kind, const char *queue);

/* Print err, the failure of a call on c's connection: "lost the connection
 * to Redis at URL: ..." or "Redis error: ...". Returns -1. */
int jobq_cli_redis_error(const jobq_cli *c, const jobq_err *err);

/* Run a command on c's connection; lens may be NULL. 0 with *out (a new
 * reference), or -1 after printing the error. */
int jobq_cli_command(jobq_cli *c, json_t **out, int argc, const char **argv, const size_t *lens);

/* Run a command whose reply is an integer (LLEN, ZCARD...; nil counts as 0).
 * 0 with *out, or -1 after printing the error. */
int jobq_cli_integer(jobq_cli *c, long long *out, int argc, const char **argv);

/* The whole list or sorted set at key, fetched in pages, as a new JSON array
 * of strings (at most limit elements; limit <= 0: all). NULL on error. */
json_t *jobq_cli_range(jobq_cli *c, const char *key, bool zset, long limit);

/* The job id of a payload (its "id", else the id a worker assigned in
 * "_jobq"), or NULL. Borrowed from payload. */
const char *jobq_cli_payload_id(json_t *payload);

/* ---- the queues there are ---- */

/* One queue found in Redis: the kinds of its keys, and its in-flight lists. */
typedef struct jobq_cli_queue {
    char name[256];   /* as in its keys (not necessarily a valid queue name) */
    unsigned kinds;   /* bit (1u << enum jobq_key_kind) for each kind found */
    json_t *inflight; /* owned: array of its in-flight list keys */
} jobq_cli_queue;

typedef struct jobq_cli_queues {
    jobq_cli_queue *q; /* owned; sorted by name after jobq_cli_queues_scan */
    size_t n, cap;
} jobq_cli_queues;

/* Every queue with a key under the prefix: SCAN MATCH
 * jobq_key_scan_pattern, each key classified with jobq_key_parse. qs is
 * initialised here (release with jobq_cli_queues_fini, also on error).
 * 0, or -1 after printing the error. */
int jobq_cli_queues_scan(jobq_cli *c, jobq_cli_queues *qs);

/* The queue named name, added (with no keys) when missing; NULL when memory
 * ran out. The pointer is valid until the next add. */
jobq_cli_queue *jobq_cli_queues_add(jobq_cli_queues *qs, const char *name);

/* The queue named name, or NULL. */
jobq_cli_queue *jobq_cli_queues_find(const jobq_cli_queues *qs, const char *name);

/* Sort by name (after adding some). */
void jobq_cli_queues_sort(jobq_cli_queues *qs);
void jobq_cli_queues_fini(jobq_cli_queues *qs);

/* ---- command-line options ---- */

enum { JOBQ_CLI_NOARG, JOBQ_CLI_ARG, JOBQ_CLI_OPTARG /* an optional number */ };

typedef struct jobq_cli_opt jobq_cli_opt;

/* Store an option's value (NULL for a flag, or an _OPTARG given none) in
 * field, the option's member of the subcommand's options struct. 0, or -1
 * after printing why. */
typedef int (*jobq_cli_setter)(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field);

struct jobq_cli_opt {
    const char *name;    /* long name without "--" */
    char letter;         /* short option, 0 for none */
    int arg;             /* JOBQ_CLI_NOARG, _ARG or _OPTARG */
    int id;              /* > 0, returned by jobq_cli_next; 0 ends a table */
    jobq_cli_setter set; /* for jobq_cli_parse; NULL for jobq_cli_next alone */
    size_t offset;       /* of the field in the options struct */
    double min, max;     /* numbers: the accepted range */
    const char *what;    /* numbers: "a positive number of seconds" */
};

/* --wait[=S]: on, and the seconds (< 0: no limit). */
typedef struct jobq_cli_wait {
    bool on;
    double seconds;
} jobq_cli_wait;

int jobq_cli_set_flag(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field);    /* bool */
int jobq_cli_set_string(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field);  /* const char * */
int jobq_cli_set_number(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field);  /* double */
int jobq_cli_set_integer(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field); /* double, whole */
int jobq_cli_set_wait(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field);    /* jobq_cli_wait */

#define JOBQ_CLI_OPT_FLAG(name, letter, type, field) \
    {(name), (letter), JOBQ_CLI_NOARG, 1, jobq_cli_set_flag, offsetof(type, field), 0, 0, NULL}
#define JOBQ_CLI_OPT_STRING(name, letter, type, field) \
    {(name), (letter), JOBQ_CLI_ARG, 1, jobq_cli_set_string, offsetof(type, field), 0, 0, NULL}
#define JOBQ_CLI_OPT_NUMBER(name, letter, type, field, min, max, what) \
    {(name), (letter), JOBQ_CLI_ARG, 1, jobq_cli_set_number, offsetof(type, field), (min), (max), (what)}
#define JOBQ_CLI_OPT_INTEGER(name, letter, type, field, min, max, what) \
    {(name), (letter), JOBQ_CLI_ARG, 1, jobq_cli_set_integer, offsetof(type, field), (min), (max), (what)}
#define JOBQ_CLI_OPT_WAIT(type, field) \
    {"wait", 'w', JOBQ_CLI_OPTARG, 1, jobq_cli_set_wait, offsetof(type, field), 0, 1e9, \
     "a number of seconds >= 0"}
#define JOBQ_CLI_OPT_ID(name, letter, arg, id) {(name), (letter), (arg), (id), NULL, 0, 0, 0, NULL}
#define JOBQ_CLI_OPT_END {NULL, 0, 0, 0, NULL, 0, 0, 0, NULL}

typedef struct jobq_cli_parser {
    jobq_cli *cli;             /* global options land here */
    const jobq_cli_opt *opts;  /* ends with an entry whose id is 0 */
    const jobq_cli_opt *last;  /* the option jobq_cli_next returned */
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

/* What a subcommand accepts, for jobq_cli_parse. */
typedef struct jobq_cli_spec {
    const char *usage;        /* printed for -h/--help */
    const jobq_cli_opt *opts; /* each with a setter */
    void *dest;               /* the options struct the setters fill */
    const char **args;        /* receives the positional arguments... */
    int max_args;             /* ...at most this many */
    const char *hint;         /* added to "unexpected argument" errors, or NULL */
} jobq_cli_spec;

enum { JOBQ_CLI_PARSED = -1 };

/* Parse a subcommand's argv with spec: JOBQ_CLI_PARSED with the options and
 * arguments stored (*nargs of them), or the exit status to return at once
 * (help printed: 0; a usage error printed: 2). */
int jobq_cli_parse(jobq_cli *c, const jobq_cli_spec *spec, int argc, char **argv, int *nargs);

/* Parse value as a number in [min, max] for option name. 0, or -1 after
 * printing "jobq: CMD: --name expects what, got 'value'". */
int jobq_cli_number(const jobq_cli *c, const char *name, const char *value, double min, double max,
                    const char *what, double *out);

/* ---- output ---- */

/* Text from Redis made safe for a terminal: control characters (C0, DEL and
 * C1) and bytes that are not UTF-8 become "\xNN" (one per byte), so no
 * escape sequence from a job id, handler or error reaches the terminal.
 * Into buf (always terminated; cut when it does not fit). Returns buf. */
char *jobq_cli_escape(char *buf, size_t size, const char *s, size_t len);

/* The same, malloc'd (the caller frees), or NULL when memory ran out. */
char *jobq_cli_escape_dup(const char *s, size_t len);

/* fputs of s escaped. */
void jobq_cli_put(FILE *out, const char *s);

/* An aligned text table: the first row added is the header. Cells are
 * escaped as they are added. */
#define JOBQ_CLI_TABLE_MAX_COLS 16
typedef struct jobq_cli_table {
    int ncols;
    unsigned right; /* bit i set: column i is right-aligned */
    char **cells;   /* owned, rows * ncols */
    int rows, cap;
} jobq_cli_table;

void jobq_cli_table_init(jobq_cli_table *t, int ncols, unsigned right);
/* Add a row of ncols strings (copied, escaped; NULL prints as empty). */
void jobq_cli_table_add(jobq_cli_table *t, ...);
/* The same, the row's ncols strings given as an array. */
void jobq_cli_table_add_row(jobq_cli_table *t, const char *const *row);
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
int jobq_cli_migrate(jobq_cli *c, int argc, char **argv);
int jobq_cli_web(jobq_cli *c, int argc, char **argv);
int jobq_cli_batch(jobq_cli *c, int argc, char **argv);
int jobq_cli_pause(jobq_cli *c, int argc, char **argv);
int jobq_cli_resume(jobq_cli *c, int argc, char **argv);
int jobq_cli_cron(jobq_cli *c, int argc, char **argv);

/* The queue snapshot both status and metrics print: a new JSON object
 * documented in README.md (jobq status --json), or NULL after printing the
 * error. */
json_t *jobq_cli_snapshot(jobq_cli *c);

/* The daemon registry: a new JSON array of each daemon's info with "id",
 * "alive" (its heartbeat key exists) and each busy worker's "running_for"
 * (seconds), or NULL after printing the error. */
json_t *jobq_cli_daemons(jobq_cli *c);

/* ---- metrics (metrics.c) ---- */

/* The latency histograms of the queues of snapshot s: *hs (count *n; free
 * with jobq_histo_free) whose queue indexes point into *names (free()
 * the array; the names are borrowed from s). 0, or -1 after printing. */
int jobq_cli_histograms(jobq_cli *c, json_t *s, jobq_histo_series **hs, size_t *n, const char ***names);

/* Write the Prometheus text of snapshot s and its queues' histograms to
 * out (`jobq metrics`, jobq web's /metrics). 0, or -1 after printing. */
int jobq_cli_metrics_write(jobq_cli *c, json_t *s, FILE *out);

/* ---- dead letters (dead.c) and single jobs (jobs.c) for jobq web ---- */

/* The dead entries of queue (NULL: every queue's, merged newest first), at
 * most limit (<= 0: all): a new object {"total": entries in the lists,
 * "entries": [each entry's document with "queue" added]}, or NULL after
 * printing. */
json_t *jobq_cli_dead_entries(jobq_cli *c, const char *queue, long limit);

/* Put dead job id (of queue, or NULL: any queue) back on its queue, as
 * `jobq dead retry ID`. 1 done (its queue into queue_out), 0 there is no
 * such dead job, -2 it cannot be retried (why says so), -1 after printing. */
int jobq_cli_dead_retry_id(jobq_cli *c, const char *queue, const char *id, char *queue_out, size_t queue_size,
                           char *why, size_t why_size);

/* Delete the dead list of queue (NULL: of every queue). The count removed,
 * or -1 after printing. */
long long jobq_cli_dead_purge_lists(jobq_cli *c, const char *queue);

/* Where job id is and what is known of it: a new object {"id", "state":
 * "finished", "scheduled", "waiting", "running" or "unknown", "queue",
 * "daemon" (running, when known), "result" (finished), "payload" (the
 * decoded payload, when queued or running)}, or NULL after printing. */
json_t *jobq_cli_job_lookup(jobq_cli *c, const char *id);

/* Cancel job id as `jobq cancel ID` does: 1 done, with *how "removed" (it
 * was waiting or scheduled) or "requested" (running: its daemon stops it)
 * and its queue in queue_out; 0 nothing to cancel (finished, or no such
 * job: *how says which); -1 after printing. */
int jobq_cli_job_cancel(jobq_cli *c, const char *id, const char **how, char *queue_out, size_t queue_size);
/* The stored progress of running job id (<prefix>:progress:<id>) as a new
 * {"fraction", "message", "time"}, or NULL when there is none. */
json_t *jobq_cli_progress(jobq_cli *c, const char *id);

#endif
