/*
 * What jobq's subcommands share: the option parser (global options are taken
 * anywhere), aligned tables and time formats for humans, and the Redis
 * helpers (keys, SCAN, paged ranges) over the client's one connection.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

int jobq_cli_error(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fputs("jobq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return JOBQ_CLI_USAGE;
}

char *jobq_cli_key(jobq_cli *c, char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    jobq_key_vformat(buf, size, c->key_prefix ? c->key_prefix : "jobq", fmt, ap);
    va_end(ap);
    return buf;
}

int jobq_cli_command(jobq_cli *c, json_t **out, int argc, const char **argv, const size_t *argvlen) {
    jobq_err err;
    if (jobq_queue_command_json(c->q, out, &err, argc, argv, argvlen) != 0) {
        if (err.code == JOBQ_E_IO)
            jobq_cli_error("lost the connection to Redis at %s: %s", jobq_queue_url_redacted(c->q),
                           err.msg);
        else
            jobq_cli_error("Redis error: %s", err.msg);
        return -1;
    }
    return 0;
}

/* rest with the glob characters of SCAN MATCH escaped, appended to buf. */
static void glob_escape(char *buf, size_t size, const char *rest) {
    size_t n = strlen(buf);
    for (const char *s = rest; *s && n + 3 < size; s++) {
        if (strchr("*?[]\\", *s)) buf[n++] = '\\';
        buf[n++] = *s;
    }
    buf[n] = '\0';
}

static int cmp_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *jobq_cli_scan(jobq_cli *c, const char *rest) {
    char pattern[1024] = "", literal[768];
    jobq_cli_key(c, literal, sizeof literal, "%s", rest);
    glob_escape(pattern, sizeof pattern - 1, literal);
    strcat(pattern, "*");
    json_t *seen = json_object();
    char cursor[32] = "0";
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        json_t *r;
        if (jobq_cli_command(c, &r, 6, argv, NULL) != 0) {
            json_decref(seen);
            return NULL;
        }
        const char *next = json_string_value(json_array_get(r, 0));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "0");
        size_t i;
        json_t *k;
        json_array_foreach(json_array_get(r, 1), i, k) {
            if (json_is_string(k)) json_object_set_new(seen, json_string_value(k), json_true());
        }
        json_decref(r);
    } while (strcmp(cursor, "0") != 0);
    size_t n = json_object_size(seen), i = 0;
    const char **names = calloc(n ? n : 1, sizeof *names);
    json_t *out = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(seen, k, v) {
        if (names) names[i++] = k;
    }
    size_t got = i;
    if (names) qsort(names, got, sizeof *names, cmp_strings);
    for (i = 0; i < got; i++) json_array_append_new(out, json_string(names[i]));
    free(names);
    json_decref(seen);
    return out;
}

json_t *jobq_cli_range(jobq_cli *c, const char *key, bool zset, long limit) {
    enum { PAGE = 1000 };
    json_t *all = json_array();
    for (long start = 0;; start += PAGE) {
        long stop = start + PAGE - 1;
        if (limit > 0 && stop >= limit) stop = limit - 1;
        char a[24], b[24];
        snprintf(a, sizeof a, "%ld", start);
        snprintf(b, sizeof b, "%ld", stop);
        const char *argv[] = {zset ? "ZRANGE" : "LRANGE", key, a, b};
        json_t *page;
        if (jobq_cli_command(c, &page, 4, argv, NULL) != 0) {
            json_decref(all);
            return NULL;
        }
        json_array_extend(all, page);
        size_t got = json_array_size(page);
        json_decref(page);
        if ((long)got < stop - start + 1 || (limit > 0 && stop + 1 >= limit)) break;
    }
    return all;
}

const char *jobq_cli_payload_id(json_t *payload) {
    const char *id = json_string_value(json_object_get(payload, "id"));
    if (id && *id) return id;
    return json_string_value(json_object_get(json_object_get(payload, "_jobq"), "id"));
}

/* ---- options ---- */

void jobq_cli_parser_init(jobq_cli_parser *p, jobq_cli *c, const jobq_cli_opt *opts, int argc,
                          char **argv) {
    memset(p, 0, sizeof *p);
    p->cli = c;
    p->opts = opts;
    p->argc = argc;
    p->argv = argv;
    p->i = 1;
}

enum { G_REDIS = 1000, G_PREFIX, G_CONFIG, G_HELP };
static const jobq_cli_opt global_opts[] = {
    {"redis", 0, JOBQ_CLI_ARG, G_REDIS},
    {"prefix", 0, JOBQ_CLI_ARG, G_PREFIX},
    {"config", 'c', JOBQ_CLI_ARG, G_CONFIG},
    {"help", 'h', JOBQ_CLI_NOARG, G_HELP},
    {NULL, 0, 0, 0},
};

static const jobq_cli_opt *find_opt(const jobq_cli_opt *opts, const char *name, size_t len,
                                    char letter) {
    for (; opts->id; opts++) {
        if (letter ? opts->letter == letter
                   : (opts->name && strlen(opts->name) == len && strncmp(opts->name, name, len) == 0))
            return opts;
    }
    return NULL;
}

static bool looks_numeric(const char *s) {
    if (!*s) return false;
    char *end;
    strtod(s, &end);
    return *end == '\0';
}

