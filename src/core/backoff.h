/*
 * Backoff arithmetic: the growing delay before restarting a worker that keeps
 * dying, reconnecting to Redis, and retrying a failed job (with jitter).
 * Pure functions; the caller supplies randomness so tests are exact.
 */
#ifndef JOBQ_BACKOFF_H
#define JOBQ_BACKOFF_H

/* base * 2^(failures-1), capped at cap; 0 when failures <= 0. Seconds. */
double jobq_backoff_delay(int failures, double base, double cap);

/* A retry delay for the given attempt (1 = the first one failed): the
 * exponential delay with "equal jitter": half fixed, half random, so retries
 * of many jobs spread out but never come sooner than half the delay.
 * random01 is in [0,1). */
double jobq_backoff_retry(int attempt, double base, double cap, double random01);

#endif
