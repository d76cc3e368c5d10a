/*
 * Cron entries in Redis: their definitions in the hash <prefix>:cron
 * (name -> JSON: spec, handler, args, queue, timezone, source), one key
 * that lives in one slot, and the firing of a tick, which queues the
 * tick's job and records the tick in <prefix>:{QUEUE}:cronticks in one
 * script on the target queue's slot, so each tick is queued once however
 * many daemons fire it.
 */
#ifndef JOBQ_CRONTAB_H
#define JOBQ_CRONTAB_H

#include <stdbool.h>
#include <stddef.h>

#include "core/cronspec.h"
#include "core/err.h"
#include "protocol/redis.h"

#define JOBQ_CRON_NAME_MAX 64

/* One entry, decoded. */
typedef struct jobq_crontab_entry {
    char name[JOBQ_CRON_NAME_MAX + 1];
    char spec[200];
    char handler[129];
    char queue[65];
    char timezone[201];       /* "" = the daemon's [cron] timezone */
    char source[16];          /* "config" or "cli" */
    char *args;               /* owned: the job's args as JSON text, or NULL */
    jobq_cronspec parsed;
} jobq_crontab_entry;

/* The definition JSON of an entry (malloc'd; NULL when out of memory);
 * args_json (JSON text), queue and timezone may be NULL. */
char *jobq_crontab_definition(const char *spec, const char *handler, const char *args_json, const char *queue,
                              const char *timezone, const char *source);

/* Decode definition json of entry name into *out (release with
 * jobq_crontab_entry_fini). 0, or -1 with why (a bad spec, handler,
 * queue...). */
int jobq_crontab_parse(const char *name, const char *json, jobq_crontab_entry *out, char *why, size_t why_size);
void jobq_crontab_entry_fini(jobq_crontab_entry *e);

/* Is name a valid entry name (1 to 64 of A-Z a-z 0-9 _ . : -)? */
bool jobq_crontab_valid_name(const char *name);

/* Add or replace entry name. 0, or -1 with err. */
int jobq_crontab_set(jobq_redis *r, const char *prefix, const char *name, const char *definition, jobq_err *err);

/* Remove entry name: 1 removed, 0 there was none, -1 with err. */
int jobq_crontab_remove(jobq_redis *r, const char *prefix, const char *name, jobq_err *err);

/* Every entry as stored: names and definitions (count *n; free with
 * jobq_crontab_free_list). 0, or -1 with err. */
int jobq_crontab_list(jobq_redis *r, const char *prefix, char ***names, char ***definitions, size_t *n,
                      jobq_err *err);
void jobq_crontab_free_list(char **names, char **definitions, size_t n);

/* The job id of tick `tick` of entry name: "cron:NAME:TICK". */
void jobq_crontab_job_id(char *buf, size_t size, const char *name, long long tick);

/* Queue the job of tick `tick` (Unix seconds) of entry e, unless some
 * daemon did already. 1 queued (its id in id_out), 0 fired already, -1
 * with err (a refused job: JOBQ_E_REPLY with the reason). */
int jobq_crontab_fire(jobq_redis *r, const char *prefix, const jobq_crontab_entry *e, long long tick, char *id_out,
                      size_t id_size, jobq_err *err);

#endif
