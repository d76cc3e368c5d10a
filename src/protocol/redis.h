/*
 * A plain connection to one Redis server: connect (AUTH, SELECT), run a
 * command, publish, and read pub/sub messages. It loads no script: the
 * scripted queue operations (queue.h, jobs.h) load theirs on first use, so
 * the CLI and subscribers never load what they do not run. Owns its
 * redisContext; a context that failed is dropped and the owner reconnects.
 */
#ifndef JOBQ_REDIS_H
#define JOBQ_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

typedef struct jobq_redis jobq_redis;

/* A new, unconnected handle for url (copied). io_timeout: seconds any reply
 * may take beyond a command's own blocking time (<= 0: 5). NULL with err
 * when the URL is invalid or memory ran out. */
jobq_redis *jobq_redis_new(const char *url, double io_timeout, jobq_err *err);
void jobq_redis_free(jobq_redis *r);

/* Use this password (copied; NULL keeps the URL's) for AUTH instead of the
 * one in the URL, e.g. from a credential file. */
void jobq_redis_set_password(jobq_redis *r, const char *password);

/* Connect, AUTH and SELECT. 0, or -1 with err (the handle stays
 * unconnected; call again later). Closes any previous connection. */
int jobq_redis_connect(jobq_redis *r, jobq_err *err);
bool jobq_redis_connected(const jobq_redis *r);
void jobq_redis_disconnect(jobq_redis *r);

/* The URL without its password, for logs. Borrowed. */
const char *jobq_redis_url_redacted(const jobq_redis *r);

/* Run one command and convert its whole reply to JSON: strings and status
 * replies become strings, integers integers, nil null, arrays arrays. A
 * server error reply is -1 with err (JOBQ_ERR_IS_REPLY(code); the connection
 * stays usable); a broken connection -1 with JOBQ_E_IO. *out is a new
 * reference. lens may be NULL (then argv are C strings). */
int jobq_redis_command_json(jobq_redis *r, json_t **out, jobq_err *err, int argc, const char **argv,
                            const size_t *lens);

/* PUBLISH message on channel without waiting for the reply (read before
 * that of the next command). With send_now it is written to the socket at
 * once; otherwise it leaves with the next command. 0, or -1 with err on a
 * connection error. */
int jobq_redis_publish_nowait(jobq_redis *r, const char *channel, const char *message, bool send_now,
                              jobq_err *err);

/* SUBSCRIBE to channel and wait (up to io_timeout) for the confirmation.
 * Afterwards only jobq_redis_read_json may be used. 0, or -1 with err. */
int jobq_redis_subscribe(jobq_redis *r, const char *channel, jobq_err *err);

/* Read the next reply (a pub/sub message) as JSON, waiting at most timeout
 * seconds. 0 with *out set; 1 when the time ran out (the connection is then
 * closed: a timed-out hiredis context is unusable); -1 with err. */
int jobq_redis_read_json(jobq_redis *r, double timeout, json_t **out, jobq_err *err);

#endif
