/* Redis Cluster slot maps and redirections (see cluster.h). */
#include "protocol/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool as_int(const redisReply *r, long long *out) {
    if (!r || r->type != REDIS_REPLY_INTEGER) return false;
    *out = r->integer;
    return true;
}

int jobq_cluster_read_slots(const redisReply *reply, const char *asked_host, int16_t *map,
                            jobq_cluster_node_fn node_fn, void *ctx, jobq_err *err) {
    for (int i = 0; i < JOBQ_CLUSTER_SLOTS; i++) map[i] = -1;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        jobq_err_set(err, JOBQ_E_REPLY, "CLUSTER SLOTS: not an array");
        return -1;
    }
    int served = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        /* [start, end, [host, port, id, ...], replicas...] */
        const redisReply *range = reply->element[i];
        long long start, end, port;
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 || !as_int(range->element[0], &start) ||
            !as_int(range->element[1], &end) || start < 0 || end >= JOBQ_CLUSTER_SLOTS || start > end) {
            jobq_err_set(err, JOBQ_E_REPLY, "CLUSTER SLOTS: malformed range %zu", i);
            return -1;
        }
        const redisReply *primary = range->element[2];
        if (primary->type != REDIS_REPLY_ARRAY || primary->elements < 2 ||
            primary->element[0]->type != REDIS_REPLY_STRING || !as_int(primary->element[1], &port) || port < 1 ||
            port > 65535) {
            jobq_err_set(err, JOBQ_E_REPLY, "CLUSTER SLOTS: malformed primary in range %zu", i);
            return -1;
        }
        const char *host = primary->element[0]->str;
        if (!host[0] || strcmp(host, "?") == 0) host = asked_host;
        int node = node_fn(ctx, host, (int)port);
        if (node < 0) {
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            return -1;
        }
        for (long long s = start; s <= end; s++) map[s] = (int16_t)node;
        served += (int)(end - start + 1);
    }
    return served;
}

bool jobq_cluster_redirect(const char *message, jobq_redirect *out) {
    memset(out, 0, sizeof *out);
    const char *rest;
    if (strncmp(message, "MOVED ", 6) == 0) rest = message + 6;
    else if (strncmp(message, "ASK ", 4) == 0) rest = message + 4, out->ask = true;
    else return false;
    char *end;
    long slot = strtol(rest, &end, 10);
    if (end == rest || *end != ' ' || slot < 0 || slot >= JOBQ_CLUSTER_SLOTS) return false;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof out->host) return false;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 1 || port > 65535) return false;
    const char *host = addr;
    size_t len = (size_t)(colon - addr);
    if (host[0] == '[' && len >= 2 && host[len - 1] == ']') host++, len -= 2; /* [IPv6]:port */
    memcpy(out->host, host, len);
    out->host[len] = '\0';
    out->slot = (int)slot;
    out->port = (int)port;
    return true;
}

bool jobq_cluster_transient(const char *message) {
    return strncmp(message, "TRYAGAIN", 8) == 0 || strncmp(message, "CLUSTERDOWN", 11) == 0;
}
