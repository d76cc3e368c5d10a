/*
 * Redis Sentinel: discovery and watching. Discovery asks every sentinel of
 * a redis+sentinel:// URL (short timeouts) for the master it monitors and
 * its configuration epoch, takes the newest answer, and checks with ROLE
 * that the server found really is a master; it runs on every (re)connect.
 * A watch subscribes to every sentinel and reports the moment one of them
 * names a new master: the failover leader's +promoted-slave (as soon as the
 * promoted replica is master) or any sentinel's +switch-master.
 */
#ifndef JOBQ_SENTINEL_H
#define JOBQ_SENTINEL_H

#include <stddef.h>

#include "core/err.h"
#include "core/redis_url.h"
#include "protocol/node.h"

/* The master's address: every sentinel of url is asked, and the answer of
 * the one with the highest configuration epoch wins (the first one's on a
 * tie, and over sentinels that do not say their epoch). During a failover
 * only the leader names the promoted replica, and its epoch is the newest
 * from the moment it does. 0 with host (host_size bytes) and *port, or -1
 * with err naming every sentinel tried and why. sentinel_opts: how to
 * reach the sentinels (their password, TLS). */
int jobq_sentinel_find_master(const jobq_redis_url *url, const jobq_node_opts *sentinel_opts, char *host,
                              size_t host_size, int *port, jobq_err *err);

/* Is the connected node a master (ROLE)? 0 yes, -1 with err (a replica:
 * the sentinels' answer is stale, ask again shortly). */
int jobq_sentinel_check_role(jobq_node *n, jobq_err *err);

/* A sentinel's announcement that a master moved. */
typedef struct jobq_sentinel_event {
    const char *channel; /* "+promoted-slave" or "+switch-master" (static) */
    char sentinel[280];  /* the sentinel that said it ("host:port"), or "" */
    char host[256];      /* the new master */
    int port;
} jobq_sentinel_event;

/* Read one pub/sub message of a watch: 1 when it announces a new master
 * for master_name (ev filled, but for ev->sentinel), 0 when it does not
 * (another master, another channel, a malformed text). Formats (Redis
 * sentinel.c, sentinelEvent):
 *   +promoted-slave  "slave <ip>:<port> <ip> <port> @ <master> <old ip> <old port>"
 *   +switch-master   "<master> <old ip> <old port> <new ip> <new port>" */
int jobq_sentinel_parse_event(const char *channel, const char *text, const char *master_name,
                              jobq_sentinel_event *ev);

/* A subscription to every sentinel of a URL. */
typedef struct jobq_sentinel_watch jobq_sentinel_watch;

/* A watch over url's sentinels (url is borrowed and must outlive it), not
 * yet subscribed. NULL when memory ran out. */
jobq_sentinel_watch *jobq_sentinel_watch_new(const jobq_redis_url *url);
void jobq_sentinel_watch_free(jobq_sentinel_watch *w);

/* Subscribe every sentinel not subscribed whose retry time (now, monotonic
 * seconds) has come; one that fails is tried again later, with backoff up
 * to 5 s. Blocks at most the sentinels' connect and I/O timeouts. Returns
 * how many sentinels are subscribed. */
int jobq_sentinel_watch_subscribe(jobq_sentinel_watch *w, const jobq_node_opts *sentinel_opts, double now);

/* The next announcement of a new master for the URL's master waiting on
 * any subscribed sentinel, without blocking: 1 with ev, 0 when none is
 * waiting. Other messages are skipped; a broken subscription is closed
 * (and subscribed again by jobq_sentinel_watch_subscribe). */
int jobq_sentinel_watch_next(jobq_sentinel_watch *w, double now, jobq_sentinel_event *ev);

#endif
