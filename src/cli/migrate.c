/*
 * jobq migrate: move what jobq 0.1.0 left under its keys to the {queue}
 * schema of protocol/keys.h. This file alone knows the 0.1.0 key names (the
 * old_keys table). Each job moves by one atomic command (LMOVE), or is added
 * to its new key before it is removed from the old one (ZADD then ZREM,
 * RPUSH then LREM), so an interruption leaves it in one of the two places
 * or, at worst, in both: never in none. Single server only, like 0.1.0.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/job.h"

static const char migrate_usage[] =
    "Usage: jobq migrate [--dry-run]\n"
    "Move the jobs jobq 0.1.0 left under its keys to the keys of this version\n"
    "(README.md, \"Moving from 0.1.0\"), printing a line per key with its count:\n\n"
    "  <prefix>:queue:Q            -> <prefix>:{Q}:queue, in order, after what is there\n"
    "  <prefix>:inflight:Q:HOST:PID -> the head of <prefix>:{Q}:queue, in order\n"
    "  <prefix>:scheduled          -> <prefix>:{Q}:scheduled, same due time; Q is the\n"
    "                                 job's _jobq.queue, else its \"queue\", else default\n"
    "  <prefix>:dead               -> <prefix>:{Q}:dead, newest first; Q is the entry's\n"
    "                                 \"queue\", else default\n"
    "  <prefix>:stats:processed, :stats:failed\n"
    "                              -> added to <prefix>:{default}:stats (the 0.1.0\n"
    "                                 counters were not per queue: all go to default)\n"
    "  <prefix>:daemon:ID:inflight, :ids, :unique:ID, :cancel  -> deleted\n\n"
    "Stop every 0.1.0 daemon first: their in-flight lists are put back as waiting\n"
    "jobs, which is only right when no worker runs them any more (migrate refuses\n"
    "while a 0.1.0 daemon's heartbeat is current). New daemons may already run.\n"
    "It can be run again: it moves what is left. Producers must push to the new keys.\n\n"
    "  -n, --dry-run  only print what it would move\n\n"
    "Exit status: 0 done (or nothing to do), 2 an error, or something was (with\n"
    "--dry-run: would be) left behind, each named: a key of an unexpected type, or\n"
    "a job whose queue name the new keys cannot hold.\n";

typedef struct migration {
    jobq_cli *c;
    bool dry_run;
    long long moved; /* jobs and entries moved (or that would be) */
    int left;        /* keys or members left behind, each reported */
} migration;

/* A line on stdout, its Redis-borne text escaped. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    jobq_cli_put(stdout, line);
    putchar('\n');
}

static const char *verb(const migration *m, const char *done, const char *would) {
    return m->dry_run ? would : done;
}

/* Leave something behind, saying why. Returns 0 (the migration goes on). */
static int leave(migration *m, const char *key, const char *why) {
    say("%s %s: %s", verb(m, "left", "would leave"), key, why);
    m->left++;
    return 0;
}

/* The destination key of kind for queue q, or NULL (after leave) when q
 * cannot name a queue. */
static const char *new_key(migration *m, char *buf, enum jobq_key_kind kind, const char *q, const char *from) {
    if (jobq_key_valid_queue(q)) return jobq_cli_key(m->c, buf, kind, q);
    char why[400];
    snprintf(why, sizeof why, "queue name '%s' is not 1 to 64 of A-Z a-z 0-9 _ . : -", q);
    leave(m, from, why);
    return NULL;
}

/* Move every element of list from to to, one LMOVE each (from_end, to_end:
 * "LEFT"/"RIGHT"). The count, or -1 after printing. */
static long long lmove_all(migration *m, const char *from, const char *to, const char *from_end,
                           const char *to_end) {
    const char *argv[] = {"LMOVE", from, to, from_end, to_end};
    for (long long n = 0;; n++) {
        json_t *r;
        if (jobq_cli_command(m->c, &r, 5, argv, NULL) != 0) return -1;
        bool done = json_is_null(r);
        json_decref(r);
        if (done) return n;
    }
}

static long long length(migration *m, const char *command, const char *key) {
    const char *argv[] = {command, key};
    long long n;
    return jobq_cli_integer(m->c, &n, 2, argv) == 0 ? n : -1;
}

