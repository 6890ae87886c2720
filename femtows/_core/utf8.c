/* Incremental UTF-8 validator: a "shift DFA" plus a SIMD ASCII fast path. See utf8.h.
 *
 * The automaton
 * -------------
 * Nine states, each named by what it still expects:
 *
 *   ACC  at a character boundary              REJ  invalid (absorbing)
 *   C1   1 more continuation (80..BF)         C2   2 more continuations
 *   C3   3 more continuations
 *   E0   after E0: next must be A0..BF (no overlong 3-byte forms), then 1 more
 *   ED   after ED: next must be 80..9F (no surrogates D800..DFFF), then 1 more
 *   F0   after F0: next must be 90..BF (no overlong 4-byte forms), then 2 more
 *   F4   after F4: next must be 80..8F (nothing above U+10FFFF), then 2 more
 *
 * Every restriction of RFC 3629 is enforced on the earliest byte that can violate it, which is
 * what makes the validator fail fast: once a prefix cannot be completed to valid UTF-8 the
 * automaton is already in REJ.
 *
 * Encoding ("shift DFA")
 * ----------------------
 * Each state is a bit offset (a multiple of 6) into a 64-bit word. For every input byte b,
 * dfa[b] holds, in the 6-bit field at offset s, the offset of the state reached from s on b.
 * One step is therefore
 *
 *     s = dfa[b] >> (s & 63);
 *
 * where the low 6 bits of the result are the next state (the bits above are junk, masked on
 * the next step). The table load depends only on the input, not on the state, so the loop-
 * carried dependency is a single shift -- about one cycle per byte, versus a dependent load
 * (4-5 cycles) for the usual state*classes+class table. x86's shift already masks its count
 * by 63, so the "& 63" costs nothing there.
 *
 * Offsets double as the opaque "in the middle of a character" values returned to callers.
 * ACC sits at offset 0 so it is FEMTOWS_UTF8_ACCEPT; REJ sits at offset 6 and is translated
 * to/from FEMTOWS_UTF8_REJECT (1) at the API boundary.
 *
 * ASCII fast path
 * ---------------
 * Text messages are mostly ASCII. The input is walked in 16-byte blocks; at a character
 * boundary an all-ASCII block is skipped, and then so are the following all-ASCII bytes in
 * strides of 128/32/16 (AVX2), 64/16 (SSE2) or 32/8 (portable 64-bit words). Every other block
 * runs through the automaton, fully unrolled.
 */
#include "utf8.h"

#include <string.h>

#include "simd_common.h"

/* State offsets. Six bits per field; the largest offset plus its field must fit in 64 bits. */
#define ST_ACC 0
#define ST_REJ 6
#define ST_C1 12
#define ST_C2 18
#define ST_E0 24
#define ST_ED 30
#define ST_C3 36
#define ST_F0 42
#define ST_F4 48
#define ST_LAST ST_F4

/* A table row: the successor of every state for one byte class. REJ -> REJ in every row. */
#define T(from, to) ((uint64_t)(to) << (from))
#define ROW(acc, c1, c2, e0, ed, c3, f0, f4)                                                   \
    (T(ST_ACC, acc) | T(ST_REJ, ST_REJ) | T(ST_C1, c1) | T(ST_C2, c2) | T(ST_E0, e0) |          \
     T(ST_ED, ed) | T(ST_C3, c3) | T(ST_F0, f0) | T(ST_F4, f4))

#define R ST_REJ
/*                           from: ACC    C1      C2     E0     ED     C3     F0     F4  */
#define ROW_ASCII          ROW(ST_ACC, R,     R,     R,     R,     R,     R,     R)
#define ROW_CONT_80_8F     ROW(R,      ST_ACC, ST_C1, R,     ST_C1, ST_C2, R,     ST_C2)
#define ROW_CONT_90_9F     ROW(R,      ST_ACC, ST_C1, R,     ST_C1, ST_C2, ST_C2, R)
#define ROW_CONT_A0_BF     ROW(R,      ST_ACC, ST_C1, ST_C1, R,     ST_C2, ST_C2, R)
#define ROW_INVALID        ROW(R,      R,     R,     R,     R,     R,     R,     R)
#define ROW_LEAD2          ROW(ST_C1,  R,     R,     R,     R,     R,     R,     R)
#define ROW_LEAD_E0        ROW(ST_E0,  R,     R,     R,     R,     R,     R,     R)
#define ROW_LEAD3          ROW(ST_C2,  R,     R,     R,     R,     R,     R,     R)
#define ROW_LEAD_ED        ROW(ST_ED,  R,     R,     R,     R,     R,     R,     R)
#define ROW_LEAD_F0        ROW(ST_F0,  R,     R,     R,     R,     R,     R,     R)
#define ROW_LEAD4          ROW(ST_C3,  R,     R,     R,     R,     R,     R,     R)
#define ROW_LEAD_F4        ROW(ST_F4,  R,     R,     R,     R,     R,     R,     R)

