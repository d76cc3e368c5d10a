/*
 * Exec handlers (see exec.h). Per job the worker forks the program into a
 * process group of its own: the job's args JSON on its stdin, the result
 * JSON read from its stdout (exit 0 = ok; empty = null), the tail of its
 * stderr as the error of a non-zero exit, and lines "progress F [message]"
 * on fd 3 published as progress events. One poll() loop, bounded buffers,
 * no threads. The group is killed (SIGKILL) when the program ends (its
 * leftovers), overruns its timeout or its stdout limit; the worker's slot
 * names the group, so a worker killed for the job's timeout, a cancel or
 * the shutdown deadline takes it down too, and PR_SET_PDEATHSIG kills the
 * program if its worker dies any other way.
 */
#include "daemon/handlers/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config_sections.h"
#include "core/job.h"
#include "core/log.h"
#include "daemon/registry.h"

#define STDERR_TAIL 2048          /* bytes of stderr kept for the error */
#define PROGRESS_LINE_MAX 1024    /* longer progress lines are cut */
#define READ_CHUNK 65536
#define MAX_ARG_VARS 64           /* JOBQ_ARG_* variables at most */
#define MAX_ARG_VALUE 4096        /* bytes of one JOBQ_ARG_* value */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define NO_PIDFD_TICK_MS 50       /* without pidfd: how often the child is checked */

typedef struct exec_handler {
    char name[JOBQ_MAX_SECTION_NAME + 1];
    char *command;     /* owned */
    char **argv;       /* owned, NULL-terminated: command, then the args words */
    char **env;        /* owned, NULL-terminated NAME=VALUE words of the section */
    char *workdir;     /* owned; "/" by default */
    double timeout;    /* seconds; 0 = none of its own */
    long max_output;   /* bytes of stdout */
    bool drop;         /* switch to uid/gid/groups in the child */
    uid_t uid;
    gid_t gid;
    gid_t *groups;     /* owned */
    int ngroups;
    char *user;        /* owned: the user's name, for USER/LOGNAME; NULL when not switching */
    char *home;        /* owned: the user's home, for HOME */
    char problem[300]; /* non-empty: every job fails with this */
    struct exec_handler *next;
} exec_handler;

static exec_handler *handlers;     /* owned list */
static const struct jobq_api *api; /* host table, set by jobq_exec_init */

/* ---- configuration (supervisor) ---- */

static void handler_free(exec_handler *h) {
    if (!h) return;
    free(h->command);
    jobq_config_words_free(h->argv);
    jobq_config_words_free(h->env);
    free(h->workdir);
    free(h->groups);
    free(h->user);
    free(h->home);
    free(h);
}

void jobq_exec_unload(void) {
    while (handlers) {
        exec_handler *h = handlers;
        handlers = h->next;
        handler_free(h);
    }
}

/* Look up x->user now: uid, gid, supplementary groups, home. */
static void resolve_user(exec_handler *h, const jobq_config_exec *x) {
    if (!*x->user) return;
    if (geteuid() != 0) {
        snprintf(h->problem, sizeof h->problem,
                 "exec %s: user = %s needs jobqd to run as root to switch users (it runs as uid %u); "
                 "remove 'user' or run jobqd as root", h->name, x->user, (unsigned)geteuid());
        return;
    }
    char *end;
    errno = 0;
    unsigned long n = strtoul(x->user, &end, 10);
    struct passwd *pw = *x->user && !*end && !errno ? getpwuid((uid_t)n) : getpwnam(x->user);
    if (!pw) {
        snprintf(h->problem, sizeof h->problem, "exec %s: no such user '%s'", h->name, x->user);
        return;
    }
    int ngroups = 64;
    gid_t *groups = NULL;
    for (int tries = 0; tries < 4; tries++) {
        gid_t *grown = realloc(groups, (size_t)ngroups * sizeof *groups);
        if (!grown) break;
        groups = grown;
        int want = ngroups;
        if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &want) >= 0) {
            ngroups = want;
            h->groups = groups;
            groups = NULL;
            break;
        }
        ngroups = want > ngroups ? want : ngroups * 2;
    }
    free(groups);
    h->user = strdup(pw->pw_name);
    h->home = strdup(pw->pw_dir);
    if (!h->groups || !h->user || !h->home) {
        snprintf(h->problem, sizeof h->problem, "exec %s: out of memory looking up user '%s'", h->name, x->user);
        return;
    }
    h->ngroups = ngroups;
    h->uid = pw->pw_uid;
    h->gid = pw->pw_gid;
    h->drop = true;
}

