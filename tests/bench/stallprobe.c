/*
 * stallprobe: how late this machine wakes a sleeping thread, the floor under
 * every latency figure of `make bench`. One thread per online CPU, pinned to
 * it, sleeps PERIOD_US again and again for SECONDS and notes each wake-up
 * that came more than 1 ms late. The threads run SCHED_FIFO when allowed
 * (root), so the processes under test do not delay them: what is left is
 * the host's, the hypervisor's and the guest kernel's (a stall of that
 * CPU); without it ("fifo": false) a busy CPU counts too. Prints one JSON
 * object:
 *   {"seconds", "period_us", "fifo", "cpus": [{"cpu", "wakeups",
 *    "late_1ms", "late_2ms", "max_ms"}...], "late_2ms", "episodes_2ms",
 *    "max_ms"}
 * where episodes_2ms counts the distinct stretches of time in which some
 * CPU was stalled over 2 ms (overlapping stalls of several CPUs count once).
 *
 *   stallprobe SECONDS [PERIOD_US]
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 256
#define MAX_STALLS 4096 /* per CPU; more are counted but not placed in time */

typedef struct stall {
    double from, to; /* CLOCK_MONOTONIC seconds: when the wake-up was due, when it came */
} stall;

typedef struct probe {
    int cpu;
    double seconds;
    long period_ns;
    long wakeups, late_1ms, late_2ms;
    double max_late;
    stall stalls[MAX_STALLS];
    size_t nstalls;
    int error; /* errno of a failed pin, 0 when pinned */
    int fifo;  /* 1 when the thread runs SCHED_FIFO */
} probe;

static double monotonic_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *probe_run(void *arg) {
    probe *p = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p->cpu, &set);
    p->error = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (p->error) return NULL;
    struct sched_param prio = {.sched_priority = 1};
    p->fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &prio) == 0;
    double period = (double)p->period_ns / 1e9;
    double end = monotonic_now() + p->seconds;
    struct timespec nap = {p->period_ns / 1000000000L, p->period_ns % 1000000000L};
    for (double before = monotonic_now(); before < end;) {
        nanosleep(&nap, NULL);
        double after = monotonic_now();
        double late = after - before - period;
        p->wakeups++;
        if (late > p->max_late) p->max_late = late;
        if (late > 0.001) p->late_1ms++;
        if (late > 0.002) {
            p->late_2ms++;
            if (p->nstalls < MAX_STALLS) p->stalls[p->nstalls++] = (stall){before + period, after};
        }
        before = after;
    }
    return NULL;
}

static int by_start(const void *a, const void *b) {
    double x = ((const stall *)a)->from, y = ((const stall *)b)->from;
    return (x > y) - (x < y);
}

/* Distinct stretches of time covered by the stalls of every probe. */
static long count_episodes(probe *probes, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += probes[i].nstalls;
    if (total == 0) return 0;
    stall *all = malloc(total * sizeof *all);
    if (!all) return -1;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, probes[i].stalls, probes[i].nstalls * sizeof *all);
        k += probes[i].nstalls;
    }
    qsort(all, total, sizeof *all, by_start);
    long episodes = 1;
    double reach = all[0].to;
    for (size_t i = 1; i < total; i++) {
        if (all[i].from > reach) episodes++;
        if (all[i].to > reach) reach = all[i].to;
    }
    free(all);
    return episodes;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: stallprobe SECONDS [PERIOD_US]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    long period_us = argc > 2 ? atol(argv[2]) : 1000;
    if (seconds <= 0 || seconds > 3600 || period_us < 50 || period_us > 1000000) {
        fprintf(stderr, "stallprobe: SECONDS must be in (0, 3600] and PERIOD_US in [50, 1000000]\n");
        return 2;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = online < 1 ? 1 : online > MAX_CPUS ? MAX_CPUS : (int)online;
    probe *probes = calloc((size_t)n, sizeof *probes);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    if (!probes || !threads) {
        fprintf(stderr, "stallprobe: out of memory\n");
        return 1;
    }
    int started = 0, status = 0;
    for (int i = 0; i < n; i++) {
        probes[i] = (probe){.cpu = i, .seconds = seconds, .period_ns = period_us * 1000};
        int e = pthread_create(&threads[i], NULL, probe_run, &probes[i]);
        if (e) {
            fprintf(stderr, "stallprobe: thread for CPU %d: %s\n", i, strerror(e));
            status = 1;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
    long late_2ms = 0;
    double max_late = 0;
    int fifo = started > 0;
    for (int i = 0; i < started; i++) fifo = fifo && probes[i].fifo;
    printf("{\"seconds\": %.3f, \"period_us\": %ld, \"fifo\": %s, \"cpus\": [", seconds, period_us,
           fifo ? "true" : "false");
    for (int i = 0; i < started; i++) {
        probe *p = &probes[i];
        if (p->error) {
            fprintf(stderr, "stallprobe: pinning to CPU %d: %s\n", p->cpu, strerror(p->error));
            status = 1;
        }
        late_2ms += p->late_2ms;
        if (p->max_late > max_late) max_late = p->max_late;
        printf("%s{\"cpu\": %d, \"wakeups\": %ld, \"late_1ms\": %ld, \"late_2ms\": %ld, \"max_ms\": %.3f}",
               i ? ", " : "", p->cpu, p->wakeups, p->late_1ms, p->late_2ms, p->max_late * 1e3);
    }
    long episodes = count_episodes(probes, started);
    printf("], \"late_2ms\": %ld, \"episodes_2ms\": %ld, \"max_ms\": %.3f}\n", late_2ms, episodes,
           max_late * 1e3);
    free(probes);
    free(threads);
    if (episodes < 0) {
        fprintf(stderr, "stallprobe: out of memory\n");
        status = 1;
    }
    return status;
}
