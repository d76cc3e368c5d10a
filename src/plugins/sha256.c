/*
 * Example plugin "sha256": the SHA-256 of a file under one allowed directory,
 * read in fixed-size chunks (constant memory) through OpenSSL's EVP API.
 * The directory is $JOBQ_SHA256_ROOT (default /var/lib/jobq/files); a path
 * that resolves outside it (through "..", a symlink or a race) fails the job.
 */
/* Build out of tree:
 *   cc -shared -fPIC -o sha256.so sha256.c $(pkg-config --cflags --libs jobq) -lcrypto
 *
 * Job:    {"handler": "sha256", "args": {"path": "report.pdf"}}  (relative to
 *         the directory, or absolute)
 * Result: {"path": "report.pdf", "bytes": 1234, "sha256": "<64 hex digits>"}
 */
#define _XOPEN_SOURCE 700 /* realpath, O_CLOEXEC, readlink */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jobq/plugin.h>
#include <openssl/evp.h>

#define DEFAULT_ROOT "/var/lib/jobq/files"
#define CHUNK (64 * 1024)             /* bytes per read() */
#define PROGRESS_EVERY (16ull << 20)  /* bytes between progress reports */

static const struct jobq_api *api; /* host table, set by jobq_plugin_init */

static const char *root_dir(void) {
    const char *root = getenv("JOBQ_SHA256_ROOT");
    return root && *root ? root : DEFAULT_ROOT;
}

/* True when the canonical path is the canonical root or below it. */
static int is_within(const char *path, const char *root) {
    size_t n = strlen(root);
    if (n == 1) return root[0] == '/'; /* root "/" holds everything */
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* The file the descriptor really is must be inside root, whatever was
 * renamed or replaced by a symlink since realpath() looked. real is where
 * realpath() found it (the fallback when /proc is not mounted). */
static int fd_within(int fd, const struct stat *st, const char *real, const char *root) {
    char link[64], actual[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, actual, sizeof actual - 1);
    if (n >= 0) {
        actual[n] = '\0';
        return is_within(actual, root);
    }
    struct stat now;
    return stat(real, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

/* Open the job's file for reading once it is known to be a regular file
 * inside the allowed directory. Returns the descriptor (st filled), or -1
 * after recording why with job_fail. */
static int open_file(jobq_job *job, const char *given, struct stat *st) {
    char root[PATH_MAX], full[PATH_MAX], real[PATH_MAX];
    const char *dir = root_dir();

    if (!realpath(dir, root)) {
        api->job_fail(job, "sha256: allowed directory %s: %s", dir, strerror(errno));
        return -1;
    }
    int n = given[0] == '/' ? snprintf(full, sizeof full, "%s", given)
                            : snprintf(full, sizeof full, "%s/%s", root, given);
    if (n < 0 || (size_t)n >= sizeof full) {
        api->job_fail(job, "sha256: path is longer than %d bytes", PATH_MAX - 1);
        return -1;
    }
    if (!realpath(full, real)) {
        api->job_fail(job, "sha256: %s: %s", given,
                      errno == ENOENT ? "no such file" : strerror(errno));
        return -1;
    }
    if (!is_within(real, root)) {
        api->job_fail(job, "sha256: %s is outside the allowed directory %s", given, root);
        return -1;
    }
    /* O_NONBLOCK: a FIFO must not hang the open; it is refused just below. */
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        api->job_fail(job, "sha256: cannot open %s: %s", given, strerror(errno));
        return -1;
    }
    const char *why = NULL;
    if (fstat(fd, st) != 0) why = strerror(errno);
    else if (!S_ISREG(st->st_mode)) why = "not a regular file";
    else if (!fd_within(fd, st, real, root)) why = "moved outside the allowed directory";
    if (why) {
        api->job_fail(job, "sha256: %s: %s", given, why);
        close(fd);
        return -1;
    }
    return fd;
}

/* Hash fd into hex (65 bytes); bytes gets the length read. 0, or -1 after
 * job_fail. */
static int hash_fd(jobq_job *job, const char *given, int fd, off_t size, char *hex,
                   uint64_t *bytes) {
    static unsigned char buf[CHUNK]; /* a worker runs one job at a time */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint64_t reported = 0;
    int rc = -1;

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        api->job_fail(job, "sha256: cannot set up the OpenSSL digest");
        goto out;
    }
    *bytes = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            api->job_fail(job, "sha256: reading %s: %s", given, strerror(errno));
            goto out;
        }
        if (n == 0) break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            api->job_fail(job, "sha256: OpenSSL digest update failed");
            goto out;
        }
        *bytes += (uint64_t)n;
        /* job_progress came with ABI 1, but this is how to use a member
         * that a newer header added: check the daemon's table has it. */
        if (size > 0 && *bytes - reported >= PROGRESS_EVERY && JOBQ_API_HAS(api, job_progress)) {
            api->job_progress(job, (double)*bytes / (double)size, "hashing");
            reported = *bytes;
        }
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
        api->job_fail(job, "sha256: OpenSSL digest final failed");
        goto out;
    }
    for (unsigned int i = 0; i < mdlen; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Write s as a JSON string literal (quotes included) to out, which has room
 * for 6 * strlen(s) + 3 bytes. s came from a JSON string, so it is valid
 * UTF-8: only quote, backslash and control characters need escaping. */
static void json_quote(char *out, const char *s) {
    *out++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c < 0x20) {
            out += sprintf(out, "\\u%04x", c);
        } else {
            *out++ = (char)c;
        }
    }
    *out++ = '"';
    *out = '\0';
}

static int sha256_handler(jobq_job *job, void *udata) {
    (void)udata;
    static char quoted[6 * PATH_MAX + 3], hex[2 * EVP_MAX_MD_SIZE + 1];
    static char result[sizeof quoted + sizeof hex + 64];
    const char *given = api->job_arg_string(job, "path");
    uint64_t bytes = 0;
    struct stat st;

    if (!given || !*given)
        return api->job_fail(job, "sha256: args.path must be a non-empty string");
    if (strlen(given) >= PATH_MAX)
        return api->job_fail(job, "sha256: path is longer than %d bytes", PATH_MAX - 1);

    int fd = open_file(job, given, &st);
    if (fd < 0) return JOBQ_ERR;
    int rc = hash_fd(job, given, fd, st.st_size, hex, &bytes);
    close(fd);
    if (rc != 0) return JOBQ_ERR;

    json_quote(quoted, given);
    snprintf(result, sizeof result, "{\"path\":%s,\"bytes\":%" PRIu64 ",\"sha256\":\"%s\"}",
             quoted, bytes, hex);
    api->log(job, JOBQ_LOG_DEBUG, "sha256: %s: %" PRIu64 " bytes", given, bytes);
    if (api->job_set_result_json(job, result) != JOBQ_OK)
        return api->job_fail(job, "sha256: the host refused the result");
    return JOBQ_OK;
}

int jobq_plugin_init(jobq_plugin *p, const struct jobq_api *host) {
    api = host;
    if (JOBQ_PLUGIN_BEGIN(p, host, "sha256", "1.0") != JOBQ_OK) return JOBQ_ERR;
    host->log(NULL, JOBQ_LOG_INFO, "sha256: hashing files under %s", root_dir());
    return host->register_handler(p, "sha256", sha256_handler, NULL);
}
