/* h1.c: the HTTP/1.x analyzer of one connection: reads both directions and pairs requests
 * with responses.
 *
 * Theory of operation
 * -------------------
 * Two readers (h1_reader.c) read the client and the server byte streams; this file is what
 * they report to: it owns the pairing and decides how each body is delimited (RFC 9112 6.3,
 * which for a response depends on the request it answers).
 *
 * HTTP/1.1 answers requests in order (RFC 9112 9.3.2: "A server MUST send its responses to
 * those requests in the same order that the requests were received"), so pairing is a FIFO
 * queue of requests whose head was seen and whose final response was not. A request enters
 * the queue when its head is parsed (so a response can learn that it answers a HEAD or
 * CONNECT while the request body may still be arriving) and an exchange is emitted once both
 * the request has ended and its response is known:
 *
 *     request head parsed   -> push entry                  (oldest dropped past max_pending)
 *     request ended         -> entry.request_done; emit if already answered
 *     final response ended  -> pop oldest entry, answer it; emit if its request ended
 *     1xx (not 101)         -> ignored: an interim response is not the answer
 *     101 / 2xx to CONNECT  -> emit, SWITCHED event, stop both readers
 *     response, queue empty -> exchange without request, note "request not seen"
 *     eof                   -> close-delimited response ends; queue flushed with "no response"
 *
 * Holes (skip) that lose the framing are the one place where pairing needs a guess:
 *   - server side: the response to the oldest waiting request began inside the hole, and any
 *     number of later ones may have too, so every waiting request is flushed as
 *     "response lost in gap" (never paired with a later, wrong response);
 *   - client side: the hole began a request (or several). The entry of the cut request, or a
 *     placeholder when nothing of it was seen, becomes absorbing: it answers the next
 *     response, and further responses before any new request is seen are reported without a
 *     request and "request lost in gap". A new request ends the absorption (or, when the
 *     placeholder has not yet been answered, turns it into an ordinary entry: pipelining).
 *
 * Ownership: an entry leaves the queue into a limbo list and is freed at the end of the
 * public call, unless it is the entry of the request still being read (an early response
 * answered it; it is emitted when that request ends). Messages handed to the sink are valid
 * until the callback returns.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h1_internal.h"

enum { M_LOST = 0, M_HEAD, M_CONNECT, M_OTHER };

#define QUEUE_CAP 8 /* the queue's fixed part; it grows with pipelining and shrinks back */

typedef struct pending {
    struct pending *next_limbo;
    uint8_t method, request_done, answered, absorbing, note, absorb_note;
    uint64_t absorbed;
    h1_msg *request, *response;
} pending;

struct h1_analyzer {
    h1_limits limits;
    h1_sink sink;
    void *ctx;
    h1_reader client, server;
    pending **queue; /* ring of qcap entries from qhead */
    uint32_t qcap, qhead, qlen;
    pending *reading; /* entry of the request being read */
    pending *limbo;
    /* responses reported as "request not seen" since the last request began: a client-side
     * hole found later may be where their requests were, so it needs no placeholder */
    uint64_t unpaired_responses;
    uint64_t dropped_pending, interim_responses, parse_errors;
    uint8_t stopped, closed, failed;
    char to[256];
};

const h1_limits *h1_limits_of(const h1_analyzer *a) { return &a->limits; }

/* ------------------------------------------------------------------ the queue */

static pending *q_at(const h1_analyzer *a, uint32_t i) {
    return a->queue[(a->qhead + i) % a->qcap];
}

static int q_push(h1_analyzer *a, pending *e) {
    if (a->qlen == a->qcap) {
        uint32_t cap = a->qcap ? a->qcap * 2 : 8;
        pending **q = h1_mem_malloc((size_t)cap * sizeof *q);
        if (!q)
            return -1;
        for (uint32_t i = 0; i < a->qlen; i++)
            q[i] = q_at(a, i);
        h1_mem_free(a->queue);
        a->queue = q;
        a->qcap = cap;
        a->qhead = 0;
    }
    a->queue[(a->qhead + a->qlen++) % a->qcap] = e;
    return 0;
}

