/*
 * URLs as wordcount shows them: the userinfo ("user:password@") of a job's
 * URL never reaches an error message, a result or a log line. Pure string
 * functions, no libcurl.
 */
#ifndef JOBQ_HANDLERS_URL_REDACT_H
#define JOBQ_HANDLERS_URL_REDACT_H

#include <stdbool.h>

/* A copy of url with its userinfo replaced by three asterisks, so that
 * "http://user:secret@host:80/x" becomes "http://" "***" "@host:80/x". The
 * authority starts after "scheme:" and the slashes that follow (at the
 * start when no slash follows the first colon) and ends at the first '/',
 * '?' or '#'; its userinfo is everything up to its last '@'. A url without
 * userinfo is copied as is. Returns a new string (the caller frees it), or
 * NULL when out of memory. */
char *jobq_url_redact(const char *url);

/* Whether text holds any piece of url's userinfo: the whole userinfo, the
 * user name or the password, as written or percent-decoded (empty pieces
 * do not count). false when url has no userinfo or either is NULL. Use it
 * on text that libcurl wrote (its error buffer) before showing it. */
bool jobq_url_redact_leaks(const char *url, const char *text);

#endif
