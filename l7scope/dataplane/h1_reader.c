/* h1_reader.c: read HTTP/1.x messages from one direction of a connection (RFC 9112).
 *
 * Theory of operation
 * -------------------
 * A reader owns one direction's byte stream (client->server carries requests,
 * server->client carries responses). It is a state machine whose every move is an entry of
 * TABLE[state][step] -> next state:
 *
 *     HEAD --no body / 1xx / HEAD--> HEAD
 *     HEAD --Content-Length--> LENGTH_BODY --last byte--> HEAD
 *     HEAD --chunked--> CHUNK_SIZE --size>0--> CHUNK_DATA --> CHUNK_DATA_END --CRLF--> CHUNK_SIZE
 *                       CHUNK_SIZE --size 0--> TRAILERS --empty line--> HEAD
 *     HEAD --response with no length--> CLOSE_BODY            (ends at eof)
 *     HEAD --101 / 2xx to CONNECT--> STOPPED                   (no longer HTTP/1)
 *     framing state --invalid bytes or a hole--> RESYNC --plausible start line--> HEAD
 *     any state --eof--> STOPPED
 *
 * Each state but STOPPED has one handler (buf, end, &pos) -> step, or 0 for "need more
 * bytes". A step missing from the table for the current state is a bug here: the call
 * returns -1 and the connection's analysis ends.
 *
 * Buffering: feed() works on one contiguous buffer: the caller's bytes when nothing was
 * carried over (the usual case, no copy), else carried-over bytes + new data in a scratch
 * buffer. Bodies are consumed as they arrive (only the first body_capture bytes are copied
 * into the message), so the only bytes carried to the next feed are an incomplete header
 * block (<= max_header_bytes), an incomplete chunk-size line (< H1_MAX_CHUNK_LINE) or
 * trailer block (<= max_header_bytes), or, in RESYNC, the short tail that could still begin
 * a start line (<= H1_MAX_SYNC_LINE). Holes (skip) inside a body are counted as body bytes; a
 * hole anywhere else loses the framing and sends the reader to RESYNC.
 *
 * Timestamps: a message starts at the ts of the feed that carried its first byte; carried
 * bytes remember the ts of the feed they came in (at most H1_MAX_STAMPS changes).
 *
 * The reader knows nothing about pairing: it tells the analyzer (h1.c) when a head is parsed,
 * when a message ends, when bytes are invalid and when a hole lost its place, and asks it how
 * a parsed head's body is delimited (RFC 9112 6.3 depends on the request a response answers).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "h1_internal.h"


static const uint8_t TABLE[H1_STATE_END][H1_STEP_END] = {
    [H1_HEAD] = {[H1_MESSAGE_DONE] = H1_HEAD, [H1_BODY_BY_LENGTH] = H1_LENGTH_BODY,
                 [H1_BODY_CHUNKED] = H1_CHUNK_SIZE, [H1_BODY_UNTIL_CLOSE] = H1_CLOSE_BODY,
                 [H1_SWITCHED] = H1_STOPPED, [H1_INVALID] = H1_RESYNC, [H1_HOLE] = H1_RESYNC,
                 [H1_CLOSED] = H1_STOPPED},
    [H1_LENGTH_BODY] = {[H1_MESSAGE_DONE] = H1_HEAD, [H1_CLOSED] = H1_STOPPED},
    [H1_CHUNK_SIZE] = {[H1_CHUNK_STARTED] = H1_CHUNK_DATA, [H1_LAST_CHUNK] = H1_TRAILERS,
                       [H1_INVALID] = H1_RESYNC, [H1_HOLE] = H1_RESYNC,
                       [H1_CLOSED] = H1_STOPPED},
    [H1_CHUNK_DATA] = {[H1_CHUNK_DATA_DONE] = H1_CHUNK_DATA_END, [H1_CLOSED] = H1_STOPPED},
    [H1_CHUNK_DATA_END] = {[H1_CHUNK_CLOSED] = H1_CHUNK_SIZE, [H1_INVALID] = H1_RESYNC,
                           [H1_HOLE] = H1_RESYNC, [H1_CLOSED] = H1_STOPPED},
    [H1_TRAILERS] = {[H1_MESSAGE_DONE] = H1_HEAD, [H1_INVALID] = H1_RESYNC,
                     [H1_HOLE] = H1_RESYNC, [H1_CLOSED] = H1_STOPPED},
    [H1_CLOSE_BODY] = {[H1_CLOSED] = H1_STOPPED},
    [H1_RESYNC] = {[H1_SYNCED] = H1_HEAD, [H1_HOLE] = H1_RESYNC, [H1_CLOSED] = H1_STOPPED},
    [H1_STOPPED] = {[H1_CLOSED] = H1_STOPPED},
};

static const char *const STATE_NAMES[H1_STATE_END] = {
    [H1_HEAD] = "HEAD", [H1_LENGTH_BODY] = "LENGTH_BODY", [H1_CHUNK_SIZE] = "CHUNK_SIZE",
    [H1_CHUNK_DATA] = "CHUNK_DATA", [H1_CHUNK_DATA_END] = "CHUNK_DATA_END",
    [H1_TRAILERS] = "TRAILERS", [H1_CLOSE_BODY] = "CLOSE_BODY", [H1_RESYNC] = "RESYNC",
    [H1_STOPPED] = "STOPPED",
};
static const char *const STEP_NAMES[H1_STEP_END] = {
    [H1_MESSAGE_DONE] = "MESSAGE_DONE", [H1_BODY_BY_LENGTH] = "BODY_BY_LENGTH",
    [H1_BODY_CHUNKED] = "BODY_CHUNKED", [H1_BODY_UNTIL_CLOSE] = "BODY_UNTIL_CLOSE",
    [H1_SWITCHED] = "SWITCHED", [H1_CHUNK_STARTED] = "CHUNK_STARTED",
    [H1_LAST_CHUNK] = "LAST_CHUNK", [H1_CHUNK_DATA_DONE] = "CHUNK_DATA_DONE",
    [H1_CHUNK_CLOSED] = "CHUNK_CLOSED", [H1_INVALID] = "INVALID", [H1_HOLE] = "HOLE",
    [H1_SYNCED] = "SYNCED", [H1_CLOSED] = "CLOSED",
};

const char *h1_state_name(int s) { return s > 0 && s < H1_STATE_END ? STATE_NAMES[s] : NULL; }
const char *h1_step_name(int s) { return s > 0 && s < H1_STEP_END ? STEP_NAMES[s] : NULL; }
int h1_transition(int state, int step) {
    if (state <= 0 || state >= H1_STATE_END || step <= 0 || step >= H1_STEP_END)
        return 0;
    return TABLE[state][step];
}

typedef int (*handler)(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos);
static const handler HANDLERS[H1_STATE_END];

int h1_state_has_handler(int s) { return s > 0 && s < H1_STATE_END && HANDLERS[s] != NULL; }

/* ------------------------------------------------------------------ plumbing */

