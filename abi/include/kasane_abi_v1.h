/*
 * kasane_abi_v1.h — the Kasane transform ABI, version 1, for transforms written in C.
 *
 * The single source of truth is abi/src/v1.rs (crate kasane-abi); this header restates it
 * for C authors and must be kept in sync with it (same names, offsets, limits and codes).
 *
 * A transform is a core WebAssembly module that is a pure function of its input.
 *
 * Exports a v1 module must have
 *   memory          memory                the guest's linear memory (32-bit, not shared)
 *   kasane_abi_v1   () -> ()              marks the ABI version; never called
 *   kasane_alloc    (len: i32) -> i32     a pointer to len writable bytes, or 0 on failure
 *   kasane_derive   (in_ptr, in_len, out_ptr, out_cap: i32) -> i32
 *                                         writes key material at out_ptr, returns its length
 *                                         in 1..=64, or a negative KASANE_ERR_* code
 * A WASI reactor may also export _initialize; the embedder calls it once after instantiation.
 *
 * Call sequence: for every call the embedder takes an instance as it was right after
 * instantiation (and _initialize): a fresh one, or one whose linear memory and mutable
 * globals were put back to that state (a module that could change a table or drop a segment
 * always gets a fresh one). It then calls kasane_alloc(in_len), kasane_alloc(out_cap)
 * (out_cap = the entry's output limit, at most KASANE_MAX_OUTPUT_LEN), copies the encoded
 * DeriveInput to the first pointer and calls kasane_derive. Nothing of one call is visible
 * to the next.
 *
 * Profiles: "pure" modules import nothing (any import is refused at load); "wasi" modules
 * may import only from wasi_snapshot_preview1, served deterministically (clocks read the
 * session timestamp, random_get is seeded from the transcript, stdout/stderr are captured up
 * to 4 KiB for diagnostics, no args, env, preopens or sockets).
 *
 * DeriveInput byte layout (all integers little-endian)
 *   offset  size  field
 *   0       1     format version, always KASANE_INPUT_VERSION (1)
 *   1       1     purpose: 1 = auth, 2 = message
 *   2       1     direction: 0 = client to host, 1 = host to client
 *   3       1     reserved, must be 0
 *   4       8     counter (u64)
 *   12      8     timestamp (u64, unix seconds, the host's clock)
 *   20      8     seq (u64, message sequence number; 0 for auth)
 *   28      32    server_nonce
 *   60      32    client_nonce
 *   92      32    transcript_hash
 *   124     4     number of challenges n (u32, at most KASANE_MAX_LIST_ITEMS)
 *   128     ...   n times: length (u32, at most KASANE_MAX_ITEM_LEN) then that many bytes
 *   ...     4     number of responses m (u32, at most KASANE_MAX_LIST_ITEMS)
 *   ...     ...   m times: length (u32, at most KASANE_MAX_ITEM_LEN) then that many bytes
 *   ...     4     params length (u32, at most KASANE_MAX_PARAMS_LEN)
 *   ...     ...   params bytes; the encoding ends exactly here (no trailing bytes)
 * The whole encoding is at most KASANE_MAX_INPUT_LEN bytes. A decoder must refuse (with
 * KASANE_ERR_BAD_INPUT) every violation of the table: unknown version, purpose or direction,
 * a non-zero reserved byte, a limit exceeded, a truncated field, trailing bytes.
 */
#ifndef KASANE_ABI_V1_H
#define KASANE_ABI_V1_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Export names. */
#define KASANE_EXPORT_MEMORY "memory"
#define KASANE_EXPORT_ABI_MARKER "kasane_abi_v1"
#define KASANE_EXPORT_ALLOC "kasane_alloc"
#define KASANE_EXPORT_DERIVE "kasane_derive"
#define KASANE_EXPORT_WASI_INITIALIZE "_initialize"

/* Format version byte at offset 0 of every v1 encoding. */
#define KASANE_INPUT_VERSION 1u
/* Size of the fixed header that precedes the variable-length fields. */
#define KASANE_HEADER_LEN 124u
/* Most items in challenges and in responses. */
#define KASANE_MAX_LIST_ITEMS 16u
/* Longest single challenge or response. */
#define KASANE_MAX_ITEM_LEN 1024u
/* Longest params. */
#define KASANE_MAX_PARAMS_LEN 4096u
/* Longest whole encoding. */
#define KASANE_MAX_INPUT_LEN (64u * 1024u)
/* Shortest and longest key material a transform may return (out_cap = MAX). */
#define KASANE_MIN_OUTPUT_LEN 1u
#define KASANE_MAX_OUTPUT_LEN 64u

/* Offsets of the fixed header fields. */
#define KASANE_OFF_VERSION 0u
#define KASANE_OFF_PURPOSE 1u
#define KASANE_OFF_DIRECTION 2u
#define KASANE_OFF_RESERVED 3u
#define KASANE_OFF_COUNTER 4u
#define KASANE_OFF_TIMESTAMP 12u
#define KASANE_OFF_SEQ 20u
#define KASANE_OFF_SERVER_NONCE 28u
#define KASANE_OFF_CLIENT_NONCE 60u
#define KASANE_OFF_TRANSCRIPT_HASH 92u
#define KASANE_OFF_CHALLENGES 124u
#define KASANE_NONCE_LEN 32u
#define KASANE_HASH_LEN 32u

