/* Standalone tests for femtows' C kernels (femtows/_core/mask.c, femtows/_core/utf8.c).
 *
 * Build and run (tests/test_c_kernels.py does this for every kernel variant):
 *     cc -O2 -Wall -Wextra -Werror -Ifemtows/_core tests/c/test_kernels.c \
 *        femtows/_core/mask.c femtows/_core/utf8.c -o test_kernels && ./test_kernels [seed]
 * Exit status 0 on success; otherwise failures are printed (the first few in detail).
 *
 * Both kernels are checked against deliberately naive references written from the
 * specifications, not from the kernels' designs:
 * - masking: byte-at-a-time XOR;
 * - UTF-8: decode each character by its bit pattern and ask "can this prefix still be
 *   completed to a valid code point?" by interval arithmetic on the code points it could encode.
 *   That yields the index of the first byte that dooms the input, which is exactly where the
 *   fail-fast validator must report REJECT.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask.h"
#include "utf8.h"
#include "utf8_encode.h"

/* ------------------------------------------------------------------------------------------ */
/* Plumbing                                                                                    */

static unsigned long g_checks, g_failures;

#define MAX_REPORTED 40

static void fail(const char *what, const char *fmt_detail, long a, long b, long c, long d)
{
    g_failures++;
    if (g_failures <= MAX_REPORTED) {
        printf("FAIL %s: ", what);
        printf(fmt_detail, a, b, c, d);
        printf("\n");
    } else if (g_failures == MAX_REPORTED + 1) {
        printf("... further failures not shown\n");
    }
}

#define CHECK(cond, what, fmt, a, b, c, d)                                                      \
    do {                                                                                        \
        g_checks++;                                                                             \
        if (!(cond))                                                                            \
            fail(what, fmt, (long)(a), (long)(b), (long)(c), (long)(d));                        \
    } while (0)

/* splitmix64: tiny, good enough, and reproducible from the seed printed on failure. */
static uint64_t g_rng;

static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static unsigned rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* calloc: never hands out uninitialised bytes (and keeps GCC's -Wmaybe-uninitialized quiet). */
static void *xmalloc(size_t n)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)rnd();
}

/* ------------------------------------------------------------------------------------------ */
/* Masking                                                                                     */

static void ref_mask(unsigned char *dst, const unsigned char *src, size_t len,
                     const unsigned char kb[4])
{
    for (size_t i = 0; i < len; i++)
        dst[i] = src[i] ^ kb[i % 4];
}

static uint32_t key_from_bytes(const unsigned char kb[4])
{
    uint32_t k;
    memcpy(&k, kb, 4);
    return k;
}

#define SMALL_MAX 300
#define MAX_MIS 64
#define GUARD 32
#define CANARY 0xA5

/* Every length 0..SMALL_MAX x every misalignment 0..63 of src and of dst x 4 key rotations,
 * with canaries around the destination to catch stray writes. */
static void test_mask_small(const unsigned char key_bytes[4])
{
    enum { BUF = GUARD + MAX_MIS + SMALL_MAX + GUARD };
    unsigned char *src_buf = xmalloc(BUF), *dst_buf = xmalloc(BUF), *expect = xmalloc(SMALL_MAX);
    unsigned long fails_before = g_failures;

    for (int rot = 0; rot < 4; rot++) {
        unsigned char kb[4];
        for (int j = 0; j < 4; j++)
            kb[j] = key_bytes[(j + rot) % 4];
        const uint32_t key = key_from_bytes(kb);

        for (size_t len = 0; len <= SMALL_MAX; len++) {
            for (size_t so = 0; so < MAX_MIS; so++) {
                unsigned char *src = src_buf + GUARD + so;
                fill_random(src, len);
                ref_mask(expect, src, len, kb);

                /* copy: every destination misalignment against this source misalignment */
                for (size_t dof = 0; dof < MAX_MIS; dof++) {
                    unsigned char *dst = dst_buf + GUARD + dof;
                    memset(dst - GUARD, CANARY, len + 2 * GUARD);
                    femtows_mask_copy(dst, src, len, key);
                    int ok = memcmp(dst, expect, len) == 0;
                    for (size_t g = 0; g < GUARD; g++)
                        ok &= (dst[-1 - (long)g] == CANARY) & (dst[len + g] == CANARY);
                    CHECK(ok, "mask_copy", "len=%ld src_off=%ld dst_off=%ld rot=%ld", len, so,
                          dof, rot);
                }

                /* in place, at the source's misalignment; masking twice must restore */
                unsigned char *data = dst_buf + GUARD + so;
                memset(data - GUARD, CANARY, len + 2 * GUARD);
                memcpy(data, src, len);
                femtows_mask_inplace(data, len, key);
                int ok = memcmp(data, expect, len) == 0;
                for (size_t g = 0; g < GUARD; g++)
                    ok &= (data[-1 - (long)g] == CANARY) & (data[len + g] == CANARY);
                CHECK(ok, "mask_inplace", "len=%ld off=%ld rot=%ld key=%08lx", len, so, rot, key);
                femtows_mask_inplace(data, len, key);
                CHECK(memcmp(data, src, len) == 0, "mask_inplace twice", "len=%ld off=%ld rot=%ld",
                      len, so, rot, 0);
            }
            if (g_failures - fails_before > MAX_REPORTED)
                goto out; /* broken; don't drown the output */
        }
    }
out:
    free(src_buf);
    free(dst_buf);
    free(expect);
}

