/*
 * TLS over hiredis (see tls.h). This build's hiredis has no TLS support:
 * every call says so; a build with TLS replaces these with the hiredis_ssl
 * calls (JOBQ_HAVE_TLS).
 */
#include "protocol/tls.h"

#include <stddef.h>

bool jobq_tls_available(void) { return false; }

void *jobq_tls_new(const jobq_tls_settings *s, jobq_err *err) {
    (void)s;
    jobq_err_set(err, JOBQ_E_INVALID,
                 "this jobq was built without TLS (hiredis %d.%d has none): rediss:// needs a build "
                 "against hiredis >= 1.0 or hiredict (see README, High availability)",
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
