/* Redis Sentinel discovery and watching (see sentinel.h). */
#include "protocol/sentinel.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"

/* ---- discovery ---- */

/* The value of field name in a reply made of names and values (SENTINEL
 * MASTER, an element of SENTINEL REPLICAS), or NULL. */
static const char *field(const redisReply *reply, const char *name) {
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) return NULL;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return v->str;
    }
    return NULL;
}

/* Is flag one of the comma-separated flags? */
static bool has_flag(const char *flags, const char *flag) {
    size_t len = strlen(flag);
    for (const char *p = flags; p;) {
        if (strncmp(p, flag, len) == 0 && (p[len] == ',' || p[len] == '\0')) return true;
        p = strchr(p, ',');
        if (p) p++;
    }
    return false;
}

/* One sentinel's answer. */
struct answer {
    char host[256];
    int port;
    long long epoch;         /* -1: not said (no permission for SENTINEL MASTER) */
    char promoted_host[256]; /* the replica its failover is promoting; port 0: none */
    int promoted_port;
};

/* The replica flagged "promoted" among a SENTINEL REPLICAS reply, into a. */
static void find_promoted(const redisReply *replicas, struct answer *a) {
    if (replicas->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i < replicas->elements; i++) {
        const char *flags = field(replicas->element[i], "flags");
        const char *ip = field(replicas->element[i], "ip"), *port = field(replicas->element[i], "port");
        if (flags && ip && port && has_flag(flags, "promoted") && !has_flag(flags, "s_down") &&
            strlen(ip) < sizeof a->promoted_host && atoi(port) > 0) {
            snprintf(a->promoted_host, sizeof a->promoted_host, "%s", ip);
            a->promoted_port = atoi(port);
            return;
        }
    }
}

/* Ask one sentinel, pipelined: SENTINEL MASTER (epoch and failover flag),
 * SENTINEL REPLICAS (the one being promoted), then the master's address.
 * The epoch comes first, so a failover step between the replies can only
 * pair an old epoch with the new address, never the reverse. 0 with *a,
 * -1 with why in err. */