static void to_limbo(h1_analyzer *a, pending *e) {
    e->next_limbo = a->limbo;
    a->limbo = e;
}

static pending *q_pop_front(h1_analyzer *a) {
    pending *e = q_at(a, 0);
    a->qhead = (a->qhead + 1) % a->qcap;
    a->qlen--;
    to_limbo(a, e);
    return e;
}

static pending *q_pop_back(h1_analyzer *a) {
    pending *e = q_at(a, --a->qlen);
    to_limbo(a, e);
    return e;
}

static void free_entry(pending *e) {
    if (e->response != e->request)
        h1_msg_free(e->response);
    h1_msg_free(e->request);
    h1_mem_free(e);
}

static void clear_limbo(h1_analyzer *a) {
    pending *keep = NULL, *e = a->limbo;
    while (e) {
        pending *next = e->next_limbo;
        if (e == a->reading) {
            e->next_limbo = keep;
            keep = e;
        } else {
            free_entry(e);
        }
        e = next;
    }
    a->limbo = keep;
}

/* ------------------------------------------------------------------ events */

static void emit_exchange(h1_analyzer *a, const h1_msg *req, const h1_msg *resp, int note) {
    h1_event ev = {.kind = H1_EV_EXCHANGE, .request = req, .response = resp,
                   .note = (uint8_t)note};
    a->sink(a->ctx, &ev);
}

void h1_sink_error(h1_analyzer *a, h1_reader *r, int code, const char *detail, size_t len) {
    a->parse_errors++;
    h1_event ev = {.kind = H1_EV_ERROR, .error = (uint8_t)code, .from_client = r->is_request,
                   .detail = detail, .detail_len = len, .ts = r->ts};
    a->sink(a->ctx, &ev);
}

/* False for entries already reported, or standing for a request never seen at all. */
static int worth_reporting(const pending *e) {
    return !((e->absorbing && e->absorbed) || (e->request_done && !e->request));
}

static void emit(h1_analyzer *a, pending *e) {
    emit_exchange(a, e->request, e->response, e->note);
}

static void answer(h1_analyzer *a, pending *e, h1_msg *response, int note) {
    if (e->response && e->response != response)
        h1_msg_free(e->response);
    e->answered = 1;
    e->response = response;
    e->note = (uint8_t)note;
    if (e->request_done)
        emit(a, e);
}

static void flush_awaiting(h1_analyzer *a, int note) {
    while (a->qlen) {
        pending *e = q_pop_front(a);
        if (worth_reporting(e))
            answer(a, e, NULL, note);
    }
}

/* ------------------------------------------------------------------ pairing */

static int method_code(const h1_msg *m) {
    const uint8_t *p = m->arena + m->method.off;
    if (m->method.len == 4 && memcmp(p, "HEAD", 4) == 0)
        return M_HEAD;
    if (m->method.len == 7 && memcmp(p, "CONNECT", 7) == 0)
        return M_CONNECT;
    return M_OTHER;
}

static int request_started(h1_analyzer *a, h1_msg *m) {
    a->unpaired_responses = 0;
    pending *tail = a->qlen ? q_at(a, a->qlen - 1) : NULL;
    if (tail && tail->absorbing) {
        if (tail->absorbed)
            q_pop_back(a); /* its lost requests were answered; this one is new */
        else
            tail->absorbing = 0; /* pipelined: the lost request is answered first */
    }
    pending *e = h1_mem_calloc(1, sizeof *e);
    if (!e || q_push(a, e)) {
        h1_mem_free(e);
        return -1;
    }
    e->method = (uint8_t)method_code(m);
    a->reading = e;
    /* at most max_pending entries: placeholders for requests lost in holes count too, so
     * alternating holes and requests cannot grow the queue */
    uint32_t max = a->limits.max_pending > 1 ? a->limits.max_pending : 1;
    while (a->qlen > max) {
        a->dropped_pending++;
        pending *oldest = q_pop_front(a);
        if (worth_reporting(oldest))
            answer(a, oldest, NULL, H1_XNOTE_DROPPED_PENDING);
    }
    return 0;
}

