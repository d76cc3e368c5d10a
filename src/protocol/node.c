/*
 * One connection to one Redis server (see node.h). hiredis contexts are
 * blocking; a context with err set is freed at once.
 */
#include "protocol/node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "protocol/tls.h"

static struct timeval to_timeval(double s) {
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

jobq_node *jobq_node_new(const char *host, int port, const char *socket_path) {
    jobq_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->port = port;
    if (host && !(n->host = strdup(host))) goto fail;
    if (socket_path && !(n->socket_path = strdup(socket_path))) goto fail;
    if (socket_path) snprintf(n->addr, sizeof n->addr, "%s", socket_path);
    else if (strchr(host, ':')) snprintf(n->addr, sizeof n->addr, "[%s]:%d", host, port);
    else snprintf(n->addr, sizeof n->addr, "%s:%d", host, port);
    return n;
fail:
    jobq_node_free(n);
    return NULL;
}

void jobq_node_free(jobq_node *n) {
    if (!n) return;
    jobq_node_close(n);
    free(n->host);
    free(n->socket_path);
    free(n);
}

void jobq_node_close(jobq_node *n) {
    if (n->ctx) redisFree(n->ctx);
    n->ctx = NULL;
    n->unread = 0;
    n->pending = 0;
    n->deferred = 0;
    memset(n->sha, 0, sizeof n->sha);
}

/* Drop a connection that failed, abortively: what the kernel still holds
 * to send (a result write whose reply timed out, say) is discarded, not
 * retransmitted once a cut link heals, by which time another daemon may
 * have run the job again and recorded its own outcome. */
static void abort_connection(jobq_node *n) {
    if (n->ctx && n->ctx->fd >= 0 && !n->socket_path) {
        struct linger now = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(n->ctx->fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    }
    jobq_node_close(n);
}

/* After a failed call: record why and drop the broken connection. */
static int fail_io(jobq_node *n, jobq_err *err, const char *what) {
    /* hiredis short of memory is this process's trouble, not the server's. */
    jobq_err_set(err, n->ctx && n->ctx->err == REDIS_ERR_OOM ? JOBQ_E_NOMEM : JOBQ_E_IO, "%s: %s (%s)", what,
                 n->ctx && n->ctx->errstr[0] ? n->ctx->errstr : "connection lost", n->addr);
    abort_connection(n);
    return -1;
}

/* Run one command on a fresh connection during the handshake. */
static int handshake(jobq_node *n, jobq_err *err, const char *what, int argc, const char **argv) {
    redisReply *reply = redisCommandArgv(n->ctx, argc, argv, NULL);
    if (!reply) return fail_io(n, err, what);
    int rc = 0;
    if (reply->type == REDIS_REPLY_ERROR) {
        jobq_err_set(err, JOBQ_E_IO, "%s refused by %s: %s", what, n->addr, reply->str);
        rc = -1;
    }
    freeReplyObject(reply);
    if (rc != 0) jobq_node_close(n);
    return rc;
}

int jobq_node_connect(jobq_node *n, const jobq_node_opts *o, jobq_err *err) {
    if (n->ctx) return 0;
    struct timeval ct = to_timeval(o->connect_timeout > 0 ? o->connect_timeout : o->io_timeout);
    redisContext *c = n->socket_path ? redisConnectUnixWithTimeout(n->socket_path, ct)
                                     : redisConnectWithTimeout(n->host, n->port, ct);
    if (!c) {
        jobq_err_set(err, JOBQ_E_NOMEM, "cannot allocate a Redis context");
        return -1;
    }
    if (c->err) {
        jobq_err_set(err, c->err == REDIS_ERR_OOM ? JOBQ_E_NOMEM : JOBQ_E_IO, "cannot connect to %s: %s", n->addr,
                     c->errstr);
        redisFree(c);
        return -1;
    }
    n->ctx = c;
    if (redisSetTimeout(c, to_timeval(o->io_timeout)) != REDIS_OK) return fail_io(n, err, "setting the socket timeout");
    n->timeout = o->io_timeout;
    if (!n->socket_path) redisEnableKeepAlive(c);
    if (o->tls && jobq_tls_connect(o->tls, c, o->tls_server_name ? o->tls_server_name : n->host, err) != 0) {
        jobq_node_close(n);
        return -1;
    }
    if (o->password) {
        const char *argv[3] = {"AUTH", o->user ? o->user : o->password, o->password};
        if (handshake(n, err, "AUTH", o->user ? 3 : 2, argv) != 0) return -1;
    }
    if (o->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", o->db);
        const char *argv[] = {"SELECT", db};
        if (handshake(n, err, "SELECT", 2, argv) != 0) return -1;
    }
    /* A server still loading its data answers LOADING to everything: it
     * counts as not there yet, so callers wait and log it once. */
    const char *ping[] = {"PING"};
    if (handshake(n, err, "PING", 1, ping) != 0) {
        /* With TLS 1.3 a server that wants a client certificate closes the
         * connection only after the handshake, at the first command. */
        if (o->tls && err->code == JOBQ_E_IO && !strstr(err->msg, "refused by"))
            jobq_err_set(err, JOBQ_E_IO, "%s closed the TLS connection after the handshake: does it want a client "
                                         "certificate, or refuse this one? ([redis] tls_cert_file, tls_key_file)",
                         n->addr);
        return -1;
    }
    return 0;
}

int jobq_node_append(jobq_node *n, jobq_err *err, int argc, const char **argv, const size_t *lens) {
    if (!n->ctx) return fail_io(n, err, argv[0]);
    if (n->deferred > 0) { /* its reply would be taken for one of those: start afresh */
        jobq_err_set(err, JOBQ_E_IO, "%s: sent before the replies left for later were read (%s)", argv[0], n->addr);
        abort_connection(n);
        return -1;
    }
    if (redisAppendCommandArgv(n->ctx, argc, argv, lens) != REDIS_OK) return fail_io(n, err, argv[0]);
    n->pending++;
    return 0;
}

int jobq_node_flush(jobq_node *n, jobq_err *err) {
    if (!n->ctx) return fail_io(n, err, "write");
    int done = 0;
    while (!done)
        if (redisBufferWrite(n->ctx, &done) != REDIS_OK) return fail_io(n, err, "write");
    return 0;
}

/* Read (and drop) the replies to fire-and-forget commands, which come
 * before any other. */
static int skip_unread(jobq_node *n, jobq_err *err) {
    for (; n->unread > 0; n->unread--) {
        void *reply = NULL;
        if (!n->ctx || redisGetReply(n->ctx, &reply) != REDIS_OK) return fail_io(n, err, "read");
        freeReplyObject(reply);
    }
    return 0;
}

redisReply *jobq_node_read(jobq_node *n, jobq_err *err, const char *what) {
    void *reply = NULL;
    if (!n->ctx) {
        fail_io(n, err, what);
        return NULL;
    }
    if (skip_unread(n, err) != 0) return NULL;
    if (redisGetReply(n->ctx, &reply) != REDIS_OK) {
        fail_io(n, err, what);
        return NULL;
    }
    if (n->pending > 0) n->pending--;
    return reply;
}

redisReply *jobq_node_read_deferred(jobq_node *n, jobq_err *err, const char *what) {
    if (n->deferred <= 0) {
        jobq_err_set(err, JOBQ_E_IO, "%s: no reply was left for later (%s)", what, n->addr);
        return NULL;
    }
    n->deferred--;
    return jobq_node_read(n, err, what);
}

int jobq_node_read_within(jobq_node *n, double timeout, redisReply **reply, jobq_err *err) {
    *reply = NULL;
    if (!n->ctx) return fail_io(n, err, "read");
    n->timeout = timeout > 0.001 ? timeout : 0.001;
    redisSetTimeout(n->ctx, to_timeval(n->timeout));
    void *r = NULL;
    if (redisGetReply(n->ctx, &r) != REDIS_OK) {
        bool timed_out = n->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        if (timed_out) {
            abort_connection(n);
            return 1;
        }
        return fail_io(n, err, "read");
    }
    *reply = r;
    return 0;
}

void jobq_node_extend_timeout(jobq_node *n, const jobq_node_opts *o, double extra) {
    if (!n->ctx) return;
    double want = o->io_timeout + extra;
    if (n->timeout == want || (extra == 0 && n->timeout > want && n->timeout <= want + 1.0)) return;
    if (redisSetTimeout(n->ctx, to_timeval(want)) == REDIS_OK) n->timeout = want;
}
