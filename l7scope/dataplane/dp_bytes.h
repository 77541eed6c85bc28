/* dp_bytes.h: the growable byte buffer the HTTP/2 frame splitter (h2frames.c) and the HTTP/2
 * analyzer (h2conn_streams.c) both keep bytes in. No Python.h; bounded by its callers (each
 * checks its own byte limit before appending). */
#ifndef L7SCOPE_DP_BYTES_H
#define L7SCOPE_DP_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} dp_bytes;

/* Append n bytes, doubling the allocation (from 64) as needed; -1 when it cannot grow (the
 * buffer is left as it was). */
static inline int dp_bytes_append(dp_bytes *b, const void *data, size_t n) {
    if (!n)
        return 0;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *grown = realloc(b->buf, cap);
        if (!grown)
            return -1;
        b->buf = grown;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    return 0;
}

#endif