static exec_handler *build(const jobq_config_exec *x) {
    exec_handler *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    snprintf(h->name, sizeof h->name, "%s", x->name);
    h->timeout = x->timeout;
    h->max_output = x->max_output;
    char **words = NULL, why[200];
    size_t n = 0;
    h->command = strdup(x->command);
    h->workdir = strdup(*x->workdir ? x->workdir : "/");
    if (!h->command || !h->workdir || jobq_config_split_words(x->args, &words, &n, why, sizeof why) != 0 ||
        jobq_config_split_words(x->env, &h->env, &(size_t){0}, why, sizeof why) != 0)
        goto fail;
    h->argv = calloc(n + 2, sizeof *h->argv);
    if (!h->argv || !(h->argv[0] = strdup(x->command))) goto fail;
    for (size_t i = 0; i < n; i++) {
        h->argv[i + 1] = words[i];
        words[i] = NULL;
    }
    jobq_config_words_free(words);
    resolve_user(h, x);
    if (access(h->command, X_OK) != 0)
        jobq_log_warn("exec %s: %s is not executable by jobqd (%s); its jobs will fail until it is", h->name,
                      h->command, strerror(errno));
    if (h->problem[0]) jobq_log_warn("%s; its jobs fail with this error", h->problem);
    return h;
fail:
    jobq_config_words_free(words);
    handler_free(h);
    return NULL;
}

int jobq_exec_configure(const jobq_config *cfg) {
    jobq_exec_unload();
    exec_handler **tail = &handlers;
    int n = 0;
    for (int i = 0; i < cfg->nexecs; i++) {
        exec_handler *h = build(&cfg->execs[i]);
        if (!h) {
            jobq_log_err("exec %s: out of memory; handler not registered", cfg->execs[i].name);
            continue;
        }
        *tail = h;
        tail = &h->next;
        n++;
    }
    return n;
}

/* ---- the environment of the program ---- */

typedef struct envlist {
    char **v; /* owned strings, NULL-terminated */
    size_t n, cap;
    bool failed;
} envlist;

/* Add NAME=VALUE, replacing an earlier NAME. */
static void env_put(envlist *e, const char *name, size_t name_len, const char *value) {
    char *s = NULL;
    if (e->failed || asprintf(&s, "%.*s=%s", (int)name_len, name, value) < 0) {
        e->failed = true;
        return;
    }
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], s, name_len + 1) == 0) {
            free(e->v[i]);
            e->v[i] = s;
            return;
        }
    }
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        char **grown = realloc(e->v, cap * sizeof *grown);
        if (!grown) {
            free(s);
            e->failed = true;
            return;
        }
        e->v = grown;
        e->cap = cap;
    }
    e->v[e->n++] = s;
    e->v[e->n] = NULL;
}

static void env_set(envlist *e, const char *name, const char *value) { env_put(e, name, strlen(name), value); }

static void env_pass(envlist *e, const char *name) {
    const char *v = getenv(name);
    if (v) env_set(e, name, v);
}

static bool arg_var_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64 || (*s >= '0' && *s <= '9')) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* JOBQ_ARG_<name> for each top-level scalar member of an object args
 * (strings without NUL, numbers, booleans), for programs that would rather
 * not parse JSON (shell scripts). */
static void env_args(envlist *e, const struct jobq_job *job) {
    const char *key;
    json_t *v;
    int count = 0;
    if (!json_is_object(job->args)) return;
    json_object_foreach(job->args, key, v) {
        if (count >= MAX_ARG_VARS || !arg_var_name(key)) continue;
        char num[64], var[80];
        const char *text = NULL;
        if (json_is_string(v) && json_string_length(v) <= MAX_ARG_VALUE &&
            strlen(json_string_value(v)) == json_string_length(v))
            text = json_string_value(v);
        else if (json_is_integer(v))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)), text = num;
        else if (json_is_real(v))
            snprintf(num, sizeof num, "%.17g", json_real_value(v)), text = num;
        else if (json_is_boolean(v))
            text = json_is_true(v) ? "true" : "false";
        if (!text) continue;
        snprintf(var, sizeof var, "JOBQ_ARG_%s", key);
        env_set(e, var, text);
        count++;
    }
}

