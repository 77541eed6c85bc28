/* The compiled HTTP/1 analyzer without Python: exchanges/s of the C library alone, on the
 * keep-alive conversation of bench/bench_http1.py (each request and response one feed).
 *
 *   gcc -O2 -Il7scope/dataplane bench/bench_h1_c.c l7scope/dataplane/h1.c \
 *       l7scope/dataplane/h1_reader.c l7scope/dataplane/h1_text.c -o /tmp/bench_h1_c
 *   /tmp/bench_h1_c [exchanges]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "h1.h"

static const char REQUEST[] =
    "GET /api/v1/items/%d?limit=20 HTTP/1.1\r\nHost: backend.internal:8080\r\n"
    "User-Agent: curl/8.5.0\r\nAccept: */*\r\n"
    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Mon, 06 May 2024 10:00:00 GMT\r\n"
    "Content-Type: application/json\r\nContent-Length: 57\r\nConnection: keep-alive\r\n\r\n"
    "{\"id\": 1, \"name\": \"widget\", \"tags\": [\"a\", \"b\"], \"ok\": 1}\n";

static void count(void *ctx, const h1_event *ev) {
    if (ev->kind == H1_EV_EXCHANGE && ev->request && ev->response)
        ++*(long *)ctx;
}

static double run(long n) {
    h1_limits lim = {65536, 256, 4096, 128};
    long seen = 0;
    h1_analyzer *a = h1_new(&lim, count, &seen);
    static char reqs[1000][256];
    size_t lens[1000];
    for (int i = 0; i < 1000; i++)
        lens[i] = (size_t)snprintf(reqs[i], sizeof reqs[i], REQUEST, i);
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (long i = 0; i < n; i++) {
        h1_feed(a, 1, (const uint8_t *)reqs[i % 1000], lens[i % 1000], i * 2);
        h1_feed(a, 0, (const uint8_t *)RESPONSE, sizeof RESPONSE - 1, i * 2 + 1);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    h1_free(a);
    if (seen != n)
        abort();
    return (double)n / ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    double best = 0;
    for (int i = 0; i < 3; i++) {
        double r = run(n);
        best = r > best ? r : best;
    }
    printf("%ld exchanges: %.0f exchanges/s (%.2f us per exchange), C library alone, per CPU second\n",
           n, best, 1e6 / best);
    return 0;
}
