/*
 * The router behind a jobq_redis (see redis.h and redis_internal.h): one
 * node for a server or a sentinel's master, one per primary for a cluster
 * with a slot map read from CLUSTER SLOTS. A command goes to the node of
 * its key's slot; MOVED refreshes the map and retries, ASK sends that one
 * command with ASKING, TRYAGAIN/CLUSTERDOWN retry shortly. A broken
 * connection is never retried here (the command may have run): the caller
 * reconnects, which rediscovers the map or the master.
 */
#include "protocol/redis_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/job.h"
#include "core/redis_url.h"
#include "protocol/cluster.h"
#include "protocol/keys.h"
#include "protocol/node.h"
#include "protocol/sentinel.h"
#include "protocol/tls.h"

#define MAX_NODES 256
#define MAX_REDIRECTS 5
/* Sentinel announcements read per jobq_redis_master_switched call at most. */
#define MAX_ANNOUNCEMENTS 64

struct jobq_redis {
    jobq_redis_url url;       /* owned */
    char url_redacted[512];
    char *password;           /* owned override, or NULL */
    char *sentinel_password;  /* owned, or NULL */
    char *tls_server_name;    /* owned, or NULL */
    jobq_node_opts opts;      /* to the data nodes; strings borrowed from the above */
    jobq_node_opts sentinel_opts;
    void *tls;                /* owned TLS context, or NULL */
    jobq_node *nodes[MAX_NODES]; /* owned; a server or master is nodes[0] */
    int nnodes;
    int primaries[MAX_NODES]; /* cluster: node indexes of the primaries, in map order */
    int nprimaries;
    int16_t map[JOBQ_CLUSTER_SLOTS]; /* cluster: node index per slot */
    bool connected;           /* a server connected, or a cluster map read */
    bool map_stale;           /* cluster: a node failed, read the map again */
    double refresh_at;        /* monotonic seconds: not before */
    int wait_replicas;        /* WAIT after durable writes; 0 = none */
    double wait_timeout;      /* seconds */
    bool subscribed[MAX_NODES];
    jobq_sentinel_watch *watch; /* sentinel: owned, made on first use, or NULL */
    char master_host[256];    /* sentinel: the master last found or announced ("" none yet) */
    int master_port;
};

/* ---- handles ---- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void wipe(char **s) {
    if (*s) {
        explicit_bzero(*s, strlen(*s));
        free(*s);
    }
    *s = NULL;
}

/* Point the node options at the current credentials. */
static void set_opts(jobq_redis *r) {
    r->opts.user = r->url.user;
    r->opts.password = r->password ? r->password : r->url.password;
    r->opts.db = r->url.db;
    r->opts.tls = r->tls;
    r->opts.tls_server_name = r->tls_server_name;
    r->sentinel_opts = r->opts;
    r->sentinel_opts.db = 0;
    r->sentinel_opts.user = r->sentinel_password ? NULL : r->url.user;
    r->sentinel_opts.password = r->sentinel_password ? r->sentinel_password : r->opts.password;
    r->sentinel_opts.tls_server_name = NULL;
    r->sentinel_opts.connect_timeout = 0.5;
    r->sentinel_opts.io_timeout = 1.0;
}

jobq_redis *jobq_redis_open(const char *url, const jobq_redis_options *options, jobq_err *err) {
    jobq_redis_options none = {0};
    const jobq_redis_options *o = options ? options : &none;
    jobq_redis *r = calloc(1, sizeof *r);
    if (!r) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return NULL;
    }
    if (jobq_redis_url_parse(url, &r->url, err) != 0) {
        free(r);
        return NULL;
    }
    jobq_redis_url_format_redacted(&r->url, r->url_redacted, sizeof r->url_redacted);
    r->opts.io_timeout = o->io_timeout > 0 ? o->io_timeout : 5;
    r->password = dup_or_null(o->password);
    r->sentinel_password = dup_or_null(o->sentinel_password);
    r->tls_server_name = dup_or_null(o->tls_server_name);
    r->wait_replicas = o->wait_replicas;
    r->wait_timeout = o->wait_timeout > 0 ? o->wait_timeout : 1;
    if (r->url.tls) {
        jobq_tls_settings ts = {o->tls_ca_file, o->tls_cert_file, o->tls_key_file};
        if (!(r->tls = jobq_tls_new(&ts, err))) goto fail;
    }
    if (r->url.kind == JOBQ_REDIS_SENTINEL || r->url.kind == JOBQ_REDIS_CLUSTER) r->nnodes = 0;
    else if (!(r->nodes[0] = jobq_node_new(r->url.host, r->url.port, r->url.socket_path))) goto nomem;
    else r->nnodes = 1;
    set_opts(r);
    return r;
nomem:
    jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
