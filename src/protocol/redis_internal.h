/*
 * hiredis-level access to a jobq_redis for the protocol files only: calls
 * that return a redisReply, pipelining, reply shape checks, the per
 * connection script cache, and socket timeouts. No redisReply leaves
 * src/protocol/: callers outside get JSON or plain C values.
 */
#ifndef JOBQ_REDIS_INTERNAL_H
#define JOBQ_REDIS_INTERNAL_H

#include <hiredis/hiredis.h>

#include "protocol/redis.h"
#include "protocol/scripts.h"

/* Run one command. The reply, or NULL with err: a broken connection
 * (JOBQ_E_IO, the connection is dropped) or a server error reply (its class
 * per jobq_redis_error_code, the reply freed). what names it in messages. */
redisReply *jobq_redis_call(jobq_redis *r, jobq_err *err, const char *what, int argc, const char **argv,
                            const size_t *lens);

/* Queue a command for the next jobq_redis_flush (pipelining). 0, or -1 with
 * err when the connection is gone or memory ran out. */
int jobq_redis_append(jobq_redis *r, jobq_err *err, int argc, const char **argv, const size_t *lens);

/* Read the next pipelined reply (error replies included, as replies): the
 * reply, or NULL with err (JOBQ_E_IO; the connection is dropped). */
redisReply *jobq_redis_next_reply(jobq_redis *r, jobq_err *err, const char *what);

/* The class of a server error message: JOBQ_E_OOM, _NOPERM, _READONLY or
 * _REPLY. */
int jobq_redis_error_code(const char *message);

/* Set err from an error reply (class and "what: message"). Returns -1. */
int jobq_redis_reply_error(jobq_err *err, const char *what, const redisReply *reply);

/* Let the next reply take block seconds longer than io_timeout (BLMOVE);
 * block 0 restores the normal timeout. */
void jobq_redis_extend_timeout(jobq_redis *r, double block);

/* Run script s with EVALSHA, loading it on this connection first when it
 * has not been yet, and again after a NOSCRIPT reply (a restarted server,
 * SCRIPT FLUSH). keys[nkeys] then args[nargs] (arglens: NULL for C
 * strings). The reply, or NULL with err as jobq_redis_call. */
redisReply *jobq_redis_eval(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys,
                            const char *const *keys, int nargs, const char *const *args,
                            const size_t *arglens);

/* For pipelining: make sure s is loaded on this connection (0, or -1 with
 * err), then queue its EVALSHA like jobq_redis_append. A pipelined reply
 * may still be NOSCRIPT (jobq_reply_is_noscript): run it again with
 * jobq_redis_eval. */
int jobq_redis_script_load(jobq_redis *r, enum jobq_script s, jobq_err *err);
int jobq_redis_append_eval(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys,
                           const char *const *keys, int nargs, const char *const *args,
                           const size_t *arglens);
bool jobq_reply_is_noscript(const redisReply *reply);

/* Reply shape checks (hiredis validates the protocol, not the meaning). */
static inline bool jobq_reply_is_array(const redisReply *r, size_t min_elements) {
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min_elements;
}
static inline bool jobq_reply_is_string(const redisReply *r) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}
/* An integer reply, or a string holding one; false otherwise. */
bool jobq_reply_integer(const redisReply *r, long long *out);

/* Convert a reply to JSON (a new reference; never NULL unless memory ran
 * out). */
json_t *jobq_reply_to_json(const redisReply *r);

#endif
