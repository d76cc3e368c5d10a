/*
 * jobqd configuration: two option tables (the fixed sections, and the keys of
 * [queue.NAME] sections) give defaults, ranges, the INI parser (inih) and the
 * documented listing. A jobq_config is read-only once loaded; SIGHUP builds a
 * fresh one and swaps it only when valid. Secrets are read separately
 * (jobq_config_load_secrets), by the daemon only, and are never printed.
 */
#ifndef JOBQ_CONFIG_H
#define JOBQ_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "core/err.h"

#define JOBQ_MAX_QUEUES 32
#define JOBQ_MAX_QUEUE_NAME 64
#define JOBQ_MAX_CRON 64          /* [cron.NAME] sections */
#define JOBQ_MAX_WEIGHT 1000      /* queues = a:WEIGHT,... */
#define JOBQ_DEFAULT_CONFIG_PATH "/etc/jobq/jobq.conf"
/* File read from $CREDENTIALS_DIRECTORY (systemd LoadCredential=). */
#define JOBQ_CREDENTIAL_REDIS_PASSWORD "redis-password"

/* A rate limit: at most n starts per period seconds; n = 0 is none. */
typedef struct jobq_rate {
    long n;
    double period;
} jobq_rate;

/* What applies to the jobs of one queue: the effective values, i.e. the
 * queue's [queue.NAME] section where it sets a key, else [jobs]. */
typedef struct jobq_queue_settings {
    char name[JOBQ_MAX_QUEUE_NAME + 1];
    double timeout;            /* seconds a job may run, unless the job says */
    int max_attempts;          /* unless the job says */
    int result_ttl;            /* seconds, unless the job says */
    long rlimit_as;            /* bytes of address space (RLIMIT_AS); 0 = no limit */
    long rlimit_cpu;           /* CPU seconds per job (RLIMIT_CPU); 0 = no limit */
    long rlimit_nofile;        /* open files (RLIMIT_NOFILE); 0 = no limit */
    int concurrency;           /* jobs running at once, across every daemon; 0 = no limit */
    jobq_rate rate_limit;      /* jobs started per period, across every daemon */
} jobq_queue_settings;

/* One [queue.NAME] section as written: values.name is NAME; only the members
 * whose key bit is in set were given (bit i = key i of the queue-key table,
 * in the order of jobq_queue_settings). Read it through
 * jobq_config_queue_settings, which applies the inheritance. */
typedef struct jobq_config_queue_section {
    jobq_queue_settings values;
    unsigned set;              /* keys given in the file */
} jobq_config_queue_section;

#define JOBQ_MAX_NAMED_SECTIONS 64 /* [exec.NAME] sections, and [plugin.NAME] ones */
#define JOBQ_MAX_SECTION_NAME 64   /* NAME: 1..64 of A-Z a-z 0-9 _ . - (a handler name) */

/* One [exec.NAME] section: handler NAME runs command for each job
 * (src/daemon/handlers/exec.h). */
typedef struct jobq_config_exec {
    char name[JOBQ_MAX_SECTION_NAME + 1];
    char *command;             /* owned; an absolute path; required */
    char *args;                /* owned; "" = none; words as jobq_config_split_words reads them */
    char *user;                /* owned; "" = the daemon's own user */
    char *env;                 /* owned; "" = none; NAME=VALUE words */
    char *workdir;             /* owned; "" = "/"; an absolute path otherwise */
    double timeout;            /* seconds the program may run; 0 = only the job's timeout */
    long max_output;           /* bytes the program may write to stdout */
    int line;                  /* of its header, for messages */
} jobq_config_exec;

/* One key of a [plugin.NAME] section (a later line with the same key
 * replaces the value). */
