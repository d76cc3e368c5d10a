/* Cron entries in Redis and the firing of ticks (see crontab.h). */
#include "protocol/crontab.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/keys.h"
#include "protocol/queue.h"
#include "protocol/redis_internal.h"

static int unexpected(jobq_err *err, const char *what) {
    jobq_err_set(err, JOBQ_E_REPLY, "%s: unexpected reply", what);
    return -1;
}

bool jobq_crontab_valid_name(const char *name) {
    return name && jobq_key_valid_queue(name); /* the same alphabet and length */
}

char *jobq_crontab_definition(const char *spec, const char *handler, const char *args_json, const char *queue,
                              const char *timezone, const char *source) {
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "spec", spec, "handler", handler, "queue",
                          queue && *queue ? queue : "default", "timezone", timezone ? timezone : "", "source",
                          source ? source : "cli");
    if (!d) return NULL;
    if (args_json && *args_json) {
        json_t *args = json_loads(args_json, JSON_DECODE_ANY, NULL);
        if (!args || json_object_set_new(d, "args", args) != 0) {
            json_decref(d);
            return NULL;
        }
    }
    char *out = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(d);
    return out;
}

/* Copy string member key of d into buf; false when it is missing or too long. */
static bool copy_member(json_t *d, const char *key, char *buf, size_t size, bool required) {
    json_t *v = json_object_get(d, key);
    if (!v && !required) {
        buf[0] = '\0';
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) >= size) return false;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return true;
}

int jobq_crontab_parse(const char *name, const char *json, jobq_crontab_entry *out, char *why, size_t why_size) {
    memset(out, 0, sizeof *out);
    if (!jobq_crontab_valid_name(name)) {
        snprintf(why, why_size, "bad entry name");
        return -1;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    json_t *d = json_loads(json, 0, NULL);
    int rc = -1;
    if (!json_is_object(d)) {
        snprintf(why, why_size, "its definition is not a JSON object");
        goto out;
    }
    if (!copy_member(d, "spec", out->spec, sizeof out->spec, true) ||
        !copy_member(d, "handler", out->handler, sizeof out->handler, true) || !out->handler[0] ||
        !copy_member(d, "queue", out->queue, sizeof out->queue, false) ||
        !copy_member(d, "timezone", out->timezone, sizeof out->timezone, false) ||
        !copy_member(d, "source", out->source, sizeof out->source, false)) {
        snprintf(why, why_size, "its definition lacks a string spec or handler, or has a bad member");
        goto out;
    }
    if (!out->queue[0]) snprintf(out->queue, sizeof out->queue, "default");
    if (!jobq_key_valid_queue(out->queue)) {
        snprintf(why, why_size, "bad queue name '%s'", out->queue);
        goto out;
    }
    if (!jobq_cronspec_valid_tz(out->timezone)) {
        snprintf(why, why_size, "unknown time zone '%s'", out->timezone);
        goto out;
    }
    if (jobq_cronspec_parse(&out->parsed, out->spec, why, why_size) != 0) goto out;
    json_t *args = json_object_get(d, "args");
    if (args && !(out->args = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY))) {
        snprintf(why, why_size, "out of memory");
        goto out;
    }
    rc = 0;
out:
    json_decref(d);
    if (rc != 0) jobq_crontab_entry_fini(out);
    return rc;
}

void jobq_crontab_entry_fini(jobq_crontab_entry *e) {
    free(e->args);
    e->args = NULL;
}

int jobq_crontab_set(jobq_redis *r, const char *prefix, const char *name, const char *definition, jobq_err *err) {
    char key[JOBQ_KEY_MAX];
    jobq_key_cron(key, sizeof key, prefix);
    const char *argv[] = {"HSET", key, name, definition};
    redisReply *reply = jobq_redis_call(r, err, "HSET cron", key, 4, argv, NULL);
    if (!reply) return -1;
    freeReplyObject(reply);
    return 0;
}

int jobq_crontab_remove(jobq_redis *r, const char *prefix, const char *name, jobq_err *err) {
    char key[JOBQ_KEY_MAX];
    jobq_key_cron(key, sizeof key, prefix);
    const char *argv[] = {"HDEL", key, name};
    redisReply *reply = jobq_redis_call(r, err, "HDEL cron", key, 3, argv, NULL);
    if (!reply) return -1;
    long long n = 0;
    bool ok = jobq_reply_integer(reply, &n);
    freeReplyObject(reply);
    return ok ? n > 0 : unexpected(err, "HDEL cron");
}

