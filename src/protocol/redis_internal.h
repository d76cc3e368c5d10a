/*
 * hiredis-level access to a jobq_redis for the protocol files only: calls
 * routed by key (to the server, the sentinel's master, or the cluster
 * primary that serves the key's slot, following MOVED and ASK), pipelines,
 * scripts, and reply shape checks. No redisReply leaves src/protocol/:
 * callers outside get JSON or plain C values.
 */
#ifndef JOBQ_REDIS_INTERNAL_H
#define JOBQ_REDIS_INTERNAL_H

#include <hiredis/hiredis.h>

#include "protocol/redis.h"
#include "protocol/scripts.h"

/* Run one command on the node serving key route (NULL: any node). The
 * reply, or NULL with err: a broken connection (JOBQ_E_IO; the caller
 * reconnects) or a server error reply (its class per
 * jobq_redis_error_code, the reply freed). what names it in messages. */
redisReply *jobq_redis_call(jobq_redis *r, jobq_err *err, const char *what, const char *route, int argc,
                            const char **argv, const size_t *lens);

/* One command of a pipeline. */
typedef struct jobq_cmd {
    const char *route;    /* a key of the command, or NULL: any node */
    int argc;
    const char **argv;
    const size_t *lens;   /* NULL: C strings */
    /* owned by a command made with jobq_redis_eval_cmd */
    const char **own_argv;
    size_t *own_lens;
    char nkeys[16];
} jobq_cmd;

/* Send n commands at once (one write per node) and read every reply, in
 * order, into replies: error replies are replies there, and redirections
 * are already followed. block: seconds the replies may take beyond the I/O
 * timeout (a blocking command). 0, or -1 with err (JOBQ_E_IO) with no reply
 * left to free. */
int jobq_redis_pipeline(jobq_redis *r, jobq_err *err, const char *what, const jobq_cmd *cmds, size_t n,
                        double block, redisReply **replies);

/* As jobq_redis_pipeline, but only the replies of the first nread
 * commands are read (no block); the rest, all sent to one node, are left
 * for jobq_redis_read_deferred, which must come before anything else is
 * sent there (or that connection is dropped). */
int jobq_redis_pipeline_defer(jobq_redis *r, jobq_err *err, const char *what, const jobq_cmd *cmds, size_t n,
                              size_t nread, redisReply **replies);

/* Read the n replies a pipeline left for later, allowing block seconds
 * beyond the I/O timeout (a blocking command). 0, or -1 with err
 * (JOBQ_E_IO: the connection failed or nothing was left; no reply to
 * free). */
int jobq_redis_read_deferred(jobq_redis *r, jobq_err *err, const char *what, double block, size_t n,
                             redisReply **replies);

/* Does every command go over one connection, run in the order sent, and
 * count as done without a WAIT (one server or a sentinel's master, no
 * [redis] wait_replicas)? Then a pipeline may carry writes that must land
 * before the next command of it runs. */
bool jobq_redis_in_order(const jobq_redis *r);

/* Make the writes just made on the nodes serving routes (n keys) durable:
 * WAIT for [redis] wait_replicas replicas on each of those nodes. 0 when
 * they acknowledged (or none are asked for), -1 with err: JOBQ_E_REPLICAS
 * ("only K of N replicas ...") or a broken connection. */
int jobq_redis_wait(jobq_redis *r, const char *const *routes, size_t n, jobq_err *err);

/* Run script s with EVALSHA on the node serving keys[0], loading it there
 * first when needed (and again after NOSCRIPT: a restarted server, SCRIPT
 * FLUSH). arglens: NULL for C strings. The reply, or NULL with err as for
 * jobq_redis_call. */
redisReply *jobq_redis_eval(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys,
                            const char *const *keys, int nargs, const char *const *args,
                            const size_t *arglens);

/* The EVALSHA of script s as a pipeline command, the script loaded on the
 * node serving keys[0]. 0, or -1 with err. Release with jobq_cmd_fini. */
int jobq_redis_eval_cmd(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys, const char *const *keys,
                        int nargs, const char *const *args, const size_t *arglens, jobq_cmd *cmd);
void jobq_cmd_fini(jobq_cmd *cmd);

/* The class of a server error message: JOBQ_E_OOM, _NOPERM, _READONLY or
 * _REPLY. */
int jobq_redis_error_code(const char *message);

/* Set err from an error reply (class and "what: message"). Returns -1. */
int jobq_redis_reply_error(jobq_err *err, const char *what, const redisReply *reply);

/* Reply shape checks (hiredis validates the protocol, not the meaning). */
static inline bool jobq_reply_is_array(const redisReply *r, size_t min_elements) {
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min_elements;
}
static inline bool jobq_reply_is_string(const redisReply *r) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}
bool jobq_reply_is_noscript(const redisReply *reply);
/* A string reply's bytes as a new NUL-terminated string (the caller frees;
 * "" for a reply of another type), or NULL when memory ran out. */
char *jobq_reply_copy(const redisReply *r);
/* An integer reply, or a string holding one; false otherwise. */
bool jobq_reply_integer(const redisReply *r, long long *out);

/* Convert a reply to JSON (a new reference; NULL only when memory ran out). */
json_t *jobq_reply_to_json(const redisReply *r);

#endif
