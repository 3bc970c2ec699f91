/* A small, self-contained SHA-256 (FIPS 180-4). */
#ifndef KASANE_SHA256_H
#define KASANE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32u

struct sha256 {
    uint32_t h[8];
    uint64_t len;        /* bytes absorbed so far */
    uint8_t block[64];
    size_t fill;         /* bytes in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_LEN]);

#endif
