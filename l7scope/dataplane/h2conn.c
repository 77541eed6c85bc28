/* HTTP/2 and gRPC exchange analyzer for one connection (RFC 9113, RFC 7541), sans-IO C.
 *
 * Theory of operation
 * -------------------
 * Three layers, one way, all in C (nothing per frame reaches Python):
 *
 * 1. Per direction an h2f_splitter (h2frames.c) turns bytes into frames, skipping the client
 *    preface and resynchronising on a plausible frame header after a hole or when the
 *    connection was first seen mid-way. The events of one call are collected first (payloads
 *    copied into the call's buffer) and handled once the call is over, when the splitter's
 *    final state is known: a direction that gave up in this call ignores this call's
 *    FramingLost events and abandons the whole connection after them.
 * 2. Per direction one observer hp_decoder (hpack.c) decodes the header blocks that direction
 *    carries: client->server blocks are requests (and request trailers), server->client blocks
 *    are responses, response trailers and PUSH_PROMISE request headers. HEADERS + CONTINUATION
 *    are stitched into one block first (bounded by limits.max_header_bytes). Every block is
 *    decoded, even on streams we do not track, so that the dynamic table stays in step.
 * 3. The stream tracker (h2conn_streams.c) pairs the request and the response of each stream
 *    and emits the exchange when the response ends (END_STREAM), the stream is reset
 *    (RST_STREAM), the connection goes away (GOAWAY) or ends (eof).
 *
 * Per frame (on_frame): a frame inside an unfinished header block other than its CONTINUATION
 * loses the block; the frame's stream (opened by HEADERS or DATA unless its id is closed) is
 * charged 9 + length wire octets and its times; then the handler of the type below, table
 * FRAME_HANDLERS (DATA, HEADERS, RST_STREAM, SETTINGS, PUSH_PROMISE, GOAWAY, CONTINUATION;
 * PRIORITY, PING, WINDOW_UPDATE and unknown types have none); then the stream budget.
 *
 * SETTINGS_HEADER_TABLE_SIZE sent by one endpoint bounds the OTHER endpoint's encoder, so it
 * sets the bound of the decoder for the opposite direction when the other endpoint's SETTINGS
 * ACK is seen (on_settings has the RFC text), at most H2C_MAX_ACCEPTED_TABLE_SIZE.
 *
 * GOAWAY: streams of the receiver above the last stream id were not processed and are flushed
 * at once (a client's GOAWAY speaks of pushed streams, not of its requests); with an error
 * code every open stream is flushed; with NO_ERROR streams up to the last id may still
 * complete (graceful shutdown), and eof flushes what is left.
 *
 * Hostile input: a decoded header list is bounded by limits.max_header_bytes; a splitter that
 * finds no frame header in its resync limit gives up and the connection's analysis is
 * abandoned (open streams flushed with a note, resync_abandoned counted, later bytes
 * ignored). Every drop is counted when it happens (h2c_counters). Errors are values: a
 * ParseError event with a code; allocation failure ends the call with H2C_ERR_NOMEM.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2conn_internal.h"

const char *const h2c_error_code[H2C_NERRORS] = {
    "resync", "resync_abandoned", "framing_lost", "continuation_expected",
    "continuation_unexpected", "header_block", "bad_padding"};
const char *const h2c_counter_name[H2C_NCOUNTERS] = {
    "dropped_streams", "streams_shed_memory", "streams_without_headers", "hpack_resets",
    "hpack_unknown_headers", "hpack_table_size_clamped", "header_lists_truncated",
    "resync_abandoned"};
static const char *const ERROR_NAMES[] = {
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
    "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"};

enum { FLAG_END_STREAM = 0x1, FLAG_ACK = 0x1, FLAG_END_HEADERS = 0x4, FLAG_PADDED = 0x8,
       FLAG_PRIORITY = 0x20 };
enum { SETTINGS_HEADER_TABLE_SIZE = 0x1, SETTINGS_MAX_FRAME_SIZE = 0x5 };

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 9113 7: error code names; an unknown code as 0x%x. */
static const char *error_name(uint32_t code, char *buf, size_t size) {
    if (code < sizeof ERROR_NAMES / sizeof *ERROR_NAMES)
        return ERROR_NAMES[code];
    snprintf(buf, size, "0x%x", code);
    return buf;
}

