/*
 * libcurl loaded on first use (see libcurl.h). The library stays loaded for
 * the life of the process: OpenSSL registers exit handlers, so it is never
 * dlclose'd.
 */
#include "daemon/handlers/libcurl.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The soname Debian's libcurl4 (the library the headers come from) has. */
#define LIBCURL_SONAME "libcurl.so.4"

static jobq_libcurl table;
static bool loaded;

/* dlsym into *slot (a function pointer); false when the symbol is missing. */
static bool resolve(void *lib, const char *name, void *slot, char *why, size_t why_size) {
    dlerror();
    void *sym = dlsym(lib, name);
    if (!sym) {
        const char *e = dlerror();
        snprintf(why, why_size, "%s has no %s: %s", LIBCURL_SONAME, name, e ? e : "not found");
        return false;
    }
    memcpy(slot, &sym, sizeof sym); /* object pointer to function pointer */
    return true;
}

const jobq_libcurl *jobq_libcurl_get(char *why, size_t why_size) {
    if (loaded) return &table;
    void *lib = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(why, why_size, "cannot load libcurl: %s", e ? e : LIBCURL_SONAME " not found");
        return NULL;
    }
    jobq_libcurl t;
    CURLcode (*global_init)(long flags) = NULL;
    if (!resolve(lib, "curl_global_init", &global_init, why, why_size) ||
        !resolve(lib, "curl_easy_init", &t.easy_init, why, why_size) ||
        !resolve(lib, "curl_easy_reset", &t.easy_reset, why, why_size) ||
        !resolve(lib, "curl_easy_setopt", &t.easy_setopt, why, why_size) ||
        !resolve(lib, "curl_easy_perform", &t.easy_perform, why, why_size) ||
        !resolve(lib, "curl_easy_getinfo", &t.easy_getinfo, why, why_size) ||
        !resolve(lib, "curl_easy_strerror", &t.easy_strerror, why, why_size) ||
        !resolve(lib, "curl_easy_cleanup", &t.easy_cleanup, why, why_size)) {
        dlclose(lib);
        return NULL;
    }
    CURLcode rc = global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(why, why_size, "cannot initialise libcurl (error %d)", (int)rc);
        return NULL; /* it may have started OpenSSL: keep the library loaded */
    }
    table = t;
    loaded = true;
    return &table;
}

const jobq_libcurl *jobq_libcurl_loaded(void) { return loaded ? &table : NULL; }