static void env_build(envlist *e, const exec_handler *h, const struct jobq_job *job) {
    char num[64];
    env_set(e, "PATH", DEFAULT_PATH);
    if (h->drop) {
        env_set(e, "HOME", h->home);
        env_set(e, "USER", h->user);
        env_set(e, "LOGNAME", h->user);
    } else {
        env_pass(e, "HOME");
        env_pass(e, "USER");
        env_pass(e, "LOGNAME");
    }
    env_pass(e, "LANG");
    env_pass(e, "LC_ALL");
    env_pass(e, "TZ");
    env_set(e, "JOBQ_JOB_ID", job->id);
    env_set(e, "JOBQ_HANDLER", job->handler);
    env_set(e, "JOBQ_QUEUE", job->queue ? job->queue : "");
    snprintf(num, sizeof num, "%d", job->attempt);
    env_set(e, "JOBQ_ATTEMPT", num);
    snprintf(num, sizeof num, "%.3f", jobq_job_api_time_left(job));
    env_set(e, "JOBQ_TIME_LEFT", num);
    env_set(e, "JOBQ_PROGRESS_FD", "3");
    env_args(e, job);
    for (size_t i = 0; h->env && h->env[i]; i++) {
        const char *eq = strchr(h->env[i], '=');
        if (eq) env_put(e, h->env[i], (size_t)(eq - h->env[i]), eq + 1);
    }
}

static void env_free(envlist *e) { jobq_config_words_free(e->v); }

/* ---- the child ---- */

/* Say why the child could not start, on its stderr (the pipe), and leave. */
static void child_fail(const exec_handler *h, const char *what, int status) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "exec %s: %s: %s\n", h->name, what, strerror(errno));
    if (n > 0 && write(2, msg, (size_t)n) < 0) {
        /* nothing left to tell it with */
    }
    _exit(status);
}

/* In the forked child: the pipes on 0-3, everything else closed, signals
 * as a fresh process has them, its own process group, death with the
 * worker, the directory and user of the section, then the program. */
static void child_run(const exec_handler *h, int fds[4], pid_t worker, char **envp) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != worker) _exit(127); /* the worker died before prctl */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL); /* SIGPIPE and SIGHUP were ignored */
    int high[4];
    for (int i = 0; i < 4; i++)
        if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 10)) < 0) _exit(127);
    for (int i = 0; i < 4; i++)
        if (dup2(high[i], i) < 0) _exit(127); /* dup2 leaves close-on-exec off */
    if (close_range(4, ~0U, 0) != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 4; fd < (max > 0 && max < 65536 ? max : 65536); fd++) close((int)fd);
    }
    if (chdir(h->workdir) != 0) child_fail(h, h->workdir, 126);
    if (h->drop) {
        if (setgroups((size_t)h->ngroups, h->groups) != 0) child_fail(h, "setgroups", 126);
        if (setresgid(h->gid, h->gid, h->gid) != 0) child_fail(h, "setresgid", 126);
        if (setresuid(h->uid, h->uid, h->uid) != 0) child_fail(h, "setresuid", 126);
        if (getuid() != h->uid || geteuid() != h->uid) {
            errno = EPERM;
            child_fail(h, "switching user", 126);
        }
    }
    execve(h->command, h->argv, envp);
    char what[300];
    snprintf(what, sizeof what, "cannot run %s", h->command);
    child_fail(h, what, 127);
}

/* ---- the parent: one run ---- */

enum { P_IN, P_OUT, P_ERR, P_PROG, NPIPES };

typedef struct run {
    const exec_handler *h;
    jobq_job *job;
    pid_t pid;
    int fd[NPIPES];     /* our ends, -1 once closed */
    int pidfd;          /* -1 when the kernel has none: the child is checked every tick */
    char *input;        /* owned: args JSON and a newline */
    size_t input_len, input_off;
    char *out;          /* owned: stdout, at most max_output bytes */
    size_t out_len, out_cap;
    bool out_over;      /* it wrote more: killed */
    char err[2 * STDERR_TAIL]; /* the last bytes of stderr */
    size_t err_len;
    unsigned long long err_total;
    char line[PROGRESS_LINE_MAX + 1];
    size_t line_len;
    bool line_cut;      /* the current progress line is too long: skip to its end */
    bool timed_out;
    bool exited;
    int status;
} run;

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void kill_group(run *r) {
    if (r->pid > 0) kill(-r->pid, SIGKILL);
}

/* Make s (n bytes) valid UTF-8 without NUL bytes, in place: every byte of
 * an invalid sequence becomes '?'. */
