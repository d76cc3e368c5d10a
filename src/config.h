/*
 * jobqd configuration: one option table gives defaults, ranges, the INI
 * parser (inih) and the documented listing. A jobq_config is read-only once
 * loaded; SIGHUP builds a fresh one and swaps it only when valid.
 */
#ifndef JOBQ_CONFIG_H
#define JOBQ_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"

#define JOBQ_MAX_QUEUES 32
#define JOBQ_DEFAULT_CONFIG_PATH "/etc/jobq/jobq.conf"

typedef struct jobq_config {
    /* [daemon] */
    int workers;               /* worker processes, 1..1024 */
    char *queues[JOBQ_MAX_QUEUES]; /* owned; highest priority first */
    int nqueues;
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
} jobq_config;

/* Fill cfg with every default (allocates the string members). */
void jobq_config_defaults(jobq_config *cfg);

/* Defaults, then the INI file at path on top. A missing file is an error.
 * Returns 0, or -1 with err = "path:line: what is wrong" (cfg is then
 * released; no need to call fini). */
int jobq_config_load(jobq_config *cfg, const char *path, jobq_err *err);

/* Replace the queue list from "a,b,c" (spaces trimmed). -1 with err when a
 * name is empty, too long, has characters outside [A-Za-z0-9_.:-], or there
 * are more than JOBQ_MAX_QUEUES. On error cfg is unchanged. */
int jobq_config_set_queues(jobq_config *cfg, const char *csv, jobq_err *err);

/* Replace a string member (e.g. &cfg->redis_url) with a copy of value. */
void jobq_config_set_string(char **member, const char *value);

/* Write the effective configuration as INI (the redis password redacted). */
void jobq_config_print(const jobq_config *cfg, FILE *out);

/* Free owned members and zero cfg. */
void jobq_config_fini(jobq_config *cfg);

#endif
