/*
 * [exec.NAME] and [plugin.NAME] sections (see config_sections.h). An exec
 * section's keys come from one small table; a plugin section takes any key,
 * since only the plugin knows its own. Everything here is owned by the
 * jobq_config being loaded and freed with it.
 */
#include "core/config_sections.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_PREFIX "exec."
#define PLUGIN_PREFIX "plugin."
#define MAX_PLUGIN_VALUES 1024
#define MAX_OUTPUT_DEFAULT (1L << 20)
#define MAX_OUTPUT_MAX (256L << 20)

static bool section_name_ok(const char *s, size_t len) {
    if (len == 0 || len > JOBQ_MAX_SECTION_NAME) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-') return false;
    }
    return true;
}

static bool has_prefix(const char *s, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && strncmp(s, prefix, n) == 0;
}

static int open_exec(jobq_config *cfg, const char *name, size_t len, int line, int *index, char *why,
                     size_t size) {
    for (int i = 0; i < cfg->nexecs; i++) {
        if (strlen(cfg->execs[i].name) == len && memcmp(cfg->execs[i].name, name, len) == 0) {
            *index = i;
            return 1;
        }
    }
    if (cfg->nexecs == JOBQ_MAX_NAMED_SECTIONS) {
        snprintf(why, size, "more than %d [exec.NAME] sections", JOBQ_MAX_NAMED_SECTIONS);
        return -1;
    }
    jobq_config_exec *grown = realloc(cfg->execs, (size_t)(cfg->nexecs + 1) * sizeof *grown);
    if (!grown) {
        snprintf(why, size, "out of memory");
        return -2;
    }
    cfg->execs = grown;
    jobq_config_exec *x = &cfg->execs[cfg->nexecs];
    memset(x, 0, sizeof *x);
    memcpy(x->name, name, len);
    x->max_output = MAX_OUTPUT_DEFAULT;
    x->line = line;
    x->args = strdup("");
    x->user = strdup("");
    x->env = strdup("");
    x->workdir = strdup("");
    cfg->nexecs++; /* counted now, so that fini frees what was made */
    if (!x->args || !x->user || !x->env || !x->workdir) {
        snprintf(why, size, "out of memory");
        return -2;
    }
    *index = cfg->nexecs - 1;
    return 1;
}

static int open_plugin(jobq_config *cfg, const char *name, size_t len, int line, int *index, char *why,
                       size_t size) {
    for (int i = 0; i < cfg->nplugin_sections; i++) {
        if (strlen(cfg->plugin_sections[i].name) == len && memcmp(cfg->plugin_sections[i].name, name, len) == 0) {
            *index = i;
            return 1;
        }
    }
    if (cfg->nplugin_sections == JOBQ_MAX_NAMED_SECTIONS) {
        snprintf(why, size, "more than %d [plugin.NAME] sections", JOBQ_MAX_NAMED_SECTIONS);
        return -1;
    }
    int i = cfg->nplugin_sections++;
    memset(cfg->plugin_sections[i].name, 0, sizeof cfg->plugin_sections[i].name);
    memcpy(cfg->plugin_sections[i].name, name, len);
    cfg->plugin_sections[i].line = line;
    *index = i;
    return 1;
}

int jobq_config_named_open(jobq_config *cfg, const char *header, size_t len, int line,
                           enum jobq_named_kind *kind, int *index, char *why, size_t why_size) {
    bool exec = has_prefix(header, len, EXEC_PREFIX);
    if (!exec && !has_prefix(header, len, PLUGIN_PREFIX)) return 0;
    size_t n = strlen(exec ? EXEC_PREFIX : PLUGIN_PREFIX);
    const char *name = header + n;
    size_t nlen = len - n;
    if (!section_name_ok(name, nlen)) {
        snprintf(why, why_size, "bad section [%.*s]: NAME must be 1 to %d of A-Z a-z 0-9 _ . -", (int)(len > 80 ? 80 : len),
                 header, JOBQ_MAX_SECTION_NAME);
        return -1;
    }
    *kind = exec ? JOBQ_NAMED_EXEC : JOBQ_NAMED_PLUGIN;
    return *kind == JOBQ_NAMED_EXEC ? open_exec(cfg, name, nlen, line, index, why, why_size)
                                    : open_plugin(cfg, name, nlen, line, index, why, why_size);
}

/* ---- values ---- */

static int set_string(char **field, const char *value, char *why, size_t size) {
    char *copy = strdup(value);
    if (!copy) {
        snprintf(why, size, "out of memory");
        return -2;
    }
    free(*field);
    *field = copy;
    return 0;
}