typedef struct jobq_config_plugin_value {
    char plugin[JOBQ_MAX_SECTION_NAME + 1]; /* NAME */
    char *key;                 /* owned */
    char *value;               /* owned */
} jobq_config_plugin_value;
/* One [cron.NAME] section: a periodic job synced into Redis at start. */
typedef struct jobq_config_cron {
    char name[JOBQ_MAX_QUEUE_NAME + 1];
    char *spec;                /* owned: crontab spec, alias or @every (required) */
    char *handler;             /* owned: the job's handler (required) */
    char *args;                /* owned: its args as JSON text, or NULL */
    char *queue;               /* owned: the queue it goes to, or NULL (default) */
    char *timezone;            /* owned: the spec's time zone, or NULL ([cron] timezone) */
    int line;                  /* of its header, for messages */
} jobq_config_cron;

typedef struct jobq_config {
    /* [daemon] */
    int workers;               /* worker processes, 1..1024 */
    char *queues[JOBQ_MAX_QUEUES]; /* owned; highest priority first */
    int nqueues;
    int weights[JOBQ_MAX_QUEUES]; /* of each queue ("a:6,b:3,c:1"); all 0: strict priority order */
    double shutdown_timeout;   /* seconds running jobs get on SIGTERM */
    int log_level;             /* JOBQ_LOG_* */
    bool test_handlers;        /* enables fail and crash handlers */
    double heartbeat_interval; /* seconds between supervisor heartbeats */
    double heartbeat_ttl;      /* seconds before a silent daemon counts as dead */
    double kill_grace;         /* seconds between SIGTERM and SIGKILL of an overrunning job */
    int max_jobs_per_worker;   /* replace a worker after this many jobs; 0 = never */
    long max_worker_rss;       /* bytes; replace a worker above this RSS; 0 = never */
    int batch_size;            /* max jobs a worker takes per round trip, 1..1000 */
    /* [redis] */
    char *redis_url;           /* owned */
    char *prefix;              /* owned; key prefix, default "jobq" */
    char *redis_password_file; /* owned; "" = none; an absolute path otherwise */
    char *redis_password;      /* owned; NULL unless read from a file by
                                * jobq_config_load_secrets; never printed */
    char *sentinel_password;   /* owned; "" = the sentinels use the Redis password; printed as *** */
    int wait_replicas;         /* WAIT for this many replicas after enqueues and commits; 0 = none */
    double wait_timeout;       /* seconds a WAIT may take */
    char *tls_ca_file;         /* owned; "" = the system's CAs */
    char *tls_cert_file;       /* owned; "" = no client certificate */
    char *tls_key_file;        /* owned */
    char *tls_server_name;     /* owned; "" = the URL's host */
    /* [jobs] defaults for jobs that don't say */
    double job_timeout;        /* seconds */
    int max_attempts;
    int result_ttl;            /* seconds */
    long max_payload;          /* bytes */
    double retry_backoff_base; /* seconds; delay = base * 2^(attempt-1), jittered */
    double retry_backoff_max;  /* seconds; cap of the delay */
    int poison_limit;          /* a job that killed its worker this often goes dead */
    /* [plugins] */
    char *plugins_dir;         /* owned */
    /* [wordcount] */
    long wordcount_max_body;   /* bytes; larger bodies fail the job */
    double wordcount_connect_timeout; /* seconds */
    bool wordcount_preload;    /* load libcurl in the supervisor, before forking */
    bool wordcount_deny_private; /* refuse loopback, private, link-local... addresses */
    /* [cron] */
    char *cron_timezone;       /* owned; "" = the host's local time zone */
    /* [cron.NAME] sections, in the order they first appear */
    jobq_config_cron crons[JOBQ_MAX_CRON];
    int ncrons;
    /* [queue.NAME] sections, in the order they first appear; any queue name,
     * served by this daemon or not */
    jobq_config_queue_section queue_sections[JOBQ_MAX_QUEUES];
    int nqueue_sections;
    /* [exec.NAME] sections, in the order they first appear */
    jobq_config_exec *execs;   /* owned array */
    int nexecs;
    /* the keys of [plugin.NAME] sections, in the order they first appear */
    jobq_config_plugin_value *plugin_values; /* owned array */
    int nplugin_values;
    struct {
        char name[JOBQ_MAX_SECTION_NAME + 1];
        int line;                                 /* of its first header */
    } plugin_sections[JOBQ_MAX_NAMED_SECTIONS];   /* the [plugin.NAME] sections seen */
    int nplugin_sections;
} jobq_config;