/* Purpose byte (offset 1). */
enum kasane_purpose {
    KASANE_PURPOSE_AUTH = 1,
    KASANE_PURPOSE_MESSAGE = 2
};

/* Direction byte (offset 2). */
enum kasane_direction {
    KASANE_DIRECTION_CLIENT_TO_HOST = 0,
    KASANE_DIRECTION_HOST_TO_CLIENT = 1
};

/* Error codes returned by kasane_derive (always negative; GuestError in v1.rs). */
enum kasane_guest_error {
    /* The input bytes did not decode as a v1 DeriveInput. */
    KASANE_ERR_BAD_INPUT = -1,
    /* The module's params are not valid for this transform. */
    KASANE_ERR_BAD_PARAMS = -2,
    /* A challenge or response the transform needs is missing or malformed. */
    KASANE_ERR_MISSING_INPUT = -3,
    /* out_cap is smaller than the key material. */
    KASANE_ERR_OUTPUT_CAPACITY = -4,
    /* The transform does not support this purpose or option. */
    KASANE_ERR_UNSUPPORTED = -5,
    /* Any other failure inside the transform. */
    KASANE_ERR_INTERNAL = -6
};

/* Little-endian readers; p must point to at least 4 (resp. 8) readable bytes. */
static inline uint32_t kasane_read_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t kasane_read_u64le(const uint8_t *p) {
    return (uint64_t)kasane_read_u32le(p) | ((uint64_t)kasane_read_u32le(p + 4) << 32);
}

static inline void kasane_write_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void kasane_write_u64le(uint8_t *p, uint64_t v) {
    kasane_write_u32le(p, (uint32_t)v);
    kasane_write_u32le(p + 4, (uint32_t)(v >> 32));
}

/*
 * Validates a byte list (challenges or responses) starting at in[*pos]: a u32 count then
 * count times (u32 length, bytes). On success stores the count, advances *pos past the list
 * and returns 0; returns KASANE_ERR_BAD_INPUT when the list is truncated or exceeds a limit.
 * Items can then be walked again from the list's start with kasane_read_u32le.
 */
static inline int kasane_check_list(const uint8_t *in, size_t len, size_t *pos, uint32_t *count) {
    uint32_t n, i;
    if (len - *pos < 4) return KASANE_ERR_BAD_INPUT;
    n = kasane_read_u32le(in + *pos);
    *pos += 4;
    if (n > KASANE_MAX_LIST_ITEMS) return KASANE_ERR_BAD_INPUT;
    for (i = 0; i < n; i++) {
        uint32_t item;
        if (len - *pos < 4) return KASANE_ERR_BAD_INPUT;
        item = kasane_read_u32le(in + *pos);
        *pos += 4;
        if (item > KASANE_MAX_ITEM_LEN || len - *pos < item) return KASANE_ERR_BAD_INPUT;
        *pos += item;
    }
    *count = n;
    return 0;
}

/*
 * A validated DeriveInput: offsets into the caller's buffer (no copies).
 * challenges_off/responses_off point at the lists' u32 counts; params_off at the params
 * bytes themselves.
 */
struct kasane_input {
    const uint8_t *bytes;
    size_t len;
    size_t challenges_off, challenges_end;
    size_t responses_off, responses_end;
    size_t params_off;
    uint32_t n_challenges, n_responses, params_len;
};

/* Validates in[0..len) exactly as DeriveInput::decode does; 0 or KASANE_ERR_BAD_INPUT. */
static inline int kasane_decode(const uint8_t *in, size_t len, struct kasane_input *out) {
    size_t pos = KASANE_HEADER_LEN;
    if (len > KASANE_MAX_INPUT_LEN || len < KASANE_HEADER_LEN) return KASANE_ERR_BAD_INPUT;
    if (in[KASANE_OFF_VERSION] != KASANE_INPUT_VERSION) return KASANE_ERR_BAD_INPUT;
    if (in[KASANE_OFF_PURPOSE] != KASANE_PURPOSE_AUTH && in[KASANE_OFF_PURPOSE] != KASANE_PURPOSE_MESSAGE)
        return KASANE_ERR_BAD_INPUT;
    if (in[KASANE_OFF_DIRECTION] > KASANE_DIRECTION_HOST_TO_CLIENT) return KASANE_ERR_BAD_INPUT;
    if (in[KASANE_OFF_RESERVED] != 0) return KASANE_ERR_BAD_INPUT;
    out->bytes = in;
    out->len = len;
    out->challenges_off = pos;
    if (kasane_check_list(in, len, &pos, &out->n_challenges)) return KASANE_ERR_BAD_INPUT;
    out->challenges_end = pos;
    out->responses_off = pos;
    if (kasane_check_list(in, len, &pos, &out->n_responses)) return KASANE_ERR_BAD_INPUT;
    out->responses_end = pos;
    if (len - pos < 4) return KASANE_ERR_BAD_INPUT;
    out->params_len = kasane_read_u32le(in + pos);
    pos += 4;
    if (out->params_len > KASANE_MAX_PARAMS_LEN || len - pos != out->params_len) return KASANE_ERR_BAD_INPUT;
    out->params_off = pos;
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* KASANE_ABI_V1_H */
