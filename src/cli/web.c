/*
 * jobq web: the HTTP server (libmicrohttpd, a thread per connection) in
 * front of the dashboard, the JSON API and /metrics. Input is bounded: at
 * most JOBQ_WEB_CONNECTIONS connections (per address too), 16 KiB of
 * request line and headers, JOBQ_WEB_BODY_MAX bytes of body, and an idle
 * connection is closed after JOBQ_WEB_IDLE seconds. GET never changes
 * anything; every POST needs the token (Authorization: Bearer), compared
 * in constant time: 401 without one, 403 with another, before any body is
 * read. Without a token the server is read-only. A request whose Host is
 * not an address, localhost or an --allow-host name is refused (403), so a
 * rebinding DNS name cannot make a browser read the dashboard.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/web.h"

#define JOBQ_WEB_CONNECTIONS 64  /* connections at once */
#define JOBQ_WEB_PER_ADDRESS 32  /* of them from one address */
#define JOBQ_WEB_IDLE 15         /* seconds a connection may stay silent */
#define JOBQ_WEB_HEADERS_MAX (16 * 1024) /* request line, headers and buffers per connection */
#define JOBQ_WEB_TOKEN_MAX 1024

/* ---- responses ---- */

void jobq_web_headers(struct MHD_Response *r, bool cache) {
    MHD_add_response_header(r, "Cache-Control", cache ? "no-cache" : "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
}

enum MHD_Result jobq_web_send(struct MHD_Connection *conn, unsigned status, const char *type, const char *body,
                              size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    jobq_web_headers(r, false);
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"jobq\"");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

enum MHD_Result jobq_web_json(struct MHD_Connection *conn, unsigned status, json_t *v) {
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text) return jobq_web_send(conn, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
    enum MHD_Result rc = jobq_web_send(conn, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

enum MHD_Result jobq_web_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return jobq_web_json(conn, status, json_pack("{s:s}", "error", msg));
}

/* ---- routing ---- */

typedef enum MHD_Result (*handler_fn)(jobq_web *w, jobq_web_request *rq);

enum { EXACT, PREFIX };

static const struct route {
    const char *method, *path;
    int match;
    bool write; /* needs the token */
    handler_fn fn;
} routes[] = {
    {"GET", "/metrics", EXACT, false, jobq_web_metrics},
    {"GET", "/healthz", EXACT, false, jobq_web_health},
    {"GET", "/api/snapshot", EXACT, false, jobq_web_api_snapshot},
    {"GET", "/api/history", EXACT, false, jobq_web_api_history},
    {"GET", "/api/dead", EXACT, false, jobq_web_api_dead},
    {"GET", "/api/events", EXACT, false, jobq_web_api_events},
    {"POST", "/api/auth", EXACT, true, jobq_web_api_auth},
    {"POST", "/api/dead/retry", EXACT, true, jobq_web_api_dead_retry},
    {"POST", "/api/dead/purge", EXACT, true, jobq_web_api_dead_purge},
    {"POST", "/api/job/", PREFIX, true, jobq_web_api_job_cancel}, /* /api/job/<id>/cancel */
    {"GET", "/api/job/", PREFIX, false, jobq_web_api_job},
};

static bool path_matches(const struct route *r, const char *url) {
    if (r->match == EXACT) return strcmp(url, r->path) == 0;
    size_t n = strlen(r->path);
    if (strncmp(url, r->path, n) != 0 || !url[n]) return false;
    /* POST /api/job/<id>/cancel is the only write on a job; GET of that
     * path is refused (405) rather than read as a job id ending in
     * "/cancel". */
    size_t len = strlen(url);
    bool cancel = len > n + 7 && strcmp(url + len - 7, "/cancel") == 0;
    return strcmp(r->method, "POST") == 0 ? cancel : !cancel;
}

/* The route for method and url; *other_method when the path exists for
 * another method only. */
static const struct route *find_route(const char *method, const char *url, const char **other_method) {
    *other_method = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (!path_matches(&routes[i], url)) continue;
        if (strcmp(routes[i].method, method) == 0) return &routes[i];
        *other_method = routes[i].method;
    }
    return NULL;
}

/* 0 when the request carries the token; else the status to answer. */
static unsigned check_token(const jobq_web *w, struct MHD_Connection *conn) {
    if (!w->token) return MHD_HTTP_FORBIDDEN;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return MHD_HTTP_UNAUTHORIZED;
    const char *given = auth + 7;
    while (*given == ' ') given++;
    size_t a = strlen(given), b = strlen(w->token);
    unsigned char diff = a != b;
    /* Constant time over the token's length. */
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)(w->token[i] ^ (i < a ? given[i] : 0));
    return diff ? MHD_HTTP_FORBIDDEN : 0;
}