/* Fill cfg with every default (allocates the string members). */
void jobq_config_defaults(jobq_config *cfg);

/* Defaults, then the INI file at path on top. A missing file is an error.
 * Returns 0, or -1 with err = "path:line: what is wrong" (cfg is then
 * released; no need to call fini). */
int jobq_config_load(jobq_config *cfg, const char *path, jobq_err *err);

/* Replace the queue list from "a,b,c" (spaces trimmed), highest priority
 * first, or from "a:6,b:3,c:1": a ":N" suffix (N = 1..1000, digits only) is
 * the queue's weight for weighted random selection (cfg->weights). -1 with
 * err when a name is empty, too long, has characters outside
 * [A-Za-z0-9_.:-], is listed twice, some but not all queues have a weight,
 * or there are more than JOBQ_MAX_QUEUES. On error cfg is unchanged. */
int jobq_config_set_queues(jobq_config *cfg, const char *csv, jobq_err *err);

/* Replace a string member (e.g. &cfg->redis_url) with a copy of value. */
void jobq_config_set_string(char **member, const char *value);

/* Fill *out with the effective settings for jobs of queue (any name, with
 * or without a [queue.NAME] section; NULL counts as one without): each key
 * the section sets, the [jobs] value for timeout, max_attempts and
 * result_ttl otherwise, and 0 (no limit) for an rlimit, concurrency or
 * rate_limit it does not set.
 * out->name is queue, cut at JOBQ_MAX_QUEUE_NAME characters. */
void jobq_config_queue_settings(const jobq_config *cfg, const char *queue, jobq_queue_settings *out);

/* Seconds a Redis reply may take, at most cap: short enough that a write
 * that hangs (a cut link) is abandoned, its socket reset, well before this
 * daemon's lease (renewed every heartbeat_interval for heartbeat_ttl) can
 * lapse and another daemon reclaim its jobs. A commit writes results only
 * while the lease still runs twice this. */
double jobq_config_io_timeout(const jobq_config *cfg, double cap);

/* Read the Redis password into cfg->redis_password: from
 * $CREDENTIALS_DIRECTORY/redis-password when that variable is set and the
 * file exists, else from [redis] password_file when set; with neither,
 * cfg->redis_password becomes NULL and this returns 0. The password is the
 * file's first line without its trailing "\n" or "\r\n". Returns 0, or -1 with
 * err naming the file (cfg unchanged) when it cannot be opened or read, is
 * not a regular file, is readable by group or others ("password file 'X' is
 * readable by others (chmod 600)"), or its first line is empty, holds a NUL
 * byte or is longer than 4096 bytes. jobq_config_load does not call this, so
 * --check-config needs no secret: the daemon calls it after each load
 * (startup and SIGHUP). The password is never logged or printed. */
int jobq_config_load_secrets(jobq_config *cfg, jobq_err *err);

/* Zero and free the secret *secret (a password), and set it to NULL. */
void jobq_config_wipe_secret(char **secret);

/* Write the effective configuration as INI: the Redis password in the URL
 * shown as ***, password_file as a path only (never the password), and each
 * [queue.NAME] section with the keys it sets (what it inherits as comments).
 * What it writes loads back into the same configuration. */
void jobq_config_print(const jobq_config *cfg, FILE *out);

/* Free owned members (wiping the password first) and zero cfg. */
void jobq_config_fini(jobq_config *cfg);

#endif
