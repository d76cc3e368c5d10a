/*
 * Supervisor process. Owns a libev loop (ev_loop_new: the default loop would
 * reap children itself, and we reap with wait4 to keep each worker's rusage),
 * signal watchers, and a tick that runs the periodic steps of a table, each
 * a named function with its period. Worker records live in workers.c, the
 * Redis upkeep in upkeep.c.
 */
#include "daemon/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "daemon/handlers/handlers.h"
#include "daemon/notify.h"
#include "daemon/plugin.h"
#include "daemon/supervisor_internal.h"
#include "protocol/daemons.h"

#define TICK_SECONDS 0.02
#define PROMOTE_SECONDS 0.05
#define PARKED_SECONDS 1.0 /* between sweeps of the parked jobs (dependencies on other queues) */

static void update_status(jobq_supervisor *s) {
    int live, busy;
    unsigned long long done, failed;
    jobq_workers_totals(s, &live, &busy, &done, &failed);
    jobq_notify_status("%s; workers: %d busy, %d idle; jobs: %llu done, %llu failed; Redis %s",
                       s->stopping ? "stopping" : "running", busy, live - busy, done, failed,
                       s->redis_down ? "reconnecting" : "connected");
}

/* ---- periodic steps ---- */

enum when { ALWAYS, RUNNING, STOPPING };
enum every { TICK, PROMOTE_PERIOD, HEARTBEAT_PERIOD, WATCHDOG_PERIOD, PARKED_PERIOD };

struct step {
    const char *name;
    enum when when;   /* RUNNING: once ready (start: until ready) and not stopping */
    enum every every;
    void (*run)(jobq_supervisor *s, double now);
};

/* The table, after the steps (a tentative definition here). */
static const struct step steps[JOBQ_SUPERVISOR_STEPS];

/* A step's next run counts from now (it was just done another way). */
static void postpone(jobq_supervisor *s, enum every every, double now, double period_seconds) {
    for (size_t i = 0; i < JOBQ_SUPERVISOR_STEPS; i++)
        if (steps[i].every == every) s->next_run[i] = now + period_seconds;
}

/* First contact with Redis: take back what a predecessor left, lease the
 * queues, then start the workers. */
static void step_start(jobq_supervisor *s, double now) {
    if (s->ready || s->stopping || !jobq_upkeep_connect(s, now)) return;
    int refused = jobq_upkeep_probe(s);
    if (refused != 0) {
        if (refused > 0) {
            s->exit_status = 1;
            ev_break(s->loop, EVBREAK_ALL);
        }
        return;
    }
    jobq_upkeep_reclaim(s, true);
    jobq_upkeep_heartbeat(s, now);
    if (!s->leased) return; /* Redis failed meanwhile: try again */
    jobq_workers_spawn_missing(s);
    int started = jobq_workers_active(s);
    s->ready = true;
    postpone(s, HEARTBEAT_PERIOD, now, s->cfg.heartbeat_interval);
    jobq_log_info("ready: %d of %d worker(s) started, serving %d queue(s) as %s", started, s->cfg.workers,
                  s->cfg.nqueues, s->daemon_id);
    jobq_notify_ready();
    update_status(s);
}

static void step_reap(jobq_supervisor *s, double now) {
    (void)now;
    jobq_workers_reap(s);
}

static void step_recover(jobq_supervisor *s, double now) { jobq_workers_recover(s, now); }

static void step_timeouts(jobq_supervisor *s, double now) { jobq_workers_enforce_timeouts(s, now); }

static void step_respawn(jobq_supervisor *s, double now) {
    (void)now;
    jobq_workers_spawn_missing(s);
}

static void step_promote(jobq_supervisor *s, double now) {
    if (jobq_upkeep_connect(s, now)) jobq_upkeep_promote(s);
}

static void step_parked(jobq_supervisor *s, double now) {
    if (jobq_upkeep_connect(s, now)) jobq_upkeep_release_parked(s);
}
static void step_cron(jobq_supervisor *s, double now) { jobq_cron_step(s, now); }

static void step_heartbeat(jobq_supervisor *s, double now) {
    if (jobq_upkeep_connect(s, now)) {
        jobq_upkeep_heartbeat(s, now);
        if (jobq_redis_connected(s->redis)) jobq_upkeep_reclaim(s, false);
    }
    update_status(s);
}

/* Stopping: the leases are kept while the workers' jobs are settled and
 * put back (a settle writes only under a lease that still runs). */