fail:
    jobq_redis_free(r);
    return NULL;
}

static const char *nonempty(const char *s) { return s && *s ? s : NULL; }

jobq_redis *jobq_redis_open_config(const struct jobq_config *cfg, double io_timeout, jobq_err *err) {
    jobq_redis_options o = {
        .io_timeout = io_timeout,
        .password = cfg->redis_password,
        .sentinel_password = nonempty(cfg->sentinel_password),
        .tls_ca_file = nonempty(cfg->tls_ca_file),
        .tls_cert_file = nonempty(cfg->tls_cert_file),
        .tls_key_file = nonempty(cfg->tls_key_file),
        .tls_server_name = nonempty(cfg->tls_server_name),
        .wait_replicas = cfg->wait_replicas,
        .wait_timeout = cfg->wait_timeout,
    };
    return jobq_redis_open(cfg->redis_url, &o, err);
}

jobq_redis *jobq_redis_new(const char *url, double io_timeout, jobq_err *err) {
    jobq_redis_options o = {.io_timeout = io_timeout};
    return jobq_redis_open(url, &o, err);
}

void jobq_redis_set_password(jobq_redis *r, const char *password) {
    if (!password) return;
    char *copy = strdup(password);
    if (!copy) return;
    wipe(&r->password);
    r->password = copy;
    set_opts(r);
}

void jobq_redis_free(jobq_redis *r) {
    if (!r) return;
    jobq_sentinel_watch_free(r->watch);
    for (int i = 0; i < r->nnodes; i++) jobq_node_free(r->nodes[i]);
    jobq_tls_free(r->tls);
    jobq_redis_url_fini(&r->url);
    wipe(&r->password);
    wipe(&r->sentinel_password);
    free(r->tls_server_name);
    free(r);
}

void jobq_redis_disconnect(jobq_redis *r) {
    for (int i = 0; i < r->nnodes; i++) jobq_node_close(r->nodes[i]);
    memset(r->subscribed, 0, sizeof r->subscribed);
    r->connected = false;
}

bool jobq_redis_connected(const jobq_redis *r) { return r->connected; }

const char *jobq_redis_url_redacted(const jobq_redis *r) { return r->url_redacted; }

bool jobq_redis_is_cluster(const jobq_redis *r) { return r->url.kind == JOBQ_REDIS_CLUSTER; }

int jobq_redis_primaries(const jobq_redis *r) { return jobq_redis_is_cluster(r) ? r->nprimaries : 1; }

/* ---- nodes and the slot map ---- */

static int load_script(jobq_node *n, enum jobq_script s, jobq_err *err);

/* The index of node host:port, added when new; -1 when full or out of memory. */
static int node_index(void *ctx, const char *host, int port) {
    jobq_redis *r = ctx;
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->host && r->nodes[i]->port == port && strcmp(r->nodes[i]->host, host) == 0) return i;
    if (r->nnodes == MAX_NODES || !(r->nodes[r->nnodes] = jobq_node_new(host, port, NULL))) return -1;
    return r->nnodes++;
}

/* Read the slot map from node i. 0, or -1 with err. */
static int read_map_from(jobq_redis *r, int i, jobq_err *err) {
    jobq_node *n = r->nodes[i];
    if (jobq_node_connect(n, &r->opts, err) != 0) return -1;
    const char *argv[] = {"CLUSTER", "SLOTS"};
    if (jobq_node_append(n, err, 2, argv, NULL) != 0) return -1;
    redisReply *reply = jobq_node_read(n, err, "CLUSTER SLOTS");
    if (!reply) return -1;
    int16_t map[JOBQ_CLUSTER_SLOTS];
    int served = reply->type == REDIS_REPLY_ERROR
                     ? (jobq_err_set(err, JOBQ_E_IO, "CLUSTER SLOTS on %s: %s", n->addr, reply->str), -1)
                     : jobq_cluster_read_slots(reply, n->host, map, node_index, r, err);
    freeReplyObject(reply);
    if (served < 0) return -1;
    if (served < JOBQ_CLUSTER_SLOTS) {
        jobq_err_set(err, JOBQ_E_IO, "the cluster serves %d of %d slots (per %s): not ready", served,
                     JOBQ_CLUSTER_SLOTS, n->addr);
        return -1;
    }
    memcpy(r->map, map, sizeof map);
    r->nprimaries = 0;
    for (int s = 0; s < JOBQ_CLUSTER_SLOTS; s++) {
        bool seen = false;
        for (int k = 0; k < r->nprimaries && !seen; k++) seen = r->primaries[k] == map[s];
        if (!seen) r->primaries[r->nprimaries++] = map[s];
    }
    return 0;
}

