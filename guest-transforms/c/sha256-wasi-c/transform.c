/*
 * sha256-wasi-c (docs/TRANSFORMS.md), the built-in written in C against wasi-libc:
 *   SHA-256("kasane/sha256-wasi-c/v1" || ctx || R || u64le(now))
 * where now is CLOCK_REALTIME in whole seconds, read through WASI (the wasi profile's clock
 * reads the session timestamp). Prints one diagnostic line on stdout, which the host captures
 * and never mixes into the output. Needs at least one response.
 *
 * Because the input was validated as a canonical v1 encoding, ctx is its bytes with the
 * responses list cut out and a zero count put in its place, and R is exactly the bytes of the
 * responses list after its count.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kasane_abi_v1.h"
#include "sha256.h"

#define EXPORT(name) __attribute__((export_name(name), visibility("default")))

static const char TAG[] = "kasane/sha256-wasi-c/v1";

EXPORT("kasane_abi_v1") void kasane_abi_v1(void) {}

EXPORT("kasane_alloc") int32_t kasane_alloc(int32_t len) {
    void *p;
    if (len < 0) return 0;
    p = malloc(len > 0 ? (size_t)len : 1);
    return (int32_t)(uintptr_t)p;
}

EXPORT("kasane_derive")
int32_t kasane_derive(int32_t in_ptr, int32_t in_len, int32_t out_ptr, int32_t out_cap) {
    const uint8_t *in = (const uint8_t *)(uintptr_t)in_ptr;
    uint8_t *out = (uint8_t *)(uintptr_t)out_ptr;
    struct kasane_input input;
    struct sha256 h;
    struct timespec ts;
    uint8_t zero_count[4] = {0, 0, 0, 0}, now_le[8];
    uint64_t now;

    if (in_len < 0 || out_cap < 0 || (in_len > 0 && in == NULL) || kasane_decode(in, (size_t)in_len, &input))
        return KASANE_ERR_BAD_INPUT;
    /* Auth needs a response; a message input carries none (the session secret keys it). */
    if (input.n_responses == 0 && in[KASANE_OFF_PURPOSE] == KASANE_PURPOSE_AUTH) return KASANE_ERR_MISSING_INPUT;
    if ((uint32_t)out_cap < SHA256_DIGEST_LEN || out == NULL) return KASANE_ERR_OUTPUT_CAPACITY;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0) return KASANE_ERR_INTERNAL;
    now = (uint64_t)ts.tv_sec;

    sha256_init(&h);
    sha256_update(&h, TAG, sizeof TAG - 1);
    /* ctx: everything before the responses list, an empty list, everything after it. */
    sha256_update(&h, in, input.responses_off);
    sha256_update(&h, zero_count, 4);
    sha256_update(&h, in + input.responses_end, input.len - input.responses_end);
    /* R = lp(r_0) || lp(r_1) || ...: the list's bytes after its count. */
    sha256_update(&h, in + input.responses_off + 4, input.responses_end - input.responses_off - 4);
    kasane_write_u64le(now_le, now);
    sha256_update(&h, now_le, 8);
    sha256_final(&h, out);

    printf("sha256-wasi-c: now=%llu responses=%u challenges=%u\n", (unsigned long long)now,
           (unsigned)input.n_responses, (unsigned)input.n_challenges);
    fflush(stdout);
    return (int32_t)SHA256_DIGEST_LEN;
}
