/* Incremental, fail-fast UTF-8 validation (strict RFC 3629), for WebSocket text messages.
 *
 * Accepted: exactly the shortest-form encodings of U+0000..U+10FFFF minus the surrogates
 * U+D800..U+DFFF. Rejected: overlong forms, surrogates, code points above U+10FFFF, stray
 * continuation bytes, and the bytes C0, C1, F5..FF.
 *
 * Usage: start each message with state = FEMTOWS_UTF8_ACCEPT and feed its bytes in order, in
 * pieces of any size (split anywhere, even inside a character):
 *
 *     uint32_t st = FEMTOWS_UTF8_ACCEPT;
 *     st = femtows_utf8_validate(st, piece1, n1);   // REJECT here => fail the connection now
 *     st = femtows_utf8_validate(st, piece2, n2);
 *     valid_message = (st == FEMTOWS_UTF8_ACCEPT);  // after the final piece
 *
 * Return value:
 *   FEMTOWS_UTF8_ACCEPT  everything so far is valid and ends on a character boundary;
 *   FEMTOWS_UTF8_REJECT  invalid. Fail-fast: returned for the piece containing the first byte
 *                        at which the input can no longer be the prefix of valid UTF-8 (so
 *                        "\xed\xa0" or "\xf4\x90" is rejected without waiting for more bytes).
 *                        Sticky: feeding REJECT back in returns REJECT;
 *   anything else        valid so far but inside a multi-byte character: an opaque value
 *                        (only ever one this function returned) to pass to the next call.
 * Splitting the input differently never changes the final verdict.
 */
#ifndef FEMTOWS_UTF8_H
#define FEMTOWS_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FEMTOWS_UTF8_ACCEPT 0
#define FEMTOWS_UTF8_REJECT 1 /* sticky */

/* Validate len bytes continuing from state. data may be NULL when len == 0. A state value this
 * function never returned is treated as REJECT. */
uint32_t femtows_utf8_validate(uint32_t state, const unsigned char *data, size_t len);

/* The ASCII fast path in use: "avx2", "sse2" or "scalar" (for benchmarks and diagnostics). */
const char *femtows_utf8_impl(void);

#ifdef __cplusplus
}
#endif

#endif /* FEMTOWS_UTF8_H */
