/* Backoff arithmetic (see backoff.h). */
#include "core/backoff.h"

#include <math.h>

double jobq_backoff_delay(int failures, double base, double cap) {
    if (failures <= 0 || base <= 0) return 0;
    if (failures > 60) failures = 60; /* 2^60 overflows any sane cap */
    double d = base * ldexp(1.0, failures - 1);
    return d > cap ? cap : d;
}

double jobq_backoff_retry(int attempt, double base, double cap, double random01) {
    double d = jobq_backoff_delay(attempt, base, cap);
    if (random01 < 0) random01 = 0;
    if (random01 >= 1) random01 = 0.999999;
    return d / 2 + d / 2 * random01;
}
