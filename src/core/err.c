/* jobq_err helpers: set and clear an error record. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

void jobq_err_set(jobq_err *err, int code, const char *fmt, ...) {
    if (!err) return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void jobq_err_clear(jobq_err *err) {
    if (!err) return;
    err->code = JOBQ_E_NONE;
    err->msg[0] = '\0';
}