/* Read the slot map from any node we know, the seeds first. */
static int discover_cluster(jobq_redis *r, jobq_err *err) {
    for (int i = 0; i < r->url.nhosts; i++)
        if (node_index(r, r->url.hosts[i].host, r->url.hosts[i].port) < 0) {
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            return -1;
        }
    char why[600] = "";
    for (int i = 0; i < r->nnodes; i++) {
        jobq_err e;
        if (read_map_from(r, i, &e) == 0) return 0;
        size_t n = strlen(why);
        if (n < 400) snprintf(why + n, sizeof why - n, "%s%s", n ? "; " : "", e.msg);
    }
    jobq_err_set(err, JOBQ_E_IO, "cannot read the cluster's slot map from any node: %s", why);
    return -1;
}

/* Remember the sentinels' master, so that an announcement of it is not
 * taken for a change. */
static void remember_master(jobq_redis *r, const char *host, int port) {
    snprintf(r->master_host, sizeof r->master_host, "%s", host);
    r->master_port = port;
}

/* Point nodes[0] at host:port, connect, and check that it is a master. */
static int use_master(jobq_redis *r, const char *host, int port, jobq_err *err) {
    jobq_node *n = r->nodes[0];
    if (!n || !n->host || strcmp(n->host, host) != 0 || n->port != port) {
        jobq_node *fresh = jobq_node_new(host, port, NULL);
        if (!fresh) {
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
            return -1;
        }
        jobq_node_free(n);
        r->nodes[0] = fresh;
        r->nnodes = 1;
        n = fresh;
    }
    if (jobq_node_connect(n, &r->opts, err) != 0) return -1;
    if (jobq_sentinel_check_role(n, err) != 0) {
        jobq_node_close(n);
        return -1;
    }
    remember_master(r, host, port);
    return 0;
}

/* Ask the sentinels for the master and connect nodes[0] to it. A replica
 * that a failover is promoting and that already says it is a master comes
 * first: the old master's writes are lost with it from then on. */
static int connect_master(jobq_redis *r, jobq_err *err) {
    jobq_sentinel_master m;
    if (jobq_sentinel_find_master(&r->url, &r->sentinel_opts, &m, err) != 0) return -1;
    bool promoting = m.promoted_port && (m.promoted_port != m.port || strcmp(m.promoted_host, m.host) != 0);
    if (promoting && use_master(r, m.promoted_host, m.promoted_port, err) == 0) return 0;
    return use_master(r, m.host, m.port, err);
}

int jobq_redis_connect(jobq_redis *r, jobq_err *err) {
    jobq_redis_disconnect(r);
    int rc;
    switch (r->url.kind) {
    case JOBQ_REDIS_CLUSTER: rc = discover_cluster(r, err); break;
    case JOBQ_REDIS_SENTINEL: rc = connect_master(r, err); break;
    default:
        rc = jobq_node_connect(r->nodes[0], &r->opts, err);
        if (rc != 0 && strncmp(err->msg, "cannot connect to ", 18) == 0) {
            /* Name the server as the user wrote it (its password hidden). */
            const char *why = strstr(err->msg + 18, ": ");
            char reason[sizeof err->msg];
            snprintf(reason, sizeof reason, "%s", why ? why + 2 : err->msg);
            jobq_err_set(err, err->code, "cannot connect to %s: %s", r->url_redacted, reason);
        }
        break;
    }
    if (rc != 0 && err->code != JOBQ_E_NOMEM) err->code = JOBQ_E_IO;
    r->connected = rc == 0;
    return rc;
}

/* A node's connection failed (or could not be made). A server or master
 * is lost: the owner reconnects (and asks the sentinels again). On a
 * cluster only that node is: the others keep serving, and the slot map is
 * read again (a failover may have promoted a replica) before the next call
 * that needs it, at most every 0.2 s. */
static void node_failed(jobq_redis *r) {
    if (!jobq_redis_is_cluster(r)) {
        r->connected = false;
        return;
    }
    r->map_stale = true;
}

/* Read the slot map again from a node that answers, after a node failed. */
static void refresh_map(jobq_redis *r) {
    double now = jobq_monotonic();
    if (!r->map_stale || now < r->refresh_at) return;
    r->refresh_at = now + 0.2;
    for (int i = 0; i < r->nnodes; i++) {
        jobq_err ignored;
        if (read_map_from(r, i, &ignored) == 0) {
            r->map_stale = false;
            return;
        }
    }
}

/* The node for key route (NULL: any), connected. NULL with err. */
static jobq_node *node_for(jobq_redis *r, const char *route, jobq_err *err) {
    if (!r->connected) {
        jobq_err_set(err, JOBQ_E_IO, "not connected to %s", r->url_redacted);
        return NULL;
    }
    int i = 0;
    if (jobq_redis_is_cluster(r)) {
        refresh_map(r);
        i = route ? r->map[jobq_key_slot(route, strlen(route))] : r->primaries[0];
        if (i < 0) {
            jobq_err_set(err, JOBQ_E_IO, "no cluster node serves the slot of %s", route);
            return NULL;
        }
    }
    jobq_node *n = r->nodes[i];
    if (jobq_node_connect(n, &r->opts, err) != 0) { /* a cluster node met first, or again */
        node_failed(r);
        return NULL;
    }
    return n;
}

