/* libFuzzer harness for the compiled HTTP/1 analyzer (l7scope/dataplane/h1.h).
 *
 * Build and run (tests/dataplane/test_h1_fuzz.py does a bounded run of this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Il7scope/dataplane \
 *     tests/dataplane/fuzz_h1.c l7scope/dataplane/h1.c l7scope/dataplane/h1_reader.c \
 *     l7scope/dataplane/h1_text.c -o /tmp/fuzz_h1
 *   mkdir -p /tmp/h1corpus && /tmp/fuzz_h1 /tmp/h1corpus tests/dataplane/h1_corpus  # endless
 *
 * Input: byte 0 picks the limits; then operations, each one byte (bit 0: from the client;
 * bits 1-2: 3 = a hole, else bytes) and a length byte, followed for bytes by that many bytes.
 * The one invariant: every call returns 0, every event is well formed (spans inside the
 * arena, statuses in range, captured body within both limits) and the memory held stays
 * linear in the bytes fed; ASan/UBSan/LSan do the rest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

static h1_limits limits;
static volatile uint8_t sink_hole; /* every byte of every span is read into it */

static void require(int ok) {
    if (!ok)
        abort();
}

static void touch(const h1_msg *m, h1_span s) {
    require((uint64_t)s.off + s.len <= m->arena_len);
    for (uint32_t i = 0; i < s.len; i++)
        sink_hole ^= m->arena[s.off + i];
}

static void check_fields(const h1_msg *m, const h1_field *f, uint32_t n) {
    require(n <= limits.max_headers);
    for (uint32_t i = 0; i < n; i++) {
        require(f[i].name.len > 0);
        touch(m, f[i].name);
        touch(m, f[i].value);
    }
}

static void check_message(const h1_msg *m, int is_request) {
    require(m->is_request == is_request);
    require(m->body.len <= m->body_len && m->body.len <= limits.body_capture);
    require(m->nnotes <= H1_MAX_NOTES);
    touch(m, m->body);
    if (is_request) {
        require(m->has_method && m->method.len > 0 && m->has_path && m->path.len > 0);
        require(m->status == 0);
        touch(m, m->method);
        touch(m, m->path);
    } else {
        require(m->status >= 100 && m->status <= 599 && !m->has_method);
    }
    require(m->has_version && m->version.len == 8);
    touch(m, m->version);
    if (m->has_authority)
        touch(m, m->authority);
    check_fields(m, m->fields, m->nfields);
    check_fields(m, m->trailers, m->ntrailers);
}

static void check_event(void *ctx, const h1_event *ev) {
    (void)ctx;
    switch (ev->kind) {
    case H1_EV_EXCHANGE:
        require(ev->request || ev->response);
        require(ev->note < H1_XNOTE_COUNT);
        if (ev->request)
            check_message(ev->request, 1);
        if (ev->response)
            check_message(ev->response, 0);
        break;
    case H1_EV_ERROR:
        require(ev->error > 0 && ev->error < H1_ERR_COUNT);
        require(ev->detail_len > 0 && ev->detail_len <= H1_DETAIL_MAX);
        for (size_t i = 0; i < ev->detail_len; i++)
            sink_hole ^= (uint8_t)ev->detail[i];
        break;
    case H1_EV_SWITCHED:
        require(ev->to_len <= 256);
        for (size_t i = 0; i < ev->remainder_len; i++)
            sink_hole ^= ev->remainder[i];
        if (ev->request)
            check_message(ev->request, 1);
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    static const h1_limits choices[4] = {
        {65536, 256, 4096, 128}, {48, 1, 2, 1}, {64, 2, 4, 2}, {300, 8, 0, 4}};
    limits = choices[data[0] & 3];
    h1_analyzer *a = h1_new(&limits, check_event, NULL);
    require(a != NULL);
    size_t pos = 1, fed = 0;
    int64_t ts = 0;
    while (pos + 2 <= size) {
        uint8_t op = data[pos], len = data[pos + 1];
        pos += 2;
        int from_client = op & 1;
        if (((op >> 1) & 3) == 3) {
            require(h1_skip(a, from_client, (uint64_t)len + 1, ++ts) == 0);
            continue;
        }
        size_t n = len < size - pos ? len : size - pos;
        require(h1_feed(a, from_client, data + pos, n, ++ts) == 0);
        pos += n;
        fed += n;
        /* state grows with the bytes fed, never faster (a pending request of 16 bytes holds
         * a few hundred: its message and entry) */
        require(h1_memory(a) <= ((size_t)64 << 10) + 32 * fed);
    }
    require(h1_eof(a, ++ts) == 0);
    require(h1_eof(a, ++ts) == 0);
    h1_free(a);
    return 0;
}
