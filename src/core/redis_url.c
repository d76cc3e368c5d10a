/*
 * Redis URLs (see redis_url.h) and unix:///path/redis.sock[?db=N&user=U&password=P].
 * Pure string work, no I/O.
 * Messages never repeat the user or password; the redacted form hides the password.
 */
#include <stddef.h> /* redis_url.h uses size_t without including it */

#include "core/redis_url.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_PORT 6379
#define DEFAULT_SENTINEL_PORT 26379
#define MAX_DB 1000000
#define ACCEPTED                                                                                    \
    "redis://[[user]:password@]host[:port][/db], rediss://..., unix:///path/redis.sock[?db=N], "   \
    "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master_name[/db] or "         \
    "redis+cluster://[[user]:password@]host:port[,host:port...]"

/* The URL schemes: what they name and whether over TLS. */
static const struct scheme {
    const char *name;
    enum jobq_redis_kind kind;
    bool tls;
} schemes[] = {
    {"redis", JOBQ_REDIS_SERVER, false},          {"rediss", JOBQ_REDIS_SERVER, true},
    {"redis+sentinel", JOBQ_REDIS_SENTINEL, false}, {"rediss+sentinel", JOBQ_REDIS_SENTINEL, true},
    {"redis+cluster", JOBQ_REDIS_CLUSTER, false},  {"rediss+cluster", JOBQ_REDIS_CLUSTER, true},
};

/* Parse [s, s+len) as decimal digits only into *out, 0..max. 0 or -1. */
static int parse_uint(const char *s, size_t len, long max, long *out) {
    if (len == 0) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
        if (v > max) return -1;
    }
    *out = v;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode [s, s+len) into a new string in *out (NULL when len is 0).
 * Returns 0, -1 on a bad escape or %00, -2 when out of memory. */
static int decode(const char *s, size_t len, char **out) {
    *out = NULL;
    if (len == 0) return 0;
    char *d = malloc(len + 1);
    if (!d) return -2;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            d[n++] = s[i];
            continue;
        }
        int hi = i + 1 < len ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(d);
            return -1;
        }
        d[n++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[n] = '\0';
    *out = d;
    return 0;
}

static char *dup_range(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* Decode a credential into *member; err names which one, never its text. */
static int set_credential(const char *s, size_t len, char **member, const char *what,
                          jobq_err *err) {
    int rc = decode(s, len, member);
    if (rc == -1) {
        jobq_err_set(err, JOBQ_E_INVALID,
                     "bad percent-escape in the Redis %s (use %%XX with two hex digits, not %%00)",
                     what);
        return -1;
    }
    if (rc == -2) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    return 0;
}

static bool host_char(char c, bool bracketed) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    if (c == '-' || c == '.' || c == '_') return true;
    return bracketed && c == ':';
}

static int parse_db(const char *s, size_t len, jobq_redis_url *out, jobq_err *err) {
    long db;
    if (parse_uint(s, len, MAX_DB, &db) != 0) {
        jobq_err_set(err, JOBQ_E_INVALID,
                     "bad Redis db '%.*s' (expected a number from 0 to %d)", (int)(len > 40 ? 40 : len), s,
                     MAX_DB);
        return -1;
    }
    out->db = (int)db;
    return 0;
}

