/* Streams, messages and exchanges of the HTTP/2 analyzer (h2conn.h), sans-IO C.
 *
 * Theory of operation
 * -------------------
 * Each stream id that a HEADERS or DATA frame opens gets an h2c_stream holding its two
 * messages (request: the client's direction, response: the server's). A message collects its
 * header list and trailers (field octets in the message's own arena, with the length of their
 * text: UTF-8 when the octets are valid UTF-8, else latin-1, as the face decodes them), its
 * notes (each text once, at most H2C_MAX_NOTES), a prefix of its body (limits.body_capture)
 * and its sizes and times. The exchange is emitted when the response ends (END_STREAM), when
 * the stream is flushed (RST_STREAM, GOAWAY, a bound, eof) or the analysis is abandoned; the
 * stream is then freed and its id remembered as closed, so that its late frames
 * (WINDOW_UPDATE, a trailing RST_STREAM) open nothing.
 *
 * Bounds (DESIGN practice 6 and 13): at most max_streams = limits.max_pending * 8 open
 * streams (the oldest is flushed, dropped_streams counted); at most max_stream_bytes held by
 * open streams, charged as STREAM_OVERHEAD each plus the header list sizes of RFC 9113 6.5.2
 * ("the length of the name and value ... plus an overhead of 32 octets for each field line",
 * counted in characters of the text) plus the captured body prefix (the oldest are flushed
 * until under it, streams_shed_memory counted); a header list bounded by limits.max_headers
 * fields and limits.max_header_bytes of list size (header_lists_truncated); closed ids
 * remembered: the last max_streams * 2, in a ring and a set (a set entry leaves with the ring
 * slot that put it there, as in a bounded deque beside a set).
 *
 * Open streams are kept oldest first in a linked list (what is shed first) and found by id in
 * an open-addressing hash table; the closed ids likewise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2conn_internal.h"

/* --- small containers --------------------------------------------------------------- */

void h2c_bytes_free(h2c_bytes *b) {
    free(b->buf);
    memset(b, 0, sizeof *b);
}

static uint32_t slot_of(uint32_t key, uint32_t mask) { return (key * 2654435761u) & mask; }

void *h2c_idmap_get(const h2c_idmap *m, uint32_t key) {
    if (!m->cap)
        return NULL;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (!m->vals[i])
            return NULL;
        if (m->keys[i] == key)
            return m->vals[i];
    }
}