/* Is the Host header one this server answers to: an IP address,
 * localhost, or a name given with --allow-host? A page of another site
 * whose name was made to resolve to this address (DNS rebinding) sends its
 * own name and is refused, so it cannot read the dashboard's data. */
static bool host_allowed(const jobq_web *w, struct MHD_Connection *conn) {
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!host) return true; /* HTTP/1.0 */
    char name[256];
    size_t n = strlen(host);
    if (n >= sizeof name) return false;
    memcpy(name, host, n + 1);
    if (name[0] == '[') { /* [IPv6]:port */
        char *close = strchr(name, ']');
        if (!close) return false;
        *close = '\0';
        struct in6_addr a6;
        return inet_pton(AF_INET6, name + 1, &a6) == 1;
    }
    char *colon = strrchr(name, ':');
    if (colon) *colon = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1 || strcasecmp(name, "localhost") == 0) return true;
    for (const char *p = w->allow_hosts; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == strlen(name) && strncasecmp(p, name, len) == 0) return true;
        p = end ? end + 1 : p + len;
    }
    return false;
}

/* The per-request state kept between libmicrohttpd's calls. */
typedef struct request_state {
    jobq_web_request rq;
    const struct route *route;
    bool answered; /* a refusal was queued before the body */
    bool too_big;
} request_state;

/* The first call for a request (its headers are in): what to refuse now.
 * MHD_YES to go on reading it (rs->answered tells whether a response is
 * queued already). */
static enum MHD_Result first_call(jobq_web *w, request_state *rs, struct MHD_Connection *conn, const char *url,
                                  const char *method) {
    const char *other = NULL;
    bool head = strcmp(method, "HEAD") == 0;
    if (!host_allowed(w, conn)) {
        rs->answered = true;
        return jobq_web_error(conn, MHD_HTTP_FORBIDDEN,
                              "this server does not answer to that Host name: add it with --allow-host");
    }
    if (!head && strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        rs->answered = true;
        return jobq_web_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s is not allowed", method);
    }
    rs->rq.method = head ? "GET" : method;
    rs->route = find_route(rs->rq.method, url, &other);
    bool asset = strcmp(rs->rq.method, "GET") == 0 && jobq_web_asset_find(url);
    if (!rs->route && !asset) {
        rs->answered = true;
        if (other) {
            struct MHD_Response *r =
                MHD_create_response_from_buffer(strlen("{\"error\":\"method not allowed\"}"),
                                                (void *)"{\"error\":\"method not allowed\"}", MHD_RESPMEM_PERSISTENT);
            if (!r) return MHD_NO;
            MHD_add_response_header(r, "Content-Type", "application/json");
            MHD_add_response_header(r, "Allow", other);
            jobq_web_headers(r, false);
            enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
            MHD_destroy_response(r);
            return rc;
        }
        return jobq_web_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    }
    if (rs->route && rs->route->write) {
        unsigned refused = check_token(w, conn);
        if (refused) {
            rs->answered = true;
            if (!w->token)
                return jobq_web_error(conn, refused, "read-only: jobq web was started without a token "
                                                     "(--token-file or JOBQ_WEB_TOKEN)");
            return jobq_web_error(conn, refused, refused == MHD_HTTP_UNAUTHORIZED
                                                     ? "this action needs the token: Authorization: Bearer TOKEN"
                                                     : "wrong token");
        }
    }
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > JOBQ_WEB_BODY_MAX) {
        rs->answered = true;
        return jobq_web_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "the body is over %d bytes", JOBQ_WEB_BODY_MAX);
    }
    return MHD_YES;
}