/* <prefix>:queue:Q: its jobs go after those of <prefix>:{Q}:queue. */
static int move_queue(migration *m, const char *key, const char *q, const char *arg) {
    (void)arg;
    char to[JOBQ_KEY_MAX];
    if (!new_key(m, to, JOBQ_KEY_QUEUE, q, key)) return 0;
    long long n = m->dry_run ? length(m, "LLEN", key) : lmove_all(m, key, to, "LEFT", "RIGHT");
    if (n < 0) return -1;
    say("%s %lld waiting job(s): %s -> %s", verb(m, "moved", "would move"), n, key, to);
    m->moved += n;
    return 0;
}

/* <prefix>:inflight:Q:HOST:PID: its jobs go back to the head of Q, in the
 * order they were taken. */
static int move_inflight(migration *m, const char *key, const char *rest, const char *arg) {
    (void)arg;
    char q[256], to[JOBQ_KEY_MAX];
    snprintf(q, sizeof q, "%s", rest);
    for (int i = 0; i < 2; i++) { /* drop ":HOST:PID" */
        char *colon = strrchr(q, ':');
        if (!colon) return leave(m, key, "not an in-flight list name (QUEUE:HOST:PID)");
        *colon = '\0';
    }
    if (!new_key(m, to, JOBQ_KEY_QUEUE, q, key)) return 0;
    long long n = m->dry_run ? length(m, "LLEN", key) : lmove_all(m, key, to, "RIGHT", "LEFT");
    if (n < 0) return -1;
    say("%s %lld in-flight job(s): %s -> the head of %s", verb(m, "put back", "would put back"), n, key, to);
    m->moved += n;
    return 0;
}

/* The queue a 0.1.0 scheduled job or dead entry belongs to (borrowed from
 * doc, or "default"). */
static const char *queue_of(json_t *doc, bool scheduled) {
    const char *q = scheduled ? json_string_value(json_object_get(json_object_get(doc, JOBQ_META_FIELD), "queue"))
                              : NULL;
    if (!q || !*q) q = json_string_value(json_object_get(doc, "queue"));
    return q && *q ? q : "default";
}

/* Count one element moved to dest in counts (dest -> count). */
static void count_to(json_t *counts, const char *dest) {
    json_t *n = json_object_get(counts, dest);
    json_object_set_new(counts, dest, json_integer(n ? json_integer_value(n) + 1 : 1));
}

/* what: the noun, singular and plural ("dead entry", "dead entries"). */
static void report_counts(migration *m, json_t *counts, const char *const what[2], const char *from) {
    const char *dest;
    json_t *n;
    json_object_foreach(counts, dest, n) {
        say("%s %lld %s: %s -> %s", verb(m, "moved", "would move"), (long long)json_integer_value(n),
            what[json_integer_value(n) != 1], from, dest);
        m->moved += json_integer_value(n);
    }
}

/* Where one element (a JSON string) of the old scheduled set or dead list
 * goes: into to (JOBQ_KEY_MAX), or NULL when it stays (after leave). */
static const char *destination(migration *m, json_t *element, bool scheduled, const char *from, char *to) {
    json_t *doc = json_loadb(json_string_value(element), json_string_length(element), 0, NULL);
    const char *dest = new_key(m, to, scheduled ? JOBQ_KEY_SCHEDULED : JOBQ_KEY_DEAD, queue_of(doc, scheduled), from);
    json_decref(doc);
    return dest;
}

/* Run argv with element as its last argument (binary-safe). */
static int with_element(migration *m, int argc, const char **argv, json_t *element) {
    size_t lens[6];
    for (int i = 0; i < argc - 1; i++) lens[i] = strlen(argv[i]);
    argv[argc - 1] = json_string_value(element);
    lens[argc - 1] = json_string_length(element);
    json_t *r;
    if (jobq_cli_command(m->c, &r, argc, argv, lens) != 0) return -1;
    json_decref(r);
    return 0;
}

/* <prefix>:scheduled: each member to its queue's scheduled set, same score;
 * ZADD to the new set, then ZREM from the old. */
