/*
 * Handler registry: a small array kept sorted by name for binary search in
 * the worker's per-job lookup. Owned by this file; cleared on reload.
 */
#include "daemon/registry.h"

#include <stdlib.h>
#include <string.h>

static jobq_handler *handlers;
static size_t nhandlers, cap;

static int valid_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > JOBQ_HANDLER_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Index of name, or of where it would be inserted (with *found = 0). */
static size_t search(const char *name, int *found) {
    size_t lo = 0, hi = nhandlers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(handlers[mid].name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = 0;
    return lo;
}

int jobq_registry_add(const char *name, jobq_handler_fn fn, void *udata, const void *owner,
                      jobq_err *err) {
    if (!name || !valid_name(name)) {
        jobq_err_set(err, JOBQ_E_INVALID,
                     "invalid handler name '%s' (expected 1-%d characters of A-Z a-z 0-9 _ . -)",
                     name ? name : "(null)", JOBQ_HANDLER_NAME_MAX);
        return -1;
    }
    if (!fn) {
        jobq_err_set(err, JOBQ_E_INVALID, "handler '%s' has no function", name);
        return -1;
    }
    int found;
    size_t at = search(name, &found);
    if (found) {
        jobq_err_set(err, JOBQ_E_INVALID, "handler '%s' is already registered", name);
        return -1;
    }
    if (nhandlers == cap) {
        size_t ncap = cap ? cap * 2 : 16;
        jobq_handler *n = realloc(handlers, ncap * sizeof *n);
        if (!n) {
            jobq_err_set(err, JOBQ_E_NOMEM, "out of memory registering handler '%s'", name);
            return -1;
        }
        handlers = n;
        cap = ncap;
    }
    memmove(&handlers[at + 1], &handlers[at], (nhandlers - at) * sizeof *handlers);
    jobq_handler *h = &handlers[at];
    memset(h, 0, sizeof *h);
    memcpy(h->name, name, strlen(name) + 1);
    h->fn = fn;
    h->udata = udata;
    h->owner = owner;
    nhandlers++;
    return 0;
}

const jobq_handler *jobq_registry_find(const char *name) {
    int found;
    size_t at = search(name, &found);
    return found ? &handlers[at] : NULL;
}

void jobq_registry_remove_owner(const void *owner) {
    size_t kept = 0;
    for (size_t i = 0; i < nhandlers; i++)
        if (handlers[i].owner != owner) handlers[kept++] = handlers[i];
    nhandlers = kept;
}

size_t jobq_registry_count(void) { return nhandlers; }

const jobq_handler *jobq_registry_at(size_t i) { return i < nhandlers ? &handlers[i] : NULL; }

void jobq_registry_clear(void) {
    free(handlers);
    handlers = NULL;
    nhandlers = cap = 0;
}
