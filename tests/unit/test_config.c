/*
 * Unit tests of the config loader (src/config.c): defaults, a file setting
 * every key, comments, each kind of bad line with its exact "file:line:"
 * prefix, print-then-reload, the queue list, [queue.NAME] sections and their
 * inheritance, the Redis password file (and CREDENTIALS_DIRECTORY), and the
 * sample config/jobq.conf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/config_sections.h"
#include "jobq/plugin.h"

#define GIB (1024L * 1024 * 1024)
#define MIB (1024L * 1024)

/* Write text to a new file under /tmp; path gets its name. */
static void write_tmp(const char *text, char path[64]) {
    strcpy(path, "/tmp/jobq-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static int load_text(const char *text, jobq_config *cfg, jobq_err *err, char path[64]) {
    write_tmp(text, path);
    jobq_err_clear(err);
    int rc = jobq_config_load(cfg, path, err);
    unlink(path);
    return rc;
}

static void load_ok(const char *text, jobq_config *cfg) {
    char path[64];
    jobq_err err;
    int rc = load_text(text, cfg, &err, path);
    if (rc != 0) print_error("load failed: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void assert_released(const jobq_config *cfg) {
    assert_null(cfg->redis_url);
    assert_null(cfg->prefix);
    assert_null(cfg->plugins_dir);
    assert_null(cfg->redis_password_file);
    assert_null(cfg->redis_password);
    assert_int_equal(cfg->nqueues, 0);
    assert_null(cfg->queues[0]);
    assert_int_equal(cfg->nqueue_sections, 0);
    assert_string_equal(cfg->queue_sections[0].values.name, "");
}

/* Loading text must fail with exactly "<path>:<line>: <what>". */
static void expect_error(const char *text, int line, const char *what) {
    char path[64], want[512];
    jobq_config cfg;
    jobq_err err;
    int rc = load_text(text, &cfg, &err, path);
    snprintf(want, sizeof want, "%s:%d: %s", path, line, what);
    if (rc == 0 || strcmp(err.msg, want) != 0) print_error("got  '%s'\nwant '%s'\n", err.msg, want);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, JOBQ_E_CONFIG);
    assert_string_equal(err.msg, want);
    assert_released(&cfg);
}

/* Loading text must fail at line with a message naming key and holding frag. */
static void expect_bad_value(const char *text, int line, const char *section, const char *key,
                             const char *frag) {
    char path[64], prefix[512];
    jobq_config cfg;
    jobq_err err;
    int rc = load_text(text, &cfg, &err, path);
    snprintf(prefix, sizeof prefix, "%s:%d: bad value for '%s' in [%s]: ", path, line, key, section);
    if (rc == 0 || strncmp(err.msg, prefix, strlen(prefix)) != 0 || !strstr(err.msg, frag))
        print_error("got  '%s'\nwant '%s...%s...'\n", err.msg, prefix, frag);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, JOBQ_E_CONFIG);
    assert_memory_equal(err.msg, prefix, strlen(prefix));
    assert_non_null(strstr(err.msg, frag));
    assert_released(&cfg);
}

static void assert_defaults(const jobq_config *c) {
    assert_int_equal(c->workers, 4);
    assert_int_equal(c->nqueues, 1);
    assert_string_equal(c->queues[0], "default");
    assert_null(c->queues[1]);
    assert_true(c->shutdown_timeout == 30);
    assert_int_equal(c->log_level, JOBQ_LOG_INFO);
    assert_false(c->test_handlers);
    assert_true(c->heartbeat_interval == 5);
    assert_true(c->heartbeat_ttl == 15);
    assert_true(c->kill_grace == 5);
    assert_int_equal(c->max_jobs_per_worker, 0);
    assert_int_equal(c->max_worker_rss, 0);
    assert_int_equal(c->batch_size, 64);
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(c->prefix, "jobq");
    assert_string_equal(c->redis_password_file, "");
    assert_null(c->redis_password);
    assert_int_equal(c->nqueue_sections, 0);
    assert_true(c->job_timeout == 180);
    assert_int_equal(c->max_attempts, 3);
    assert_int_equal(c->result_ttl, 86400);
    assert_int_equal(c->max_payload, 1048576);
    assert_true(c->retry_backoff_base == 1);
    assert_true(c->retry_backoff_max == 300);
    assert_int_equal(c->poison_limit, 3);
    assert_string_equal(c->plugins_dir, JOBQ_PLUGIN_DIR);
    assert_int_equal(c->wordcount_max_body, 64 * MIB);
    assert_true(c->wordcount_connect_timeout == 10);
    assert_false(c->wordcount_preload);
    assert_false(c->wordcount_deny_private);
}

/* Every member equal; the url is compared with want_url. */
static void assert_same(const jobq_config *a, const jobq_config *b, const char *want_url) {
    assert_int_equal(a->workers, b->workers);
    assert_int_equal(a->nqueues, b->nqueues);
    for (int i = 0; i < a->nqueues; i++) assert_string_equal(a->queues[i], b->queues[i]);
    assert_true(a->shutdown_timeout == b->shutdown_timeout);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->test_handlers, b->test_handlers);
    assert_true(a->heartbeat_interval == b->heartbeat_interval);
    assert_true(a->heartbeat_ttl == b->heartbeat_ttl);
    assert_true(a->kill_grace == b->kill_grace);
    assert_int_equal(a->max_jobs_per_worker, b->max_jobs_per_worker);
    assert_int_equal(a->max_worker_rss, b->max_worker_rss);
    assert_int_equal(a->batch_size, b->batch_size);
    assert_string_equal(b->redis_url, want_url);
    assert_string_equal(a->prefix, b->prefix);
    assert_true(a->job_timeout == b->job_timeout);
    assert_int_equal(a->max_attempts, b->max_attempts);
    assert_int_equal(a->result_ttl, b->result_ttl);
    assert_int_equal(a->max_payload, b->max_payload);
    assert_true(a->retry_backoff_base == b->retry_backoff_base);
    assert_true(a->retry_backoff_max == b->retry_backoff_max);
    assert_int_equal(a->poison_limit, b->poison_limit);
    assert_string_equal(a->plugins_dir, b->plugins_dir);
    assert_int_equal(a->wordcount_max_body, b->wordcount_max_body);
    assert_true(a->wordcount_connect_timeout == b->wordcount_connect_timeout);
    assert_int_equal(a->wordcount_preload, b->wordcount_preload);
    assert_int_equal(a->wordcount_deny_private, b->wordcount_deny_private);
    assert_string_equal(a->redis_password_file, b->redis_password_file);
    assert_int_equal(a->nqueue_sections, b->nqueue_sections);
    for (int i = 0; i < a->nqueue_sections; i++) {
        const jobq_config_queue_section *x = &a->queue_sections[i], *y = &b->queue_sections[i];
        assert_string_equal(x->values.name, y->values.name);
        assert_int_equal(x->set, y->set);
        jobq_queue_settings ex, ey;
        jobq_config_queue_settings(a, x->values.name, &ex);
        jobq_config_queue_settings(b, y->values.name, &ey);
        assert_true(ex.timeout == ey.timeout);
        assert_int_equal(ex.max_attempts, ey.max_attempts);
        assert_int_equal(ex.result_ttl, ey.result_ttl);
        assert_int_equal(ex.rlimit_as, ey.rlimit_as);
        assert_int_equal(ex.rlimit_cpu, ey.rlimit_cpu);
        assert_int_equal(ex.rlimit_nofile, ey.rlimit_nofile);
    }
}

static const char every_key[] =
    "[daemon]\n"
    "workers = 12\n"
    "queues = high, default ,low\n"
    "shutdown_timeout = 2.5\n"
    "log_level = debug\n"
    "test_handlers = yes\n"
    "heartbeat_interval = 0.25\n"
    "heartbeat_ttl = 3\n"
    "kill_grace = 0\n"
    "max_jobs_per_worker = 1000000000\n"
    "max_worker_rss = 512M\n"
    "batch_size = 1000\n"
    "[redis]\n"
    "url = redis://app:s3cret@redis.internal:6380/4\n"
    "prefix = myapp:jobs-v1.2_x\n"
    "password_file = /run/secrets/redis password\n"
    "[jobs]\n"
    "timeout = 0.001\n"
    "max_attempts = 1000\n"
    "result_ttl = 31536000\n"
    "max_payload = 512k\n"
    "retry_backoff_base = 0.5\n"
    "retry_backoff_max = 604800\n"
    "poison_limit = 1\n"
    "[plugins]\n"
    "dir = /opt/jobq plugins/so\n"
    "[wordcount]\n"
    "max_body = 16G\n"
    "connect_timeout = 0.1\n"
    "deny_private = yes\n";

static void test_defaults(void **state) {
    (void)state;
    jobq_config cfg;
    jobq_config_defaults(&cfg);
    assert_defaults(&cfg);
    jobq_config_fini(&cfg);
    assert_released(&cfg);
    jobq_config_fini(&cfg); /* twice is fine */
}

