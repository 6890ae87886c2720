/* WebSocket payload masking (RFC 6455 section 5.3).
 *
 * Output byte i is input byte i XOR key byte (i % 4). Masking and unmasking are the same
 * operation. The key is passed as the four mask bytes exactly as they appear on the wire,
 * loaded into a uint32_t with memcpy (so native endianness): callers never byte-swap, and the
 * kernels only ever store the key back to memory, which reproduces the wire order on any CPU.
 *
 * The data pointer may have any alignment and len may be anything (including 0); the key
 * phase always starts at data[0]. Callers masking a payload in several pieces must rotate the
 * key themselves for pieces that do not start at a multiple of 4 bytes.
 *
 * The fastest kernel the CPU supports (AVX2, SSE2, or portable 64-bit scalar) is chosen once,
 * on the first call; all functions are thread-safe.
 *
 * Build-time knobs (for tests and benchmarks):
 *   FEMTOWS_FORCE_SCALAR  compile only the portable scalar kernel (what non-x86 CPUs get)
 *   FEMTOWS_NO_AVX2       never pick the AVX2 kernel, so SSE2 can be tested on AVX2 machines
 */
#ifndef FEMTOWS_MASK_H
#define FEMTOWS_MASK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Mask len bytes of data in place. */
void femtows_mask_inplace(unsigned char *data, size_t len, uint32_t key);

/* dst[i] = src[i] ^ key byte (i % 4). dst and src must not overlap (dst == src is also
 * tolerated, but use femtows_mask_inplace for that). */
void femtows_mask_copy(unsigned char *dst, const unsigned char *src, size_t len, uint32_t key);

/* The kernel in use: "avx2", "sse2" or "scalar". Never NULL; resolves the dispatch if needed. */
const char *femtows_mask_impl(void);

#ifdef __cplusplus
}
#endif

#endif /* FEMTOWS_MASK_H */