static void step_lease(jobq_supervisor *s, double now) {
    if (s->workers && jobq_upkeep_connect(s, now)) jobq_upkeep_heartbeat(s, now);
}

/* Sentinel: when a new master takes over (the replica a failover leader
 * selected says ROLE master, or a sentinel names it), move at once (the
 * supervisor and, through SIGUSR1, every worker), instead of waiting for
 * errors. */
static void step_failover(jobq_supervisor *s, double now) {
    (void)now;
    char msg[512];
    if (jobq_redis_master_switched(s->redis, msg, sizeof msg) != 1) return;
    jobq_log_warn("sentinel: the master changed (%s); reconnecting supervisor and workers", msg);
    jobq_redis_disconnect(s->redis);
    jobq_workers_signal(s, SIGUSR1, false);
}

/* Ping the watchdog only from a turning loop whose Redis is either
 * connected or being retried on schedule. */
static void step_watchdog(jobq_supervisor *s, double now) {
    (void)s;
    (void)now;
    jobq_notify_watchdog();
}

/* libev aborts the process when its allocator fails. A short shortage is
 * waited out here instead (100 tries, 1 ms apart); after that libev still
 * aborts, with its message. */
static void *loop_realloc(void *ptr, long size) {
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    for (int i = 0; i < 100; i++) {
        void *p = realloc(ptr, (size_t)size);
        if (p) return p;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return NULL;
}

void jobq_supervisor_configure_handlers(const jobq_config *cfg) {
    char why[300];
    jobq_wordcount_settings wc = {.max_body = cfg->wordcount_max_body,
                                  .connect_timeout = cfg->wordcount_connect_timeout,
                                  .deny_private = cfg->wordcount_deny_private,
                                  .preload = cfg->wordcount_preload};
    if (jobq_wordcount_configure(&wc, why, sizeof why) != 0)
        jobq_log_warn("wordcount: preload: %s; workers will try again", why);
}

static void finish_stop(jobq_supervisor *s) {
    if (!s->workers && jobq_redis_connected(s->redis)) {
        jobq_err err;
        if (jobq_daemons_forget(s->redis, s->cfg.prefix, s->daemon_id, &err) != 0)
            jobq_upkeep_failed(s, &err, "deregister");
    } else if (s->workers) {
        int left = 0;
        for (const wrec *w = s->workers; w; w = w->next) left++;
        jobq_log_err("%s: the in-flight jobs of %d stopped worker(s) stay in Redis and are reclaimed by the "
                     "next jobqd start (or another daemon after %g s)",
                     jobq_redis_connected(s->redis) ? "could not put them back (see the errors above)"
                                                    : "Redis unreachable",
                     left, s->cfg.heartbeat_ttl);
    }
    jobq_log_info("stopped");
    ev_break(s->loop, EVBREAK_ALL);
}

/* Draining: kill what still runs at the deadline, leave once every worker
 * is recovered (or a while after the deadline when Redis stays away). */
static void step_drain(jobq_supervisor *s, double now) {
    if (now >= s->stop_deadline) {
        for (wrec *w = s->workers; w; w = w->next) {
            if (w->state == WREC_RUNNING && !w->shutdown_kill) {
                jobq_log_warn("worker[%d] still running at the shutdown deadline; killing it, its job goes "
                              "back to the queue", w->number);
                w->shutdown_kill = true;
                jobq_workers_kill(s, w);
            }
        }
    }
    bool live = false;
    for (wrec *w = s->workers; w; w = w->next) live = live || w->state == WREC_RUNNING;
    if (!s->workers || (!live && now >= s->stop_deadline + 5)) finish_stop(s);
}

/* The periodic steps, in the order they run within a tick. */
static const struct step steps[JOBQ_SUPERVISOR_STEPS] = {
    {"reap", ALWAYS, TICK, step_reap},
    {"start", RUNNING, TICK, step_start},
    {"recover", ALWAYS, TICK, step_recover},
    {"timeouts", ALWAYS, TICK, step_timeouts},
    {"respawn", RUNNING, TICK, step_respawn},
    {"promote", RUNNING, PROMOTE_PERIOD, step_promote},
    {"parked", RUNNING, PARKED_PERIOD, step_parked},
    {"cron", RUNNING, PROMOTE_PERIOD, step_cron},
    {"heartbeat", RUNNING, HEARTBEAT_PERIOD, step_heartbeat},
    {"watchdog", ALWAYS, WATCHDOG_PERIOD, step_watchdog},
    {"failover", ALWAYS, TICK, step_failover},
    {"lease", STOPPING, HEARTBEAT_PERIOD, step_lease},
    {"drain", STOPPING, TICK, step_drain},
};

/* Seconds between runs of a step (0: every tick, < 0: never). */
static double period(const jobq_supervisor *s, enum every every) {
    switch (every) {
    case PROMOTE_PERIOD: return PROMOTE_SECONDS;
    case PARKED_PERIOD: return PARKED_SECONDS;
    case HEARTBEAT_PERIOD: return s->cfg.heartbeat_interval;
    case WATCHDOG_PERIOD: return s->watchdog_usec ? (double)s->watchdog_usec / 2e6 : -1;
    case TICK: break;
    }
    return 0;
}

static bool due(const jobq_supervisor *s, const struct step *st) {
    switch (st->when) {
    case RUNNING: return !s->stopping && (s->ready ? st->run != step_start : st->run == step_start);
    case STOPPING: return s->stopping;
    case ALWAYS: break;
    }
    return true;
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)t;
    (void)revents;
    jobq_supervisor *s = ev_userdata(loop);
    ev_now_update(loop);
    double now = ev_now(loop);
    for (size_t i = 0; i < JOBQ_SUPERVISOR_STEPS; i++) {
        const struct step *st = &steps[i];
        double p = period(s, st->every);
        bool forced = st->every == HEARTBEAT_PERIOD && s->heartbeat_now;
        if (!due(s, st) || p < 0 || (now < s->next_run[i] && !forced)) continue;
        if (forced) s->heartbeat_now = false;
        s->next_run[i] = now + p;
        st->run(s, now);
    }
}

