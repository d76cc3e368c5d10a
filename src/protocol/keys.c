/*
 * The key catalog (see keys.h). Names are formatted with snprintf into the
 * caller's buffer; a name that does not fit is cut, which the callers'
 * bounds (JOBQ_KEY_MAX, validated queue names and prefixes) rule out.
 */
#include "protocol/keys.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[JOBQ_KEY_KIND_COUNT] = {
    [JOBQ_KEY_QUEUE] = "queue",       [JOBQ_KEY_SCHEDULED] = "scheduled",
    [JOBQ_KEY_DEAD] = "dead",         [JOBQ_KEY_INFLIGHT] = "inflight",
    [JOBQ_KEY_HOLDERS] = "holders",   [JOBQ_KEY_LEASES] = "leases",
    [JOBQ_KEY_STATS] = "stats",       [JOBQ_KEY_CANCEL] = "cancel",
    [JOBQ_KEY_UNIQUE] = "unique",     [JOBQ_KEY_IDS] = "ids",
    [JOBQ_KEY_PROBE] = "probe",       [JOBQ_KEY_EVENTS] = "events",
    [JOBQ_KEY_HISTO] = "histo",
};

char *jobq_key(char *buf, size_t size, const char *prefix, enum jobq_key_kind kind, const char *queue,
               const char *suffix) {
    const char *name = kind >= 0 && kind < JOBQ_KEY_KIND_COUNT ? kind_names[kind] : "?";
    if (kind == JOBQ_KEY_INFLIGHT || kind == JOBQ_KEY_PROBE)
        snprintf(buf, size, "%s:{%s}:%s:%s", prefix, queue, name, suffix ? suffix : "");
    else
        snprintf(buf, size, "%s:{%s}:%s", prefix, queue, name);
    return buf;
}

char *jobq_key_result(char *buf, size_t size, const char *prefix, const char *id) {
    snprintf(buf, size, "%s:result:%s", prefix, id);
    return buf;
}

char *jobq_key_events(char *buf, size_t size, const char *prefix) {
    snprintf(buf, size, "%s:events", prefix);
    return buf;
}

char *jobq_key_daemons(char *buf, size_t size, const char *prefix) {
    snprintf(buf, size, "%s:daemons", prefix);
    return buf;
}

char *jobq_key_heartbeat(char *buf, size_t size, const char *prefix, const char *daemon_id) {
    snprintf(buf, size, "%s:daemon:%s", prefix, daemon_id);
    return buf;
}

char *jobq_key_scan_pattern(char *buf, size_t size, const char *prefix) {
    size_t n = 0;
    for (const char *s = prefix; *s && n + 2 < size; s++) {
        if (strchr("*?[]\\", *s)) buf[n++] = '\\';
        buf[n++] = *s;
    }
    snprintf(buf + n, size - n, ":{*}:*");
    return buf;
}

bool jobq_key_parse(const char *key, const char *prefix, char *queue, size_t queue_size,
                    enum jobq_key_kind *kind) {
    size_t plen = strlen(prefix);
    if (strncmp(key, prefix, plen) != 0 || strncmp(key + plen, ":{", 2) != 0) return false;
    const char *q = key + plen + 2;
    const char *close = strchr(q, '}');
    if (!close || close == q || close[1] != ':' || (size_t)(close - q) >= queue_size) return false;
    const char *rest = close + 2;
    for (int k = 0; k < JOBQ_KEY_KIND_COUNT; k++) {
        size_t n = strlen(kind_names[k]);
        if (strncmp(rest, kind_names[k], n) != 0) continue;
        bool suffixed = k == JOBQ_KEY_INFLIGHT || k == JOBQ_KEY_PROBE;
        if (suffixed ? rest[n] != ':' : rest[n] != '\0') continue;
        memcpy(queue, q, (size_t)(close - q));
        queue[close - q] = '\0';
        *kind = (enum jobq_key_kind)k;
        return true;
    }
    return false;
}

static bool valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok) return false;
    }
    return true;
}

bool jobq_key_valid_queue(const char *name) { return name && valid_name(name); }

bool jobq_key_valid_prefix(const char *prefix) { return prefix && valid_name(prefix); }

/* CRC16-CCITT (XModem: polynomial 0x1021, initial value 0), the variant
 * Redis Cluster uses for key slots. */
static uint16_t crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned jobq_key_slot(const char *key, size_t len) {
    /* The hash tag: the bytes between the first '{' and the next '}', when
     * there are any. */
    size_t open = 0;
    while (open < len && key[open] != '{') open++;
    if (open < len) {
        size_t close = open + 1;
        while (close < len && key[close] != '}') close++;
        if (close < len && close > open + 1) return crc16(key + open + 1, close - open - 1) & 16383;
    }
    return crc16(key, len) & 16383;
}

void jobq_qkeys_init(jobq_qkeys *k, const jobq_redis *r, const char *prefix, const char *queue,
                     const char *worker_id) {
    snprintf(k->name, sizeof k->name, "%s", queue);
    snprintf(k->prefix, sizeof k->prefix, "%s", prefix);
    jobq_key(k->queue, sizeof k->queue, prefix, JOBQ_KEY_QUEUE, queue, NULL);
    jobq_key(k->scheduled, sizeof k->scheduled, prefix, JOBQ_KEY_SCHEDULED, queue, NULL);
    jobq_key(k->dead, sizeof k->dead, prefix, JOBQ_KEY_DEAD, queue, NULL);
    jobq_key(k->holders, sizeof k->holders, prefix, JOBQ_KEY_HOLDERS, queue, NULL);
    jobq_key(k->leases, sizeof k->leases, prefix, JOBQ_KEY_LEASES, queue, NULL);
    jobq_key(k->stats, sizeof k->stats, prefix, JOBQ_KEY_STATS, queue, NULL);
    jobq_key(k->cancel, sizeof k->cancel, prefix, JOBQ_KEY_CANCEL, queue, NULL);
    jobq_key(k->unique, sizeof k->unique, prefix, JOBQ_KEY_UNIQUE, queue, NULL);
    jobq_key(k->histo, sizeof k->histo, prefix, JOBQ_KEY_HISTO, queue, NULL);
    if (worker_id) jobq_key(k->inflight, sizeof k->inflight, prefix, JOBQ_KEY_INFLIGHT, queue, worker_id);
    else k->inflight[0] = '\0';
    bool sharded = r && jobq_redis_is_cluster(r);
    if (sharded) jobq_key(k->events, sizeof k->events, prefix, JOBQ_KEY_EVENTS, queue, NULL);
    else jobq_key_events(k->events, sizeof k->events, prefix);
    k->publish = sharded ? "SPUBLISH" : "PUBLISH";
}