/* Parse one host[:port] ([IPv6]:port too) of [hp, end) into *h. */
static int parse_host(const char *hp, const char *end, int default_port, bool need_port, jobq_redis_host *h,
                      jobq_err *err) {
    const char *host = hp, *host_end, *port = NULL;
    bool bracketed = *hp == '[';
    if (bracketed) {
        host = hp + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end) {
            jobq_err_set(err, JOBQ_E_INVALID, "missing ']' after the IPv6 address in the Redis URL");
            return -1;
        }
        const char *after = host_end + 1;
        if (after < end) {
            if (*after != ':') {
                jobq_err_set(err, JOBQ_E_INVALID, "unexpected text after ']' in the Redis URL");
                return -1;
            }
            port = after + 1;
        }
    } else {
        host_end = memchr(hp, ':', (size_t)(end - hp));
        if (host_end && memchr(host_end + 1, ':', (size_t)(end - host_end - 1))) {
            jobq_err_set(err, JOBQ_E_INVALID,
                         "bad Redis host '%.*s': IPv6 addresses go in brackets (redis://[::1]:6379)",
                         (int)(end - hp > 60 ? 60 : end - hp), hp);
            return -1;
        }
        if (host_end) port = host_end + 1;
        else host_end = end;
    }
    if (host_end == host) {
        jobq_err_set(err, JOBQ_E_INVALID, "empty host in the Redis URL (expected %s)", ACCEPTED);
        return -1;
    }
    for (const char *p = host; p < host_end; p++) {
        if (!host_char(*p, bracketed)) {
            jobq_err_set(err, JOBQ_E_INVALID, "bad character '%c' in the Redis host", *p);
            return -1;
        }
    }
    h->port = default_port;
    if (port) {
        long v;
        size_t len = (size_t)(end - port);
        if (parse_uint(port, len, 65535, &v) != 0 || v < 1) {
            jobq_err_set(err, JOBQ_E_INVALID, "bad Redis port '%.*s' (expected 1 to 65535)",
                         (int)(len > 40 ? 40 : len), port);
            return -1;
        }
        h->port = (int)v;
    } else if (need_port) {
        jobq_err_set(err, JOBQ_E_INVALID, "a cluster seed needs its port: host:port (got '%.*s')",
                     (int)(end - hp > 60 ? 60 : end - hp), hp);
        return -1;
    }
    if (!(h->host = dup_range(host, (size_t)(host_end - host)))) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    return 0;
}

/* The comma-separated hosts of [hp, end): one for a server, several for
 * sentinels and cluster seeds. */
static int parse_hosts(const char *hp, const char *end, jobq_redis_url *out, jobq_err *err) {
    int default_port = out->kind == JOBQ_REDIS_SENTINEL ? DEFAULT_SENTINEL_PORT : DEFAULT_PORT;
    for (const char *h = hp; h <= end;) {
        const char *comma = memchr(h, ',', (size_t)(end - h));
        const char *h_end = comma ? comma : end;
        if (out->nhosts == JOBQ_REDIS_MAX_HOSTS) {
            jobq_err_set(err, JOBQ_E_INVALID, "too many hosts in the Redis URL (at most %d)", JOBQ_REDIS_MAX_HOSTS);
            return -1;
        }
        if (parse_host(h, h_end, default_port, out->kind == JOBQ_REDIS_CLUSTER, &out->hosts[out->nhosts], err) != 0)
            return -1;
        out->nhosts++;
        if (!comma) break;
        h = comma + 1;
    }
    if (out->kind == JOBQ_REDIS_SERVER && out->nhosts > 1) {
        jobq_err_set(err, JOBQ_E_INVALID,
                     "several hosts in a redis:// URL: use redis+sentinel:// or redis+cluster:// for those");
        return -1;
    }
    out->host = out->hosts[0].host;
    out->port = out->hosts[0].port;
    return 0;
}

/* What follows the hosts: "/db" for a server, "/master[/db]" for
 * sentinels, nothing (or "/0") for a cluster. */
static int parse_path(const char *path, jobq_redis_url *out, jobq_err *err) {
    if (*path == '/') path++;
    if (out->kind == JOBQ_REDIS_SENTINEL) {
        size_t n = strcspn(path, "/");
        if (n == 0) {
            jobq_err_set(err, JOBQ_E_INVALID,
                         "a sentinel URL names the master: redis+sentinel://host:26379/mymaster[/db]");
            return -1;
        }
        int rc = decode(path, n, &out->master_name);
        if (rc != 0) {
            jobq_err_set(err, rc == -2 ? JOBQ_E_NOMEM : JOBQ_E_INVALID, "bad master name in the Redis URL");
            return -1;
        }
        path += n;
        if (*path == '/') path++;
    }
    if (*path && parse_db(path, strlen(path), out, err) != 0) return -1;
    if (out->kind == JOBQ_REDIS_CLUSTER && out->db != 0) {
        jobq_err_set(err, JOBQ_E_INVALID, "Redis Cluster has only db 0");
        return -1;
    }
    return 0;
}