int h1_sink_started(h1_analyzer *a, h1_reader *r, h1_msg *m) {
    return r->is_request ? request_started(a, m) : 0;
}

static void request_finished(h1_analyzer *a, h1_msg *m) {
    pending *e = a->reading;
    a->reading = NULL;
    if (!e) { /* cannot happen: every finished request was started */
        h1_msg_free(m);
        return;
    }
    e->request = m;
    e->request_done = 1;
    if (e->answered)
        emit(a, e);
}

/* the protocol a 101 switches to: its Upgrade, else what the client asked for */
static size_t switch_target(h1_analyzer *a, const h1_msg *m, const pending *e) {
    size_t n = 0;
    if (m->switch_to == 1) {
        memcpy(a->to, "tunnel", 6);
        return 6;
    }
    if (m->has_upgrade)
        n = h1_first_token_lower(a->to, sizeof a->to, m->arena + m->upgrade.off,
                                 m->upgrade.len);
    if (n)
        return n;
    const h1_span *asked = e && e->request ? h1_msg_header(e->request, "upgrade") : NULL;
    if (!asked || !asked->len) {
        memcpy(a->to, "unknown", 7);
        return 7;
    }
    return h1_first_token_lower(a->to, sizeof a->to, e->request->arena + asked->off,
                                asked->len);
}

static int switch_protocol(h1_analyzer *a, const h1_msg *m, const pending *e) {
    h1_reader *s = &a->server;
    h1_event ev = {.kind = H1_EV_SWITCHED, .to = a->to, .to_len = switch_target(a, m, e),
                   .request = e ? e->request : NULL, .ts = s->ts};
    if (s->cur && s->switch_at < s->cur_len) {
        ev.remainder = s->cur + s->switch_at;
        ev.remainder_len = s->cur_len - s->switch_at;
    }
    a->sink(a->ctx, &ev);
    a->stopped = 1;
    if (h1_reader_stop(&a->client) < 0)
        return -1;
    flush_awaiting(a, H1_XNOTE_NO_RESPONSE);
    return 0;
}

static int response_finished(h1_analyzer *a, h1_msg *m) {
    /* RFC 9110 15.2: "A client MUST be able to parse one or more 1xx responses received
     * prior to a final response, even if the client does not expect one." */
    if (m->status >= 100 && m->status < 200 && m->status != 101) {
        a->interim_responses++;
        h1_msg_free(m);
        return 0;
    }
    pending *e = a->qlen ? q_at(a, 0) : NULL;
    int owned = 1, rc = 0;
    if (!e) {
        a->unpaired_responses++;
        emit_exchange(a, NULL, m, H1_XNOTE_REQUEST_NOT_SEEN);
    } else if (e->absorbing && e->absorbed) {
        e->absorbed++;
        emit_exchange(a, NULL, m, H1_XNOTE_REQUEST_LOST_IN_GAP);
    } else if (e->absorbing) {
        e->absorbed = 1;
        answer(a, e, m, e->absorb_note);
        owned = 0;
    } else {
        e = q_pop_front(a);
        /* a placeholder turned ordinary (a request followed the hole) still stands for a
         * request that was never seen */
        answer(a, e, m, e->request ? H1_XNOTE_NONE : e->absorb_note);
        owned = 0;
    }
    if (m->switch_to >= 0) /* set only for a whole 101 / 2xx-to-CONNECT head */
        rc = switch_protocol(a, m, e);
    if (owned)
        h1_msg_free(m);
    return rc;
}