static void test_empty_file(void **state) {
    (void)state;
    jobq_config cfg;
    load_ok("", &cfg);
    assert_defaults(&cfg);
    jobq_config_fini(&cfg);
    load_ok("; nothing but comments\n# and blank lines\n\n   \n[daemon]\n[jobs]\n", &cfg);
    assert_defaults(&cfg);
    jobq_config_fini(&cfg);
}

static void test_every_key(void **state) {
    (void)state;
    jobq_config c;
    load_ok(every_key, &c);
    assert_int_equal(c.workers, 12);
    assert_int_equal(c.nqueues, 3);
    assert_string_equal(c.queues[0], "high");
    assert_string_equal(c.queues[1], "default");
    assert_string_equal(c.queues[2], "low");
    assert_true(c.shutdown_timeout == 2.5);
    assert_int_equal(c.log_level, JOBQ_LOG_DEBUG);
    assert_true(c.test_handlers);
    assert_true(c.heartbeat_interval == 0.25);
    assert_true(c.heartbeat_ttl == 3);
    assert_true(c.kill_grace == 0);
    assert_int_equal(c.max_jobs_per_worker, 1000000000);
    assert_int_equal(c.max_worker_rss, 512 * MIB);
    assert_int_equal(c.batch_size, 1000);
    assert_string_equal(c.redis_url, "redis://app:s3cret@redis.internal:6380/4");
    assert_string_equal(c.prefix, "myapp:jobs-v1.2_x");
    assert_string_equal(c.redis_password_file, "/run/secrets/redis password");
    assert_null(c.redis_password); /* loading never reads the secret */
    assert_true(c.job_timeout == 0.001);
    assert_int_equal(c.max_attempts, 1000);
    assert_int_equal(c.result_ttl, 31536000);
    assert_int_equal(c.max_payload, 512 * 1024);
    assert_true(c.retry_backoff_base == 0.5);
    assert_true(c.retry_backoff_max == 604800);
    assert_int_equal(c.poison_limit, 1);
    assert_string_equal(c.plugins_dir, "/opt/jobq plugins/so");
    assert_int_equal(c.wordcount_max_body, 16 * GIB);
    assert_true(c.wordcount_connect_timeout == 0.1);
    assert_true(c.wordcount_deny_private);
    jobq_config_fini(&c);
}

static void test_value_forms(void **state) {
    (void)state;
    jobq_config c;
    load_ok("[daemon]\ntest_handlers = TRUE\nlog_level = Warning\nmax_worker_rss = 3g\n"
            "[jobs]\nmax_payload = 64\ntimeout = 1e3\nretry_backoff_base = .5\n"
            "[wordcount]\nmax_body = 1\n",
            &c);
    assert_true(c.test_handlers);
    assert_int_equal(c.log_level, JOBQ_LOG_WARN);
    assert_int_equal(c.max_worker_rss, 3 * GIB);
    assert_int_equal(c.max_payload, 64);
    assert_true(c.job_timeout == 1000);
    assert_true(c.retry_backoff_base == 0.5);
    assert_int_equal(c.wordcount_max_body, 1);
    jobq_config_fini(&c);

    const char *bools[][2] = {{"yes", "1"}, {"on", "1"}, {"1", "1"}, {"true", "1"},
                              {"no", "0"},  {"off", "0"}, {"0", "0"}, {"FALSE", "0"}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "[daemon]\ntest_handlers = %s\n", bools[i][0]);
        load_ok(text, &c);
        assert_int_equal(c.test_handlers, bools[i][1][0] == '1');
        jobq_config_fini(&c);
    }
    const char *levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        char text[64];
        snprintf(text, sizeof text, "[daemon]\nlog_level = %s\n", levels[i]);
        load_ok(text, &c);
        assert_int_equal(c.log_level, i);
        jobq_config_fini(&c);
    }
    load_ok("[redis]\nurl = unix:///run/redis/redis.sock?db=2\n", &c);
    assert_string_equal(c.redis_url, "unix:///run/redis/redis.sock?db=2");
    jobq_config_fini(&c);
}

static void test_comments(void **state) {
    (void)state;
    jobq_config c;
    load_ok("\xEF\xBB\xBF; header comment\n"
            "# another\n"
            "[daemon] ; section comment\n"
            "workers = 7 ; inline semicolon\n"
            "  queues = a,b   # inline hash\n"
            "\tbatch_size=9\n"
            "batch_size=10\n"
            "log_level = debug\t; tab before the comment\n"
            "test_handlers = yes   \r\n"
            "[plugins]   # hash after a section\n"
            "dir = /opt/x;y#z ; only the last part is a comment\n"
            "[redis]\n"
            "prefix = p ; c ; d\n"
            "   ; indented comment\n"
            "url = redis://:pw@h:1/2 # comment\n",
            &c);
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.nqueues, 2);
    assert_string_equal(c.queues[0], "a");
    assert_string_equal(c.queues[1], "b");
    assert_int_equal(c.batch_size, 10);
    assert_int_equal(c.log_level, JOBQ_LOG_DEBUG);
    assert_true(c.test_handlers);
    assert_string_equal(c.plugins_dir, "/opt/x;y#z");
    assert_string_equal(c.prefix, "p");
    assert_string_equal(c.redis_url, "redis://:pw@h:1/2");
    jobq_config_fini(&c);

    /* ';' or '#' glued to a value is part of it: here it makes batch_size bad */
    expect_bad_value("[daemon]\nbatch_size = 9#x\n", 2, "daemon", "batch_size", "got '9#x'");
    /* a value that is only a comment is empty */
    expect_bad_value("[daemon]\nworkers = ; four\n", 2, "daemon", "workers", "got ''");
    /* ...but not at its start: printed back as "key = #x" it would read as empty */
    expect_error("[plugin.p]\nroot =#/srv\n", 2, "the value of 'root' starts with '#', which after a space starts a comment");
    expect_error("[plugins]\ndir =;x\n", 2, "the value of 'dir' starts with ';', which after a space starts a comment");
}

static void test_later_lines_win(void **state) {
    (void)state;
    jobq_config c;
    load_ok("[daemon]\nworkers = 2\nqueues = a\n[jobs]\ntimeout = 5\n[daemon]\nworkers = 3\nqueues = b,c\n", &c);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.nqueues, 2);
    assert_string_equal(c.queues[0], "b");
    assert_string_equal(c.queues[1], "c");
    assert_true(c.job_timeout == 5);
    jobq_config_fini(&c);
}

static void test_unknown_section_and_key(void **state) {
    (void)state;
    expect_error("[foo]\n", 1, "unknown section [foo]");
    expect_error("[daemon]\nworkers = 2\n\n[Daemon]\nworkers = 3\n", 4, "unknown section [Daemon]");
    expect_error("[daemon]\n[foo] ; empty but still wrong\n[jobs]\n", 2, "unknown section [foo]");
    expect_error("[daemon]\nworkers = 2\nwrokers = 3\n", 3, "unknown key 'wrokers' in section [daemon]");
    expect_error("[redis]\nworkers = 3\n", 2, "unknown key 'workers' in section [redis]");
    expect_error("workers = 3\n", 1,
                 "'workers' is outside any section (put it under [daemon], [redis], [jobs], [plugins] or "
                 "[wordcount])");
    expect_error("[daemon] workers = 3\n", 1, "unexpected text after [daemon]");
}

static void test_bad_numbers(void **state) {
    (void)state;
    expect_error("; c\n[daemon]\n\n\n\n\nworkers = abc\n", 7,
                 "bad value for 'workers' in [daemon]: expected an integer from 1 to 1024, got 'abc'");
    expect_bad_value("[daemon]\nworkers = 0\n", 2, "daemon", "workers", "from 1 to 1024, got '0'");
    expect_bad_value("[daemon]\nworkers = 1025\n", 2, "daemon", "workers", "got '1025'");
    expect_bad_value("[daemon]\nworkers = 4.5\n", 2, "daemon", "workers", "got '4.5'");
    expect_bad_value("[daemon]\nworkers = 0x10\n", 2, "daemon", "workers", "got '0x10'");
    expect_bad_value("[daemon]\nworkers = 99999999999999999999999\n", 2, "daemon", "workers", "integer");
    expect_bad_value("[daemon]\nworkers =\n", 2, "daemon", "workers", "got ''");
    expect_bad_value("[daemon]\nbatch_size = 1001\n", 2, "daemon", "batch_size", "from 1 to 1000");
    expect_bad_value("[daemon]\nmax_jobs_per_worker = -1\n", 2, "daemon", "max_jobs_per_worker",
                     "from 0 to 1000000000, got '-1'");
    expect_bad_value("[jobs]\nmax_attempts = 0\n", 2, "jobs", "max_attempts", "from 1 to 1000");
    expect_bad_value("[jobs]\nresult_ttl = 31536001\n", 2, "jobs", "result_ttl", "from 1 to 31536000");
    expect_bad_value("[jobs]\npoison_limit = 1001\n", 2, "jobs", "poison_limit", "got '1001'");
    /* doubles */
    expect_bad_value("[jobs]\ntimeout = 0\n", 2, "jobs", "timeout", "expected a number from 0.001 to 604800, got '0'");
    expect_bad_value("[jobs]\ntimeout = 1.5.2\n", 2, "jobs", "timeout", "got '1.5.2'");
    expect_bad_value("[jobs]\ntimeout = nan\n", 2, "jobs", "timeout", "got 'nan'");
    expect_bad_value("[jobs]\ntimeout = inf\n", 2, "jobs", "timeout", "got 'inf'");
    expect_bad_value("[jobs]\ntimeout = 0x10\n", 2, "jobs", "timeout", "got '0x10'");
    expect_bad_value("[jobs]\ntimeout = 10s\n", 2, "jobs", "timeout", "got '10s'");
    expect_bad_value("[daemon]\nheartbeat_interval = 0.05\n", 2, "daemon", "heartbeat_interval",
                     "from 0.1 to 3600");
    expect_bad_value("[daemon]\nshutdown_timeout = -1\n", 2, "daemon", "shutdown_timeout", "from 0 to 86400");
    expect_bad_value("[wordcount]\nconnect_timeout = 301\n", 2, "wordcount", "connect_timeout", "0.1 to 300");
    expect_bad_value("[wordcount]\ndeny_private = maybe\n", 2, "wordcount", "deny_private", "yes or no");
}