/* Lengths around and above the point where the SIMD kernels start aligning their stores
 * (ALIGN_MIN_LEN in mask.c), for every destination misalignment: exercises the aligned-head
 * path, the key rotation that goes with it, and every tail length. */
static void test_mask_medium(uint32_t key)
{
    enum { LO = 400, HI = 1200, BUF = GUARD + MAX_MIS + HI + GUARD };
    static const size_t src_offs[] = {0, 1, 2, 3, 5, 16, 33};
    unsigned char kb[4];
    memcpy(kb, &key, 4);
    unsigned char *src_buf = xmalloc(BUF), *dst_buf = xmalloc(BUF), *expect = xmalloc(HI);
    const unsigned long fails_before = g_failures;
    for (size_t len = LO; len <= HI; len += 1 + (len > 700) * 3) {
        for (size_t dof = 0; dof < MAX_MIS; dof++) {
            const size_t so = src_offs[(len + dof) % (sizeof src_offs / sizeof src_offs[0])];
            unsigned char *src = src_buf + GUARD + so, *dst = dst_buf + GUARD + dof;
            fill_random(src, len);
            ref_mask(expect, src, len, kb);
            memset(dst - GUARD, CANARY, len + 2 * GUARD);
            femtows_mask_copy(dst, src, len, key);
            int ok = memcmp(dst, expect, len) == 0;
            for (size_t g = 0; g < GUARD; g++)
                ok &= (dst[-1 - (long)g] == CANARY) & (dst[len + g] == CANARY);
            CHECK(ok, "mask_copy (medium)", "len=%ld src_off=%ld dst_off=%ld", len, so, dof, 0);

            memset(dst - GUARD, CANARY, len + 2 * GUARD);
            memcpy(dst, src, len);
            femtows_mask_inplace(dst, len, key);
            ok = memcmp(dst, expect, len) == 0;
            for (size_t g = 0; g < GUARD; g++)
                ok &= (dst[-1 - (long)g] == CANARY) & (dst[len + g] == CANARY);
            CHECK(ok, "mask_inplace (medium)", "len=%ld off=%ld", len, dof, 0, 0);
            if (g_failures - fails_before > MAX_REPORTED)
                goto out;
        }
    }
out:
    free(src_buf);
    free(dst_buf);
    free(expect);
}

/* Buffers that end exactly at the end of their heap block, so a sanitizer build catches any
 * read or write past the end (the canaries above only catch writes). */
static void test_mask_block_edges(uint32_t key)
{
    unsigned char kb[4];
    memcpy(kb, &key, 4);
    for (size_t len = 0; len <= SMALL_MAX; len++) {
        unsigned char *src = xmalloc(len), *dst = xmalloc(len), *expect = xmalloc(len);
        fill_random(src, len);
        ref_mask(expect, src, len, kb);
        femtows_mask_copy(dst, src, len, key);
        CHECK(memcmp(dst, expect, len) == 0, "mask_copy (block edge)", "len=%ld", len, 0,
              0, 0);
        femtows_mask_inplace(src, len, key);
        CHECK(memcmp(src, expect, len) == 0, "mask_inplace (block edge)", "len=%ld", len,
              0, 0, 0);
        free(src);
        free(dst);
        free(expect);
    }
}

