/*
 * What jobq's subcommands share: the option parser (global options are taken
 * anywhere; subcommands describe theirs in tables), the Redis helpers over the
 * client's one connection (commands, paged ranges, the queues found with
 * SCAN), and output for humans: aligned tables, time formats, and the
 * escaping that keeps terminal control sequences out of it.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/job.h"
#include "core/redis_url.h"

/* The last message of jobq_cli_error in this thread (jobq web answers with it). */
static _Thread_local char last_error[512];

const char *jobq_cli_last_error(void) { return last_error; }

int jobq_cli_error(const char *fmt, ...) {
    va_list ap;
    char stack[1024], *msg = stack;
    va_start(ap, fmt);
    int n = vsnprintf(stack, sizeof stack, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof stack && (msg = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (!msg) msg = stack;
    size_t len = strlen(msg) < sizeof last_error - 1 ? strlen(msg) : sizeof last_error - 1;
    memcpy(last_error, msg, len);
    last_error[len] = '\0';
    fflush(stdout);
    fputs("jobq: ", stderr);
    jobq_cli_put(stderr, msg);
    fputc('\n', stderr);
    if (msg != stack) free(msg);
    return JOBQ_CLI_USAGE;
}

char *jobq_cli_key(const jobq_cli *c, char *buf, enum jobq_key_kind kind, const char *queue) {
    return jobq_key(buf, JOBQ_KEY_MAX, c->key_prefix ? c->key_prefix : "jobq", kind, queue, NULL);
}

int jobq_cli_redis_error(const jobq_cli *c, const jobq_err *err) {
    if (err->code == JOBQ_E_IO)
        jobq_cli_error("lost the connection to Redis at %s: %s", jobq_redis_url_redacted(c->r), err->msg);
    else
        jobq_cli_error("Redis error: %s", err->msg);
    return -1;
}

int jobq_cli_command(jobq_cli *c, json_t **out, int argc, const char **argv, const size_t *lens) {
    jobq_err err;
    if (jobq_redis_command_json(c->r, out, &err, argc, argv, lens) != 0) return jobq_cli_redis_error(c, &err);
    return 0;
}

int jobq_cli_integer(jobq_cli *c, long long *out, int argc, const char **argv) {
    json_t *r;
    if (jobq_cli_command(c, &r, argc, argv, NULL) != 0) return -1;
    *out = json_is_integer(r)  ? (long long)json_integer_value(r)
           : json_is_string(r) ? strtoll(json_string_value(r), NULL, 10)
                               : 0;
    json_decref(r);
    return 0;
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
        jobq_err err;
        if (jobq_redis_command_json(c->r, &page, &err, 4, argv, NULL) != 0) {
            /* A key of another type (someone SET it) holds no job: skip it. */
            if (err.code == JOBQ_E_REPLY && strstr(err.msg, "WRONGTYPE")) return all;
            json_decref(all);
            jobq_cli_redis_error(c, &err);
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
    return json_string_value(json_object_get(json_object_get(payload, JOBQ_META_FIELD), "id"));
}

/* ---- the queues there are ---- */

jobq_cli_queue *jobq_cli_queues_find(const jobq_cli_queues *qs, const char *name) {
    for (size_t i = 0; i < qs->n; i++)
        if (strcmp(qs->q[i].name, name) == 0) return &qs->q[i];
    return NULL;
}

jobq_cli_queue *jobq_cli_queues_add(jobq_cli_queues *qs, const char *name) {
    jobq_cli_queue *q = jobq_cli_queues_find(qs, name);
    if (q) return q;
    if (strlen(name) >= sizeof q->name) return NULL;
    if (qs->n == qs->cap) {
        size_t cap = qs->cap ? 2 * qs->cap : 8;
        jobq_cli_queue *grown = realloc(qs->q, cap * sizeof *grown);
        if (!grown) return NULL;
        qs->q = grown;
        qs->cap = cap;
    }
    q = &qs->q[qs->n];
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name);
    if (!(q->inflight = json_array())) return NULL;
    qs->n++;
    return q;
}

static int cmp_queues(const void *a, const void *b) {
    return strcmp(((const jobq_cli_queue *)a)->name, ((const jobq_cli_queue *)b)->name);
}

void jobq_cli_queues_sort(jobq_cli_queues *qs) {
    if (qs->n) qsort(qs->q, qs->n, sizeof *qs->q, cmp_queues);
}

void jobq_cli_queues_fini(jobq_cli_queues *qs) {
    for (size_t i = 0; i < qs->n; i++) json_decref(qs->q[i].inflight);
    free(qs->q);
    memset(qs, 0, sizeof *qs);
}

static int cmp_json_strings(const void *a, const void *b) {
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* Sort an array of strings in place. */
static void sort_strings(json_t *arr) {
    size_t n = json_array_size(arr);
    json_t **v = n ? malloc(n * sizeof *v) : NULL;
    if (!v) return;
    for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, cmp_json_strings);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, v[i]);
    free(v);
}

/* Record one key found by SCAN. -1 when memory ran out. */
static int add_key(jobq_cli_queues *qs, const char *prefix, json_t *key) {
    char name[256];
    enum jobq_key_kind kind;
    const char *k = json_string_value(key);
    if (!k || !jobq_key_parse(k, prefix, name, sizeof name, &kind)) return 0;
    jobq_cli_queue *q = jobq_cli_queues_add(qs, name);
    if (!q) return -1;
    q->kinds |= 1u << kind;
    if (kind != JOBQ_KEY_INFLIGHT) return 0;
    size_t i; /* SCAN may return a key twice */
    json_t *seen;
    json_array_foreach(q->inflight, i, seen) {
        if (json_equal(seen, key)) return 0;
    }
    return json_array_append(q->inflight, key);
}

/* SCAN one primary (every primary of a cluster holds its own keys). */
static int scan_primary(jobq_cli *c, int primary, jobq_cli_queues *qs, const char *pattern) {
    char cursor[32] = "0";
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        json_t *r;
        jobq_err err;
        if (jobq_redis_command_json_at(c->r, primary, &r, &err, 6, argv, NULL) != 0)
            return jobq_cli_redis_error(c, &err);
        const char *next = json_string_value(json_array_get(r, 0));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "0");
        size_t i;
        json_t *k;
        int rc = 0;
        json_array_foreach(json_array_get(r, 1), i, k) {
            if (rc == 0) rc = add_key(qs, c->key_prefix, k);
        }
        json_decref(r);
        if (rc != 0) {
            jobq_cli_error("out of memory");
            return -1;
        }
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int jobq_cli_queues_scan(jobq_cli *c, jobq_cli_queues *qs) {
    memset(qs, 0, sizeof *qs);
    char pattern[JOBQ_KEY_MAX];
    jobq_key_scan_pattern(pattern, sizeof pattern, c->key_prefix);
    for (int p = 0; p < jobq_redis_primaries(c->r); p++)
        if (scan_primary(c, p, qs, pattern) != 0) return -1;
    for (size_t i = 0; i < qs->n; i++) sort_strings(qs->q[i].inflight);
    jobq_cli_queues_sort(qs);
    return 0;
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
    JOBQ_CLI_OPT_ID("redis", 0, JOBQ_CLI_ARG, G_REDIS),
    JOBQ_CLI_OPT_ID("prefix", 0, JOBQ_CLI_ARG, G_PREFIX),
    JOBQ_CLI_OPT_ID("config", 'c', JOBQ_CLI_ARG, G_CONFIG),
    JOBQ_CLI_OPT_ID("help", 'h', JOBQ_CLI_NOARG, G_HELP),
    JOBQ_CLI_OPT_END,
};

static const jobq_cli_opt *find_opt(const jobq_cli_opt *opts, const char *name, size_t len, char letter) {
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

/* Handle a global option; JOBQ_CLI_END to go on, or what to return. */
static int global_option(jobq_cli *c, const char *cmd, int id, const char *value) {
    switch (id) {
    case G_REDIS:
        free(c->url_copy);
        c->url_copy = strdup(value);
        c->redis_url = c->url_copy;
        jobq_redis_url_scrub((char *)value);
        return JOBQ_CLI_END;
    case G_PREFIX:
        if (!jobq_key_valid_prefix(value)) {
            jobq_cli_error("%s--prefix must be 1 to 64 of A-Z a-z 0-9 _ . : -, got '%s'", cmd, value);
            return JOBQ_CLI_BAD;
        }
        c->prefix = value;
        return JOBQ_CLI_END;
    case G_CONFIG:
        c->config_path = value;
        return JOBQ_CLI_END;
    default:
        return JOBQ_CLI_HELP;
    }
}

/* The option arg names (a subcommand's, else a global one), with its
 * inline value ("--opt=V", "-oV") in *inline_value and its name as typed in
 * shown; NULL when there is none. */
static const jobq_cli_opt *lookup(const jobq_cli_parser *p, const char *arg, const char **inline_value,
                                  char *shown, size_t shown_size) {
    const jobq_cli_opt *o;
    *inline_value = NULL;
    if (arg[1] == '-') {
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (!(o = find_opt(p->opts, name, len, 0))) o = find_opt(global_opts, name, len, 0);
        if (eq) *inline_value = eq + 1;
        snprintf(shown, shown_size, "--%.*s", (int)len, name);
    } else {
        if (!(o = find_opt(p->opts, NULL, 0, arg[1]))) o = find_opt(global_opts, NULL, 0, arg[1]);
        if (arg[2]) *inline_value = arg + 2;
        snprintf(shown, shown_size, "-%c", arg[1]);
    }
    return o;
}

/* The value of option o: its inline one, else (when it takes one) the next
 * argument. 0, or -1 after printing why. */
static int option_value(jobq_cli_parser *p, const jobq_cli_opt *o, const char *cmd, const char *shown,
                        const char **value) {
    if (o->arg == JOBQ_CLI_NOARG && *value) return jobq_cli_error("%s%s takes no value", cmd, shown), -1;
    bool more = p->i < p->argc;
    if (o->arg == JOBQ_CLI_ARG && !*value && !more) return jobq_cli_error("%s%s needs a value", cmd, shown), -1;
    if (!*value && more && (o->arg == JOBQ_CLI_ARG || (o->arg == JOBQ_CLI_OPTARG && looks_numeric(p->argv[p->i]))))
        *value = p->argv[p->i++];
    return 0;
}

static bool is_positional(const jobq_cli_parser *p, const char *arg) {
    return p->positional_only || arg[0] != '-' || arg[1] == '\0' ||
           (arg[1] != '-' && (isdigit((unsigned char)arg[1]) || arg[1] == '.'));
}

int jobq_cli_next(jobq_cli_parser *p, const char **value) {
    jobq_cli *c = p->cli;
    char cmd[48] = ""; /* "CMD: " in messages, none before the subcommand */
    if (c->cmd) snprintf(cmd, sizeof cmd, "%s: ", c->cmd);
    for (;;) {
        *value = NULL;
        p->last = NULL;
        if (p->i >= p->argc) return JOBQ_CLI_END;
        char *arg = p->argv[p->i++];
        if (is_positional(p, arg)) {
            *value = arg;
            return JOBQ_CLI_POSITIONAL;
        }
        if (strcmp(arg, "--") == 0) {
            p->positional_only = true;
            continue;
        }
        char shown[80];
        const jobq_cli_opt *o = lookup(p, arg, value, shown, sizeof shown);
        if (!o) {
            jobq_cli_error("%sunknown option '%s' (see 'jobq %s%s--help')", cmd, arg, c->cmd ? c->cmd : "",
                           c->cmd ? " " : "");
            return JOBQ_CLI_BAD;
        }
        if (option_value(p, o, cmd, shown, value) != 0) return JOBQ_CLI_BAD;
        if (o->id >= G_REDIS) {
            int rc = global_option(c, cmd, o->id, *value);
            if (rc == JOBQ_CLI_END) continue;
            return rc;
        }
        p->last = o;
        return o->id;
    }
}

int jobq_cli_parse(jobq_cli *c, const jobq_cli_spec *spec, int argc, char **argv, int *nargs) {
    jobq_cli_parser p;
    jobq_cli_parser_init(&p, c, spec->opts, argc, argv);
    const char *v;
    int o;
    *nargs = 0;
    while ((o = jobq_cli_next(&p, &v)) != JOBQ_CLI_END) {
        if (o == JOBQ_CLI_HELP) return fputs(spec->usage, stdout), JOBQ_CLI_OK;
        if (o == JOBQ_CLI_BAD) return JOBQ_CLI_USAGE;
        if (o == JOBQ_CLI_POSITIONAL) {
            if (*nargs >= spec->max_args)
                return jobq_cli_error("%s: unexpected argument '%s'%s", c->cmd, v, spec->hint ? spec->hint : "");
            spec->args[(*nargs)++] = v;
            continue;
        }
        if (p.last->set(c, p.last, v, (char *)spec->dest + p.last->offset) != 0) return JOBQ_CLI_USAGE;
    }
    return JOBQ_CLI_PARSED;
}

int jobq_cli_number(const jobq_cli *c, const char *name, const char *value, double min, double max,
                    const char *what, double *out) {
    char *end;
    double d = value && *value ? strtod(value, &end) : NAN;
    if (!value || !*value || *end != '\0' || !isfinite(d) || d < min || d > max) {
        jobq_cli_error("%s: %s expects %s, got '%s'", c->cmd ? c->cmd : "jobq", name, what, value ? value : "");
        return -1;
    }
    *out = d;
    return 0;
}

int jobq_cli_set_flag(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field) {
    (void)c, (void)o, (void)value;
    *(bool *)field = true;
    return 0;
}

int jobq_cli_set_string(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field) {
    (void)c, (void)o;
    *(const char **)field = value;
    return 0;
}

int jobq_cli_set_number(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field) {
    char name[80];
    snprintf(name, sizeof name, "--%s", o->name);
    return jobq_cli_number(c, name, value, o->min, o->max, o->what, field);
}

int jobq_cli_set_integer(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field) {
    char name[80];
    double d;
    snprintf(name, sizeof name, "--%s", o->name);
    if (jobq_cli_number(c, name, value, o->min, o->max, o->what, &d) != 0) return -1;
    if (d != floor(d)) {
        jobq_cli_error("%s: %s expects %s, got '%s'", c->cmd, name, o->what, value);
        return -1;
    }
    *(double *)field = d;
    return 0;
}

int jobq_cli_set_wait(const jobq_cli *c, const jobq_cli_opt *o, const char *value, void *field) {
    jobq_cli_wait *w = field;
    w->on = true;
    return value ? jobq_cli_set_number(c, o, value, &w->seconds) : 0;
}

/* ---- output ---- */

/* The length of the UTF-8 sequence at s (at most n bytes) that encodes a
 * printable character; 0 when it is a control character (C1) or not UTF-8. */
static size_t printable_utf8(const unsigned char *s, size_t n) {
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    if (s[0] < 0xc2 || s[0] > 0xf4 || len > n) return 0;
    uint32_t cp = s[0] & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return cp <= 0x9f ? 0 : len; /* U+0080..U+009F: C1 controls */
}

char *jobq_cli_escape(char *buf, size_t size, const char *s, size_t len) {
    size_t n = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len && n + 1 < size;) {
        size_t take = u[i] >= 0x20 && u[i] < 0x7f ? 1 : u[i] >= 0x80 ? printable_utf8(u + i, len - i) : 0;
        if (take) {
            if (n + take + 1 > size) break;
            memcpy(buf + n, s + i, take);
            n += take;
            i += take;
        } else {
            if (n + 5 > size) break;
            snprintf(buf + n, 5, "\\x%02x", u[i]);
            n += 4;
            i++;
        }
    }
    if (size) buf[n] = '\0';
    return buf;
}

char *jobq_cli_escape_dup(const char *s, size_t len) {
    size_t size = 4 * len + 1;
    char *buf = malloc(size);
    return buf ? jobq_cli_escape(buf, size, s, len) : NULL;
}

void jobq_cli_put(FILE *out, const char *s) {
    if (!s) return;
    char *e = jobq_cli_escape_dup(s, strlen(s));
    fputs(e ? e : "?", out);
    free(e);
}

void jobq_cli_table_init(jobq_cli_table *t, int ncols, unsigned right) {
    memset(t, 0, sizeof *t);
    t->ncols = ncols < JOBQ_CLI_TABLE_MAX_COLS ? ncols : JOBQ_CLI_TABLE_MAX_COLS;
    t->right = right;
}

void jobq_cli_table_add_row(jobq_cli_table *t, const char *const *row) {
    if (t->rows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        char **cells = realloc(t->cells, (size_t)cap * (size_t)t->ncols * sizeof *cells);
        if (!cells) return;
        t->cells = cells;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++) {
        const char *s = row[i];
        t->cells[t->rows * t->ncols + i] = jobq_cli_escape_dup(s ? s : "", s ? strlen(s) : 0);
    }
    t->rows++;
}

void jobq_cli_table_add(jobq_cli_table *t, ...) {
    const char *row[JOBQ_CLI_TABLE_MAX_COLS] = {0};
    va_list ap;
    va_start(ap, t);
    for (int i = 0; i < t->ncols; i++) row[i] = va_arg(ap, const char *);
    va_end(ap);
    jobq_cli_table_add_row(t, row);
}

/* Columns a cell takes: its UTF-8 characters (cells are escaped, so valid). */
static int width_of(const char *s) {
    int w = 0;
    for (; s && *s; s++) w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

void jobq_cli_table_print(const jobq_cli_table *t, FILE *out, int indent) {
    int width[JOBQ_CLI_TABLE_MAX_COLS] = {0};
    for (int r = 0; r < t->rows; r++)
        for (int i = 0; i < t->ncols; i++) {
            int w = width_of(t->cells[r * t->ncols + i]);
            if (w > width[i]) width[i] = w;
        }
    for (int r = 0; r < t->rows; r++) {
        int pad = indent;
        for (int i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * t->ncols + i] ? t->cells[r * t->ncols + i] : "";
            int fill = width[i] - width_of(s);
            bool last = i == t->ncols - 1;
            if (t->right & (1u << i))
                fprintf(out, "%*s%*s%s", pad, "", fill, "", s);
            else
                fprintf(out, "%*s%s%*s", pad, "", s, last ? 0 : fill, "");
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
    if (millis && n > 0 && n < size) snprintf(buf + n, size - n, ".%03d", (int)((t - (double)secs) * 1000) % 1000);
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