/* rest is what follows "redis://" (and the other TCP schemes). */
static int parse_tcp(const char *rest, jobq_redis_url *out, jobq_err *err) {
    const char *end = rest + strcspn(rest, "/?#");
    if (strchr(end, '@')) { /* a password with a raw '/', '?' or '#': do not echo it */
        jobq_err_set(err, JOBQ_E_INVALID,
                     "'@' after the host in the Redis URL: percent-encode '/', '?', '#' and '@' "
                     "in the user and password (%%2F, %%3F, %%23, %%40)");
        return -1;
    }
    if (strpbrk(end, "?#")) {
        jobq_err_set(err, JOBQ_E_INVALID,
                     "unexpected '%c' in the Redis URL (the db goes after a '/': redis://host:6379/0)",
                     *strpbrk(end, "?#"));
        return -1;
    }
    const char *hp = rest; /* host[:port][,host[:port]...] */
    const char *at = memrchr(rest, '@', (size_t)(end - rest));
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon) {
            jobq_err_set(err, JOBQ_E_INVALID,
                         "Redis credentials must be written ':password@' or 'user:password@' "
                         "(percent-encode ':' and '@' inside them)");
            return -1;
        }
        if (set_credential(rest, (size_t)(colon - rest), &out->user, "user", err) != 0 ||
            set_credential(colon + 1, (size_t)(at - colon - 1), &out->password, "password", err) != 0)
            return -1;
        if (out->user && !out->password) {
            jobq_err_set(err, JOBQ_E_INVALID, "a Redis user needs a password (redis://user:password@host)");
            return -1;
        }
        hp = at + 1;
    }
    if (parse_hosts(hp, end, out, err) != 0) return -1;
    return parse_path(end, out, err);
}

/* rest is what follows "unix://": an absolute path, then ?db=N&user=U&password=P. */
static int parse_unix(const char *rest, jobq_redis_url *out, jobq_err *err) {
    size_t plen = strcspn(rest, "?");
    if (plen == 0) {
        jobq_err_set(err, JOBQ_E_INVALID, "empty socket path in the Redis URL (expected unix:///path/redis.sock)");
        return -1;
    }
    if (rest[0] != '/') {
        jobq_err_set(err, JOBQ_E_INVALID,
                     "socket path '%.*s' is not absolute (expected unix:///path/redis.sock)",
                     (int)(plen > 60 ? 60 : plen), rest);
        return -1;
    }
    const char *q = rest + plen;
    while (*q) {
        q++; /* skip '?' or '&' */
        size_t len = strcspn(q, "&");
        if (len == 0) continue;
        const char *eq = memchr(q, '=', len);
        size_t nlen = eq ? (size_t)(eq - q) : len;
        const char *val = eq ? eq + 1 : q + len;
        size_t vlen = (size_t)(q + len - val);
        if (nlen == 2 && strncmp(q, "db", 2) == 0) {
            if (parse_db(val, vlen, out, err) != 0) return -1;
        } else if (nlen == 4 && strncmp(q, "user", 4) == 0) {
            free(out->user);
            if (set_credential(val, vlen, &out->user, "user", err) != 0) return -1;
        } else if (nlen == 8 && strncmp(q, "password", 8) == 0) {
            free(out->password);
            if (set_credential(val, vlen, &out->password, "password", err) != 0) return -1;
        } else {
            jobq_err_set(err, JOBQ_E_INVALID,
                         "unknown query parameter '%.*s' in the Redis URL (accepted: db, user, password)",
                         (int)(nlen > 40 ? 40 : nlen), q);
            return -1;
        }
        q += len;
    }
    if (out->user && !out->password) {
        jobq_err_set(err, JOBQ_E_INVALID, "a Redis user needs a password (add &password=...)");
        return -1;
    }
    if (!(out->socket_path = dup_range(rest, plen))) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    return 0;
}

