/*
 * Finding and hiding the userinfo of a URL (url_redact.h). The rules are
 * deliberately wider than libcurl's parser (last '@' of the authority, any
 * number of slashes after the scheme, no scheme unless a slash follows its
 * colon), so what curl would take as credentials is always hidden.
 */
#include "daemon/handlers/url_redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MASK "***"

/* Where url's userinfo starts (*start) and how long it is (*len, without the
 * '@'); false when there is none. */
static bool find_userinfo(const char *url, size_t *start, size_t *len) {
    size_t i = 0, auth;
    if (isalpha((unsigned char)url[0])) {
        size_t j = 1;
        while (isalnum((unsigned char)url[j]) || url[j] == '+' || url[j] == '-' || url[j] == '.') j++;
        /* "scheme:/..."; without a slash, "user:password@host" has none */
        if (url[j] == ':' && (url[j + 1] == '/' || url[j + 1] == '\\')) i = j + 1;
    }
    while (url[i] == '/' || url[i] == '\\') i++;
    auth = i;
    size_t end = auth + strcspn(url + auth, "/?#");
    const char *at = NULL;
    for (size_t k = auth; k < end; k++)
        if (url[k] == '@') at = url + k;
    if (!at) return false;
    *start = auth;
    *len = (size_t)(at - (url + auth));
    return true;
}

char *jobq_url_redact(const char *url) {
    size_t start, len;
    if (!url) return NULL;
    if (!find_userinfo(url, &start, &len)) return strdup(url);
    size_t rest = strlen(url + start + len);
    char *out = malloc(start + sizeof MASK - 1 + rest + 1);
    if (!out) return NULL;
    memcpy(out, url, start);
    memcpy(out + start, MASK, sizeof MASK - 1);
    memcpy(out + start + sizeof MASK - 1, url + start + len, rest + 1);
    return out;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* s[0..n) percent-decoded into a new string; NULL when out of memory. */
static char *decode(const char *s, size_t n) {
    char *out = malloc(n + 1);
    size_t o = 0;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* text holds s[0..n), raw or decoded; an empty piece never matches. When
 * out of memory, the raw form is still checked and the decoded one counts
 * as found (the safe answer). */
static bool holds(const char *text, const char *s, size_t n) {
    if (n == 0) return false;
    char *raw = strndup(s, n);
    if (!raw) return true;
    bool found = strstr(text, raw) != NULL;
    free(raw);
    if (found) return true;
    char *dec = decode(s, n);
    if (!dec) return true;
    found = dec[0] && strstr(text, dec) != NULL;
    free(dec);
    return found;
}

bool jobq_url_redact_leaks(const char *url, const char *text) {
    size_t start, len;
    if (!url || !text || !find_userinfo(url, &start, &len)) return false;
    const char *ui = url + start;
    const char *colon = memchr(ui, ':', len);
    size_t user_len = colon ? (size_t)(colon - ui) : len;
    if (holds(text, ui, len) || holds(text, ui, user_len)) return true;
    return colon && holds(text, colon + 1, len - user_len - 1);
}