static void parse_error(h2c_conn *c, h2c_error code, const char *detail, int from_client,
                        int64_t ts) {
    h2c_event ev = {.kind = H2C_EV_ERROR, .code = code, .detail = detail,
                    .from_client = (uint8_t)from_client, .ts = ts};
    if (c->rc == H2C_OK && c->emit(c->ctx, &ev))
        h2c_fail(c, H2C_ERR_SINK);
}

static void lost_sync(h2c_conn *c, h2c_dir *d) {
    hp_lost_sync(&d->dec);
    h2c_count(c, H2C_HPACK_RESETS, 1);
}

static void clear_block(h2c_dir *d) {
    d->in_block = 0;
    d->fragments.len = 0;
    if (d->fragments.cap > 4096)
        h2c_bytes_free(&d->fragments);
}

/* --- header blocks ------------------------------------------------------------------ */

static int collect_field(void *ctx, const hp_field *f) {
    h2c_block *b = &((h2c_conn *)ctx)->block;
    if (f->kind != HP_FIELD_KNOWN) {
        if (b->noted < 8) { /* at most 8 named in notes, then "<n> more" */
            b->unknown_kind[b->noted] = (uint8_t)f->kind;
            b->unknown_index[b->noted++] = f->index;
        }
        return 0;
    }
    if (b->fields.n == b->fields.cap) {
        uint32_t cap = b->fields.cap ? b->fields.cap * 2 : 16;
        h2c_field *grown = realloc(b->fields.items, cap * sizeof *grown);
        if (!grown)
            return -1;
        b->fields.items = grown;
        b->fields.cap = cap;
    }
    h2c_field *out = &b->fields.items[b->fields.n];
    out->name = (h2c_span){(uint32_t)b->octets.len, f->name_len};
    out->value = (h2c_span){(uint32_t)(b->octets.len + f->name_len), f->value_len};
    if (dp_bytes_append(&b->octets, f->name, f->name_len) ||
        dp_bytes_append(&b->octets, f->value, f->value_len))
        return -1;
    out->name_utf8 = (uint8_t)h2c_utf8_chars(f->name, f->name_len, &out->name_chars);
    out->value_utf8 = (uint8_t)h2c_utf8_chars(f->value, f->value_len, &out->value_chars);
    b->fields.n++;
    return 0;
}

/* One complete block into c->block (fields, unknown count, notes to make, error). */
static void decode_block(h2c_conn *c, h2c_dir *d) {
    h2c_block *b = &c->block;
    b->fields.n = 0;
    b->octets.len = 0;
    b->unknown = b->noted = 0;
    uint32_t unknown = 0;
    b->err = hp_decode_observed(&d->dec, d->fragments.buf ? d->fragments.buf : (uint8_t *)"",
                                d->fragments.len, collect_field, c, &unknown);
    if (b->err) { /* the table was reset; what the block gave is discarded */
        b->fields.n = 0;
        h2c_count(c, H2C_HPACK_RESETS, 1);
        return;
    }
    b->unknown = unknown;
    if (unknown)
        h2c_count(c, H2C_HPACK_UNKNOWN_HEADERS, unknown);
}

/* The current header block cannot be decoded: insertions in it are lost. */
static void lose_block(h2c_conn *c, int from_client, const char *reason, int keep_open) {
    h2c_dir *d = &c->dirs[from_client];
    if (!d->in_block)
        return;
    lost_sync(c, d);
    if (!d->block_lost) {
        d->block_lost = 1;
        h2c_stream *s = h2c_stream_get(c, d->block_stream);
        if (s && !d->block_push)
            h2c_note(c, &s->msg[from_client], reason);
    }
    if (!keep_open)
        clear_block(d);
}

static void complete_block(h2c_conn *c, int from_client, int64_t ts_end) {
    h2c_dir *d = &c->dirs[from_client];
    int decoded = !d->block_lost, push = d->block_push, end_stream = d->block_end_stream;
    int64_t block_ts = d->block_ts;
    if (decoded)
        decode_block(c, d);
    clear_block(d);
    h2c_stream *s = h2c_stream_get(c, d->block_stream);
    if (push || !s)
        return;
    h2c_message *m = &s->msg[from_client];
    if (decoded) {
        h2c_apply_block(c, s, from_client, block_ts);
    } else if (!m->headers_seen) {
        m->headers_seen = 1;
        m->start_ns = block_ts;
    }
    if (end_stream)
        h2c_end_message(c, s, from_client, ts_end);
}

