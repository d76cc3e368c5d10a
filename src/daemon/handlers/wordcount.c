/*
 * Built-in "wordcount" handler: GET an http or https URL with libcurl and
 * count the body's words while it streams (constant memory, body never kept).
 * Owns the worker's one CURL handle, made on the first job and reset between
 * jobs so the connection cache gives keep-alive; never made before fork.
 * libcurl itself is loaded by that first job (handlers/libcurl.c).
 * The job's URL is shown (errors, result, log) only through jobq_url_redact,
 * so its userinfo never leaves the handler; with deny_private, every socket
 * curl opens is checked against handlers/addr_policy.c first.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "daemon/handlers/addr_policy.h"
#include "daemon/handlers/handlers.h"
#include "daemon/handlers/libcurl.h"
#include "daemon/handlers/url_redact.h"
#include "daemon/handlers/words.h"

#ifndef JOBQ_VERSION
#define JOBQ_VERSION "unknown"
#endif

#define DEFAULT_MAX_BODY (64L * 1024 * 1024)
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define MAX_REDIRECTS 5L

static const struct jobq_api *api; /* host table, set by init */
static long max_body = DEFAULT_MAX_BODY;            /* bytes */
static double connect_timeout = DEFAULT_CONNECT_TIMEOUT; /* seconds */
static bool deny_private; /* refuse loopback, private, link-local... addresses */
static const jobq_libcurl *lc; /* libcurl, NULL until the first job */
static CURL *curl; /* this worker's handle, NULL until the first job */

/* State of one transfer, shared with the write callback. */
struct fetch {
    jobq_words words;  /* counts of the final response's body */
    long limit;        /* max_body when the job started */
    long bad_status;   /* non-2xx status that stopped the transfer, or 0 */
    int too_big;       /* stopped because the body exceeds limit */
    int checked;       /* status and Content-Length looked at */
    char refused[160]; /* why deny_private refused a connection (the first), or "" */
};

int jobq_wordcount_configure(const jobq_wordcount_settings *s, char *why, size_t why_size) {
    max_body = s->max_body > 0 ? s->max_body : DEFAULT_MAX_BODY;
    connect_timeout = s->connect_timeout > 0 ? s->connect_timeout : DEFAULT_CONNECT_TIMEOUT;
    deny_private = s->deny_private;
    if (s->preload && !lc && !(lc = jobq_libcurl_get(why, why_size))) return -1;
    return 0;
}

void jobq_wordcount_cleanup(void) {
    if (curl && lc) lc->easy_cleanup(curl);
    curl = NULL;
}

static int is_2xx(long status) { return status >= 200 && status <= 299; }

/* Curl hands over the body of the final response only (bodies of redirects
 * it follows are skipped), so the first call sees the final status and
 * Content-Length. Returning less than asked aborts with CURLE_WRITE_ERROR. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *udata) {
    struct fetch *f = udata;
    size_t n = size * nmemb;

    if (!f->checked) {
        long status = 0;
        curl_off_t length = -1;
        f->checked = 1;
        lc->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (!is_2xx(status)) {
            f->bad_status = status;
            return 0;
        }
        if (lc->easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK &&
            length > (curl_off_t)f->limit) {
            f->too_big = 1;
            return 0;
        }
    }
    if (n > (uint64_t)f->limit - f->words.bytes) {
        f->too_big = 1;
        return 0;
    }
    jobq_words_feed(&f->words, data, n);
    return n;
}

/* CURLOPT_OPENSOCKETFUNCTION with deny_private: curl calls it with the
 * address it resolved and is about to connect to, for the first request and
 * after each redirect, so no second DNS lookup can disagree (rebinding).
 * Refusing returns CURL_SOCKET_BAD: curl tries the host's next address, if
 * any, and otherwise fails with CURLE_COULDNT_CONNECT. */
