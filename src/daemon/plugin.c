/*
 * Plugin host: implements struct jobq_api over struct jobq_job and the
 * registry, and loads plugins with dlopen(RTLD_NOW|RTLD_LOCAL). Owns the list
 * of loaded plugins; a refused plugin leaves no handler and no mapping behind.
 */
#include "daemon/plugin.h"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/handlers/exec.h"
#include "daemon/handlers/handlers.h"
#include "core/job.h"
#include "core/json_writer.h"
#include "core/log.h"
#include "daemon/registry.h"

struct jobq_plugin {
    char path[1024];   /* file, or "builtin:<name>" */
    char name[64];     /* from begin() */
    void *dl;          /* dlopen handle, NULL for built-ins */
    bool began;        /* begin() accepted */
    bool in_init;      /* registration allowed */
    char refusal[300]; /* first reason to refuse, "" if none */
    jobq_worker_hook worker_init, worker_exit; /* register_worker_hooks */
    void *worker_udata;
    bool worker_ready; /* in a worker: its init hook ran and succeeded */
    struct jobq_plugin *next;
};

static struct jobq_plugin *loaded; /* owned list, the last loaded first */
static const jobq_config *loading_cfg; /* while loading: the [plugin.NAME] values (borrowed) */

static void refuse(struct jobq_plugin *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct jobq_plugin *p, const char *fmt, ...) {
    if (p->refusal[0]) return; /* keep the first reason */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->refusal, sizeof p->refusal, fmt, ap);
    va_end(ap);
}

static int api_begin(jobq_plugin *p, int abi, const char *name, const char *version) {
    if (abi != JOBQ_PLUGIN_ABI) {
        refuse(p, "built for plugin ABI %d, this jobqd speaks ABI %d", abi, JOBQ_PLUGIN_ABI);
        return JOBQ_ERR;
    }
    snprintf(p->name, sizeof p->name, "%s", name && *name ? name : "unnamed");
    p->began = true;
    jobq_log_debug("plugin %s %s: begin", p->name, version ? version : "");
    return JOBQ_OK;
}

static int api_register_handler(jobq_plugin *p, const char *name, jobq_handler_fn fn, void *udata) {
    if (!p->in_init) {
        jobq_log_warn("plugin %s: register_handler outside jobq_plugin_init ignored", p->name);
        return JOBQ_ERR;
    }
    if (!p->began) {
        refuse(p, "registered a handler before JOBQ_PLUGIN_BEGIN");
        return JOBQ_ERR;
    }
    jobq_err err;
    if (jobq_registry_add(name, fn, udata, p, &err) != 0) {
        refuse(p, "%s", err.msg);
        return JOBQ_ERR;
    }
    return JOBQ_OK;
}

static void api_log(const jobq_job *job, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    jobq_log_vwrite(level, job ? job->id : NULL, fmt, ap);
    va_end(ap);
}

static int api_fail(jobq_job *job, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return jobq_job_api_fail(job, "%s", msg);
}

static void api_progress(jobq_job *job, double fraction, const char *message) {
    if (fraction < 0 || fraction != fraction) fraction = 0;
    if (fraction > 1) fraction = 1;
    if (job->host && job->host->progress) job->host->progress(job->host->ctx, job, fraction, message);
}

static int api_register_worker_hooks(jobq_plugin *p, jobq_worker_hook init, jobq_worker_hook exit, void *udata) {
    if (!p->in_init) {
        jobq_log_warn("plugin %s: register_worker_hooks outside jobq_plugin_init ignored", p->name);
        return JOBQ_ERR;
    }
    p->worker_init = init;
    p->worker_exit = exit;
    p->worker_udata = udata;
    return JOBQ_OK;
}

static const char *api_plugin_config(jobq_plugin *p, const char *key) {
    if (!p->in_init || !p->began || !loading_cfg || !key) return NULL;
    for (int i = 0; i < loading_cfg->nplugin_values; i++) {
        const jobq_config_plugin_value *v = &loading_cfg->plugin_values[i];
        if (strcmp(v->plugin, p->name) == 0 && strcmp(v->key, key) == 0) return v->value;
    }
    return NULL;
}

static int api_enqueue(jobq_job *job, const char *queue, const char *job_json, int flags, char *id, size_t id_size) {
    char got[JOBQ_JOB_ID_MAX + 1] = "";
    jobq_err err;
    if (!job_json) {
        jobq_log_warn("job_enqueue: no job given");
        return JOBQ_ERR;
    }
    if (!job->host || !job->host->enqueue) {
        jobq_log_warn("job_enqueue: not available outside a worker");
        return JOBQ_ERR;
    }
    if (job->host->enqueue(job->host->ctx, job, queue, job_json, flags, got, sizeof got, &err) != 0) {
        jobq_log_warn("job_enqueue on queue %s refused: %s", queue ? queue : job->queue, err.msg);
        return JOBQ_ERR;
    }
    if (id && id_size) snprintf(id, id_size, "%s", got);
    return JOBQ_OK;
}

