/* The compiled HTTP/2 analyzer without Python: exchanges/s of the C library alone, on a
 * conversation recorded by bench/bench_h2_frames.py's peers (write by write, both directions).
 *
 *   python bench/bench_h2_frames.py --dump /tmp/h2small.bin          # small workload
 *   gcc -O2 -Il7scope/dataplane bench/bench_h2_c.c l7scope/dataplane/h2conn.c \
 *       l7scope/dataplane/h2conn_streams.c l7scope/dataplane/h2frames.c \
 *       l7scope/dataplane/hpack.c -o /tmp/bench_h2_c
 *   /tmp/bench_h2_c /tmp/h2small.bin [rounds]
 *
 * File format: per write, one octet (1: from the client) and a 4-octet big-endian length, then
 * the bytes. Each round analyses the whole conversation with a new analyzer; CPU time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "h2conn.h"

static int count(void *ctx, const h2c_event *ev) {
    if (ev->kind == H2C_EV_EXCHANGE && ev->request && ev->response)
        ++*(long *)ctx;
    return 0;
}

static uint8_t *load(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf && fread(buf, 1, *len, f) != *len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static long analyse(const uint8_t *buf, size_t len) {
    h2c_limits lim = {65536, 256, 4096, 128, 1024 * 1024};
    h2c_conn *c = h2c_new(&lim, 1);
    long exchanges = 0;
    int64_t ts = 1;
    for (size_t pos = 0; c && pos + 5 <= len;) {
        uint32_t n = (uint32_t)buf[pos + 1] << 24 | (uint32_t)buf[pos + 2] << 16 |
                     (uint32_t)buf[pos + 3] << 8 | buf[pos + 4];
        if (n > len - pos - 5)
            break;
        h2c_feed(c, buf[pos], buf + pos + 5, n, ts++, count, &exchanges);
        pos += 5 + n;
    }
    if (c)
        h2c_eof(c, ts, count, &exchanges);
    h2c_free(c);
    return exchanges;
}

int main(int argc, char **argv) {
    size_t len;
    uint8_t *buf = argc > 1 ? load(argv[1], &len) : NULL;
    long rounds = argc > 2 ? atol(argv[2]) : 2000, exchanges = 0;
    if (!buf) {
        fprintf(stderr, "usage: %s CONVERSATION [rounds]\n", argv[0]);
        return 2;
    }
    clock_t start = clock();
    for (long r = 0; r < rounds; r++)
        exchanges += analyse(buf, len);
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    printf("%ld exchanges in %.3f CPU s: %.0f exchanges/s, %.3f us per exchange\n", exchanges,
           seconds, exchanges / seconds, seconds / exchanges * 1e6);
    free(buf);
    return 0;
}