static void make_utf8(char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = len > 0 && i + len <= n && !(len == 2 && c < 0xC2) && !(len == 4 && c > 0xF4);
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && len == 3) {
            unsigned char d = (unsigned char)s[i + 1];
            ok = !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d >= 0xA0); /* overlong, surrogates */
        }
        if (ok && len == 4) {
            unsigned char d = (unsigned char)s[i + 1];
            ok = !(c == 0xF0 && d < 0x90) && !(c == 0xF4 && d >= 0x90);
        }
        if (!ok || c == 0) {
            s[i++] = '?';
            continue;
        }
        i += len;
    }
}

static void on_progress_line(run *r) {
    r->line[r->line_len] = '\0';
    char *s = r->line, *end;
    if (strncmp(s, "progress", 8) != 0 || (s[8] != ' ' && s[8] != '\t')) {
        jobq_log_debug("exec %s: ignored a line on fd 3 (not 'progress F [message]')", r->h->name);
        return;
    }
    double f = strtod(s + 9, &end);
    if (end == s + 9 || (*end && *end != ' ' && *end != '\t')) {
        jobq_log_debug("exec %s: ignored a progress line without a number", r->h->name);
        return;
    }
    while (*end == ' ' || *end == '\t') end++;
    size_t mlen = strlen(end);
    while (mlen > 0 && (end[mlen - 1] == '\r' || end[mlen - 1] == ' ')) end[--mlen] = '\0';
    make_utf8(end, mlen);
    api->job_progress(r->job, f, *end ? end : NULL);
}

static void take_progress(run *r, const char *buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (!r->line_cut) on_progress_line(r);
            r->line_len = 0;
            r->line_cut = false;
        } else if (r->line_len < PROGRESS_LINE_MAX) {
            r->line[r->line_len++] = buf[i];
        } else {
            r->line_cut = true;
        }
    }
}

static void take_stderr(run *r, const char *buf, size_t n) {
    r->err_total += n;
    if (n >= STDERR_TAIL) {
        memcpy(r->err, buf + n - STDERR_TAIL, STDERR_TAIL);
        r->err_len = STDERR_TAIL;
        return;
    }
    if (r->err_len + n > sizeof r->err) {
        size_t keep = STDERR_TAIL - n;
        memmove(r->err, r->err + r->err_len - keep, keep);
        r->err_len = keep;
    }
    memcpy(r->err + r->err_len, buf, n);
    r->err_len += n;
}

static void take_stdout(run *r, const char *buf, size_t n) {
    if (r->out_over) return;
    if (r->out_len + n > (size_t)r->h->max_output) {
        r->out_over = true;
        kill_group(r);
        return;
    }
    if (r->out_len + n + 1 > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap : 16384;
        while (cap < r->out_len + n + 1) cap *= 2;
        if (cap > (size_t)r->h->max_output + 1) cap = (size_t)r->h->max_output + 1;
        char *grown = realloc(r->out, cap);
        if (!grown) {
            r->out_over = true; /* reported as out of memory below */
            kill_group(r);
            return;
        }
        r->out = grown;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, buf, n);
    r->out_len += n;
}

/* Read what pipe i has (once, or until it is empty when drain). */
static void read_pipe(run *r, int i, bool drain) {
    char buf[READ_CHUNK];
    for (int rounds = 0; r->fd[i] >= 0 && rounds < (drain ? 256 : 1); rounds++) {
        ssize_t n = read(r->fd[i], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            close_fd(&r->fd[i]);
            return;
        }
        if (i == P_OUT) take_stdout(r, buf, (size_t)n);
        else if (i == P_ERR) take_stderr(r, buf, (size_t)n);
        else take_progress(r, buf, (size_t)n);
    }
}

static void write_input(run *r) {
    while (r->fd[P_IN] >= 0 && r->input_off < r->input_len) {
        ssize_t n = write(r->fd[P_IN], r->input + r->input_off, r->input_len - r->input_off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0) { /* EPIPE: it does not read its stdin, which is its business */
            close_fd(&r->fd[P_IN]);
            return;
        }
        r->input_off += (size_t)n;
    }
    close_fd(&r->fd[P_IN]);
}

static bool child_exited(run *r) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == r->pid;
}

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Feed, read and watch the child until it exits (killing its group at the
 * timeout), then drain its pipes, kill what is left of its group and reap
 * it. */