/* A redirect to host:port: the node, connected; NULL with err. */
static jobq_node *redirect_node(jobq_redis *r, const jobq_redirect *rd, jobq_err *err) {
    int i = node_index(r, rd->host, rd->port);
    if (i < 0) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return NULL;
    }
    if (!rd->ask) r->map[rd->slot] = (int16_t)i;
    return jobq_node_connect(r->nodes[i], &r->opts, err) == 0 ? r->nodes[i] : NULL;
}

static void pause_seconds(double s) {
    struct timespec ts = {0, (long)(s * 1e9)};
    nanosleep(&ts, NULL);
}

/* A redirected EVALSHA goes to a node that may not have its script yet:
 * load it there (the SHA names the same source on every node). */
static void script_for(jobq_redis *r, jobq_node *n, int argc, const char **argv, jobq_err *err) {
    if (argc < 2 || strcmp(argv[0], "EVALSHA") != 0) return;
    for (int s = 0; s < JOBQ_SCRIPT_COUNT; s++)
        for (int i = 0; i < r->nnodes; i++)
            if (strcmp(r->nodes[i]->sha[s], argv[1]) == 0) {
                load_script(n, (enum jobq_script)s, err);
                return;
            }
}

/* One command on n: its reply (error replies included), or NULL (IO). */
static redisReply *node_call(jobq_node *n, jobq_err *err, const char *what, int argc, const char **argv,
                             const size_t *lens) {
    if (jobq_node_append(n, err, argc, argv, lens) != 0) return NULL;
    return jobq_node_read(n, err, what);
}

/* Follow a redirect or a transient error of a cluster for one command;
 * returns its final reply (error replies included), or NULL (IO). */
static redisReply *follow(jobq_redis *r, redisReply *reply, jobq_err *err, const char *what, int argc,
                          const char **argv, const size_t *lens) {
    for (int hop = 0; hop < MAX_REDIRECTS && reply && reply->type == REDIS_REPLY_ERROR; hop++) {
        jobq_redirect rd;
        jobq_node *n;
        if (jobq_cluster_redirect(reply->str, &rd)) {
            freeReplyObject(reply);
            if (!(n = redirect_node(r, &rd, err))) return NULL;
            script_for(r, n, argc, argv, err);
            if (rd.ask) {
                const char *asking[] = {"ASKING"};
                if (jobq_node_append(n, err, 1, asking, NULL) != 0) return NULL;
                redisReply *ok = jobq_node_read(n, err, "ASKING");
                if (!ok) return NULL;
                freeReplyObject(ok);
            } else {
                jobq_err ignored; /* a map read fails only when the cluster is in flux: keep the hint */
                read_map_from(r, (int)(r->map[rd.slot]), &ignored);
            }
            reply = node_call(n, err, what, argc, argv, lens);
        } else if (jobq_cluster_transient(reply->str)) {
            freeReplyObject(reply);
            pause_seconds(0.05 * (hop + 1));
            jobq_node *again = node_for(r, argc > 1 && argv[0] && strcmp(argv[0], "EVALSHA") == 0 && argc > 3
                                                ? argv[3]
                                                : (argc > 1 ? argv[1] : NULL),
                                        err);
            if (!again) return NULL;
            reply = node_call(again, err, what, argc, argv, lens);
        } else {
            break;
        }
    }
    return reply;
}

/* One command routed by route: its reply, error replies included; NULL (IO). */
static redisReply *call_raw(jobq_redis *r, jobq_err *err, const char *what, const char *route, int argc,
                            const char **argv, const size_t *lens) {
    jobq_node *n = node_for(r, route, err);
    if (!n) return NULL;
    redisReply *reply = node_call(n, err, what, argc, argv, lens);
    if (reply && reply->type == REDIS_REPLY_ERROR && jobq_redis_is_cluster(r))
        reply = follow(r, reply, err, what, argc, argv, lens);
    if (!reply) node_failed(r);
    return reply;
}

/* ---- errors and replies ---- */

