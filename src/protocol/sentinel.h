/*
 * Redis Sentinel: discovery and watching. Discovery asks every sentinel of
 * a redis+sentinel:// URL (short timeouts) for the master it monitors, its
 * configuration epoch and the replica a failover is promoting, and gives
 * the newest answer, to be checked with ROLE (the caller does, on every
 * (re)connect).
 * A watch subscribes to every sentinel and reports the moment a new master
 * takes over: the replica the failover leader selected as soon as its ROLE
 * says master, else the leader's +promoted-slave or any sentinel's
 * +switch-master.
 */
#ifndef JOBQ_SENTINEL_H
#define JOBQ_SENTINEL_H

#include <stddef.h>

#include "core/err.h"
#include "core/redis_url.h"
#include "protocol/node.h"

/* What the sentinels say of a master. */
typedef struct jobq_sentinel_master {
    char host[256];          /* the master, per the sentinel with the newest epoch */
    int port;
    char promoted_host[256]; /* a replica a failover leader is promoting, which it does */
    int promoted_port;       /* not name as the master yet; 0: none */
} jobq_sentinel_master;

/* Ask every sentinel of url (SENTINEL MASTER for its configuration epoch
 * and failover state, SENTINEL REPLICAS, get-master-addr-by-name): the
 * master is the answer of the one with the highest epoch (the first one's
 * on a tie, and over sentinels that do not say their epoch); during a
 * failover only the leader names the promoted replica, and its epoch is
 * the newest from the moment it does. Before that (the replica told to
 * become master, the leader not yet sure it did) the leader's replica
 * flagged "promoted" is given as promoted_host: check its ROLE. 0 with *m,
 * or -1 with err naming every sentinel tried and why. sentinel_opts: how
 * to reach the sentinels (their password, TLS). */
int jobq_sentinel_find_master(const jobq_redis_url *url, const jobq_node_opts *sentinel_opts,
                              jobq_sentinel_master *m, jobq_err *err);

/* Is the connected node a master (ROLE)? 0 yes, -1 with err (a replica:
 * the sentinels' answer is stale, ask again shortly). */
int jobq_sentinel_check_role(jobq_node *n, jobq_err *err);

/* A sentinel's announcement that a master moves. */
typedef struct jobq_sentinel_event {
    const char *channel; /* "+selected-slave", "+promoted-slave" or "+switch-master" (static) */
    char sentinel[280];  /* the sentinel that said it ("host:port"), or "" */
    char host[256];      /* the new master (for +selected-slave: the replica to be promoted) */
    int port;
} jobq_sentinel_event;

/* Read one pub/sub message of a watch: 1 when it is about master_name
 * (ev filled, but for ev->sentinel), 0 when it is not (another master,
 * another channel, a malformed text). Formats (Redis sentinel.c,
 * sentinelEvent):
 *   +selected-slave, +promoted-slave
 *                  "slave <ip>:<port> <ip> <port> @ <master> <old ip> <old port>"
 *   +switch-master "<master> <old ip> <old port> <new ip> <new port>" */
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

/* The next new master announced for the URL's master, without waiting:
 * 1 with ev, 0 when there is none (yet). The replica a failover leader
 * selected (+selected-slave) counts from the moment its ROLE says master
 * (asked at each call, reached with server_opts, for at most 10 s): its
 * promotion is then done, and the old master's writes are lost from then
 * on, while the leader only says +promoted-slave once its next INFO (up to
 * a second later) shows it. Other messages are skipped; a broken
 * subscription is closed (and subscribed again by
 * jobq_sentinel_watch_subscribe). */
int jobq_sentinel_watch_next(jobq_sentinel_watch *w, const jobq_node_opts *server_opts, double now,
                             jobq_sentinel_event *ev);

#endif