static int idmap_grow(h2c_idmap *m) {
    uint32_t cap = m->cap ? m->cap * 2 : 16;
    uint32_t *keys = calloc(cap, sizeof *keys);
    void **vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->vals[i])
            continue;
        uint32_t j = slot_of(m->keys[i], cap - 1);
        while (vals[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

/* The key must not be present. */
int h2c_idmap_put(h2c_idmap *m, uint32_t key, void *val) {
    if ((m->n + 1) * 2 > m->cap && idmap_grow(m))
        return -1;
    uint32_t mask = m->cap - 1, i = slot_of(key, mask);
    while (m->vals[i])
        i = (i + 1) & mask;
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return 0;
}

void h2c_idmap_del(h2c_idmap *m, uint32_t key) {
    if (!m->cap)
        return;
    uint32_t mask = m->cap - 1, i = slot_of(key, mask);
    while (m->vals[i] && m->keys[i] != key)
        i = (i + 1) & mask;
    if (!m->vals[i])
        return;
    for (uint32_t j = (i + 1) & mask; m->vals[j]; j = (j + 1) & mask) {
        uint32_t home = slot_of(m->keys[j], mask);
        /* the entry at j may move to the hole at i unless its home lies in (i, j] */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->vals[i] = NULL;
    m->n--;
}

void h2c_idmap_free(h2c_idmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* --- text --------------------------------------------------------------------------- */

/* Well-formed UTF-8 (Unicode Table 3-7, what Python's strict decoder accepts): *chars is the
 * number of code points. Otherwise 0 and *chars = n (the text is latin-1). */
int h2c_utf8_chars(const uint8_t *s, size_t n, uint32_t *chars) {
    uint32_t count = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i], lo = 0x80, hi = 0xBF;
        size_t need;
        if (b < 0x80) {
            i++, count++;
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF)
            need = 1;
        else if (b >= 0xE0 && b <= 0xEF)
            need = 2, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
        else if (b >= 0xF0 && b <= 0xF4)
            need = 3, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
        else
            goto latin1;
        if (n - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
            goto latin1;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                goto latin1;
        i += need + 1;
        count++;
    }
    *chars = count;
    return 1;
latin1:
    *chars = (uint32_t)n;
    return 0;
}

/* --- messages ----------------------------------------------------------------------- */

void h2c_fail(h2c_conn *c, h2c_result rc) {
    if (c->rc == H2C_OK)
        c->rc = rc;
}

void h2c_count(h2c_conn *c, h2c_counter which, uint64_t n) { c->counters[which] += n; }

static int note_present(const h2c_message *m, const char *text, size_t len) {
    for (uint32_t i = 0; i < m->nnotes; i++)
        if (m->notes[i].len == len &&
            (!len || !memcmp(m->arena.buf + m->notes[i].off, text, len)))
            return 1;
    return 0;
}

static int add_note(h2c_message *m, const char *text, size_t len) {
    h2c_span span = {(uint32_t)m->arena.len, (uint32_t)len};
    if (dp_bytes_append(&m->arena, text, len))
        return -1;
    m->notes[m->nnotes++] = span;
    return 0;
}

/* A message's note: each text once, at most H2C_MAX_NOTES. */
void h2c_note(h2c_conn *c, h2c_message *m, const char *text) {
    size_t len = strlen(text);
    if (m->nnotes >= H2C_MAX_NOTES || note_present(m, text, len))
        return;
    if (add_note(m, text, len))
        h2c_fail(c, H2C_ERR_NOMEM);
}

uint64_t h2c_field_list_size(const h2c_field *f, uint32_t n) {
    uint64_t size = 0;
    for (uint32_t i = 0; i < n; i++)
        size += (uint64_t)f[i].name_chars + f[i].value_chars + H2C_ENTRY_OVERHEAD;
    return size;
}

/* Copy field f (octets in src) to the end of list `to`, octets into m's arena. */
int h2c_add_field(h2c_message *m, h2c_fields *to, const h2c_bytes *src, const h2c_field *f) {
    if (to->n == to->cap) {
        uint32_t cap = to->cap ? to->cap * 2 : 8;
        h2c_field *grown = realloc(to->items, cap * sizeof *grown);
        if (!grown)
            return -1;
        to->items = grown;
        to->cap = cap;
    }
    h2c_field copy = *f;
    copy.name.off = (uint32_t)m->arena.len;
    if (f->name.len && dp_bytes_append(&m->arena, src->buf + f->name.off, f->name.len))
        return -1;
    copy.value.off = (uint32_t)m->arena.len;
    if (f->value.len && dp_bytes_append(&m->arena, src->buf + f->value.off, f->value.len))
        return -1;
    to->items[to->n++] = copy;
    return 0;
}

static void message_free(h2c_message *m) {
    free(m->headers.items);
    free(m->trailers.items);
    h2c_bytes_free(&m->arena);
    h2c_bytes_free(&m->body);
}

/* --- streams ------------------------------------------------------------------------ */

h2c_stream *h2c_stream_get(h2c_conn *c, uint32_t id) { return h2c_idmap_get(&c->open, id); }

int h2c_is_closed(const h2c_conn *c, uint32_t id) {
    return h2c_idmap_get(&c->closed_set, id) != NULL;
}

void h2c_charge(h2c_conn *c, h2c_stream *s, uint64_t n) {
    if (h2c_stream_get(c, s->id) == s) { /* only an open stream holds bytes */
        s->cost += n;
        c->stream_bytes += n;
    }
}

/* A new open stream, the newest (NULL: out of memory). */
static h2c_stream *stream_new(h2c_conn *c, uint32_t id) {
    h2c_stream *s = calloc(1, sizeof *s);
    if (!s || h2c_idmap_put(&c->open, id, s)) {
        free(s);
        return NULL;
    }
    s->id = id;
    s->cost = H2C_STREAM_OVERHEAD;
    s->msg[0].body_prefix_open = s->msg[1].body_prefix_open = 1;
    s->prev = c->newest;
    if (c->newest)
        c->newest->next = s;
    else
        c->oldest = s;
    c->newest = s;
    c->nopen++;
    c->stream_bytes += s->cost;
    return s;
}

h2c_stream *h2c_stream_open(h2c_conn *c, uint32_t id) {
    if (c->nopen >= c->max_streams && c->oldest) {
        h2c_count(c, H2C_DROPPED_STREAMS, 1);
        h2c_flush(c, c->oldest, "stream dropped: too many open streams");
    }
    h2c_stream *s = stream_new(c, id);
    if (!s)
        h2c_fail(c, H2C_ERR_NOMEM);
    return s;
}

static const int CLOSED_MARK = 1;

/* Remember a closed id: the last max_streams * 2 of them. */
void h2c_mark_closed(h2c_conn *c, uint32_t id) {
    uint32_t maxlen = c->max_streams * 2;
    if (c->closed_n == maxlen) {
        h2c_idmap_del(&c->closed_set, c->closed_ring[c->closed_head]);
        c->closed_head = (c->closed_head + 1) % c->closed_cap;
        c->closed_n--;
    }
    if (c->closed_n == c->closed_cap) {
        uint32_t cap = c->closed_cap ? c->closed_cap * 2 : 16;
        cap = cap < maxlen ? cap : maxlen;
        uint32_t *ring = malloc(cap * sizeof *ring);
        if (!ring) {
            h2c_fail(c, H2C_ERR_NOMEM);
            return;
        }
        for (uint32_t k = 0; k < c->closed_n; k++)
            ring[k] = c->closed_ring[(c->closed_head + k) % c->closed_cap];
        free(c->closed_ring);
        c->closed_ring = ring;
        c->closed_cap = cap;
        c->closed_head = 0;
    }
    c->closed_ring[(c->closed_head + c->closed_n) % c->closed_cap] = id;
    c->closed_n++;
    if (!h2c_is_closed(c, id) && h2c_idmap_put(&c->closed_set, id, (void *)&CLOSED_MARK))
        h2c_fail(c, H2C_ERR_NOMEM);
}

static void stream_unlink(h2c_conn *c, h2c_stream *s) {
    h2c_idmap_del(&c->open, s->id);
    if (s->prev)
        s->prev->next = s->next;
    else
        c->oldest = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        c->newest = s->prev;
    c->nopen--;
    c->stream_bytes -= s->cost;
}

static void stream_free(h2c_stream *s) {
    message_free(&s->msg[0]);
    message_free(&s->msg[1]);
    free(s);
}

/* --- exchanges ---------------------------------------------------------------------- */

static int name_is(const h2c_message *m, const h2c_field *f, const char *name, size_t len) {
    return f->name.len == len && !memcmp(m->arena.buf + f->name.off, name, len);
}

/* RFC 9110 15: status-code = 3DIGIT (100..999: a leading 0 is not a status). */
static int parse_status(const uint8_t *p, uint32_t len) {
    if (len != 3 || p[0] < '1' || p[0] > '9' || p[1] < '0' || p[1] > '9' || p[2] < '0' ||
        p[2] > '9')
        return 0;
    return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* What HttpMessage shows of a message; NULL when there is nothing to show. Pseudo-header
 * fields: the last of each name counts. */
static const h2c_msg_view *view_of(const h2c_message *m, int is_request, h2c_msg_view *v) {
    if (!m->headers_seen && (is_request || !m->data_seen))
        return NULL;
    *v = (h2c_msg_view){.m = m, .is_request = (uint8_t)is_request,
                        .start_ns = m->headers_seen ? m->start_ns : m->first_ns,
                        .method = -1, .path = -1, .authority = -1, .status_raw = -1,
                        .headers_not_seen = !m->headers_seen};
    for (uint32_t i = 0; i < m->headers.n; i++) {
        const h2c_field *f = &m->headers.items[i];
        if (!f->name.len || m->arena.buf[f->name.off] != ':')
            continue;
        if (is_request && name_is(m, f, ":method", 7))
            v->method = (int32_t)i;
        else if (is_request && name_is(m, f, ":path", 5))
            v->path = (int32_t)i;
        else if (is_request && name_is(m, f, ":authority", 10))
            v->authority = (int32_t)i;
        else if (!is_request && name_is(m, f, ":status", 7))
            v->status_raw = (int32_t)i;
    }
    if (v->status_raw >= 0) {
        const h2c_field *f = &m->headers.items[v->status_raw];
        v->status = parse_status(m->arena.buf + f->value.off, f->value.len);
    }
    return v;
}

/* gRPC over HTTP/2: the first content-type field (headers, then trailers; names compared
 * case-insensitively) starts with application/grpc. */
static int content_type_grpc(const h2c_message *m) {
    const h2c_fields *lists[2] = {&m->headers, &m->trailers};
    for (int l = 0; l < 2; l++) {
        for (uint32_t i = 0; i < lists[l]->n; i++) {
            const h2c_field *f = &lists[l]->items[i];
            if (f->name.len != 12)
                continue;
            const uint8_t *name = m->arena.buf + f->name.off;
            int same = 1;
            for (int k = 0; k < 12 && same; k++)
                same = (name[k] | (name[k] >= 'A' && name[k] <= 'Z' ? 0x20 : 0)) ==
                       (uint8_t)"content-type"[k];
            if (same)
                return f->value.len >= 16 &&
                       !memcmp(m->arena.buf + f->value.off, "application/grpc", 16);
        }
    }
    return 0;
}

static void emit_exchange(h2c_conn *c, h2c_stream *s, const char *reason) {
    h2c_msg_view rv, sv;
    const h2c_msg_view *request = view_of(&s->msg[1], 1, &rv);
    const h2c_msg_view *response = view_of(&s->msg[0], 0, &sv);
    h2c_event ev = {.kind = H2C_EV_EXCHANGE, .stream_id = s->id, .request = request,
                    .response = response};
    if (reason)
        ev.notes[ev.nnotes++] = reason;
    if (!request)
        ev.notes[ev.nnotes++] = "request headers not seen (the stream predates the capture "
                                "or a gap)";
    ev.grpc = (request && content_type_grpc(request->m)) ||
              (response && content_type_grpc(response->m));
    if (c->rc == H2C_OK && c->emit(c->ctx, &ev))
        h2c_fail(c, H2C_ERR_SINK);
}

/* The stream ends: out of the open table, its id closed, its exchange emitted (a stream on
 * which neither direction showed a header block is counted, never reported: nothing says
 * what it was), freed. */
static void finish_stream(h2c_conn *c, h2c_stream *s, const char *reason) {
    stream_unlink(c, s);
    h2c_mark_closed(c, s->id);
    if (s->msg[0].headers_seen || s->msg[1].headers_seen)
        emit_exchange(c, s, reason);
    else
        h2c_count(c, H2C_STREAMS_WITHOUT_HEADERS, 1);
    stream_free(s);
}

void h2c_flush(h2c_conn *c, h2c_stream *s, const char *reason) { finish_stream(c, s, reason); }

void h2c_flush_all(h2c_conn *c, const char *reason) {
    while (c->oldest)
        finish_stream(c, c->oldest, reason);
}

void h2c_end_message(h2c_conn *c, h2c_stream *s, int from_client, int64_t ts) {
    h2c_message *m = &s->msg[from_client];
    m->ended = 1;
    m->end_ns = ts;
    if (!from_client)
        finish_stream(c, s, NULL);
}

void h2c_shed_streams(h2c_conn *c) {
    while (c->stream_bytes > c->lim.max_stream_bytes && c->oldest) {
        h2c_count(c, H2C_STREAMS_SHED_MEMORY, 1);
        finish_stream(c, c->oldest, "stream dropped: open streams over the memory bound");
    }
}

void h2c_streams_free(h2c_conn *c) {
    while (c->oldest) {
        h2c_stream *s = c->oldest;
        c->oldest = s->next;
        stream_free(s);
    }
    c->newest = NULL;
    c->nopen = 0;
    h2c_idmap_free(&c->open);
    h2c_idmap_free(&c->closed_set);
    free(c->closed_ring);
    c->closed_ring = NULL;
    c->closed_cap = c->closed_n = c->closed_head = 0;
}

/* --- a decoded header block onto its message ----------------------------------------- */

/* RFC 9113 8.1: "An HTTP response ... consists of: 1. one HEADERS frame ... containing the
 * control data and header section of each informational (1xx) HTTP response (if any)" */
static int informational(const h2c_block *b, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        const h2c_field *f = &b->fields.items[i];
        if (f->name.len == 7 && !memcmp(b->octets.buf + f->name.off, ":status", 7)) {
            int status = parse_status(b->octets.buf + f->value.off, f->value.len);
            return status && status < 200;
        }
    }
    return 0;
}

/* At most limits.max_headers fields and limits.max_header_bytes of header list: indexed
 * references make a list far larger than its block. Returns how many fields are kept. */
static uint32_t bounded_fields(h2c_conn *c, h2c_message *m, const h2c_block *b) {
    char text[96];
    uint32_t n = b->fields.n;
    if (n > c->lim.max_headers) {
        n = c->lim.max_headers;
        snprintf(text, sizeof text, "headers beyond %u dropped", c->lim.max_headers);
        h2c_note(c, m, text);
    }
    uint64_t size = 0;
    for (uint32_t i = 0; i < n; i++) {
        size += h2c_field_list_size(&b->fields.items[i], 1);
        if (size > c->lim.max_header_bytes) {
            h2c_count(c, H2C_HEADER_LISTS_TRUNCATED, 1);
            snprintf(text, sizeof text, "header list beyond %u octets dropped",
                     c->lim.max_header_bytes);
            h2c_note(c, m, text);
            return i;
        }
    }
    return n;
}

/* The notes a decoded block brings (hpack face's DecodedBlock.notes, the same texts). */
static void block_notes(h2c_conn *c, h2c_message *m, const h2c_dir *d) {
    const h2c_block *b = &c->block;
    char text[128];
    if (b->err) {
        const char *why = b->err == HP_NO_MEMORY || b->err == HP_ABORTED
                              ? "internal MemoryError" : hp_err_code[b->err];
        snprintf(text, sizeof text, "hpack: table reset (%s)", why);
        h2c_note(c, m, text);
        if (b->err == HP_SIZE_UPDATE_TOO_LARGE && d->has_advertised) {
            snprintf(text, sizeof text, "hpack: peer table size %llu above the %llu octets "
                     "followed", (unsigned long long)d->advertised,
                     (unsigned long long)d->dec.max_table_size);
            h2c_note(c, m, text);
        }
        return;
    }
    for (uint32_t i = 0; i < b->noted; i++) {
        if (b->unknown_kind[i] == HP_FIELD_UNKNOWN_INDEX)
            snprintf(text, sizeof text, "hpack: index %u not learned", b->unknown_index[i]);
        else
            snprintf(text, sizeof text, "hpack: entry with an unlearned name referenced");
        h2c_note(c, m, text);
    }
    if (b->unknown > b->noted) {
        snprintf(text, sizeof text, "hpack: %u more headers not learned", b->unknown - b->noted);
        h2c_note(c, m, text);
    }
}

static void add_fields(h2c_conn *c, h2c_stream *s, h2c_message *m, h2c_fields *to, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (h2c_add_field(m, to, &c->block.octets, &c->block.fields.items[i]))
            h2c_fail(c, H2C_ERR_NOMEM);
    h2c_charge(c, s, h2c_field_list_size(c->block.fields.items, n));
}

/* c->block, decoded, onto the message of s in direction from_client: its header list, or
 * its trailers once the header list was seen (at most limits.max_headers in all). */
void h2c_apply_block(h2c_conn *c, h2c_stream *s, int from_client, int64_t block_ts) {
    h2c_message *m = &s->msg[from_client];
    uint32_t n = bounded_fields(c, m, &c->block);
    if (!from_client && !m->headers_seen && informational(&c->block, n))
        return; /* 1xx responses precede the final response; not reported */
    block_notes(c, m, &c->dirs[from_client]);
    if (m->headers_seen) {
        uint32_t room = c->lim.max_headers > m->trailers.n ? c->lim.max_headers - m->trailers.n
                                                           : 0;
        add_fields(c, s, m, &m->trailers, n < room ? n : room);
        return;
    }
    add_fields(c, s, m, &m->headers, n);
    m->headers_seen = 1;
    m->start_ns = block_ts;
}

/* --- h2c upgrade ---------------------------------------------------------------------- */

/* RFC 9113 3.1 / RFC 7540 3.2: "The HTTP/1.1 request that is sent prior to upgrade is
 * assigned a stream identifier of 1"; the response comes on stream 1 as HTTP/2. The request
 * is whole (ended); its fields, notes and body prefix are the HTTP/1 analyzer's. */
h2c_result h2c_upgraded(h2c_conn *c, const h2c_upgrade *r) {
    c->rc = H2C_OK;
    if (h2c_stream_get(c, 1))
        return H2C_OK; /* only ever the connection's first stream */
    h2c_stream *s = stream_new(c, 1);
    if (!s)
        return H2C_ERR_NOMEM;
    h2c_message *m = &s->msg[1];
    *m = (h2c_message){.headers_seen = 1, .ended = 1, .first_ns = r->start_ns,
                       .start_ns = r->start_ns, .end_ns = r->end_ns, .wire_bytes = r->wire_bytes,
                       .body_len = r->body_len, .body_prefix_open = 1};
    h2c_bytes staging = {0};
    for (uint32_t i = 0; i < r->nfields && c->rc == H2C_OK; i++) {
        h2c_field f = {.name = {0, r->name_lens[i]}, .value = {r->name_lens[i], r->value_lens[i]}};
        staging.len = 0;
        f.name_utf8 = (uint8_t)h2c_utf8_chars(r->names[i], r->name_lens[i], &f.name_chars);
        f.value_utf8 = (uint8_t)h2c_utf8_chars(r->values[i], r->value_lens[i], &f.value_chars);
        if (dp_bytes_append(&staging, r->names[i], r->name_lens[i]) ||
            dp_bytes_append(&staging, r->values[i], r->value_lens[i]) ||
            h2c_add_field(m, &m->headers, &staging, &f))
            h2c_fail(c, H2C_ERR_NOMEM);
    }
    h2c_bytes_free(&staging);
    for (uint32_t i = 0; i < r->nnotes && i < H2C_NOTE_SLOTS && c->rc == H2C_OK; i++)
        if (add_note(m, (const char *)r->notes[i], r->note_lens[i]))
            h2c_fail(c, H2C_ERR_NOMEM);
    if (c->rc == H2C_OK && dp_bytes_append(&m->body, r->body, r->body_len_kept))
        h2c_fail(c, H2C_ERR_NOMEM);
    h2c_charge(c, s, h2c_field_list_size(m->headers.items, m->headers.n) + r->body_len_kept);
    return c->rc;
}
