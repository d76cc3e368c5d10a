/* Redis Sentinel discovery and watching (see sentinel.h). */
#include "protocol/sentinel.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"

/* ---- discovery ---- */

/* The config-epoch field of a SENTINEL MASTER reply (a flat list of names
 * and values), or -1 when it has none (an error reply: no permission). */
static long long config_epoch(const redisReply *reply) {
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) return -1;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || strcmp(k->str, "config-epoch") != 0) continue;
        if (v->type == REDIS_REPLY_INTEGER) return v->integer;
        if (v->type == REDIS_REPLY_STRING) return strtoll(v->str, NULL, 10);
    }
    return -1;
}

/* Ask one sentinel for the master's epoch and address (pipelined, epoch
 * first: a failover step between the two can then only pair an old epoch
 * with the new address, never the reverse). 0 with host/port/epoch, -1
 * with why in err. */
static int ask(const jobq_redis_host *s, const char *master, const jobq_node_opts *o, char *host, size_t host_size,
               int *port, long long *epoch, jobq_err *err) {
    jobq_node *n = jobq_node_new(s->host, s->port, NULL);
    if (!n) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    int rc = -1;
    if (jobq_node_connect(n, o, err) != 0) goto out;
    const char *master_argv[] = {"SENTINEL", "MASTER", master};
    const char *addr_argv[] = {"SENTINEL", "get-master-addr-by-name", master};
    if (jobq_node_append(n, err, 3, master_argv, NULL) != 0 || jobq_node_append(n, err, 3, addr_argv, NULL) != 0)
        goto out;
    redisReply *reply = jobq_node_read(n, err, "SENTINEL MASTER");
    if (!reply) goto out;
    *epoch = config_epoch(reply);
    freeReplyObject(reply);
    reply = jobq_node_read(n, err, "SENTINEL get-master-addr-by-name");
    if (!reply) goto out;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        snprintf(host, host_size, "%s", reply->element[0]->str);
        *port = atoi(reply->element[1]->str);
        rc = *port > 0 ? 0 : -1;
        if (rc != 0) jobq_err_set(err, JOBQ_E_REPLY, "%s answered a bad port", n->addr);
    } else if (reply->type == REDIS_REPLY_NIL) {
        jobq_err_set(err, JOBQ_E_REPLY, "%s does not monitor a master named '%s'", n->addr, master);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        jobq_err_set(err, JOBQ_E_REPLY, "%s: %s", n->addr, reply->str);
    } else {
        jobq_err_set(err, JOBQ_E_REPLY, "%s: unexpected reply", n->addr);
    }
    freeReplyObject(reply);
out:
    jobq_node_free(n);
    return rc;
}

int jobq_sentinel_find_master(const jobq_redis_url *url, const jobq_node_opts *sentinel_opts, char *host,
                              size_t host_size, int *port, jobq_err *err) {
    char why[512] = "";
    bool found = false;
    long long best = -1;
    for (int i = 0; i < url->nhosts; i++) {
        jobq_err e;
        char h[256];
        int p;
        long long epoch = -1;
        if (ask(&url->hosts[i], url->master_name, sentinel_opts, h, sizeof h, &p, &epoch, &e) == 0) {
            if (!found || epoch > best) {
                snprintf(host, host_size, "%s", h);
                *port = p;
                best = epoch;
            }
            found = true;
            continue;
        }
        size_t n = strlen(why);
        snprintf(why + n, sizeof why - n, "%s%s", n ? "; " : "", e.msg);
    }
    if (found) return 0;
    jobq_err_set(err, JOBQ_E_IO, "no sentinel gave the master '%s': %s", url->master_name, why);
    return -1;
}

int jobq_sentinel_check_role(jobq_node *n, jobq_err *err) {
    const char *argv[] = {"ROLE"};
    if (jobq_node_append(n, err, 1, argv, NULL) != 0) return -1;
    redisReply *reply = jobq_node_read(n, err, "ROLE");
    if (!reply) return -1;
    int rc = 0;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "master") != 0) {
        jobq_err_set(err, JOBQ_E_READONLY, "%s is not a master (%s): the sentinels' answer was stale", n->addr,
                     reply->type == REDIS_REPLY_ARRAY && reply->elements && reply->element[0]->type == REDIS_REPLY_STRING
                         ? reply->element[0]->str
                         : "no ROLE");
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

/* ---- announcements ---- */

#define MAX_TOKENS 8

/* Split text at single spaces into at most MAX_TOKENS tokens (in buf).
 * The count, or -1 when there are more or text does not fit. */
static int split(const char *text, char *buf, size_t size, char **tok) {
    if (snprintf(buf, size, "%s", text) >= (int)size) return -1;
    int n = 0;
    for (char *p = buf; *p;) {
        if (n == MAX_TOKENS) return -1;
        tok[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) break;
        *sp = '\0';
        p = sp + 1;
    }
    return n;
}

/* A port number: digits only, 1..65535; 0 otherwise. */
static int port_of(const char *s) {
    if (!*s || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s)) return 0;
    int p = atoi(s);
    return p <= 65535 ? p : 0;
}

