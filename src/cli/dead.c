/*
 * jobq dead: list, show, retry and purge the dead-letter lists
 * (<prefix>:{QUEUE}:dead, each newest first), of one queue (-q) or of every
 * queue merged newest first. Each action is a row of one table. A retry is
 * jobq_jobs_dead_retry: it removes the exact entry and re-pushes its payload
 * in one script, with fresh attempts, so two retries never queue a job twice.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/job.h"
#include "protocol/jobs.h"

static const char dead_usage[] =
    "Usage: jobq dead [-q QUEUE] list [--json] [--limit N]\n"
    "       jobq dead [-q QUEUE] show ID\n"
    "       jobq dead [-q QUEUE] retry ID | jobq dead [-q QUEUE] retry --all\n"
    "       jobq dead [-q QUEUE] purge\n"
    "Jobs that failed for good, or could not be read: each queue's dead list\n"
    "(<prefix>:{QUEUE}:dead), every queue's merged newest first unless -q names one.\n\n"
    "  list   one line per job (--limit N, default 100; 0: all); --json: a JSON array\n"
    "  show   the whole entry of job ID as JSON: payload, last error, every attempt's error\n"
    "  retry  put job ID (--all: every job whose payload is a JSON object) back on the\n"
    "         queue it died on with fresh attempts, and forget its failed result\n"
    "  purge  delete every entry (of every queue, or of QUEUE)\n\n"
    "  -q, --queue QUEUE  only this queue's dead list\n";

typedef struct dead_opts {
    const char *queue; /* -q, or NULL for every queue */
    bool as_json, all;
    double limit;
} dead_opts;

/* One entry with the queue whose list holds it. */
typedef struct dead_entry {
    const char *queue; /* borrowed from the jobq_cli_queues */
    json_t *raw;       /* the exact text (a JSON string) */
    json_t *doc;       /* decoded, or {"unreadable": text} */
    double failed_at;
    size_t seq; /* load order: queue, then place in its list */
} dead_entry;

typedef struct dead_set {
    dead_entry *e;
    size_t n, cap;
    long long total; /* entries in the lists, loaded or not */
} dead_set;

static void set_fini(dead_set *s) {
    for (size_t i = 0; i < s->n; i++) {
        json_decref(s->e[i].raw);
        json_decref(s->e[i].doc);
    }
    free(s->e);
    memset(s, 0, sizeof *s);
}

static int add_entry(dead_set *s, const char *queue, json_t *raw) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        dead_entry *grown = realloc(s->e, cap * sizeof *grown);
        if (!grown) return -1;
        s->e = grown;
        s->cap = cap;
    }
    json_t *doc = json_loadb(json_string_value(raw), json_string_length(raw), 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        doc = json_pack("{s:O}", "unreadable", raw);
    }
    json_t *at = json_object_get(doc, "failed_at");
    s->e[s->n] = (dead_entry){queue, json_incref(raw), doc, json_is_number(at) ? json_number_value(at) : 0, s->n};
    s->n++;
    return 0;
}

/* Newest first; entries of the same time in load order. */
static int cmp_entries(const void *a, const void *b) {
    const dead_entry *x = a, *y = b;
    if (x->failed_at != y->failed_at) return x->failed_at > y->failed_at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool has_dead_list(const jobq_cli_queue *q) { return q->kinds & (1u << JOBQ_KEY_DEAD); }

/* The first limit entries (<= 0: all) of queue q's dead list into s, and its
 * length into s->total. 0, or -1 after printing. */
static int load_list(jobq_cli *c, const jobq_cli_queue *q, long limit, dead_set *s) {
    char key[JOBQ_KEY_MAX];
    jobq_cli_key(c, key, JOBQ_KEY_DEAD, q->name);
    const char *llen[] = {"LLEN", key};
    long long len;
    if (jobq_cli_integer(c, &len, 2, llen) != 0) return -1;
    s->total += len;
    json_t *all = len ? jobq_cli_range(c, key, false, limit) : json_array();
    if (!all) return -1;
    size_t i;
    json_t *raw;
    int rc = 0;
    json_array_foreach(all, i, raw) {
        if (rc == 0 && add_entry(s, q->name, raw) != 0) {
            jobq_cli_error("out of memory");
            rc = -1;
        }
    }
    json_decref(all);
    return rc;
}

/* The entries of every dead list in qs (at most limit of each), newest
 * first. 0, or -1 after printing. */
static int load_entries(jobq_cli *c, const jobq_cli_queues *qs, long limit, dead_set *s) {
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < qs->n; i++)
        if (has_dead_list(&qs->q[i]) && load_list(c, &qs->q[i], limit, s) != 0) return -1;
    if (s->n) qsort(s->e, s->n, sizeof *s->e, cmp_entries);
    return 0;
}

