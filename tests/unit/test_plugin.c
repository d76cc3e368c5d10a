/* Unit tests for plugin.c and registry.c: built-ins plus $JOBQ_BUILD/plugins
 * (and a non-ELF notelf.so) loaded from a temp dir; good handlers run through
 * the registry, bad plugins are refused with one log line and leave nothing
 * behind; the sha256 example plugin; registry rules. Run from the repo root. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, realpath, symlink (the Makefile defines it too) */
#endif
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/job.h"
#include "core/log.h"
#include "daemon/plugin.h"
#include "daemon/registry.h"

static char build_plugins[PATH_MAX]; /* absolute $JOBQ_BUILD/plugins */
static char plugdir[PATH_MAX];       /* temp dir handed to the loader */
static char *load_log;               /* what the last load wrote to stderr */
static int nloaded;                  /* what the last load returned */

/* ------------------------------------------------------------ helpers */

/* buf = dir/name; a path that does not fit fails the test. */
static void join(char *buf, size_t size, const char *dir, const char *name) {
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) fail_msg("path too long: %s/%s", dir, name);
}

static int exists(const char *dir, const char *name) {
    char path[PATH_MAX];
    join(path, sizeof path, dir, name);
    return access(path, F_OK) == 0;
}

static void write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s: %s", path, strerror(errno));
    if (len && fwrite(data, 1, len, f) != len) fail_msg("cannot write %s", path);
    fclose(f);
}

/* The build dir's plugins: $JOBQ_BUILD/plugins; else those of the build
 * this binary belongs to ($BUILD/tests/test_plugin) when they exist; else
 * build/plugins. */
static void find_build(const char *argv0) {
    const char *env = getenv("JOBQ_BUILD");
    const char *slash = strrchr(argv0, '/');
    char plugins[PATH_MAX] = "build/plugins", own[PATH_MAX] = "";
    int n;

    if (env && *env) {
        n = snprintf(plugins, sizeof plugins, "%s/plugins", env);
        if (n < 0 || (size_t)n >= sizeof plugins) return;
    } else if (slash) {
        n = snprintf(own, sizeof own, "%.*s/../plugins", (int)(slash - argv0), argv0);
        if (n > 0 && (size_t)n < sizeof own && exists(own, "good.so"))
            memcpy(plugins, own, (size_t)n + 1);
    }
    if (!realpath(plugins, build_plugins)) build_plugins[0] = '\0';
}

