/*
 * A connection to one logical Redis, whatever the URL names: one server
 * (redis://, rediss://, unix://), the master a set of sentinels names
 * (redis+sentinel://), or a Redis Cluster (redis+cluster://, one
 * connection per primary, commands routed by key slot). It runs commands,
 * publishes and reads pub/sub messages; it loads no script until a scripted
 * operation (queue.h, jobs.h) first runs one, so the CLI and subscribers
 * never load what they do not use. A failed connection is dropped; the
 * owner reconnects with backoff.
 */
#ifndef JOBQ_REDIS_H
#define JOBQ_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

typedef struct jobq_redis jobq_redis;

/* TLS and sentinel settings that do not fit in a URL (from [redis]). */
typedef struct jobq_redis_options {
    double io_timeout;             /* seconds a reply may take beyond a command's own blocking
                                    * time (<= 0: 5) */
    const char *password;          /* overrides the URL's (a credential file), or NULL */
    const char *sentinel_password; /* for the sentinels themselves, or NULL */
    const char *tls_ca_file;       /* rediss: CA bundle (NULL: the system's) */
    const char *tls_cert_file;     /* rediss: client certificate, or NULL */
    const char *tls_key_file;      /* rediss: its key, or NULL */
    const char *tls_server_name;   /* rediss: the name to expect (NULL: the host) */
    int wait_replicas;             /* writes that must be durable wait for this many replicas */
    double wait_timeout;           /* seconds such a WAIT may take */
} jobq_redis_options;

/* A new, unconnected handle for url with options (both copied; options may
 * be NULL). NULL with err when the URL is invalid, TLS cannot be set up,
 * or memory ran out. */
jobq_redis *jobq_redis_open(const char *url, const jobq_redis_options *options, jobq_err *err);

/* jobq_redis_open with the [redis] settings of a configuration (the URL,
 * its password from a credential, the sentinel password, TLS files,
 * wait_replicas). */
struct jobq_config;
jobq_redis *jobq_redis_open_config(const struct jobq_config *cfg, double io_timeout, jobq_err *err);

/* jobq_redis_open with only an I/O timeout. */
jobq_redis *jobq_redis_new(const char *url, double io_timeout, jobq_err *err);
void jobq_redis_free(jobq_redis *r);

/* Use this password (copied; NULL keeps the URL's) for AUTH instead of the
 * one in the URL, e.g. from a credential file. */
void jobq_redis_set_password(jobq_redis *r, const char *password);

/* Connect: AUTH and SELECT on a server; ask the sentinels for the master
 * first; read the cluster's slot map. 0, or -1 with err (the handle stays
 * unconnected; call again later). Closes any previous connection. */
int jobq_redis_connect(jobq_redis *r, jobq_err *err);
bool jobq_redis_connected(const jobq_redis *r);
void jobq_redis_disconnect(jobq_redis *r);

/* The URL without its password, for logs. Borrowed. */
const char *jobq_redis_url_redacted(const jobq_redis *r);

/* A Redis Cluster: queue events go on per-queue sharded channels
 * (SPUBLISH), and SCAN must visit every primary. */
bool jobq_redis_is_cluster(const jobq_redis *r);

/* A sentinel URL: has a master other than the one last found or announced
 * taken over? That is: the replica a failover leader selected now says
 * ROLE master, or the leader said +promoted-slave, or a sentinel said
 * +switch-master. Subscribes to every sentinel (again to one whose
 * subscription broke) and waits on nothing but connect timeouts and one
 * ROLE round trip. 1 with what happened in msg, 0 otherwise (also for
 * other URL kinds). */
int jobq_redis_master_switched(jobq_redis *r, char *msg, size_t msg_size);

/* Primaries to visit for SCAN-like commands (1 unless a cluster); valid
 * once connected. */
int jobq_redis_primaries(const jobq_redis *r);

/* Run one command and convert its whole reply to JSON: strings and status
 * replies become strings, integers integers, nil null, arrays arrays. It
 * goes to the node serving argv[1] taken as a key (argc > 1), else any
 * node. A server error reply is -1 with err (JOBQ_ERR_IS_REPLY(code); the
 * connection stays usable); a broken connection -1 with JOBQ_E_IO. *out is
 * a new reference. lens may be NULL (then argv are C strings). */
int jobq_redis_command_json(jobq_redis *r, json_t **out, jobq_err *err, int argc, const char **argv,
                            const size_t *lens);

/* The same on primary number i (0 .. jobq_redis_primaries - 1), e.g. SCAN. */
int jobq_redis_command_json_at(jobq_redis *r, int primary, json_t **out, jobq_err *err, int argc,
                               const char **argv, const size_t *lens);

/* Run n commands (argcs[i] arguments in argvs[i], C strings, each routed
 * by its argv[1] taken as a key) in one pipeline per node: out[i] is a new
 * reference to the reply of command i as JSON (as above), or {"error":
 * message} for an error reply. 0, or -1 with err (a broken connection:
 * JOBQ_E_IO) and nothing in out. */
int jobq_redis_commands_json(jobq_redis *r, size_t n, const int *argcs, const char *const *const *argvs,
                             json_t **out, jobq_err *err);

/* Publish message on channel without waiting for the reply (read before
 * that of the next command on that node): PUBLISH, or SPUBLISH on a
 * cluster. With send_now it is written at once; otherwise it leaves with
 * the next command. 0, or -1 with err on a connection error. */
int jobq_redis_publish_nowait(jobq_redis *r, const char *channel, const char *message, bool send_now,
                              jobq_err *err);

/* Subscribe to channel (SUBSCRIBE, or SSUBSCRIBE on the node serving it on
 * a cluster) and wait for the confirmation; may be called for several
 * channels. Afterwards only jobq_redis_read_json may be used. 0, or -1. */
int jobq_redis_subscribe(jobq_redis *r, const char *channel, jobq_err *err);

/* Read the next reply (a pub/sub message) as JSON, waiting at most timeout
 * seconds. 0 with *out set; 1 when the time ran out (the subscription is
 * then closed: subscribe again); -1 with err. */
int jobq_redis_read_json(jobq_redis *r, double timeout, json_t **out, jobq_err *err);

/* The same, but when the time runs out (1) the subscription stays open:
 * nothing was read, so the next call goes on where this one stopped. */
int jobq_redis_poll_json(jobq_redis *r, double timeout, json_t **out, jobq_err *err);

#endif