/* Byte -> row, as a constant expression so the 256-entry table is built by the compiler. */
#define ROW_OF(b)                                                                               \
    ((b) < 0x80   ? ROW_ASCII                                                                   \
     : (b) < 0x90 ? ROW_CONT_80_8F                                                              \
     : (b) < 0xA0 ? ROW_CONT_90_9F                                                              \
     : (b) < 0xC0 ? ROW_CONT_A0_BF                                                              \
     : (b) < 0xC2 ? ROW_INVALID  /* C0, C1: would only encode overlong ASCII */                \
     : (b) < 0xE0 ? ROW_LEAD2                                                                   \
     : (b) == 0xE0 ? ROW_LEAD_E0                                                                \
     : (b) == 0xED ? ROW_LEAD_ED                                                                \
     : (b) < 0xF0 ? ROW_LEAD3                                                                   \
     : (b) == 0xF0 ? ROW_LEAD_F0                                                                \
     : (b) < 0xF4 ? ROW_LEAD4                                                                   \
     : (b) == 0xF4 ? ROW_LEAD_F4                                                                \
                   : ROW_INVALID) /* F5..FF: beyond U+10FFFF or not UTF-8 at all */
#define ROWS4(b) ROW_OF(b), ROW_OF((b) + 1), ROW_OF((b) + 2), ROW_OF((b) + 3)
#define ROWS16(b) ROWS4(b), ROWS4((b) + 4), ROWS4((b) + 8), ROWS4((b) + 12)
#define ROWS64(b) ROWS16(b), ROWS16((b) + 16), ROWS16((b) + 32), ROWS16((b) + 48)

static const uint64_t utf8_dfa[256] = {ROWS64(0x00), ROWS64(0x40), ROWS64(0x80), ROWS64(0xC0)};

#undef R

/* One automaton step. */
#define STEP(s, byte) ((s) = utf8_dfa[(byte)] >> ((s) & 63))

/* The automaton over exactly 16 bytes, straight-line: no per-byte loop branch to mispredict,
 * so throughput is bound only by the one-shift dependency chain. */
FW_INLINE uint64_t dfa_16(uint64_t s, const unsigned char *p)
{
    STEP(s, p[0]);
    STEP(s, p[1]);
    STEP(s, p[2]);
    STEP(s, p[3]);
    STEP(s, p[4]);
    STEP(s, p[5]);
    STEP(s, p[6]);
    STEP(s, p[7]);
    STEP(s, p[8]);
    STEP(s, p[9]);
    STEP(s, p[10]);
    STEP(s, p[11]);
    STEP(s, p[12]);
    STEP(s, p[13]);
    STEP(s, p[14]);
    STEP(s, p[15]);
    return s;
}

FW_INLINE uint64_t dfa_run(uint64_t s, const unsigned char *p, const unsigned char *stop)
{
    for (; p != stop; p++)
        STEP(s, *p);
    return s;
}

/* The fast path works on 16-byte blocks. A block is skipped only if it is entirely ASCII and
 * we are at a character boundary; any other block goes through the automaton whole. This
 * deliberately does not hunt for the exact first non-ASCII byte: in text that mixes scripts
 * that position is random, and branching on it costs more (mispredictions) than running the
 * automaton over a few ASCII bytes. The "all ASCII?" test, by contrast, is predictable in
 * both mostly-ASCII and mostly-non-ASCII text.
 *
 * Each flavour provides:
 *   ascii16(p)          nonzero if the 16 bytes at p are all ASCII
 *   skip_ascii(p, end)  advance past whole all-ASCII blocks in big strides; stops at (or a
 *                       little before) the first block that is not, or near the end */

#define HIGH_BITS UINT64_C(0x8080808080808080)

FW_INLINE int ascii16_scalar(const unsigned char *p)
{
    uint64_t a, b;
    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 8);
    return ((a | b) & HIGH_BITS) == 0;
}

FW_INLINE const unsigned char *skip_ascii_scalar(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        memcpy(&c, p + 16, 8);
        memcpy(&d, p + 24, 8);
        if ((a | b | c | d) & HIGH_BITS)
            break;
        p += 32;
    }
    while (end - p >= 8) { /* narrow down to the 8-byte word: fewer ASCII bytes for the DFA */
        uint64_t a;
        memcpy(&a, p, 8);
        if (a & HIGH_BITS)
            break;
        p += 8;
    }
    return p;
}

/* The validation loop, instantiated once per flavour so that each copy is compiled for its own
 * instruction set (a target("avx2") function can inline AVX2 helpers; a generic one cannot).
 * Returns the final state offset. Fail-fast is inherent (REJ is absorbing); leaving the loop
 * early on REJ only saves time. */