int jobq_redis_url_parse(const char *url, jobq_redis_url *out, jobq_err *err) {
    memset(out, 0, sizeof *out);
    out->port = DEFAULT_PORT;
    if (!url || !*url) {
        jobq_err_set(err, JOBQ_E_INVALID, "empty Redis URL (expected %s)", ACCEPTED);
        return -1;
    }
    const char *sep = strstr(url, "://");
    /* No "://" at all: do not echo, the text may hold a password. */
    if (!sep || sep == url || strcspn(url, ":@/") < (size_t)(sep - url)) {
        jobq_err_set(err, JOBQ_E_INVALID, "not a Redis URL (expected %s)", ACCEPTED);
        return -1;
    }
    size_t slen = (size_t)(sep - url);
    int rc = -1;
    const struct scheme *sc = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (strlen(schemes[i].name) == slen && strncasecmp(url, schemes[i].name, slen) == 0) sc = &schemes[i];
    if (sc) {
        out->kind = sc->kind;
        out->tls = sc->tls;
        rc = parse_tcp(sep + 3, out, err);
    } else if (slen == 4 && strncasecmp(url, "unix", 4) == 0) {
        rc = parse_unix(sep + 3, out, err);
    } else {
        jobq_err_set(err, JOBQ_E_INVALID,
                     "unknown scheme '%.*s' in the Redis URL; accepted: redis://, rediss://, unix://, "
                     "redis+sentinel://, redis+cluster:// (and rediss+sentinel://, rediss+cluster://)",
                     (int)(slen > 20 ? 20 : slen), url);
    }
    if (rc != 0) jobq_redis_url_fini(out);
    return rc;
}

void jobq_redis_url_fini(jobq_redis_url *url) {
    if (!url) return;
    for (int i = 0; i < url->nhosts; i++) free(url->hosts[i].host);
    if (url->nhosts == 0) free(url->host);
    free(url->master_name);
    free(url->socket_path);
    free(url->user);
    free(url->password);
    memset(url, 0, sizeof *url);
}

/* Bounded appender: output is always NUL-terminated, truncated if needed. */
struct sbuf {
    char *buf;
    size_t size, len;
};

static void put(struct sbuf *b, const char *s) {
    for (; *s; s++) {
        if (b->len + 1 < b->size) b->buf[b->len++] = *s;
    }
    if (b->size) b->buf[b->len < b->size ? b->len : b->size - 1] = '\0';
}

/* Append s percent-encoded (all but RFC 3986 unreserved characters). */
static void put_encoded(struct sbuf *b, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~') {
            char one[2] = {(char)c, '\0'};
            put(b, one);
        } else {
            char esc[4] = {'%', hex[c >> 4], hex[c & 15], '\0'};
            put(b, esc);
        }
    }
}

void jobq_redis_url_format_redacted(const jobq_redis_url *url, char *buf, size_t size) {
    struct sbuf b = {buf, size, 0};
    if (!buf || size == 0) return;
    buf[0] = '\0';
    char num[32];
    if (url->socket_path) {
        put(&b, "unix://");
        put(&b, url->socket_path);
        snprintf(num, sizeof num, "?db=%d", url->db);
        put(&b, num);
        if (url->user) {
            put(&b, "&user=");
            put_encoded(&b, url->user);
        }
        if (url->password) put(&b, "&password=***");
        return;
    }
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (schemes[i].kind == url->kind && schemes[i].tls == url->tls) put(&b, schemes[i].name);
    put(&b, "://");
    if (url->user) put_encoded(&b, url->user);
    if (url->password) put(&b, ":***");
    if (url->user || url->password) put(&b, "@");
    for (int i = 0; i < url->nhosts; i++) {
        const char *host = url->hosts[i].host;
        bool v6 = strchr(host, ':') != NULL;
        if (i) put(&b, ",");
        if (v6) put(&b, "[");
        put(&b, host);
        if (v6) put(&b, "]");
        snprintf(num, sizeof num, ":%d", url->hosts[i].port);
        put(&b, num);
    }
    if (url->master_name) {
        put(&b, "/");
        put_encoded(&b, url->master_name);
    }
    if (url->kind != JOBQ_REDIS_CLUSTER) {
        snprintf(num, sizeof num, "/%d", url->db);
        put(&b, num);
    }
}

void jobq_redis_url_scrub(char *url) {
    for (char *query = strstr(url, "password="); query; query = strstr(query + 9, "password="))
        for (char *p = query + 9; *p && *p != '&'; p++) *p = '*';
    char *start = strstr(url, "://");
    if (!start) return;
    start += 3;
    char *at = strchr(start, '@');
    char *slash = strchr(start, '/');
    if (!at || (slash && slash < at)) return;
    char *colon = memchr(start, ':', (size_t)(at - start));
    if (colon)
        for (char *p = colon + 1; p < at; p++) *p = '*';
}
