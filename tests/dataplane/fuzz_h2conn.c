/* libFuzzer harness for the compiled HTTP/2 analyzer (l7scope/dataplane/h2conn.h), with the
 * frame splitter and HPACK decoder it runs over.
 *
 * Build and run (tests/dataplane/test_h2conn_fuzz.py does a bounded run of this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Il7scope/dataplane \
 *     tests/dataplane/fuzz_h2conn.c l7scope/dataplane/h2conn.c \
 *     l7scope/dataplane/h2conn_streams.c l7scope/dataplane/h2frames.c \
 *     l7scope/dataplane/hpack.c -o /tmp/fuzz_h2conn
 *   mkdir -p /tmp/h2ccorpus && /tmp/fuzz_h2conn /tmp/h2ccorpus tests/dataplane/h2conn_corpus
 *   (endless; add -max_total_time=3600 for an hour)
 *
 * Input: byte 0 = bit 0 seen from the start, bits 1-2 the limits, bit 3 an h2c upgrade
 * first; then operations of an op byte and a length byte: op bit 0 = from the client, op bits
 * 1-2 = 3 is a hole of length * 67 + 1 octets, else `length` bytes follow and are fed; eof at
 * the end. The invariants: every call returns H2C_OK; every event is well formed (a message
 * within its bounds: fields and notes inside its arena, at most max_headers fields each, body
 * prefix within body_capture, status 100..999 or none, exchange notes known; error codes in
 * range, details present); open streams within their number and byte bounds after each call;
 * nothing once abandoned but nothing; ASan/UBSan/LSan do the rest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h2conn_internal.h"

static const h2c_limits CHOICES[4] = {{65536, 256, 4096, 128, 1024 * 1024},
                                      {600, 12, 48, 3, 3000},
                                      {120, 3, 0, 1, 600},
                                      {9, 1, 1, 1, 100}};
static h2c_limits lim;

static void require(int ok) {
    if (!ok)
        abort();
}

static void check_fields(const h2c_message *m, const h2c_fields *f) {
    require(f->n <= lim.max_headers || (f == &m->headers && f->n <= 3 + 8)); /* upgrade */
    for (uint32_t i = 0; i < f->n; i++) {
        const h2c_field *x = &f->items[i];
        require((uint64_t)x->name.off + x->name.len <= m->arena.len);
        require((uint64_t)x->value.off + x->value.len <= m->arena.len);
        require(x->name_chars <= x->name.len && x->value_chars <= x->value.len);
    }
}

static void check_message(const h2c_msg_view *v, int is_request) {
    if (!v)
        return;
    const h2c_message *m = v->m;
    require(v->is_request == is_request);
    require(v->status == 0 || (v->status >= 100 && v->status <= 999));
    require(m->body.len <= lim.body_capture || (is_request && m->body.len <= 3));
    require(m->body_len >= m->body.len);
    require(m->nnotes <= H2C_NOTE_SLOTS);
    for (uint32_t i = 0; i < m->nnotes; i++)
        require((uint64_t)m->notes[i].off + m->notes[i].len <= m->arena.len && m->notes[i].len);
    check_fields(m, &m->headers);
    check_fields(m, &m->trailers);
    int32_t idx[4] = {v->method, v->path, v->authority, v->status_raw};
    for (int i = 0; i < 4; i++)
        require(idx[i] >= -1 && idx[i] < (int32_t)m->headers.n);
}

static int check_event(void *ctx, const h2c_event *ev) {
    (void)ctx;
    if (ev->kind == H2C_EV_EXCHANGE) {
        require(ev->request || ev->response);
        require(ev->stream_id >= 1 && ev->nnotes <= 2);
        for (uint32_t i = 0; i < ev->nnotes; i++)
            require(ev->notes[i] && ev->notes[i][0]);
        check_message(ev->request, 1);
        check_message(ev->response, 0);
        return 0;
    }
    require(ev->kind == H2C_EV_ERROR && ev->code < H2C_NERRORS && ev->detail && ev->detail[0]);
    return 0;
}

static void check_bounds(const h2c_conn *c) {
    require(c->nopen <= c->max_streams + 1);
    require(c->stream_bytes <= lim.max_stream_bytes || c->nopen <= 1);
    require(c->closed_n <= c->max_streams * 2);
    require(!c->abandoned || (c->nopen == 0 && !c->dirs[0].in_block && !c->dirs[1].in_block));
    require(h2c_memory(c) >= H2C_CONNECTION_OVERHEAD);
}

static void upgrade(h2c_conn *c) {
    static const uint8_t *names[] = {(const uint8_t *)":method", (const uint8_t *)":path",
                                     (const uint8_t *)"x-\xc3\xbc"};
    static const uint8_t *values[] = {(const uint8_t *)"GET", (const uint8_t *)"/",
                                      (const uint8_t *)"v"};
    static const uint32_t name_lens[] = {7, 5, 4}, value_lens[] = {3, 1, 1};
    static const uint8_t *notes[] = {(const uint8_t *)"a note"};
    static const uint32_t note_lens[] = {6};
    h2c_upgrade r = {names, values, name_lens, value_lens, 3, notes, note_lens, 1,
                     (const uint8_t *)"abc", 3, 3, 80, 1, 2};
    require(h2c_upgraded(c, &r) == H2C_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    lim = CHOICES[(data[0] >> 1) & 3];
    h2c_conn *c = h2c_new(&lim, data[0] & 1);
    require(c != NULL);
    if (data[0] & 8)
        upgrade(c);
    size_t pos = 1;
    int64_t ts = 1;
    while (pos + 2 <= size) {
        uint8_t op = data[pos], len = data[pos + 1];
        pos += 2;
        h2c_result rc;
        if (((op >> 1) & 3) == 3) {
            rc = h2c_skip(c, op & 1, (uint64_t)len * 67 + 1, ts++, check_event, NULL);
        } else {
            size_t n = len < size - pos ? len : size - pos;
            rc = h2c_feed(c, op & 1, data + pos, n, ts++, check_event, NULL);
            pos += n;
        }
        require(rc == H2C_OK);
        check_bounds(c);
    }
    require(h2c_eof(c, ts, check_event, NULL) == H2C_OK);
    require(c->nopen == 0 && c->stream_bytes == 0);
    h2c_free(c);
    return 0;
}