/* The jobq_progress_fn handed out by job_progress_hook: ctx is the job. */
static void progress_trampoline(void *ctx, double fraction, const char *message) {
    api_progress(ctx, fraction, message);
}

static int api_progress_hook(jobq_job *job, jobq_progress_fn *fn, void **ctx) {
    if (fn) *fn = progress_trampoline;
    if (ctx) *ctx = job;
    return JOBQ_OK;
}

static const struct jobq_api host_api = {
    .abi = JOBQ_PLUGIN_ABI,
    .size = sizeof(struct jobq_api),
    .begin = api_begin,
    .register_handler = api_register_handler,
    .log = api_log,
    .job_id = jobq_job_api_id,
    .job_attempt = jobq_job_api_attempt,
    .job_args_json = jobq_job_api_args_json,
    .job_arg_string = jobq_job_api_arg_string,
    .job_arg_number = jobq_job_api_arg_number,
    .job_time_left = jobq_job_api_time_left,
    .job_set_result_json = jobq_job_api_set_result_json,
    .job_fail = api_fail,
    .job_progress = api_progress,
    /* since 0.2.0 */
    .register_worker_hooks = api_register_worker_hooks,
    .plugin_config = api_plugin_config,
    .job_arg_type = jobq_job_api_arg_type,
    .job_arg_bool = jobq_job_api_arg_bool,
    .job_arg_int64 = jobq_job_api_arg_int64,
    .job_arg_double = jobq_job_api_arg_double,
    .job_arg_str = jobq_job_api_arg_str,
    .job_arg_count = jobq_job_api_arg_count,
    .job_arg_key = jobq_job_api_arg_key,
    .job_arg_dump = jobq_job_api_arg_dump,
    .json_escape = jobq_json_escape,
    .job_enqueue = api_enqueue,
    .job_progress_hook = api_progress_hook,
};

const struct jobq_api *jobq_plugin_api(void) { return &host_api; }

typedef int (*init_fn)(jobq_plugin *, const struct jobq_api *);

/* Run one init; on any refusal remove what it registered. Takes ownership of
 * p: it is kept in the loaded list or freed (and dlclosed). */
static int run_init(struct jobq_plugin *p, init_fn init) {
    p->in_init = true;
    int rc = init(p, &host_api);
    p->in_init = false;
    if (rc != JOBQ_OK) refuse(p, "jobq_plugin_init failed (returned %d)", rc);
    if (!p->began) refuse(p, "jobq_plugin_init did not call JOBQ_PLUGIN_BEGIN");
    if (p->refusal[0]) {
        jobq_registry_remove_owner(p);
        jobq_log_warn("plugin %s refused: %s", p->path, p->refusal);
        if (p->dl) dlclose(p->dl);
        free(p);
        return -1;
    }
    p->next = loaded;
    loaded = p;
    return 0;
}

static int load_builtin(const char *name, init_fn init, jobq_err *err) {
    struct jobq_plugin *p = calloc(1, sizeof *p);
    if (!p) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    snprintf(p->path, sizeof p->path, "builtin:%s", name);
    p->in_init = true;
    int rc = init(p, &host_api);
    p->in_init = false;
    if (rc != JOBQ_OK || p->refusal[0] || !p->began) {
        jobq_err_set(err, JOBQ_E_INVALID, "built-in handlers %s failed to register: %s", name,
                     p->refusal[0] ? p->refusal : "init failed");
        jobq_registry_remove_owner(p);
        free(p);
        return -1;
    }
    p->next = loaded;
    loaded = p;
    return 0;
}

/* May this file be loaded? Loading a .so runs its code (its constructors
 * run before any ABI check can), so only a regular file inside the plugin
 * directory, owned by root or this process's user and writable by nobody
 * else, is trusted (the way sshd treats its keys). why says what is wrong. */
static bool trusted_file(const char *real_dir, const char *path, char *why, size_t size) {
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(path, real)) {
        snprintf(why, size, "cannot resolve it: %s", strerror(errno));
        return false;
    }
    size_t n = strlen(real_dir);
    if (strncmp(real, real_dir, n) != 0 || real[n] != '/' || strchr(real + n + 1, '/')) {
        snprintf(why, size, "it resolves to %s, outside the plugin directory", real);
        return false;
    }
    if (stat(real, &st) != 0) {
        snprintf(why, size, "cannot stat it: %s", strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, size, "not a regular file");
        return false;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(why, size, "owned by uid %u, not by root or this daemon's user", (unsigned)st.st_uid);
        return false;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, size, "writable by %s (mode %03o): anyone could replace its code",
                 st.st_mode & S_IWOTH ? "others" : "its group", (unsigned)(st.st_mode & 0777));
        return false;
    }
    return true;
}

/* The plugin directory itself must not let others add or swap files. */
static bool trusted_dir(const char *dir, char *real, char *why, size_t size) {
    struct stat st;
    if (!realpath(dir, real) || stat(real, &st) != 0) {
        snprintf(why, size, "%s", strerror(errno));
        return false;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(why, size, "it is owned by uid %u, not by root or this daemon's user", (unsigned)st.st_uid);
        return false;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, size, "it is writable by %s (mode %03o): anyone could add plugins",
                 st.st_mode & S_IWOTH ? "others" : "its group", (unsigned)(st.st_mode & 0777));
        return false;
    }
    return true;
}