int h1_sink_finished(h1_analyzer *a, h1_reader *r, h1_msg *m) {
    if (r->is_request) {
        request_finished(a, m);
        return 0;
    }
    return response_finished(a, m);
}

static int client_sync_lost(h1_analyzer *a, int had_message) {
    pending *tail = a->qlen ? q_at(a, a->qlen - 1) : NULL;
    if (tail && tail->absorbing)
        return 0; /* already standing for lost requests */
    if (had_message && tail && tail->request_done && !tail->answered && tail->request
        && (tail->request->nnotes || !tail->request->complete)) {
        tail->absorbing = 1; /* the cut request; more may hide in the same hole */
        return 0;
    }
    if (!had_message && a->unpaired_responses) {
        a->unpaired_responses--; /* its response came already, as "request not seen" */
        return 0;
    }
    pending *e = h1_mem_calloc(1, sizeof *e);
    if (!e || q_push(a, e)) {
        h1_mem_free(e);
        return -1;
    }
    e->method = M_LOST;
    e->request_done = e->absorbing = 1;
    e->absorb_note = H1_XNOTE_REQUEST_LOST_IN_GAP;
    return 0;
}

int h1_sink_sync_lost(h1_analyzer *a, h1_reader *r, int had_message) {
    if (r->is_request)
        return client_sync_lost(a, had_message);
    flush_awaiting(a, H1_XNOTE_RESPONSE_LOST_IN_GAP);
    return 0;
}

/* ------------------------------------------------------------------ body framing (RFC 9112 6.3) */

static int field_is(const h1_msg *m, const h1_field *f, const char *name, size_t len) {
    return f->name.len == len && strncasecmp((const char *)m->arena + f->name.off, name, len) == 0;
}

static void append_piece(uint8_t *out, size_t *o, const uint8_t *p, size_t n) {
    if (*o) {
        out[(*o)++] = ',';
        if (*o < 64)
            out[(*o)++] = ' ';
    }
    for (size_t k = 0; k < n && *o < 64; k++)
        out[(*o)++] = p[k];
}

/* ", ".join(values)[:64] of the fields named name; members: of their comma-separated members,
 * each stripped and lowered */
static size_t joined(const h1_msg *m, const char *name, size_t nlen, int members, uint8_t *out) {
    size_t o = 0;
    for (uint32_t i = 0; i < m->nall && o < 64; i++) {
        const h1_field *f = &m->fields[i];
        if (!field_is(m, f, name, nlen))
            continue;
        const uint8_t *v = m->arena + f->value.off;
        size_t len = f->value.len, start = 0;
        if (!members) {
            append_piece(out, &o, v, len);
            continue;
        }
        for (size_t j = 0; j <= len && o < 64; j++) {
            if (j < len && v[j] != ',')
                continue;
            char tok[64];
            size_t n = h1_first_token_lower(tok, sizeof tok, v + start, j - start);
            append_piece(out, &o, (const uint8_t *)tok, n);
            start = j + 1;
        }
    }
    return o;
}

/* the member is "chunked" once whitespace is stripped and letters lowered */
static int is_chunked(const uint8_t *p, size_t len) {
    while (len && h1_py_space(p[0]))
        p++, len--;
    while (len && h1_py_space(p[len - 1]))
        len--;
    return len == 7 && strncasecmp((const char *)p, "chunked", 7) == 0;
}

static h1_framing invalid(h1_analyzer *a, h1_reader *r, const h1_msg *m, int code) {
    uint8_t text[66];
    char detail[H1_DETAIL_MAX];
    size_t n = code == H1_ERR_INVALID_CONTENT_LENGTH ? joined(m, "content-length", 14, 0, text)
                                                      : joined(m, "transfer-encoding", 17, 1, text);
    h1_sink_error(a, r, code, detail, h1_repr(detail, sizeof detail, text, n, 0));
    return (h1_framing){H1_INVALID, 0, code};
}

