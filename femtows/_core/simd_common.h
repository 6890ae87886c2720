/* What mask.c and utf8.c share: which SIMD paths this compiler can build, and the helpers for
 * publishing the kernel chosen at run time. */
#ifndef FEMTOWS_SIMD_COMMON_H
#define FEMTOWS_SIMD_COMMON_H

/* GCC >= 5 / clang allow intrinsics inside target() functions without -m flags, so the
 * extension needs no per-file compiler options. FEMTOWS_FORCE_SCALAR (tests) disables SIMD;
 * FEMTOWS_NO_AVX2 (tests) keeps SSE2 only. */
#if !defined(FEMTOWS_FORCE_SCALAR) && (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 5))
#define FEMTOWS_X86 1
#include <immintrin.h>
#if !defined(FEMTOWS_NO_AVX2)
#define FEMTOWS_X86_AVX2 1
#endif
#endif

#if defined(__GNUC__)
#define FW_INLINE static inline __attribute__((always_inline))
/* The selected kernel is published with relaxed atomics: every thread that races on the first
 * call computes the same value, and the pointee is code, so no ordering is needed -- but the
 * accesses must still be atomic to be free of data races under the C11 memory model. */
#define FW_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define FW_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#else
#define FW_INLINE static inline
#define FW_LOAD(p) (*(p))
#define FW_STORE(p, v) (*(p) = (v))
#endif

#endif /* FEMTOWS_SIMD_COMMON_H */