/* Header block fragment of a HEADERS (fixed 0) or PUSH_PROMISE (fixed 4) frame: NULL and
 * [*start, *end) of the payload, or the problem. RFC 9113 6.2: HEADERS payload = [Pad Length
 * (8)] [E + Stream Dependency (32), Weight (8) when PRIORITY] Field Block Fragment, Padding.
 * 6.6: PUSH_PROMISE = [Pad Length (8)], R + Promised Stream ID (32), Field Block Fragment,
 * Padding. */
static const char *header_fragment(const h2f_event *ev, size_t fixed, size_t *start,
                                   size_t *end) {
    *start = *end = 0;
    if (ev->damaged || ev->truncated)
        return ev->damaged ? "header block lost in a capture gap"
                           : "header block larger than the limit";
    size_t from = 0, pad = 0;
    if (ev->flags & FLAG_PADDED) {
        if (!ev->payload_len)
            return "padded header frame without a pad length";
        from = 1, pad = ev->payload[0];
    }
    if (ev->type == H2F_HEADERS && (ev->flags & FLAG_PRIORITY))
        from += 5;
    from += fixed;
    /* "Padding that exceeds the size remaining for the header block fragment MUST be treated
     * as a PROTOCOL_ERROR." */
    if (ev->payload_len < pad || ev->payload_len - pad < from)
        return "header frame padding exceeds its payload";
    *start = from;
    *end = ev->payload_len - pad;
    return NULL;
}

static void start_block(h2c_conn *c, int from_client, const h2f_event *ev, int is_push,
                        size_t fixed) {
    h2c_dir *d = &c->dirs[from_client];
    size_t start, end;
    const char *problem = header_fragment(ev, fixed, &start, &end);
    if (!problem && is_push) {
        size_t at = ev->flags & FLAG_PADDED ? 1 : 0; /* pushed streams are not reported */
        h2c_mark_closed(c, be32(ev->payload + at) & 0x7FFFFFFFu);
    }
    clear_block(d);
    d->in_block = 1;
    d->block_lost = 0;
    d->block_stream = ev->stream_id;
    d->block_end_stream = (ev->flags & FLAG_END_STREAM) && !is_push;
    d->block_push = (uint8_t)is_push;
    d->block_ts = ev->ts_start;
    if (dp_bytes_append(&d->fragments, ev->payload + start, end - start))
        h2c_fail(c, H2C_ERR_NOMEM);
    if (problem) {
        lose_block(c, from_client, problem, 1);
        if (!(ev->damaged || ev->truncated)) /* a malformed frame, not a gap or a bound */
            parse_error(c, H2C_E_HEADER_BLOCK, problem, from_client, ev->ts_start);
    }
    if (ev->flags & FLAG_END_HEADERS)
        complete_block(c, from_client, ev->ts);
}

/* --- frame handlers ------------------------------------------------------------------ */

typedef void (*frame_handler)(h2c_conn *c, int from_client, const h2f_event *ev,
                              h2c_stream *s);

static void on_headers(h2c_conn *c, int from_client, const h2f_event *ev, h2c_stream *s) {
    (void)s;
    start_block(c, from_client, ev, 0, 0);
}

static void on_push_promise(h2c_conn *c, int from_client, const h2f_event *ev, h2c_stream *s) {
    (void)s;
    start_block(c, from_client, ev, 1, 4);
}

static void on_continuation(h2c_conn *c, int from_client, const h2f_event *ev, h2c_stream *s) {
    (void)s;
    h2c_dir *d = &c->dirs[from_client];
    if (!d->in_block) {
        /* RFC 9113 6.10: "A CONTINUATION frame MUST be preceded by a HEADERS, PUSH_PROMISE or
         * CONTINUATION frame without the END_HEADERS flag set" - its HEADERS was not seen. */
        lost_sync(c, d);
        parse_error(c, H2C_E_CONTINUATION_UNEXPECTED, "CONTINUATION outside a header block",
                    from_client, ev->ts_start);
        return;
    }
    if (ev->damaged || ev->truncated) {
        lose_block(c, from_client, "header block lost in a capture gap", 1);
    } else if (!d->block_lost) {
        if (dp_bytes_append(&d->fragments, ev->payload, ev->payload_len))
            h2c_fail(c, H2C_ERR_NOMEM);
        if (d->fragments.len > c->lim.max_header_bytes)
            lose_block(c, from_client, "header block larger than the limit", 1);
    }
    if (ev->flags & FLAG_END_HEADERS)
        complete_block(c, from_client, ev->ts);
}