static int load_file(const char *path) {
    struct jobq_plugin *p = calloc(1, sizeof *p);
    if (!p) return -1;
    snprintf(p->path, sizeof p->path, "%s", path);
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        const char *why = dlerror();
        jobq_log_warn("plugin %s refused: cannot load: %s", path, why ? why : "unknown error");
        free(p);
        return -1;
    }
    init_fn init;
    void *sym = dlsym(p->dl, "jobq_plugin_init");
    memcpy(&init, &sym, sizeof init); /* object to function pointer, POSIX-sanctioned */
    if (!init) {
        jobq_log_warn("plugin %s refused: no jobq_plugin_init entry point (is it exported?)", path);
        dlclose(p->dl);
        free(p);
        return -1;
    }
    return run_init(p, init);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) jobq_log_info("plugin directory %s does not exist: no plugins", dir);
        else jobq_log_warn("cannot read plugin directory %s: %s", dir, strerror(errno));
        return 0;
    }
    char real_dir[PATH_MAX], why[PATH_MAX + 100];
    if (!trusted_dir(dir, real_dir, why, sizeof why)) {
        jobq_log_warn("plugin directory %s refused: %s; no plugins loaded", dir, why);
        closedir(d);
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0 || e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, compare_names);
    int ok = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!trusted_file(real_dir, path, why, sizeof why)) {
            jobq_log_warn("plugin %s refused: %s", path, why);
        } else if (load_file(path) == 0) {
            ok++;
            jobq_log_info("plugin %s loaded (%s)", path, loaded->name);
        }
        free(names[i]);
    }
    free(names);
    return ok;
}

/* Built-ins, exec handlers (cfg may be NULL: none), then the directory. */
static int load(bool test_handlers, const char *dir, const jobq_config *cfg, jobq_err *err) {
    if (load_builtin("testing", jobq_testing_init, err) != 0) return -1;
    if (load_builtin("wordcount", jobq_wordcount_init, err) != 0) return -1;
    if (test_handlers && load_builtin("testing-unsafe", jobq_testing_unsafe_init, err) != 0)
        return -1;
    if (cfg && jobq_exec_configure(cfg) > 0 && load_builtin("exec", jobq_exec_init, err) != 0) return -1;
    return dir && *dir ? load_dir(dir) : 0;
}

int jobq_plugin_load_all(bool test_handlers, const char *dir, jobq_err *err) {
    return load(test_handlers, dir, NULL, err);
}

int jobq_plugin_load_config(const jobq_config *cfg, jobq_err *err) {
    loading_cfg = cfg;
    int n = load(cfg->test_handlers, cfg->plugins_dir, cfg, err);
    loading_cfg = NULL;
    for (int i = 0; n >= 0 && i < cfg->nplugin_sections; i++) {
        bool claimed = false;
        for (const struct jobq_plugin *p = loaded; p && !claimed; p = p->next)
            claimed = strcmp(p->name, cfg->plugin_sections[i].name) == 0;
        if (!claimed)
            jobq_log_warn("config section [plugin.%s] (line %d): no loaded plugin is named %s; its settings are "
                          "unused", cfg->plugin_sections[i].name, cfg->plugin_sections[i].line,
                          cfg->plugin_sections[i].name);
    }
    return n;
}

/* In load order: the list holds the last loaded first. */
static void run_worker_hooks(struct jobq_plugin *p, bool start) {
    if (!p) return;
    if (start) run_worker_hooks(p->next, start);
    if (start) {
        p->worker_ready = !p->worker_init || p->worker_init(p->worker_udata) == JOBQ_OK;
        if (!p->worker_ready)
            jobq_log_err("plugin %s: its worker init hook failed; its jobs fail in this worker", p->name);
    } else if (p->worker_ready && p->worker_exit) {
        if (p->worker_exit(p->worker_udata) != JOBQ_OK) jobq_log_warn("plugin %s: its worker exit hook failed", p->name);
        p->worker_ready = false;
    }
    if (!start) run_worker_hooks(p->next, start);
}

bool jobq_plugin_worker_start(void) {
    run_worker_hooks(loaded, true);
    for (const struct jobq_plugin *p = loaded; p; p = p->next)
        if (p->worker_ready && p->worker_exit) return true;
    return false;
}

void jobq_plugin_worker_stop(void) { run_worker_hooks(loaded, false); }

bool jobq_plugin_ready(const void *owner, char *why, size_t why_size) {
    const struct jobq_plugin *p = owner;
    if (!p || p->worker_ready || !p->worker_init) return true;
    snprintf(why, why_size, "plugin %s: its worker init hook failed", p->name);
    return false;
}

void jobq_plugin_unload_all(void) {
    jobq_registry_clear();
    jobq_exec_unload();
    while (loaded) {
        struct jobq_plugin *p = loaded;
        loaded = p->next;
        if (p->dl) dlclose(p->dl);
        free(p);
    }
}