static void test_mask_large(uint32_t key)
{
    static const size_t lens[] = {(1u << 20) + 7, (1u << 20), 3u * 1000 * 1000 + 1, 65599};
    static const size_t offs[] = {0, 1, 3, 17, 31, 33, 63};
    unsigned char kb[4];
    memcpy(kb, &key, 4);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const size_t len = lens[li];
        unsigned char *src = xmalloc(len + 64), *dst = xmalloc(len + 64), *expect = xmalloc(len);
        for (size_t oi = 0; oi < sizeof offs / sizeof offs[0]; oi++) {
            const size_t so = offs[oi], dof = offs[(oi + 3) % (sizeof offs / sizeof offs[0])];
            fill_random(src + so, len);
            ref_mask(expect, src + so, len, kb);
            femtows_mask_copy(dst + dof, src + so, len, key);
            CHECK(memcmp(dst + dof, expect, len) == 0, "mask_copy (large)",
                  "len=%ld src_off=%ld dst_off=%ld", len, so, dof, 0);
            femtows_mask_inplace(src + so, len, key);
            CHECK(memcmp(src + so, expect, len) == 0, "mask_inplace (large)",
                  "len=%ld off=%ld", len, so, 0, 0);
        }
        free(src);
        free(dst);
        free(expect);
    }
}