static enum MHD_Result serve_asset(const jobq_web_asset *a, struct MHD_Connection *conn) {
    struct MHD_Response *r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", a->type);
    jobq_web_headers(r, true);
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    jobq_web *w = cls;
    request_state *rs = *con_cls;
    if (!rs) {
        if (!(rs = calloc(1, sizeof *rs))) return MHD_NO;
        *con_cls = rs;
        rs->rq.conn = conn;
        rs->rq.url = url;
        return first_call(w, rs, conn, url, method);
    }
    if (*upload_data_size) {
        if (!rs->answered && !rs->too_big) {
            if (rs->rq.len + *upload_data_size > JOBQ_WEB_BODY_MAX) {
                rs->too_big = true;
            } else {
                memcpy(rs->rq.body + rs->rq.len, upload_data, *upload_data_size);
                rs->rq.len += *upload_data_size;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rs->answered) return MHD_YES;
    rs->answered = true;
    if (rs->too_big) return jobq_web_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "the body is over %d bytes", JOBQ_WEB_BODY_MAX);
    rs->rq.body[rs->rq.len] = '\0';
    if (!rs->route) return serve_asset(jobq_web_asset_find(url), conn);
    return rs->route->fn(w, &rs->rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages, one line each. */
static void on_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = '\0';
    fprintf(stderr, "jobq: web: %s\n", line);
}

/* ---- options ---- */

static const char web_usage[] =
    "Usage: jobq web [--listen ADDRESS:PORT] [--token-file FILE] [--allow-host NAMES]\n"
    "Serve the dashboard (/), Prometheus metrics (/metrics) and the JSON API\n"
    "(/api/...; see README.md, \"Dashboard and metrics\") until SIGINT or SIGTERM.\n\n"
    "      --listen ADDRESS:PORT  where to listen (default 127.0.0.1:8080; [::1]:8080\n"
    "                             for IPv6; port 0 picks a free one)\n"
    "      --token-file FILE      the token that write actions (retry, purge, cancel)\n"
    "                             need, its first line; else $JOBQ_WEB_TOKEN; without\n"
    "                             one the dashboard is read-only\n"
    "      --allow-host NAMES     host names (comma-separated) the server answers to\n"
    "                             besides IP addresses and localhost, e.g. the name a\n"
    "                             proxy passes on; others get 403 (DNS rebinding)\n"
    "      --sample-every S       seconds between the samples of the rate history\n"
    "                             the page plots (default 5; an hour is kept)\n";

typedef struct web_opts {
    const char *listen, *token_file, *allow_hosts;
    double sample_every;
} web_opts;

/* ADDRESS:PORT into sa. 0, or -1 after printing. */
static int parse_listen(const char *text, struct sockaddr_storage *sa, socklen_t *len) {
    char host[128];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof host)
        return jobq_cli_error("web: --listen expects ADDRESS:PORT, got '%s'", text), -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || port > 65535)
        return jobq_cli_error("web: --listen: bad port in '%s'", text), -1;
    memset(sa, 0, sizeof *sa);
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return jobq_cli_error("web: --listen: bad IPv6 address in '%s'", text), -1;
        *len = sizeof *s6;
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return jobq_cli_error("web: --listen: '%s' is not an IPv4 address (or [IPv6])", host), -1;
    *len = sizeof *s4;
    return 0;
}

/* The token: the first line of path, else $JOBQ_WEB_TOKEN, else none
 * (*token NULL). 0, or -1 after printing. */