/* The newest entry of job id in s, or NULL. */
static const dead_entry *find_entry(const dead_set *s, const char *id) {
    for (size_t i = 0; i < s->n; i++) {
        const char *text = json_string_value(s->e[i].raw);
        if (!memmem(text, json_string_length(s->e[i].raw), id, strlen(id))) continue;
        const char *did = json_string_value(json_object_get(s->e[i].doc, "id"));
        if (did && strcmp(did, id) == 0) return &s->e[i];
    }
    return NULL;
}

/* One line of text: newlines and tabs as spaces, cut at max bytes (control
 * characters are escaped when the table is built). */
static void one_line(char *buf, size_t size, const char *s, size_t max) {
    size_t n = 0;
    for (; s && *s && n + 4 < size; s++) {
        if (n >= max) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        buf[n++] = (*s == '\n' || *s == '\t' || *s == '\r') ? ' ' : *s;
    }
    buf[n] = '\0';
}

static void print_table(const dead_set *s, size_t shown) {
    jobq_cli_table t;
    jobq_cli_table_init(&t, 6, 1u << 4);
    jobq_cli_table_add(&t, "ID", "QUEUE", "HANDLER", "FAILED AT", "ATTEMPTS", "ERROR");
    for (size_t i = 0; i < shown; i++) {
        json_t *d = s->e[i].doc;
        char when[40], attempts[16], error[128];
        jobq_cli_time(when, sizeof when, s->e[i].failed_at, false);
        snprintf(attempts, sizeof attempts, "%lld", (long long)json_integer_value(json_object_get(d, "attempts")));
        one_line(error, sizeof error, json_string_value(json_object_get(d, "error")), 80);
        const char *id = json_string_value(json_object_get(d, "id"));
        const char *handler = json_string_value(json_object_get(d, "handler"));
        jobq_cli_table_add(&t, id ? id : "-", s->e[i].queue, handler ? handler : "-", when, attempts, error);
    }
    jobq_cli_table_print(&t, stdout, 0);
    jobq_cli_table_fini(&t);
}

/* ---- the actions ---- */

typedef int (*dead_fn)(jobq_cli *c, const dead_opts *o, const jobq_cli_queues *qs, const char *id);

static int dead_list(jobq_cli *c, const dead_opts *o, const jobq_cli_queues *qs, const char *id) {
    (void)id;
    long limit = (long)o->limit;
    dead_set s;
    if (load_entries(c, qs, limit, &s) != 0) return set_fini(&s), JOBQ_CLI_USAGE;
    size_t shown = limit > 0 && s.n > (size_t)limit ? (size_t)limit : s.n;
    if (o->as_json) {
        json_t *docs = json_array();
        for (size_t i = 0; i < shown; i++) json_array_append(docs, s.e[i].doc);
        jobq_cli_print_json(docs, true);
        json_decref(docs);
    } else if (s.total == 0) {
        printf("no dead jobs\n");
    } else {
        print_table(&s, shown);
        if ((long long)shown < s.total)
            printf("(showing the newest %zu of %lld: --limit 0 shows all)\n", shown, s.total);
    }
    set_fini(&s);
    return JOBQ_CLI_OK;
}

static int dead_show(jobq_cli *c, const dead_opts *o, const jobq_cli_queues *qs, const char *id) {
    (void)o;
    dead_set s;
    int rc = JOBQ_CLI_USAGE;
    if (load_entries(c, qs, 0, &s) == 0) {
        const dead_entry *e = find_entry(&s, id);
        if (e) jobq_cli_print_json(e->doc, true);
        rc = e ? JOBQ_CLI_OK : jobq_cli_error("no dead job %s (see jobq dead list)", id);
    }
    set_fini(&s);
    return rc;
}

/* Re-queue entry e. 1 done, 0 it was no longer there, -1 after printing an
 * error, -2 when it cannot be retried (why says so). */
static int retry_entry(jobq_cli *c, const dead_entry *e, char *why, size_t why_size) {
    jobq_err err;
    int r = jobq_jobs_dead_retry(c->r, c->key_prefix, e->queue, json_string_value(e->raw),
                                 json_string_length(e->raw), why, why_size, &err);
    return r == -1 ? jobq_cli_redis_error(c, &err) : r;
}

/* Re-queue dead job id found in the lists of qs, looking again when the
 * entry changed meanwhile. As jobq_cli_dead_retry_id. */
