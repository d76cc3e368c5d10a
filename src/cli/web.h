/*
 * jobq web, shared by its files: web.c (the HTTP server: options, limits,
 * routing, the token), web_api.c (the JSON API and /metrics, the snapshot
 * cache and the rate history), web_events.c (one Redis subscription fanned
 * out to server-sent-event streams) and web_page.c (the embedded page).
 * libmicrohttpd runs a thread per connection; every use of the client's
 * Redis connection holds jobq_web.lock.
 */
#ifndef JOBQ_WEB_H
#define JOBQ_WEB_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli/cli.h"

#define JOBQ_WEB_BODY_MAX 4096   /* bytes of a request body (the API's JSON) */
#define JOBQ_WEB_HISTORY 720     /* rate samples kept (an hour at one per 5 s) */
#define JOBQ_WEB_SAMPLE_EVERY 5  /* seconds between rate samples, by default */

typedef struct jobq_web_events jobq_web_events;

/* One rate sample: the processed and failed counters of every queue, kept
 * as compact JSON text (a few bytes a queue, not a few hundred). */
typedef struct jobq_web_sample {
    double t;    /* Unix seconds */
    char *q;     /* owned: {"queue": [processed, failed], ...} */
} jobq_web_sample;

typedef struct jobq_web {
    jobq_cli *cli;          /* borrowed: its connection is used under lock only */
    pthread_mutex_t lock;   /* cli's connection, the snapshot cache, the history */
    const char *token;      /* borrowed: the write token, or NULL (read-only) */
    double sample_every;    /* seconds between rate samples (--sample-every) */
    const char *allow_hosts; /* borrowed: --allow-host names (comma-separated), or NULL */
    atomic_bool stop;       /* set on SIGINT/SIGTERM */
    json_t *snapshot;       /* owned: the last snapshot, or NULL */
    double snapshot_at;     /* when it was taken (Unix seconds) */
    jobq_web_sample history[JOBQ_WEB_HISTORY]; /* a ring, oldest at history_first */
    size_t history_first, history_n;
    jobq_web_events *events; /* owned */
    atomic_int streams;      /* event streams open */
} jobq_web;

/* A request as the handlers see it. */
typedef struct jobq_web_request {
    struct MHD_Connection *conn;
    const char *url;    /* the path, decoded */
    const char *method; /* "GET" (also for HEAD) or "POST" */
    char body[JOBQ_WEB_BODY_MAX + 1];
    size_t len;
} jobq_web_request;

/* ---- responses (web.c) ---- */

/* Queue a response of status with body (copied) of content type. */
enum MHD_Result jobq_web_send(struct MHD_Connection *conn, unsigned status, const char *type, const char *body,
                              size_t len);

/* Queue v (taken) as JSON with status. */
enum MHD_Result jobq_web_json(struct MHD_Connection *conn, unsigned status, json_t *v);

/* Queue {"error": message} with status. */
enum MHD_Result jobq_web_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Add the headers every response carries (no caching of API answers, no
 * sniffing, a strict Content-Security-Policy, no framing). */
void jobq_web_headers(struct MHD_Response *r, bool cache);

/* ---- the API (web_api.c) ---- */

/* Take the lock and make sure the Redis connection is up: 0 (locked), or
 * -1 with a 503 queued (not locked). */
int jobq_web_redis_begin(jobq_web *w, struct MHD_Connection *conn, enum MHD_Result *result);
void jobq_web_redis_end(jobq_web *w);

enum MHD_Result jobq_web_api_snapshot(jobq_web *w, jobq_web_request *rq);
enum MHD_Result jobq_web_api_history(jobq_web *w, jobq_web_request *rq);
enum MHD_Result jobq_web_api_dead(jobq_web *w, jobq_web_request *rq);
enum MHD_Result jobq_web_api_job(jobq_web *w, jobq_web_request *rq);
enum MHD_Result jobq_web_api_auth(jobq_web *w, jobq_web_request *rq); /* POST: is the token right? */
enum MHD_Result jobq_web_api_dead_retry(jobq_web *w, jobq_web_request *rq);
enum MHD_Result jobq_web_api_dead_purge(jobq_web *w, jobq_web_request *rq);
enum MHD_Result jobq_web_api_job_cancel(jobq_web *w, jobq_web_request *rq);
enum MHD_Result jobq_web_metrics(jobq_web *w, jobq_web_request *rq);
enum MHD_Result jobq_web_health(jobq_web *w, jobq_web_request *rq);

/* Take a snapshot every w->sample_every seconds into the history
 * until w->stop (the sampler thread's body; arg is w). */
void *jobq_web_sampler(void *arg);

/* Free the snapshot cache and the history. */
void jobq_web_api_fini(jobq_web *w);

/* ---- events (web_events.c) ---- */

/* Start the subscriber thread. 0, or -1 after printing. */
int jobq_web_events_start(jobq_web *w);

/* GET /api/events: a text/event-stream of the job events from now (or
 * after the Last-Event-ID the browser sends when it reconnects). */
enum MHD_Result jobq_web_api_events(jobq_web *w, jobq_web_request *rq);

/* Wake every stream so that it ends, and wait for the subscriber thread
 * (w->stop is set). */
void jobq_web_events_stop(jobq_web *w);

/* Free the ring (after the server stopped: no stream is left). */
void jobq_web_events_free(jobq_web *w);

/* ---- the page (web_page.c) ---- */

typedef struct jobq_web_asset {
    const char *path;  /* "/", "/app.js"... */
    const char *type;  /* its Content-Type */
    const unsigned char *data;
    size_t len;
} jobq_web_asset;

/* The embedded file served at path, or NULL. */
const jobq_web_asset *jobq_web_asset_find(const char *path);

/* The bytes of every embedded file together (the page weight). */
size_t jobq_web_page_weight(void);

#endif
