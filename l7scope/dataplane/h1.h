/* h1.h: a sans-IO HTTP/1.x analyzer for one connection, in plain C (no Python).
 *
 * The caller owns the I/O: it hands the analyzer the bytes of each direction as they were
 * captured (feed), the length of holes it could not capture (skip), and the end of the
 * connection (eof), each with a monotonic timestamp. The analyzer answers through a sink
 * callback with events (an exchange, a parse error, a protocol switch) made of plain structs:
 * every string of a message is a span (offset, length) into that message's own arena, valid
 * until the callback returns. Nothing here allocates per byte; every buffer is bounded by the
 * limits given at creation (see h1_limits) and memory() reports what is held.
 *
 * Hostile bytes never crash and never produce a value that was not on the wire: they become
 * H1_EV_ERROR events, notes on the messages they touched, and counters. A non-zero return
 * from feed/skip/eof means an internal bug (or an allocation failure): the connection's
 * analysis should end there.
 */
#ifndef L7SCOPE_H1_H
#define L7SCOPE_H1_H

#include <stddef.h>
#include <stdint.h>

#define H1_MAX_CHUNK_LINE 4096u /* chunk-size line incl. extensions */
#define H1_MAX_SYNC_LINE 8192u  /* longest request line found again after garbage */
#define H1_MAX_STAMPS 64u       /* feed timestamps remembered for carried-over bytes */
#define H1_MAX_NOTES 8u         /* notes on one message (at most 5 can happen) */
#define H1_DETAIL_MAX 300u      /* bytes of a parse error's detail */

typedef struct h1_limits {
    uint32_t max_header_bytes; /* request/status line + header block */
    uint32_t max_headers;      /* header fields kept per message */
    uint32_t body_capture;     /* body prefix kept per message */
    uint32_t max_pending;      /* requests awaiting a response */
} h1_limits;

typedef struct h1_span { uint32_t off, len; } h1_span;
typedef struct h1_field { h1_span name, value; } h1_field;

/* Notes on a message (what made it partial), in the order they happened. */
enum h1_note {
    H1_NOTE_MALFORMED_FIELDS = 1, /* "<n> malformed field lines ignored" */
    H1_NOTE_FIELDS_OVER_LIMIT,    /* "<n> header fields over limit dropped" */
    H1_NOTE_TRUNCATED_AT_EOF,
    H1_NOTE_GAP_IN_HEADERS,
    H1_NOTE_HEADERS_TOO_LARGE,
    H1_NOTE_GAP_IN_TRAILERS,
    H1_NOTE_GAP_IN_CHUNKED,
    H1_NOTE_SWITCHED_MID_MESSAGE,
    H1_NOTE_INVALID_CONTENT_LENGTH,
    H1_NOTE_INVALID_TRANSFER_ENCODING,
    H1_NOTE_INVALID_CHUNKED,
    H1_NOTE_COUNT
};
typedef struct h1_msg_note { uint8_t code; uint32_t n; } h1_note_entry;

/* One request or response. Spans point into arena; has_* say whether a span is set. */
typedef struct h1_msg {
    uint8_t is_request, complete, has_method, has_path, has_version, has_authority;
    uint8_t has_upgrade, nnotes;
    uint16_t status; /* 0: none */
    int64_t start_ns, end_ns;
    uint64_t wire_bytes, body_len;
    h1_span method, path, version, authority, upgrade, body;
    h1_field *fields;   /* headers as sent, the first nfields of them */
    uint32_t nfields, nall;   /* kept / parsed (framing reads all of them) */
    h1_field *trailers;
    uint32_t ntrailers;
    h1_note_entry notes[H1_MAX_NOTES];
    /* the arena: head text, captured body, trailer text, folded values */
    uint8_t *arena;
    uint32_t arena_len, arena_cap;
    uint32_t capture_left;
    int8_t switch_to; /* -1: no switch; else 0 (101) or 1 (tunnel): see h1.c */
} h1_msg;

enum h1_exchange_note {
    H1_XNOTE_NONE = 0,
    H1_XNOTE_REQUEST_NOT_SEEN,
    H1_XNOTE_REQUEST_LOST_IN_GAP,
    H1_XNOTE_RESPONSE_LOST_IN_GAP,
    H1_XNOTE_NO_RESPONSE,
    H1_XNOTE_DROPPED_PENDING,
    H1_XNOTE_COUNT
};

