/* WebSocket masking kernels with run-time CPU dispatch. See mask.h for the contract.
 *
 * Design notes
 * - One kernel serves both entry points: kernel(dst, src, len, key). In-place masking is
 *   kernel(p, p, ...); that is safe because every block is fully loaded before it is stored,
 *   blocks never overlap, and the one overlapping store (the aligned-head trick below) is
 *   computed from bytes loaded before anything was written.
 * - The kernels walk the buffer in blocks whose sizes are multiples of 4, so the key phase
 *   only changes once, where the SIMD kernels skip ahead to align their stores.
 * - Unaligned loads/stores are nearly free on AVX2-era CPUs, so short buffers (the common
 *   WebSocket frame) go straight to the main loop. Long buffers first align the destination:
 *   received payloads sit a few header bytes into the read buffer, so they are almost never
 *   aligned, and stores that straddle cache lines cost ~20% at L1/L2 speeds.
 * - Plain (temporal) stores on purpose: the masked data is about to be read (parsing,
 *   UTF-8 validation) or written to a socket, so it should stay in cache.
 * - SIMD kernels are compiled with __attribute__((target(...))) rather than -mavx2, so the
 *   extension needs no special compiler flags and the same binary runs on any x86-64 CPU.
 */
#include "mask.h"

#include <string.h>

#include "simd_common.h"

/* From this length on, the SIMD kernels align their stores (see the design notes). Below it
 * the extra head store is not worth it (measured on Zen 4: neutral at 256 B, +20-30% from
 * 1 KiB on misaligned buffers). */
#define ALIGN_MIN_LEN 512

typedef void (*mask_kernel)(unsigned char *dst, const unsigned char *src, size_t len,
                            uint32_t key);

/* The key repeated twice. Both 32-bit halves are equal, so the in-memory byte pattern is
 * k0 k1 k2 k3 k0 k1 k2 k3 regardless of endianness. */
FW_INLINE uint64_t key_x2(uint32_t key)
{
    return ((uint64_t)key << 32) | key;
}

/* The key for data that starts `phase` bytes into the masked stream: bytes k[phase % 4], ...
 * Done through memory so it is endian-neutral. */
FW_INLINE uint32_t rotate_key(uint32_t key, size_t phase)
{
    unsigned char kb[8];
    uint32_t r;
    memcpy(kb, &key, 4);
    memcpy(kb + 4, &key, 4);
    memcpy(&r, kb + (phase & 3), 4);
    return r;
}

/* Fewer than 16 bytes (also correct for exactly 16), key phase 0. The SIMD kernels' tail. */
FW_INLINE void mask_small(unsigned char *dst, const unsigned char *src, size_t len,
                          uint32_t key)
{
    size_t i = 0;
    if (len >= 8) {
        uint64_t w, k = key_x2(key);
        memcpy(&w, src, 8);
        w ^= k;
        memcpy(dst, &w, 8);
        i = 8;
    }
    if (len - i >= 4) {
        uint32_t w;
        memcpy(&w, src + i, 4);
        w ^= key;
        memcpy(dst + i, &w, 4);
        i += 4;
    }
    /* 0-3 bytes left, still at phase 0. */
    unsigned char kb[4];
    memcpy(kb, &key, 4);
    for (size_t j = 0; i < len; i++, j++)
        dst[i] = src[i] ^ kb[j];
}

/* Portable kernel: 64-bit words through memcpy (no alignment or aliasing assumptions; compilers
 * turn each memcpy into a single unaligned load/store). Unrolled 4x so the loop overhead is
 * amortised over 32 bytes. Compilers may vectorise this further on their own. */
static void mask_scalar(unsigned char *dst, const unsigned char *src, size_t len, uint32_t key)
{
    const uint64_t k = key_x2(key);
    size_t i = 0;
    for (; len - i >= 32; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        memcpy(&c, src + i + 16, 8);
        memcpy(&d, src + i + 24, 8);
        a ^= k;
        b ^= k;
        c ^= k;
        d ^= k;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
        memcpy(dst + i + 16, &c, 8);
        memcpy(dst + i + 24, &d, 8);
    }
    for (; len - i >= 8; i += 8) {
        uint64_t a;
        memcpy(&a, src + i, 8);
        a ^= k;
        memcpy(dst + i, &a, 8);
    }
    mask_small(dst + i, src + i, len - i, key);
}

#ifdef FEMTOWS_X86

