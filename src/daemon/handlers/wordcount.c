/*
 * Built-in "wordcount" handler: GET an http or https URL with libcurl and
 * count the body's words while it streams (constant memory, body never kept).
 * Owns the worker's one CURL handle, made on the first job and reset between
 * jobs so the connection cache gives keep-alive; never made before fork.
 * libcurl itself is loaded by that first job (handlers/libcurl.c).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/handlers/handlers.h"
#include "daemon/handlers/libcurl.h"
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
static const jobq_libcurl *lc; /* libcurl, NULL until the first job */
static CURL *curl; /* this worker's handle, NULL until the first job */

/* State of one transfer, shared with the write callback. */
struct fetch {
    jobq_words words;  /* counts of the final response's body */
    long limit;        /* max_body when the job started */
    long bad_status;   /* non-2xx status that stopped the transfer, or 0 */
    int too_big;       /* stopped because the body exceeds limit */
    int checked;       /* status and Content-Length looked at */
};

int jobq_wordcount_configure(long max_body_bytes, double connect_timeout_s, bool preload, char *why,
                             size_t why_size) {
    max_body = max_body_bytes > 0 ? max_body_bytes : DEFAULT_MAX_BODY;
    connect_timeout = connect_timeout_s > 0 ? connect_timeout_s : DEFAULT_CONNECT_TIMEOUT;
    if (preload && !lc && !(lc = jobq_libcurl_get(why, why_size))) return -1;
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

static int wordcount(jobq_job *job, void *udata) {
    (void)udata;
    const char *url = api->job_arg_string(job, "url");
    char errbuf[CURL_ERROR_SIZE];
    struct fetch f;
    long status = 0;
    CURLcode rc;

    if (!url) return api->job_fail(job, "wordcount: args.url must be a string (an http or https URL)");
    if (!is_http_url(url))
        return api->job_fail(job, "url must be an http or https URL, got '%s'", url);

    char why[300];
    if (!lc && !(lc = jobq_libcurl_get(why, sizeof why))) return api->job_fail(job, "wordcount: %s", why);
    if (curl) {
        lc->easy_reset(curl); /* keeps the connection cache */
    } else if (!(curl = lc->easy_init())) {
        return api->job_fail(job, "wordcount: cannot create a curl handle");
    }
    memset(&f, 0, sizeof f);
    jobq_words_init(&f.words);
    f.limit = max_body;
    errbuf[0] = '\0';
    rc = prepare(url, api->job_time_left(job), &f, errbuf);
    if (rc != CURLE_OK)
        return api->job_fail(job, "wordcount: cannot set up the request: %s", lc->easy_strerror(rc));

    api->log(job, JOBQ_LOG_DEBUG, "wordcount: GET %s", url);
    rc = lc->easy_perform(curl);
    lc->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    /* Nothing may keep pointing at this frame once we return. */
    lc->easy_setopt(curl, CURLOPT_ERRORBUFFER, (char *)NULL);
    lc->easy_setopt(curl, CURLOPT_WRITEDATA, (void *)NULL);

    if (f.bad_status || (rc == CURLE_OK && !is_2xx(status))) {
        const char *final = NULL;
        lc->easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &final);
        long shown = f.bad_status ? f.bad_status : status;
        if (final && strcmp(final, url) != 0)
            return api->job_fail(job, "HTTP %ld from %s (redirected to %s)", shown, url, final);
        return api->job_fail(job, "HTTP %ld from %s", shown, url);
    }
    if (f.too_big)
        return api->job_fail(job, "body of %s is larger than the %ld-byte limit (max_body)", url,
                             f.limit);
    if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
        const char *target = NULL; /* the refused redirect, when it was one */
        lc->easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &target);
        if (target && strcmp(target, url) != 0)
            return api->job_fail(job, "GET %s: redirect to '%s' refused: only http and https are allowed",
                                 url, target);
    }
    if (rc != CURLE_OK)
        return api->job_fail(job, "GET %s failed: %s", url,
                             errbuf[0] ? errbuf : lc->easy_strerror(rc));

    api->log(job, JOBQ_LOG_DEBUG, "wordcount: HTTP %ld, %" PRIu64 " bytes, %" PRIu64 " words",
             status, f.words.bytes, f.words.words);
    char *json = result_json(url, status, &f.words);
    if (!json) return api->job_fail(job, "wordcount: out of memory building the result");
    int ok = api->job_set_result_json(job, json);
    free(json);
    if (ok != JOBQ_OK) return api->job_fail(job, "wordcount: the host refused the result");
    return JOBQ_OK;
}

int jobq_wordcount_init(jobq_plugin *p, const struct jobq_api *host) {
    api = host;
    if (JOBQ_PLUGIN_BEGIN(p, host, "wordcount", JOBQ_VERSION) != JOBQ_OK) return JOBQ_ERR;
    return host->register_handler(p, "wordcount", wordcount, NULL);
}
