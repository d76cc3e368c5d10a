/*
 * Per-process pseudo-random numbers (xorshift128+), seeded from the kernel
 * once per process and again after a fork, so that every daemon and every
 * worker draws its own sequence (job ids, retry jitter) without a syscall
 * per number. Not for secrets.
 */
#ifndef JOBQ_RANDOM_H
#define JOBQ_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* 64 random bits. */
uint64_t jobq_random_u64(void);

/* A number in [0, 1). */
double jobq_random01(void);

/* 64-bit FNV-1a of data: a fingerprint to find a payload again, not a
 * secure hash. */
uint64_t jobq_fnv1a64(const void *data, size_t len);

#endif
