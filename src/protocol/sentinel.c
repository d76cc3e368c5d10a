/* Redis Sentinel discovery (see sentinel.h). */
#include "protocol/sentinel.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ask one sentinel. 0 with host/port, -1 with why in err. */
static int ask(const jobq_redis_host *s, const char *master, const jobq_node_opts *o, char *host, size_t host_size,
               int *port, jobq_err *err) {
    jobq_node *n = jobq_node_new(s->host, s->port, NULL);
    if (!n) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    int rc = -1;
    if (jobq_node_connect(n, o, err) != 0) goto out;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", master};
    if (jobq_node_append(n, err, 3, argv, NULL) != 0) goto out;
    redisReply *reply = jobq_node_read(n, err, "SENTINEL get-master-addr-by-name");
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
    for (int i = 0; i < url->nhosts; i++) {
        jobq_err e;
        if (ask(&url->hosts[i], url->master_name, sentinel_opts, host, host_size, port, &e) == 0) return 0;
        size_t n = strlen(why);
        snprintf(why + n, sizeof why - n, "%s%s", n ? "; " : "", e.msg);
    }
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

int jobq_sentinel_watch(const jobq_redis_url *url, const jobq_node_opts *sentinel_opts, jobq_node **out,
                        jobq_err *err) {
    *out = NULL;
    for (int i = 0; i < url->nhosts; i++) {
        jobq_node *n = jobq_node_new(url->hosts[i].host, url->hosts[i].port, NULL);
        if (!n) {
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            return -1;
        }
        const char *argv[] = {"SUBSCRIBE", "+switch-master"};
        redisReply *reply = NULL;
        if (jobq_node_connect(n, sentinel_opts, err) == 0 && jobq_node_append(n, err, 2, argv, NULL) == 0)
            reply = jobq_node_read(n, err, "SUBSCRIBE +switch-master");
        bool ok = reply && reply->type == REDIS_REPLY_ARRAY;
        if (reply) freeReplyObject(reply);
        if (ok) {
            *out = n;
            return 0;
        }
        jobq_node_free(n);
    }
    jobq_err_set(err, JOBQ_E_IO, "no sentinel accepted a +switch-master subscription");
    return -1;
}

int jobq_sentinel_switched(jobq_node *n, const char *master_name, char *msg, size_t msg_size) {
    int found = 0;
    for (;;) {
        if (!n->ctx) return -1;
        void *r = NULL;
        if (redisGetReplyFromReader(n->ctx, &r) != REDIS_OK) {
            jobq_node_close(n);
            return -1;
        }
        if (!r) {
            struct pollfd p = {.fd = n->ctx->fd, .events = POLLIN};
            if (poll(&p, 1, 0) <= 0) return found;
            if (redisBufferRead(n->ctx) != REDIS_OK) {
                jobq_node_close(n);
                return -1;
            }
            continue;
        }
        redisReply *reply = r;
        /* ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"] */
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 && reply->element[2]->type == REDIS_REPLY_STRING) {
            const char *text = reply->element[2]->str;
            size_t len = strlen(master_name);
            if (strncmp(text, master_name, len) == 0 && text[len] == ' ') {
                snprintf(msg, msg_size, "%s", text);
                found = 1;
            }
        }
        freeReplyObject(reply);
    }
}