static int move_scheduled(migration *m, const char *key, const char *star, const char *arg) {
    (void)star, (void)arg;
    json_t *counts = json_object();
    long long offset = 0; /* members left behind (or, dry, already counted) */
    int rc = 0;
    for (;;) {
        char a[24], b[24];
        snprintf(a, sizeof a, "%lld", offset);
        snprintf(b, sizeof b, "%lld", offset + 99);
        const char *range[] = {"ZRANGE", key, a, b, "WITHSCORES"};
        json_t *page;
        if ((rc = jobq_cli_command(m->c, &page, 5, range, NULL)) != 0) break;
        size_t n = json_array_size(page) / 2;
        for (size_t i = 0; i < n && rc == 0; i++) {
            json_t *member = json_array_get(page, 2 * i), *score = json_array_get(page, 2 * i + 1);
            char to[JOBQ_KEY_MAX];
            const char *dest = destination(m, member, true, key, to);
            if (dest && m->dry_run) count_to(counts, dest);
            if (!dest || m->dry_run) {
                offset++;
                continue;
            }
            const char *zadd[] = {"ZADD", to, json_string_value(score), NULL};
            const char *zrem[] = {"ZREM", key, NULL};
            rc = with_element(m, 4, zadd, member);
            if (rc == 0) rc = with_element(m, 3, zrem, member);
            if (rc == 0) count_to(counts, to);
        }
        json_decref(page);
        if (rc != 0 || n == 0) break;
    }
    static const char *const what[] = {"scheduled job", "scheduled jobs"};
    report_counts(m, counts, what, key);
    json_decref(counts);
    return rc;
}

/* <prefix>:dead: each entry, newest first, to the tail of its queue's dead
 * list (older than what is there); RPUSH to the new list, then LREM from the
 * old (the entry is at its head). */
static int move_dead(migration *m, const char *key, const char *star, const char *arg) {
    (void)star, (void)arg;
    json_t *counts = json_object();
    long long at = 0; /* entries left behind (or, dry, already counted) */
    int rc = 0;
    for (;;) {
        char index[24];
        snprintf(index, sizeof index, "%lld", at);
        const char *lindex[] = {"LINDEX", key, index};
        json_t *entry;
        if ((rc = jobq_cli_command(m->c, &entry, 3, lindex, NULL)) != 0) break;
        bool end = !json_is_string(entry);
        char to[JOBQ_KEY_MAX];
        const char *dest = end ? NULL : destination(m, entry, false, key, to);
        if (dest && m->dry_run) count_to(counts, dest);
        if (!end && (!dest || m->dry_run)) {
            at++;
        } else if (!end) {
            const char *rpush[] = {"RPUSH", to, NULL};
            const char *lrem[] = {"LREM", key, "1", NULL};
            rc = with_element(m, 3, rpush, entry);
            if (rc == 0) rc = with_element(m, 4, lrem, entry);
            if (rc == 0) count_to(counts, to);
        }
        json_decref(entry);
        if (end || rc != 0) break;
    }
    static const char *const what[] = {"dead entry", "dead entries"};
    report_counts(m, counts, what, key);
    json_decref(counts);
    return rc;
}

/* <prefix>:stats:FIELD: added to FIELD of queue default's stats; HINCRBY
 * the new, then DECRBY the old (deleted once it is 0). */
static int move_stat(migration *m, const char *key, const char *star, const char *field) {
    (void)star;
    char to[JOBQ_KEY_MAX];
    jobq_cli_key(m->c, to, JOBQ_KEY_STATS, "default");
    const char *get[] = {"GET", key};
    json_t *v;
    if (jobq_cli_command(m->c, &v, 2, get, NULL) != 0) return -1;
    long long n = json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
    json_decref(v);
    char amount[24];
    snprintf(amount, sizeof amount, "%lld", n);
    long long rest = 0;
    if (!m->dry_run && n != 0) {
        const char *hincr[] = {"HINCRBY", to, field, amount};
        const char *decr[] = {"DECRBY", key, amount};
        if (jobq_cli_integer(m->c, &rest, 4, hincr) != 0 || jobq_cli_integer(m->c, &rest, 3, decr) != 0) return -1;
    }
    say("%s %lld to %s of %s (from %s)", verb(m, "added", "would add"), n, field, to, key);
    if (rest != 0) return leave(m, key, "it changed while it was moved (a 0.1.0 daemon still runs?)");
    if (!m->dry_run) {
        const char *del[] = {"DEL", key};
        long long gone;
        if (jobq_cli_integer(m->c, &gone, 2, del) != 0) return -1;
    }
    return 0;
}