void h1_reader_init(h1_reader *r, struct h1_analyzer *owner, int is_request) {
    memset(r, 0, sizeof *r);
    r->owner = owner;
    r->is_request = (uint8_t)is_request;
    r->state = H1_HEAD;
    r->nstamps = 1;
}

void h1_reader_clear(h1_reader *r) {
    h1_buf_release(&r->carry, 0);
    h1_buf_release(&r->scratch, 0);
    h1_msg_free(r->msg);
    r->msg = NULL;
}

size_t h1_reader_memory(const h1_reader *r) {
    return r->carry.cap + r->scratch.cap + (r->msg ? h1_msg_memory(r->msg) : 0);
}

static const h1_limits *limits(const h1_reader *r) { return h1_limits_of(r->owner); }

static int advance(h1_reader *r, int step) {
    int next = h1_transition(r->state, step);
    if (!next)
        return -1; /* not in the table: a bug here */
    if (next == H1_HEAD || next == H1_RESYNC) {
        r->scanned = 0;
        r->start_line_ok = 0;
    }
    r->state = (uint8_t)next;
    return 0;
}

/* ts of the feed that carried buf[pos] */
static int64_t ts_at(const h1_reader *r, size_t pos) {
    for (uint32_t i = r->nstamps; i-- > 0;)
        if (r->stamps[i].off <= pos)
            return r->stamps[i].ts;
    return r->ts;
}