int jobq_cli_next(jobq_cli_parser *p, const char **value) {
    jobq_cli *c = p->cli;
    const char *cmd = c->cmd ? c->cmd : "jobq";
    for (;;) {
        *value = NULL;
        if (p->i >= p->argc) return JOBQ_CLI_END;
        char *arg = p->argv[p->i++];
        if (p->positional_only || arg[0] != '-' || arg[1] == '\0' ||
            (arg[1] != '-' && (isdigit((unsigned char)arg[1]) || arg[1] == '.'))) {
            *value = arg;
            return JOBQ_CLI_POSITIONAL;
        }
        if (strcmp(arg, "--") == 0) {
            p->positional_only = true;
            continue;
        }
        const jobq_cli_opt *o;
        const char *inline_value = NULL;
        char shown[80];
        if (arg[1] == '-') {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find_opt(p->opts, name, len, 0);
            if (!o) o = find_opt(global_opts, name, len, 0);
            if (eq) inline_value = eq + 1;
            snprintf(shown, sizeof shown, "--%.*s", (int)len, name);
        } else {
            o = find_opt(p->opts, NULL, 0, arg[1]);
            if (!o) o = find_opt(global_opts, NULL, 0, arg[1]);
            if (arg[2]) inline_value = arg + 2;
            snprintf(shown, sizeof shown, "-%c", arg[1]);
        }
        if (!o) {
            jobq_cli_error("%s: unknown option '%s' (see 'jobq %s --help')", cmd, arg,
                           c->cmd ? c->cmd : "");
            return JOBQ_CLI_BAD;
        }
        if (o->arg == JOBQ_CLI_NOARG && inline_value) {
            jobq_cli_error("%s: %s takes no value", cmd, shown);
            return JOBQ_CLI_BAD;
        }
        if (o->arg == JOBQ_CLI_ARG && !inline_value) {
            if (p->i >= p->argc) {
                jobq_cli_error("%s: %s needs a value", cmd, shown);
                return JOBQ_CLI_BAD;
            }
            inline_value = p->argv[p->i++];
        }
        if (o->arg == JOBQ_CLI_OPTARG && !inline_value && p->i < p->argc && looks_numeric(p->argv[p->i]))
            inline_value = p->argv[p->i++];
        *value = inline_value;
        switch (o->id) {
        case G_REDIS:
            free(c->url_copy);
            c->url_copy = strdup(inline_value);
            c->redis_url = c->url_copy;
            jobq_redis_url_scrub((char *)inline_value);
            continue;
        case G_PREFIX:
            if (!*inline_value) {
                jobq_cli_error("%s: --prefix must not be empty", cmd);
                return JOBQ_CLI_BAD;
            }
            c->prefix = inline_value;
            continue;
        case G_CONFIG:
            c->config_path = inline_value;
            continue;
        case G_HELP:
            return JOBQ_CLI_HELP;
        default:
            return o->id;
        }
    }
}

int jobq_cli_number(const jobq_cli *c, const char *name, const char *value, double min, double max,
                    const char *what, double *out) {
    char *end;
    double d = value && *value ? strtod(value, &end) : NAN;
    if (!value || !*value || *end != '\0' || !isfinite(d) || d < min || d > max) {
        jobq_cli_error("%s: %s expects %s, got '%s'", c->cmd ? c->cmd : "jobq", name, what,
                       value ? value : "");
        return -1;
    }
    *out = d;
    return 0;
}

/* ---- output ---- */

void jobq_cli_table_init(jobq_cli_table *t, int ncols, unsigned right) {
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->right = right;
}

void jobq_cli_table_add(jobq_cli_table *t, ...) {
    if (t->rows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        char **cells = realloc(t->cells, (size_t)cap * (size_t)t->ncols * sizeof *cells);
        if (!cells) return;
        t->cells = cells;
        t->cap = cap;
    }
    va_list ap;
    va_start(ap, t);
    for (int i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->rows * t->ncols + i] = strdup(s ? s : "");
    }
    va_end(ap);
    t->rows++;
}

void jobq_cli_table_print(const jobq_cli_table *t, FILE *out, int indent) {
    int width[32] = {0};
    for (int r = 0; r < t->rows; r++)
        for (int i = 0; i < t->ncols && i < 32; i++) {
            const char *s = t->cells[r * t->ncols + i];
            int w = s ? (int)strlen(s) : 0;
            if (w > width[i]) width[i] = w;
        }
    for (int r = 0; r < t->rows; r++) {
        int pad = indent;
        for (int i = 0; i < t->ncols && i < 32; i++) {
            const char *s = t->cells[r * t->ncols + i] ? t->cells[r * t->ncols + i] : "";
            bool last = i == t->ncols - 1;
            if (t->right & (1u << i))
                fprintf(out, "%*s%*s", pad, "", width[i], s);
            else
                fprintf(out, "%*s%-*s", pad, "", last ? 0 : width[i], s);
            pad = 2;
        }
        fputc('\n', out);
    }
}

void jobq_cli_table_fini(jobq_cli_table *t) {
    for (int i = 0; i < t->rows * t->ncols; i++) free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

char *jobq_cli_duration(char *buf, size_t size, double s) {
    if (!(s >= 0)) s = 0;
    if (s < 1)
        snprintf(buf, size, "%.0fms", s * 1000);
    else if (s < 60)
        snprintf(buf, size, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else if (s < 86400)
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s, 3600) / 60);
    else
        snprintf(buf, size, "%dd%02dh", (int)(s / 86400), (int)fmod(s, 86400) / 3600);
    return buf;
}

char *jobq_cli_time(char *buf, size_t size, double t, bool millis) {
    time_t secs = (time_t)t;
    struct tm tm;
    if (!(t > 0) || !localtime_r(&secs, &tm)) {
        snprintf(buf, size, "-");
        return buf;
    }
    size_t n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    if (millis && n > 0 && n < size)
        snprintf(buf + n, size - n, ".%03d", (int)((t - (double)secs) * 1000) % 1000);
    return buf;
}

void jobq_cli_print_json(json_t *v, bool pretty) {
    char *s = json_dumps(v, (pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    fflush(stdout);
}
