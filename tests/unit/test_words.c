/*
 * Unit tests of the streaming word counter (src/handlers/words.c): chunk
 * boundaries, each whitespace byte, UTF-8, NUL bytes and a large buffer,
 * against hand-computed counts (Python's len(data.split()) on bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/handlers/words.h"

static jobq_words count_whole(const void *buf, size_t len) {
    jobq_words w;
    jobq_words_init(&w);
    jobq_words_feed(&w, buf, len);
    return w;
}

static jobq_words count_bytewise(const unsigned char *buf, size_t len) {
    jobq_words w;
    jobq_words_init(&w);
    for (size_t i = 0; i < len; i++) jobq_words_feed(&w, buf + i, 1);
    return w;
}

/* Deterministic xorshift so failures reproduce. */
static uint32_t rng_state = 2463534242u;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Feed buf in random chunk sizes in [0, max_chunk], zero-length feeds too. */
static jobq_words count_random_chunks(const unsigned char *buf, size_t len, size_t max_chunk) {
    jobq_words w;
    jobq_words_init(&w);
    size_t off = 0;
    while (off < len) {
        size_t n = rng() % (max_chunk + 1);
        if (n > len - off) n = len - off;
        jobq_words_feed(&w, buf + off, n);
        off += n;
    }
    return w;
}

/* Whole, byte by byte and in many random chunkings all give words/bytes. */
static void check_all_ways(const void *buf, size_t len, uint64_t words) {
    jobq_words w = count_whole(buf, len);
    assert_int_equal(w.words, words);
    assert_int_equal(w.bytes, len);
    w = count_bytewise(buf, len);
    assert_int_equal(w.words, words);
    assert_int_equal(w.bytes, len);
    for (int round = 0; round < 50; round++) {
        w = count_random_chunks(buf, len, 1 + (size_t)round % 9);
        assert_int_equal(w.words, words);
        assert_int_equal(w.bytes, len);
    }
}

#define CHECK(lit, n) check_all_ways((lit), sizeof(lit) - 1, (n))

static void test_init(void **state) {
    (void)state;
    jobq_words w = {.words = 7, .bytes = 9, .in_word = 1};
    jobq_words_init(&w);
    assert_int_equal(w.words, 0);
    assert_int_equal(w.bytes, 0);
    assert_int_equal(w.in_word, 0);
}

static void test_empty(void **state) {
    (void)state;
    jobq_words w;
    jobq_words_init(&w);
    jobq_words_feed(&w, NULL, 0);
    jobq_words_feed(&w, "", 0);
    assert_int_equal(w.words, 0);
    assert_int_equal(w.bytes, 0);
    assert_int_equal(w.in_word, 0);
}

static void test_only_whitespace(void **state) {
    (void)state;
    CHECK(" ", 0);
    CHECK(" \t\n\v\f\r", 0);
    CHECK("\n\n\n\r\n   \t\t", 0);
}

static void test_simple(void **state) {
    (void)state;
    CHECK("hello", 1);
    CHECK("hello world", 2);
    CHECK("  hello   world  ", 2);
    CHECK("a b c d e f g", 7);
    CHECK("one\ntwo\r\nthree\tfour\vfive\fsix", 6);
    CHECK("x", 1);
    CHECK(" x", 1);
    CHECK("x ", 1);
    CHECK("ab", 1);
    CHECK("a\nb", 2);
    CHECK("The quick brown fox jumps over the lazy dog.\n", 9);
    CHECK("don't stop-me-now, (ok)?!", 3);
}

/* Each whitespace byte alone separates words; no other byte does. */
static void test_each_whitespace_byte(void **state) {
    (void)state;
    const unsigned char spaces[] = {' ', '\t', '\n', '\v', '\f', '\r'};
    for (int c = 0; c < 256; c++) {
        unsigned char buf[3] = {'a', (unsigned char)c, 'b'};
        int is_space = memchr(spaces, c, sizeof spaces) != NULL;
        check_all_ways(buf, sizeof buf, is_space ? 2 : 1);
        /* Alone, a whitespace byte is no word; any other byte is one. */
        check_all_ways(buf + 1, 1, is_space ? 0 : 1);
    }
}