/* RFC 9112 6.3 (5): "If a message is received without Transfer-Encoding and with an invalid
 * Content-Length header field, then the message framing is invalid"
 * (6): "If a valid Content-Length header field is present without Transfer-Encoding, its
 * decimal value defines the expected message body length in octets." */
static h1_framing length_framing(h1_analyzer *a, h1_reader *r, const h1_msg *m) {
    h1_cl cl = {0};
    uint64_t length;
    for (uint32_t i = 0; i < m->nall; i++)
        if (field_is(m, &m->fields[i], "content-length", 14))
            h1_cl_add(&cl, m->arena + m->fields[i].value.off, m->fields[i].value.len);
    if (!h1_cl_result(&cl, &length))
        return invalid(a, r, m, H1_ERR_INVALID_CONTENT_LENGTH);
    return (h1_framing){length ? H1_BODY_BY_LENGTH : H1_MESSAGE_DONE, length, 0};
}

/* RFC 9112 6.3 (3): "If a message is received with both a Transfer-Encoding and a
 * Content-Length header field, the Transfer-Encoding overrides the Content-Length."
 * (4): "If a Transfer-Encoding header field is present and the chunked transfer coding is the
 * final encoding, the message body length is determined by reading and decoding the chunked
 * data until the transfer coding indicates the data is complete." ... "If a
 * Transfer-Encoding header field is present in a response and the chunked transfer coding is
 * not the final encoding, the message body length is determined by reading the connection
 * until it is closed by the server. If [...] in a request [...] the server MUST respond with
 * the 400 (Bad Request) status code" */
static h1_framing coding_framing(h1_analyzer *a, h1_reader *r, const h1_msg *m,
                                 const h1_field *te) {
    const uint8_t *v = m->arena + te->value.off;
    size_t len = te->value.len, last = len;
    while (last > 0 && v[last - 1] != ',')
        last--;
    if (is_chunked(v + last, len - last))
        return (h1_framing){H1_BODY_CHUNKED, 0, 0};
    if (!m->is_request)
        return (h1_framing){H1_BODY_UNTIL_CLOSE, 0, 0};
    return invalid(a, r, m, H1_ERR_INVALID_TRANSFER_ENCODING);
}

static h1_framing from_fields(h1_analyzer *a, h1_reader *r, const h1_msg *m) {
    const h1_field *te = NULL;
    int has_cl = 0;
    for (uint32_t i = 0; i < m->nall; i++) {
        if (field_is(m, &m->fields[i], "transfer-encoding", 17))
            te = &m->fields[i]; /* the last one holds the final coding */
        else if (field_is(m, &m->fields[i], "content-length", 14))
            has_cl = 1;
    }
    if (te)
        return coding_framing(a, r, m, te);
    if (has_cl)
        return length_framing(a, r, m);
    /* (7): "If this is a request message and none of the above are true, then the message
     * body length is zero (no message body is present)."
     * (8): "Otherwise, this is a response message without a declared message body length,
     * so the message body length is determined by the number of octets received prior to
     * the server closing the connection." */
    return (h1_framing){m->is_request ? H1_MESSAGE_DONE : H1_BODY_UNTIL_CLOSE, 0, 0};
}