#define DEFINE_VALIDATOR(name, attr, ascii16, skip_ascii)                                       \
    attr static uint64_t name(uint64_t s, const unsigned char *p, const unsigned char *end)     \
    {                                                                                           \
        while (end - p >= 16) {                                                                 \
            /* ascii16 first: whether a block *ends* on a character boundary is random in    \
             * non-ASCII text, so branching on the state first would mispredict constantly. */ \
            if (ascii16(p) && (s & 63) == ST_ACC) {                                             \
                p = skip_ascii(p + 16, end);                                                    \
                continue;                                                                       \
            }                                                                                   \
            s = dfa_16(s, p);                                                                   \
            p += 16;                                                                            \
            if ((s & 63) == ST_REJ)                                                             \
                return ST_REJ;                                                                  \
        }                                                                                       \
        return dfa_run(s, p, end) & 63;                                                         \
    }

typedef uint64_t (*utf8_kernel)(uint64_t s, const unsigned char *p, const unsigned char *end);

DEFINE_VALIDATOR(validate_scalar, , ascii16_scalar, skip_ascii_scalar)

#ifdef FEMTOWS_X86

/* movemask gathers each byte's top bit: zero iff all 16 (32) bytes are < 0x80. */
__attribute__((target("sse2"))) FW_INLINE int ascii16_sse2(const unsigned char *p)
{
    return _mm_movemask_epi8(_mm_loadu_si128((const __m128i *)p)) == 0;
}

__attribute__((target("sse2"))) FW_INLINE const unsigned char *
skip_ascii_sse2(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)p);
        __m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(p + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(p + 48));
        __m128i any = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
        if (_mm_movemask_epi8(any))
            break;
        p += 64;
    }
    while (end - p >= 16 && ascii16_sse2(p))
        p += 16;
    return p;
}

DEFINE_VALIDATOR(validate_sse2, __attribute__((target("sse2"))), ascii16_sse2, skip_ascii_sse2)

#ifdef FEMTOWS_X86_AVX2
/* BMI2 rides along with AVX2 (every AVX2 CPU has it, and we check both): it gives SHRX, a
 * one-uop variable shift, which shortens the automaton step on Intel cores where SHR by CL is
 * several uops. */
#define AVX2_TARGET __attribute__((target("avx2,bmi2")))

AVX2_TARGET FW_INLINE const unsigned char *skip_ascii_avx2(const unsigned char *p,
                                                           const unsigned char *end)
{
    while (end - p >= 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)p);
        __m256i b = _mm256_loadu_si256((const __m256i *)(p + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(p + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(p + 96));
        __m256i any = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
        if (_mm256_movemask_epi8(any))
            break;
        p += 128;
    }
    while (end - p >= 32 && _mm256_movemask_epi8(_mm256_loadu_si256((const __m256i *)p)) == 0)
        p += 32;
    if (end - p >= 16 && ascii16_sse2(p))
        p += 16;
    return p;
}

DEFINE_VALIDATOR(validate_avx2, AVX2_TARGET, ascii16_sse2, skip_ascii_avx2)
#endif /* FEMTOWS_X86_AVX2 */

#endif /* FEMTOWS_X86 */

static utf8_kernel select_kernel(void)
{
#ifdef FEMTOWS_X86
    __builtin_cpu_init(); /* see mask.c */
#ifdef FEMTOWS_X86_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2"))
        return validate_avx2;
#endif
    if (__builtin_cpu_supports("sse2"))
        return validate_sse2;
#endif
    return validate_scalar;
}

/* Same trampoline scheme as mask.c: resolved on first use, then one indirect call. */
static uint64_t validate_resolve(uint64_t s, const unsigned char *p, const unsigned char *end);
static utf8_kernel active_kernel = validate_resolve;

static uint64_t validate_resolve(uint64_t s, const unsigned char *p, const unsigned char *end)
{
    utf8_kernel k = select_kernel();
    FW_STORE(&active_kernel, k);
    return k(s, p, end);
}

uint32_t femtows_utf8_validate(uint32_t state, const unsigned char *data, size_t len)
{
    /* Public states are the internal offsets, except REJECT (1 outside, ST_REJ inside). Any
     * other value is not something we returned: reject rather than run from a bogus offset. */
    if (state > ST_LAST || state % 6 != 0)
        return FEMTOWS_UTF8_REJECT;
    uint64_t s = state;
    if (len != 0) /* data may be NULL when len == 0, and NULL + 0 is not valid C */
        s = FW_LOAD(&active_kernel)(s, data, data + len);
    return s == ST_REJ ? FEMTOWS_UTF8_REJECT : (uint32_t)s;
}

const char *femtows_utf8_impl(void)
{
    utf8_kernel k = FW_LOAD(&active_kernel);
    if (k == validate_resolve) {
        k = select_kernel();
        FW_STORE(&active_kernel, k);
    }
#ifdef FEMTOWS_X86
#ifdef FEMTOWS_X86_AVX2
    if (k == validate_avx2)
        return "avx2";
#endif
    if (k == validate_sse2)
        return "sse2";
#endif
    return "scalar";
}