int jobq_redis_error_code(const char *message) {
    static const struct {
        const char *prefix;
        int code;
    } classes[] = {{"OOM ", JOBQ_E_OOM}, {"NOPERM ", JOBQ_E_NOPERM}, {"READONLY ", JOBQ_E_READONLY},
                   {"UNBLOCKED ", JOBQ_E_READONLY}, {"MASTERDOWN ", JOBQ_E_READONLY}};
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (message && strncmp(message, classes[i].prefix, strlen(classes[i].prefix)) == 0) return classes[i].code;
    /* An error raised inside a script keeps the class of the command that
     * failed: "ERR Error running script ...: @user_script:...: OOM ...". */
    if (message && strstr(message, ": OOM command not allowed")) return JOBQ_E_OOM;
    if (message && strstr(message, "NOPERM")) return JOBQ_E_NOPERM;
    if (message && strstr(message, "READONLY You can't write")) return JOBQ_E_READONLY;
    return JOBQ_E_REPLY;
}

int jobq_redis_reply_error(jobq_err *err, const char *what, const redisReply *reply) {
    jobq_err_set(err, jobq_redis_error_code(reply->str), "%s: %s", what, reply->str);
    return -1;
}

char *jobq_reply_copy(const redisReply *r) {
    size_t len = jobq_reply_is_string(r) ? r->len : 0;
    char *s = malloc(len + 1);
    if (!s) return NULL;
    if (len) memcpy(s, r->str, len);
    s[len] = '\0';
    return s;
}

bool jobq_reply_is_noscript(const redisReply *reply) {
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

bool jobq_reply_integer(const redisReply *r, long long *out) {
    if (!r) return false;
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return true;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20) return false;
    char buf[24], *end;
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

json_t *jobq_reply_to_json(const redisReply *r) {
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: {
        json_t *v = json_stringn(r->str, r->len);
        return v ? v : json_stringn_nocheck(r->str, r->len);
    }
    case REDIS_REPLY_INTEGER: return json_integer(r->integer);
    case REDIS_REPLY_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < r->elements; i++) json_array_append_new(a, jobq_reply_to_json(r->element[i]));
        return a;
    }
    default: return json_null();
    }
}

/* ---- calls ---- */

redisReply *jobq_redis_call(jobq_redis *r, jobq_err *err, const char *what, const char *route, int argc,
                            const char **argv, const size_t *lens) {
    redisReply *reply = call_raw(r, err, what, route, argc, argv, lens);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        jobq_redis_reply_error(err, what, reply);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

static void close_pending(jobq_redis *r) {
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->pending > 0) jobq_node_close(r->nodes[i]);
    node_failed(r);
}

/* Send n commands (one write per node) and read the replies of the first
 * nread; the others stay pending, left for jobq_redis_read_deferred. */
static int pipeline(jobq_redis *r, jobq_err *err, const char *what, const jobq_cmd *cmds, size_t n, size_t nread,
                    double block, redisReply **replies) {
    jobq_node **at = calloc(n ? n : 1, sizeof *at);
    if (!at) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) replies[i] = NULL; /* the error path frees them all */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!(at[i] = node_for(r, cmds[i].route, err)) ||
            jobq_node_append(at[i], err, cmds[i].argc, cmds[i].argv, cmds[i].lens) != 0)
            rc = -1;
    }
    if (block > 0)
        for (size_t i = 0; rc == 0 && i < nread; i++) jobq_node_extend_timeout(at[i], &r->opts, block);
    for (size_t i = 0; rc == 0 && i < nread; i++)
        if (!(replies[i] = jobq_node_read(at[i], err, what))) rc = -1;
    if (block > 0)
        for (size_t i = 0; i < nread; i++) jobq_node_extend_timeout(at[i] ? at[i] : r->nodes[0], &r->opts, 0);
    /* Redirected commands, now that nothing is pending on any node (replies
     * are only left for later on one server: no redirects there). */
    for (size_t i = 0; rc == 0 && i < nread; i++) {
        if (!jobq_redis_is_cluster(r) || replies[i]->type != REDIS_REPLY_ERROR) continue;
        replies[i] = follow(r, replies[i], err, what, cmds[i].argc, cmds[i].argv, cmds[i].lens);
        if (!replies[i]) rc = -1;
    }
    if (rc == 0 && nread < n && jobq_node_flush(at[nread], err) != 0) rc = -1; /* sent, if nothing was read */
    for (size_t i = nread; rc == 0 && i < n; i++) at[i]->deferred++;
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            if (replies[i]) freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
        close_pending(r);
    }
    free(at);
    return rc;
}

int jobq_redis_pipeline(jobq_redis *r, jobq_err *err, const char *what, const jobq_cmd *cmds, size_t n,
                        double block, redisReply **replies) {
    return pipeline(r, err, what, cmds, n, n, block, replies);
}

int jobq_redis_pipeline_defer(jobq_redis *r, jobq_err *err, const char *what, const jobq_cmd *cmds, size_t n,
                              size_t nread, redisReply **replies) {
    return pipeline(r, err, what, cmds, n, nread, 0, replies);
}