static int keep(h1_reader *r, const uint8_t *buf, size_t end, size_t pos) {
    if (pos >= end) {
        h1_buf_release(&r->carry, 0);
        return 0;
    }
    if (h1_buf_set(&r->carry, buf + pos, end - pos, NULL, 0))
        return -1;
    if (r->nstamps > 1) {
        uint32_t first = 0, n = 1;
        for (uint32_t i = 0; i < r->nstamps; i++)
            if (r->stamps[i].off <= pos)
                first = i;
        r->stamps[0].ts = r->stamps[first].ts;
        r->stamps[0].off = 0;
        for (uint32_t i = first + 1; i < r->nstamps; i++, n++)
            r->stamps[n] = (h1_stamp){r->stamps[i].off - pos, r->stamps[i].ts};
        r->nstamps = n;
    }
    return 0;
}

static void error(h1_reader *r, int code, const char *detail, size_t len) {
    h1_sink_error(r->owner, r, code, detail, len);
}

static void error_repr(h1_reader *r, int code, const uint8_t *p, size_t len, int as_bytes) {
    char detail[H1_DETAIL_MAX];
    size_t n = h1_repr(detail, sizeof detail, p, len < 64 ? len : 64, as_bytes);
    error(r, code, detail, n);
}

/* the message ends (failure: a note, or 0); the analyzer takes it */
static int finish(h1_reader *r, int failure) {
    h1_msg *m = r->msg;
    r->msg = NULL;
    if (!m)
        return -1;
    if (failure)
        h1_msg_fail(m, failure);
    return h1_sink_finished(r->owner, r, m) < 0 ? -1 : H1_MESSAGE_DONE;
}

/* ------------------------------------------------------------------ heads */

/* Field lines arena[off, off+len): headers, Host as authority, the first Upgrade. */
static int read_fields(h1_reader *r, h1_msg *m, uint32_t off, uint32_t len) {
    uint32_t max = limits(r)->max_headers;
    if (h1_parse_fields(m, off, len, max, &m->fields, &m->nall))
        return -1;
    m->nfields = m->nall < max ? m->nall : max;
    for (uint32_t i = 0; i < m->nall; i++) {
        const h1_field *f = &m->fields[i];
        const uint8_t *name = m->arena + f->name.off;
        if (f->name.len == 4 && m->is_request && !m->has_authority
            && strncasecmp((const char *)name, "host", 4) == 0) {
            m->authority = f->value;
            m->has_authority = 1;
        } else if (f->name.len == 7 && !m->has_upgrade
                   && strncasecmp((const char *)name, "upgrade", 7) == 0) {
            m->upgrade = f->value;
            m->has_upgrade = 1;
        }
    }
    return 0;
}

/* Copy a head's start line (and field lines up to fields_end) into a new message. */
static h1_msg *head_message(h1_reader *r, const uint8_t *head, size_t nl, size_t fields_end,
                            int64_t start_ns, uint32_t capture, int *err) {
    h1_start_line sl;
    *err = h1_parse_start_line(head, nl, r->is_request, &sl);
    if (*err)
        return NULL;
    h1_msg *m = h1_msg_new(r->is_request, start_ns, capture);
    if (!m || h1_msg_append(m, head, fields_end, NULL)) {
        h1_msg_free(m);
        *err = -1;
        return NULL;
    }
    m->method = sl.method, m->path = sl.path, m->version = sl.version;
    m->has_method = m->has_path = (uint8_t)r->is_request;
    m->has_version = 1;
    m->status = sl.status;
    if (fields_end > nl + 1 && read_fields(r, m, (uint32_t)nl + 1,
                                           (uint32_t)(fields_end - nl - 1))) {
        h1_msg_free(m);
        *err = -1;
        return NULL;
    }
    return m;
}