static void test_bad_bytes(void **state) {
    (void)state;
    expect_bad_value("[jobs]\nmax_payload = 64X\n", 2, "jobs", "max_payload",
                     "expected a size from 64 to 512M (bytes, or with a K, M or G suffix), got '64X'");
    expect_bad_value("[jobs]\nmax_payload = 64MB\n", 2, "jobs", "max_payload", "got '64MB'");
    expect_bad_value("[jobs]\nmax_payload = M\n", 2, "jobs", "max_payload", "got 'M'");
    expect_bad_value("[jobs]\nmax_payload = -1\n", 2, "jobs", "max_payload", "got '-1'");
    expect_bad_value("[jobs]\nmax_payload = 1.5M\n", 2, "jobs", "max_payload", "got '1.5M'");
    expect_bad_value("[jobs]\nmax_payload = 63\n", 2, "jobs", "max_payload", "got '63'");
    expect_bad_value("[jobs]\nmax_payload = 513M\n", 2, "jobs", "max_payload", "got '513M'");
    expect_bad_value("[wordcount]\nmax_body = 17G\n", 2, "wordcount", "max_body", "from 1 to 16G");
    expect_bad_value("[wordcount]\nmax_body = 0\n", 2, "wordcount", "max_body", "got '0'");
    expect_bad_value("[wordcount]\nmax_body = 99999999999999999999G\n", 2, "wordcount", "max_body", "size");
    expect_bad_value("[wordcount]\nmax_body = 9999999999G\n", 2, "wordcount", "max_body", "size");
}

static void test_bad_other_values(void **state) {
    (void)state;
    expect_bad_value("[daemon]\ntest_handlers = maybe\n", 2, "daemon", "test_handlers",
                     "expected yes or no (or true/false, on/off, 1/0), got 'maybe'");
    expect_bad_value("[daemon]\nlog_level = loud\n", 2, "daemon", "log_level",
                     "expected error, warn, info or debug, got 'loud'");
    expect_bad_value("[daemon]\nqueues = a b\n", 2, "daemon", "queues",
                     "queue name 'a b' has a character outside [A-Za-z0-9_.:-]");
    expect_bad_value("[daemon]\nqueues = a,,b\n", 2, "daemon", "queues", "empty queue name");
    expect_bad_value("[daemon]\nqueues = a,b,a\n", 2, "daemon", "queues", "queue 'a' is listed twice");
    expect_bad_value("[redis]\nurl = http://localhost\n", 2, "redis", "url", "unknown scheme 'http'");
    expect_bad_value("[redis]\nurl = redis://h:70000\n", 2, "redis", "url", "bad Redis port '70000'");
    expect_bad_value("[redis]\nprefix = my prefix\n", 2, "redis", "prefix", "character outside");
    expect_bad_value("[redis]\nprefix =\n", 2, "redis", "prefix", "expected 1 to 64 characters, got 0");
    expect_bad_value("[redis]\nprefix = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 2, "redis",
                     "prefix", "got 65");
    expect_bad_value("[plugins]\ndir =\n", 2, "plugins", "dir", "got 0");
}

/* A bad url never shows its password in the message. */
static void test_bad_url_hides_password(void **state) {
    (void)state;
    char path[64];
    jobq_config cfg;
    jobq_err err;
    assert_int_equal(load_text("[redis]\nurl = redis://:hunter2@h:0\n", &cfg, &err, path), -1);
    assert_non_null(strstr(err.msg, "bad Redis port"));
    assert_null(strstr(err.msg, "hunter2"));
}

static void test_syntax_errors(void **state) {
    (void)state;
    expect_error("[daemon]\nworkers\n", 2, "syntax error (expected 'key = value' or '[section]')");
    expect_error("[daemon\nworkers = 2\n", 1, "syntax error (expected 'key = value' or '[section]')");
    expect_error("[daemon]\nworkers = 2\n\n= 3\n", 4, "syntax error (expected 'key = value' or '[section]')");
    /* the first error wins, whichever kind it is */
    expect_error("[daemon]\nworkers\nworkers = abc\n", 2, "syntax error (expected 'key = value' or '[section]')");
    expect_error("[daemon]\nworkers = abc\nworkers\n", 2,
                 "bad value for 'workers' in [daemon]: expected an integer from 1 to 1024, got 'abc'");
    expect_error("[daemon]\nbogus = 1\n[foo]\nworkers\n", 2, "unknown key 'bogus' in section [daemon]");
    expect_error("[daemon]\nworkers\n[foo]\n", 2, "syntax error (expected 'key = value' or '[section]')");
}

static void test_long_lines(void **state) {
    (void)state;
    char text[1024];
    char dir[301];
    memset(dir, 'd', 300);
    dir[300] = '\0';
    snprintf(text, sizeof text, "[plugins]\n\ndir = /%s\nbogus\n", dir);
    expect_error(text, 3, "line too long (at most 198 characters, not counting comments)");
    /* a long comment is fine, and line numbers after it stay right */
    memset(dir, '#', 300);
    snprintf(text, sizeof text, "[plugins]\n;%s\ndir = /x ; %s\nbogus\n", dir, dir);
    expect_error(text, 4, "syntax error (expected 'key = value' or '[section]')");
}

static void test_heartbeat_relation(void **state) {
    (void)state;
    expect_error("[daemon]\nheartbeat_interval = 20\n", 2,
                 "heartbeat_ttl (15) must be greater than heartbeat_interval (20) in [daemon]");
    expect_error("[daemon]\nheartbeat_ttl = 5\n\n", 2,
                 "heartbeat_ttl (5) must be greater than heartbeat_interval (5) in [daemon]");
    expect_error("[daemon]\nheartbeat_ttl = 2\nworkers = 1\nheartbeat_interval = 2.5\n", 4,
                 "heartbeat_ttl (2) must be greater than heartbeat_interval (2.5) in [daemon]");
    jobq_config c;
    load_ok("[daemon]\nheartbeat_interval = 20\nheartbeat_ttl = 20.5\n", &c);
    assert_true(c.heartbeat_ttl == 20.5);
    jobq_config_fini(&c);
}

static void test_missing_file(void **state) {
    (void)state;
    jobq_config cfg;
    jobq_err err;
    assert_int_equal(jobq_config_load(&cfg, "/nonexistent/jobq.conf", &err), -1);
    assert_string_equal(err.msg, "cannot open config file '/nonexistent/jobq.conf': No such file or directory");
    assert_int_equal(err.code, JOBQ_E_IO);
    assert_released(&cfg);

    assert_int_equal(jobq_config_load(&cfg, "/tmp", &err), -1);
    assert_string_equal(err.msg, "cannot read config file '/tmp': Is a directory");
    assert_released(&cfg);

    /* err may be NULL */
    assert_int_equal(jobq_config_load(&cfg, "/nonexistent/jobq.conf", NULL), -1);
    assert_released(&cfg);
}

static void test_error_frees_everything(void **state) {
    (void)state;
    /* strings and queues set before the bad line are released (ASan checks) */
    expect_error("[daemon]\nqueues = a,b,c\n[redis]\nprefix = x\nurl = redis://:p@h\n[plugins]\ndir = /p\n[foo]\n", 8,
                 "unknown section [foo]");
}

/* print, load what was printed, compare; returns the printed text (free it). */
static char *print_and_reload(const jobq_config *a, jobq_config *b) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    assert_non_null(mem);
    jobq_config_print(a, mem);
    assert_int_equal(fclose(mem), 0);
    load_ok(text, b);
    return text;
}

