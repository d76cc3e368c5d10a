/*
 * Example plugin "sha256": the SHA-256 of a file under one allowed directory,
 * read in fixed-size chunks (constant memory) through OpenSSL's EVP API; a
 * path that resolves outside the directory (through "..", a symlink or a
 * race) fails the job. It shows the plugin API of jobq 0.2.0: settings from
 * [plugin.sha256], per-worker init/exit hooks, nested args, the JSON string
 * escaper, follow-up jobs and a progress callback with a context pointer.
 */
/* Build out of tree:
 *   cc -shared -fPIC -o sha256.so sha256.c $(pkg-config --cflags --libs jobq) -lcrypto
 *
 * Config (optional):
 *   [plugin.sha256]
 *   root = /srv/files        ; the allowed directory (else $JOBQ_SHA256_ROOT,
 *                            ; else /var/lib/jobq/files)
 *   progress_mib = 16        ; MiB between progress events (default 16)
 *
 * Job:    {"handler": "sha256", "args": {"path": "report.pdf"}}  (relative to
 *         the directory, or absolute)
 * Result: {"path": "report.pdf", "bytes": 1234, "sha256": "<64 hex digits>"}
 *
 * Options: "options": {"uppercase": true, "max_bytes": 1000000,
 *          "expect": "<hex>", "progress_mib": 4}: upper-case digits; fail
 *          files larger than max_bytes; fail when the digest is not expect;
 *          progress every progress_mib MiB. Unknown options fail the job.
 * Fan-out: {"paths": ["a", "b"], "options": {...}} queues one sha256 job per
 *          path (ids "<id>/0", "<id>/1"..., queued uniquely so a retry does
 *          not queue them twice) and returns {"jobs": ["<id>/0", ...]}.
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
#define CHUNK (64 * 1024) /* bytes per read() */
#define MAX_PATHS 1000    /* a fan-out queues at most this many jobs */

static const struct jobq_api *api; /* host table, set by jobq_plugin_init */

/* Settings, read once in jobq_plugin_init from [plugin.sha256]. */
static char config_root[PATH_MAX]; /* "" = $JOBQ_SHA256_ROOT or the default */
static double config_progress_mib = 16;

/* Per-worker state: made by the worker init hook, after fork. */
struct worker_state {
    unsigned char *buf; /* CHUNK bytes */
    unsigned long files;
};
static struct worker_state worker;

static const char *root_dir(void) {
    if (config_root[0]) return config_root;
    const char *root = getenv("JOBQ_SHA256_ROOT");
    return root && *root ? root : DEFAULT_ROOT;
}

static int worker_init(void *udata) {
    struct worker_state *w = udata;
    w->buf = malloc(CHUNK);
    if (!w->buf) return JOBQ_ERR;
    api->log(NULL, JOBQ_LOG_INFO, "sha256: worker ready, hashing files under %s", root_dir());
    return JOBQ_OK;
}

static int worker_exit(void *udata) {
    struct worker_state *w = udata;
    api->log(NULL, JOBQ_LOG_INFO, "sha256: worker done, %lu file(s) hashed", w->files);
    free(w->buf);
    w->buf = NULL;
    return JOBQ_OK;
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

/* What a hash run reports progress to: a (function, context) pair, the
 * way a library takes a callback; it never sees the job. */
struct progress {
    jobq_progress_fn fn;
    void *ctx;
    uint64_t every; /* bytes between reports */
};

/* Hash fd (size bytes long) into md (mdlen set). NULL, or what failed. */
static const char *hash_fd(int fd, off_t size, const struct progress *pr, unsigned char *md,
                           unsigned int *mdlen, uint64_t *bytes) {
    unsigned char local[CHUNK > 4096 ? 4096 : CHUNK];
    unsigned char *buf = worker.buf ? worker.buf : local; /* no hook ran: an older daemon, a test */
    size_t bufsize = worker.buf ? CHUNK : sizeof local;
    uint64_t reported = 0;
    const char *failed = NULL;

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        failed = "cannot set up the OpenSSL digest";
        goto out;
    }
    *bytes = 0;
    for (;;) {
        ssize_t n = read(fd, buf, bufsize);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            failed = strerror(errno);
            goto out;
        }
        if (n == 0) break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            failed = "OpenSSL digest update failed";
            goto out;
        }
        *bytes += (uint64_t)n;
        if (size > 0 && *bytes - reported >= pr->every) {
            pr->fn(pr->ctx, (double)*bytes / (double)size, "hashing");
            reported = *bytes;
        }
    }
    if (EVP_DigestFinal_ex(ctx, md, mdlen) != 1) failed = "OpenSSL digest final failed";