static void supervise(run *r) {
    double deadline = r->h->timeout > 0 ? monotonic() + r->h->timeout : 0;
    while (!r->exited) {
        struct pollfd pfd[NPIPES + 1];
        int map[NPIPES + 1], n = 0;
        for (int i = 0; i < NPIPES; i++) {
            if (r->fd[i] < 0) continue;
            pfd[n] = (struct pollfd){.fd = r->fd[i], .events = i == P_IN ? POLLOUT : POLLIN};
            map[n++] = i;
        }
        if (r->pidfd >= 0) {
            pfd[n] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
            map[n++] = -1;
        }
        int wait_ms = r->pidfd >= 0 ? -1 : NO_PIDFD_TICK_MS;
        if (deadline > 0 && !r->timed_out) {
            double left = deadline - monotonic();
            int left_ms = left <= 0 ? 0 : (int)(left * 1000) + 1;
            if (wait_ms < 0 || left_ms < wait_ms) wait_ms = left_ms;
        }
        int ready = poll(pfd, (nfds_t)n, wait_ms);
        if (ready < 0 && errno != EINTR) {
            jobq_log_err("exec %s: poll: %s; killing the program", r->h->name, strerror(errno));
            kill_group(r);
            r->timed_out = true;
        }
        for (int k = 0; ready > 0 && k < n; k++) {
            if (!pfd[k].revents) continue;
            if (map[k] == -1) r->exited = true;
            else if (map[k] == P_IN) write_input(r);
            else read_pipe(r, map[k], false);
        }
        if (r->pidfd < 0 || ready == 0) r->exited = r->exited || child_exited(r);
        if (!r->exited && deadline > 0 && !r->timed_out && monotonic() >= deadline) {
            r->timed_out = true;
            kill_group(r);
        }
    }
    for (int i = P_OUT; i < NPIPES; i++) read_pipe(r, i, true);
    kill_group(r); /* whatever it left running */
    if (r->job->host && r->job->host->child_group) r->job->host->child_group(r->job->host->ctx, 0);
    while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR) {
    }
}

/* The end of stderr as one line of text for an error message. */
static const char *stderr_tail(run *r) {
    size_t n = r->err_len;
    while (n > 0 && (r->err[n - 1] == '\n' || r->err[n - 1] == '\r' || r->err[n - 1] == ' ')) n--;
    size_t from = n > STDERR_TAIL - 8 ? n - (STDERR_TAIL - 8) : 0;
    static char tail[STDERR_TAIL];
    memcpy(tail, r->err + from, n - from);
    tail[n - from] = '\0';
    make_utf8(tail, n - from);
    return tail;
}

/* Fail the job with a message of any length (api->job_fail cuts at 1 KiB,
 * and the end of stderr is what matters). */