/* A head cut short: report a partial message if its start line is whole and valid.
 * Returns 1 when a message was reported, 0 when not, -1 on failure. */
static int abandon_head(h1_reader *r, const uint8_t *head, size_t len, int note,
                        int with_fields, int64_t start_ns) {
    const uint8_t *lf = memchr(head, H1_LF, len);
    int err = 0;
    h1_msg *m = NULL;
    if (lf) {
        size_t nl = (size_t)(lf - head), fields_end = nl + 1;
        if (with_fields)
            for (size_t i = len; i > nl; i--)
                if (head[i - 1] == H1_LF) {
                    fields_end = i;
                    break;
                }
        m = head_message(r, head, nl, fields_end, start_ns, 0, &err);
    }
    if (err < 0)
        return -1;
    if (!m) {
        r->lost_heads++;
        return 0;
    }
    m->wire_bytes = len;
    m->end_ns = r->ts;
    h1_msg_fail(m, note);
    if (r->is_request && h1_sink_started(r->owner, r, m) < 0) {
        h1_msg_free(m);
        return -1;
    }
    return h1_sink_finished(r->owner, r, m) < 0 ? -1 : 1;
}

static int bad_start_line(h1_reader *r, size_t p, size_t *pos) {
    r->discarded_bytes++; /* RESYNC looks for a start line from the next byte on */
    *pos = p + 1;
    return H1_INVALID;
}

/* Reject garbage early, before a whole header block has been buffered. */
static int check_start_line(h1_reader *r, const uint8_t *buf, size_t end, size_t p) {
    const uint8_t *lf = memchr(buf + p, H1_LF, end - p);
    if (!lf) {
        if (h1_start_prefix_plausible(buf + p, end - p < 40 ? end - p : 40, r->is_request))
            return 0;
        error_repr(r, r->is_request ? H1_ERR_BAD_REQUEST_LINE : H1_ERR_BAD_STATUS_LINE,
                   buf + p, end - p, 1);
        return 1;
    }
    size_t len = (size_t)(lf - buf) - p;
    h1_start_line sl;
    int err = h1_parse_start_line(buf + p, len, r->is_request, &sl);
    r->start_line_ok = err == 0;
    if (err) {
        if (len && buf[p + len - 1] == H1_CR)
            len--;
        error_repr(r, err, buf + p, len, 0);
    }
    return err != 0;
}

static int head_too_large(h1_reader *r, const uint8_t *buf, size_t end, size_t p,
                          size_t skip_to, size_t *pos) {
    char detail[64];
    int n = snprintf(detail, sizeof detail, "header block over %u bytes",
                     limits(r)->max_header_bytes);
    error(r, H1_ERR_HEADER_TOO_LARGE, detail, (size_t)n);
    size_t max = limits(r)->max_header_bytes, len = end - p < max ? end - p : max;
    if (abandon_head(r, buf + p, len, H1_NOTE_HEADERS_TOO_LARGE, 0, ts_at(r, p)) < 0)
        return -1;
    *pos = skip_to;
    return H1_INVALID;
}

