/*
 * failmalloc.so: an LD_PRELOAD shim that makes chosen heap allocations fail
 * (NULL, errno = ENOMEM), for the out-of-memory tests of jobqd
 * (tests/integration/test_oom_injection.py). Without JOBQ_FAILMALLOC in the
 * environment it only passes calls through.
 *
 *   JOBQ_FAILMALLOC="every=N"            fail allocations N, 2N, 3N...
 *   JOBQ_FAILMALLOC="after=N,count=M"    fail allocations N+1 .. N+M
 *   JOBQ_FAILMALLOC="after=N,every=K,count=M"   both: every K-th after N, M at most
 *   JOBQ_FAILMALLOC="every=N,random=1"   each allocation fails with probability
 *                                        1/N instead, from a generator seeded
 *                                        with the pid: forked workers do not all
 *                                        fail at the same step of their life
 *   JOBQ_FAILMALLOC_CHILDREN=1           only in forked children (jobqd's
 *                                        workers); the process that loaded
 *                                        the shim (the supervisor) is spared
 *   JOBQ_FAILMALLOC_PARENT=<schedule>    another schedule for the process that
 *                                        loaded the shim (the supervisor, which
 *                                        allocates far less than its workers)
 *   JOBQ_FAILMALLOC_SPARE=a,b            never fail an allocation whose caller,
 *                                        or the caller's caller (for strdup and
 *                                        the like), is a function named a or b,
 *                                        or lies in a shared object whose path
 *                                        contains a or b (say "libhiredis")
 *   JOBQ_FAILMALLOC_LOG=/path            append one line and a backtrace per
 *                                        injected failure (resolve the
 *                                        "jobqd(+0x...)" frames with addr2line)
 *
 * Allocations are numbered per process from 1: a pthread_atfork child
 * handler starts the count again in each child, so "after=2000" means the
 * 2001st allocation of each worker. Counted: malloc, calloc, realloc (not a
 * realloc to size 0), posix_memalign, aligned_alloc; glibc's own strdup,
 * getline, vasprintf, fopen... allocate through malloc and so count too.
 * With a log, a process that exits normally (not by _exit) appends its
 * totals: "failmalloc: pid N exits: A allocation(s), F failed".
 *
 * dlsym itself may allocate before the real functions are known: those few
 * allocations come from a static arena and are never failed or freed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);

/* One schedule: which allocations of a process fail. */
struct schedule {
    bool enabled;
    unsigned long long after, every, count; /* count 0: no limit */
    bool random;                            /* every = 1 in N on average */
};

/* Read once from the environment. */
static struct {
    struct schedule parent, child; /* the process that loaded us; forked ones */
    int log_fd;                    /* -1: no log */
    char spare[256];               /* ",a,b," or empty */
} cfg = {.log_fd = -1};

/* The schedule of this process: cfg.parent, then cfg.child after a fork. */
static const struct schedule *active = &cfg.parent;

/* Per process: allocations seen, failures injected, forked child or not,
 * and the state of the random=1 generator (xorshift64, seeded by pid). */
static unsigned long long seen, injected, rng;
static bool is_child;

static void seed(void) { rng = 0x9E3779B97F4A7C15ULL ^ ((unsigned long long)getpid() << 17); }

static unsigned long long next_random(void) {
    unsigned long long x = rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng = x;
}

/* Set while this thread is inside the shim's own work (init, logging):
 * allocations made then pass through uncounted. */
static __thread __attribute__((tls_model("initial-exec"))) int busy;

/* ---- bootstrap arena for dlsym ---- */

static _Alignas(max_align_t) char arena[64 * 1024];
static size_t arena_used;

static bool in_arena(const void *p) {
    return (const char *)p >= arena && (const char *)p < arena + sizeof arena;
}

static void *arena_alloc(size_t size) {
    size_t a = _Alignof(max_align_t);
    size_t need = (size + sizeof(size_t) + a - 1) / a * a + a;
    size_t at = __atomic_fetch_add(&arena_used, need, __ATOMIC_RELAXED);
    if (at + need > sizeof arena) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = arena + at + a;
    ((size_t *)p)[-1] = size;
    memset(p, 0, size);
    return p;
}

/* ---- setup ---- */