static void test_print_round_trip(void **state) {
    (void)state;
    jobq_config a, b;
    jobq_config_defaults(&a);
    char *text = print_and_reload(&a, &b);
    assert_same(&a, &b, "redis://127.0.0.1:6379/0");
    assert_non_null(strstr(text, "\n[daemon]\n"));
    assert_non_null(strstr(text, "\nworkers = 4\n"));
    assert_non_null(strstr(text, "\nmax_body = 64M\n"));
    assert_non_null(strstr(text, "\nmax_payload = 1M\n"));
    assert_non_null(strstr(text, "\ntest_handlers = no\n"));
    assert_non_null(strstr(text, "\nlog_level = info\n"));
    free(text);
    jobq_config_fini(&a);
    jobq_config_fini(&b);

    load_ok(every_key, &a);
    text = print_and_reload(&a, &b);
    assert_same(&a, &b, "redis://app:***@redis.internal:6380/4");
    assert_null(strstr(text, "s3cret"));
    assert_non_null(strstr(text, "\nqueues = high,default,low\n"));
    assert_non_null(strstr(text, "\ntimeout = 0.001\n"));
    assert_non_null(strstr(text, "\ndeny_private = yes\n"));
    free(text);
    jobq_config_fini(&a);
    jobq_config_fini(&b);

    /* odd values: fractions that need many digits, sizes without a suffix */
    load_ok("[jobs]\ntimeout = 0.1234567890123\nmax_payload = 1000001\n[daemon]\nlog_level = error\n"
            "[redis]\nurl = unix:///tmp/r.sock?db=5\n",
            &a);
    text = print_and_reload(&a, &b);
    assert_same(&a, &b, "unix:///tmp/r.sock?db=5");
    free(text);
    jobq_config_fini(&a);
    jobq_config_fini(&b);
}