static int begin_body(h1_reader *r, h1_msg *m) {
    if (r->is_request && h1_sink_started(r->owner, r, m) < 0)
        return -1;
    h1_framing fr = h1_sink_framing(r->owner, r, m);
    if (fr.step == H1_INVALID) { /* the analyzer reported the error */
        int note = fr.error == H1_ERR_INVALID_CONTENT_LENGTH ? H1_NOTE_INVALID_CONTENT_LENGTH
                                                             : H1_NOTE_INVALID_TRANSFER_ENCODING;
        return finish(r, note) < 0 ? -1 : H1_INVALID;
    }
    if ((fr.step == H1_MESSAGE_DONE || fr.step == H1_SWITCHED) && finish(r, 0) < 0)
        return -1;
    r->remaining = fr.length;
    return fr.step;
}

/* No end of the header block yet: garbage is rejected early, a head too large given up, the
 * rest kept for the next feed (searched from where this search stopped). */
static int head_incomplete(h1_reader *r, const uint8_t *buf, size_t end, size_t p,
                           size_t *pos) {
    if (!r->start_line_ok && check_start_line(r, buf, end, p))
        return bad_start_line(r, p, pos);
    if (end - p > limits(r)->max_header_bytes)
        return head_too_large(r, buf, end, p, end, pos);
    r->scanned = end - p;
    *pos = p;
    return 0;
}

static int read_head(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    size_t p = *pos, last_lf, head_end;
    const size_t max = limits(r)->max_header_bytes;
    /* RFC 9112 2.2: "a server that is expecting to receive and parse a request-line SHOULD
     * ignore at least one empty line (CRLF) received prior to the request-line." */
    while (buf[p] == H1_CR || buf[p] == H1_LF)
        if (++p == end) {
            *pos = p;
            return 0;
        }
    size_t from = p + (r->scanned > 2 ? r->scanned - 2 : 0);
    if (!h1_find_block_end(buf, end, from, &last_lf, &head_end))
        return head_incomplete(r, buf, end, p, pos);
    if (head_end - p > max)
        return head_too_large(r, buf, end, p, head_end, pos);
    size_t nl = (size_t)((const uint8_t *)memchr(buf + p, H1_LF, end - p) - (buf + p));
    int err;
    h1_msg *m = head_message(r, buf + p, nl, last_lf + 1 - p, ts_at(r, p),
                             limits(r)->body_capture, &err);
    if (!m) {
        if (err < 0)
            return -1;
        size_t len = nl && buf[p + nl - 1] == H1_CR ? nl - 1 : nl;
        error_repr(r, err, buf + p, len, 0);
        return bad_start_line(r, p, pos);
    }
    m->wire_bytes = head_end - p;
    m->end_ns = r->ts;
    r->msg = m;
    r->switch_at = head_end;
    *pos = head_end;
    return begin_body(r, m);
}

/* ------------------------------------------------------------------ bodies */

static int body_part(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    uint64_t avail = end - *pos, take = r->remaining < avail ? r->remaining : avail;
    if (h1_msg_take_body(r->msg, buf + *pos, take, r->ts))
        return -1;
    r->remaining -= take;
    *pos += take;
    return 1;
}

static int read_length_body(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    if (body_part(r, buf, end, pos) < 0)
        return -1;
    return r->remaining ? 0 : finish(r, 0);
}

static int read_chunk_data(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    if (body_part(r, buf, end, pos) < 0)
        return -1;
    return r->remaining ? 0 : H1_CHUNK_DATA_DONE;
}

static int read_close_body(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    if (h1_msg_take_body(r->msg, buf + *pos, end - *pos, r->ts))
        return -1;
    *pos = end;
    return 0;
}

static int bad_chunking(h1_reader *r, int code, const char *detail, size_t len) {
    error(r, code, detail, len);
    return finish(r, H1_NOTE_INVALID_CHUNKED) < 0 ? -1 : H1_INVALID;
}