int jobq_redis_read_deferred(jobq_redis *r, jobq_err *err, const char *what, double block, size_t n,
                             redisReply **replies) {
    jobq_node *node = NULL;
    for (int i = 0; i < r->nnodes && !node; i++)
        if (r->nodes[i]->deferred > 0) node = r->nodes[i];
    for (size_t i = 0; i < n; i++) replies[i] = NULL;
    if (!node || (size_t)node->deferred < n) {
        jobq_err_set(err, JOBQ_E_IO, "%s: no reply was left for later", what);
        if (node) jobq_node_close(node);
        return -1;
    }
    jobq_node_extend_timeout(node, &r->opts, block);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!(replies[i] = jobq_node_read_deferred(node, err, what))) rc = -1;
    jobq_node_extend_timeout(node, &r->opts, 0);
    if (rc != 0)
        for (size_t i = 0; i < n; i++) {
            if (replies[i]) freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
    return rc;
}

bool jobq_redis_in_order(const jobq_redis *r) { return !jobq_redis_is_cluster(r) && r->wait_replicas <= 0; }

int jobq_redis_wait(jobq_redis *r, const char *const *routes, size_t n, jobq_err *err) {
    if (r->wait_replicas <= 0 || n == 0) return 0;
    char want[16], ms[24];
    snprintf(want, sizeof want, "%d", r->wait_replicas);
    snprintf(ms, sizeof ms, "%lld", (long long)(r->wait_timeout * 1000 + 0.5));
    /* One WAIT per node written to. */
    jobq_node *done[MAX_NODES];
    int ndone = 0;
    for (size_t i = 0; i < n; i++) {
        jobq_node *node = node_for(r, routes[i], err);
        if (!node) return -1;
        bool seen = false;
        for (int k = 0; k < ndone && !seen; k++) seen = done[k] == node;
        if (seen) continue;
        done[ndone++] = node;
        const char *argv[] = {"WAIT", want, ms};
        jobq_node_extend_timeout(node, &r->opts, r->wait_timeout);
        redisReply *reply = node_call(node, err, "WAIT", 3, argv, NULL);
        jobq_node_extend_timeout(node, &r->opts, 0);
        if (!reply) {
            node_failed(r);
            return -1;
        }
        long long acked = -1;
        int rc = 0;
        if (reply->type == REDIS_REPLY_ERROR) rc = jobq_redis_reply_error(err, "WAIT", reply);
        else if (!jobq_reply_integer(reply, &acked) || acked < r->wait_replicas)
            rc = -1, jobq_err_set(err, JOBQ_E_REPLICAS, "only %lld of %d replica(s) of %s acknowledged within %g s",
                                  acked < 0 ? 0 : acked, r->wait_replicas, node->addr, r->wait_timeout);
        freeReplyObject(reply);
        if (rc != 0) return -1;
    }
    return 0;
}

/* ---- scripts ---- */

/* Load script s on n unless it is there. 0, or -1 with err. */
static int load_script(jobq_node *n, enum jobq_script s, jobq_err *err) {
    if (n->sha[s][0]) return 0;
    char what[64];
    snprintf(what, sizeof what, "SCRIPT LOAD %s", jobq_script_name(s));
    const char *argv[] = {"SCRIPT", "LOAD", jobq_script_source(s)};
    redisReply *reply = node_call(n, err, what, 3, argv, NULL);
    if (!reply) return -1;
    int rc = 0;
    if (reply->type == REDIS_REPLY_STRING && reply->len == 40) memcpy(n->sha[s], reply->str, 41);
    else if (reply->type == REDIS_REPLY_ERROR) rc = jobq_redis_reply_error(err, what, reply);
    else rc = -1, jobq_err_set(err, JOBQ_E_REPLY, "%s: unexpected reply", what);
    freeReplyObject(reply);
    return rc;
}

void jobq_cmd_fini(jobq_cmd *cmd) {
    free(cmd->own_argv);
    free(cmd->own_lens);
    memset(cmd, 0, sizeof *cmd);
}

int jobq_redis_eval_cmd(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys, const char *const *keys,
                        int nargs, const char *const *args, const size_t *arglens, jobq_cmd *cmd) {
    memset(cmd, 0, sizeof *cmd);
    cmd->route = nkeys > 0 ? keys[0] : NULL;
    jobq_node *n = node_for(r, cmd->route, err);
    if (!n || load_script(n, s, err) != 0) return -1;
    int argc = 3 + nkeys + nargs;
    cmd->own_argv = malloc((size_t)argc * sizeof *cmd->own_argv);
    cmd->own_lens = malloc((size_t)argc * sizeof *cmd->own_lens);
    if (!cmd->own_argv || !cmd->own_lens) {
        jobq_cmd_fini(cmd);
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    snprintf(cmd->nkeys, sizeof cmd->nkeys, "%d", nkeys);
    cmd->own_argv[0] = "EVALSHA";
    cmd->own_argv[1] = n->sha[s];
    cmd->own_argv[2] = cmd->nkeys;
    for (int i = 0; i < nkeys; i++) cmd->own_argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++) cmd->own_argv[3 + nkeys + i] = args[i];
    for (int i = 0; i < argc; i++)
        cmd->own_lens[i] = i >= 3 + nkeys && arglens ? arglens[i - 3 - nkeys] : strlen(cmd->own_argv[i]);
    cmd->argc = argc;
    cmd->argv = cmd->own_argv;
    cmd->lens = cmd->own_lens;
    return 0;
}