static void on_data(h2c_conn *c, int from_client, const h2f_event *ev, h2c_stream *s) {
    if (!s)
        return;
    h2c_message *m = &s->msg[from_client];
    const uint8_t *payload = ev->payload;
    size_t kept_len = ev->payload_len;
    uint64_t length = ev->length;
    m->data_seen = 1;
    if (ev->flags & FLAG_PADDED) {
        if (!kept_len) {
            h2c_note(c, m, "data padding length lost in a capture gap");
            length = length ? length - 1 : 0;
        } else if (payload[0] >= length) {
            /* RFC 9113 6.1: "If the length of the padding is the length of the frame payload
             * or greater, the recipient MUST treat this as a connection error" */
            h2c_note(c, m, "DATA padding longer than the frame");
            parse_error(c, H2C_E_BAD_PADDING, "DATA padding longer than the frame", from_client,
                        ev->ts_start);
            kept_len = 0, length = 0;
        } else {
            length = length - 1 - payload[0];
            payload++;
            kept_len = kept_len - 1 < length ? kept_len - 1 : (size_t)length;
        }
    }
    m->body_len += length;
    if (m->body_prefix_open) {
        size_t room = c->lim.body_capture > m->body.len ? c->lim.body_capture - m->body.len : 0;
        size_t kept = kept_len < room ? kept_len : room;
        if (dp_bytes_append(&m->body, payload, kept))
            h2c_fail(c, H2C_ERR_NOMEM);
        h2c_charge(c, s, kept);
    }
    if (ev->damaged) {
        m->body_prefix_open = 0;
        h2c_note(c, m, "body bytes lost in a capture gap");
    }
    if (ev->flags & FLAG_END_STREAM)
        h2c_end_message(c, s, from_client, ev->ts);
}

static void on_rst_stream(h2c_conn *c, int from_client, const h2f_event *ev, h2c_stream *s) {
    (void)from_client;
    char code[16], reason[48];
    if (!s || ev->payload_len != 4)
        return;
    snprintf(reason, sizeof reason, "reset: %s", error_name(be32(ev->payload), code, sizeof code));
    h2c_flush(c, s, reason);
}

static void on_goaway(h2c_conn *c, int from_client, const h2f_event *ev, h2c_stream *s) {
    (void)s;
    char code_text[16], not_processed[64], reason[48];
    if (ev->payload_len < 8)
        return;
    uint32_t last_stream = be32(ev->payload) & 0x7FFFFFFFu, code = be32(ev->payload + 4);
    const char *name = error_name(code, code_text, sizeof code_text);
    snprintf(not_processed, sizeof not_processed, "goaway: stream not processed (%s)", name);
    snprintf(reason, sizeof reason, "goaway: %s", name);
    /* RFC 9113 6.8: "the sender will ignore frames sent on streams initiated by the receiver
     * if the stream has an identifier higher than the included last stream identifier" - the
     * last id speaks of the receiver's streams only (client: odd ids). */
    uint32_t receiver_parity = from_client ? 0 : 1;
    for (h2c_stream *open = c->oldest, *next; open; open = next) {
        next = open->next;
        if (open->id > last_stream && open->id % 2 == receiver_parity)
            h2c_flush(c, open, not_processed);
        else if (code)
            h2c_flush(c, open, reason);
    }
}

/* SETTINGS_HEADER_TABLE_SIZE takes effect when the other endpoint acknowledges it.
 *
 * RFC 9113 6.5.2: "SETTINGS_HEADER_TABLE_SIZE (0x01): This setting allows the sender to inform
 * the remote endpoint of the maximum size of the compression table used to decode field
 * blocks, in units of octets. The encoder can select any size equal to or less than this
 * value". 6.5.3: "Upon receiving a SETTINGS frame ... the recipient MUST immediately update its
 * parameters ... [then] immediately emit a SETTINGS frame with the ACK flag set": the
 * encoder's blocks that use the new value follow its ACK in its own direction, so the decoder
 * of that direction applies it there. RFC 7541 6.3: "The new maximum size MUST be lower than
 * or equal to the limit ... A value that exceeds this limit MUST be treated as a decoding
 * error". Values above H2C_MAX_ACCEPTED_TABLE_SIZE are clamped (counted): an encoder using
 * more resets our decoder (records noted partial), never a large table. */
