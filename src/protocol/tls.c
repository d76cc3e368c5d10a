/*
 * TLS over hiredis (see tls.h). jobq makes its own OpenSSL context (CA,
 * client certificate, peer verification) and, per connection, an SSL
 * object that also checks the server's name (hiredis sets SNI but does not
 * check the name), then hands it to hiredis with redisInitiateSSL. Built
 * only with a hiredis that has TLS (JOBQ_HAVE_TLS, set by the Makefile when
 * pkg-config finds hiredis_ssl); otherwise every call says what is missing.
 */
#include "protocol/tls.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#ifdef JOBQ_HAVE_TLS

/* hiredict's hiredis shim maps the names but declares nothing itself. */
#if __has_include(<hiredict/hiredict_ssl.h>)
#include <hiredict/hiredict_ssl.h>
#endif
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

bool jobq_tls_available(void) { return true; }

/* The last OpenSSL error, as text. */
static const char *ssl_error(char *buf, size_t size) {
    unsigned long e = ERR_get_error();
    if (!e) return "unknown error";
    ERR_error_string_n(e, buf, size);
    ERR_clear_error();
    return buf;
}

void *jobq_tls_new(const jobq_tls_settings *s, jobq_err *err) {
    char why[256];
    OPENSSL_init_ssl(0, NULL);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        jobq_err_set(err, JOBQ_E_NOMEM, "TLS: cannot create a context: %s", ssl_error(why, sizeof why));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = s->ca_file ? SSL_CTX_load_verify_locations(ctx, s->ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
    if (!ok) {
        jobq_err_set(err, JOBQ_E_CONFIG, "TLS: cannot load the CA file %s: %s", s->ca_file ? s->ca_file : "(system)",
                     ssl_error(why, sizeof why));
        goto fail;
    }
    if ((s->cert_file != NULL) != (s->key_file != NULL)) {
        jobq_err_set(err, JOBQ_E_CONFIG, "TLS: tls_cert_file and tls_key_file go together");
        goto fail;
    }
    if (s->cert_file && SSL_CTX_use_certificate_chain_file(ctx, s->cert_file) != 1) {
        jobq_err_set(err, JOBQ_E_CONFIG, "TLS: cannot load the client certificate %s: %s", s->cert_file,
                     ssl_error(why, sizeof why));
        goto fail;
    }
    if (s->key_file && (SSL_CTX_use_PrivateKey_file(ctx, s->key_file, SSL_FILETYPE_PEM) != 1 ||
                        SSL_CTX_check_private_key(ctx) != 1)) {
        jobq_err_set(err, JOBQ_E_CONFIG, "TLS: cannot use the client key %s: %s", s->key_file,
                     ssl_error(why, sizeof why));
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void jobq_tls_free(void *tls) {
    if (tls) SSL_CTX_free(tls);
}

int jobq_tls_connect(void *tls, redisContext *c, const char *server_name, jobq_err *err) {
    char why[256];
    SSL *ssl = SSL_new(tls);
    if (!ssl) {
        jobq_err_set(err, JOBQ_E_NOMEM, "TLS: %s", ssl_error(why, sizeof why));
        return -1;
    }
    /* The name to check: SNI, and the certificate must carry it (a DNS
     * name, or the IP address for a numeric host). */
    if (server_name) {
        SSL_set_tlsext_host_name(ssl, server_name);
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (!X509_VERIFY_PARAM_set1_ip_asc(param, server_name)) SSL_set1_host(ssl, server_name);
    }
    /* On success the connection owns the SSL object; on failure we do. */
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            jobq_err_set(err, JOBQ_E_IO, "TLS handshake with %s failed: certificate verification: %s",
                         server_name ? server_name : "the server", X509_verify_cert_error_string(v));
        else
            jobq_err_set(err, JOBQ_E_IO, "TLS handshake with %s failed: %s", server_name ? server_name : "the server",
                         c->errstr[0] ? c->errstr : ssl_error(why, sizeof why));
        SSL_free(ssl);
        return -1;
    }
    return 0;
}

#else /* no TLS in this hiredis */

bool jobq_tls_available(void) { return false; }

void *jobq_tls_new(const jobq_tls_settings *s, jobq_err *err) {
    (void)s;
    jobq_err_set(err, JOBQ_E_INVALID,
                 "this jobq was built without TLS (hiredis %d.%d has none): rediss:// needs a build "
                 "against hiredis >= 1.0 or hiredict's hiredis shims (see README, High availability)",
                 HIREDIS_MAJOR, HIREDIS_MINOR);
    return NULL;
}

void jobq_tls_free(void *tls) { (void)tls; }

int jobq_tls_connect(void *tls, redisContext *c, const char *server_name, jobq_err *err) {
    (void)tls;
    (void)c;
    (void)server_name;
    jobq_err_set(err, JOBQ_E_INVALID, "this jobq was built without TLS");
    return -1;
}

#endif
