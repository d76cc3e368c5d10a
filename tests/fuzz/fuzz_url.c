/*
 * libFuzzer harness: jobq_redis_url_parse on arbitrary bytes (as a C
 * string), the redacted form into buffers of several sizes, and the scrub
 * of a command-line copy. Oracles besides the sanitizers: the redacted form
 * of a URL that parses parses again to the same address (password "***"),
 * and the scrub keeps the length and the scheme of a valid URL.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/redis_url.h"

static int same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_redacted(const jobq_redis_url *url, const char *text) {
    jobq_redis_url again;
    jobq_err err;
    if (jobq_redis_url_parse(text, &again, &err) != 0) {
        fprintf(stderr, "fuzz_url: the redacted form '%s' does not parse: %s\n", text, err.msg);
        abort();
    }
    if (!same(url->host, again.host) || !same(url->socket_path, again.socket_path) ||
        !same(url->user, again.user) || url->port != again.port || url->db != again.db ||
        !url->password != !again.password) {
        fprintf(stderr, "fuzz_url: the redacted form '%s' names another address\n", text);
        abort();
    }
    jobq_redis_url_fini(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    jobq_redis_url url;
    jobq_err err;
    int parsed = jobq_redis_url_parse(s, &url, &err) == 0;
    if (parsed) {
        static const size_t sizes[] = {1, 2, 9, 17, 64, 512, 4096};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char *buf = malloc(sizes[i]);
            if (!buf) abort();
            jobq_redis_url_format_redacted(&url, buf, sizes[i]);
            if (strlen(buf) >= sizes[i]) abort();
            if (sizes[i] == 4096 && strlen(buf) < 4095) check_redacted(&url, buf);
            free(buf);
        }
        jobq_redis_url_format_redacted(&url, NULL, 0);
        jobq_redis_url_fini(&url);
    }
    jobq_redis_url_fini(&url); /* a second fini of a zeroed struct is fine */

    /* ps shows the copy in argv: scrubbed in place. The scheme of a valid
     * URL stays (anything may happen to "password=" in garbage). */
    size_t len = strlen(s);
    char *scheme_end = strstr(s, "://");
    size_t keep = parsed && scheme_end ? (size_t)(scheme_end - s) + 3 : 0;
    char *copy = strdup(s);
    if (!copy) abort();
    jobq_redis_url_scrub(copy);
    if (strlen(copy) != len || memcmp(copy, s, keep) != 0) {
        fprintf(stderr, "fuzz_url: scrub changed the length or the scheme of '%s'\n", s);
        abort();
    }
    free(copy);
    free(s);
    return 0;
}
