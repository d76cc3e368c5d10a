/*
 * libcurl, loaded with dlopen the first time a worker needs it (wordcount),
 * so that the supervisor and the workers that never fetch a URL do not map
 * it and the twenty-odd libraries it pulls in (OpenSSL, GnuTLS, Kerberos,
 * LDAP...), which cost each worker about 0.45 MiB of private memory.
 */
#ifndef JOBQ_HANDLERS_LIBCURL_H
#define JOBQ_HANDLERS_LIBCURL_H

#include <stddef.h>

#include <curl/curl.h>

/* The libcurl functions jobq calls, resolved from the loaded library. */
typedef struct jobq_libcurl {
    CURL *(*easy_init)(void);
    void (*easy_reset)(CURL *handle);
    CURLcode (*easy_setopt)(CURL *handle, CURLoption option, ...);
    CURLcode (*easy_perform)(CURL *handle);
    CURLcode (*easy_getinfo)(CURL *handle, CURLINFO info, ...);
    const char *(*easy_strerror)(CURLcode code);
    void (*easy_cleanup)(CURL *handle);
} jobq_libcurl;

/* Load libcurl and run its global init, once per process. Returns the
 * function table (static; valid until the process ends), or NULL with
 * why (of why_size bytes) saying what failed. Not thread-safe: workers are
 * single-threaded. */
const jobq_libcurl *jobq_libcurl_get(char *why, size_t why_size);

/* The table when libcurl is already loaded, else NULL (never loads). */
const jobq_libcurl *jobq_libcurl_loaded(void);

#endif
