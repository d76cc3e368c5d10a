/*
 * Worker slots in MAP_SHARED|MAP_ANONYMOUS memory: a seqlock per slot lets
 * the supervisor copy a worker's current job without locks or syscalls.
 */
#include "daemon/slots.h"

#include <string.h>
#include <sys/mman.h>

jobq_slot *jobq_slots_map(size_t n) {
    void *p = mmap(NULL, n * sizeof(jobq_slot), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void jobq_slots_unmap(jobq_slot *slots, size_t n) {
    if (slots) munmap(slots, n * sizeof(jobq_slot));
}

void jobq_slot_begin_job(jobq_slot *s, const jobq_slot_job *job) {
    unsigned seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(&s->job, job, sizeof *job);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
    atomic_store_explicit(&s->state, JOBQ_SLOT_RUNNING, memory_order_release);
}

void jobq_slot_set_state(jobq_slot *s, enum jobq_slot_state st) {
    atomic_store_explicit(&s->state, (int)st, memory_order_release);
}

bool jobq_slot_read_job(jobq_slot *s, jobq_slot_job *out) {
    for (int tries = 0; tries < 100; tries++) {
        if (atomic_load_explicit(&s->state, memory_order_acquire) != JOBQ_SLOT_RUNNING) return false;
        unsigned before = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (before & 1) continue;
        memcpy(out, &s->job, sizeof *out);
        atomic_thread_fence(memory_order_acquire);
        unsigned after = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if (before == after) {
            out->id[sizeof out->id - 1] = '\0';
            return true;
        }
    }
    return false;
}
