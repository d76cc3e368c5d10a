/*
 * Redis Cluster routing knowledge, free of I/O so it can be unit-tested:
 * reading a CLUSTER SLOTS reply into a slot -> node map, and the MOVED /
 * ASK redirections a node answers. The router (redis.c) owns the nodes and
 * the map; key slots are keys.h's jobq_key_slot.
 */
#ifndef JOBQ_CLUSTER_H
#define JOBQ_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define JOBQ_CLUSTER_SLOTS 16384

/* Find or add the node host:port; its index, or -1 when it cannot be added. */
typedef int (*jobq_cluster_node_fn)(void *ctx, const char *host, int port);

/* Fill map[16384] (node index per slot, -1 for a slot no primary serves)
 * from a CLUSTER SLOTS reply, adding each range's primary with node_fn.
 * An empty host in the reply ("" or "?", a node that does not know its own
 * address) means the address the reply came from: asked_host. Returns the
 * number of slots served, or -1 with err when the reply is malformed. */
int jobq_cluster_read_slots(const redisReply *reply, const char *asked_host, int16_t *map,
                            jobq_cluster_node_fn node_fn, void *ctx, jobq_err *err);

/* A redirection: "MOVED <slot> <host>:<port>" (the slot lives there now) or
 * "ASK <slot> <host>:<port>" (this one command goes there, after ASKING). */
typedef struct jobq_redirect {
    bool ask;
    int slot;
    char host[256];
    int port;
} jobq_redirect;

/* Parse an error reply's message as a redirection; false when it is not
 * one (or is malformed). */
bool jobq_cluster_redirect(const char *message, jobq_redirect *out);

/* An error that means "not now, try the same again shortly": TRYAGAIN
 * (a multi-key command during resharding), CLUSTERDOWN (a failover in
 * progress). */
bool jobq_cluster_transient(const char *message);

#endif