static int fail(jobq_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(jobq_job *job, const char *fmt, ...) {
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    jobq_job_set_failed(job, "%s", n >= 0 && msg ? msg : "exec: out of memory");
    free(n >= 0 ? msg : NULL);
    return JOBQ_ERR;
}

/* Judge the run: the job's result or failure. */
static int conclude(run *r) {
    const char *name = r->h->name;
    const char *tail = stderr_tail(r);
    const char *sep = *tail ? ": " : "";
    if (r->timed_out)
        return fail(r->job, "exec %s: timed out after %g s; its process group was killed%s%s", name,
                             r->h->timeout, sep, tail);
    if (r->out_over)
        return fail(r->job, "exec %s: wrote more than %ld bytes to stdout (max_output); its process "
                             "group was killed", name, r->h->max_output);
    if (WIFSIGNALED(r->status)) {
        const char *sig = sigabbrev_np(WTERMSIG(r->status));
        return fail(r->job, "exec %s: killed by signal SIG%s%s%s", name, sig ? sig : "?", sep, tail);
    }
    if (WEXITSTATUS(r->status) != 0)
        return fail(r->job, "exec %s: exited with status %d%s%s", name, WEXITSTATUS(r->status),
                             *tail ? ": " : " (nothing on stderr)", tail);
    if (r->err_total) api->log(r->job, JOBQ_LOG_DEBUG, "exec %s: stderr: %s", name, tail);
    size_t start = 0;
    while (start < r->out_len && strchr(" \t\r\n", r->out[start])) start++;
    if (start == r->out_len) return JOBQ_OK; /* nothing printed: the result is null */
    r->out[r->out_len] = '\0';
    json_error_t jerr;
    json_t *v = json_loadb(r->out, r->out_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v) {
        char head[121];
        size_t n = r->out_len - start < 120 ? r->out_len - start : 120;
        memcpy(head, r->out + start, n);
        head[n] = '\0';
        make_utf8(head, n);
        return fail(r->job, "exec %s: stdout is not valid JSON (%s at line %d column %d): %s%s", name,
                             jerr.text, jerr.line, jerr.column, head, r->out_len - start > 120 ? "..." : "");
    }
    json_decref(r->job->result);
    r->job->result = v;
    return JOBQ_OK;
}

static int open_pipes(int fds[NPIPES][2]) {
    for (int i = 0; i < NPIPES; i++) fds[i][0] = fds[i][1] = -1;
    for (int i = 0; i < NPIPES; i++)
        if (pipe2(fds[i], O_CLOEXEC) != 0) return -1;
    return 0;
}

static void close_pipes(int fds[NPIPES][2]) {
    for (int i = 0; i < NPIPES; i++) {
        close_fd(&fds[i][0]);
        close_fd(&fds[i][1]);
    }
}

static int exec_handler_run(jobq_job *job, void *udata) {
    const exec_handler *h = udata;
    if (h->problem[0]) return api->job_fail(job, "%s", h->problem);
    run r = {.h = h, .job = job, .pid = -1, .pidfd = -1};
    for (int i = 0; i < NPIPES; i++) r.fd[i] = -1;
    envlist env = {0};
    int fds[NPIPES][2];
    int rc = JOBQ_ERR;
    const char *args = api->job_args_json(job);
    if (asprintf(&r.input, "%s\n", args) < 0) {
        r.input = NULL;
        return api->job_fail(job, "exec %s: out of memory", h->name);
    }
    r.input_len = strlen(r.input);
    env_build(&env, h, job);
    if (env.failed) {
        api->job_fail(job, "exec %s: out of memory building the environment", h->name);
        goto out;
    }
    if (open_pipes(fds) != 0) {
        api->job_fail(job, "exec %s: cannot make pipes: %s", h->name, strerror(errno));
        close_pipes(fds);
        goto out;
    }
    pid_t worker = getpid();
    r.pid = fork();
    if (r.pid == 0) {
        int child[4] = {fds[P_IN][0], fds[P_OUT][1], fds[P_ERR][1], fds[P_PROG][1]};
        child_run(h, child, worker, env.v);
    }
    if (r.pid < 0) {
        api->job_fail(job, "exec %s: cannot fork: %s", h->name, strerror(errno));
        close_pipes(fds);
        goto out;
    }
    setpgid(r.pid, r.pid); /* also done by the child: whichever runs first */
    if (job->host && job->host->child_group) job->host->child_group(job->host->ctx, r.pid);
    r.fd[P_IN] = fds[P_IN][1];
    r.fd[P_OUT] = fds[P_OUT][0];
    r.fd[P_ERR] = fds[P_ERR][0];
    r.fd[P_PROG] = fds[P_PROG][0];
    fds[P_IN][1] = fds[P_OUT][0] = fds[P_ERR][0] = fds[P_PROG][0] = -1;
    close_pipes(fds); /* the child's ends */
    for (int i = 0; i < NPIPES; i++) fcntl(r.fd[i], F_SETFL, O_NONBLOCK);
    r.pidfd = (int)syscall(SYS_pidfd_open, r.pid, 0);
    supervise(&r);
    rc = conclude(&r);
out:
    for (int i = 0; i < NPIPES; i++) close_fd(&r.fd[i]);
    close_fd(&r.pidfd);
    free(r.input);
    free(r.out);
    env_free(&env);
    return rc;
}

int jobq_exec_init(jobq_plugin *p, const struct jobq_api *host) {
    api = host;
    if (JOBQ_PLUGIN_BEGIN(p, host, "exec", JOBQ_VERSION) != JOBQ_OK) return JOBQ_ERR;
    for (exec_handler *h = handlers; h; h = h->next) {
        if (jobq_registry_find(h->name)) {
            jobq_log_warn("exec %s refused: handler '%s' is already registered (a built-in); rename the "
                          "[exec.%s] section", h->name, h->name, h->name);
            continue;
        }
        if (host->register_handler(p, h->name, exec_handler_run, h) != JOBQ_OK) return JOBQ_ERR;
        jobq_log_info("exec handler %s: %s", h->name, h->command);
    }
    return JOBQ_OK;
}
