/*
 * Redis Sentinel discovery: ask each sentinel of a redis+sentinel:// URL in
 * turn (short timeouts) for the address of the master it monitors, and
 * check with ROLE that the server found really is a master. Called on every
 * (re)connect, so a failover is followed as soon as the old master fails or
 * answers READONLY.
 */
#ifndef JOBQ_SENTINEL_H
#define JOBQ_SENTINEL_H

#include <stddef.h>

#include "core/err.h"
#include "core/redis_url.h"
#include "protocol/node.h"

/* The master's address per the first sentinel that knows it: 0 with host
 * (host_size bytes) and *port, or -1 with err naming every sentinel tried
 * and why. sentinel_opts: how to reach the sentinels (their password, TLS). */
int jobq_sentinel_find_master(const jobq_redis_url *url, const jobq_node_opts *sentinel_opts, char *host,
                              size_t host_size, int *port, jobq_err *err);

/* Is the connected node a master (ROLE)? 0 yes, -1 with err (a replica:
 * the sentinels' answer is stale, ask again shortly). */
int jobq_sentinel_check_role(jobq_node *n, jobq_err *err);

/* Subscribe n (a sentinel, not yet connected) to +switch-master, trying
 * each sentinel of url in turn. 0, or -1 with err. */
int jobq_sentinel_watch(const jobq_redis_url *url, const jobq_node_opts *sentinel_opts, jobq_node **n,
                        jobq_err *err);

/* Read the +switch-master messages waiting on a watch, without blocking:
 * 1 when one names url's master (what it says in msg), 0 when none did,
 * -1 when the watch connection failed (it is closed: watch again). */
int jobq_sentinel_switched(jobq_node *n, const char *master_name, char *msg, size_t msg_size);

#endif