/* _mm*_set1_epi32 take an int; converting a uint32_t above INT_MAX is implementation-defined
 * and every compiler that reaches this code (GCC, clang) keeps the bit pattern. Stored lanes
 * then hold the key's native bytes, i.e. the wire order.
 *
 * Aligned head (len >= ALIGN_MIN_LEN): the first vector is masked from the original bytes and
 * kept in a register; the main loop starts at the first aligned destination address, with the
 * key rotated to that phase; the kept vector is stored last. Its store overlaps the loop's
 * first bytes with identical values, and because it happens after everything else, in-place
 * masking never reads a byte that was already masked. */

__attribute__((target("sse2"))) static void mask_sse2(unsigned char *dst,
                                                      const unsigned char *src, size_t len,
                                                      uint32_t key)
{
    __m128i k = _mm_set1_epi32((int)key);
    __m128i head = _mm_setzero_si128();
    size_t i = 0;
    if (len >= ALIGN_MIN_LEN) {
        head = _mm_xor_si128(_mm_loadu_si128((const __m128i *)src), k);
        i = (size_t)(-(uintptr_t)dst) & 15;
        key = rotate_key(key, i);
        k = _mm_set1_epi32((int)key);
    }
    const size_t head_len = i;
    for (; len - i >= 64; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
        _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, k));
        _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, k));
        _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, k));
    }
    for (; len - i >= 16; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
    }
    mask_small(dst + i, src + i, len - i, key);
    if (head_len)
        _mm_storeu_si128((__m128i *)dst, head);
}

#ifdef FEMTOWS_X86_AVX2
__attribute__((target("avx2"))) static void mask_avx2(unsigned char *dst,
                                                      const unsigned char *src, size_t len,
                                                      uint32_t key)
{
    __m256i k = _mm256_set1_epi32((int)key);
    __m256i head = _mm256_setzero_si256();
    size_t i = 0;
    if (len >= ALIGN_MIN_LEN) {
        head = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)src), k);
        i = (size_t)(-(uintptr_t)dst) & 31;
        key = rotate_key(key, i);
        k = _mm256_set1_epi32((int)key);
    }
    const size_t head_len = i;
    /* Two independent 32-byte vectors per iteration keep both load ports busy. */
    for (; len - i >= 64; i += 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, k));
    }
    if (len - i >= 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
        i += 32;
    }
    if (len - i >= 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, _mm256_castsi256_si128(k)));
        i += 16;
    }
    mask_small(dst + i, src + i, len - i, key);
    if (head_len)
        _mm256_storeu_si256((__m256i *)dst, head);
}
#endif /* FEMTOWS_X86_AVX2 */

#endif /* FEMTOWS_X86 */

static mask_kernel select_kernel(void)
{
#ifdef FEMTOWS_X86
    /* Needed only if we run before the runtime's own constructors (e.g. from another
     * constructor); cheap and idempotent otherwise. libgcc/compiler-rt check that the OS
     * saves YMM state (XGETBV) before reporting avx2. */
    __builtin_cpu_init();
#ifdef FEMTOWS_X86_AVX2
    if (__builtin_cpu_supports("avx2"))
        return mask_avx2;
#endif
    if (__builtin_cpu_supports("sse2"))
        return mask_sse2;
#endif
    return mask_scalar;
}

/* The active kernel starts out as a trampoline that resolves it, so after the first call every
 * call is a single indirect call with no "initialised yet?" branch. */
static void mask_resolve(unsigned char *dst, const unsigned char *src, size_t len,
                         uint32_t key);
static mask_kernel active_kernel = mask_resolve;

static void mask_resolve(unsigned char *dst, const unsigned char *src, size_t len, uint32_t key)
{
    mask_kernel k = select_kernel();
    FW_STORE(&active_kernel, k);
    k(dst, src, len, key);
}

void femtows_mask_inplace(unsigned char *data, size_t len, uint32_t key)
{
    FW_LOAD(&active_kernel)(data, data, len, key);
}

void femtows_mask_copy(unsigned char *dst, const unsigned char *src, size_t len, uint32_t key)
{
    FW_LOAD(&active_kernel)(dst, src, len, key);
}

const char *femtows_mask_impl(void)
{
    mask_kernel k = FW_LOAD(&active_kernel);
    if (k == mask_resolve) {
        k = select_kernel();
        FW_STORE(&active_kernel, k);
    }
#ifdef FEMTOWS_X86
#ifdef FEMTOWS_X86_AVX2
    if (k == mask_avx2)
        return "avx2";
#endif
    if (k == mask_sse2)
        return "sse2";
#endif
    return "scalar";
}
