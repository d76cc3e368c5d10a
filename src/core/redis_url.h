/*
 * Redis addresses as URLs (shared/DESIGN.md, "Redis URL forms"):
 * redis://[[user]:password@]host[:port][/db], unix:///path/redis.sock[?db=N],
 * redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db],
 * redis+cluster://[[user]:password@]host:port[,host:port...], and the
 * rediss... forms of the three TCP ones (TLS). Pure parsing, no I/O.
 */
#ifndef JOBQ_REDIS_URL_H
#define JOBQ_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* What the URL names. */
enum jobq_redis_kind {
    JOBQ_REDIS_SERVER,   /* redis://, rediss://, unix:// */
    JOBQ_REDIS_SENTINEL, /* redis+sentinel://, rediss+sentinel:// */
    JOBQ_REDIS_CLUSTER,  /* redis+cluster://, rediss+cluster:// */
};

typedef struct jobq_redis_host {
    char *host; /* owned; IPv6 unbracketed */
    int port;
} jobq_redis_host;

#define JOBQ_REDIS_MAX_HOSTS 16

typedef struct jobq_redis_url {
    enum jobq_redis_kind kind;
    bool tls;          /* rediss...:// */
    char *host;        /* the first TCP host (owned), NULL for unix sockets */
    int port;          /* its port: default 6379, 26379 for sentinels */
    jobq_redis_host hosts[JOBQ_REDIS_MAX_HOSTS]; /* every host (sentinels, cluster seeds); hosts[0] is host */
    int nhosts;
    char *socket_path; /* unix socket path (owned), NULL for TCP */
    char *master_name; /* sentinel: the monitored master's name (owned) */
    char *user;        /* ACL user (owned) or NULL */
    char *password;    /* password (owned) or NULL */
    int db;            /* database number, default 0 (always 0 on a cluster) */
} jobq_redis_url;

/* Parse url into *out (which is overwritten; release with jobq_redis_url_fini).
 * Percent-escapes in user and password are decoded. Returns 0, or -1 with err
 * saying what is wrong (scheme, port range, db number, empty host...). */
int jobq_redis_url_parse(const char *url, jobq_redis_url *out, jobq_err *err);

/* Free what *url owns and zero it. Accepts a zeroed struct. */
void jobq_redis_url_fini(jobq_redis_url *url);

/* Overwrite, in place, the password of a URL given on a command line (the
 * "user:password@" part and a "password=" query value) with '*', so that
 * ps does not show it. Copy the URL first. */
void jobq_redis_url_scrub(char *url);

/* Write a printable form with the password replaced by "***" into buf. */
void jobq_redis_url_format_redacted(const jobq_redis_url *url, char *buf, size_t size);

#endif