static void settings_acked(h2c_conn *c, int from_client) {
    h2c_dir *own = &c->dirs[from_client], *other = &c->dirs[!from_client];
    if (!other->sent_n)
        return;
    h2c_pending_size size = other->sent[other->sent_head];
    other->sent_head = (other->sent_head + 1) % H2C_PENDING_SETTINGS;
    other->sent_n--;
    if (size.present) {
        hp_set_max_table_size(&own->dec, size.limit);
        own->has_advertised = size.clamped;
        own->advertised = size.advertised;
    }
}

/* SETTINGS_HEADER_TABLE_SIZE of a SETTINGS payload (the last one); a valid
 * SETTINGS_MAX_FRAME_SIZE raises the frame size the other direction may use. */
static h2c_pending_size read_settings(const h2f_event *ev, h2f_splitter *other) {
    h2c_pending_size pending = {0};
    for (size_t off = 0; off + 6 <= ev->payload_len; off += 6) {
        uint32_t ident = (uint32_t)ev->payload[off] << 8 | ev->payload[off + 1];
        uint32_t value = be32(ev->payload + off + 2);
        if (ident == SETTINGS_HEADER_TABLE_SIZE) {
            pending.present = 1;
            pending.limit = value;
        } else if (ident == SETTINGS_MAX_FRAME_SIZE && value >= H2F_DEFAULT_MAX_FRAME_SIZE &&
                   value <= H2F_MAX_FRAME_SIZE_LIMIT && value > other->max_frame_size) {
            /* 6.5.2: "Values outside this range MUST be treated as a connection error" */
            other->max_frame_size = value;
        }
    }
    return pending;
}

static void on_settings(h2c_conn *c, int from_client, const h2f_event *ev, h2c_stream *s) {
    (void)s;
    if (ev->flags & FLAG_ACK) { /* this endpoint acknowledges the other's SETTINGS */
        settings_acked(c, from_client);
        return;
    }
    h2c_dir *own = &c->dirs[from_client];
    h2c_pending_size pending = read_settings(ev, &c->dirs[!from_client].sp);
    if (pending.present && pending.limit > H2C_MAX_ACCEPTED_TABLE_SIZE) {
        h2c_count(c, H2C_HPACK_TABLE_SIZE_CLAMPED, 1);
        pending.clamped = 1;
        pending.advertised = pending.limit;
        pending.limit = H2C_MAX_ACCEPTED_TABLE_SIZE;
    }
    if (own->sent_n == H2C_PENDING_SETTINGS) {
        own->sent_head = (own->sent_head + 1) % H2C_PENDING_SETTINGS;
        own->sent_n--;
    }
    own->sent[(own->sent_head + own->sent_n++) % H2C_PENDING_SETTINGS] = pending;
}

static const frame_handler FRAME_HANDLERS[H2F_KNOWN_TYPES] = {
    [H2F_DATA] = on_data, [H2F_HEADERS] = on_headers, [H2F_RST_STREAM] = on_rst_stream,
    [H2F_SETTINGS] = on_settings, [H2F_PUSH_PROMISE] = on_push_promise,
    [H2F_GOAWAY] = on_goaway, [H2F_CONTINUATION] = on_continuation};

/* --- per frame ------------------------------------------------------------------------ */

static h2c_stream *stream_for(h2c_conn *c, int from_client, const h2f_event *ev) {
    uint32_t id = ev->stream_id;
    if (!id)
        return NULL;
    if (ev->type == H2F_CONTINUATION) {
        const h2c_dir *d = &c->dirs[from_client];
        id = d->in_block ? d->block_stream : 0;
    }
    h2c_stream *s = h2c_stream_get(c, id);
    if (s || h2c_is_closed(c, id))
        return s;
    if (ev->type != H2F_HEADERS && ev->type != H2F_DATA)
        return NULL;
    return h2c_stream_open(c, id);
}