static void test_mask(void)
{
    unsigned char kb[4];
    uint32_t r = (uint32_t)rnd();
    memcpy(kb, &r, 4);
    kb[0] |= 0x80; /* make sure sign bits are exercised in at least one lane */
    kb[3] = (unsigned char)(kb[0] ^ 0x5A);
    test_mask_small(kb);
    for (int rot = 0; rot < 4; rot++) {
        unsigned char rk[4];
        for (int j = 0; j < 4; j++)
            rk[j] = kb[(j + rot) % 4];
        test_mask_medium(key_from_bytes(rk));
    }
    test_mask_block_edges(key_from_bytes(kb));
    test_mask_block_edges(0); /* the zero key must be the identity */
    test_mask_large(key_from_bytes(kb));
    test_mask_large(0xFFFFFFFFu);
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8 reference                                                                             */

/* Could some completion of a sequence of total length `need`, whose code point is known to lie
 * in [lo, hi], be a valid shortest-form scalar value? */
static int ref_viable(uint32_t lo, uint32_t hi, int need)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t max_cp[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    if (lo < min_cp[need])
        lo = min_cp[need];
    if (hi > max_cp[need])
        hi = max_cp[need];
    if (lo > hi)
        return 0; /* only overlong or too-large code points */
    if (lo >= 0xD800 && hi <= 0xDFFF)
        return 0; /* only surrogates */
    return 1;
}

/* Returns the index of the first byte at which s[0..n) stops being a prefix of valid UTF-8, or
 * -1 if it is one. If boundary is not NULL, boundary[k] (0 <= k <= n, up to the bad byte) says
 * whether s[0..k) ends on a character boundary. */
static long ref_utf8(const unsigned char *s, size_t n, unsigned char *boundary)
{
    size_t i = 0;
    if (boundary)
        boundary[0] = 1;
    while (i < n) {
        const unsigned b = s[i];
        int need;
        uint32_t cp;
        if (b < 0x80) {
            need = 1;
            cp = b;
        } else if ((b & 0xE0) == 0xC0) {
            need = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            need = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            need = 4;
            cp = b & 0x07;
        } else {
            return (long)i; /* continuation byte or 5+-byte lead: never valid here */
        }
        for (int j = 0; j < need; j++) {
            if (j > 0) {
                if (i + (size_t)j >= n)
                    return -1; /* truncated but still viable: valid so far */
                const unsigned c = s[i + (size_t)j];
                if ((c & 0xC0) != 0x80)
                    return (long)(i + (size_t)j);
                cp = (cp << 6) | (c & 0x3F);
            }
            const int unknown_bits = 6 * (need - 1 - j);
            const uint32_t lo = cp << unknown_bits, hi = lo | ((1u << unknown_bits) - 1);
            if (!ref_viable(lo, hi, need))
                return (long)(i + (size_t)j);
            if (boundary)
                boundary[i + (size_t)j + 1] = (unsigned char)(j == need - 1);
        }
        i += (size_t)need;
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8 tests                                                                                 */

/* What the validator must return after consuming s[0..k), given the reference's verdict. */
enum expect { EXP_ACCEPT, EXP_REJECT, EXP_MIDDLE };

static enum expect expected_after(size_t k, long bad, const unsigned char *boundary)
{
    if (bad >= 0 && (size_t)bad < k)
        return EXP_REJECT;
    return boundary[k] ? EXP_ACCEPT : EXP_MIDDLE;
}

static int state_matches(uint32_t st, enum expect e)
{
    switch (e) {
    case EXP_ACCEPT:
        return st == FEMTOWS_UTF8_ACCEPT;
    case EXP_REJECT:
        return st == FEMTOWS_UTF8_REJECT;
    default:
        return st != FEMTOWS_UTF8_ACCEPT && st != FEMTOWS_UTF8_REJECT;
    }
}

static void print_bytes(const unsigned char *s, size_t n)
{
    if (g_failures > MAX_REPORTED)
        return;
    printf("    input (%lu bytes):", (unsigned long)n);
    for (size_t i = 0; i < n && i < 96; i++)
        printf(" %02x", s[i]);
    printf(n > 96 ? " ...\n" : "\n");
}

static unsigned char *g_boundary; /* scratch for ref_utf8, big enough for any test input */

/* Check s[0..n) fed whole, split into two at every position, and one byte at a time. s should
 * end at the end of a heap block so that sanitizers catch over-reads. */
static void check_utf8_all_splits(const unsigned char *s, size_t n)
{
    const unsigned long fails_before = g_failures;
    const long bad = ref_utf8(s, n, g_boundary);
    const enum expect final = expected_after(n, bad, g_boundary);
    const uint32_t whole = femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, s, n);
    CHECK(state_matches(whole, final), "utf8 whole", "n=%ld bad=%ld got=%ld expect=%ld", n, bad,
          whole, final);

    for (size_t t = 0; t <= n; t++) {
        const uint32_t a = femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, s, t);
        CHECK(state_matches(a, expected_after(t, bad, g_boundary)), "utf8 first chunk",
              "n=%ld split=%ld bad=%ld got=%ld", n, t, bad, a);
        const uint32_t b = femtows_utf8_validate(a, s + t, n - t);
        /* Same automaton, same input: not just the same verdict but the same state. */
        CHECK(b == whole, "utf8 two chunks", "n=%ld split=%ld got=%ld whole=%ld", n, t, b, whole);
    }

    uint32_t st = FEMTOWS_UTF8_ACCEPT;
    for (size_t k = 0; k < n; k++) {
        st = femtows_utf8_validate(st, s + k, 1);
        CHECK(state_matches(st, expected_after(k + 1, bad, g_boundary)), "utf8 byte by byte",
              "n=%ld after=%ld bad=%ld got=%ld", n, k + 1, bad, st);
    }
    if (g_failures != fails_before)
        print_bytes(s, n);
}

/* Random chunking of a longer input: every chunk's result must match the reference. */
static void check_utf8_random_chunks(const unsigned char *s, size_t n, int rounds)
{
    const unsigned long fails_before = g_failures;
    const long bad = ref_utf8(s, n, g_boundary);
    for (int r = 0; r < rounds; r++) {
        uint32_t st = FEMTOWS_UTF8_ACCEPT;
        size_t k = 0;
        while (k < n) {
            size_t c = 1 + rnd_below(r & 1 ? 300 : 40);
            if (c > n - k)
                c = n - k;
            st = femtows_utf8_validate(st, s + k, c);
            k += c;
            CHECK(state_matches(st, expected_after(k, bad, g_boundary)), "utf8 random chunks",
                  "n=%ld at=%ld bad=%ld got=%ld", n, k, bad, st);
        }
    }
    if (g_failures != fails_before)
        print_bytes(s, n);
}

/* Copy into a heap block of exactly n bytes and run the split checks on it. */
static void check_utf8_exact_block(const unsigned char *s, size_t n)
{
    unsigned char *copy = xmalloc(n);
    if (n)
        memcpy(copy, s, n);
    check_utf8_all_splits(copy, n);
    free(copy);
}

struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len;
    long bad;     /* index of the first byte that makes it invalid, -1 if none */
    int complete; /* if bad < 0: ends on a character boundary */
};

#define VALID(name, s) {name, s, sizeof(s) - 1, -1, 1}
#define PARTIAL(name, s) {name, s, sizeof(s) - 1, -1, 0}
#define BAD_AT(name, s, i) {name, s, sizeof(s) - 1, i, 0}
#define KOSME "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" /* 11 bytes, Autobahn's favourite */