/* The size of a chunk-size line (without its LF): 1 and *size, or 0 when it is not one. */
static int chunk_size_value(const uint8_t *line, size_t len, uint64_t *size) {
    /* RFC 9112 7.1.1: "A recipient MUST ignore unrecognized chunk extensions." */
    const uint8_t *semi = memchr(line, ';', len);
    size_t a = 0, b = semi ? (size_t)(semi - line) : len;
    while (a < b && (line[a] == ' ' || line[a] == '\t' || line[a] == H1_CR))
        a++;
    while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t' || line[b - 1] == H1_CR))
        b--;
    /* chunk-size = 1*HEXDIG; leading zeros aside, at most 15 digits (a 60-bit size) */
    size_t z = a;
    while (z < b && line[z] == '0')
        z++;
    *size = 0;
    return a < b && (z == b || h1_parse_hex(line + z, b - z, size, 15));
}

static int read_chunk_size(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    /* RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
     *               last-chunk = 1*("0") [ chunk-ext ] CRLF */
    size_t p = *pos, lim = end - p < H1_MAX_CHUNK_LINE ? end - p : H1_MAX_CHUNK_LINE;
    const uint8_t *lf = memchr(buf + p, H1_LF, lim);
    if (!lf) {
        if (end - p >= H1_MAX_CHUNK_LINE)
            return bad_chunking(r, H1_ERR_BAD_CHUNK_SIZE, "chunk-size line too long", 24);
        return 0;
    }
    size_t nl = (size_t)(lf - buf);
    uint64_t size;
    if (!chunk_size_value(buf + p, nl - p, &size)) {
        char detail[H1_DETAIL_MAX];
        size_t n = h1_repr(detail, sizeof detail, buf + p, nl - p < 64 ? nl - p : 64, 1);
        return bad_chunking(r, H1_ERR_BAD_CHUNK_SIZE, detail, n);
    }
    r->msg->wire_bytes += nl + 1 - p;
    r->msg->end_ns = r->ts;
    r->remaining = size;
    *pos = nl + 1;
    return size ? H1_CHUNK_STARTED : H1_LAST_CHUNK;
}

/* CRLF or a bare LF at pos: its length; 0 when a lone CR ends the buffer; -1 otherwise */
static int line_end_at(const uint8_t *buf, size_t end, size_t p) {
    if (buf[p] == H1_LF)
        return 1;
    if (buf[p] == H1_CR && p + 1 < end && buf[p + 1] == H1_LF)
        return 2;
    return buf[p] == H1_CR && p + 1 == end ? 0 : -1;
}

static int read_chunk_data_end(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    int n = line_end_at(buf, end, *pos);
    if (n < 0)
        return bad_chunking(r, H1_ERR_BAD_CHUNK_DATA, "chunk data not followed by CRLF", 31);
    if (n == 0)
        return 0;
    r->msg->wire_bytes += (uint64_t)n;
    r->msg->end_ns = r->ts;
    *pos += (size_t)n;
    return H1_CHUNK_CLOSED;
}

static int read_trailers(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    /* RFC 9112 7.1.2: trailer-section = *( field-line CRLF ), then the final CRLF */
    h1_msg *m = r->msg;
    size_t p = *pos, last_lf, block_end;
    int n = line_end_at(buf, end, p);
    if (n > 0) {
        m->wire_bytes += (uint64_t)n;
        m->end_ns = r->ts;
        *pos = p + (size_t)n;
        return finish(r, 0);
    }
    if (n == 0)
        return 0;
    if (!h1_find_block_end(buf, end, p, &last_lf, &block_end)) {
        if (end - p > limits(r)->max_header_bytes)
            return bad_chunking(r, H1_ERR_HEADER_TOO_LARGE, "trailer section too large", 25);
        return 0;
    }
    h1_span text;
    uint32_t max = limits(r)->max_headers;
    if (h1_msg_append(m, buf + p, last_lf + 1 - p, &text)
        || h1_parse_fields(m, text.off, text.len, max, &m->trailers, &m->ntrailers))
        return -1;
    if (m->ntrailers > max)
        m->ntrailers = max;
    m->wire_bytes += block_end - p;
    m->end_ns = r->ts;
    *pos = block_end;
    return finish(r, 0);
}

