/*
 * Redis addresses as URLs: redis://[[user]:password@]host[:port][/db] and
 * unix:///path/redis.sock[?db=N]. Pure parsing, no I/O.
 */
#ifndef JOBQ_REDIS_URL_H
#define JOBQ_REDIS_URL_H

#include <stddef.h>

#include "core/err.h"

typedef struct jobq_redis_url {
    char *host;        /* TCP host (owned), NULL for unix sockets; IPv6 in [] is unbracketed */
    int port;          /* TCP port, default 6379 */
    char *socket_path; /* unix socket path (owned), NULL for TCP */
    char *user;        /* ACL user (owned) or NULL */
    char *password;    /* password (owned) or NULL */
    int db;            /* database number, default 0 */
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