/* ---- reload and stop ---- */

/* Switch to a new Redis address or prefix: a fresh connection and keys. */
static int switch_redis(jobq_supervisor *s, const jobq_config *fresh, jobq_err *err) {
    jobq_redis *r = jobq_redis_open_config(fresh, 2.0, err);
    if (!r) return -1;
    jobq_redis_free(s->redis);
    s->redis = r;
    s->redis_down = false;
    s->redis_retry_at = 0;
    return 0;
}

static bool same_string(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

/* Does the new configuration reach Redis the same way? */
static bool same_redis(const jobq_config *a, const jobq_config *b) {
    return same_string(a->redis_password, b->redis_password) && same_string(a->redis_url, b->redis_url) &&
           same_string(a->prefix, b->prefix) && same_string(a->sentinel_password, b->sentinel_password) &&
           same_string(a->tls_ca_file, b->tls_ca_file) && same_string(a->tls_cert_file, b->tls_cert_file) &&
           same_string(a->tls_key_file, b->tls_key_file) && same_string(a->tls_server_name, b->tls_server_name) &&
           a->wait_replicas == b->wait_replicas && a->wait_timeout == b->wait_timeout;
}

static void do_reload(jobq_supervisor *s) {
    jobq_notify_reloading();
    jobq_config fresh;
    jobq_err err;
    if (s->reload(&fresh, s->reload_ctx, &err) != 0) {
        jobq_log_err("reload refused, keeping the running configuration: %s", err.msg);
        jobq_notify_ready();
        return;
    }
    if (!same_redis(&fresh, &s->cfg) && switch_redis(s, &fresh, &err) != 0) {
        jobq_log_err("reload refused: %s", err.msg);
        jobq_config_fini(&fresh);
        jobq_notify_ready();
        return;
    }
    jobq_plugin_unload_all();
    if (jobq_plugin_load_config(&fresh, &err) < 0) jobq_log_err("%s", err.msg);
    jobq_supervisor_configure_handlers(&fresh);
    jobq_log_set_level(fresh.log_level);
    jobq_config_fini(&s->cfg);
    s->cfg = fresh;
    if (jobq_upkeep_set_keys(s, &err) != 0) jobq_log_err("%s", err.msg);
    jobq_cron_resync(s);
    /* The new queues are leased before the new workers take from them. */
    s->leased = false;
    if (jobq_upkeep_connect(s, ev_now(s->loop))) jobq_upkeep_heartbeat(s, ev_now(s->loop));
    jobq_workers_signal(s, SIGTERM, true);
    s->crash_failures = 0;
    s->respawn_at = 0;
    jobq_log_info("configuration reloaded: %d worker(s) on queue(s) %s%s", s->cfg.workers, s->cfg.queues[0],
                  s->cfg.nqueues > 1 ? ",..." : "");
    jobq_notify_ready();
}

static void begin_stop(jobq_supervisor *s, const char *why) {
    if (s->stopping) {
        jobq_log_info("%s again: stopping now", why);
        s->stop_deadline = ev_now(s->loop);
        return;
    }
    s->stopping = true;
    s->stop_deadline = ev_now(s->loop) + s->cfg.shutdown_timeout;
    jobq_notify_stopping();
    jobq_log_info("%s: stopping; running jobs get up to %g s", why, s->cfg.shutdown_timeout);
    jobq_workers_signal(s, SIGTERM, true);
    update_status(s);
    if (s->cfg.shutdown_timeout > 0) jobq_notify_extend_timeout((uint64_t)((s->cfg.shutdown_timeout + 10) * 1e6));
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)revents;
    jobq_supervisor *s = ev_userdata(loop);
    switch (w->signum) {
    case SIGTERM: begin_stop(s, "SIGTERM"); break;
    case SIGINT: begin_stop(s, "SIGINT"); break;
    case SIGHUP:
        if (!s->stopping) do_reload(s);
        break;
    case SIGCHLD: jobq_workers_reap(s); break;
    }
}