/* ------------------------------------------------------------------ garbage and holes */

static int sync_response_at(const uint8_t *p, size_t len) {
    /* "HTTP/1.x [1-5]xx " */
    return len >= 13 && memcmp(p, "HTTP/1.", 7) == 0 && p[7] >= '0' && p[7] <= '9'
           && p[8] == ' ' && p[9] >= '1' && p[9] <= '5' && p[10] >= '0' && p[10] <= '9'
           && p[11] >= '0' && p[11] <= '9' && p[12] == ' ';
}

static int resync(h1_reader *r, const uint8_t *buf, size_t end, size_t *pos) {
    size_t p = *pos, keep_from;
    for (size_t i = p; i < end; i++) {
        int found = r->is_request ? h1_sync_request_at(buf + i, end - i)
                                  : buf[i] == 'H' && sync_response_at(buf + i, end - i);
        if (found) {
            r->discarded_bytes += i - p;
            *pos = i;
            return H1_SYNCED;
        }
    }
    if (r->is_request) { /* a request line candidate has no LF yet */
        keep_from = p;
        for (size_t i = end; i > p; i--)
            if (buf[i - 1] == H1_LF) {
                keep_from = i;
                break;
            }
        if (end > H1_MAX_SYNC_LINE && end - H1_MAX_SYNC_LINE > keep_from)
            keep_from = end - H1_MAX_SYNC_LINE;
    } else {
        keep_from = end > 12 && end - 12 > p ? end - 12 : p;
    }
    r->discarded_bytes += keep_from - p;
    *pos = keep_from;
    return 0;
}

static const handler HANDLERS[H1_STATE_END] = {
    [H1_HEAD] = read_head, [H1_LENGTH_BODY] = read_length_body,
    [H1_CHUNK_SIZE] = read_chunk_size, [H1_CHUNK_DATA] = read_chunk_data,
    [H1_CHUNK_DATA_END] = read_chunk_data_end, [H1_TRAILERS] = read_trailers,
    [H1_CLOSE_BODY] = read_close_body, [H1_RESYNC] = resync,
};

static uint64_t skip_body(h1_reader *r, uint64_t len, int *err) {
    if (r->state == H1_CLOSE_BODY) {
        h1_msg_take_hole(r->msg, len, r->ts);
        return 0;
    }
    uint64_t take = len < r->remaining ? len : r->remaining;
    h1_msg_take_hole(r->msg, take, r->ts);
    r->remaining -= take;
    if (!r->remaining) {
        int step = r->state == H1_LENGTH_BODY ? finish(r, 0) : H1_CHUNK_DATA_DONE;
        if (step < 0 || advance(r, step) < 0)
            *err = -1;
    }
    return len - take;
}

static int lose_sync_in_hole(h1_reader *r) {
    int had_message = 0;
    if (r->state == H1_HEAD && r->carry.len) {
        had_message = abandon_head(r, r->carry.p, r->carry.len, H1_NOTE_GAP_IN_HEADERS, 1,
                                   ts_at(r, 0));
    } else if (r->state == H1_TRAILERS) {
        had_message = finish(r, H1_NOTE_GAP_IN_TRAILERS) < 0 ? -1 : 1;
    } else if (r->state == H1_CHUNK_SIZE || r->state == H1_CHUNK_DATA_END) {
        had_message = finish(r, H1_NOTE_GAP_IN_CHUNKED) < 0 ? -1 : 1;
    }
    if (had_message < 0)
        return -1;
    r->discarded_bytes += r->carry.len;
    h1_buf_release(&r->carry, 0);
    if (advance(r, H1_HOLE) < 0)
        return -1;
    return h1_sink_sync_lost(r->owner, r, had_message);
}

/* ------------------------------------------------------------------ the reader's contract */