static const struct utf8_case utf8_cases[] = {
    VALID("empty", ""),
    VALID("ascii", "Hello, world"),
    VALID("nul byte", "a\0b"),
    VALID("Autobahn 6.2.x",
          "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"),
    VALID("kosme", KOSME),
    BAD_AT("6.3.1 kosme + surrogate", KOSME "\xed\xa0\x80" "edited", 12),
    BAD_AT("6.4.x kosme + U+110000", KOSME "\xf4\x90\x80\x80" "edited", 12),
    BAD_AT("6.4.x kosme + U+110000 truncated", KOSME "\xf4\x90", 12),
    /* first and last code point of each length */
    VALID("U+0000", "\x00"),
    VALID("U+007F", "\x7f"),
    VALID("U+0080", "\xc2\x80"),
    VALID("U+07FF", "\xdf\xbf"),
    VALID("U+0800", "\xe0\xa0\x80"),
    VALID("U+FFFF", "\xef\xbf\xbf"),
    VALID("U+10000", "\xf0\x90\x80\x80"),
    VALID("U+10FFFF", "\xf4\x8f\xbf\xbf"),
    /* other boundaries */
    VALID("U+D7FF", "\xed\x9f\xbf"),
    VALID("U+E000", "\xee\x80\x80"),
    VALID("U+FFFD", "\xef\xbf\xbd"),
    VALID("U+FFFE (noncharacter, valid UTF-8)", "\xef\xbf\xbe"),
    VALID("U+1000 (E1 lead)", "\xe1\x80\x80"),
    VALID("U+CFFF (EC lead)", "\xec\xbf\xbf"),
    VALID("U+3FFFF (F0 max)", "\xf0\xbf\xbf\xbf"),
    VALID("U+40000 (F1 min)", "\xf1\x80\x80\x80"),
    VALID("U+FFFFF (F3 max)", "\xf3\xbf\xbf\xbf"),
    VALID("U+100000 (F4 min)", "\xf4\x80\x80\x80"),
    BAD_AT("U+110000", "\xf4\x90\x80\x80", 1),
    BAD_AT("U+13FFFF", "\xf4\xbf\xbf\xbf", 1),
    BAD_AT("F5 lead", "\xf5\x80\x80\x80", 0),
    BAD_AT("F7 lead (U+1FFFFF)", "\xf7\xbf\xbf\xbf", 0),
    BAD_AT("5-byte", "\xf8\x88\x80\x80\x80", 0),
    BAD_AT("6-byte", "\xfc\x84\x80\x80\x80\x80", 0),
    BAD_AT("FE", "\xfe", 0),
    BAD_AT("FF", "\xff", 0),
    BAD_AT("FE FE FF FF", "\xfe\xfe\xff\xff", 0),
    /* stray continuation bytes */
    BAD_AT("80", "\x80", 0),
    BAD_AT("BF", "\xbf", 0),
    BAD_AT("80 BF", "\x80\xbf", 0),
    BAD_AT("ascii then 80", "abc\x80", 3),
    BAD_AT("extra continuation", "\xc2\x80\x80", 2),
    BAD_AT("extra continuation after 3-byte", "\xe2\x82\xac\xbf", 3),
    /* leads followed by a non-continuation */
    BAD_AT("C2 space", "\xc2 ", 1),
    BAD_AT("E1 space", "\xe1 ", 1),
    BAD_AT("E1 80 space", "\xe1\x80 ", 2),
    BAD_AT("F1 80 80 space", "\xf1\x80\x80 ", 3),
    BAD_AT("E0 A0 then ascii", "\xe0\xa0" "a", 2),
    BAD_AT("lead then lead", "\xc2\xc2\x80", 1),
    /* truncated (valid so far) */
    PARTIAL("C2", "\xc2"),
    PARTIAL("DF", "\xdf"),
    PARTIAL("E0", "\xe0"),
    PARTIAL("E0 A0", "\xe0\xa0"),
    PARTIAL("ED", "\xed"),
    PARTIAL("ED 9F", "\xed\x9f"),
    PARTIAL("EF BF", "\xef\xbf"),
    PARTIAL("F0", "\xf0"),
    PARTIAL("F0 90", "\xf0\x90"),
    PARTIAL("F0 90 80", "\xf0\x90\x80"),
    PARTIAL("F4", "\xf4"),
    PARTIAL("F4 8F", "\xf4\x8f"),
    PARTIAL("F4 8F BF", "\xf4\x8f\xbf"),
    PARTIAL("kosme + E2 82", KOSME "\xe2\x82"),
    /* overlong forms */
    BAD_AT("C0 80 (overlong NUL)", "\xc0\x80", 0),
    BAD_AT("E0 80 80 (overlong NUL)", "\xe0\x80\x80", 1),
    BAD_AT("F0 80 80 80 (overlong NUL)", "\xf0\x80\x80\x80", 1),
    BAD_AT("C0 AF (overlong /)", "\xc0\xaf", 0),
    BAD_AT("E0 80 AF (overlong /)", "\xe0\x80\xaf", 1),
    BAD_AT("F0 80 80 AF (overlong /)", "\xf0\x80\x80\xaf", 1),
    BAD_AT("C1 BF (max overlong 2)", "\xc1\xbf", 0),
    BAD_AT("E0 9F BF (max overlong 3)", "\xe0\x9f\xbf", 1),
    BAD_AT("F0 8F BF BF (max overlong 4)", "\xf0\x8f\xbf\xbf", 1),
    BAD_AT("C0 alone", "\xc0", 0),
    BAD_AT("C1 alone", "\xc1", 0),
    /* surrogates */
    BAD_AT("U+D800", "\xed\xa0\x80", 1),
    BAD_AT("U+DB7F", "\xed\xad\xbf", 1),
    BAD_AT("U+DB80", "\xed\xae\x80", 1),
    BAD_AT("U+DBFF", "\xed\xaf\xbf", 1),
    BAD_AT("U+DC00", "\xed\xb0\x80", 1),
    BAD_AT("U+DF80", "\xed\xbe\x80", 1),
    BAD_AT("U+DFFF", "\xed\xbf\xbf", 1),
    BAD_AT("ED A0 (truncated surrogate)", "\xed\xa0", 1),
    BAD_AT("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", 1),
    BAD_AT("surrogate pair (CESU-8 U+10000)", "\xed\xa0\x80\xed\xb0\x80", 1),
    /* Autobahn 6.14-ish concatenations */
    BAD_AT("concatenated truncated", "\xc0\xe0\x80\xf0\x80\x80\xf8\x88\x80\x80", 0),
    BAD_AT("valid then truncated then ascii", "\xc2\xb5\xe2\x82" "x", 4),
};

