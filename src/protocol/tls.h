/*
 * TLS for Redis connections (rediss://...): one client context made from
 * the [redis] tls_* settings, and the handshake of a new connection, with
 * the server's certificate verified against the CA and its name. Built
 * with a hiredis that has TLS (hiredis >= 1.0, or hiredict's hiredis shims);
 * without one, asking for TLS is one clear error.
 */
#ifndef JOBQ_TLS_H
#define JOBQ_TLS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "core/err.h"

typedef struct jobq_tls_settings {
    const char *ca_file;     /* PEM CA bundle; NULL: the system's */
    const char *cert_file;   /* client certificate (PEM), or NULL */
    const char *key_file;    /* its private key, or NULL */
} jobq_tls_settings;

/* True when this build can speak TLS. */
bool jobq_tls_available(void);

/* A new TLS context, or NULL with err (a file that cannot be read, a key
 * that does not match, or a build without TLS). Free with jobq_tls_free. */
void *jobq_tls_new(const jobq_tls_settings *s, jobq_err *err);
void jobq_tls_free(void *tls);

/* Run the TLS handshake on a fresh connection to server_name (checked
 * against the certificate). 0, or -1 with err saying why in one line. */
int jobq_tls_connect(void *tls, redisContext *c, const char *server_name, jobq_err *err);

#endif