enum h1_error {
    H1_ERR_BAD_REQUEST_LINE = 1,
    H1_ERR_BAD_STATUS_LINE,
    H1_ERR_BAD_STATUS_CODE,
    H1_ERR_HEADER_TOO_LARGE,
    H1_ERR_INVALID_CONTENT_LENGTH,
    H1_ERR_INVALID_TRANSFER_ENCODING,
    H1_ERR_BAD_CHUNK_SIZE,
    H1_ERR_BAD_CHUNK_DATA,
    H1_ERR_COUNT
};

enum h1_event_kind { H1_EV_EXCHANGE = 1, H1_EV_ERROR, H1_EV_SWITCHED };

typedef struct h1_event {
    uint8_t kind;
    /* H1_EV_EXCHANGE: either may be NULL (not both); H1_EV_SWITCHED: request may be NULL */
    const h1_msg *request, *response;
    uint8_t note;          /* H1_EV_EXCHANGE: enum h1_exchange_note */
    uint8_t error;         /* H1_EV_ERROR: enum h1_error */
    uint8_t from_client;   /* H1_EV_ERROR */
    const char *detail;    /* H1_EV_ERROR: latin-1 text, detail_len bytes */
    size_t detail_len;
    const char *to;        /* H1_EV_SWITCHED: "websocket", "tunnel", "h2c", ... (latin-1) */
    size_t to_len;
    const uint8_t *remainder; /* H1_EV_SWITCHED: the server's bytes after the switching head */
    size_t remainder_len;
    int64_t ts;            /* H1_EV_ERROR, H1_EV_SWITCHED */
} h1_event;

typedef void (*h1_sink)(void *ctx, const h1_event *event);

/* Counters of one connection (what counters() reports). */
typedef struct h1_counters {
    uint64_t dropped_pending, interim_responses, parse_errors, ignored_bytes,
        discarded_bytes, lost_heads;
} h1_counters;

typedef struct h1_analyzer h1_analyzer;

h1_analyzer *h1_new(const h1_limits *limits, h1_sink sink, void *ctx);
void h1_free(h1_analyzer *a);
/* The sink and its context may change between calls (a wrapper passes its event list). */
void h1_set_sink(h1_analyzer *a, h1_sink sink, void *ctx);
int h1_feed(h1_analyzer *a, int from_client, const uint8_t *data, size_t len, int64_t ts);
int h1_skip(h1_analyzer *a, int from_client, uint64_t len, int64_t ts);
int h1_eof(h1_analyzer *a, int64_t ts);
void h1_get_counters(const h1_analyzer *a, h1_counters *out);
int h1_stopped(const h1_analyzer *a);
size_t h1_memory(const h1_analyzer *a);

/* Where memory comes from (default: malloc/realloc/free); set before any analyzer exists.
 * The Python wrapper passes PyMem_Raw* so tracemalloc sees the analyzers' state. */
void h1_set_allocator(void *(*alloc)(size_t), void *(*resize)(void *, size_t),
                      void (*release)(void *));

/* Text of the enums (for the wrapper and for logs). */
const char *h1_error_name(int code);
const char *h1_exchange_note_text(int note);
const char *h1_note_text(int code); /* the counted notes are formatted by the caller */

/* Detection helpers shared with the connection table. */
int h1_looks_like_request(const uint8_t *data, size_t len);
int h1_looks_like_response(const uint8_t *data, size_t len);
extern const char *const h1_known_methods[];
extern const size_t h1_known_methods_count;
/* RFC 9110 8.6 Content-Length from one or more field values (latin-1): 1 and *out set, or 0. */
int h1_parse_content_length(const uint8_t *const *values, const size_t *lens, size_t n,
                            uint64_t *out);

/* The reader's state table, exported so tests can check it: states, steps, transitions. */
enum h1_state {
    H1_HEAD = 1, H1_LENGTH_BODY, H1_CHUNK_SIZE, H1_CHUNK_DATA, H1_CHUNK_DATA_END, H1_TRAILERS,
    H1_CLOSE_BODY, H1_RESYNC, H1_STOPPED, H1_STATE_END
};
enum h1_step {
    H1_MESSAGE_DONE = 1, H1_BODY_BY_LENGTH, H1_BODY_CHUNKED, H1_BODY_UNTIL_CLOSE, H1_SWITCHED,
    H1_CHUNK_STARTED, H1_LAST_CHUNK, H1_CHUNK_DATA_DONE, H1_CHUNK_CLOSED, H1_INVALID, H1_HOLE,
    H1_SYNCED, H1_CLOSED, H1_STEP_END
};
const char *h1_state_name(int state);
const char *h1_step_name(int step);
int h1_transition(int state, int step); /* next state, or 0 when the pair is not in the table */
int h1_state_has_handler(int state);

#endif
