/* Shortest-form UTF-8 encoding of a code point, shared by tests/c/test_kernels.c and
 * bench/kernels_bench.c (which builds with -Itests/c). */
#ifndef FEMTOWS_TEST_UTF8_ENCODE_H
#define FEMTOWS_TEST_UTF8_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* Writes the encoding of cp (assumed to be a scalar value) to out; returns its length. */
static size_t encode_utf8(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