/* Forget script s on every node (a NOSCRIPT: the server lost it). */
static void forget_script(jobq_redis *r, enum jobq_script s) {
    for (int i = 0; i < r->nnodes; i++) r->nodes[i]->sha[s][0] = '\0';
}

redisReply *jobq_redis_eval(jobq_redis *r, jobq_err *err, enum jobq_script s, int nkeys,
                            const char *const *keys, int nargs, const char *const *args,
                            const size_t *arglens) {
    const char *what = jobq_script_name(s);
    for (int attempt = 0; attempt < 3; attempt++) {
        jobq_cmd cmd;
        if (jobq_redis_eval_cmd(r, err, s, nkeys, keys, nargs, args, arglens, &cmd) != 0) return NULL;
        redisReply *reply = call_raw(r, err, what, cmd.route, cmd.argc, cmd.argv, cmd.lens);
        jobq_cmd_fini(&cmd);
        if (!reply) return NULL;
        if (jobq_reply_is_noscript(reply)) { /* a restarted server, SCRIPT FLUSH, a redirect */
            freeReplyObject(reply);
            forget_script(r, s);
            continue;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            jobq_redis_reply_error(err, what, reply);
            freeReplyObject(reply);
            return NULL;
        }
        return reply;
    }
    jobq_err_set(err, JOBQ_E_REPLY, "%s: the server keeps losing the script", what);
    return NULL;
}

/* ---- the public generic calls ---- */

static int to_json(redisReply *reply, json_t **out, jobq_err *err) {
    if (!reply) return -1;
    *out = jobq_reply_to_json(reply);
    freeReplyObject(reply);
    if (!*out) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    return 0;
}

int jobq_redis_command_json(jobq_redis *r, json_t **out, jobq_err *err, int argc, const char **argv,
                            const size_t *lens) {
    *out = NULL;
    return to_json(jobq_redis_call(r, err, argv[0], argc > 1 ? argv[1] : NULL, argc, argv, lens), out, err);
}

int jobq_redis_command_json_at(jobq_redis *r, int primary, json_t **out, jobq_err *err, int argc,
                               const char **argv, const size_t *lens) {
    *out = NULL;
    if (!jobq_redis_is_cluster(r)) return jobq_redis_command_json(r, out, err, argc, argv, lens);
    if (!r->connected || primary < 0 || primary >= r->nprimaries) {
        jobq_err_set(err, JOBQ_E_IO, "no cluster primary number %d", primary);
        return -1;
    }
    jobq_node *n = r->nodes[r->primaries[primary]];
    if (jobq_node_connect(n, &r->opts, err) != 0) return -1;
    redisReply *reply = node_call(n, err, argv[0], argc, argv, lens);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        jobq_redis_reply_error(err, argv[0], reply);
        freeReplyObject(reply);
        return -1;
    }
    return to_json(reply, out, err);
}

int jobq_redis_publish_nowait(jobq_redis *r, const char *channel, const char *message, bool send_now,
                              jobq_err *err) {
    jobq_node *n = node_for(r, channel, err);
    if (!n) return -1;
    const char *argv[] = {jobq_redis_is_cluster(r) ? "SPUBLISH" : "PUBLISH", channel, message};
    if (jobq_node_append(n, err, 3, argv, NULL) != 0) return -1;
    n->pending--;
    n->unread++;
    return send_now ? jobq_node_flush(n, err) : 0;
}

int jobq_redis_command_nowait(jobq_redis *r, int argc, const char **argv, bool send_now, jobq_err *err) {
    jobq_node *n = node_for(r, argc > 1 ? argv[1] : NULL, err);
    if (!n) return -1;
    if (jobq_node_append(n, err, argc, argv, NULL) != 0) return -1;
    n->pending--;
    n->unread++;
    return send_now ? jobq_node_flush(n, err) : 0;
}