static void on_frame(h2c_conn *c, int from_client, const h2f_event *ev) {
    const h2c_dir *d = &c->dirs[from_client];
    if (d->in_block && (ev->type != H2F_CONTINUATION || ev->stream_id != d->block_stream)) {
        /* RFC 9113 6.10: "Any number of CONTINUATION frames can be sent, as long as the
         * preceding frame is on the same stream and is a HEADERS, PUSH_PROMISE, or
         * CONTINUATION frame without the END_HEADERS flag set." */
        lose_block(c, from_client, "header block interrupted by another frame", 0);
        parse_error(c, H2C_E_CONTINUATION_EXPECTED, "frame inside a header block", from_client,
                    ev->ts_start);
    }
    h2c_stream *s = stream_for(c, from_client, ev);
    if (s) {
        h2c_message *m = &s->msg[from_client];
        m->wire_bytes += 9 + (uint64_t)ev->length;
        m->first_ns = m->first_ns ? m->first_ns : ev->ts_start;
        m->end_ns = ev->ts;
    }
    if (ev->type < H2F_KNOWN_TYPES && FRAME_HANDLERS[ev->type])
        FRAME_HANDLERS[ev->type](c, from_client, ev, s);
    if (c->stream_bytes > c->lim.max_stream_bytes)
        h2c_shed_streams(c);
}

static void on_framing_lost(h2c_conn *c, int from_client, const h2f_event *ev, int giving_up) {
    h2c_dir *d = &c->dirs[from_client];
    clear_block(d);
    if (giving_up)
        return; /* the connection is abandoned after this call's events */
    lost_sync(c, d); /* header blocks may have been in the hole */
    for (h2c_stream *s = c->oldest; s; s = s->next)
        if (!s->msg[from_client].ended)
            h2c_note(c, &s->msg[from_client], "gap: frames of this stream may be missing");
    parse_error(c, H2C_E_FRAMING_LOST, h2f_lost_text(ev->reason), from_client, ev->ts);
}

/* A direction found no frame header in its resync limit: stop analysing the connection
 * (flush what is open, free the state, ignore later bytes). */
static void abandon(h2c_conn *c, int from_client, int64_t ts) {
    c->abandoned = 1;
    h2c_count(c, H2C_RESYNC_ABANDONED, 1);
    h2c_flush_all(c, "http2 analysis abandoned: too many octets without frames");
    for (int i = 0; i < 2; i++) {
        clear_block(&c->dirs[i]);
        hp_lost_sync(&c->dirs[i].dec);
    }
    parse_error(c, H2C_E_RESYNC_ABANDONED,
                "no frame header found: analysis of the connection stopped", from_client, ts);
}

/* --- the splitter's events of one call ------------------------------------------------ */

static int collect_event(void *ctx, const h2f_event *ev) {
    h2c_conn *c = ctx;
    if (c->nevents == c->events_cap) {
        size_t cap = c->events_cap ? c->events_cap * 2 : 16;
        h2c_pending_event *grown = realloc(c->events, cap * sizeof *grown);
        if (!grown)
            return -1;
        c->events = grown;
        c->events_cap = cap;
    }
    h2c_pending_event *p = &c->events[c->nevents];
    p->ev = *ev;
    p->payload_off = c->payloads.len;
    if (ev->kind == H2F_EV_FRAME && dp_bytes_append(&c->payloads, ev->payload, ev->payload_len))
        return -1;
    c->nevents++;
    return 0;
}

static void handle_events(h2c_conn *c, int from_client, h2f_result splitter_rc) {
    int giving_up = c->dirs[from_client].sp.state == H2F_S_ABANDONED;
    int64_t last_ts = 0;
    if (splitter_rc != H2F_OK)
        h2c_fail(c, H2C_ERR_NOMEM);
    for (size_t i = 0; i < c->nevents && c->rc == H2C_OK; i++) {
        h2f_event *ev = &c->events[i].ev;
        last_ts = ev->ts;
        if (ev->kind == H2F_EV_FRAME) {
            ev->payload = c->payloads.buf ? c->payloads.buf + c->events[i].payload_off
                                          : (const uint8_t *)"";
            on_frame(c, from_client, ev);
        } else if (ev->kind == H2F_EV_LOST) {
            on_framing_lost(c, from_client, ev, giving_up);
        } else if (ev->skipped) {
            char detail[64];
            snprintf(detail, sizeof detail, "skipped %llu octets to a frame header",
                     (unsigned long long)ev->skipped);
            parse_error(c, H2C_E_RESYNC, detail, from_client, ev->ts);
        }
    }
    if (!c->abandoned && giving_up)
        abandon(c, from_client, c->nevents ? last_ts : 0);
    c->nevents = 0;
    c->payloads.len = 0;
    if (c->payloads.cap > 65536)
        h2c_bytes_free(&c->payloads);
}