static int retry_in(jobq_cli *c, const jobq_cli_queues *qs, const char *id, char *queue, size_t queue_size,
                    char *why, size_t why_size) {
    for (int tries = 0; tries < 3; tries++) {
        dead_set s;
        if (load_entries(c, qs, 0, &s) != 0) return set_fini(&s), -1;
        const dead_entry *e = find_entry(&s, id);
        int r = e ? retry_entry(c, e, why, why_size) : -3;
        if (e) snprintf(queue, queue_size, "%s", e->queue);
        set_fini(&s);
        if (r == -3) return 0;
        if (r != 0) return r;
        /* 0: the entry changed under us (retried by someone else?): look again */
    }
    jobq_cli_error("dead retry: job %s kept changing; try again", id);
    return -1;
}

static int retry_one(jobq_cli *c, const jobq_cli_queues *qs, const char *id) {
    char why[160], queue[256];
    int r = retry_in(c, qs, id, queue, sizeof queue, why, sizeof why);
    if (r == 0) return jobq_cli_error("no dead job %s (see jobq dead list)", id);
    if (r == -2) return jobq_cli_error("dead retry: job %s cannot be retried: %s", id, why);
    if (r < 0) return JOBQ_CLI_USAGE;
    printf("retrying job ");
    jobq_cli_put(stdout, id);
    printf(" on queue ");
    jobq_cli_put(stdout, queue);
    putchar('\n');
    return JOBQ_CLI_OK;
}

/* Every entry of every list, oldest first in each, so that the jobs queue
 * in the order they died. */
static int retry_all(jobq_cli *c, const jobq_cli_queues *qs) {
    long retried = 0, kept = 0;
    int rc = JOBQ_CLI_OK;
    for (size_t i = 0; i < qs->n && rc == JOBQ_CLI_OK; i++) {
        if (!has_dead_list(&qs->q[i])) continue;
        dead_set s = {0};
        if (load_list(c, &qs->q[i], 0, &s) != 0) rc = JOBQ_CLI_USAGE;
        for (size_t j = s.n; rc == JOBQ_CLI_OK && j-- > 0;) {
            char why[160];
            int r = retry_entry(c, &s.e[j], why, sizeof why);
            if (r == -1) rc = JOBQ_CLI_USAGE;
            retried += r == 1;
            kept += r == -2;
        }
        set_fini(&s);
    }
    printf("retried %ld dead job(s)", retried);
    if (kept) printf("; kept %ld that cannot be retried (payload not a JSON object, or cut; see jobq dead list)", kept);
    putchar('\n');
    return rc;
}

static int dead_retry(jobq_cli *c, const dead_opts *o, const jobq_cli_queues *qs, const char *id) {
    return o->all ? retry_all(c, qs) : retry_one(c, qs, id);
}

/* Delete the dead lists of qs; the count removed into *removed (also of
 * the lists deleted before a failure). 0, or -1 after printing. */
static int purge_in(jobq_cli *c, const jobq_cli_queues *qs, long long *removed) {
    *removed = 0;
    for (size_t i = 0; i < qs->n; i++) {
        if (!has_dead_list(&qs->q[i])) continue;
        jobq_err err;
        long n = jobq_jobs_dead_purge(c->r, c->key_prefix, qs->q[i].name, &err);
        if (n < 0) return jobq_cli_redis_error(c, &err);
        *removed += n;
    }
    return 0;
}

static int dead_purge(jobq_cli *c, const dead_opts *o, const jobq_cli_queues *qs, const char *id) {
    (void)o, (void)id;
    long long removed;
    if (purge_in(c, qs, &removed) != 0) {
        printf("removed %lld dead job(s) before the error\n", removed);
        return JOBQ_CLI_USAGE;
    }
    printf("removed %lld dead job(s)\n", removed);
    return JOBQ_CLI_OK;
}

enum { NO_ID, NEEDS_ID, ID_OR_ALL };

static const struct dead_action {
    const char *name;
    int id; /* NO_ID, NEEDS_ID, ID_OR_ALL (retry --all) */
    dead_fn run;
} dead_actions[] = {
    {"list", NO_ID, dead_list},
    {"show", NEEDS_ID, dead_show},
    {"retry", ID_OR_ALL, dead_retry},
    {"purge", NO_ID, dead_purge},
};

/* Does the action get the ID (or --all) it needs? JOBQ_CLI_PARSED, or the
 * exit status after printing why not. */
static int check_action(const struct dead_action *a, const dead_opts *o, const char *id) {
    if (a->id == NO_ID && id) return jobq_cli_error("dead %s: unexpected argument '%s'", a->name, id);
    if (a->id == NEEDS_ID && !id) return jobq_cli_error("dead %s: missing ID", a->name);
    if (a->id == ID_OR_ALL && !id && !o->all) return jobq_cli_error("dead %s: missing ID (or --all)", a->name);
    if (a->id == ID_OR_ALL && id && o->all) return jobq_cli_error("dead %s: give an ID or --all, not both", a->name);
    if (a->id != ID_OR_ALL && o->all) return jobq_cli_error("dead %s: --all goes with retry", a->name);
    return JOBQ_CLI_PARSED;
}

