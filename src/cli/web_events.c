/*
 * jobq web's live events: one subscriber thread reads the job events
 * (<prefix>:events, or every queue's sharded channel on a cluster, renewed
 * every 30 s to pick up new queues) into a ring of the last RING events,
 * numbered; each /api/events stream sends them as server-sent events from
 * the ring, waiting on a condition variable, with a comment line every
 * KEEPALIVE seconds so that proxies and the idle timeout keep it open. A
 * stream that falls behind the ring skips ahead. Events are re-encoded
 * compact (no newline can break the stream); larger than EVENT_MAX they
 * are dropped.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/web.h"

#define RING 512
#define EVENT_MAX 16384       /* bytes of one event's JSON */
#define KEEPALIVE 5           /* seconds between comment lines on a quiet stream */
#define STREAMS_MAX 16        /* event streams at once (each holds a connection) */
#define RESUBSCRIBE 30        /* seconds: a cluster's queue channels are renewed */

struct jobq_web_events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *ring[RING];         /* owned: event JSON, slot seq % RING */
    unsigned long long next;  /* the seq of the next event; the ring holds [next - RING, next) */
    pthread_t thread;
    bool running;
};

/* Add event text (taken) as the next event. */
static void push(jobq_web_events *e, char *text) {
    pthread_mutex_lock(&e->mu);
    size_t slot = (size_t)(e->next % RING);
    free(e->ring[slot]);
    e->ring[slot] = text;
    e->next++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void pause_for(jobq_web *w, double seconds) {
    for (double left = seconds; left > 0 && !atomic_load(&w->stop); left -= 0.1) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void *subscriber(void *arg) {
    jobq_web *w = arg;
    int failures = 0;
    while (!atomic_load(&w->stop)) {
        pthread_mutex_lock(&w->lock);
        jobq_redis *sub = atomic_load(&w->stop) ? NULL : jobq_cli_subscribe(w->cli, NULL);
        bool cluster = sub && jobq_redis_is_cluster(sub);
        pthread_mutex_unlock(&w->lock);
        if (!sub) {
            pause_for(w, failures++ < 5 ? 1 : 5);
            continue;
        }
        failures = 0;
        double since = jobq_now();
        while (!atomic_load(&w->stop) && !(cluster && jobq_now() - since > RESUBSCRIBE)) {
            json_t *m = NULL;
            jobq_err err;
            int rc = jobq_redis_poll_json(sub, 0.25, &m, &err);
            if (rc < 0) {
                jobq_cli_error("web: events: %s; subscribing again", err.msg);
                break;
            }
            if (rc > 0) continue;
            json_t *event = jobq_cli_message_event(m);
            char *text = event ? json_dumps(event, JSON_COMPACT) : NULL;
            if (text && strlen(text) <= EVENT_MAX) push(w->events, text);
            else free(text);
            json_decref(event);
            json_decref(m);
        }
        jobq_redis_free(sub);
    }
    return NULL;
}

int jobq_web_events_start(jobq_web *w) {
    jobq_web_events *e = calloc(1, sizeof *e);
    if (!e) return jobq_cli_error("out of memory"), -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    w->events = e;
    if (pthread_create(&e->thread, NULL, subscriber, w) != 0) return jobq_cli_error("web: cannot start a thread"), -1;
    e->running = true;
    return 0;
}

void jobq_web_events_stop(jobq_web *w) {
    jobq_web_events *e = w->events;
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->running) pthread_join(e->thread, NULL);
    e->running = false;
}

/* Called after the daemon stopped (no stream left). */
static void events_free(jobq_web_events *e) {
    for (size_t i = 0; i < RING; i++) free(e->ring[i]);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* ---- the streams ---- */

typedef struct stream {
    jobq_web *w;
    unsigned long long next; /* the seq to send next */
    bool hello;              /* the retry line was sent */
} stream;

/* Copy what fits of the events from st->next into buf (max bytes), or
 * wait for one (a keep-alive comment after KEEPALIVE seconds). */
static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    jobq_web *w = st->w;
    jobq_web_events *e = w->events;
    if (!st->hello) {
        st->hello = true;
        return snprintf(buf, max, "retry: 2000\n: jobq events\n\n");
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += KEEPALIVE;
    pthread_mutex_lock(&e->mu);
    int waited = 0;
    while (st->next >= e->next && !atomic_load(&w->stop) && waited == 0)
        waited = pthread_cond_timedwait(&e->cv, &e->mu, &until);
    if (atomic_load(&w->stop)) {
        pthread_mutex_unlock(&e->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = 0;
    if (st->next + RING < e->next) st->next = e->next - RING; /* fell behind: skip */
    while (st->next < e->next) {
        const char *text = e->ring[st->next % RING];
        size_t need = strlen(text) + 40;
        if (n + need > max) break;
        n += (size_t)snprintf(buf + n, max - n, "id: %llu\ndata: %s\n\n", st->next + 1, text);
        st->next++;
    }
    pthread_mutex_unlock(&e->mu);
    if (n == 0) n = (size_t)snprintf(buf, max, ": keep-alive\n\n");
    return (ssize_t)n;
}

static void free_stream(void *cls) {
    stream *st = cls;
    atomic_fetch_sub(&st->w->streams, 1);
    free(st);
}

enum MHD_Result jobq_web_api_events(jobq_web *w, jobq_web_request *rq) {
    if (atomic_fetch_add(&w->streams, 1) >= STREAMS_MAX) {
        atomic_fetch_sub(&w->streams, 1);
        return jobq_web_error(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "too many event streams (%d)", STREAMS_MAX);
    }
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        atomic_fetch_sub(&w->streams, 1);
        return MHD_NO;
    }
    st->w = w;
    jobq_web_events *e = w->events;
    pthread_mutex_lock(&e->mu);
    st->next = e->next;
    /* A browser reconnecting says what it saw last: go on from there. */
    const char *last = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (last) {
        unsigned long long seen = strtoull(last, NULL, 10);
        if (seen > 0 && seen <= e->next) st->next = seen;
    }
    pthread_mutex_unlock(&e->mu);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, EVENT_MAX + 64 > 32768 ? EVENT_MAX + 64 : 32768,
                                                               read_stream, st, free_stream);
    if (!r) {
        free_stream(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    jobq_web_headers(r, false);
    enum MHD_Result rc = MHD_queue_response(rq->conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

void jobq_web_events_free(jobq_web *w) {
    if (w->events) events_free(w->events);
    w->events = NULL;
}