h1_framing h1_sink_framing(h1_analyzer *a, h1_reader *r, h1_msg *m) {
    if (r->is_request)
        return from_fields(a, r, m);
    pending *e = a->qlen ? q_at(a, 0) : NULL;
    int method = !e || (e->absorbing && e->absorbed) ? M_LOST : e->method;
    int status = m->status;
    if (status == 101) {
        /* RFC 9110 15.2.2: "the server will switch protocols to those defined by the
         * response's Upgrade header field immediately after the empty line that terminates
         * the 101" */
        m->switch_to = 0;
        return (h1_framing){H1_SWITCHED, 0, 0};
    }
    /* RFC 9112 6.3 (1): "Any response to a HEAD request and any response with a 1xx
     * (Informational), 204 (No Content), or 304 (Not Modified) status code is always
     * terminated by the first empty line after the header fields, regardless of the header
     * fields present in the message, and thus cannot contain a message body or trailer
     * section." */
    if (method == M_HEAD || status < 200 || status == 204 || status == 304)
        return (h1_framing){H1_MESSAGE_DONE, 0, 0};
    /* RFC 9112 6.3 (2): "Any 2xx (Successful) response to a CONNECT request implies that the
     * connection will become a tunnel immediately after the empty line that concludes the
     * header fields. A client MUST ignore any Content-Length or Transfer-Encoding header
     * fields" */
    if (method == M_CONNECT && status >= 200 && status < 300) {
        m->switch_to = 1;
        return (h1_framing){H1_SWITCHED, 0, 0};
    }
    return from_fields(a, r, m);
}

/* ------------------------------------------------------------------ the public contract */

h1_analyzer *h1_new(const h1_limits *limits, h1_sink sink, void *ctx) {
    h1_analyzer *a = h1_mem_calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->limits = *limits;
    a->sink = sink;
    a->ctx = ctx;
    h1_reader_init(&a->client, a, 1);
    h1_reader_init(&a->server, a, 0);
    a->queue = h1_mem_malloc(QUEUE_CAP * sizeof *a->queue);
    if (!a->queue) {
        h1_mem_free(a);
        return NULL;
    }
    a->qcap = QUEUE_CAP;
    return a;
}

void h1_free(h1_analyzer *a) {
    if (!a)
        return;
    a->reading = NULL;
    while (a->qlen)
        q_pop_front(a);
    clear_limbo(a);
    h1_mem_free(a->queue);
    h1_reader_clear(&a->client);
    h1_reader_clear(&a->server);
    h1_mem_free(a);
}

void h1_set_sink(h1_analyzer *a, h1_sink sink, void *ctx) {
    a->sink = sink;
    a->ctx = ctx;
}

static int done(h1_analyzer *a, int rc) {
    clear_limbo(a);
    if (a->qlen == 0 && a->qcap != QUEUE_CAP) {
        pending **q = h1_mem_realloc(a->queue, QUEUE_CAP * sizeof *q);
        if (q) {
            a->queue = q;
            a->qcap = QUEUE_CAP;
            a->qhead = 0;
        }
    }
    if (rc < 0)
        a->failed = 1;
    return a->failed ? -1 : 0;
}

int h1_feed(h1_analyzer *a, int from_client, const uint8_t *data, size_t len, int64_t ts) {
    if (a->failed)
        return -1;
    return done(a, h1_reader_feed(from_client ? &a->client : &a->server, data, len, ts));
}

int h1_skip(h1_analyzer *a, int from_client, uint64_t len, int64_t ts) {
    if (a->failed)
        return -1;
    if (len == 0)
        return 0;
    return done(a, h1_reader_skip(from_client ? &a->client : &a->server, len, ts));
}

int h1_eof(h1_analyzer *a, int64_t ts) {
    (void)ts; /* messages end at the ts of the bytes that ended them */
    if (a->failed)
        return -1;
    if (a->closed)
        return 0;
    a->closed = 1;
    int rc = h1_reader_eof(&a->server); /* a close-delimited or cut response pairs first */
    if (rc >= 0)
        rc = h1_reader_eof(&a->client);
    if (rc >= 0)
        flush_awaiting(a, H1_XNOTE_NO_RESPONSE);
    return done(a, rc);
}

void h1_get_counters(const h1_analyzer *a, h1_counters *out) {
    out->dropped_pending = a->dropped_pending;
    out->interim_responses = a->interim_responses;
    out->parse_errors = a->parse_errors;
    out->ignored_bytes = a->client.ignored_bytes + a->server.ignored_bytes;
    out->discarded_bytes = a->client.discarded_bytes + a->server.discarded_bytes;
    out->lost_heads = a->client.lost_heads + a->server.lost_heads;
}

