/* Weighted queue order (see weights.h). O(n^2) for n <= 32 queues. */
#include "core/weights.h"

void jobq_weights_order(const int *weights, int n, double (*rand01)(void), int *order) {
    long total = 0;
    for (int i = 0; i < n; i++) {
        order[i] = i;
        total += weights[i] > 0 ? weights[i] : 0;
    }
    if (total == 0) return;
    for (int k = 0; k < n - 1; k++) {
        double x = rand01() * (double)total;
        int pick = n - 1;
        long sum = 0;
        for (int j = k; j < n; j++) {
            sum += weights[order[j]];
            if (x < (double)sum) {
                pick = j;
                break;
            }
        }
        int chosen = order[pick];
        order[pick] = order[k];
        order[k] = chosen;
        total -= weights[chosen];
        if (total <= 0) break;
    }
}