/* Load built-ins and plugdir, capturing stderr into load_log. */
static void load(bool test_handlers, const char *dir) {
    jobq_err err;
    jobq_err_clear(&err);
    fflush(stderr);
    int saved = dup(2);
    FILE *cap = tmpfile();
    assert_non_null(cap);
    dup2(fileno(cap), 2);
    nloaded = jobq_plugin_load_all(test_handlers, dir, &err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    long n = ftell(cap);
    free(load_log);
    load_log = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    assert_non_null(load_log);
    rewind(cap);
    if (n > 0 && fread(load_log, 1, (size_t)n, cap) != (size_t)n) fail_msg("cannot read the log");
    fclose(cap);
    if (nloaded < 0) fail_msg("jobq_plugin_load_all: %s\nlog:\n%s", err.msg, load_log);
}

static int count_in(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* A job parsed from {"id": "t1", "handler": handler, "args": args} and run
 * through the registry, the way a worker runs it. */
typedef struct ran {
    struct jobq_job job;
    char *raw; /* the payload; must outlive job */
    int rc;
} ran;

static void run(ran *r, const char *handler, json_t *args /* stolen; may be NULL */) {
    static const jobq_job_defaults defaults = {180, 3, 86400, 1 << 20};
    json_t *doc = json_pack("{s:s, s:s}", "id", "t1", "handler", handler);
    if (args) json_object_set_new(doc, "args", args);
    r->raw = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    jobq_err err;
    if (jobq_job_parse(&r->job, r->raw, strlen(r->raw), "default", &defaults, jobq_now(), &err) != 0)
        fail_msg("cannot parse %s: %s", r->raw, err.msg);
    r->job.started_at = jobq_now();
    r->job.deadline = r->job.started_at + 60;
    const jobq_handler *h = jobq_registry_find(handler);
    if (!h) fail_msg("handler %s is not registered", handler);
    r->rc = h->fn(&r->job, h->udata);
}

static void ran_free(ran *r) {
    jobq_job_fini(&r->job);
    free(r->raw);
}

/* The string member key of the job's result object, or NULL. */
static const char *result_str(const ran *r, const char *key) {
    return json_string_value(json_object_get(r->job.result, key));
}

static void expect_fail(const char *handler, json_t *args, const char *needle) {
    ran r;
    run(&r, handler, args);
    assert_int_equal(r.rc, JOBQ_ERR);
    assert_true(r.job.failed);
    assert_non_null(r.job.error);
    if (!strstr(r.job.error, needle)) fail_msg("'%s' not in the error '%s'", needle, r.job.error);
    ran_free(&r);
}

/* ------------------------------------------------------------ fixtures */

/* Copy from to to with mode. 0 or -1. */
static int copy_file(const char *from, const char *to, mode_t mode) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc == 0 ? chmod(to, mode) : -1;
}

static const char *const test_plugins[] = {"good.so",       "wrong_abi.so", "no_entry.so",
                                           "duplicate.so",  "init_fails.so", "crashy.so"};

static int group_setup(void **state) {
    (void)state;
    if (!build_plugins[0]) {
        fprintf(stdout, "test_plugin: no plugins dir under $JOBQ_BUILD (run `make plugins` "
                        "from the repo root first)\n");
        return -1;
    }
    for (size_t i = 0; i < sizeof test_plugins / sizeof *test_plugins; i++) {
        if (!exists(build_plugins, test_plugins[i])) {
            fprintf(stdout, "test_plugin: %s/%s missing (run `make plugins`)\n", build_plugins,
                    test_plugins[i]);
            return -1;
        }
    }
    snprintf(plugdir, sizeof plugdir, "%s/jobq-test-plugin-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(plugdir)) return -1;

    DIR *d = opendir(build_plugins);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".so") != 0) continue;
        char from[PATH_MAX * 2], to[PATH_MAX * 2];
        join(from, sizeof from, build_plugins, e->d_name);
        join(to, sizeof to, plugdir, e->d_name);
        if (copy_file(from, to, 0755) != 0) return -1;
    }
    if (d) closedir(d);

    /* Files the loader must not trust (it would run their code): a link
     * out of the directory, a file anyone may rewrite, a FIFO (dlopen
     * would block on it). */
    char from[PATH_MAX * 2], to[PATH_MAX * 2];
    join(from, sizeof from, build_plugins, "good.so");
    join(to, sizeof to, plugdir, "outside.so");
    if (symlink(from, to) != 0) return -1;
    join(to, sizeof to, plugdir, "writable.so");
    if (copy_file(from, to, 0755) != 0 || chmod(to, 0666) != 0) return -1;
    join(to, sizeof to, plugdir, "fifo.so");
    if (mkfifo(to, 0600) != 0) return -1;

    char path[PATH_MAX * 2];
    static const char text[] = "this is not an ELF shared object\n";
    join(path, sizeof path, plugdir, "notelf.so");
    write_file(path, text, sizeof text - 1);
    join(path, sizeof path, plugdir, ".hidden.so"); /* skipped: dot file */
    write_file(path, text, sizeof text - 1);
    join(path, sizeof path, plugdir, "README.txt"); /* skipped: not .so */
    write_file(path, text, sizeof text - 1);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    free(load_log);
    load_log = NULL;
    DIR *d = plugdir[0] ? opendir(plugdir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[PATH_MAX * 2];
        join(path, sizeof path, plugdir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    if (plugdir[0]) rmdir(plugdir);
    return 0;
}

static int load_setup(void **state) {
    (void)state;
    load(false, plugdir);
    return 0;
}

static int unload_teardown(void **state) {
    (void)state;
    jobq_plugin_unload_all();
    return jobq_registry_count() == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ loader */

static void test_good_plugin_runs(void **state) {
    (void)state;
    /* good, crashy, and the sha256 example when it was built */
    assert_int_equal(nloaded, 2 + exists(build_plugins, "sha256.so"));
    char line[PATH_MAX * 2];
    snprintf(line, sizeof line, "plugin %s/good.so loaded (good)", plugdir);
    if (!strstr(load_log, line)) fail_msg("no '%s' in the log:\n%s", line, load_log);

    const jobq_handler *h = jobq_registry_find("plugin_hello");
    assert_non_null(h);
    assert_non_null(jobq_registry_find("plugin_crash"));

    ran r;
    run(&r, "plugin_hello", json_pack("{s:s}", "name", "unit \"test\"\n\\ café"));
    assert_int_equal(r.rc, JOBQ_OK);
    assert_false(r.job.failed);
    assert_string_equal(result_str(&r, "hello"), "unit \"test\"\n\\ café");
    ran_free(&r);

    run(&r, "plugin_hello", NULL);
    assert_int_equal(r.rc, JOBQ_OK);
    assert_string_equal(result_str(&r, "hello"), "world");
    assert_int_equal(json_object_size(r.job.result), 1);
    ran_free(&r);
}

static void expect_refused(const char *file, const char *reason) {
    char head[PATH_MAX * 2];
    snprintf(head, sizeof head, "plugin %s/%s refused: ", plugdir, file);
    int n = count_in(load_log, head);
    if (n != 1) fail_msg("%d lines with '%s' (want 1) in the log:\n%s", n, head, load_log);
    const char *line = strstr(load_log, head);
    const char *eol = strchr(line, '\n');
    const char *why = strstr(line, reason);
    if (!why || (eol && why > eol))
        fail_msg("reason '%s' not on the line of %s in the log:\n%s", reason, file, load_log);
}

static void test_bad_plugins_refused(void **state) {
    (void)state;
    char abi[64];
    snprintf(abi, sizeof abi, "built for plugin ABI %d", JOBQ_PLUGIN_ABI + 1);
    expect_refused("notelf.so", "cannot load");
    expect_refused("no_entry.so", "no jobq_plugin_init");
    expect_refused("wrong_abi.so", abi);
    expect_refused("duplicate.so", "'echo' is already registered");
    expect_refused("init_fails.so", "jobq_plugin_init failed");
    expect_refused("outside.so", "outside the plugin directory");
    expect_refused("writable.so", "writable by others");
    expect_refused("fifo.so", "not a regular file");
    assert_int_equal(count_in(load_log, " refused: "), 8);
    assert_int_equal(count_in(load_log, ".hidden.so"), 0);
    assert_int_equal(count_in(load_log, "README.txt"), 0);

    /* nothing of theirs is left behind */
    assert_null(jobq_registry_find("never_there"));
    assert_null(jobq_registry_find("dup_first"));
    assert_null(jobq_registry_find("wrong_abi_hello"));

    /* echo is still the built-in (duplicate's would leave the result null) */
    ran r;
    run(&r, "echo", json_pack("{s:i}", "n", 7));
    assert_int_equal(r.rc, JOBQ_OK);
    assert_true(json_integer_value(json_object_get(r.job.result, "n")) == 7);
    ran_free(&r);

    /* the registry stays sorted whatever the load order */
    for (size_t i = 1; i < jobq_registry_count(); i++)
        assert_true(strcmp(jobq_registry_at(i - 1)->name, jobq_registry_at(i)->name) < 0);
}

/* The handler of crashy really takes its process down with SIGSEGV (in a
 * child, with the default disposition as in a worker); the loader's process
 * is untouched. */
static void test_crash_handler_contained(void **state) {
    (void)state;
    const jobq_handler *h = jobq_registry_find("plugin_crash");
    assert_non_null(h);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
        h->fn(NULL, h->udata);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    assert_non_null(jobq_registry_find("plugin_hello"));
}

static void test_unload_and_reload(void **state) {
    (void)state;
    size_t n = jobq_registry_count();
    assert_true(n > 0);
    jobq_plugin_unload_all();
    assert_int_equal(jobq_registry_count(), 0);
    assert_null(jobq_registry_find("echo"));
    assert_null(jobq_registry_find("plugin_hello"));

    /* a reload (SIGHUP) gets the same set back, and it works */
    int before = nloaded;
    load(false, plugdir);
    assert_int_equal(nloaded, before);
    assert_int_equal(jobq_registry_count(), n);
    ran r;
    run(&r, "plugin_hello", json_pack("{s:s}", "name", "again"));
    assert_int_equal(r.rc, JOBQ_OK);
    assert_string_equal(result_str(&r, "hello"), "again");
    ran_free(&r);
}

static void test_builtins_without_plugin_dir(void **state) {
    (void)state;
    load(false, NULL);
    assert_int_equal(nloaded, 0);
    assert_non_null(jobq_registry_find("echo"));
    assert_non_null(jobq_registry_find("noop"));
    assert_non_null(jobq_registry_find("sleep"));
    assert_non_null(jobq_registry_find("wordcount"));
    assert_null(jobq_registry_find("fail"));
    assert_null(jobq_registry_find("crash"));
    jobq_plugin_unload_all();

    load(true, "/nonexistent/jobq-plugins");
    assert_int_equal(nloaded, 0);
    assert_non_null(jobq_registry_find("fail"));
    assert_non_null(jobq_registry_find("crash"));
    assert_null(jobq_registry_find("plugin_hello"));
    jobq_plugin_unload_all();
    assert_int_equal(jobq_registry_count(), 0);
}

/* ------------------------------------------------------------ sha256 */

static char sha_root[PATH_MAX];

static int sha_setup(void **state) {
    (void)state;
    if (!exists(build_plugins, "sha256.so")) return 0;
    join(sha_root, sizeof sha_root, plugdir, "sha-root");
    char p[PATH_MAX * 2];
    if (mkdir(sha_root, 0700) != 0) return -1;
    join(p, sizeof p, sha_root, "abc.txt");
    write_file(p, "abc", 3);
    join(p, sizeof p, sha_root, "empty");
    write_file(p, "", 0);
    join(p, sizeof p, sha_root, "we\"ird \\ name\n.txt");
    write_file(p, "abc", 3);
    char *million = malloc(1000000); /* spans many reads */
    if (!million) return -1;
    memset(million, 'a', 1000000);
    join(p, sizeof p, sha_root, "million-a");
    write_file(p, million, 1000000);
    free(million);
    join(p, sizeof p, sha_root, "sub");
    if (mkdir(p, 0700) != 0) return -1;
    join(p, sizeof p, sha_root, "fifo");
    if (mkfifo(p, 0600) != 0) return -1;
    join(p, sizeof p, sha_root, "inside-link"); /* symlink that stays inside: fine */
    if (symlink("abc.txt", p) != 0) return -1;
    join(p, sizeof p, plugdir, "outside.txt");
    write_file(p, "secret", 6);
    join(p, sizeof p, sha_root, "escape"); /* symlink that leads outside */
    if (symlink("../outside.txt", p) != 0) return -1;
    setenv("JOBQ_SHA256_ROOT", sha_root, 1);
    load(false, plugdir);
    return 0;
}

static int sha_teardown(void **state) {
    (void)state;
    jobq_plugin_unload_all();
    unsetenv("JOBQ_SHA256_ROOT");
    if (!sha_root[0]) return 0;
    static const char *const names[] = {"abc.txt", "empty", "we\"ird \\ name\n.txt", "million-a",
                                        "sub", "fifo", "inside-link", "escape"};
    char p[PATH_MAX * 2];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        join(p, sizeof p, sha_root, names[i]);
        if (remove(p) != 0 && errno != ENOENT) return -1;
    }
    join(p, sizeof p, plugdir, "outside.txt");
    unlink(p);
    return rmdir(sha_root);
}

static void expect_hash(const char *path, const char *shown, long long bytes, const char *hex) {
    ran r;
    run(&r, "sha256", json_pack("{s:s}", "path", path));
    if (r.rc != JOBQ_OK) fail_msg("sha256 of %s failed: %s", path, r.job.error);
    assert_string_equal(result_str(&r, "path"), shown);
    assert_true(json_integer_value(json_object_get(r.job.result, "bytes")) == bytes);
    assert_string_equal(result_str(&r, "sha256"), hex);
    assert_int_equal(json_object_size(r.job.result), 3);
    ran_free(&r);
}

static void test_sha256(void **state) {
    (void)state;
    if (!exists(build_plugins, "sha256.so")) skip();
    static const char abc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    char p[PATH_MAX * 2];

    expect_hash("abc.txt", "abc.txt", 3, abc);
    join(p, sizeof p, sha_root, "abc.txt");
    expect_hash(p, p, 3, abc); /* absolute */
    expect_hash("./sub/../abc.txt", "./sub/../abc.txt", 3, abc);
    expect_hash("inside-link", "inside-link", 3, abc);
    expect_hash("we\"ird \\ name\n.txt", "we\"ird \\ name\n.txt", 3, abc);
    expect_hash("empty", "empty", 0,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_hash("million-a", "million-a", 1000000,
                "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    expect_fail("sha256", json_pack("{s:s}", "path", "../outside.txt"),
                "outside the allowed directory");
    expect_fail("sha256", json_pack("{s:s}", "path", "escape"), "outside the allowed directory");
    join(p, sizeof p, plugdir, "outside.txt");
    expect_fail("sha256", json_pack("{s:s}", "path", p), "outside the allowed directory");
    expect_fail("sha256", json_pack("{s:s}", "path", "/etc/passwd"), "outside the allowed directory");
    expect_fail("sha256", json_pack("{s:s}", "path", "missing.txt"), "missing.txt: no such file");
    expect_fail("sha256", json_pack("{s:s}", "path", "sub"), "sub: not a regular file");
    expect_fail("sha256", json_pack("{s:s}", "path", "fifo"), "fifo: not a regular file");
    expect_fail("sha256", json_pack("{s:s}", "path", ""), "args.path must be a non-empty string");
    expect_fail("sha256", json_pack("{s:i}", "path", 3), "args.path must be a non-empty string");
    expect_fail("sha256", NULL, "args.path must be a non-empty string");

    setenv("JOBQ_SHA256_ROOT", "/nonexistent/jobq-files", 1);
    expect_fail("sha256", json_pack("{s:s}", "path", "abc.txt"),
                "allowed directory /nonexistent/jobq-files: No such file or directory");
    setenv("JOBQ_SHA256_ROOT", sha_root, 1);
}

/* ------------------------------------------------------------ registry */

static int fake_handler(jobq_job *job, void *udata) {
    (void)job;
    (void)udata;
    return JOBQ_OK;
}

static void expect_add_fails(const char *name, jobq_handler_fn fn, const char *needle) {
    jobq_err err;
    jobq_err_clear(&err);
    assert_int_equal(jobq_registry_add(name, fn, NULL, "x", &err), -1);
    if (!strstr(err.msg, needle)) fail_msg("'%s' not in '%s'", needle, err.msg);
}

static void test_registry_rules(void **state) {
    (void)state;
    static int owner_a, owner_b;
    jobq_err err;
    jobq_registry_clear();

    const char *names[] = {"zeta", "alpha", "mid", "Beta", "a.b-c_9"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(jobq_registry_add(names[i], fake_handler, (void *)names[i],
                                           i % 2 ? &owner_a : &owner_b, &err),
                         0);
    assert_int_equal(jobq_registry_count(), 5);
    const char *sorted[] = {"Beta", "a.b-c_9", "alpha", "mid", "zeta"}; /* strcmp order */
    for (size_t i = 0; i < 5; i++) assert_string_equal(jobq_registry_at(i)->name, sorted[i]);
    assert_null(jobq_registry_at(5));
    for (size_t i = 0; i < 5; i++) {
        const jobq_handler *h = jobq_registry_find(names[i]);
        assert_non_null(h);
        assert_ptr_equal(h->udata, names[i]);
        assert_ptr_equal(h->fn, fake_handler);
    }
    assert_null(jobq_registry_find("beta"));  /* case-sensitive */
    assert_null(jobq_registry_find("alph"));
    assert_null(jobq_registry_find(""));

    expect_add_fails("mid", fake_handler, "'mid' is already registered");
    expect_add_fails("", fake_handler, "invalid handler name");
    expect_add_fails(NULL, fake_handler, "invalid handler name");
    expect_add_fails("has space", fake_handler, "invalid handler name");
    expect_add_fails("a/b", fake_handler, "invalid handler name");
    expect_add_fails("caf\xc3\xa9", fake_handler, "invalid handler name");
    expect_add_fails("new", NULL, "has no function");
    char longest[JOBQ_HANDLER_NAME_MAX + 2];
    memset(longest, 'x', sizeof longest);
    longest[JOBQ_HANDLER_NAME_MAX + 1] = '\0';
    expect_add_fails(longest, fake_handler, "invalid handler name"); /* 65 */
    longest[JOBQ_HANDLER_NAME_MAX] = '\0';
    assert_int_equal(jobq_registry_add(longest, fake_handler, NULL, &owner_a, &err), 0); /* 64 */
    assert_int_equal(jobq_registry_count(), 6);

    /* removing an owner takes all of its names and only those */
    jobq_registry_remove_owner(&owner_a); /* alpha, Beta, and the 64-x name */
    assert_int_equal(jobq_registry_count(), 3);
    assert_null(jobq_registry_find("alpha"));
    assert_null(jobq_registry_find("Beta"));
    assert_non_null(jobq_registry_find("zeta"));
    assert_non_null(jobq_registry_find("mid"));
    assert_non_null(jobq_registry_find("a.b-c_9"));
    assert_string_equal(jobq_registry_at(0)->name, "a.b-c_9");
    assert_string_equal(jobq_registry_at(2)->name, "zeta");
    /* a removed name can be registered again */
    assert_int_equal(jobq_registry_add("alpha", fake_handler, NULL, &owner_b, &err), 0);
    assert_string_equal(jobq_registry_at(1)->name, "alpha");

    jobq_registry_clear();
    assert_int_equal(jobq_registry_count(), 0);
    assert_null(jobq_registry_find("zeta"));
}

/* Many names in reverse order: the table grows and stays sorted. */
static void test_registry_grows_sorted(void **state) {
    (void)state;
    jobq_err err;
    char name[16];
    jobq_registry_clear();
    for (int i = 199; i >= 0; i--) {
        snprintf(name, sizeof name, "h%03d", i);
        assert_int_equal(jobq_registry_add(name, fake_handler, NULL, NULL, &err), 0);
    }
    assert_int_equal(jobq_registry_count(), 200);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "h%03d", i);
        assert_string_equal(jobq_registry_at((size_t)i)->name, name);
        assert_ptr_equal(jobq_registry_find(name), jobq_registry_at((size_t)i));
    }
    jobq_registry_clear();
}

int main(int argc, char **argv) {
    (void)argc;
    find_build(argv[0]);
    /* registration and log lines as the daemon's supervisor would write */
    jobq_log_set_role("supervisor");
    jobq_log_set_level(JOBQ_LOG_INFO);

    /* One group: tests/tools/run-unit.sh reads the last PASSED/FAILED line. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_rules),
        cmocka_unit_test(test_registry_grows_sorted),
        cmocka_unit_test_setup_teardown(test_good_plugin_runs, load_setup, unload_teardown),
        cmocka_unit_test_setup_teardown(test_bad_plugins_refused, load_setup, unload_teardown),
        cmocka_unit_test_setup_teardown(test_crash_handler_contained, load_setup, unload_teardown),
        cmocka_unit_test_setup_teardown(test_unload_and_reload, load_setup, unload_teardown),
        cmocka_unit_test_teardown(test_builtins_without_plugin_dir, unload_teardown),
        cmocka_unit_test_setup_teardown(test_sha256, sha_setup, sha_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
