/*
 * The named sections of the config besides [queue.NAME]: [exec.NAME] (a
 * handler that runs a program) and [plugin.NAME] (free-form settings handed
 * to the plugin that calls itself NAME). Used by config.c while it loads,
 * prints and frees a jobq_config; the word splitter is shared with the exec
 * handler, so a value is read the same way where it is checked and where
 * it is used.
 */
#ifndef JOBQ_CONFIG_SECTIONS_H
#define JOBQ_CONFIG_SECTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

enum jobq_named_kind { JOBQ_NAMED_NONE = 0, JOBQ_NAMED_EXEC, JOBQ_NAMED_PLUGIN };

/* Is the header text [header] (len bytes, without the brackets) an
 * [exec.NAME] or [plugin.NAME] section? 0 when it is neither. Otherwise the
 * section is made current (created on first sight, line = its header's
 * line): 1 with *kind and *index set, or -1 with why (a bad or overlong
 * NAME, too many sections; -2 when out of memory). */
int jobq_config_named_open(jobq_config *cfg, const char *header, size_t len, int line,
                           enum jobq_named_kind *kind, int *index, char *why, size_t why_size);

/* name = value in the current named section. 0; -1 with why (an unknown
 * key of [exec.NAME], a bad value); -2 when out of memory. */
int jobq_config_named_pair(jobq_config *cfg, enum jobq_named_kind kind, int index, const char *name,
                           const char *value, char *why, size_t why_size);

/* Checks once the file is read: every [exec.NAME] has a command. 0, or -1
 * with *line (its header) and why. */
int jobq_config_named_check(const jobq_config *cfg, int *line, char *why, size_t why_size);

/* Write the named sections as INI (values of plugin keys whose name holds
 * "password", "secret" or "token" as ***). */
void jobq_config_named_print(const jobq_config *cfg, FILE *out);

/* Free what the named sections own. */
void jobq_config_named_fini(jobq_config *cfg);

/*
 * Split text into words the way a shell would without expanding anything:
 * blanks separate words; '...' keeps everything literally; "..." keeps
 * everything but a backslash before " or \; a backslash outside quotes
 * takes the next character literally. Returns 0 with a NULL-terminated
 * array in *words (count *n; free with jobq_config_words_free), or -1 with
 * why (an unclosed quote, a trailing backslash; out of memory).
 */
int jobq_config_split_words(const char *text, char ***words, size_t *n, char *why, size_t why_size);
void jobq_config_words_free(char **words);

#endif