static unsigned long long field(const char *spec, const char *name) {
    const char *p = strstr(spec, name);
    if (!p) return 0;
    p += strlen(name);
    if (*p != '=') return 0;
    return strtoull(p + 1, NULL, 10);
}

static void after_fork_child(void) {
    seen = 0;
    injected = 0;
    is_child = true;
    active = &cfg.child;
    seed();
}

static void parse(struct schedule *s, const char *spec) {
    s->enabled = spec && *spec;
    if (!s->enabled) return;
    s->after = field(spec, "after");
    s->every = field(spec, "every");
    s->count = field(spec, "count");
    s->random = field(spec, "random") != 0;
}

/* At a normal exit (the supervisor's; workers leave with _exit): totals. */
__attribute__((destructor)) static void failmalloc_fini(void) {
    if (cfg.log_fd < 0) return;
    char line[160];
    int len = snprintf(line, sizeof line, "failmalloc: pid %d%s exits: %llu allocation(s), %llu failed\n",
                       (int)getpid(), is_child ? " (child)" : "", seen, injected);
    if (len > 0) (void)!write(cfg.log_fd, line, (size_t)len);
}

static void init(void) {
    static int state; /* 0 none, 1 in progress, 2 done */
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == 2) return;
    int expected = 0;
    if (!__atomic_compare_exchange_n(&state, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != 2) {
            if (busy) return; /* our own dlsym re-entering: the arena serves it */
        }
        return;
    }
    busy++;
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    if (!real_malloc || !real_calloc || !real_realloc || !real_free) {
        static const char msg[] = "failmalloc: dlsym(RTLD_NEXT) found no malloc\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(127);
    }
    const char *spec = getenv("JOBQ_FAILMALLOC");
    const char *parent = getenv("JOBQ_FAILMALLOC_PARENT");
    const char *children = getenv("JOBQ_FAILMALLOC_CHILDREN");
    bool children_only = children && *children && strcmp(children, "0") != 0;
    parse(&cfg.child, spec);
    parse(&cfg.parent, parent && *parent ? parent : children_only ? NULL : spec);
    if (cfg.child.enabled || cfg.parent.enabled) {
        seed();
        const char *spare = getenv("JOBQ_FAILMALLOC_SPARE");
        if (spare && *spare) snprintf(cfg.spare, sizeof cfg.spare, ",%s,", spare);
        const char *log = getenv("JOBQ_FAILMALLOC_LOG");
        if (log && *log) cfg.log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (cfg.log_fd >= 0 || cfg.spare[0]) {
            /* backtrace() loads libgcc_s on first use: do it now, not
             * in the middle of a failing allocation. */
            void *frames[2];
            backtrace(frames, 2);
        }
        pthread_atfork(NULL, NULL, after_fork_child);
    }
    busy--;
    __atomic_store_n(&state, 2, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void failmalloc_init(void) { init(); }

/* ---- the decision ---- */

/* One record per injected failure, written with a single write() so that
 * the records of concurrent processes do not interleave: a header line,
 * then one "object(symbol+0xoff)" or "object(+0xoff)" line per frame (the
 * latter resolve with addr2line -e object 0xoff). */
static void log_failure(const char *fn, size_t size, unsigned long long n) {
    char rec[4096];
    size_t len = 0;
    int w = snprintf(rec, sizeof rec, "failmalloc: pid %d%s: %s(%zu) #%llu failed\n", (int)getpid(),
                     is_child ? " (child)" : "", fn, size, n);
    if (w > 0) len = (size_t)w < sizeof rec ? (size_t)w : sizeof rec - 1;
    void *frames[32];
    int depth = backtrace(frames, 32);
    for (int i = 0; i < depth && len < sizeof rec - 1; i++) {
        Dl_info info;
        const char *obj = "?";
        if (dladdr(frames[i], &info) && info.dli_fname) {
            obj = strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
            if (info.dli_sname && info.dli_saddr)
                w = snprintf(rec + len, sizeof rec - len, "  %s(%s+0x%lx)\n", obj, info.dli_sname,
                             (unsigned long)((char *)frames[i] - (char *)info.dli_saddr));
            else
                w = snprintf(rec + len, sizeof rec - len, "  %s(+0x%lx)\n", obj,
                             (unsigned long)((char *)frames[i] - (char *)info.dli_fbase));
        } else {
            w = snprintf(rec + len, sizeof rec - len, "  %s[%p]\n", obj, frames[i]);
        }
        if (w > 0) len += (size_t)w < sizeof rec - len ? (size_t)w : sizeof rec - len - 1;
    }
    (void)!write(cfg.log_fd, rec, len);
}

/* Is the function at return address pc, or its object, on the spare list? */
static bool listed(const void *pc) {
    Dl_info info;
    if (!dladdr(pc, &info)) return false;
    char name[128];
    if (info.dli_sname) {
        snprintf(name, sizeof name, ",%s,", info.dli_sname);
        if (strstr(cfg.spare, name)) return true;
    }
    if (info.dli_fname) {
        /* each listed word as a substring of the object's path */
        for (const char *w = cfg.spare + 1; *w;) {
            size_t n = strcspn(w, ",");
            if (n && n < sizeof name) {
                memcpy(name, w, n);
                name[n] = '\0';
                if (strstr(info.dli_fname, name)) return true;
            }
            w += n + (w[n] == ',');
        }
    }
    return false;
}

/* Is this allocation spared? Its caller, or the caller's caller (hiredis's
 * hi_strdup calls strdup, which calls malloc), is looked up. */
static bool spared(void) {
    if (!cfg.spare[0]) return false;
    Dl_info self;
    if (!dladdr((void *)listed, &self)) return false;
    void *frames[12];
    int depth = backtrace(frames, 12), foreign = 0;
    for (int i = 0; i < depth && foreign < 2; i++) {
        Dl_info info;
        if (dladdr(frames[i], &info) && info.dli_fbase == self.dli_fbase) continue; /* the shim */
        if (listed(frames[i])) return true;
        foreign++;
    }
    return false;
}

/* Count this allocation; true when it must fail. */
static bool should_fail(const char *fn, size_t size) {
    const struct schedule *s = active;
    if (busy) return false;
    unsigned long long n = __atomic_add_fetch(&seen, 1, __ATOMIC_RELAXED);
    if (!s->enabled || n <= s->after) return false;
    if (s->every && s->random && next_random() % s->every != 0) return false;
    if (s->every && !s->random && (n - s->after) % s->every != 0) return false;
    if (!s->every && !s->count) return false; /* after= alone: nothing to fail */
    busy++;
    bool spare = spared();
    busy--;
    if (spare) return false;
    if (s->count && __atomic_load_n(&injected, __ATOMIC_RELAXED) >= s->count) return false;
    __atomic_add_fetch(&injected, 1, __ATOMIC_RELAXED);
    if (cfg.log_fd >= 0) {
        int saved = errno;
        busy++;
        log_failure(fn, size, n);
        busy--;
        errno = saved;
    }
    errno = ENOMEM;
    return true;
}

/* ---- the interposed functions ---- */

void *malloc(size_t size) {
    if (!real_malloc) {
        init();
        if (!real_malloc) return arena_alloc(size);
    }
    if (should_fail("malloc", size)) return NULL;
    return real_malloc(size);
}

void *calloc(size_t n, size_t size) {
    if (!real_calloc) {
        init();
        if (!real_calloc) {
            if (size && n > (size_t)-1 / size) return errno = ENOMEM, NULL;
            return arena_alloc(n * size);
        }
    }
    if (should_fail("calloc", n * size)) return NULL;
    return real_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    if (!real_realloc) {
        init();
        if (!real_realloc) return p ? NULL : arena_alloc(size);
    }
    if (in_arena(p)) {
        /* Moved out of the arena to the real heap. */
        void *q = real_malloc(size);
        if (q) {
            size_t old = ((const size_t *)p)[-1];
            memcpy(q, p, old < size ? old : size);
        }
        return q;
    }
    if (size && should_fail("realloc", size)) return NULL;
    return real_realloc(p, size);
}

void free(void *p) {
    if (!p || in_arena(p)) return;
    if (!real_free) init();
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t size) {
    if (!real_posix_memalign) init();
    if (should_fail("posix_memalign", size)) return ENOMEM;
    return real_posix_memalign(out, align, size);
}

void *aligned_alloc(size_t align, size_t size) {
    if (!real_aligned_alloc) init();
    if (should_fail("aligned_alloc", size)) return NULL;
    return real_aligned_alloc(align, size);
}