static void test_set_queues(void **state) {
    (void)state;
    jobq_config c;
    jobq_err err;
    jobq_config_defaults(&c);

    assert_int_equal(jobq_config_set_queues(&c, "  one  ", &err), 0);
    assert_int_equal(c.nqueues, 1);
    assert_string_equal(c.queues[0], "one");

    assert_int_equal(jobq_config_set_queues(&c, "a.b:c-d_E9 ,\tx", &err), 0);
    assert_int_equal(c.nqueues, 2);
    assert_string_equal(c.queues[0], "a.b:c-d_E9");
    assert_string_equal(c.queues[1], "x");
    assert_null(c.queues[2]);

    /* 32 queues fit, 33 do not; names of 64 characters fit, 65 do not */
    char csv[64 * 40];
    csv[0] = '\0';
    for (int i = 0; i < JOBQ_MAX_QUEUES; i++) {
        char name[16];
        snprintf(name, sizeof name, "%sq%d", i ? "," : "", i);
        strcat(csv, name);
    }
    assert_int_equal(jobq_config_set_queues(&c, csv, &err), 0);
    assert_int_equal(c.nqueues, JOBQ_MAX_QUEUES);
    assert_string_equal(c.queues[31], "q31");
    strcat(csv, ",q32");
    assert_int_equal(jobq_config_set_queues(&c, csv, &err), -1);
    assert_string_equal(err.msg, "more than 32 queues");
    assert_int_equal(err.code, JOBQ_E_INVALID);
    assert_int_equal(c.nqueues, JOBQ_MAX_QUEUES); /* unchanged */
    assert_string_equal(c.queues[31], "q31");

    char name[70];
    memset(name, 'n', 64);
    name[64] = '\0';
    assert_int_equal(jobq_config_set_queues(&c, name, &err), 0);
    assert_int_equal(strlen(c.queues[0]), 64);
    strcat(name, "n");
    assert_int_equal(jobq_config_set_queues(&c, name, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 64 characters"));
    assert_int_equal(c.nqueues, 1);

    const char *bad[][2] = {
        {"", "empty queue name in ''"},
        {"   ", "empty queue name"},
        {"a,", "empty queue name in 'a,'"},
        {",a", "empty queue name"},
        {"a, ,b", "empty queue name"},
        {"a/b", "queue name 'a/b' has a character outside [A-Za-z0-9_.:-]"},
        {"ok,caf\xc3\xa9", "has a character outside"},
        {"x,y,x", "queue 'x' is listed twice"},
    };
    assert_int_equal(jobq_config_set_queues(&c, "keep,these", &err), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jobq_err_clear(&err);
        assert_int_equal(jobq_config_set_queues(&c, bad[i][0], &err), -1);
        if (!strstr(err.msg, bad[i][1])) print_error("'%s': %s\n", bad[i][0], err.msg);
        assert_non_null(strstr(err.msg, bad[i][1]));
        assert_int_equal(c.nqueues, 2);
        assert_string_equal(c.queues[0], "keep");
        assert_string_equal(c.queues[1], "these");
    }
    assert_int_equal(jobq_config_set_queues(&c, NULL, NULL), -1);
    assert_int_equal(jobq_config_set_queues(&c, "a,b", NULL), 0);
    jobq_config_fini(&c);
}

static void test_set_string(void **state) {
    (void)state;
    jobq_config c;
    jobq_config_defaults(&c);
    char value[] = "redis://other:1/2";
    jobq_config_set_string(&c.redis_url, value);
    value[0] = 'X'; /* a copy was taken */
    assert_string_equal(c.redis_url, "redis://other:1/2");
    jobq_config_set_string(&c.plugins_dir, NULL);
    assert_null(c.plugins_dir);
    jobq_config_set_string(&c.plugins_dir, "/x");
    assert_string_equal(c.plugins_dir, "/x");
    jobq_config_fini(&c);
}

/* The sample config loads as is, holds only defaults, and documents every key. */
static void test_sample_config(void **state) {
    (void)state;
    const char *candidates[] = {"config/jobq.conf", "../config/jobq.conf", "../../config/jobq.conf"};
    const char *path = NULL;
    for (size_t i = 0; i < 3 && !path; i++) {
        if (access(candidates[i], R_OK) == 0) path = candidates[i];
    }
    if (!path) fail_msg("config/jobq.conf not found; run the tests from the repository root");

    jobq_config c;
    jobq_err err;
    if (jobq_config_load(&c, path, &err) != 0) fail_msg("%s", err.msg);
    assert_defaults(&c);

    /* every "key = " line that print writes appears in the sample, under its section */
    char *printed = NULL, *sample = NULL;
    size_t plen = 0, slen = 0;
    FILE *mem = open_memstream(&printed, &plen);
    jobq_config_print(&c, mem);
    fclose(mem);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    sample = calloc(1, 1 << 20);
    slen = fread(sample, 1, (1 << 20) - 1, f);
    fclose(f);
    assert_true(slen > 0);

    int keys = 0;
    const char *section_at = NULL;
    char *save = NULL;
    for (char *line = strtok_r(printed, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '[') {
            char want[64];
            snprintf(want, sizeof want, "\n%s", line);
            section_at = strstr(sample, want);
            if (!section_at) fail_msg("section %s is missing from %s", line, path);
            continue;
        }
        char *eq = strstr(line, " = ");
        if (line[0] == ';' || line[0] == '#' || !eq) continue;
        *eq = '\0';
        char set[96], commented[96];
        snprintf(set, sizeof set, "\n%s = ", line);
        snprintf(commented, sizeof commented, "\n# %s = ", line);
        const char *at = strstr(section_at, set);
        const char *next = strstr(section_at + 1, "\n[");
        if (!at) at = strstr(section_at, commented);
        if (!at || (next && at > next)) fail_msg("key '%s' is not documented in %s", line, path);
        keys++;
    }
    assert_int_equal(keys, 34);
    free(printed);
    free(sample);
    jobq_config_fini(&c);
}

/* ---- [queue.NAME] sections ---- */

static void expect_settings(const jobq_config *c, const char *queue, double timeout, int max_attempts,
                            int result_ttl, long as, long cpu, long nofile) {
    jobq_queue_settings s;
    memset(&s, 0x5a, sizeof s); /* every member must be written */
    jobq_config_queue_settings(c, queue, &s);
    assert_string_equal(s.name, queue ? queue : "");
    if (s.timeout != timeout) print_error("%s: timeout %g, want %g\n", queue, s.timeout, timeout);
    assert_true(s.timeout == timeout);
    assert_int_equal(s.max_attempts, max_attempts);
    assert_int_equal(s.result_ttl, result_ttl);
    assert_int_equal(s.rlimit_as, as);
    assert_int_equal(s.rlimit_cpu, cpu);
    assert_int_equal(s.rlimit_nofile, nofile);
}

static void test_queue_sections(void **state) {
    (void)state;
    jobq_config c;
    /* [jobs] after the sections still provides what they inherit */
    load_ok("[daemon]\nqueues = fast, slow\n"
            "[queue.fast]\ntimeout = 2.5\nrlimit_cpu = 10\n"
            "[queue.slow]\nmax_attempts = 1\nresult_ttl = 60\nrlimit_as = 512M\nrlimit_nofile = 64\n"
            "[queue.other.daemon:x-y_Z9]\ntimeout = 3600\n"
            "[queue.empty]\n"
            "[jobs]\ntimeout = 40\nmax_attempts = 7\nresult_ttl = 100\n"
            "[queue.fast]\nrlimit_nofile = 1048576\nrlimit_cpu = 86400\n",
            &c);
    assert_int_equal(c.nqueue_sections, 4);
    assert_string_equal(c.queue_sections[0].values.name, "fast");
    assert_string_equal(c.queue_sections[1].values.name, "slow");
    assert_string_equal(c.queue_sections[2].values.name, "other.daemon:x-y_Z9");
    assert_string_equal(c.queue_sections[3].values.name, "empty");
    assert_int_equal(c.queue_sections[3].set, 0);
    expect_settings(&c, "fast", 2.5, 7, 100, 0, 86400, 1048576);
    expect_settings(&c, "slow", 40, 1, 60, 512 * MIB, 0, 64);
    expect_settings(&c, "other.daemon:x-y_Z9", 3600, 7, 100, 0, 0, 0);
    expect_settings(&c, "empty", 40, 7, 100, 0, 0, 0);
    /* a queue without a section, and no queue at all: [jobs], no limits */
    expect_settings(&c, "default", 40, 7, 100, 0, 0, 0);
    expect_settings(&c, "fas", 40, 7, 100, 0, 0, 0);
    expect_settings(&c, "fastX", 40, 7, 100, 0, 0, 0);
    expect_settings(&c, NULL, 40, 7, 100, 0, 0, 0);
    jobq_config_fini(&c);

    /* defaults: no sections at all */
    jobq_config_defaults(&c);
    expect_settings(&c, "default", 180, 3, 86400, 0, 0, 0);
    jobq_config_fini(&c);

    /* bounds of every key, and suffixes for rlimit_as */
    load_ok("[queue.lo]\ntimeout = 0.001\nmax_attempts = 1\nresult_ttl = 1\nrlimit_as = 16M\nrlimit_cpu = 1\n"
            "rlimit_nofile = 16\n"
            "[queue.hi]\ntimeout = 604800\nmax_attempts = 1000\nresult_ttl = 31536000\nrlimit_as = 1048576G\n"
            "rlimit_cpu = 86400\nrlimit_nofile = 1048576\n"
            "[queue.k]\nrlimit_as = 16384k\n[queue.b]\nrlimit_as = 17179869184\n",
            &c);
    expect_settings(&c, "lo", 0.001, 1, 1, 16 * MIB, 1, 16);
    expect_settings(&c, "hi", 604800, 1000, 31536000, 1024 * 1024 * GIB, 86400, 1048576);
    expect_settings(&c, "k", 180, 3, 86400, 16 * MIB, 0, 0);
    expect_settings(&c, "b", 180, 3, 86400, 16 * GIB, 0, 0);
    jobq_config_fini(&c);

    /* a name of 64 characters is kept whole (inih would cut it), and the
     * sections are found again at [jobs]'s return */
    char name[65], text[512];
    memset(name, 'q', 64);
    name[64] = '\0';
    snprintf(text, sizeof text, "[queue.%s]\ntimeout = 9\n[jobs]\ntimeout = 8\n[queue.%s]\nmax_attempts = 2\n", name,
             name);
    load_ok(text, &c);
    assert_int_equal(c.nqueue_sections, 1);
    assert_string_equal(c.queue_sections[0].values.name, name);
    expect_settings(&c, name, 9, 2, 86400, 0, 0, 0);
    jobq_config_fini(&c);

    /* 32 sections fit */
    char many[32 * 40] = "";
    for (int i = 0; i < JOBQ_MAX_QUEUES; i++) {
        char line[40];
        snprintf(line, sizeof line, "[queue.q%d]\nmax_attempts = %d\n", i, i + 1);
        strcat(many, line);
    }
    load_ok(many, &c);
    assert_int_equal(c.nqueue_sections, JOBQ_MAX_QUEUES);
    expect_settings(&c, "q31", 180, 32, 86400, 0, 0, 0);
    jobq_config_fini(&c);
}

static void test_queue_section_errors(void **state) {
    (void)state;
    /* keys and values: "file:line: ..." naming the key and the section */
    expect_error("[queue.a]\ntimeout = 5\nmax_payload = 10\n", 3, "unknown key 'max_payload' in section [queue.a]");
    expect_error("[jobs]\n[queue.x.y]\n\nrlimit_stack = 1M\n", 4, "unknown key 'rlimit_stack' in section [queue.x.y]");
    expect_error("[queue.a]\nTimeout = 5\n", 2, "unknown key 'Timeout' in section [queue.a]");
    expect_error("[queue.a]\ntimeout = 0\n", 2,
                 "bad value for 'timeout' in [queue.a]: expected a number from 0.001 to 604800, got '0'");
    expect_bad_value("[queue.a]\ntimeout = 604801\n", 2, "queue.a", "timeout", "got '604801'");
    expect_bad_value("[queue.a]\ntimeout = 5s\n", 2, "queue.a", "timeout", "got '5s'");
    expect_bad_value("[queue.a]\nmax_attempts = 0\n", 2, "queue.a", "max_attempts", "from 1 to 1000, got '0'");
    expect_bad_value("[queue.a]\nmax_attempts = 1001\n", 2, "queue.a", "max_attempts", "got '1001'");
    expect_bad_value("[queue.a]\nresult_ttl = 0\n", 2, "queue.a", "result_ttl", "from 1 to 31536000, got '0'");
    expect_bad_value("[queue.a]\nresult_ttl = 31536001\n", 2, "queue.a", "result_ttl", "got '31536001'");
    expect_bad_value("[queue.a]\nrlimit_as = 15M\n", 2, "queue.a", "rlimit_as",
                     "expected a size from 16M to 1048576G (bytes, or with a K, M or G suffix), got '15M'");
    expect_bad_value("[queue.a]\nrlimit_as = 16777215\n", 2, "queue.a", "rlimit_as", "got '16777215'");
    expect_bad_value("[queue.a]\nrlimit_as = 0\n", 2, "queue.a", "rlimit_as", "got '0'");
    expect_bad_value("[queue.a]\nrlimit_as = 1048577G\n", 2, "queue.a", "rlimit_as", "got '1048577G'");
    expect_bad_value("[queue.a]\nrlimit_as = 2GB\n", 2, "queue.a", "rlimit_as", "got '2GB'");
    expect_bad_value("[queue.a]\nrlimit_cpu = 0\n", 2, "queue.a", "rlimit_cpu",
                     "expected an integer from 1 to 86400, got '0'");
    expect_bad_value("[queue.a]\nrlimit_cpu = 86401\n", 2, "queue.a", "rlimit_cpu", "got '86401'");
    expect_bad_value("[queue.a]\nrlimit_cpu = 1.5\n", 2, "queue.a", "rlimit_cpu", "got '1.5'");
    expect_bad_value("[queue.a]\nrlimit_cpu = 1M\n", 2, "queue.a", "rlimit_cpu", "got '1M'");
    expect_bad_value("[queue.a]\nrlimit_cpu = 99999999999999999999999\n", 2, "queue.a", "rlimit_cpu", "integer");
    expect_bad_value("[queue.a]\nrlimit_nofile = 15\n", 2, "queue.a", "rlimit_nofile",
                     "expected an integer from 16 to 1048576, got '15'");
    expect_bad_value("[queue.a]\nrlimit_nofile = 1048577\n", 2, "queue.a", "rlimit_nofile", "got '1048577'");
    expect_bad_value("[queue.a]\nrlimit_nofile =\n", 2, "queue.a", "rlimit_nofile", "got ''");
    expect_bad_value("[daemon]\nworkers = 2\n[queue.b]\n; c\nrlimit_nofile = many ; comment\n", 5, "queue.b",
                     "rlimit_nofile", "got 'many'");
    expect_error("[queue.a]\nrlimit_cpu\n", 2, "syntax error (expected 'key = value' or '[section]')");

    /* section names */
    expect_error("[daemon]\n[queue.]\ntimeout = 1\n", 2, "empty queue name in section [queue.]");
    expect_error("[queue]\ntimeout = 1\n", 1, "unknown section [queue] (per-queue settings go in [queue.NAME])");
    expect_error("[queues.a]\n", 1, "unknown section [queues.a]");
    expect_error("[Queue.a]\n", 1, "unknown section [Queue.a]");
    expect_error("[queue.a/b]\ntimeout = 1\n", 1,
                 "bad section [queue.a/b]: queue name 'a/b' has a character outside [A-Za-z0-9_.:-]");
    expect_error("[queue.a b]\n", 1, "bad section [queue.a b]: queue name 'a b' has a character outside "
                                     "[A-Za-z0-9_.:-]");
    char name[70], text[600], want[300];
    memset(name, 'n', 65);
    name[65] = '\0';
    snprintf(text, sizeof text, "[jobs]\n[queue.%s]\ntimeout = 1\n", name);
    snprintf(want, sizeof want,
             "bad section [queue.%.48s...]: queue name '%.20s...' is longer than 64 characters", name, name);
    expect_error(text, 2, want);
    expect_error("[queue.a] timeout = 1\n", 1, "unexpected text after [queue.a]");

    /* a 33rd section: error at its header; a repeated one is the same section */
    char many[40 * 40] = "";
    for (int i = 0; i < JOBQ_MAX_QUEUES; i++) {
        char line[40];
        snprintf(line, sizeof line, "[queue.q%d]\ntimeout = 1\n", i);
        strcat(many, line);
    }
    strcat(many, "[queue.q0]\ntimeout = 2\n[queue.q32]\ntimeout = 3\n");
    expect_error(many, 67, "[queue.q32]: more than 32 [queue.NAME] sections");

    /* values of other sections are not accepted in a queue section and back */
    expect_error("[queue.a]\nworkers = 2\n", 2, "unknown key 'workers' in section [queue.a]");
    expect_error("[queue.a]\n[jobs]\nrlimit_as = 1G\n", 3, "unknown key 'rlimit_as' in section [jobs]");
}

/* ---- the Redis password ---- */

/* Write text to a new file with mode; path gets its name. */
static void write_secret(const char *text, size_t len, mode_t mode, char path[64]) {
    strcpy(path, "/tmp/jobq-test-secret-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Config with password_file = path; load_secrets must give want (NULL:
 * must fail with a message holding frag). */
static void expect_secret(const char *text, size_t len, mode_t mode, const char *want, const char *frag) {
    char path[64], conf[128];
    write_secret(text, len, mode, path);
    snprintf(conf, sizeof conf, "[redis]\npassword_file = %s\n", path);
    jobq_config c;
    load_ok(conf, &c);
    assert_null(c.redis_password);
    jobq_err err;
    jobq_err_clear(&err);
    int rc = jobq_config_load_secrets(&c, &err);
    if (want) {
        if (rc != 0) print_error("%s\n", err.msg);
        assert_int_equal(rc, 0);
        assert_non_null(c.redis_password);
        assert_string_equal(c.redis_password, want);
    } else {
        if (rc == 0 || !strstr(err.msg, frag) || !strstr(err.msg, path))
            print_error("got '%s', want '%s' and the path %s\n", err.msg, frag, path);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err.msg, frag));
        assert_non_null(strstr(err.msg, path)); /* names the file */
        assert_null(c.redis_password);
    }
    jobq_config_fini(&c);
    assert_null(c.redis_password);
    unlink(path);
}

static void test_password_file(void **state) {
    (void)state;
    unsetenv("CREDENTIALS_DIRECTORY");
    expect_secret("hunter2\n", 8, 0600, "hunter2", NULL);
    expect_secret("hunter2", 7, 0600, "hunter2", NULL);
    expect_secret("hunter2\r\n", 9, 0400, "hunter2", NULL);
    expect_secret("pass word;#x \n", 14, 0600, "pass word;#x ", NULL); /* only the line end goes */
    expect_secret("first\nsecond\n", 13, 0600, "first", NULL);
    expect_secret("a\r\r\n", 4, 0600, "a\r", NULL);
    expect_secret("", 0, 0600, NULL, "is empty");
    expect_secret("\n", 1, 0600, NULL, "is empty");
    expect_secret("\r\nsecond\n", 9, 0600, NULL, "is empty");
    expect_secret("a\0b\n", 4, 0600, NULL, "NUL byte");
    expect_secret("hunter2\n", 8, 0640, NULL, "is readable by its group (chmod 600)");
    expect_secret("hunter2\n", 8, 0620, NULL, "is writable by its group (chmod 600)");
    expect_secret("hunter2\n", 8, 0602, NULL, "is writable by others (chmod 600)");
    expect_secret("hunter2\n", 8, 0604, NULL, "is readable by others (chmod 600)");
    expect_secret("hunter2\n", 8, 0644, NULL, "is readable by others (chmod 600)");

    /* the exact messages */
    char path[64], want[256];
    write_secret("x\n", 2, 0644, path);
    jobq_config c;
    jobq_err err;
    jobq_config_defaults(&c);
    jobq_config_set_string(&c.redis_password_file, path);
    assert_int_equal(jobq_config_load_secrets(&c, &err), -1);
    snprintf(want, sizeof want, "password file '%s' is readable by others (chmod 600)", path);
    assert_string_equal(err.msg, want);
    assert_int_equal(err.code, JOBQ_E_CONFIG);
    unlink(path);
    assert_int_equal(jobq_config_load_secrets(&c, &err), -1);
    snprintf(want, sizeof want, "cannot open password file '%s': No such file or directory", path);
    assert_string_equal(err.msg, want);
    assert_int_equal(err.code, JOBQ_E_IO);
    assert_null(c.redis_password);
    jobq_config_set_string(&c.redis_password_file, "/tmp");
    assert_int_equal(jobq_config_load_secrets(&c, &err), -1);
    assert_string_equal(err.msg, "password file '/tmp' is not a regular file");
    jobq_config_set_string(&c.redis_password_file, "/proc/self/nonexistent/x");
    assert_int_equal(jobq_config_load_secrets(&c, NULL), -1); /* err may be NULL */

    /* longest password: 4096 bytes; one more is refused */
    char big[4100];
    memset(big, 'p', sizeof big);
    write_secret(big, 4096, 0600, path);
    jobq_config_set_string(&c.redis_password_file, path);
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_int_equal(strlen(c.redis_password), 4096);
    unlink(path);
    big[4096] = '\r';
    big[4097] = '\n';
    write_secret(big, 4098, 0600, path);
    jobq_config_set_string(&c.redis_password_file, path);
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_int_equal(strlen(c.redis_password), 4096);
    unlink(path);
    write_secret(big, 4097, 0600, path); /* 4096 bytes and a CR: the CR goes */
    jobq_config_set_string(&c.redis_password_file, path);
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_int_equal(strlen(c.redis_password), 4096);
    unlink(path);
    big[4096] = 'p';
    write_secret(big, 4098, 0600, path);
    jobq_config_set_string(&c.redis_password_file, path);
    assert_int_equal(jobq_config_load_secrets(&c, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 4096 bytes"));
    assert_int_equal(strlen(c.redis_password), 4096); /* a failure keeps what was there */
    unlink(path);
    memset(big, 'p', sizeof big);
    write_secret(big, sizeof big, 0600, path);
    jobq_config_set_string(&c.redis_password_file, path);
    assert_int_equal(jobq_config_load_secrets(&c, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 4096 bytes"));
    unlink(path);

    /* a new file replaces the password; no file at all clears it */
    write_secret("new\n", 4, 0600, path);
    jobq_config_set_string(&c.redis_password_file, path);
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_string_equal(c.redis_password, "new");
    unlink(path);
    jobq_config_set_string(&c.redis_password_file, "");
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_null(c.redis_password);
    jobq_config_fini(&c);

    /* loading never reads it: a missing file is only an error for load_secrets */
    load_ok("[redis]\npassword_file = /nonexistent/secret\n", &c);
    assert_string_equal(c.redis_password_file, "/nonexistent/secret");
    assert_null(c.redis_password);
    jobq_config_fini(&c);
    /* defaults: no file, no password */
    jobq_config_defaults(&c);
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_null(c.redis_password);
    jobq_config_fini(&c);

    /* the key itself: an absolute path or nothing */
    expect_bad_value("[redis]\npassword_file = secret.txt\n", 2, "redis", "password_file",
                     "expected an absolute path (or nothing), got 'secret.txt'");
    expect_bad_value("[redis]\npassword_file = ./x\n", 2, "redis", "password_file", "absolute path");
    load_ok("[redis]\npassword_file =\n", &c);
    assert_string_equal(c.redis_password_file, "");
    jobq_config_fini(&c);
}

/* A fresh directory under /tmp; path gets its name. */
static void make_tmp_dir(char path[64]) {
    strcpy(path, "/tmp/jobq-test-creds-XXXXXX");
    assert_non_null(mkdtemp(path));
}

static void test_credentials_directory(void **state) {
    (void)state;
    char dir[64], cred[128], file[64];
    make_tmp_dir(dir);
    snprintf(cred, sizeof cred, "%s/redis-password", dir);
    write_secret("from-file\n", 10, 0600, file);

    jobq_config c;
    jobq_err err;
    jobq_config_defaults(&c);
    jobq_config_set_string(&c.redis_password_file, file);

    /* the variable set, but no redis-password in it: password_file */
    assert_int_equal(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_string_equal(c.redis_password, "from-file");

    /* the credential wins over password_file */
    FILE *f = fopen(cred, "w");
    assert_non_null(f);
    fputs("from-credential\n", f);
    fclose(f);
    assert_int_equal(chmod(cred, 0400), 0);
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_string_equal(c.redis_password, "from-credential");

    /* ... even with no password_file, or a broken one */
    jobq_config_set_string(&c.redis_password_file, "");
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_string_equal(c.redis_password, "from-credential");
    jobq_config_set_string(&c.redis_password_file, "/nonexistent/secret");
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_string_equal(c.redis_password, "from-credential");

    /* it is checked like any password file */
    assert_int_equal(chmod(cred, 0644), 0);
    assert_int_equal(jobq_config_load_secrets(&c, &err), -1);
    char want[256];
    snprintf(want, sizeof want, "password file '%s' is readable by others (chmod 600)", cred);
    assert_string_equal(err.msg, want);
    assert_string_equal(c.redis_password, "from-credential"); /* unchanged */

    /* an empty variable counts as unset */
    assert_int_equal(setenv("CREDENTIALS_DIRECTORY", "", 1), 0);
    jobq_config_set_string(&c.redis_password_file, file);
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_string_equal(c.redis_password, "from-file");

    /* unset variable, no password_file: no password */
    unsetenv("CREDENTIALS_DIRECTORY");
    jobq_config_set_string(&c.redis_password_file, "");
    assert_int_equal(jobq_config_load_secrets(&c, &err), 0);
    assert_null(c.redis_password);
    jobq_config_fini(&c);

    unlink(cred);
    unlink(file);
    rmdir(dir);
}

/* print writes password_file's path, never the password it holds. */
static void test_print_hides_password(void **state) {
    (void)state;
    char file[64], conf[256];
    write_secret("sup3r-s3cret-pw\n", 16, 0600, file);
    unsetenv("CREDENTIALS_DIRECTORY");
    snprintf(conf, sizeof conf, "[redis]\nurl = redis://u:url-s3cret@h:1/0\npassword_file = %s\n[queue.a]\ntimeout = 1\n",
             file);
    jobq_config a, b;
    jobq_err err;
    load_ok(conf, &a);
    assert_int_equal(jobq_config_load_secrets(&a, &err), 0);
    assert_string_equal(a.redis_password, "sup3r-s3cret-pw");

    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    assert_non_null(mem);
    jobq_config_print(&a, mem);
    assert_int_equal(fclose(mem), 0);
    assert_null(strstr(text, "sup3r"));
    assert_null(strstr(text, "url-s3cret"));
    char want[128];
    snprintf(want, sizeof want, "\npassword_file = %s\n", file);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "\nurl = redis://u:***@h:1/0\n"));
    load_ok(text, &b); /* and it loads back */
    assert_string_equal(b.redis_password_file, file);
    assert_null(b.redis_password);
    free(text);
    jobq_config_fini(&a);
    assert_null(a.redis_password);
    jobq_config_fini(&b);
    unlink(file);
}

static void test_queue_print_round_trip(void **state) {
    (void)state;
    jobq_config a, b;
    load_ok("[queue.fast]\ntimeout = 2.5\nrlimit_cpu = 10\nrlimit_as = 2G\n"
            "[queue.slow]\nmax_attempts = 1\nresult_ttl = 60\nrlimit_as = 100000000\nrlimit_nofile = 64\n"
            "[queue.empty]\n"
            "[jobs]\ntimeout = 40\n"
            "[queue.x.y:z]\ntimeout = 0.1234567890123\nmax_attempts = 1000\n",
            &a);
    char *text = print_and_reload(&a, &b);
    assert_same(&a, &b, "redis://127.0.0.1:6379/0");
    assert_int_equal(b.nqueue_sections, 4);
    /* only what a section sets is set after the reload; the rest still inherits */
    assert_non_null(strstr(text, "\n[queue.fast]\n"));
    assert_non_null(strstr(text, "\ntimeout = 2.5\n"));
    assert_non_null(strstr(text, "\nrlimit_as = 2G\n"));
    assert_non_null(strstr(text, "\nrlimit_cpu = 10\n"));
    assert_non_null(strstr(text, "\n; max_attempts = 3 (from [jobs])\n"));
    assert_non_null(strstr(text, "\n; rlimit_nofile = (no limit)\n"));
    assert_non_null(strstr(text, "\n[queue.empty]\n"));
    assert_non_null(strstr(text, "\nrlimit_as = 100000000\n"));
    assert_non_null(strstr(text, "\n[queue.x.y:z]\n"));
    expect_settings(&b, "empty", 40, 3, 86400, 0, 0, 0);
    expect_settings(&b, "x.y:z", 0.1234567890123, 1000, 86400, 0, 0, 0);
    /* a changed [jobs] still reaches the reloaded sections */
    jobq_config_fini(&b);
    size_t n = strlen(text);
    text = realloc(text, n + 64);
    strcat(text, "[jobs]\nmax_attempts = 9\n");
    load_ok(text, &b);
    expect_settings(&b, "fast", 2.5, 9, 86400, 2 * GIB, 10, 0);
    expect_settings(&b, "slow", 40, 1, 60, 100000000, 0, 64);
    free(text);
    jobq_config_fini(&a);
    jobq_config_fini(&b);
}

/* The commented [queue.example] of the sample loads once uncommented. */
static void test_sample_queue_example(void **state) {
    (void)state;
    const char *candidates[] = {"config/jobq.conf", "../config/jobq.conf", "../../config/jobq.conf"};
    FILE *f = NULL;
    for (size_t i = 0; i < 3 && !f; i++) f = fopen(candidates[i], "r");
    if (!f) fail_msg("config/jobq.conf not found; run the tests from the repository root");
    char line[256], text[2048] = "";
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        if (strcmp(line, "# [queue.example]\n") == 0) in = true;
        if (in && strcmp(line, "\n") == 0) break;
        if (in && strncmp(line, "# ", 2) == 0) strcat(text, line + 2);
    }
    fclose(f);
    if (!in) fail_msg("no '# [queue.example]' in the sample");
    jobq_config c;
    load_ok(text, &c);
    assert_int_equal(c.nqueue_sections, 1);
    assert_int_equal(c.queue_sections[0].set, 0xff); /* documents every key */
    expect_settings(&c, "example", 30, 5, 3600, 2 * GIB, 60, 256);
    jobq_queue_settings qs;
    jobq_config_queue_settings(&c, "example", &qs);
    assert_int_equal(qs.concurrency, 4);
    assert_int_equal(qs.rate_limit.n, 600);
    assert_true(qs.rate_limit.period == 60);
    jobq_config_fini(&c);
}

/* Loading text must fail at line with a message holding what. */
static void expect_error_with(const char *text, int line, const char *what) {
    char path[64], want[128];
    jobq_config cfg;
    jobq_err err;
    int rc = load_text(text, &cfg, &err, path);
    snprintf(want, sizeof want, "%s:%d: ", path, line);
    if (rc == 0 || strncmp(err.msg, want, strlen(want)) != 0 || !strstr(err.msg, what))
        print_error("got  '%s'\nwant '%s...%s...'\n", err.msg, want, what);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, JOBQ_E_CONFIG);
    assert_true(strncmp(err.msg, want, strlen(want)) == 0 && strstr(err.msg, what));
    assert_released(&cfg);
}

/* [exec.NAME] and [plugin.NAME] sections, and the shared word splitter. */
static void test_named_sections(void **state) {
    (void)state;
    jobq_config cfg;
    load_ok("[exec.py]\ncommand = /usr/bin/python3\nargs = -u \"/a b.py\" 'x y' z\\ w\n"
            "env = A=1 \"B=two words\"\ntimeout = 2.5\nmax_output = 2M\nuser = nobody\nworkdir = /tmp\n"
            "[plugin.sha256]\nroot = /srv\nroot = /srv2\ndb_password = hunter2\n[exec.py]\nargs =\n"
            "[plugin.empty]\n",
            &cfg);
    assert_int_equal(cfg.nexecs, 1);
    const jobq_config_exec *x = &cfg.execs[0];
    assert_string_equal(x->name, "py");
    assert_string_equal(x->command, "/usr/bin/python3");
    assert_string_equal(x->args, ""); /* the later line wins */
    assert_string_equal(x->env, "A=1 \"B=two words\"");
    assert_true(x->timeout == 2.5);
    assert_int_equal(x->max_output, 2 * MIB);
    assert_string_equal(x->user, "nobody");
    assert_string_equal(x->workdir, "/tmp");
    assert_int_equal(x->line, 1);
    assert_int_equal(cfg.nplugin_sections, 2);
    assert_string_equal(cfg.plugin_sections[1].name, "empty");
    assert_int_equal(cfg.nplugin_values, 2);
    assert_string_equal(cfg.plugin_values[0].key, "root");
    assert_string_equal(cfg.plugin_values[0].value, "/srv2");
    char *printed = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&printed, &size);
    jobq_config_print(&cfg, f);
    fclose(f);
    assert_non_null(strstr(printed, "[exec.py]\n"));
    assert_non_null(strstr(printed, "db_password = ***\n"));
    assert_null(strstr(printed, "hunter2"));
    free(printed);
    jobq_config_fini(&cfg);

    char **words;
    size_t n;
    char why[128];
    assert_int_equal(jobq_config_split_words(" -u \"/a b.py\" 'x y' z\\ w \"q\\\"\" '' ", &words, &n, why, sizeof why), 0);
    assert_int_equal(n, 6);
    assert_string_equal(words[1], "/a b.py");
    assert_string_equal(words[2], "x y");
    assert_string_equal(words[3], "z w");
    assert_string_equal(words[4], "q\"");
    assert_string_equal(words[5], "");
    assert_null(words[6]);
    jobq_config_words_free(words);

    expect_error_with("[exec.x]\nargs = a\n", 1, "section [exec.x] has no 'command'");
    expect_error_with("[exec.x]\ncommand = bin/true\n", 2, "expected the absolute path of a program");
    expect_error_with("[exec.x]\ncommand = /bin/true\nargs = \"open\n", 3, "unclosed \"");
    expect_error_with("[exec.x]\ncommand = /bin/true\nenv = 1A=2\n", 3, "expected NAME=VALUE words");
    expect_error_with("[exec.x]\ncommand = /bin/true\ntimeout = soon\n", 3, "bad value for 'timeout' in [exec.x]");
    expect_error_with("[exec.x]\ncommand = /bin/true\nmax_output = 0\n", 3, "bad value for 'max_output'");
    expect_error_with("[exec.x]\ncommand = /bin/true\nshell = yes\n", 3, "unknown key 'shell' in section [exec.x]");
    expect_error_with("[exec.a/b]\n", 1, "bad section [exec.a/b]");
    expect_error_with("[plugin.]\n", 1, "bad section [plugin.]");
}

/* ---- flow control, weights and cron ---- */

static void test_flow_settings(void **state) {
    (void)state;
    jobq_config c;
    load_ok("[queue.a]\nconcurrency = 2\nrate_limit = 10/1s\n[queue.b]\nrate_limit = 5/500ms\n"
            "[queue.c]\nrate_limit = 600/m\n[queue.d]\nrate_limit = 1/2h\n", &c);
    jobq_queue_settings qs;
    jobq_config_queue_settings(&c, "a", &qs);
    assert_int_equal(qs.concurrency, 2);
    assert_int_equal(qs.rate_limit.n, 10);
    assert_true(qs.rate_limit.period == 1);
    jobq_config_queue_settings(&c, "b", &qs);
    assert_int_equal(qs.concurrency, 0);
    assert_true(qs.rate_limit.n == 5 && qs.rate_limit.period == 0.5);
    jobq_config_queue_settings(&c, "c", &qs);
    assert_true(qs.rate_limit.n == 600 && qs.rate_limit.period == 60);
    jobq_config_queue_settings(&c, "none", &qs);
    assert_true(qs.concurrency == 0 && qs.rate_limit.n == 0);
    /* printed in its own notation, and loads back the same */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    jobq_config_print(&c, mem);
    fclose(mem);
    assert_non_null(strstr(text, "rate_limit = 10/1s\n"));
    assert_non_null(strstr(text, "rate_limit = 5/500ms\n"));
    assert_non_null(strstr(text, "rate_limit = 600/1m\n"));
    assert_non_null(strstr(text, "rate_limit = 1/2h\n"));
    jobq_config b;
    load_ok(text, &b);
    jobq_config_queue_settings(&b, "b", &qs);
    assert_true(qs.rate_limit.n == 5 && qs.rate_limit.period == 0.5);
    free(text);
    jobq_config_fini(&b);
    jobq_config_fini(&c);
    expect_bad_value("[queue.a]\nconcurrency = 0\n", 2, "queue.a", "concurrency", "from 1 to 1000000");
    expect_bad_value("[queue.a]\nrate_limit = 10\n", 2, "queue.a", "rate_limit", "N/PERIOD");
    expect_bad_value("[queue.a]\nrate_limit = 10/1x\n", 2, "queue.a", "rate_limit", "got '10/1x'");
    expect_bad_value("[queue.a]\nrate_limit = 0/1s\n", 2, "queue.a", "rate_limit", "N/PERIOD");
    expect_bad_value("[queue.a]\nrate_limit = 10/2d\n", 2, "queue.a", "rate_limit", "1ms to 1d");
    expect_bad_value("[queue.a]\nrate_limit = /1s\n", 2, "queue.a", "rate_limit", "N/PERIOD");
}

static void test_weights(void **state) {
    (void)state;
    jobq_config c;
    jobq_err err;
    jobq_config_defaults(&c);
    assert_int_equal(jobq_config_set_queues(&c, "critical:6, default:3,low:1", &err), 0);
    assert_int_equal(c.nqueues, 3);
    assert_string_equal(c.queues[0], "critical");
    assert_string_equal(c.queues[2], "low");
    assert_int_equal(c.weights[0], 6);
    assert_int_equal(c.weights[1], 3);
    assert_int_equal(c.weights[2], 1);
    assert_int_equal(jobq_config_set_queues(&c, "a:b,c", &err), 0); /* names with ':' */
    assert_string_equal(c.queues[0], "a:b");
    assert_int_equal(c.weights[0], 0);
    assert_int_equal(c.weights[1], 0);
    assert_int_equal(jobq_config_set_queues(&c, "a:b:2,c:1000", &err), 0);
    assert_string_equal(c.queues[0], "a:b");
    assert_int_equal(c.weights[0], 2);
    assert_int_equal(c.weights[1], 1000);
    assert_int_equal(jobq_config_set_queues(&c, "a:6,b", &err), -1);
    assert_non_null(strstr(err.msg, "every queue a weight"));
    assert_int_equal(jobq_config_set_queues(&c, "a:0,b:1", &err), -1);
    assert_non_null(strstr(err.msg, "from 1 to 1000"));
    assert_int_equal(jobq_config_set_queues(&c, "a:1001,b:1", &err), -1);
    assert_int_equal(jobq_config_set_queues(&c, "a:1,a:2", &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
    assert_string_equal(c.queues[0], "a:b"); /* unchanged */
    jobq_config_fini(&c);
    load_ok("[daemon]\nqueues = x:2,y:1\n", &c);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    jobq_config_print(&c, mem);
    fclose(mem);
    assert_non_null(strstr(text, "\nqueues = x:2,y:1\n"));
    free(text);
    jobq_config_fini(&c);
}

static void test_cron_sections(void **state) {
    (void)state;
    jobq_config c;
    load_ok("[cron]\ntimezone = Europe/Berlin\n"
            "[cron.nightly]\nspec = 30 2 * * mon-fri\nhandler = echo\nargs = {\"a\": 1}\nqueue = reports\n"
            "[cron.tick]\nspec = @every 10s\nhandler = noop\ntimezone = UTC\n", &c);
    assert_string_equal(c.cron_timezone, "Europe/Berlin");
    assert_int_equal(c.ncrons, 2);
    assert_string_equal(c.crons[0].name, "nightly");
    assert_string_equal(c.crons[0].spec, "30 2 * * mon-fri");
    assert_string_equal(c.crons[0].args, "{\"a\": 1}");
    assert_string_equal(c.crons[0].queue, "reports");
    assert_null(c.crons[0].timezone);
    assert_string_equal(c.crons[1].timezone, "UTC");
    assert_null(c.crons[1].args);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    jobq_config_print(&c, mem);
    fclose(mem);
    jobq_config b;
    load_ok(text, &b);
    assert_int_equal(b.ncrons, 2);
    assert_string_equal(b.crons[1].spec, "@every 10s");
    free(text);
    jobq_config_fini(&b);
    jobq_config_fini(&c);
    expect_bad_value("[cron.x]\nspec = 61 * * * *\n", 2, "cron.x", "spec", "minute");
    expect_bad_value("[cron.x]\nargs = {x\n", 2, "cron.x", "args", "not valid JSON");
    expect_bad_value("[cron.x]\nqueue = a{b}\n", 2, "cron.x", "queue", "character");
    expect_bad_value("[cron]\ntimezone = Mars/Olympus\n", 2, "cron", "timezone", "unknown time zone");
    expect_error("[cron.x]\nspec = @hourly\n", 1, "[cron.x] needs a 'handler'");
    expect_error("[daemon]\n[cron.y]\nhandler = noop\n", 2, "[cron.y] needs a 'spec'");
    expect_error("[cron.x]\nwhen = 1\n", 2, "unknown key 'when' in section [cron.x]");
    expect_error("[cron.a{]\n", 1, "bad section [cron.a{]: a cron entry's name is 1 to 64 of A-Z a-z 0-9 _ . : -");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_later_lines_win),
        cmocka_unit_test(test_unknown_section_and_key),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_bad_bytes),
        cmocka_unit_test(test_bad_other_values),
        cmocka_unit_test(test_bad_url_hides_password),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_heartbeat_relation),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_error_frees_everything),
        cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_set_queues),
        cmocka_unit_test(test_set_string),
        cmocka_unit_test(test_sample_config),
        cmocka_unit_test(test_queue_sections),
        cmocka_unit_test(test_queue_section_errors),
        cmocka_unit_test(test_queue_print_round_trip),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_credentials_directory),
        cmocka_unit_test(test_print_hides_password),
        cmocka_unit_test(test_sample_queue_example),
        cmocka_unit_test(test_named_sections),
        cmocka_unit_test(test_flow_settings),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_cron_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