static int load_token(const char *path, char **token) {
    *token = NULL;
    char buf[JOBQ_WEB_TOKEN_MAX + 2];
    if (path) {
        FILE *f = fopen(path, "r");
        if (!f) return jobq_cli_error("web: cannot read the token file %s: %s", path, strerror(errno)), -1;
        bool got = fgets(buf, sizeof buf, f) != NULL;
        fclose(f);
        if (!got) buf[0] = '\0';
    } else {
        const char *env = getenv("JOBQ_WEB_TOKEN");
        if (!env || !*env) return 0;
        if (strlen(env) > JOBQ_WEB_TOKEN_MAX) return jobq_cli_error("web: JOBQ_WEB_TOKEN is too long"), -1;
        snprintf(buf, sizeof buf, "%s", env);
    }
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t')) buf[--n] = '\0';
    if (n > JOBQ_WEB_TOKEN_MAX) return jobq_cli_error("web: the token is longer than %d bytes", JOBQ_WEB_TOKEN_MAX), -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f)
            return jobq_cli_error("web: the token must be printable, without spaces"), -1;
    if (n < 8) return jobq_cli_error("web: the token is empty or shorter than 8 characters"), -1;
    *token = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return *token ? 0 : (jobq_cli_error("out of memory"), -1);
}

/* Block SIGINT and SIGTERM in every thread (libmicrohttpd's inherit the
 * mask) and wait for one here. */
static void wait_for_signal(jobq_web *w, const sigset_t *set) {
    int sig = 0;
    while (sigwait(set, &sig) != 0) {
    }
    atomic_store(&w->stop, true);
}

int jobq_cli_web(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {
        JOBQ_CLI_OPT_STRING("listen", 'l', web_opts, listen),
        JOBQ_CLI_OPT_STRING("token-file", 0, web_opts, token_file),
        JOBQ_CLI_OPT_STRING("allow-host", 0, web_opts, allow_hosts),
        JOBQ_CLI_OPT_NUMBER("sample-every", 0, web_opts, sample_every, 0.2, 3600, "seconds from 0.2 to 3600"),
        JOBQ_CLI_OPT_END,
    };
    web_opts o = {"127.0.0.1:8080", NULL, NULL, JOBQ_WEB_SAMPLE_EVERY};
    int nargs;
    const jobq_cli_spec spec = {web_usage, opts, &o, NULL, 0, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    struct sockaddr_storage sa;
    socklen_t salen;
    if (parse_listen(o.listen, &sa, &salen) != 0) return JOBQ_CLI_USAGE;
    char *token;
    if (load_token(o.token_file, &token) != 0) return JOBQ_CLI_USAGE;
    json_object_seed(0); /* before any thread makes an object */
    if (jobq_cli_connect(c) != 0) {
        free(token);
        return JOBQ_CLI_USAGE;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    jobq_web w = {.cli = c, .token = token, .sample_every = o.sample_every, .allow_hosts = o.allow_hosts};
    pthread_mutex_init(&w.lock, NULL);
    atomic_init(&w.stop, false);
    atomic_init(&w.streams, 0);
    int rc = JOBQ_CLI_USAGE;
    struct MHD_Daemon *d = NULL;
    pthread_t sampler;
    bool sampling = false;
    if (jobq_web_events_start(&w) != 0) goto out;
    sampling = pthread_create(&sampler, NULL, jobq_web_sampler, &w) == 0;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &w,
                         MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)JOBQ_WEB_CONNECTIONS,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)JOBQ_WEB_PER_ADDRESS,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)JOBQ_WEB_IDLE,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)JOBQ_WEB_HEADERS_MAX,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_END);
    if (!d) {
        jobq_cli_error("web: cannot listen on %s: %s", o.listen, strerror(errno));
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char host[64] = "";
    if (sa.ss_family == AF_INET6) {
        host[0] = '[';
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host + 1, sizeof host - 2);
        strcat(host, "]");
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof host);
    }
    printf("jobq web: listening on http://%s:%u/ (%s)\n", host, info ? (unsigned)info->port : 0u,
           token ? "write actions need the token" : "read-only: no token");
    fflush(stdout);
    wait_for_signal(&w, &set);
    rc = JOBQ_CLI_OK;
out:
    atomic_store(&w.stop, true);
    jobq_web_events_stop(&w);
    if (d) MHD_stop_daemon(d);
    if (sampling) pthread_join(sampler, NULL);
    jobq_web_events_free(&w);
    jobq_web_api_fini(&w);
    pthread_mutex_destroy(&w.lock);
    if (token) explicit_bzero(token, strlen(token));
    free(token);
    return rc;
}
