/*
 * Handler registry: handler name -> function, per process. Filled in the
 * supervisor (built-ins, then plugins) before workers fork; workers inherit it
 * read-only. Names are unique; each entry remembers which plugin owns it so a
 * plugin whose init fails can be removed whole.
 */
#ifndef JOBQ_REGISTRY_H
#define JOBQ_REGISTRY_H

#include <stddef.h>

#include "core/err.h"
#include "jobq/plugin.h"

#define JOBQ_HANDLER_NAME_MAX 64

typedef struct jobq_handler {
    char name[JOBQ_HANDLER_NAME_MAX + 1];
    jobq_handler_fn fn;
    void *udata;       /* the plugin's, passed back on every call */
    const void *owner; /* opaque tag of the registering plugin */
} jobq_handler;

/* Add a handler. -1 with err when the name is invalid ([A-Za-z0-9_.-],
 * 1..64 chars), already registered, or memory runs out. */
int jobq_registry_add(const char *name, jobq_handler_fn fn, void *udata, const void *owner,
                      jobq_err *err);

/* The handler registered under name, or NULL. Borrowed; valid until the
 * registry changes. */
const jobq_handler *jobq_registry_find(const char *name);

/* Remove every handler owned by owner. */
void jobq_registry_remove_owner(const void *owner);

/* Number of handlers, and the i-th (0-based) in name order. */
size_t jobq_registry_count(void);
const jobq_handler *jobq_registry_at(size_t i);

/* Remove everything (frees the table). */
void jobq_registry_clear(void);

#endif
