/*
 * Compact JSON objects written straight into a growable buffer, for the
 * documents jobq writes once per job (results, events): no jansson tree is
 * built only to be serialised again. Strings that need escaping and nested
 * values are still encoded by jansson; times are written as fixed-point
 * Unix seconds with microseconds.
 */
#ifndef JOBQ_JSON_WRITER_H
#define JOBQ_JSON_WRITER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct jobq_json_writer {
    char *buf;  /* owned until jobq_json_writer_finish hands it over */
    size_t len;
    size_t cap;
    bool failed; /* out of memory: finish returns NULL */
    bool first;  /* no member written yet */
} jobq_json_writer;

/* Start an object. Members follow in the order they are added; keys are
 * plain ASCII literals that need no escaping. */
void jobq_json_writer_begin(jobq_json_writer *w);

/* "key":"value" (escaped as needed; bytes that are not UTF-8 become '?'),
 * or "key":null when value is NULL. */
void jobq_json_writer_string(jobq_json_writer *w, const char *key, const char *value);

void jobq_json_writer_int(jobq_json_writer *w, const char *key, long long value);

/* "key":<seconds with 6 decimals>, or null when t <= 0. */
void jobq_json_writer_time(jobq_json_writer *w, const char *key, double t);

/* "key":<value encoded by jansson>, or null when value is NULL. */
void jobq_json_writer_value(jobq_json_writer *w, const char *key, const json_t *value);

/* Close the object and return it (malloc'd, NUL-terminated, the caller
 * frees), or NULL when memory ran out; w owns nothing afterwards. */
char *jobq_json_writer_finish(jobq_json_writer *w);

/* json_dumps(value, flags), except that it never hands out broken text:
 * jansson (2.14 included) ignores a failed write while encoding an object
 * key (dump.c calls dump_string without checking it), so json_dumps can
 * return JSON with a key cut out, as a success, when memory runs out at
 * that moment. This encodes into a buffer of its own and returns NULL when
 * any write failed. The caller frees. */
char *jobq_json_dumps(const json_t *value, size_t flags);

#endif
