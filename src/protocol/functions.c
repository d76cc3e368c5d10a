/*
 * Installing the jobq FUNCTION library (see functions.h): compare what the
 * server has with ours, and load ours unless the server's is newer. The
 * library builds key names from the key it is given, so one library serves
 * every prefix on a server.
 */
#include "protocol/functions.h"

#include <jansson.h>

#include "protocol/scripts.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The "library_code" of library "jobq" in a FUNCTION LIST reply (borrowed
 * from it), or NULL. */
static const char *installed_code(json_t *list) {
    size_t i, j;
    json_t *lib;
    json_array_foreach(list, i, lib) {
        const char *name = NULL, *code = NULL;
        for (j = 0; j + 1 < json_array_size(lib); j += 2) {
            const char *k = json_string_value(json_array_get(lib, j));
            json_t *v = json_array_get(lib, j + 1);
            if (k && strcmp(k, "library_name") == 0) name = json_string_value(v);
            if (k && strcmp(k, "library_code") == 0) code = json_string_value(v);
        }
        if (name && strcmp(name, "jobq") == 0) return code;
    }
    return NULL;
}

/* jobq_functions_ensure on primary i. */
static int ensure_on(jobq_redis *r, int i, jobq_err *err) {
    const char *source = jobq_script_function_library();
    json_t *list = NULL, *ver = NULL, *loaded = NULL;
    /* The usual case, checked cheaply: our version is there. */
    const char *ver_argv[] = {"FCALL", "jobq_version", "0"};
    jobq_err ignored;
    if (jobq_redis_command_json_at(r, i, &ver, &ignored, 3, ver_argv, NULL) == 0 && json_is_integer(ver) &&
        json_integer_value(ver) == jobq_script_function_version()) {
        json_decref(ver);
        return 0;
    }
    json_decref(ver);
    ver = NULL;
    if (!jobq_redis_connected(r)) {
        *err = ignored;
        return -1;
    }
    const char *list_argv[] = {"FUNCTION", "LIST", "LIBRARYNAME", "jobq", "WITHCODE"};
    if (jobq_redis_command_json_at(r, i, &list, err, 5, list_argv, NULL) != 0) return -1;
    const char *code = installed_code(list);
    int rc = 0;
    if (code && strcmp(code, source) == 0) goto out;
    if (code) {
        /* Another jobq's library: keep it if it is newer. */
        if (jobq_redis_command_json_at(r, i, &ver, &ignored, 3, ver_argv, NULL) == 0 && json_is_integer(ver) &&
            json_integer_value(ver) > jobq_script_function_version())
            goto out;
        if (!jobq_redis_connected(r)) {
            *err = ignored;
            rc = -1;
            goto out;
        }
    }
    const char *load_argv[] = {"FUNCTION", "LOAD", "REPLACE", source};
    if (jobq_redis_command_json_at(r, i, &loaded, err, 4, load_argv, NULL) != 0) {
        rc = -1;
        goto out;
    }
    rc = 1;
out:
    json_decref(list);
    json_decref(ver);
    json_decref(loaded);
    return rc;
}

int jobq_functions_ensure(jobq_redis *r, jobq_err *err) {
    int loaded = 0;
    for (int i = 0; i < jobq_redis_primaries(r); i++) {
        int rc = ensure_on(r, i, err);
        if (rc < 0) return -1;
        loaded |= rc;
    }
    return loaded;
}