/* carried bytes + new data into the scratch buffer; the new bytes' ts is remembered */
static int join_carry(h1_reader *r, const uint8_t *data, size_t len, int64_t ts) {
    if (r->stamps[r->nstamps - 1].ts != ts) {
        if (r->nstamps == H1_MAX_STAMPS) { /* merge the oldest change into the first */
            memmove(&r->stamps[1], &r->stamps[2], (H1_MAX_STAMPS - 2) * sizeof(h1_stamp));
            r->nstamps--;
        }
        r->stamps[r->nstamps++] = (h1_stamp){r->carry.len, ts};
    }
    return h1_buf_set(&r->scratch, r->carry.p, r->carry.len, data, len);
}

int h1_reader_feed(h1_reader *r, const uint8_t *data, size_t len, int64_t ts) {
    const uint8_t *buf = data;
    size_t end = len, pos = 0;
    r->ts = ts;
    if (r->state == H1_STOPPED) {
        r->ignored_bytes += len;
        return 0;
    }
    if (r->carry.len) {
        if (join_carry(r, data, len, ts))
            return -1;
        buf = r->scratch.p;
        end = r->scratch.len;
    } else {
        r->nstamps = 1;
        r->stamps[0] = (h1_stamp){0, ts};
    }
    r->cur = buf;
    r->cur_len = end;
    while (pos < end) {
        int step = HANDLERS[r->state](r, buf, end, &pos);
        if (step < 0 || (step > 0 && advance(r, step) < 0))
            return -1;
        if (step == 0)
            break;
        if (r->state == H1_STOPPED)
            pos = end; /* the rest went to the new protocol with the ProtocolSwitched event */
    }
    r->cur = NULL;
    int rc = keep(r, buf, end, pos);
    h1_buf_release(&r->scratch, 0);
    return rc;
}

/* A hole of len bytes: counted as body where the body is, else framing is lost. */
int h1_reader_skip(h1_reader *r, uint64_t len, int64_t ts) {
    r->ts = ts;
    while (len > 0) {
        if (r->state == H1_STOPPED) {
            r->ignored_bytes += len;
            return 0;
        }
        if (r->state == H1_LENGTH_BODY || r->state == H1_CHUNK_DATA
            || r->state == H1_CLOSE_BODY) {
            int err = 0;
            len = skip_body(r, len, &err);
            if (err)
                return -1;
            continue;
        }
        return lose_sync_in_hole(r);
    }
    return 0;
}

static int close_reader(h1_reader *r) {
    r->ignored_bytes += r->carry.len;
    h1_buf_release(&r->carry, 0);
    return advance(r, H1_CLOSED);
}

int h1_reader_eof(h1_reader *r) {
    int rc = 0, s = r->state;
    if (s == H1_CLOSE_BODY)
        rc = finish(r, 0); /* RFC 9112 6.3 (8): the body ends when the server closes */
    else if (s == H1_HEAD && r->carry.len)
        rc = abandon_head(r, r->carry.p, r->carry.len, H1_NOTE_TRUNCATED_AT_EOF, 1,
                          ts_at(r, 0));
    else if (s != H1_HEAD && s != H1_RESYNC && s != H1_STOPPED)
        rc = finish(r, H1_NOTE_TRUNCATED_AT_EOF);
    if (rc < 0)
        return -1;
    return close_reader(r);
}

/* The other direction switched protocols: end any message and ignore later bytes. */
int h1_reader_stop(h1_reader *r) {
    int rc = 0, s = r->state;
    if (s == H1_HEAD && r->carry.len)
        rc = abandon_head(r, r->carry.p, r->carry.len, H1_NOTE_SWITCHED_MID_MESSAGE, 1,
                          ts_at(r, 0));
    else if (s != H1_HEAD && s != H1_RESYNC && s != H1_STOPPED)
        rc = finish(r, s == H1_CLOSE_BODY ? 0 : H1_NOTE_SWITCHED_MID_MESSAGE);
    if (rc < 0)
        return -1;
    return close_reader(r);
}
