/*
 * One blocking hiredis connection to one Redis server: connect (TLS when
 * asked, AUTH, SELECT), send and read, the scripts loaded on it, and the
 * replies of fire-and-forget publishes still to skip. A jobq_redis owns one
 * node (a server, the master a sentinel named) or one per cluster primary.
 * A node whose connection failed is closed at once; it connects again on
 * its next use.
 */
#ifndef JOBQ_NODE_H
#define JOBQ_NODE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "core/err.h"
#include "protocol/scripts.h"

/* How to open a connection (borrowed by the nodes; owned by the jobq_redis). */
typedef struct jobq_node_opts {
    double io_timeout;    /* seconds a reply may take (beyond a blocking command's own time) */
    double connect_timeout;
    const char *user;     /* ACL user, or NULL */
    const char *password; /* or NULL */
    int db;
    void *tls;            /* a TLS context (tls.h), or NULL for plain TCP */
    const char *tls_server_name; /* the name the certificate must carry, or NULL: the host */
} jobq_node_opts;

typedef struct jobq_node {
    redisContext *ctx;    /* NULL when closed */
    char *host;           /* owned; NULL for a unix socket */
    int port;
    char *socket_path;    /* owned; NULL for TCP */
    char addr[280];       /* "host:port" or the socket path, for messages and redirects */
    char sha[JOBQ_SCRIPT_COUNT][41]; /* scripts loaded on this connection ("" not yet) */
    int unread;           /* replies of fire-and-forget commands to skip */
    int pending;          /* replies of appended commands not read yet */
    int deferred;         /* of those, replies left for jobq_node_read_deferred: nothing is
                             sent before they are read */
    double timeout;       /* the socket timeout in force, seconds (0: unknown) */
} jobq_node;

/* A closed node for host:port or a unix socket path (copied). NULL when
 * memory ran out. */
jobq_node *jobq_node_new(const char *host, int port, const char *socket_path);
void jobq_node_free(jobq_node *n);

/* Connect if not connected (TLS handshake, AUTH, SELECT). 0, or -1 with err
 * (JOBQ_E_IO; a refused login too, since the connection cannot be used). */
int jobq_node_connect(jobq_node *n, const jobq_node_opts *o, jobq_err *err);
void jobq_node_close(jobq_node *n);

/* Queue a command (sent with the next read). 0, or -1 with err. */
int jobq_node_append(jobq_node *n, jobq_err *err, int argc, const char **argv, const size_t *lens);

/* Write what is queued now, without reading. 0, or -1 with err. */
int jobq_node_flush(jobq_node *n, jobq_err *err);

/* Read the next of the replies a pipeline left for later (n->deferred),
 * as jobq_node_read. */
redisReply *jobq_node_read_deferred(jobq_node *n, jobq_err *err, const char *what);

/* Read the next reply of an appended command (skipping those of
 * fire-and-forget commands first); error replies come back as replies.
 * NULL with err (JOBQ_E_IO) when the connection failed: it is closed. */
redisReply *jobq_node_read(jobq_node *n, jobq_err *err, const char *what);

/* Read one reply whatever it answers (pub/sub messages), waiting at most
 * timeout seconds: 0 with *reply, 1 when the time ran out (the node is
 * closed: a timed-out hiredis context is unusable), -1 with err. */
int jobq_node_read_within(jobq_node *n, double timeout, redisReply **reply, jobq_err *err);

/* Let the next replies take extra seconds more than io_timeout (a blocking
 * command); 0 restores it, unless the timeout in force is at most a second
 * longer (left as it is: the setsockopt calls would cost a blocking
 * worker four system calls per job). */
void jobq_node_extend_timeout(jobq_node *n, const jobq_node_opts *o, double extra);

#endif