void jobq_crontab_free_list(char **names, char **definitions, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (names) free(names[i]);
        if (definitions) free(definitions[i]);
    }
    free(names);
    free(definitions);
}

int jobq_crontab_list(jobq_redis *r, const char *prefix, char ***names, char ***definitions, size_t *n,
                      jobq_err *err) {
    char key[JOBQ_KEY_MAX];
    jobq_key_cron(key, sizeof key, prefix);
    *names = *definitions = NULL;
    *n = 0;
    const char *argv[] = {"HGETALL", key};
    redisReply *reply = jobq_redis_call(r, err, "HGETALL cron", key, 2, argv, NULL);
    if (!reply) return -1;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        freeReplyObject(reply);
        return unexpected(err, "HGETALL cron");
    }
    size_t count = reply->elements / 2;
    *names = calloc(count + 1, sizeof **names);
    *definitions = calloc(count + 1, sizeof **definitions);
    int rc = *names && *definitions ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        const redisReply *k = reply->element[2 * i], *v = reply->element[2 * i + 1];
        if (!jobq_reply_is_string(k) || !jobq_reply_is_string(v)) continue;
        (*names)[*n] = strndup(k->str, k->len);
        (*definitions)[*n] = strndup(v->str, v->len);
        if (!(*names)[*n] || !(*definitions)[*n]) rc = -1;
        (*n)++;
    }
    freeReplyObject(reply);
    if (rc != 0) {
        jobq_crontab_free_list(*names, *definitions, *n);
        *names = *definitions = NULL;
        *n = 0;
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
    }
    return rc;
}

void jobq_crontab_job_id(char *buf, size_t size, const char *name, long long tick) {
    snprintf(buf, size, "cron:%s:%lld", name, tick);
}

/* The job of a tick: {"id", "handler", "args", "cron": {"name", "tick"}}. */
static char *tick_payload(const jobq_crontab_entry *e, long long tick) {
    char id[JOBQ_CRON_NAME_MAX + 40];
    jobq_crontab_job_id(id, sizeof id, e->name, tick);
    json_t *job = json_pack("{s:s, s:s, s:{s:s, s:I}}", "id", id, "handler", e->handler, "cron", "name", e->name,
                            "tick", (json_int_t)tick);
    if (!job) return NULL;
    if (e->args) {
        json_t *args = json_loads(e->args, JSON_DECODE_ANY, NULL);
        if (!args || json_object_set_new(job, "args", args) != 0) {
            json_decref(job);
            return NULL;
        }
    }
    char *out = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    return out;
}

int jobq_crontab_fire(jobq_redis *r, const char *prefix, const jobq_crontab_entry *e, long long tick, char *id_out,
                      size_t id_size, jobq_err *err) {
    jobq_qkeys k;
    jobq_qkeys_init(&k, r, prefix, e->queue, NULL);
    char ids[JOBQ_QKEY_MAX], ticks[JOBQ_QKEY_MAX], member[JOBQ_CRON_NAME_MAX + 32], when[32];
    jobq_key(ids, sizeof ids, prefix, JOBQ_KEY_IDS, e->queue, NULL);
    jobq_key(ticks, sizeof ticks, prefix, JOBQ_KEY_CRONTICKS, e->queue, NULL);
    snprintf(member, sizeof member, "%s@%lld", e->name, tick);
    snprintf(when, sizeof when, "%lld", tick);
    char *payload = tick_payload(e, tick);
    if (!payload) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return -1;
    }
    const char *keys[] = {k.queue, k.scheduled, k.unique, ids, ticks};
    const char *args[] = {payload, member, when, k.events, k.publish};
    redisReply *reply = jobq_redis_eval(r, err, JOBQ_SCRIPT_CRON_FIRE, 5, keys, 5, args, NULL);
    free(payload);
    if (!reply) return -1;
    long long queued = 0;
    int rc;
    if (!jobq_reply_is_array(reply, 1) || !jobq_reply_integer(reply->element[0], &queued) ||
        (queued && (reply->elements < 2 || !jobq_reply_is_string(reply->element[1])))) {
        rc = unexpected(err, "cron fire");
    } else {
        rc = queued ? 1 : 0;
        if (queued) snprintf(id_out, id_size, "%.*s", (int)reply->element[1]->len, reply->element[1]->str);
    }
    freeReplyObject(reply);
    return rc;
}
