/*
 * The Redis password of jobqd, read from a file: a systemd credential
 * ($CREDENTIALS_DIRECTORY/redis-password) or [redis] password_file. Only
 * the first line counts, the file must be private to its owner, and the
 * read buffer is wiped after use (see config.h, jobq_config_load_secrets).
 */
#include "core/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PASSWORD 4096 /* bytes of a password read from a file */

/* Read the first line of the password file open at fd (path for messages)
 * into a new string in *out. A credential from systemd may carry group
 * permission bits (its ACL for the service user); a password_file must be
 * private to its owner (mode 600 or 400). 0, or -1 with err. */
static int read_password(int fd, const char *path, bool credential, char **out, jobq_err *err) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        jobq_err_set(err, JOBQ_E_IO, "cannot read password file '%s': %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        jobq_err_set(err, JOBQ_E_CONFIG, "password file '%s' is not a regular file", path);
        return -1;
    }
    mode_t forbidden = credential ? (S_IROTH | S_IWOTH) : (S_IRWXG | S_IRWXO);
    if (st.st_mode & forbidden) {
        mode_t bad = st.st_mode & forbidden;
        jobq_err_set(err, JOBQ_E_CONFIG, "password file '%s' is %s by %s (chmod 600)", path,
                     bad & (S_IRGRP | S_IROTH) ? "readable" : "writable",
                     bad & S_IRWXO ? "others" : "its group");
        return -1;
    }
    char buf[MAX_PASSWORD + 2]; /* the longest password, then "\r\n" */
    size_t n = 0;
    int rc = -1;
    while (n < sizeof buf) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            jobq_err_set(err, JOBQ_E_IO, "cannot read password file '%s': %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (memchr(buf + n - (size_t)r, '\n', (size_t)r)) break;
    }
    char *nl = memchr(buf, '\n', n);
    size_t len = nl ? (size_t)(nl - buf) : n;
    if (!nl && n == sizeof buf) len = sizeof buf; /* no end of line in sight */
    if (len > 0 && buf[len - 1] == '\r') len--;
    if (len == 0) {
        jobq_err_set(err, JOBQ_E_CONFIG, "password file '%s' is empty (the password is its first line)", path);
    } else if (len > MAX_PASSWORD) {
        jobq_err_set(err, JOBQ_E_CONFIG, "password file '%s': the password is longer than %d bytes", path,
                     MAX_PASSWORD);
    } else if (memchr(buf, '\0', len)) {
        jobq_err_set(err, JOBQ_E_CONFIG, "password file '%s' holds a NUL byte", path);
    } else if (!(*out = strndup(buf, len))) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    } else {
        rc = 0;
    }
out:
    explicit_bzero(buf, sizeof buf);
    return rc;
}

int jobq_config_load_secrets(jobq_config *cfg, jobq_err *err) {
    char cred[PATH_MAX];
    const char *path = NULL;
    int fd = -1;
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir && *dir) {
        int len = snprintf(cred, sizeof cred, "%s/%s", dir, JOBQ_CREDENTIAL_REDIS_PASSWORD);
        if (len < 0 || (size_t)len >= sizeof cred) {
            jobq_err_set(err, JOBQ_E_CONFIG, "CREDENTIALS_DIRECTORY is too long");
            return -1;
        }
        fd = open(cred, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd >= 0) {
            path = cred;
        } else if (errno != ENOENT) {
            jobq_err_set(err, JOBQ_E_IO, "cannot open password file '%s': %s", cred, strerror(errno));
            return -1;
        }
    }
    if (!path && cfg->redis_password_file && *cfg->redis_password_file) {
        path = cfg->redis_password_file;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            jobq_err_set(err, JOBQ_E_IO, "cannot open password file '%s': %s", path, strerror(errno));
            return -1;
        }
    }
    if (!path) {
        jobq_config_wipe_secret(&cfg->redis_password);
        return 0;
    }
    char *password = NULL;
    int rc = read_password(fd, path, path == cred, &password, err);
    close(fd);
    if (rc != 0) return -1;
    jobq_config_wipe_secret(&cfg->redis_password);
    cfg->redis_password = password;
    return 0;
}