/* The queues whose dead lists the action reads: -q's, or every queue's. */
static int dead_queues(jobq_cli *c, const dead_opts *o, jobq_cli_queues *qs) {
    if (!o->queue) return jobq_cli_queues_scan(c, qs);
    memset(qs, 0, sizeof *qs);
    jobq_cli_queue *q = jobq_cli_queues_add(qs, o->queue);
    if (!q) return jobq_cli_error("out of memory"), -1;
    q->kinds |= 1u << JOBQ_KEY_DEAD;
    return 0;
}

/* ---- for jobq web ---- */

json_t *jobq_cli_dead_entries(jobq_cli *c, const char *queue, long limit) {
    dead_opts o = {queue, false, false, 0};
    jobq_cli_queues qs;
    if (dead_queues(c, &o, &qs) != 0) return jobq_cli_queues_fini(&qs), NULL;
    dead_set s;
    json_t *out = NULL;
    if (load_entries(c, &qs, limit, &s) == 0) {
        size_t shown = limit > 0 && s.n > (size_t)limit ? (size_t)limit : s.n;
        json_t *list = json_array();
        for (size_t i = 0; list && i < shown; i++) {
            json_t *d = json_copy(s.e[i].doc);
            json_object_set_new(d, "queue", json_string(s.e[i].queue));
            json_array_append_new(list, d);
        }
        out = json_pack("{s:I, s:o}", "total", (json_int_t)s.total, "entries", list);
        if (!out) jobq_cli_error("out of memory");
    }
    set_fini(&s);
    jobq_cli_queues_fini(&qs);
    return out;
}

int jobq_cli_dead_retry_id(jobq_cli *c, const char *queue, const char *id, char *queue_out, size_t queue_size,
                           char *why, size_t why_size) {
    dead_opts o = {queue, false, false, 0};
    jobq_cli_queues qs;
    int r = dead_queues(c, &o, &qs) == 0 ? retry_in(c, &qs, id, queue_out, queue_size, why, why_size) : -1;
    jobq_cli_queues_fini(&qs);
    return r;
}

long long jobq_cli_dead_purge_lists(jobq_cli *c, const char *queue) {
    dead_opts o = {queue, false, false, 0};
    jobq_cli_queues qs;
    long long removed = -1;
    if (dead_queues(c, &o, &qs) == 0 && purge_in(c, &qs, &removed) != 0) removed = -1;
    jobq_cli_queues_fini(&qs);
    return removed;
}

int jobq_cli_dead(jobq_cli *c, int argc, char **argv) {
    static const jobq_cli_opt opts[] = {
        JOBQ_CLI_OPT_STRING("queue", 'q', dead_opts, queue),
        JOBQ_CLI_OPT_FLAG("json", 0, dead_opts, as_json),
        JOBQ_CLI_OPT_INTEGER("limit", 'n', dead_opts, limit, 0, 1e9, "a number of entries (0: all)"),
        JOBQ_CLI_OPT_FLAG("all", 'a', dead_opts, all),
        JOBQ_CLI_OPT_END,
    };
    dead_opts o = {NULL, false, false, 100};
    const char *args[2] = {"list", NULL};
    int nargs;
    const jobq_cli_spec spec = {dead_usage, opts, &o, args, 2, NULL};
    int parsed = jobq_cli_parse(c, &spec, argc, argv, &nargs);
    if (parsed != JOBQ_CLI_PARSED) return parsed;
    const struct dead_action *a = NULL;
    for (size_t i = 0; i < sizeof dead_actions / sizeof *dead_actions; i++)
        if (strcmp(dead_actions[i].name, args[0]) == 0) a = &dead_actions[i];
    if (!a)
        return jobq_cli_error("dead: unknown action '%s': use list, show ID, retry ID, retry --all or purge", args[0]);
    if ((parsed = check_action(a, &o, args[1])) != JOBQ_CLI_PARSED) return parsed;
    if (o.queue && !jobq_key_valid_queue(o.queue))
        return jobq_cli_error("dead: bad queue name '%s': use 1 to 64 of A-Z a-z 0-9 _ . : -", o.queue);
    if (jobq_cli_connect(c) != 0) return JOBQ_CLI_USAGE;
    jobq_cli_queues qs;
    int rc = dead_queues(c, &o, &qs) == 0 ? a->run(c, &o, &qs, args[1]) : JOBQ_CLI_USAGE;
    jobq_cli_queues_fini(&qs);
    return rc;
}
