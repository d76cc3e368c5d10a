/*
 * The supervisor's cron step: write the config's [cron.NAME] entries into
 * Redis (at start and after a reload), re-read every entry once a second,
 * and fire the ticks that fall due while this daemon runs. Every daemon
 * fires every tick; the fire script queues a tick's job only once (a guard
 * in the target queue's slot), so each tick runs once. A daemon never
 * fires a tick from before it (re)read the entry, and after a stall it
 * fires only the latest tick it missed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "daemon/supervisor_internal.h"
#include "protocol/crontab.h"

#define RELOAD_SECONDS 1.0
#define CATCH_UP_MAX 100000 /* ticks skipped over after a stall, at most */

typedef struct cron_item {
    char name[JOBQ_CRON_NAME_MAX + 1];
    char *definition;       /* owned: as stored, to notice changes */
    bool valid;             /* entry parsed */
    jobq_crontab_entry e;   /* when valid */
    long long next;         /* next tick (Unix seconds), -1 none */
} cron_item;

struct jobq_cron_state {
    cron_item *items;       /* owned */
    size_t n;
    double reload_at;
    bool synced;            /* the config's entries are in Redis */
};

static void item_fini(cron_item *it) {
    free(it->definition);
    if (it->valid) jobq_crontab_entry_fini(&it->e);
    memset(it, 0, sizeof *it);
}

void jobq_cron_free(jobq_supervisor *s) {
    struct jobq_cron_state *c = s->cron;
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) item_fini(&c->items[i]);
    free(c->items);
    free(c);
    s->cron = NULL;
}

void jobq_cron_resync(jobq_supervisor *s) {
    if (s->cron) s->cron->synced = false;
}

static const char *zone_of(const jobq_supervisor *s, const jobq_crontab_entry *e) {
    return e->timezone[0] ? e->timezone : s->cfg.cron_timezone;
}

static void describe_time(long long t, char *buf, size_t size) {
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S %z", &tm);
}

/* Write the config's entries, each with its effective time zone. */
static int sync_config(jobq_supervisor *s) {
    for (int i = 0; i < s->cfg.ncrons; i++) {
        const jobq_config_cron *cc = &s->cfg.crons[i];
        char *def = jobq_crontab_definition(cc->spec, cc->handler, cc->args, cc->queue,
                                            cc->timezone ? cc->timezone : s->cfg.cron_timezone, "config");
        jobq_err err;
        if (!def) {
            jobq_log_err("out of memory writing cron entry %s", cc->name);
            return -1;
        }
        int rc = jobq_crontab_set(s->redis, s->cfg.prefix, cc->name, def, &err);
        free(def);
        if (rc != 0) {
            jobq_upkeep_failed(s, &err, "writing the config's cron entries");
            return -1;
        }
    }
    if (s->cfg.ncrons) jobq_log_info("wrote %d cron entr%s from the config", s->cfg.ncrons, s->cfg.ncrons == 1 ? "y" : "ies");
    return 0;
}

/* Take the listing (names[i] -> defs[i]) as the new set of entries: keep
 * the state of those unchanged, (re)compute the next tick of the others. */
static void apply_listing(jobq_supervisor *s, char **names, char **defs, size_t n, long long now) {
    struct jobq_cron_state *c = s->cron;
    cron_item *items = calloc(n + 1, sizeof *items);
    if (!items) {
        jobq_log_err("out of memory reading the cron entries");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cron_item *it = &items[i];
        cron_item *old = NULL;
        for (size_t j = 0; j < c->n && !old; j++)
            if (strcmp(c->items[j].name, names[i]) == 0) old = &c->items[j];
        if (old && old->definition && strcmp(old->definition, defs[i]) == 0) {
            *it = *old; /* moved: the old slot is cleared below */
            memset(old, 0, sizeof *old);
            continue;
        }
        snprintf(it->name, sizeof it->name, "%s", names[i]);
        it->definition = defs[i];
        defs[i] = NULL;
        char why[256];
        it->next = -1;
        if (jobq_crontab_parse(names[i], it->definition, &it->e, why, sizeof why) != 0) {
            jobq_log_warn("cron entry %s is ignored: %s", names[i], why);
            continue;
        }
        it->valid = true;
        it->next = jobq_cronspec_next(&it->e.parsed, zone_of(s, &it->e), now);
        char when[64] = "never";
        if (it->next > 0) describe_time(it->next, when, sizeof when);
        jobq_log_info("cron entry %s (%s, handler %s, queue %s): next tick %s", it->name, it->e.spec,
                      it->e.handler, it->e.queue, when);
    }
    for (size_t j = 0; j < c->n; j++) {
        bool kept = false;
        for (size_t i = 0; i < n && !kept; i++) kept = strcmp(names[i], c->items[j].name) == 0;
        if (c->items[j].name[0] && !kept) jobq_log_info("cron entry %s removed", c->items[j].name);
        item_fini(&c->items[j]);
    }
    free(c->items);
    c->items = items;
    c->n = n;
}

static void reload(jobq_supervisor *s, long long now) {
    char **names = NULL, **defs = NULL;
    size_t n = 0;
    jobq_err err;
    if (jobq_crontab_list(s->redis, s->cfg.prefix, &names, &defs, &n, &err) != 0) {
        jobq_upkeep_failed(s, &err, "reading the cron entries");
        return;
    }
    apply_listing(s, names, defs, n, now);
    jobq_crontab_free_list(names, defs, n);
}

/* Fire the latest due tick of it (now: Unix seconds). */
static void fire(jobq_supervisor *s, cron_item *it, long long now) {
    const char *zone = zone_of(s, &it->e);
    long long tick = it->next, n;
    for (int i = 0; i < CATCH_UP_MAX && (n = jobq_cronspec_next(&it->e.parsed, zone, tick)) > 0 && n <= now; i++)
        tick = n;
    char id[JOBQ_CRON_NAME_MAX + 40];
    jobq_err err;
    int rc = jobq_crontab_fire(s->redis, s->cfg.prefix, &it->e, tick, id, sizeof id, &err);
    if (rc < 0 && (err.code == JOBQ_E_IO || err.code == JOBQ_E_READONLY)) {
        jobq_upkeep_failed(s, &err, "firing a cron tick");
        return; /* tried again at the next step */
    }
    if (rc < 0) jobq_log_err("cron entry %s: tick %lld not queued: %s", it->name, tick, err.msg);
    else if (rc > 0) jobq_log_debug("cron entry %s: queued job %s on queue %s", it->name, id, it->e.queue);
    it->next = jobq_cronspec_next(&it->e.parsed, zone, tick > now ? tick : now);
}

void jobq_cron_step(jobq_supervisor *s, double now) {
    if (!s->cron && !(s->cron = calloc(1, sizeof *s->cron))) {
        jobq_log_err("out of memory starting cron");
        return;
    }
    struct jobq_cron_state *c = s->cron;
    if (!jobq_upkeep_connect(s, now)) return;
    if (!c->synced) {
        if (sync_config(s) != 0) return;
        c->synced = true;
        c->reload_at = 0;
    }
    double wall = jobq_now();
    if (wall >= c->reload_at) {
        reload(s, (long long)wall);
        c->reload_at = wall + RELOAD_SECONDS;
    }
    for (size_t i = 0; i < c->n && jobq_redis_connected(s->redis); i++) {
        cron_item *it = &c->items[i];
        if (it->valid && it->next > 0 && (long long)wall >= it->next) fire(s, it, (long long)wall);
    }
}
