/*
 * Streaming word counter (see words.h). One table lookup per byte and no
 * branch on the data: a word is counted at each non-space byte that follows
 * a space byte (or the start of the stream); in_word carries that state
 * across chunk boundaries.
 */
#include "daemon/handlers/words.h"

/* 1 for the ASCII whitespace bytes Python's bytes.split() splits on. */
static const unsigned char is_space[256] = {
    ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1, [' '] = 1,
};

void jobq_words_init(jobq_words *w) {
    w->words = 0;
    w->bytes = 0;
    w->in_word = 0;
}

void jobq_words_feed(jobq_words *w, const void *buf, size_t len) {
    const unsigned char *p = buf;
    const unsigned char *end = p + len;
    unsigned prev = w->in_word ? 1u : 0u; /* 1: previous byte was in a word */
    uint64_t starts = 0;

    if (len == 0) return;
    /* Four bytes per round keeps the loop overhead out of the chain. */
    while (end - p >= 4) {
        unsigned a = is_space[p[0]] ^ 1u, b = is_space[p[1]] ^ 1u;
        unsigned c = is_space[p[2]] ^ 1u, d = is_space[p[3]] ^ 1u;
        starts += (a & ~prev) + (b & ~a) + (c & ~b) + (d & ~c);
        prev = d;
        p += 4;
    }
    while (p < end) {
        unsigned a = is_space[*p++] ^ 1u;
        starts += a & ~prev;
        prev = a;
    }
    w->words += starts;
    w->bytes += len;
    w->in_word = (int)prev;
}