out:
    EVP_MD_CTX_free(ctx);
    return failed;
}

/* The job's options (args.options), checked: unknown names and wrong types
 * fail the job. */
struct options {
    int uppercase;
    int64_t max_bytes; /* -1 = no limit */
    const char *expect; /* borrowed; NULL = none */
    double progress_mib;
};

static int read_options(jobq_job *job, struct options *o) {
    *o = (struct options){0, -1, NULL, config_progress_mib};
    int type = api->job_arg_type(job, "/options");
    if (type == JOBQ_ARG_MISSING || type == JOBQ_ARG_NULL) return JOBQ_OK;
    if (type != JOBQ_ARG_OBJECT) return api->job_fail(job, "sha256: args.options must be an object");
    size_t n = api->job_arg_count(job, "/options");
    for (size_t i = 0; i < n; i++) {
        const char *name = api->job_arg_key(job, "/options", i);
        char pointer[128];
        if (!name || strlen(name) > 64 || strchr(name, '/') || strchr(name, '~'))
            return api->job_fail(job, "sha256: unknown option in args.options");
        snprintf(pointer, sizeof pointer, "/options/%s", name);
        int ok = JOBQ_ERR;
        if (strcmp(name, "uppercase") == 0) ok = api->job_arg_bool(job, pointer, &o->uppercase);
        else if (strcmp(name, "max_bytes") == 0) ok = api->job_arg_int64(job, pointer, &o->max_bytes);
        else if (strcmp(name, "progress_mib") == 0) ok = api->job_arg_double(job, pointer, &o->progress_mib);
        else if (strcmp(name, "expect") == 0) ok = (o->expect = api->job_arg_str(job, pointer, NULL)) ? JOBQ_OK : JOBQ_ERR;
        else return api->job_fail(job, "sha256: unknown option '%s' (uppercase, max_bytes, expect, progress_mib)", name);
        if (ok != JOBQ_OK) {
            const char *given = api->job_arg_dump(job, pointer);
            return api->job_fail(job, "sha256: bad value for option '%s': %s", name, given ? given : "?");
        }
    }
    if (!(o->progress_mib > 0)) return api->job_fail(job, "sha256: option progress_mib must be positive");
    return JOBQ_OK;
}

/* {"paths": [...]}: one follow-up job per path, ids "<id>/<i>". */
static int fan_out(jobq_job *job) {
    size_t n = api->job_arg_count(job, "/paths");
    if (api->job_arg_type(job, "/paths") != JOBQ_ARG_ARRAY || n == 0 || n > MAX_PATHS)
        return api->job_fail(job, "sha256: args.paths must be an array of 1 to %d paths", MAX_PATHS);
    for (size_t i = 0; i < n; i++) { /* all checked before any is queued */
        char pointer[32];
        size_t len;
        snprintf(pointer, sizeof pointer, "/paths/%zu", i);
        const char *path = api->job_arg_str(job, pointer, &len);
        if (!path || !*path || strlen(path) != len || len >= PATH_MAX)
            return api->job_fail(job, "sha256: args.paths[%zu] must be a non-empty path", i);
    }
    const char *options = api->job_arg_dump(job, "/options");
    size_t cap = 64 + 140 * n, used = 0;
    char *result = malloc(cap);
    if (!result) return api->job_fail(job, "sha256: out of memory");
    used += (size_t)snprintf(result, cap, "{\"jobs\":[");
    for (size_t i = 0; i < n; i++) {
        char pointer[32], id[129], quoted_id[800];
        size_t len;
        snprintf(pointer, sizeof pointer, "/paths/%zu", i);
        const char *path = api->job_arg_str(job, pointer, &len);
        snprintf(id, sizeof id, "%.100s/%zu", api->job_id(job), i);
        api->json_escape(id, strlen(id), quoted_id, sizeof quoted_id);
        size_t qlen = api->json_escape(path, len, NULL, 0);
        static const char shape[] = "{\"id\":%s,\"handler\":\"sha256\",\"args\":{\"path\":%s,\"options\":%s}}";
        char *quoted = malloc(qlen + 1), *follow = NULL;
        if (quoted) {
            api->json_escape(path, len, quoted, qlen + 1);
            size_t size = strlen(shape) + strlen(quoted_id) + qlen + (options ? strlen(options) : 4) + 1;
            if ((follow = malloc(size)))
                snprintf(follow, size, shape, quoted_id, quoted, options ? options : "null");
        }
        free(quoted);
        char got[129];
        int rc = follow ? api->job_enqueue(job, NULL, follow, JOBQ_ENQUEUE_UNIQUE, got, sizeof got) : JOBQ_ERR;
        free(follow);
        if (rc != JOBQ_OK) {
            free(result);
            return api->job_fail(job, "sha256: could not queue the job for args.paths[%zu]", i);
        }
        used += (size_t)snprintf(result + used, cap - used, "%s%s", i ? "," : "", quoted_id);
    }
    snprintf(result + used, cap - used, "]}");
    int rc = api->job_set_result_json(job, result);
    free(result);
    return rc == JOBQ_OK ? JOBQ_OK : api->job_fail(job, "sha256: the host refused the result");
}

