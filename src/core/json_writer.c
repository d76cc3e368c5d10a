/*
 * Compact JSON objects written straight into a growable buffer (see
 * json_writer.h): the per-job result and event documents.
 */
#include "core/json_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY)

static bool reserve(jobq_json_writer *w, size_t more) {
    if (w->failed) return false;
    if (w->len + more + 1 <= w->cap) return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + more + 1) cap *= 2;
    char *b = realloc(w->buf, cap);
    if (!b) {
        w->failed = true;
        return false;
    }
    w->buf = b;
    w->cap = cap;
    return true;
}

static void append(jobq_json_writer *w, const char *s, size_t n) {
    if (!reserve(w, n)) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void member(jobq_json_writer *w, const char *key) {
    size_t klen = strlen(key);
    if (!reserve(w, klen + 4)) return;
    if (!w->first) w->buf[w->len++] = ',';
    w->first = false;
    w->buf[w->len++] = '"';
    memcpy(w->buf + w->len, key, klen);
    w->len += klen;
    w->buf[w->len++] = '"';
    w->buf[w->len++] = ':';
}

void jobq_json_writer_begin(jobq_json_writer *w) {
    memset(w, 0, sizeof *w);
    w->first = true;
    append(w, "{", 1);
}

/* Encode value with jansson at the end of the buffer. */
static void append_json(jobq_json_writer *w, const json_t *value) {
    if (w->failed) return;
    size_t room = w->cap > w->len ? w->cap - w->len - 1 : 0;
    size_t need = json_dumpb(value, room ? w->buf + w->len : NULL, room, DUMP_FLAGS);
    if (need == 0) {
        w->failed = true; /* jansson could not encode it */
        return;
    }
    if (need > room) {
        if (!reserve(w, need)) return;
        /* Encoding allocates (loop detection): it may fail this time. */
        if (json_dumpb(value, w->buf + w->len, need, DUMP_FLAGS) != need) {
            w->failed = true;
            return;
        }
    }
    w->len += need;
}

static bool plain_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
    }
    return true;
}

void jobq_json_writer_string(jobq_json_writer *w, const char *key, const char *value) {
    member(w, key);
    if (!value) {
        append(w, "null", 4);
        return;
    }
    size_t n = strlen(value);
    if (plain_ascii(value, n)) {
        /* The common case (ids, names, worker ids): nothing to escape. */
        if (!reserve(w, n + 2)) return;
        w->buf[w->len++] = '"';
        memcpy(w->buf + w->len, value, n);
        w->len += n;
        w->buf[w->len++] = '"';
        return;
    }
    json_t *s = json_stringn(value, n);
    if (!s) {
        /* Not UTF-8 (say, a handler's message with raw bytes in it). */
        char *copy = malloc(n + 1);
        if (!copy) {
            w->failed = true;
            return;
        }
        for (size_t i = 0; i < n; i++) copy[i] = (unsigned char)value[i] >= 0x80 ? '?' : value[i];
        s = json_stringn(copy, n);
        free(copy);
    }
    if (!s) {
        w->failed = true;
        return;
    }
    append_json(w, s);
    json_decref(s);
}

void jobq_json_writer_int(jobq_json_writer *w, const char *key, long long value) {
    member(w, key);
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", value);
    append(w, num, (size_t)n);
}

void jobq_json_writer_time(jobq_json_writer *w, const char *key, double t) {
    member(w, key);
    if (!(t > 0) || !isfinite(t)) {
        append(w, "null", 4);
        return;
    }
    if (t >= 1e12) { /* not a time of this era; keep it exact */
        json_t *real = json_real(t);
        if (!real) w->failed = true;
        else append_json(w, real);
        json_decref(real);
        return;
    }
    /* Integer arithmetic instead of printf's exact binary-to-decimal
     * conversion, which dominated the cost of a no-op job. */
    long long us = llround(t * 1e6);
    char num[40];
    int n = snprintf(num, sizeof num, "%lld.%06lld", us / 1000000, us % 1000000);
    append(w, num, (size_t)n);
}

void jobq_json_writer_value(jobq_json_writer *w, const char *key, const json_t *value) {
    member(w, key);
    if (!value || json_is_null(value)) append(w, "null", 4);
    else append_json(w, value);
}

char *jobq_json_writer_finish(jobq_json_writer *w) {
    append(w, "}", 1);
    char *out = NULL;
    if (!w->failed) {
        w->buf[w->len] = '\0';
        out = w->buf;
    } else {
        free(w->buf);
    }
    memset(w, 0, sizeof *w);
    return out;
}

/* ---- whole-value encoding ---- */

typedef struct dump_buf {
    char *buf;
    size_t len, cap;
    bool failed; /* a write failed: the text is incomplete */
} dump_buf;

static int dump_append(const char *chunk, size_t size, void *data) {
    dump_buf *b = data;
    if (b->failed) return -1;
    if (b->len + size + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + size + 1) cap *= 2;
        char *n = realloc(b->buf, cap);
        if (!n) {
            b->failed = true;
            return -1;
        }
        b->buf = n;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, chunk, size);
    b->len += size;
    return 0;
}

char *jobq_json_dumps(const json_t *value, size_t flags) {
    dump_buf b = {NULL, 0, 0, false};
    if (json_dump_callback(value, dump_append, &b, flags) != 0 || b.failed || !b.buf) {
        free(b.buf);
        return NULL;
    }
    b.buf[b.len] = '\0';
    return b.buf;
}