/* 0.1.0 bookkeeping with no jobs in it. */
static int drop_key(migration *m, const char *key, const char *star, const char *arg) {
    (void)star, (void)arg;
    if (!m->dry_run) {
        const char *del[] = {"DEL", key};
        long long gone;
        if (jobq_cli_integer(m->c, &gone, 2, del) != 0) return -1;
    }
    say("%s %s", verb(m, "deleted", "would delete"), key);
    return 0;
}

typedef int (*old_key_fn)(migration *m, const char *key, const char *star, const char *arg);

/* A 0.1.0 daemon's hash of its in-flight lists (its id in the '*'). */
static const char old_daemon_inflight[] = "daemon:*:inflight";

/* The 0.1.0 key schema: every key it wrote under "<prefix>:", in the order
 * they are migrated (waiting jobs, then in-flight ones at the head of the
 * queues, ...). A '*' matches one non-empty part; star gets it. */
static const struct old_key {
    const char *pattern; /* after "<prefix>:" */
    const char *type;    /* its Redis type */
    old_key_fn migrate;
    const char *arg;
} old_keys[] = {
    {"queue:*", "list", move_queue, NULL},             /* waiting jobs of queue * */
    {"inflight:*", "list", move_inflight, NULL},       /* QUEUE:HOST:PID: a worker's taken jobs */
    {"scheduled", "zset", move_scheduled, NULL},       /* delayed jobs and retries of every queue */
    {"dead", "list", move_dead, NULL},                 /* dead entries of every queue, newest first */
    {"stats:processed", "string", move_stat, JOBQ_STATS_PROCESSED},
    {"stats:failed", "string", move_stat, JOBQ_STATS_FAILED},
    {old_daemon_inflight, "hash", drop_key, NULL},     /* a daemon's in-flight list -> queue */
    {"ids", "string", drop_key, NULL},                 /* counter of assigned ids */
    {"unique:*", "string", drop_key, NULL},            /* jobq_enqueue_unique's hold of an id */
    {"cancel", "zset", drop_key, NULL},                /* cancel requests */
};

/* Does rest (a key after "<prefix>:") match pattern? The part the '*'
 * matched goes to star (star_size bytes). */
static bool match(const char *pattern, const char *rest, char *star, size_t star_size) {
    const char *s = strchr(pattern, '*');
    if (!s) return strcmp(pattern, rest) == 0 && (star[0] = '\0', true);
    size_t head = (size_t)(s - pattern), tail = strlen(s + 1), len = strlen(rest);
    if (len <= head + tail || strncmp(rest, pattern, head) != 0 || strcmp(rest + len - tail, s + 1) != 0)
        return false;
    if (len - head - tail >= star_size) return false;
    memcpy(star, rest + head, len - head - tail);
    star[len - head - tail] = '\0';
    return true;
}

/* Every key under "<prefix>:" that the 0.1.0 schema names, sorted: a new
 * array, or NULL after printing. */
static json_t *old_key_names(jobq_cli *c) {
    char pattern[JOBQ_KEY_MAX], cursor[32] = "0", star[JOBQ_KEY_MAX];
    snprintf(pattern, sizeof pattern, "%s:*", c->key_prefix); /* a valid prefix has no glob characters */
    size_t plen = strlen(c->key_prefix) + 1;
    json_t *seen = json_object(), *out = json_array();
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        json_t *r;
        if (jobq_cli_command(c, &r, 6, argv, NULL) != 0) {
            json_decref(seen);
            json_decref(out);
            return NULL;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(json_array_get(r, 0)) ? json_string_value(json_array_get(r, 0)) : "0");
        size_t i;
        json_t *k;
        json_array_foreach(json_array_get(r, 1), i, k) {
            const char *key = json_string_value(k);
            for (size_t j = 0; key && j < sizeof old_keys / sizeof *old_keys; j++)
                if (match(old_keys[j].pattern, key + plen, star, sizeof star) && !json_object_get(seen, key)) {
                    json_object_set_new(seen, key, json_true());
                    json_array_append(out, k);
                }
        }
        json_decref(r);
    } while (strcmp(cursor, "0") != 0);
    json_decref(seen);
    return out;
}

