/*
 * The order in which a worker tries its queues for one take: the
 * configured order (strict priority) when no weights are given, else a
 * random order drawn by weight without replacement (Sidekiq's weighted
 * mode): queue i comes first with probability weights[i] / sum, and so on
 * among the rest, so every queue with jobs gets its share and none starves.
 */
#ifndef JOBQ_WEIGHTS_H
#define JOBQ_WEIGHTS_H

/* Fill order[0..n) with the queue indexes 0..n-1 in the order to try.
 * weights: n values >= 1, or all 0 (strict order). rand01 returns numbers
 * in [0, 1) (jobq_random01; a fixed sequence in tests). */
void jobq_weights_order(const int *weights, int n, double (*rand01)(void), int *order);

#endif