/* Cases that need long ASCII runs, so the SIMD skip hands over to the automaton mid-buffer. */
static void test_utf8_long_cases(void)
{
    static const size_t runs[] = {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
                                  130, 200, 255, 256, 257, 1000};
    static const struct {
        const char *tail;
        size_t len;
    } tails[] = {
        {"\xff", 1},          {"\xed\xa0\x80", 3}, {"\xe2\x82", 2},       {"\xe2\x82\xac", 3},
        {"\xf4\x90", 2},      {"\x80", 1},         {"\xc2\xb5xyz", 5},    {"\xf0\x9f\x98\x80", 4},
        {"\xc0\x80" "abc", 5}, {"", 0},             {KOSME KOSME KOSME, 33},
    };
    unsigned char buf[1100 + 64];
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++)
        for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++)
            for (size_t after = 0; after < 70; after += 23) {
                size_t n = 0;
                for (size_t i = 0; i < runs[r]; i++)
                    buf[n++] = (unsigned char)(' ' + i % 90);
                memcpy(buf + n, tails[t].tail, tails[t].len);
                n += tails[t].len;
                for (size_t i = 0; i < after; i++)
                    buf[n++] = 'z';
                check_utf8_exact_block(buf, n);
            }
}

static void test_utf8_cases(void)
{
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        const struct utf8_case *c = &utf8_cases[i];
        const unsigned char *s = (const unsigned char *)c->bytes;
        /* The reference must agree with the hand-written expectation... */
        const long bad = ref_utf8(s, c->len, g_boundary);
        CHECK(bad == c->bad && (bad >= 0 || g_boundary[c->len] == c->complete),
              "utf8 reference vs hand-written case", "case #%ld: ref bad=%ld, expected %ld", i,
              bad, c->bad, 0);
        if (bad != c->bad)
            printf("    (%s)\n", c->name);
        /* ...and the validator must agree with the reference, however the input is split. */
        const unsigned long before = g_failures;
        check_utf8_exact_block(s, c->len);
        if (g_failures != before && g_failures <= MAX_REPORTED)
            printf("    (case: %s)\n", c->name);
    }
}