static int ask(const jobq_redis_host *s, const char *master, const jobq_node_opts *o, struct answer *a,
               jobq_err *err) {
    memset(a, 0, sizeof *a);
    a->epoch = -1;
    jobq_node *n = jobq_node_new(s->host, s->port, NULL);
    if (!n) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    int rc = -1;
    if (jobq_node_connect(n, o, err) != 0) goto out;
    const char *master_argv[] = {"SENTINEL", "MASTER", master};
    const char *replicas_argv[] = {"SENTINEL", "REPLICAS", master};
    const char *addr_argv[] = {"SENTINEL", "get-master-addr-by-name", master};
    if (jobq_node_append(n, err, 3, master_argv, NULL) != 0 || jobq_node_append(n, err, 3, replicas_argv, NULL) != 0 ||
        jobq_node_append(n, err, 3, addr_argv, NULL) != 0)
        goto out;
    redisReply *reply = jobq_node_read(n, err, "SENTINEL MASTER");
    if (!reply) goto out;
    const char *epoch = field(reply, "config-epoch"), *flags = field(reply, "flags");
    if (epoch) a->epoch = strtoll(epoch, NULL, 10);
    bool failover = flags && has_flag(flags, "failover_in_progress");
    freeReplyObject(reply);
    if (!(reply = jobq_node_read(n, err, "SENTINEL REPLICAS"))) goto out;
    if (failover) find_promoted(reply, a);
    freeReplyObject(reply);
    if (!(reply = jobq_node_read(n, err, "SENTINEL get-master-addr-by-name"))) goto out;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        snprintf(a->host, sizeof a->host, "%s", reply->element[0]->str);
        a->port = atoi(reply->element[1]->str);
        rc = a->port > 0 ? 0 : -1;
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

int jobq_sentinel_find_master(const jobq_redis_url *url, const jobq_node_opts *sentinel_opts,
                              jobq_sentinel_master *m, jobq_err *err) {
    char why[512] = "";
    bool found = false;
    long long best = -1;
    memset(m, 0, sizeof *m);
    for (int i = 0; i < url->nhosts; i++) {
        jobq_err e;
        struct answer a;
        if (ask(&url->hosts[i], url->master_name, sentinel_opts, &a, &e) != 0) {
            size_t n = strlen(why);
            snprintf(why + n, sizeof why - n, "%s%s", n ? "; " : "", e.msg);
            continue;
        }
        if (!found || a.epoch > best) {
            snprintf(m->host, sizeof m->host, "%s", a.host);
            m->port = a.port;
            best = a.epoch;
        }
        if (a.promoted_port && !m->promoted_port) {
            snprintf(m->promoted_host, sizeof m->promoted_host, "%s", a.promoted_host);
            m->promoted_port = a.promoted_port;
        }
        found = true;
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
    bool selected = strcmp(channel, "+selected-slave") == 0;
    if (selected || strcmp(channel, "+promoted-slave") == 0) {
        ev->channel = selected ? "+selected-slave" : "+promoted-slave";
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

/* How long a selected replica's ROLE is asked until it says master, and
 * how long after a failed connection to it. */
#define PROMOTION_SECONDS 10.0
#define PROMOTION_RETRY_SECONDS 0.5

struct jobq_sentinel_watch {
    const jobq_redis_url *url; /* borrowed */
    struct sub subs[JOBQ_REDIS_MAX_HOSTS];
    int nsubs;
    jobq_node *selected;       /* owned: the replica a leader is promoting, or NULL */
    char selected_by[280];     /* the sentinel that said so */
    double selected_until;     /* monotonic seconds: stop asking its ROLE */
    double selected_retry_at;  /* monotonic seconds: connect again, not before */
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
    jobq_node_free(w->selected);
    free(w);
}

static const char *const channels[] = {"+selected-slave", "+promoted-slave", "+switch-master"};
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

/* Follow the replica a leader selected (a +selected-slave event). */
static void follow_selected(jobq_sentinel_watch *w, const jobq_sentinel_event *ev, const char *by, double now) {
    jobq_node *n = w->selected;
    if (!n || n->port != ev->port || strcmp(n->host, ev->host) != 0) {
        if (!(n = jobq_node_new(ev->host, ev->port, NULL))) return; /* out of memory: wait for +promoted-slave */
        jobq_node_free(w->selected);
        w->selected = n;
    }
    snprintf(w->selected_by, sizeof w->selected_by, "%s", by);
    w->selected_until = now + PROMOTION_SECONDS;
    w->selected_retry_at = 0;
}

static void drop_selected(jobq_sentinel_watch *w) {
    jobq_node_free(w->selected);
    w->selected = NULL;
}

/* Does the selected replica say ROLE master yet? 1 with ev, else 0. */
static int selected_promoted(jobq_sentinel_watch *w, const jobq_node_opts *server_opts, double now,
                             jobq_sentinel_event *ev) {
    jobq_node *n = w->selected;
    if (!n || now < w->selected_retry_at) return 0;
    if (now >= w->selected_until) {
        drop_selected(w);
        return 0;
    }
    jobq_node_opts quick = *server_opts;
    quick.connect_timeout = 0.2;
    quick.io_timeout = 0.5;
    jobq_err err;
    if (jobq_node_connect(n, &quick, &err) != 0) {
        w->selected_retry_at = now + PROMOTION_RETRY_SECONDS;
        return 0;
    }
    /* Not yet (a replica still), or the connection broke (the promotion
     * kills the replica's clients): ask again at the next call. */
    if (jobq_sentinel_check_role(n, &err) != 0) return 0;
    ev->channel = "+selected-slave, then ROLE master";
    snprintf(ev->sentinel, sizeof ev->sentinel, "%s", w->selected_by);
    snprintf(ev->host, sizeof ev->host, "%s", n->host);
    ev->port = n->port;
    drop_selected(w);
    return 1;
}

int jobq_sentinel_watch_next(jobq_sentinel_watch *w, const jobq_node_opts *server_opts, double now,
                             jobq_sentinel_event *ev) {
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
            if (!event) continue;
            if (strcmp(ev->channel, "+selected-slave") == 0) {
                follow_selected(w, ev, s->node->addr, now);
                continue;
            }
            drop_selected(w); /* the sentinels say it themselves */
            snprintf(ev->sentinel, sizeof ev->sentinel, "%s", s->node->addr);
            return 1;
        }
    }
    return selected_promoted(w, server_opts, now, ev);
}