int h1_stopped(const h1_analyzer *a) { return a->stopped; }

size_t h1_memory(const h1_analyzer *a) {
    size_t n = sizeof *a + (size_t)a->qcap * sizeof(pending *);
    n += h1_reader_memory(&a->client) + h1_reader_memory(&a->server);
    for (uint32_t i = 0; i < a->qlen; i++) {
        const pending *e = q_at(a, i);
        n += sizeof *e + (e->request ? h1_msg_memory(e->request) : 0)
             + (e->response ? h1_msg_memory(e->response) : 0);
    }
    for (const pending *e = a->limbo; e; e = e->next_limbo)
        n += sizeof *e + (e->request ? h1_msg_memory(e->request) : 0)
             + (e->response ? h1_msg_memory(e->response) : 0);
    return n;
}

/* ------------------------------------------------------------------ names */

const char *h1_error_name(int code) {
    static const char *const names[H1_ERR_COUNT] = {
        [H1_ERR_BAD_REQUEST_LINE] = "bad_request_line",
        [H1_ERR_BAD_STATUS_LINE] = "bad_status_line",
        [H1_ERR_BAD_STATUS_CODE] = "bad_status_code",
        [H1_ERR_HEADER_TOO_LARGE] = "header_too_large",
        [H1_ERR_INVALID_CONTENT_LENGTH] = "invalid_content_length",
        [H1_ERR_INVALID_TRANSFER_ENCODING] = "invalid_transfer_encoding",
        [H1_ERR_BAD_CHUNK_SIZE] = "bad_chunk_size",
        [H1_ERR_BAD_CHUNK_DATA] = "bad_chunk_data",
    };
    return code > 0 && code < H1_ERR_COUNT ? names[code] : "unknown";
}

const char *h1_exchange_note_text(int note) {
    static const char *const texts[H1_XNOTE_COUNT] = {
        [H1_XNOTE_NONE] = "",
        [H1_XNOTE_REQUEST_NOT_SEEN] = "request not seen",
        [H1_XNOTE_REQUEST_LOST_IN_GAP] = "request lost in gap",
        [H1_XNOTE_RESPONSE_LOST_IN_GAP] = "response lost in gap",
        [H1_XNOTE_NO_RESPONSE] = "no response",
        [H1_XNOTE_DROPPED_PENDING] = "dropped: too many pending requests",
    };
    return note >= 0 && note < H1_XNOTE_COUNT ? texts[note] : "";
}

const char *h1_note_text(int code) {
    static const char *const texts[H1_NOTE_COUNT] = {
        [H1_NOTE_MALFORMED_FIELDS] = "malformed field lines ignored",
        [H1_NOTE_FIELDS_OVER_LIMIT] = "header fields over limit dropped",
        [H1_NOTE_TRUNCATED_AT_EOF] = "truncated at eof",
        [H1_NOTE_GAP_IN_HEADERS] = "gap in headers",
        [H1_NOTE_HEADERS_TOO_LARGE] = "headers too large",
        [H1_NOTE_GAP_IN_TRAILERS] = "gap in trailers",
        [H1_NOTE_GAP_IN_CHUNKED] = "gap in chunked framing",
        [H1_NOTE_SWITCHED_MID_MESSAGE] = "protocol switched mid-message",
        [H1_NOTE_INVALID_CONTENT_LENGTH] = "invalid content length",
        [H1_NOTE_INVALID_TRANSFER_ENCODING] = "invalid transfer encoding",
        [H1_NOTE_INVALID_CHUNKED] = "invalid chunked framing",
    };
    return code > 0 && code < H1_NOTE_COUNT ? texts[code] : "";
}
