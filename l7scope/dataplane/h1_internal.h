/* h1_internal.h: what the three parts of the HTTP/1 analyzer share (not a public API).
 *   h1_text.c    bytes -> values: block ends, start lines, field lines, numbers, repr, detection
 *   h1_reader.c  one direction's message reader: the state table and its handlers
 *   h1.c         the connection: two readers, request/response pairing, events
 */
#ifndef L7SCOPE_H1_INTERNAL_H
#define L7SCOPE_H1_INTERNAL_H

#include "h1.h"

#define H1_CR 13
#define H1_LF 10

/* every allocation goes through these (h1_set_allocator picks the functions) */
void *h1_mem_malloc(size_t n);
void *h1_mem_calloc(size_t n, size_t size);
void *h1_mem_realloc(void *p, size_t n);
void h1_mem_free(void *p);

typedef struct h1_buf { uint8_t *p; size_t len, cap; } h1_buf;

int h1_buf_set(h1_buf *b, const uint8_t *a, size_t alen, const uint8_t *c, size_t clen);
void h1_buf_release(h1_buf *b, size_t keep_cap);

/* -- messages (h1_text.c) */
h1_msg *h1_msg_new(int is_request, int64_t start_ns, uint32_t capture);
void h1_msg_free(h1_msg *m);
int h1_msg_append(h1_msg *m, const uint8_t *data, size_t len, h1_span *out);
void h1_msg_note(h1_msg *m, int code, uint32_t n);
void h1_msg_fail(h1_msg *m, int code);
int h1_msg_take_body(h1_msg *m, const uint8_t *data, uint64_t count, int64_t ts);
void h1_msg_take_hole(h1_msg *m, uint64_t count, int64_t ts);
size_t h1_msg_memory(const h1_msg *m);
/* first value of a header (ASCII case-insensitive name), kept headers then trailers */
const h1_span *h1_msg_header(const h1_msg *m, const char *name);

/* -- text (h1_text.c) */
typedef struct h1_start_line {
    h1_span method, path, version; /* offsets relative to the line */
    uint16_t status;
} h1_start_line;

int h1_find_block_end(const uint8_t *buf, size_t len, size_t start, size_t *last_lf,
                      size_t *block_end);
int h1_parse_start_line(const uint8_t *line, size_t len, int is_request, h1_start_line *out);
int h1_start_prefix_plausible(const uint8_t *p, size_t len, int is_request);
/* Parse field lines arena[off, off+len) (each ending in LF) into fields and n; notes malformed
 * and over-limit counts on m. Returns -1 on allocation failure. */
int h1_parse_fields(h1_msg *m, uint32_t off, uint32_t len, uint32_t max_fields,
                    h1_field **fields, uint32_t *n);
/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
extern const uint8_t h1_tchar_table[256];
static inline int h1_is_tchar(uint8_t c) { return h1_tchar_table[c]; }
int h1_py_space(uint8_t c);
/* Python-style repr of latin-1 text (as_bytes: of a bytes object) into out; returns length */
size_t h1_repr(char *out, size_t cap, const uint8_t *p, size_t len, int as_bytes);
/* the first comma-separated member, whitespace stripped and lowered, copied into out */
size_t h1_first_token_lower(char *out, size_t cap, const uint8_t *p, size_t len);
int h1_match_method(const uint8_t *p, size_t len); /* length of a known method at p, or 0 */
int h1_sync_request_at(const uint8_t *p, size_t len);
/* Content-Length from its field values, added one by one (they must outlive the result) */
typedef struct h1_cl {
    const uint8_t *first, *ref; /* the first value; its first member, OWS stripped */
    size_t first_len, ref_len, n;
    int conflict;
} h1_cl;
void h1_cl_add(h1_cl *c, const uint8_t *value, size_t len);
int h1_cl_result(const h1_cl *c, uint64_t *out);
int h1_parse_hex(const uint8_t *p, size_t len, uint64_t *out, size_t max_digits);

/* -- the reader (h1_reader.c) */
typedef struct h1_stamp { size_t off; int64_t ts; } h1_stamp;

typedef struct h1_reader {
    struct h1_analyzer *owner;
    uint8_t is_request, state, start_line_ok;
    int64_t ts;
    uint64_t discarded_bytes, ignored_bytes, lost_heads;
    h1_buf carry;    /* bytes kept for the next feed: bounded, see the theory of operation */
    h1_buf scratch;  /* carry + new data for one feed */
    h1_stamp stamps[H1_MAX_STAMPS];
    uint32_t nstamps;
    size_t scanned;
    h1_msg *msg;
    uint64_t remaining;
    /* during one feed: where the bytes after a switching head start */
    const uint8_t *cur;
    size_t cur_len, switch_at;
} h1_reader;

void h1_reader_init(h1_reader *r, struct h1_analyzer *owner, int is_request);
void h1_reader_clear(h1_reader *r);
int h1_reader_feed(h1_reader *r, const uint8_t *data, size_t len, int64_t ts);
int h1_reader_skip(h1_reader *r, uint64_t len, int64_t ts);
int h1_reader_eof(h1_reader *r);
int h1_reader_stop(h1_reader *r);
size_t h1_reader_memory(const h1_reader *r);

/* -- what a reader tells the analyzer (h1.c) */
typedef struct h1_framing { int step; uint64_t length; int error; } h1_framing;

int h1_sink_started(struct h1_analyzer *a, h1_reader *r, h1_msg *m);
int h1_sink_finished(struct h1_analyzer *a, h1_reader *r, h1_msg *m); /* takes m */
h1_framing h1_sink_framing(struct h1_analyzer *a, h1_reader *r, h1_msg *m);
void h1_sink_error(struct h1_analyzer *a, h1_reader *r, int code, const char *detail,
                   size_t len);
int h1_sink_sync_lost(struct h1_analyzer *a, h1_reader *r, int had_message);
const h1_limits *h1_limits_of(const struct h1_analyzer *a);

#endif
