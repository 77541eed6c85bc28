/* HTTP/2 and gRPC exchange analyzer for one connection (RFC 9113, RFC 7541), sans-IO C.
 *
 * No Python.h: _h2module.c is the CPython face, tests/dataplane/fuzz_h2conn.c the libFuzzer
 * harness. The theory of operation is at the top of h2conn.c (frames, header blocks,
 * SETTINGS, GOAWAY) and h2conn_streams.c (streams, messages, exchanges, bounds).
 *
 * Use: h2c_new() once per connection, then h2c_feed() / h2c_skip() / h2c_eof() with an emit
 * callback that receives the exchanges and parse errors in order; h2c_free() at the end.
 * Every call returns H2C_OK or an error value (allocation failure, or the callback's
 * refusal); the analyzer stays valid for h2c_free() either way.
 */
#ifndef L7SCOPE_H2CONN_H
#define L7SCOPE_H2CONN_H

#include <stddef.h>
#include <stdint.h>

#include "dp_bytes.h"

#define H2C_CONNECTION_OVERHEAD 4096 /* approximate bytes of an analyzer with nothing held */
#define H2C_STREAM_OVERHEAD 512      /* approximate bytes of one open stream before content */
#define H2C_CLOSED_ID_COST 72        /* one remembered closed stream id */
#define H2C_MAX_ACCEPTED_TABLE_SIZE 65536u /* largest SETTINGS_HEADER_TABLE_SIZE followed */
#define H2C_DEFAULT_MAX_STREAM_BYTES (1024u * 1024u)
#define H2C_MAX_NOTES 16        /* notes a message collects (each text once) */
#define H2C_NOTE_SLOTS 32       /* room for an upgraded request's notes as well */
#define H2C_PENDING_SETTINGS 8  /* SETTINGS awaiting the peer's ACK, per direction */
#define H2C_ENTRY_OVERHEAD 32   /* RFC 9113 6.5.2 / RFC 7541 4.1: name + value + 32 */

typedef enum { H2C_OK = 0, H2C_ERR_NOMEM = -1, H2C_ERR_SINK = -2 } h2c_result;

/* Counters, in the order of http2.COUNTER_NAMES. */
typedef enum {
    H2C_DROPPED_STREAMS, H2C_STREAMS_SHED_MEMORY, H2C_STREAMS_WITHOUT_HEADERS,
    H2C_HPACK_RESETS, H2C_HPACK_UNKNOWN_HEADERS, H2C_HPACK_TABLE_SIZE_CLAMPED,
    H2C_HEADER_LISTS_TRUNCATED, H2C_RESYNC_ABANDONED, H2C_NCOUNTERS
} h2c_counter;

/* ParseError codes (protocols/base.py ParseErrorCode). */
typedef enum {
    H2C_E_RESYNC, H2C_E_RESYNC_ABANDONED, H2C_E_FRAMING_LOST, H2C_E_CONTINUATION_EXPECTED,
    H2C_E_CONTINUATION_UNEXPECTED, H2C_E_HEADER_BLOCK, H2C_E_BAD_PADDING, H2C_NERRORS
} h2c_error;

extern const char *const h2c_error_code[H2C_NERRORS];
extern const char *const h2c_counter_name[H2C_NCOUNTERS];

typedef struct {
    uint32_t off, len;
} h2c_span;

/* One field line. Its text is the octets as UTF-8 when they are valid UTF-8, else as
 * latin-1; *_chars is the length of that text (what header list sizes count). */
typedef struct {
    h2c_span name, value;
    uint32_t name_chars, value_chars;
    uint8_t name_utf8, value_utf8;
} h2c_field;

typedef dp_bytes h2c_bytes;

typedef struct {
    h2c_field *items;
    uint32_t n, cap;
} h2c_fields;

/* One direction of one stream while it is being seen (octets of fields and notes in arena). */
typedef struct {
    h2c_fields headers, trailers;
    h2c_span notes[H2C_NOTE_SLOTS];
    uint32_t nnotes;
    h2c_bytes arena, body;
    uint64_t body_len, wire_bytes;
    int64_t first_ns, start_ns, end_ns;
    uint8_t headers_seen, data_seen, ended, body_prefix_open;
} h2c_message;

/* What an exchange's message is, as HttpMessage shows it. */
typedef struct {
    const h2c_message *m;
    uint8_t is_request;
    int64_t start_ns;
    int32_t method, path, authority, status_raw; /* index in m->headers of the last such
                                                  * pseudo-header, or -1 */
    int status;                  /* RFC 9110 3DIGIT 100..999, or 0 */
    uint8_t headers_not_seen;    /* a response of DATA only: note it */
} h2c_msg_view;

typedef enum { H2C_EV_EXCHANGE, H2C_EV_ERROR } h2c_event_kind;

typedef struct {
    h2c_event_kind kind;
    /* EXCHANGE */
    uint32_t stream_id;
    uint8_t grpc;
    const h2c_msg_view *request, *response; /* NULL: not seen */
    const char *notes[2];
    uint32_t nnotes;
    /* ERROR */
    h2c_error code;
    const char *detail;
    uint8_t from_client;
    int64_t ts;
} h2c_event;

typedef int (*h2c_emit_fn)(void *ctx, const h2c_event *ev); /* nonzero: stop (H2C_ERR_SINK) */

typedef struct {
    uint32_t max_header_bytes, max_headers, body_capture, max_pending;
    uint64_t max_stream_bytes;
} h2c_limits;

typedef struct h2c_conn h2c_conn;

/* An h2c request (RFC 9113 3.1 / RFC 7540 3.2: the HTTP/1.1 request before an upgrade is
 * stream 1). Fields are UTF-8 octets. */
typedef struct {
    const uint8_t *const *names, *const *values;
    const uint32_t *name_lens, *value_lens;
    uint32_t nfields;
    const uint8_t *const *notes;
    const uint32_t *note_lens;
    uint32_t nnotes;
    const uint8_t *body;
    uint32_t body_len_kept;
    uint64_t body_len, wire_bytes;
    int64_t start_ns, end_ns;
} h2c_upgrade;

h2c_conn *h2c_new(const h2c_limits *limits, int seen_from_start);
void h2c_free(h2c_conn *c);
h2c_result h2c_feed(h2c_conn *c, int from_client, const uint8_t *data, size_t len, int64_t ts,
                    h2c_emit_fn emit, void *ctx);
h2c_result h2c_skip(h2c_conn *c, int from_client, uint64_t length, int64_t ts, h2c_emit_fn emit,
                    void *ctx);
h2c_result h2c_eof(h2c_conn *c, int64_t ts, h2c_emit_fn emit, void *ctx);
h2c_result h2c_upgraded(h2c_conn *c, const h2c_upgrade *request);

size_t h2c_memory(const h2c_conn *c);
const uint64_t *h2c_counters(const h2c_conn *c);
int h2c_abandoned(const h2c_conn *c);
/* Per direction (from_client 1: the client's): the HPACK table's size (RFC 7541 4.1), its
 * SETTINGS bound, and the frame size the splitter accepts. */
uint64_t h2c_table_size(const h2c_conn *c, int from_client);
uint64_t h2c_max_table_size(const h2c_conn *c, int from_client);
uint32_t h2c_max_frame_size(const h2c_conn *c, int from_client);

/* Text helpers shared with the face. */
int h2c_utf8_chars(const uint8_t *s, size_t n, uint32_t *chars); /* 1: valid UTF-8 */

#endif
