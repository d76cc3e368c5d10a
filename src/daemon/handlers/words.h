/*
 * Streaming word counter used by the wordcount handler: a word is a maximal
 * run of bytes other than ASCII whitespace (space, \t, \n, \v, \f, \r), so the
 * count equals Python's len(data.split()) on bytes. Feeding a body in any
 * chunking gives the same counts as feeding it whole.
 */
#ifndef JOBQ_HANDLERS_WORDS_H
#define JOBQ_HANDLERS_WORDS_H

#include <stddef.h>
#include <stdint.h>

typedef struct jobq_words {
    uint64_t words; /* words started so far */
    uint64_t bytes; /* bytes fed so far */
    int in_word;    /* 1 when the last byte fed was part of a word */
} jobq_words;

/* Reset w to zero words and bytes, outside any word. */
void jobq_words_init(jobq_words *w);

/* Count len bytes of buf (which may be NULL when len is 0) into w. A word
 * split across two calls is counted once. Never fails, allocates nothing. */
void jobq_words_feed(jobq_words *w, const void *buf, size_t len);

#endif