static void test_split_across_chunks(void **state) {
    (void)state;
    jobq_words w;
    jobq_words_init(&w);
    jobq_words_feed(&w, "hel", 3);
    assert_int_equal(w.words, 1);
    assert_int_equal(w.in_word, 1);
    jobq_words_feed(&w, "lo wo", 5);
    assert_int_equal(w.words, 2);
    jobq_words_feed(&w, "rld", 3);
    assert_int_equal(w.words, 2);
    jobq_words_feed(&w, " ", 1);
    assert_int_equal(w.in_word, 0);
    jobq_words_feed(&w, "!", 1);
    assert_int_equal(w.words, 3);
    assert_int_equal(w.bytes, 13);

    /* Chunk ends exactly at a word end, next starts with a space. */
    jobq_words_init(&w);
    jobq_words_feed(&w, "abc", 3);
    jobq_words_feed(&w, " def", 4);
    assert_int_equal(w.words, 2);

    /* Chunk ends with a space, next starts a word. */
    jobq_words_init(&w);
    jobq_words_feed(&w, "abc ", 4);
    jobq_words_feed(&w, "def", 3);
    assert_int_equal(w.words, 2);

    /* Tails of every length 0..3 after the 4-byte blocks. */
    CHECK("abcd efgh ij", 3);
    CHECK("abcd efgh i", 3);
    CHECK("abcd efg", 2);
    CHECK("a bc de f g h", 6);
}

static void test_utf8(void **state) {
    (void)state;
    /* "naïve café" -> 2; "日本語 テキスト" -> 2 */
    CHECK("na\xc3\xafve caf\xc3\xa9", 2);
    CHECK("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88", 2);
    /* U+00A0 (no-break space, C2 A0) is not ASCII whitespace: one word. */
    CHECK("foo\xc2\xa0" "bar", 1);
    CHECK("\xc2\xa0", 1);
    CHECK("a \xc2\xa0 b", 3);
    /* U+2003 EM SPACE (E2 80 83), U+3000 (E3 80 80), NEL (C2 85): not split. */
    CHECK("a\xe2\x80\x83" "b\xe3\x80\x80" "c\xc2\x85" "d", 1);
    /* Emoji (4 bytes each) separated by spaces. */
    CHECK("\xf0\x9f\x98\x80 \xf0\x9f\x98\x81\n\xf0\x9f\x98\x82", 3);
    /* Bytes 0x1c..0x1f split str.split() but not bytes.split(): not here. */
    CHECK("a\x1c" "b\x1d" "c\x1e" "d\x1f" "e", 1);
    /* High bytes 0x85 and 0xa0 alone are not whitespace either. */
    CHECK("\x85 \xa0", 2);
}

static void test_nul_inside_word(void **state) {
    (void)state;
    CHECK("ab\0cd", 1);
    CHECK("ab\0 cd", 2);
    CHECK("\0", 1);
    CHECK("\0\0 \0", 2);
}

/* 1 MiB+ of a repeating pattern with a known count per period. */
static void test_large_buffer(void **state) {
    (void)state;
    static const char pattern[] = "lorem ipsum\tdolor\r\nsit  amet,\vcon\fsectetur "; /* 7 words */
    const size_t plen = sizeof pattern - 1, reps = 25000;
    size_t len = plen * reps;
    unsigned char *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < reps; i++) memcpy(buf + i * plen, pattern, plen);
    check_all_ways(buf, len, 7 * reps);

    /* Fed in 64 KiB chunks (the HTTP case), which split words mid-way. */
    jobq_words w;
    jobq_words_init(&w);
    for (size_t off = 0; off < len; off += 65536)
        jobq_words_feed(&w, buf + off, len - off < 65536 ? len - off : 65536);
    assert_int_equal(w.words, 7 * reps);
    assert_int_equal(w.bytes, len);

    /* No whitespace at all: one word however it is cut. */
    memset(buf, 'x', len);
    check_all_ways(buf, len, 1);
    /* Alternating "x " : len/2 words. */
    for (size_t i = 0; i < len; i++) buf[i] = (i % 2) ? ' ' : 'x';
    check_all_ways(buf, len - len % 2, (len - len % 2) / 2);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_only_whitespace),
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_each_whitespace_byte),
        cmocka_unit_test(test_split_across_chunks),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_nul_inside_word),
        cmocka_unit_test(test_large_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
