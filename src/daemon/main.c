/*
 * jobqd entry point: command-line flags, configuration (file, then
 * JOBQ_REDIS_URL, then flags), plugin loading, and the supervisor. The only
 * place that decides the process exit status.
 */
#include <getopt.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "protocol/redis.h"
#include "protocol/tls.h"
#include "daemon/plugin.h"
#include "core/redis_url.h"
#include "daemon/supervisor.h"

typedef struct options {
    const char *config_path; /* NULL: the default path, if it exists */
    const char *redis_url;
    const char *queues;
    int workers;             /* 0: not given */
    bool check_config;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "Usage: jobqd [OPTIONS]\n"
            "Run the jobq supervisor and its workers in the foreground.\n\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "      --redis URL     redis://[[user]:password@]host[:port][/db] or\n"
            "                      unix:///path/redis.sock[?db=N] (else $JOBQ_REDIS_URL,\n"
            "                      else the file's [redis] url)\n"
            "      --workers N     worker processes\n"
            "      --queues a,b,c  queues to serve, highest priority first\n"
            "      --check-config  validate the configuration, print it, and exit\n"
            "      --version       print the version and exit\n"
            "      --help          print this help and exit\n\n"
            "Signals: TERM/INT drain and exit 0; HUP reloads the configuration.\n",
            JOBQ_DEFAULT_CONFIG_PATH);
}

/* Defaults, the file, the environment, then the flags. */
static int load_config(jobq_config *cfg, void *ctx, jobq_err *err) {
    const options *o = ctx;
    const char *path = o->config_path;
    if (!path && access(JOBQ_DEFAULT_CONFIG_PATH, F_OK) == 0) path = JOBQ_DEFAULT_CONFIG_PATH;
    if (path) {
        if (jobq_config_load(cfg, path, err) != 0) return -1;
    } else {
        jobq_config_defaults(cfg);
    }
    const char *env_url = getenv("JOBQ_REDIS_URL");
    const char *url = o->redis_url ? o->redis_url : (env_url && *env_url ? env_url : NULL);
    if (url) {
        jobq_redis_url parsed;
        if (jobq_redis_url_parse(url, &parsed, err) != 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            jobq_err_set(err, JOBQ_E_CONFIG, "%s: %s", o->redis_url ? "--redis" : "JOBQ_REDIS_URL", msg);
            jobq_config_fini(cfg);
            return -1;
        }
        jobq_redis_url_fini(&parsed);
        jobq_config_set_string(&cfg->redis_url, url);
    }
    if (!o->check_config && jobq_config_load_secrets(cfg, err) != 0) {
        jobq_config_fini(cfg);
        return -1;
    }
    if (o->workers) cfg->workers = o->workers;
    if (o->queues && jobq_config_set_queues(cfg, o->queues, err) != 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        jobq_err_set(err, JOBQ_E_CONFIG, "--queues: %s", msg);
        jobq_config_fini(cfg);
        return -1;
    }
    return 0;
}

/* Everything after the flags: config, plugins, supervisor. */
/* Enough file descriptors for the loop, Redis and the workers' pipes?
 * libev aborts when it cannot make its own, so say it clearly first. */
static int check_fd_limit(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < 32) {
        fprintf(stderr, "jobqd: the open files limit is %llu; jobqd needs at least 32 (ulimit -n, LimitNOFILE=)\n",
                (unsigned long long)lim.rlim_cur);
        return -1;
    }
    return 0;
}

static int run_daemon(options *o) {
    jobq_config cfg;
    jobq_err err;
    if (!o->check_config && check_fd_limit() != 0) return 1;
    if (load_config(&cfg, o, &err) != 0) {
        fprintf(stderr, "jobqd: %s\n", err.msg);
        return 1;
    }
    if (o->check_config) {
        /* What can be checked without a server: the URL against this
         * build (TLS), the TLS files. */
        jobq_redis *offline = jobq_redis_open_config(&cfg, 1.0, &err);
        if (!offline) {
            fprintf(stderr, "jobqd: %s\n", err.msg);
            jobq_config_fini(&cfg);
            return 1;
        }
        jobq_redis_free(offline);
        jobq_config_print(&cfg, stdout);
        if (o->config_path || access(JOBQ_DEFAULT_CONFIG_PATH, F_OK) == 0)
            fprintf(stderr, "jobqd: configuration OK\n");
        else
            fprintf(stderr, "jobqd: no configuration file was read (%s does not exist): the defaults "
                            "above, with the flags and JOBQ_REDIS_URL, are OK\n", JOBQ_DEFAULT_CONFIG_PATH);
        jobq_config_fini(&cfg);
        return 0;
    }
    jobq_log_set_level(cfg.log_level);
    jobq_supervisor_configure_handlers(&cfg);
    int status = 1;
    if (jobq_plugin_load_all(cfg.test_handlers, cfg.plugins_dir, &err) < 0) {
        jobq_log_err("%s", err.msg);
        jobq_config_fini(&cfg);
        goto out;
    }
    jobq_supervisor *s = jobq_supervisor_new(&cfg, load_config, o, &err);
    if (!s) {
        jobq_log_err("%s", err.msg);
        jobq_config_fini(&cfg);
        goto out;
    }
    status = jobq_supervisor_run(s);
    jobq_supervisor_free(s);
out:
    jobq_plugin_unload_all();
    return status;
}

int main(int argc, char **argv) {
    options o = {0};
    enum { OPT_REDIS = 256, OPT_WORKERS, OPT_QUEUES, OPT_CHECK, OPT_VERSION, OPT_HELP };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"redis", required_argument, NULL, OPT_REDIS},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"queues", required_argument, NULL, OPT_QUEUES},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    jobq_log_set_role("supervisor");
    char *redis_url_copy = NULL; /* owned copy of --redis */
    int status = -1, c;
    while (status < 0 && (c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config_path = optarg; break;
        case OPT_REDIS:
            free(redis_url_copy);
            o.redis_url = redis_url_copy = strdup(optarg);
            if (!redis_url_copy) status = 1;
            else jobq_redis_url_scrub(optarg);
            break;
        case OPT_QUEUES: o.queues = optarg; break;
        case OPT_WORKERS: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || n < 1 || n > 1024) {
                fprintf(stderr, "jobqd: --workers expects an integer from 1 to 1024, got '%s'\n", optarg);
                status = 2;
            }
            o.workers = (int)n;
            break;
        }
        case OPT_CHECK: o.check_config = true; break;
        case OPT_VERSION:
            printf("jobqd %s (plugin ABI %d, TLS %s)\n", JOBQ_VERSION, JOBQ_PLUGIN_ABI,
                   jobq_tls_available() ? "yes" : "no: built with hiredis 0.14");
            status = 0;
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            status = 0;
            break;
        default:
            usage(stderr);
            status = 2;
        }
    }
    if (status < 0 && optind < argc) {
        fprintf(stderr, "jobqd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        status = 2;
    }
    if (status < 0) status = run_daemon(&o);
    free(redis_url_copy);
    return status;
}