static h2c_result begin(h2c_conn *c, h2c_emit_fn emit, void *ctx) {
    c->emit = emit;
    c->ctx = ctx;
    c->rc = H2C_OK;
    c->nevents = 0;
    c->payloads.len = 0;
    return H2C_OK;
}

/* --- public --------------------------------------------------------------------------- */

h2c_conn *h2c_new(const h2c_limits *limits, int seen_from_start) {
    h2c_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->lim = *limits;
    c->lim.max_pending = c->lim.max_pending ? c->lim.max_pending : 1;
    c->max_streams = c->lim.max_pending > UINT32_MAX / 16 ? UINT32_MAX / 16
                                                            : c->lim.max_pending * 8;
    for (int from_client = 0; from_client < 2; from_client++) {
        h2c_dir *d = &c->dirs[from_client];
        uint32_t data_capture = c->lim.body_capture < UINT32_MAX ? c->lim.body_capture + 1
                                                                 : UINT32_MAX;
        h2f_init(&d->sp, from_client && seen_from_start, seen_from_start,
                 c->lim.max_header_bytes, data_capture, H2F_DEFAULT_SCAN_CAP,
                 H2F_DEFAULT_RESYNC_LIMIT);
        hp_init(&d->dec, HP_DEFAULT_TABLE_SIZE, 1, seen_from_start);
    }
    return c;
}

void h2c_free(h2c_conn *c) {
    if (!c)
        return;
    h2c_streams_free(c);
    for (int i = 0; i < 2; i++) {
        h2f_free(&c->dirs[i].sp);
        hp_free(&c->dirs[i].dec);
        h2c_bytes_free(&c->dirs[i].fragments);
    }
    free(c->events);
    h2c_bytes_free(&c->payloads);
    free(c->block.fields.items);
    h2c_bytes_free(&c->block.octets);
    free(c);
}

h2c_result h2c_feed(h2c_conn *c, int from_client, const uint8_t *data, size_t len, int64_t ts,
                    h2c_emit_fn emit, void *ctx) {
    if (c->abandoned)
        return H2C_OK;
    begin(c, emit, ctx);
    from_client = !!from_client;
    h2f_result rc = h2f_feed(&c->dirs[from_client].sp, data, len, ts, collect_event, c);
    handle_events(c, from_client, rc);
    return c->rc;
}

h2c_result h2c_skip(h2c_conn *c, int from_client, uint64_t length, int64_t ts, h2c_emit_fn emit,
                    void *ctx) {
    if (c->abandoned)
        return H2C_OK;
    begin(c, emit, ctx);
    from_client = !!from_client;
    h2f_result rc = h2f_skip(&c->dirs[from_client].sp, length, ts, collect_event, c);
    handle_events(c, from_client, rc);
    return c->rc;
}

h2c_result h2c_eof(h2c_conn *c, int64_t ts, h2c_emit_fn emit, void *ctx) {
    begin(c, emit, ctx);
    for (int from_client = 1; from_client >= 0; from_client--) {
        if (c->abandoned)
            continue;
        h2f_result rc = h2f_finish(&c->dirs[from_client].sp, ts, collect_event, c);
        handle_events(c, from_client, rc);
    }
    h2c_flush_all(c, "connection closed before the stream ended");
    return c->rc;
}

size_t h2c_memory(const h2c_conn *c) {
    size_t total = H2C_CONNECTION_OVERHEAD + c->stream_bytes +
                   (size_t)c->closed_n * H2C_CLOSED_ID_COST;
    for (int i = 0; i < 2; i++) {
        const h2c_dir *d = &c->dirs[i];
        total += h2f_memory(&d->sp) + d->dec.size + (d->in_block ? d->fragments.len : 0);
    }
    return total;
}

const uint64_t *h2c_counters(const h2c_conn *c) { return c->counters; }
int h2c_abandoned(const h2c_conn *c) { return c->abandoned; }
uint64_t h2c_table_size(const h2c_conn *c, int from_client) {
    return c->dirs[!!from_client].dec.size;
}
uint64_t h2c_max_table_size(const h2c_conn *c, int from_client) {
    return c->dirs[!!from_client].dec.max_table_size;
}
uint32_t h2c_max_frame_size(const h2c_conn *c, int from_client) {
    return c->dirs[!!from_client].sp.max_frame_size;
}