/* A 0.1.0 daemon still running (its in-flight hash is there and its
 * heartbeat current)? Its id into who. 1 yes, 0 no, -1 after printing. */
static int old_daemon_alive(jobq_cli *c, json_t *keys, char *who, size_t who_size) {
    size_t plen = strlen(c->key_prefix) + 1, i;
    json_t *k;
    char id[JOBQ_KEY_MAX], hb[JOBQ_KEY_MAX];
    json_array_foreach(keys, i, k) {
        if (!match(old_daemon_inflight, json_string_value(k) + plen, id, sizeof id)) continue;
        const char *argv[] = {"EXISTS", jobq_key_heartbeat(hb, sizeof hb, c->key_prefix, id)};
        long long n;
        if (jobq_cli_integer(c, &n, 2, argv) != 0) return -1;
        if (n > 0) {
            snprintf(who, who_size, "%s", id);
            return 1;
        }
    }
    return 0;
}

/* Migrate key (of old_keys row o) after checking its type. */
static int migrate_key(migration *m, const struct old_key *o, const char *key, const char *star) {
    const char *argv[] = {"TYPE", key};
    json_t *type;
    if (jobq_cli_command(m->c, &type, 2, argv, NULL) != 0) return -1;
    const char *t = json_string_value(type);
    int rc = 0;
    if (t && strcmp(t, "none") == 0) {
        /* gone meanwhile */
    } else if (!t || strcmp(t, o->type) != 0) {
        char why[128];
        snprintf(why, sizeof why, "a %s, not a %s as in jobq 0.1.0", t ? t : "?", o->type);
        leave(m, key, why);
    } else {
        rc = o->migrate(m, key, star, o->arg);
    }
    json_decref(type);
    return rc;
}

typedef struct migrate_opts {
    bool dry_run;
} migrate_opts;

int jobq_cli_migrate(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {JOBQ_CLI_OPT_FLAG("dry-run", 'n', migrate_opts, dry_run), JOBQ_CLI_OPT_END};
    migrate_opts o = {false};
    int nargs;
    const jobq_cli_spec spec = {migrate_usage, opts, &o, NULL, 0, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    json_t *keys = old_key_names(c);
    if (!keys) return JOBQ_CLI_USAGE;
    migration m = {c, o.dry_run, 0, 0};
    char who[JOBQ_KEY_MAX];
    int alive = old_daemon_alive(c, keys, who, sizeof who), rc = alive < 0 ? -1 : 0;
    if (alive > 0 && !o.dry_run) {
        json_decref(keys);
        return jobq_cli_error("migrate: the 0.1.0 daemon %s is still running (its heartbeat is current): "
                              "stop the 0.1.0 daemons first",
                              who);
    }
    if (alive > 0) say("note: the 0.1.0 daemon %s is still running: stop it before migrating", who);
    size_t plen = strlen(c->key_prefix) + 1;
    for (size_t j = 0; rc == 0 && j < sizeof old_keys / sizeof *old_keys; j++) {
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k) {
            char star[JOBQ_KEY_MAX];
            const char *key = json_string_value(k);
            if (rc == 0 && match(old_keys[j].pattern, key + plen, star, sizeof star))
                rc = migrate_key(&m, &old_keys[j], key, star);
        }
    }
    size_t found = json_array_size(keys);
    json_decref(keys);
    if (rc != 0) return jobq_cli_error("migrate: stopped after %lld job(s); run it again to go on", m.moved);
    if (found == 0)
        printf("nothing to migrate: no jobq 0.1.0 keys under the prefix %s\n", c->key_prefix);
    else
        printf("%s %lld job(s) and entries from %zu 0.1.0 key(s)%s\n", verb(&m, "migrated", "would migrate"),
               m.moved, found, o.dry_run ? " (dry run: nothing was changed)" : "");
    if (m.left) return jobq_cli_error("migrate: left %d key(s) or job(s) behind (see above)", m.left);
    return JOBQ_CLI_OK;
}