static int sha256_handler(jobq_job *job, void *udata) {
    (void)udata;
    struct options o;
    if (read_options(job, &o) != JOBQ_OK) return JOBQ_ERR;
    if (api->job_arg_type(job, "/paths") != JOBQ_ARG_MISSING) return fan_out(job);

    size_t len = 0;
    const char *given = api->job_arg_str(job, "/path", &len);
    if (!given || !*given || strlen(given) != len)
        return api->job_fail(job, "sha256: args.path must be a non-empty string");
    if (len >= PATH_MAX) return api->job_fail(job, "sha256: path is longer than %d bytes", PATH_MAX - 1);

    struct stat st;
    int fd = open_file(job, given, &st);
    if (fd < 0) return JOBQ_ERR;
    if (o.max_bytes >= 0 && (int64_t)st.st_size > o.max_bytes) {
        close(fd);
        return api->job_fail(job, "sha256: %s is %lld bytes, more than max_bytes %" PRId64, given,
                             (long long)st.st_size, o.max_bytes);
    }
    struct progress pr = {NULL, NULL, (uint64_t)(o.progress_mib * 1048576)};
    api->job_progress_hook(job, &pr.fn, &pr.ctx);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint64_t bytes = 0;
    const char *failed = hash_fd(fd, st.st_size, &pr, md, &mdlen, &bytes);
    close(fd);
    if (failed) return api->job_fail(job, "sha256: reading %s: %s", given, failed);
    worker.files++;

    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < mdlen; i++) snprintf(hex + 2 * i, 3, o.uppercase ? "%02X" : "%02x", md[i]);
    if (o.expect && strcmp(o.expect, hex) != 0)
        return api->job_fail(job, "sha256: %s has digest %s, not the expected %.80s", given, hex, o.expect);

    size_t qlen = api->json_escape(given, len, NULL, 0);
    char *result = malloc(qlen + sizeof hex + 64);
    if (!result) return api->job_fail(job, "sha256: out of memory");
    api->json_escape(given, len, result + 8, qlen + 1);
    memcpy(result, "{\"path\":", 8);
    snprintf(result + 8 + qlen, sizeof hex + 56, ",\"bytes\":%" PRIu64 ",\"sha256\":\"%s\"}", bytes, hex);
    api->log(job, JOBQ_LOG_DEBUG, "sha256: %s: %" PRIu64 " bytes", given, bytes);
    int rc = api->job_set_result_json(job, result);
    free(result);
    return rc == JOBQ_OK ? JOBQ_OK : api->job_fail(job, "sha256: the host refused the result");
}

int jobq_plugin_init(jobq_plugin *p, const struct jobq_api *host) {
    api = host;
    if (JOBQ_PLUGIN_BEGIN(p, host, "sha256", "2.0") != JOBQ_OK) return JOBQ_ERR;
    /* Members added after the ABI's first release: make sure this jobqd
     * has them (the last one added implies the others). */
    if (!JOBQ_API_HAS(host, job_progress_hook)) {
        host->log(NULL, JOBQ_LOG_ERROR, "sha256: needs jobqd 0.2.0 or later (its plugin API table is too short)");
        return JOBQ_ERR;
    }
    const char *root = host->plugin_config(p, "root");
    if (root && snprintf(config_root, sizeof config_root, "%s", root) >= (int)sizeof config_root) {
        host->log(NULL, JOBQ_LOG_ERROR, "sha256: [plugin.sha256] root is too long");
        return JOBQ_ERR;
    }
    const char *mib = host->plugin_config(p, "progress_mib");
    if (mib) {
        char *end;
        config_progress_mib = strtod(mib, &end);
        if (*end || !(config_progress_mib > 0)) {
            host->log(NULL, JOBQ_LOG_ERROR, "sha256: [plugin.sha256] progress_mib must be a positive number");
            return JOBQ_ERR;
        }
    }
    host->log(NULL, JOBQ_LOG_INFO, "sha256: hashing files under %s", root_dir());
    if (host->register_worker_hooks(p, worker_init, worker_exit, &worker) != JOBQ_OK) return JOBQ_ERR;
    return host->register_handler(p, "sha256", sha256_handler, NULL);
}
