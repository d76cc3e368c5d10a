/* Per-process random numbers and the FNV-1a fingerprint (see random.h). */

#include "core/random.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t jobq_random_u64(void) {
    static uint64_t state[2];
    static pid_t seeded_pid;
    pid_t pid = getpid();
    if (seeded_pid != pid) {
        if (getrandom(state, sizeof state, 0) != sizeof state) {
            state[0] = (uint64_t)time(NULL) ^ ((uint64_t)pid << 32);
            state[1] = (uint64_t)clock() * 2654435761ULL + 1;
        }
        if (!state[0] && !state[1]) state[1] = 1;
        seeded_pid = pid;
    }
    uint64_t s1 = state[0];
    const uint64_t s0 = state[1];
    state[0] = s0;
    s1 ^= s1 << 23;
    state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return state[1] + s0;
}

double jobq_random01(void) { return (double)(jobq_random_u64() >> 11) / 9007199254740992.0; }

uint64_t jobq_fnv1a64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}