static curl_socket_t open_socket(void *udata, curlsocktype purpose, struct curl_sockaddr *a) {
    struct fetch *f = udata;
    (void)purpose;
    jobq_addr_class c = jobq_addr_policy_classify(&a->addr, a->addrlen);
    if (c != JOBQ_ADDR_PUBLIC) {
        char ip[INET6_ADDRSTRLEN];
        if (f && !f->refused[0])
            snprintf(f->refused, sizeof f->refused, "refused to connect to %s (%s; [wordcount] deny_private = yes)",
                     jobq_addr_policy_format(&a->addr, a->addrlen, ip, sizeof ip), jobq_addr_policy_describe(c));
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int is_http_url(const char *url) {
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

/* Reset (or make) the handle and set every option of this job's transfer. */
static CURLcode prepare(const char *url, double time_left, struct fetch *f, char *errbuf) {
    CURLcode rc = CURLE_OK;
    long timeout_ms, connect_ms;

    if (time_left < 1) time_left = 1;
    if (time_left > 30 * 86400.0) time_left = 30 * 86400.0;
    timeout_ms = (long)(time_left * 1000);
    connect_ms = (long)(connect_timeout * 1000);
    if (connect_ms < 1) connect_ms = 1;

#define SET(opt, val) \
    do { \
        if (rc == CURLE_OK) rc = lc->easy_setopt(curl, opt, val); \
    } while (0)
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_USERAGENT, "jobq/" JOBQ_VERSION);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, f);
    if (deny_private) {
        SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
        SET(CURLOPT_OPENSOCKETDATA, f);
        /* Through a proxy the target's address is the proxy's business, not
         * ours to check: with the guard on, no proxy from the environment. */
        SET(CURLOPT_PROXY, "");
    }
#undef SET
    return rc;
}

/* {"url": ..., "http_status": ..., "bytes": ..., "words": ...}; NULL on OOM. */
static char *result_json(const char *url, long status, const jobq_words *w) {
    json_t *o = json_pack("{s:s, s:I, s:I, s:I}", "url", url, "http_status", (json_int_t)status,
                          "bytes", (json_int_t)w->bytes, "words", (json_int_t)w->words);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* The text of curl's error buffer for rc, unless it holds a piece of the
 * userinfo of url or of final (the URL after redirects; may be NULL): then
 * curl's generic message for rc, which never holds a URL. */
static const char *curl_error(CURLcode rc, const char *errbuf, const char *url, const char *final) {
    if (!errbuf[0] || jobq_url_redact_leaks(url, errbuf) || jobq_url_redact_leaks(final, errbuf))
        return lc->easy_strerror(rc);
    return errbuf;
}

/* Every URL shown is a redacted copy (shown, final_shown): url and final
 * themselves may carry a password. */
static int wordcount(jobq_job *job, void *udata) {
    (void)udata;
    const char *url = api->job_arg_string(job, "url");
    const char *final = NULL; /* after redirects; owned by curl */
    char *shown = NULL, *final_shown = NULL;
    char errbuf[CURL_ERROR_SIZE];
    char why[300];
    struct fetch f;
    long status = 0;
    CURLcode rc;
    int ret;

    if (!url) return api->job_fail(job, "wordcount: args.url must be a string (an http or https URL)");
    if (!(shown = jobq_url_redact(url))) return api->job_fail(job, "wordcount: out of memory");
    if (!is_http_url(url)) {
        ret = api->job_fail(job, "url must be an http or https URL, got '%s'", shown);
        goto out;
    }
    if (!lc && !(lc = jobq_libcurl_get(why, sizeof why))) {
        ret = api->job_fail(job, "wordcount: %s", why);
        goto out;
    }
    if (curl) {
        lc->easy_reset(curl); /* keeps the connection cache */
    } else if (!(curl = lc->easy_init())) {
        ret = api->job_fail(job, "wordcount: cannot create a curl handle");
        goto out;
    }
    memset(&f, 0, sizeof f);
    jobq_words_init(&f.words);
    f.limit = max_body;
    errbuf[0] = '\0';
    rc = prepare(url, api->job_time_left(job), &f, errbuf);
    if (rc != CURLE_OK) {
        ret = api->job_fail(job, "wordcount: cannot set up the request: %s", lc->easy_strerror(rc));
        goto out;
    }

    api->log(job, JOBQ_LOG_DEBUG, "wordcount: GET %s", shown);
    rc = lc->easy_perform(curl);
    lc->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    lc->easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &final);
    /* Nothing may keep pointing at this frame once we return. */
    lc->easy_setopt(curl, CURLOPT_ERRORBUFFER, (char *)NULL);
    lc->easy_setopt(curl, CURLOPT_WRITEDATA, (void *)NULL);
    lc->easy_setopt(curl, CURLOPT_OPENSOCKETDATA, (void *)NULL);
    if (final && strcmp(final, url) == 0) final = NULL; /* not redirected */
    if (final && !(final_shown = jobq_url_redact(final))) {
        ret = api->job_fail(job, "wordcount: out of memory");
        goto out;
    }

    if (f.refused[0] && rc != CURLE_OK) {
        if (final)
            ret = api->job_fail(job, "wordcount: %s: GET %s (redirected to %s)", f.refused, shown, final_shown);
        else
            ret = api->job_fail(job, "wordcount: %s: GET %s", f.refused, shown);
        goto out;
    }
    if (f.bad_status || (rc == CURLE_OK && !is_2xx(status))) {
        long code = f.bad_status ? f.bad_status : status;
        if (final)
            ret = api->job_fail(job, "HTTP %ld from %s (redirected to %s)", code, shown, final_shown);
        else
            ret = api->job_fail(job, "HTTP %ld from %s", code, shown);
        goto out;
    }
    if (f.too_big) {
        ret = api->job_fail(job, "body of %s is larger than the %ld-byte limit (max_body)", shown, f.limit);
        goto out;
    }
    if (rc == CURLE_UNSUPPORTED_PROTOCOL && final) { /* a refused redirect */
        ret = api->job_fail(job, "GET %s: redirect to '%s' refused: only http and https are allowed", shown,
                            final_shown);
        goto out;
    }
    if (rc != CURLE_OK) {
        ret = api->job_fail(job, "GET %s failed: %s", shown, curl_error(rc, errbuf, url, final));
        goto out;
    }

    api->log(job, JOBQ_LOG_DEBUG, "wordcount: HTTP %ld, %" PRIu64 " bytes, %" PRIu64 " words",
             status, f.words.bytes, f.words.words);
    char *json = result_json(shown, status, &f.words);
    if (!json) {
        ret = api->job_fail(job, "wordcount: out of memory building the result");
        goto out;
    }
    ret = api->job_set_result_json(job, json);
    free(json);
    if (ret != JOBQ_OK) ret = api->job_fail(job, "wordcount: the host refused the result");
out:
    free(final_shown);
    free(shown);
    return ret;
}

int jobq_wordcount_init(jobq_plugin *p, const struct jobq_api *host) {
    api = host;
    if (JOBQ_PLUGIN_BEGIN(p, host, "wordcount", JOBQ_VERSION) != JOBQ_OK) return JOBQ_ERR;
    return host->register_handler(p, "wordcount", wordcount, NULL);
}