/* States the validator never returns must be rejected, not used as table offsets. */
static void test_utf8_bogus_states(void)
{
    static const uint32_t bogus[] = {1, 2, 3, 5, 6, 7, 11, 13, 47, 49, 54, 60, 63, 64, 1000,
                                     0x7FFFFFFFu, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
        CHECK(femtows_utf8_validate(bogus[i], (const unsigned char *)"a", 1) == FEMTOWS_UTF8_REJECT,
              "utf8 bogus state", "state=%ld", bogus[i], 0, 0, 0);
        CHECK(femtows_utf8_validate(bogus[i], NULL, 0) == FEMTOWS_UTF8_REJECT,
              "utf8 bogus state, empty", "state=%ld", bogus[i], 0, 0, 0);
    }
    CHECK(femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, NULL, 0) == FEMTOWS_UTF8_ACCEPT,
          "utf8 empty", "", 0, 0, 0, 0);
    /* a mid-character state survives an empty chunk */
    uint32_t mid = femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, (const unsigned char *)"\xe2", 1);
    CHECK(femtows_utf8_validate(mid, NULL, 0) == mid, "utf8 empty chunk mid-character",
          "state=%ld", mid, 0, 0, 0);
}

/* Every 1-, 2- and 3-byte input, and 4-byte inputs over the interesting byte values. */
static void test_utf8_exhaustive(void)
{
    static const unsigned char interesting[] = {
        0x00, 0x41, 0x7f, 0x80, 0x81, 0x8e, 0x8f, 0x90, 0x91, 0x9e, 0x9f, 0xa0, 0xa1, 0xae,
        0xaf, 0xbe, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef,
        0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xfe, 0xff};
    const size_t ni = sizeof interesting;
    unsigned char s[4];
    unsigned long fails_before = g_failures;

    for (unsigned n = 1; n <= 3; n++) {
        const unsigned long count = 1ul << (8 * n);
        for (unsigned long v = 0; v < count; v++) {
            for (unsigned j = 0; j < n; j++)
                s[j] = (unsigned char)(v >> (8 * j));
            const long bad = ref_utf8(s, n, g_boundary);
            const uint32_t st = femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, s, n);
            CHECK(state_matches(st, expected_after(n, bad, g_boundary)), "utf8 exhaustive",
                  "n=%ld bytes=%06lx bad=%ld got=%ld", n, v, bad, st);
            if (g_failures - fails_before > MAX_REPORTED)
                return;
        }
    }
    for (unsigned a = 0xf0; a <= 0xf7; a++)
        for (size_t b = 0; b < ni; b++)
            for (size_t c = 0; c < ni; c++)
                for (size_t d = 0; d < ni; d++) {
                    s[0] = (unsigned char)a;
                    s[1] = interesting[b];
                    s[2] = interesting[c];
                    s[3] = interesting[d];
                    const long bad = ref_utf8(s, 4, g_boundary);
                    const uint32_t st = femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, s, 4);
                    CHECK(state_matches(st, expected_after(4, bad, g_boundary)),
                          "utf8 exhaustive 4-byte", "%02lx %02lx %02lx %02lx", s[0], s[1], s[2],
                          s[3]);
                }
}


static uint32_t random_scalar_value(void)
{
    static const uint32_t edges[] = {0x7F, 0x80, 0x7FF, 0x800, 0xFFF, 0x1000, 0xCFFF, 0xD000,
                                     0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x3FFFF, 0x40000,
                                     0xFFFFF, 0x100000, 0x10FFFF};
    switch (rnd_below(5)) {
    case 0:
        return edges[rnd_below(sizeof edges / sizeof edges[0])];
    case 1:
        return 0x80 + rnd_below(0x800 - 0x80);
    case 2: {
        uint32_t cp = 0x800 + rnd_below(0x10000 - 0x800);
        return (cp >= 0xD800 && cp <= 0xDFFF) ? cp + 0x800 : cp;
    }
    default:
        return 0x10000 + rnd_below(0x110000 - 0x10000);
    }
}

/* Random inputs built from UTF-8-ish pieces, so that valid, truncated and subtly invalid
 * sequences are all common. Returns the length (at most cap). */