/* ---- lifecycle ---- */

jobq_supervisor *jobq_supervisor_new(jobq_config *cfg, jobq_config_loader reload, void *reload_ctx, jobq_err *err) {
    jobq_supervisor *s = calloc(1, sizeof *s);
    if (!s) {
        jobq_err_set(err, JOBQ_E_NOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    s->reload = reload;
    s->reload_ctx = reload_ctx;
    if (gethostname(s->host, sizeof s->host) != 0) snprintf(s->host, sizeof s->host, "localhost");
    snprintf(s->daemon_id, sizeof s->daemon_id, "%s:%d", s->host, (int)getpid());
    s->slots = jobq_slots_map(JOBQ_MAX_SLOTS);
    if (!s->slots) {
        jobq_err_set(err, JOBQ_E_NOMEM, "cannot map worker slots: %s", strerror(errno));
        goto fail;
    }
    s->redis = jobq_redis_open_config(&s->cfg, jobq_config_io_timeout(&s->cfg, JOBQ_SUPERVISOR_IO_TIMEOUT), err);
    if (!s->redis || jobq_upkeep_set_keys(s, err) != 0) goto fail;
    ev_set_allocator(loop_realloc);
    s->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    if (!s->loop) {
        jobq_err_set(err, JOBQ_E_IO, "cannot create the event loop: %s (too few file descriptors?)",
                     strerror(errno ? errno : EMFILE));
        goto fail;
    }
    ev_set_userdata(s->loop, s);
    return s;
fail:
    jobq_supervisor_free(s);
    return NULL;
}

int jobq_supervisor_run(jobq_supervisor *s) {
    signal(SIGPIPE, SIG_IGN);
    s->started_at = jobq_now();
    s->watchdog_usec = jobq_notify_init();
    ev_signal_init(&s->sig_term, on_signal, SIGTERM);
    ev_signal_init(&s->sig_int, on_signal, SIGINT);
    ev_signal_init(&s->sig_hup, on_signal, SIGHUP);
    ev_signal_init(&s->sig_chld, on_signal, SIGCHLD);
    ev_signal_start(s->loop, &s->sig_term);
    ev_signal_start(s->loop, &s->sig_int);
    ev_signal_start(s->loop, &s->sig_hup);
    ev_signal_start(s->loop, &s->sig_chld);
    ev_timer_init(&s->tick, on_tick, 0., TICK_SECONDS);
    ev_timer_start(s->loop, &s->tick);
    jobq_log_info("jobqd %s starting: %d worker(s), queues %s%s, Redis %s", JOBQ_VERSION, s->cfg.workers,
                  s->cfg.queues[0], s->cfg.nqueues > 1 ? " (and more)" : "", jobq_redis_url_redacted(s->redis));
    ev_run(s->loop, 0);
    return s->exit_status;
}

void jobq_supervisor_free(jobq_supervisor *s) {
    if (!s) return;
    jobq_workers_free_all(s);
    jobq_cron_free(s);
    if (s->loop) ev_loop_destroy(s->loop);
    jobq_redis_free(s->redis);
    free(s->keys);
    jobq_slots_unmap(s->slots, JOBQ_MAX_SLOTS);
    jobq_config_fini(&s->cfg);
    free(s);
}