int jobq_redis_master_switched(jobq_redis *r, char *msg, size_t msg_size) {
    if (r->url.kind != JOBQ_REDIS_SENTINEL) return 0;
    if (!r->watch && !(r->watch = jobq_sentinel_watch_new(&r->url))) return 0; /* out of memory: next time */
    double now = jobq_monotonic();
    jobq_sentinel_watch_subscribe(r->watch, &r->sentinel_opts, now);
    int changed = 0;
    jobq_sentinel_event ev;
    for (int k = 0; k < MAX_ANNOUNCEMENTS && jobq_sentinel_watch_next(r->watch, &r->opts, now, &ev) == 1; k++) {
        /* The promoted replica's ROLE, the leader's +promoted-slave, then
         * each sentinel's +switch-master name the same new master: only the
         * first is a change. */
        if (ev.port == r->master_port && strcmp(ev.host, r->master_host) == 0) continue;
        remember_master(r, ev.host, ev.port);
        snprintf(msg, msg_size, "%s from sentinel %s: the master is now %s:%d", ev.channel, ev.sentinel, ev.host,
                 ev.port);
        changed = 1;
    }
    return changed;
}

/* ---- pub/sub ---- */

int jobq_redis_subscribe(jobq_redis *r, const char *channel, jobq_err *err) {
    jobq_node *n = node_for(r, channel, err);
    if (!n) return -1;
    const char *argv[] = {jobq_redis_is_cluster(r) ? "SSUBSCRIBE" : "SUBSCRIBE", channel};
    redisReply *reply = node_call(n, err, argv[0], 2, argv, NULL);
    if (!reply) return -1;
    int rc = 0;
    if (reply->type == REDIS_REPLY_ERROR) rc = jobq_redis_reply_error(err, argv[0], reply);
    else if (!jobq_reply_is_array(reply, 1)) rc = -1, jobq_err_set(err, JOBQ_E_REPLY, "%s: unexpected reply", argv[0]);
    freeReplyObject(reply);
    for (int i = 0; rc == 0 && i < r->nnodes; i++)
        if (r->nodes[i] == n) r->subscribed[i] = true;
    return rc;
}

/* The subscribed node with a reply ready (buffered, or readable within
 * timeout); NULL with *timed_out or err. */
static jobq_node *ready_node(jobq_redis *r, double timeout, bool *timed_out, redisReply **buffered, jobq_err *err) {
    struct pollfd fds[MAX_NODES];
    int idx[MAX_NODES], nfds = 0;
    *timed_out = false;
    *buffered = NULL;
    for (int i = 0; i < r->nnodes; i++) {
        jobq_node *n = r->nodes[i];
        if (!r->subscribed[i] || !n->ctx) continue;
        void *reply = NULL;
        if (redisGetReplyFromReader(n->ctx, &reply) == REDIS_OK && reply) {
            *buffered = reply;
            return n;
        }
        fds[nfds] = (struct pollfd){.fd = n->ctx->fd, .events = POLLIN};
        idx[nfds++] = i;
    }
    if (nfds == 0) {
        jobq_err_set(err, JOBQ_E_IO, "not subscribed");
        return NULL;
    }
    int ms = timeout > 0 ? (int)(timeout * 1000) : 0;
    int got = poll(fds, (nfds_t)nfds, ms);
    if (got < 0 && errno != EINTR) {
        jobq_err_set(err, JOBQ_E_IO, "poll: %s", strerror(errno));
        return NULL;
    }
    for (int k = 0; got > 0 && k < nfds; k++)
        if (fds[k].revents) return r->nodes[idx[k]];
    *timed_out = true;
    return NULL;
}

/* jobq_redis_read_json; keep: a timeout leaves the subscription open. */
static int read_json(jobq_redis *r, double timeout, bool keep, json_t **out, jobq_err *err) {
    *out = NULL;
    bool timed_out;
    redisReply *reply = NULL;
    jobq_node *n = ready_node(r, timeout, &timed_out, &reply, err);
    if (!n) {
        if (timed_out && !keep) jobq_redis_disconnect(r);
        return timed_out ? 1 : -1;
    }
    if (!reply) {
        int rc = jobq_node_read_within(n, r->opts.io_timeout, &reply, err);
        if (rc != 0) {
            jobq_redis_disconnect(r);
            return rc > 0 ? (jobq_err_set(err, JOBQ_E_IO, "read: no complete message"), -1) : -1;
        }
    }
    int rc = 0;
    if (reply->type == REDIS_REPLY_ERROR) rc = jobq_redis_reply_error(err, "read", reply);
    else if (!(*out = jobq_reply_to_json(reply))) rc = -1, jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    freeReplyObject(reply);
    return rc;
}

int jobq_redis_read_json(jobq_redis *r, double timeout, json_t **out, jobq_err *err) {
    return read_json(r, timeout, false, out, err);
}

int jobq_redis_poll_json(jobq_redis *r, double timeout, json_t **out, jobq_err *err) {
    return read_json(r, timeout, true, out, err);
}