static int parse_seconds(const char *s, double min, double max, double *out, char *why, size_t size) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < min || v > max || strspn(s, "0123456789.") != strlen(s)) {
        snprintf(why, size, "expected a number of seconds from %g to %g, got '%.48s'", min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_size(const char *s, long min, long max, long *out, char *why, size_t size) {
    char *end;
    errno = 0;
    unsigned long long v = isdigit((unsigned char)*s) ? strtoull(s, &end, 10) : 0;
    unsigned long long mult = 1;
    bool ok = isdigit((unsigned char)*s) && !errno;
    if (ok && *end) {
        switch (*end) {
        case 'k': case 'K': mult = 1ULL << 10; break;
        case 'm': case 'M': mult = 1ULL << 20; break;
        case 'g': case 'G': mult = 1ULL << 30; break;
        default: ok = false;
        }
        ok = ok && !end[1];
    }
    if (!ok || v > (unsigned long long)max / mult || (long long)(v * mult) < min) {
        snprintf(why, size, "expected a size from %ld to %ld bytes (K, M or G suffixes allowed), got '%.48s'", min,
                 max, s);
        return -1;
    }
    *out = (long)(v * mult);
    return 0;
}

static int check_words(const char *value, bool assignments, char *why, size_t size) {
    char **words;
    size_t n;
    if (jobq_config_split_words(value, &words, &n, why, size) != 0) return strstr(why, "memory") ? -2 : -1;
    int rc = 0;
    for (size_t i = 0; assignments && i < n && rc == 0; i++) {
        const char *eq = strchr(words[i], '=');
        bool name_ok = eq && eq != words[i] && !isdigit((unsigned char)words[i][0]);
        for (const char *c = words[i]; name_ok && c < eq; c++) name_ok = isalnum((unsigned char)*c) || *c == '_';
        if (!name_ok) {
            snprintf(why, size, "expected NAME=VALUE words (NAME of A-Z a-z 0-9 _), got '%.48s'", words[i]);
            rc = -1;
        }
    }
    jobq_config_words_free(words);
    return rc;
}

static int exec_pair(jobq_config_exec *x, const char *name, const char *value, char *why, size_t size) {
    if (strcmp(name, "command") == 0) {
        if (value[0] != '/') {
            snprintf(why, size, "expected the absolute path of a program, got '%.48s'", value);
            return -1;
        }
        if (strlen(value) >= PATH_MAX) {
            snprintf(why, size, "the path is longer than %d bytes", PATH_MAX - 1);
            return -1;
        }
        return set_string(&x->command, value, why, size);
    }
    if (strcmp(name, "args") == 0) {
        int rc = check_words(value, false, why, size);
        return rc != 0 ? rc : set_string(&x->args, value, why, size);
    }
    if (strcmp(name, "env") == 0) {
        int rc = check_words(value, true, why, size);
        return rc != 0 ? rc : set_string(&x->env, value, why, size);
    }
    if (strcmp(name, "user") == 0) {
        if (strlen(value) > 64 || strpbrk(value, " \t:/")) {
            snprintf(why, size, "expected a user name or uid, got '%.48s'", value);
            return -1;
        }
        return set_string(&x->user, value, why, size);
    }
    if (strcmp(name, "workdir") == 0) {
        if (*value && *value != '/') {
            snprintf(why, size, "expected an absolute path (or nothing), got '%.48s'", value);
            return -1;
        }
        return set_string(&x->workdir, value, why, size);
    }
    if (strcmp(name, "timeout") == 0) return parse_seconds(value, 0, 604800, &x->timeout, why, size);
    if (strcmp(name, "max_output") == 0) return parse_size(value, 1, MAX_OUTPUT_MAX, &x->max_output, why, size);
    snprintf(why, size,
             "unknown key '%s' in section [exec.%s] (known: command, args, user, env, workdir, timeout, max_output)",
             name, x->name);
    return -1;
}

static int plugin_pair(jobq_config *cfg, const char *plugin, const char *name, const char *value, char *why,
                       size_t size) {
    for (int i = 0; i < cfg->nplugin_values; i++) {
        jobq_config_plugin_value *v = &cfg->plugin_values[i];
        if (strcmp(v->plugin, plugin) == 0 && strcmp(v->key, name) == 0) return set_string(&v->value, value, why, size);
    }
    if (cfg->nplugin_values == MAX_PLUGIN_VALUES) {
        snprintf(why, size, "more than %d keys in [plugin.NAME] sections", MAX_PLUGIN_VALUES);
        return -1;
    }
    jobq_config_plugin_value *grown = realloc(cfg->plugin_values, (size_t)(cfg->nplugin_values + 1) * sizeof *grown);
    if (!grown) {
        snprintf(why, size, "out of memory");
        return -2;
    }
    cfg->plugin_values = grown;
    jobq_config_plugin_value *v = &cfg->plugin_values[cfg->nplugin_values];
    memset(v, 0, sizeof *v);
    snprintf(v->plugin, sizeof v->plugin, "%s", plugin);
    v->key = strdup(name);
    v->value = strdup(value);
    cfg->nplugin_values++;
    if (!v->key || !v->value) {
        snprintf(why, size, "out of memory");
        return -2;
    }
    return 0;
}

int jobq_config_named_pair(jobq_config *cfg, enum jobq_named_kind kind, int index, const char *name,
                           const char *value, char *why, size_t why_size) {
    if (kind != JOBQ_NAMED_EXEC) return plugin_pair(cfg, cfg->plugin_sections[index].name, name, value, why, why_size);
    char detail[200];
    int rc = exec_pair(&cfg->execs[index], name, value, detail, sizeof detail);
    if (rc == -1 && strncmp(detail, "unknown key", 11) != 0)
        snprintf(why, why_size, "bad value for '%s' in [exec.%s]: %s", name, cfg->execs[index].name, detail);
    else if (rc != 0)
        snprintf(why, why_size, "%s", detail);
    return rc;
}

int jobq_config_named_check(const jobq_config *cfg, int *line, char *why, size_t why_size) {
    for (int i = 0; i < cfg->nexecs; i++) {
        if (!cfg->execs[i].command) {
            *line = cfg->execs[i].line;
            snprintf(why, why_size, "section [exec.%s] has no 'command' (the absolute path of the program to run)",
                     cfg->execs[i].name);
            return -1;
        }
    }
    return 0;
}

/* ---- printing and freeing ---- */

static bool secret_key(const char *key) {
    return strstr(key, "password") || strstr(key, "secret") || strstr(key, "token");
}

void jobq_config_named_print(const jobq_config *cfg, FILE *out) {
    for (int i = 0; i < cfg->nexecs; i++) {
        const jobq_config_exec *x = &cfg->execs[i];
        fprintf(out, "\n[exec.%s]\n; handler '%s' runs this program for each job\n", x->name, x->name);
        fprintf(out, "command = %s\n", x->command ? x->command : "");
        if (*x->args) fprintf(out, "args = %s\n", x->args);
        if (*x->user) fprintf(out, "user = %s\n", x->user);
        if (*x->env) fprintf(out, "env = %s\n", x->env);
        if (*x->workdir) fprintf(out, "workdir = %s\n", x->workdir);
        fprintf(out, "timeout = %g\nmax_output = %ld\n", x->timeout, x->max_output);
    }
    for (int s = 0; s < cfg->nplugin_sections; s++) {
        const char *name = cfg->plugin_sections[s].name;
        fprintf(out, "\n[plugin.%s]\n; settings of the plugin named '%s'\n", name, name);
        for (int i = 0; i < cfg->nplugin_values; i++) {
            const jobq_config_plugin_value *v = &cfg->plugin_values[i];
            if (strcmp(v->plugin, name) == 0)
                fprintf(out, "%s = %s\n", v->key, secret_key(v->key) && *v->value ? "***" : v->value);
        }
    }
}

void jobq_config_named_fini(jobq_config *cfg) {
    for (int i = 0; i < cfg->nexecs; i++) {
        jobq_config_exec *x = &cfg->execs[i];
        free(x->command);
        free(x->args);
        free(x->user);
        free(x->env);
        free(x->workdir);
    }
    free(cfg->execs);
    for (int i = 0; i < cfg->nplugin_values; i++) {
        jobq_config_plugin_value *v = &cfg->plugin_values[i];
        free(v->key);
        if (v->value) explicit_bzero(v->value, strlen(v->value)); /* may be a secret */
        free(v->value);
    }
    free(cfg->plugin_values);
    cfg->execs = NULL;
    cfg->plugin_values = NULL;
    cfg->nexecs = cfg->nplugin_values = cfg->nplugin_sections = 0;
}

/* ---- words ---- */

void jobq_config_words_free(char **words) {
    for (size_t i = 0; words && words[i]; i++) free(words[i]);
    free(words);
}

int jobq_config_split_words(const char *text, char ***words, size_t *n, char *why, size_t why_size) {
    size_t len = strlen(text), count = 0;
    /* At most len / 2 + 1 words, each no longer than text. */
    char **out = calloc(len / 2 + 2, sizeof *out);
    char *word = malloc(len + 1);
    if (!out || !word) goto nomem;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        size_t w = 0;
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\'') {
                const char *close = strchr(p + 1, '\'');
                if (!close) {
                    snprintf(why, why_size, "unclosed ' in '%.48s'", text);
                    goto fail;
                }
                memcpy(word + w, p + 1, (size_t)(close - p - 1));
                w += (size_t)(close - p - 1);
                p = close + 1;
            } else if (*p == '"') {
                for (p++; *p && *p != '"'; p++) {
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
                    word[w++] = *p;
                }
                if (*p != '"') {
                    snprintf(why, why_size, "unclosed \" in '%.48s'", text);
                    goto fail;
                }
                p++;
            } else if (*p == '\\') {
                if (!p[1]) {
                    snprintf(why, why_size, "trailing backslash in '%.48s'", text);
                    goto fail;
                }
                word[w++] = p[1];
                p += 2;
            } else {
                word[w++] = *p++;
            }
        }
        if (!(out[count] = strndup(word, w))) goto nomem;
        count++;
    }
    free(word);
    *words = out;
    *n = count;
    return 0;
nomem:
    snprintf(why, why_size, "out of memory");
fail:
    free(word);
    jobq_config_words_free(out);
    return -1;
}