int jobq_sentinel_parse_event(const char *channel, const char *text, const char *master_name,
                              jobq_sentinel_event *ev) {
    char buf[600], *tok[MAX_TOKENS];
    int n = split(text, buf, sizeof buf, tok);
    const char *host = NULL, *port = NULL;
    if (strcmp(channel, "+promoted-slave") == 0) {
        ev->channel = "+promoted-slave";
        if (n == 8 && strcmp(tok[0], "slave") == 0 && strcmp(tok[4], "@") == 0 && strcmp(tok[5], master_name) == 0)
            host = tok[2], port = tok[3];
    } else if (strcmp(channel, "+switch-master") == 0) {
        ev->channel = "+switch-master";
        if (n == 5 && strcmp(tok[0], master_name) == 0) host = tok[3], port = tok[4];
    }
    if (!host || !*host || strlen(host) >= sizeof ev->host || !port_of(port)) return 0;
    snprintf(ev->host, sizeof ev->host, "%s", host);
    ev->port = port_of(port);
    ev->sentinel[0] = '\0';
    return 1;
}

/* ---- watching ---- */

#define RETRY_BASE_SECONDS 0.5
#define RETRY_CAP_SECONDS 5.0
/* Messages one jobq_sentinel_watch_next call reads from one sentinel at
 * most (the others are left for the next call). */
#define MAX_READS 256

struct sub {
    jobq_node *node;  /* owned; connected while subscribed */
    double retry_at;  /* monotonic seconds: subscribe again, not before */
    int failures;     /* in a row */
};

struct jobq_sentinel_watch {
    const jobq_redis_url *url; /* borrowed */
    struct sub subs[JOBQ_REDIS_MAX_HOSTS];
    int nsubs;
};

jobq_sentinel_watch *jobq_sentinel_watch_new(const jobq_redis_url *url) {
    jobq_sentinel_watch *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->url = url;
    for (int i = 0; i < url->nhosts && i < JOBQ_REDIS_MAX_HOSTS; i++) {
        if (!(w->subs[i].node = jobq_node_new(url->hosts[i].host, url->hosts[i].port, NULL))) {
            jobq_sentinel_watch_free(w);
            return NULL;
        }
        w->nsubs++;
    }
    return w;
}

void jobq_sentinel_watch_free(jobq_sentinel_watch *w) {
    if (!w) return;
    for (int i = 0; i < w->nsubs; i++) jobq_node_free(w->subs[i].node);
    free(w);
}

static const char *const channels[] = {"+promoted-slave", "+switch-master"};
#define NCHANNELS ((int)(sizeof channels / sizeof channels[0]))

/* Subscribe one sentinel: connect, SUBSCRIBE, read every confirmation. */
static int subscribe(jobq_node *n, const jobq_node_opts *o) {
    jobq_err err;
    const char *argv[1 + NCHANNELS] = {"SUBSCRIBE"};
    for (int c = 0; c < NCHANNELS; c++) argv[1 + c] = channels[c];
    if (jobq_node_connect(n, o, &err) != 0 || jobq_node_append(n, &err, 1 + NCHANNELS, argv, NULL) != 0) return -1;
    for (int c = 0; c < NCHANNELS; c++) {
        redisReply *reply = jobq_node_read(n, &err, "SUBSCRIBE");
        if (!reply) return -1;
        bool ok = reply->type == REDIS_REPLY_ARRAY;
        freeReplyObject(reply);
        if (!ok) {
            jobq_node_close(n);
            return -1;
        }
    }
    return 0;
}

/* A sentinel's subscription failed or could not be made: later again. */
static void sub_failed(struct sub *s, double now) {
    jobq_node_close(s->node);
    s->failures++;
    s->retry_at = now + jobq_backoff_delay(s->failures, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS);
}

int jobq_sentinel_watch_subscribe(jobq_sentinel_watch *w, const jobq_node_opts *sentinel_opts, double now) {
    int subscribed = 0;
    for (int i = 0; i < w->nsubs; i++) {
        struct sub *s = &w->subs[i];
        if (!s->node->ctx && now >= s->retry_at) {
            if (subscribe(s->node, sentinel_opts) == 0) s->failures = 0;
            else sub_failed(s, now);
        }
        if (s->node->ctx) subscribed++;
    }
    return subscribed;
}

/* The next message waiting on one subscription, without blocking: 1 with
 * *reply, 0 when none, -1 when the connection failed. */
static int next_reply(jobq_node *n, redisReply **reply) {
    void *r = NULL;
    if (redisGetReplyFromReader(n->ctx, &r) != REDIS_OK) return -1;
    if (!r) {
        struct pollfd p = {.fd = n->ctx->fd, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0) return 0;
        if (redisBufferRead(n->ctx) != REDIS_OK || redisGetReplyFromReader(n->ctx, &r) != REDIS_OK) return -1;
        if (!r) return 0;
    }
    *reply = r;
    return 1;
}

int jobq_sentinel_watch_next(jobq_sentinel_watch *w, double now, jobq_sentinel_event *ev) {
    for (int i = 0; i < w->nsubs; i++) {
        struct sub *s = &w->subs[i];
        for (int k = 0; k < MAX_READS && s->node->ctx; k++) {
            redisReply *reply = NULL;
            int got = next_reply(s->node, &reply);
            if (got < 0) sub_failed(s, now);
            if (got <= 0) break;
            /* ["message", channel, text] */
            bool event = reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
                         reply->element[0]->type == REDIS_REPLY_STRING &&
                         strcmp(reply->element[0]->str, "message") == 0 &&
                         reply->element[1]->type == REDIS_REPLY_STRING &&
                         reply->element[2]->type == REDIS_REPLY_STRING &&
                         jobq_sentinel_parse_event(reply->element[1]->str, reply->element[2]->str,
                                                   w->url->master_name, ev) == 1;
            freeReplyObject(reply);
            if (event) {
                snprintf(ev->sentinel, sizeof ev->sentinel, "%s", s->node->addr);
                return 1;
            }
        }
    }
    return 0;
}