static size_t random_utf8ish(unsigned char *out, size_t cap, size_t target, int long_ascii)
{
    static const unsigned char edge_bytes[] = {
        0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
        0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
    size_t n = 0;
    const int error_rate = (int)rnd_below(4); /* 0: valid-only inputs are common too */
    while (n < target) {
        unsigned char piece[8];
        size_t len = 0;
        unsigned kind = rnd_below(16);
        if (kind < 5) { /* ASCII run */
            size_t run = rnd_below(long_ascii ? 300 : 24);
            for (size_t i = 0; i < run && n < cap; i++)
                out[n++] = (unsigned char)(rnd_below(2) ? 'a' + rnd_below(26) : rnd_below(128));
            continue;
        } else if (kind < 12 || error_rate == 0) { /* a valid character */
            len = encode_utf8(random_scalar_value(), piece);
        } else if (kind < 13) { /* a truncated valid character */
            len = encode_utf8(random_scalar_value(), piece);
            len = len > 1 ? 1 + rnd_below((unsigned)len - 1) : len;
        } else if (kind < 14 && error_rate > 1) { /* a boundary byte */
            piece[len++] = edge_bytes[rnd_below(sizeof edge_bytes)];
        } else if (kind < 15) { /* a valid character with one byte nudged */
            len = encode_utf8(random_scalar_value(), piece);
            piece[rnd_below((unsigned)len)] += (unsigned char)(rnd_below(2) ? 0x10 : 0xF0);
        } else { /* any byte */
            piece[len++] = (unsigned char)rnd();
        }
        for (size_t i = 0; i < len && n < cap; i++)
            out[n++] = piece[i];
    }
    return n;
}

static void test_utf8_random(unsigned long count)
{
    enum { SHORT_MAX = 64, LONG_MAX = 4096 };
    unsigned char *buf = xmalloc(LONG_MAX);
    for (unsigned long i = 0; i < count && g_failures <= MAX_REPORTED; i++) {
        /* Short: every split point, one byte at a time, in an exact-size heap block. */
        size_t n = random_utf8ish(buf, SHORT_MAX, rnd_below(SHORT_MAX), 0);
        check_utf8_exact_block(buf, n);
        /* Occasionally long, with long ASCII runs for the SIMD skip: random chunkings. */
        if (i % 64 == 0) {
            n = random_utf8ish(buf, LONG_MAX, rnd_below(LONG_MAX), 1);
            unsigned char *copy = xmalloc(n);
            if (n)
                memcpy(copy, buf, n);
            check_utf8_random_chunks(copy, n, 4);
            free(copy);
        }
    }
    free(buf);
}

/* A large valid mixed text: whole, with errors planted at many depths, and misaligned. */
static void test_utf8_large(void)
{
    const size_t n = (1u << 20) + 7;
    unsigned char *buf = xmalloc(n + 64);
    size_t len = 0;
    while (len + 4 <= n) {
        uint32_t cp = rnd_below(4) ? (uint32_t)(' ' + rnd_below(95)) : random_scalar_value();
        len += encode_utf8(cp, buf + len);
    }
    while (len < n)
        buf[len++] = 'x';
    CHECK(ref_utf8(buf, n, NULL) == -1, "utf8 large (generator)", "", 0, 0, 0, 0);
    for (size_t off = 0; off < 40; off += 13) {
        memmove(buf + off, buf, n);
        CHECK(femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, buf + off, n) == FEMTOWS_UTF8_ACCEPT,
              "utf8 large valid", "off=%ld", off, 0, 0, 0);
        memmove(buf, buf + off, n);
    }
    for (int k = 0; k < 50; k++) {
        const size_t at = rnd_below((unsigned)n);
        const unsigned char saved = buf[at];
        buf[at] = 0xFF;
        const long bad = ref_utf8(buf, n, NULL);
        CHECK(bad == (long)at, "utf8 large (reference)", "at=%ld bad=%ld", at, bad, 0, 0);
        /* Fed as two pieces split before the bad byte: the first must not fail, the second
         * must. */
        uint32_t st = femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, buf, at);
        CHECK(st != FEMTOWS_UTF8_REJECT, "utf8 large prefix", "at=%ld state=%ld", at, st, 0,
              0);
        st = femtows_utf8_validate(st, buf + at, n - at);
        CHECK(st == FEMTOWS_UTF8_REJECT, "utf8 large error", "at=%ld state=%ld", at, st, 0,
              0);
        CHECK(femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, buf, n) == FEMTOWS_UTF8_REJECT,
              "utf8 large error (whole)", "at=%ld", at, 0, 0, 0);
        buf[at] = saved;
    }
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x5EED0F1E7705ull;
    g_rng = seed;
    g_boundary = xmalloc(1u << 21);
    printf("femtows C kernels: mask=%s utf8=%s seed=%#llx\n", femtows_mask_impl(),
           femtows_utf8_impl(), (unsigned long long)seed);
    fflush(stdout);

    test_mask();
    test_utf8_cases();
    test_utf8_bogus_states();
    test_utf8_long_cases();
    test_utf8_exhaustive();
    test_utf8_random(200000);
    test_utf8_large();

    free(g_boundary);
    if (g_failures) {
        printf("FAILED: %lu of %lu checks\n", g_failures, g_checks);
        return 1;
    }
    printf("OK: %lu checks\n", g_checks);
    return 0;
}
