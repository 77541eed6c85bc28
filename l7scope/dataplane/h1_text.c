/* h1_text.c: HTTP/1 bytes -> values, by explicit rules on ASCII with bounded lengths.
 *
 * Everything here is a pure function of its input (plus the message arena it fills): the
 * end of a header block, a start line, field lines, Content-Length and chunk sizes, and the
 * detection of a request or response start. Captured bytes are written by anyone, so every
 * scan is bounded by the length it is given and every number by a digit count.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h1_internal.h"

/* RFC 9110 9 and its registry, WebDAV, CalDAV, UPnP and others seen in the field. */
const char *const h1_known_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT",
    "MKCALENDAR", "MKACTIVITY", "CHECKOUT", "MERGE", "BIND", "UNBIND", "REBIND", "ACL",
    "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PURGE", "LINK", "UNLINK",
};
const size_t h1_known_methods_count = sizeof h1_known_methods / sizeof h1_known_methods[0];

/* ------------------------------------------------------------------ memory */

static void *(*alloc_fn)(size_t) = malloc;
static void *(*resize_fn)(void *, size_t) = realloc;
static void (*release_fn)(void *) = free;

void h1_set_allocator(void *(*alloc)(size_t), void *(*resize)(void *, size_t),
                      void (*release)(void *)) {
    alloc_fn = alloc;
    resize_fn = resize;
    release_fn = release;
}

void *h1_mem_malloc(size_t n) { return alloc_fn(n ? n : 1); }
void *h1_mem_realloc(void *p, size_t n) { return resize_fn(p, n ? n : 1); }
void h1_mem_free(void *p) {
    if (p)
        release_fn(p);
}
void *h1_mem_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = h1_mem_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

/* ------------------------------------------------------------------ buffers and messages */

/* b = a + c, in a buffer of exactly that size (a may point into b's own bytes) */
int h1_buf_set(h1_buf *b, const uint8_t *a, size_t alen, const uint8_t *c, size_t clen) {
    if (alen > SIZE_MAX - clen)
        return -1;
    size_t need = alen + clen;
    int inside = b->p && a >= b->p && a < b->p + b->cap;
    if (inside)
        memmove(b->p, a, alen);
    if (need != b->cap) {
        uint8_t *q = h1_mem_realloc(b->p, need);
        if (!q)
            return -1;
        b->p = q;
        b->cap = need;
    }
    if (!inside && alen)
        memcpy(b->p, a, alen);
    if (clen)
        memcpy(b->p + alen, c, clen);
    b->len = need;
    return 0;
}

/* Empty the buffer; give its memory back when it holds more than keep_cap bytes. */
void h1_buf_release(h1_buf *b, size_t keep_cap) {
    b->len = 0;
    if (b->cap > keep_cap) {
        h1_mem_free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

h1_msg *h1_msg_new(int is_request, int64_t start_ns, uint32_t capture) {
    h1_msg *m = h1_mem_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->is_request = (uint8_t)is_request;
    m->start_ns = m->end_ns = start_ns;
    m->complete = 1;
    m->capture_left = capture;
    m->switch_to = -1;
    return m;
}

void h1_msg_free(h1_msg *m) {
    if (!m)
        return;
    h1_mem_free(m->arena);
    h1_mem_free(m->fields);
    h1_mem_free(m->trailers);
    h1_mem_free(m);
}

/* Arena growth: the head is copied once at its exact size; later appends (body capture,
 * trailers, folded values) double the arena but never past what the capture can still add. */
static int reserve(h1_msg *m, size_t len) {
    size_t need = (size_t)m->arena_len + len;
    if (len > UINT32_MAX || need > UINT32_MAX)
        return -1;
    if (need <= m->arena_cap)
        return 0;
    size_t cap = m->arena_cap ? (size_t)m->arena_cap * 2 : need;
    size_t most = need + (m->capture_left > len ? m->capture_left - len : 0);
    cap = cap < need ? need : cap > most ? most : cap;
    cap = cap > UINT32_MAX ? UINT32_MAX : cap;
    uint8_t *q = h1_mem_realloc(m->arena, cap);
    if (!q)
        return -1;
    m->arena = q;
    m->arena_cap = (uint32_t)cap;
    return 0;
}

int h1_msg_append(h1_msg *m, const uint8_t *data, size_t len, h1_span *out) {
    if (reserve(m, len))
        return -1;
    if (len)
        memcpy(m->arena + m->arena_len, data, len);
    if (out) {
        out->off = m->arena_len;
        out->len = (uint32_t)len;
    }
    m->arena_len += (uint32_t)len;
    return 0;
}

void h1_msg_note(h1_msg *m, int code, uint32_t n) {
    if (m->nnotes < H1_MAX_NOTES) {
        m->notes[m->nnotes].code = (uint8_t)code;
        m->notes[m->nnotes].n = n;
        m->nnotes++;
    }
}

void h1_msg_fail(h1_msg *m, int code) {
    m->complete = 0;
    h1_msg_note(m, code, 0);
}

int h1_msg_take_body(h1_msg *m, const uint8_t *data, uint64_t count, int64_t ts) {
    m->body_len += count;
    m->wire_bytes += count;
    m->end_ns = ts;
    if (m->capture_left == 0 || count == 0)
        return 0;
    uint32_t keep = count < m->capture_left ? (uint32_t)count : m->capture_left;
    if (m->body.len == 0)
        m->body.off = m->arena_len; /* nothing else is appended while a body is read */
    if (h1_msg_append(m, data, keep, NULL))
        return -1;
    m->body.len += keep;
    m->capture_left -= keep;
    return 0;
}

/* Body bytes that were not captured: counted, and the captured prefix ends here. */
void h1_msg_take_hole(h1_msg *m, uint64_t count, int64_t ts) {
    m->body_len += count;
    m->wire_bytes += count;
    m->end_ns = ts;
    m->capture_left = 0;
}

size_t h1_msg_memory(const h1_msg *m) {
    return sizeof *m + m->arena_cap + (size_t)m->nall * sizeof(h1_field)
           + (size_t)m->ntrailers * sizeof(h1_field);
}

static int ascii_lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int name_is(const uint8_t *p, size_t len, const char *name) {
    size_t n = strlen(name);
    if (len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(p[i]) != name[i])
            return 0;
    return 1;
}

const h1_span *h1_msg_header(const h1_msg *m, const char *name) {
    for (uint32_t i = 0; i < m->nfields; i++)
        if (name_is(m->arena + m->fields[i].name.off, m->fields[i].name.len, name))
            return &m->fields[i].value;
    for (uint32_t i = 0; i < m->ntrailers; i++)
        if (name_is(m->arena + m->trailers[i].name.off, m->trailers[i].name.len, name))
            return &m->trailers[i].value;
    return NULL;
}

/* ------------------------------------------------------------------ character classes */

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
const uint8_t h1_tchar_table[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* a request-target octet as we accept it: visible ASCII or obs-text (RFC 9112 3.2) */
static int is_target(uint8_t c) { return (c >= 0x21 && c <= 0x7e) || c >= 0x80; }
static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static int is_sp_ht(uint8_t c) { return c == ' ' || c == '\t'; }

/* what str.strip() removes from latin-1 text */
int h1_py_space(uint8_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0;
}

static uint8_t latin1_lower(uint8_t c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7))
        return (uint8_t)(c + 32);
    return c;
}

/* ------------------------------------------------------------------ head structure */

/* RFC 9112 2.2: "a recipient MAY recognize a single LF as a line terminator and ignore any
 * preceding CR", so the block ends at LF CRLF or at LF LF, whichever comes first.
 * Sets the index of the LF ending the last field line and the index after the empty line. */
int h1_find_block_end(const uint8_t *buf, size_t len, size_t start, size_t *last_lf,
                      size_t *block_end) {
    size_t i = start;
    while (i < len) {
        const uint8_t *lf = memchr(buf + i, H1_LF, len - i);
        if (!lf)
            return 0;
        i = (size_t)(lf - buf);
        if (i + 1 < len && buf[i + 1] == H1_LF) {
            *last_lf = i;
            *block_end = i + 2;
            return 1;
        }
        if (i + 2 < len && buf[i + 1] == H1_CR && buf[i + 2] == H1_LF) {
            *last_lf = i;
            *block_end = i + 3;
            return 1;
        }
        i++;
    }
    return 0;
}

/* RFC 9112 3: request-line = method SP request-target SP HTTP-version (the line has no CR) */
static int request_line(const uint8_t *p, size_t len, h1_start_line *out) {
    size_t i = 0;
    while (i < len && h1_is_tchar(p[i]))
        i++;
    if (i == 0 || i >= len || p[i] != ' ')
        return H1_ERR_BAD_REQUEST_LINE;
    size_t t = i + 1, j = t;
    while (j < len && is_target(p[j]))
        j++;
    /* RFC 9112 2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT (we read HTTP/1.x only) */
    if (j == t || j >= len || p[j] != ' ' || len - j - 1 != 8
        || memcmp(p + j + 1, "HTTP/1.", 7) != 0 || !is_digit(p[len - 1]))
        return H1_ERR_BAD_REQUEST_LINE;
    out->method = (h1_span){0, (uint32_t)i};
    out->path = (h1_span){(uint32_t)t, (uint32_t)(j - t)};
    out->version = (h1_span){(uint32_t)(j + 1), 8};
    out->status = 0;
    return 0;
}

/* RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
 * (the SP before an empty reason-phrase is sometimes left out; we accept that) */
static int status_line(const uint8_t *p, size_t len, h1_start_line *out) {
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !is_digit(p[7]) || p[8] != ' '
        || !is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11])
        || (len > 12 && p[12] != ' '))
        return H1_ERR_BAD_STATUS_LINE;
    for (size_t i = 12; i < len; i++)
        if (p[i] == H1_LF)
            return H1_ERR_BAD_STATUS_LINE;
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    /* RFC 9110 15: "All valid status codes are within the range of 100 to 599, inclusive." */
    if (status < 100 || status > 599)
        return H1_ERR_BAD_STATUS_CODE;
    out->version = (h1_span){0, 8};
    out->method = out->path = (h1_span){0, 0};
    out->status = (uint16_t)status;
    return 0;
}

/* A start line without its LF (one trailing CR is dropped): 0 or an h1_error code. */
int h1_parse_start_line(const uint8_t *line, size_t len, int is_request, h1_start_line *out) {
    if (len && line[len - 1] == H1_CR)
        len--;
    return is_request ? request_line(line, len, out) : status_line(line, len, out);
}

/* Could these first bytes (no LF yet) begin a request-line / status-line? */
int h1_start_prefix_plausible(const uint8_t *p, size_t len, int is_request) {
    if (!is_request)
        return memcmp(p, "HTTP/1.", len < 7 ? len : 7) == 0;
    size_t n = len < 33 ? len : 33, k = 0;
    while (k < n && h1_is_tchar(p[k]))
        k++;
    if (k == 0)
        return 0;
    if (k < n)
        return p[k] == ' ';
    return k <= 32; /* a method of at most 32 tchars, then the end of what we have */
}

/* ------------------------------------------------------------------ field lines */

static int push_field(h1_field **fields, uint32_t *n, uint32_t *cap, h1_field f) {
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : 16;
        h1_field *q = h1_mem_realloc(*fields, (size_t)c * sizeof *q);
        if (!q)
            return -1;
        *fields = q;
        *cap = c;
    }
    (*fields)[(*n)++] = f;
    return 0;
}

static h1_span strip_sp_ht(const uint8_t *arena, h1_span s) {
    while (s.len && is_sp_ht(arena[s.off])) {
        s.off++;
        s.len--;
    }
    while (s.len && is_sp_ht(arena[s.off + s.len - 1]))
        s.len--;
    return s;
}

/* RFC 9112 5.2: "A user agent that receives an obs-fold in a response message ... MUST
 * replace each received obs-fold with one or more SP octets". The joined value goes to the end
 * of the arena once; further folds of the same field extend it there (linear, not a copy per
 * fold). */
static int fold(h1_msg *m, h1_field *last, h1_span line) {
    h1_span more = strip_sp_ht(m->arena, line);
    if (more.len == 0)
        return 0;
    if (last->value.len == 0) {
        last->value = more;
        return 0;
    }
    uint32_t off = last->value.off, len = last->value.len;
    int at_end = off + len == m->arena_len;
    size_t add = (at_end ? 0 : (size_t)len) + 1 + more.len;
    if (reserve(m, add)) /* may move the arena: offsets only from here */
        return -1;
    uint8_t *end = m->arena + m->arena_len;
    if (!at_end) {
        memcpy(end, m->arena + off, len);
        end += len;
        off = m->arena_len;
    }
    *end++ = ' ';
    memcpy(end, m->arena + more.off, more.len); /* more lies before the old end: no overlap */
    m->arena_len += (uint32_t)add;
    last->value = (h1_span){off, len + 1 + more.len};
    return 0;
}

/* RFC 9112 5: field-line = field-name ":" OWS field-value OWS; 1 if the line is one. */
static int field_line(const uint8_t *arena, h1_span line, h1_field *out) {
    const uint8_t *p = arena + line.off;
    uint32_t i = 0, n = line.len;
    while (i < n && h1_is_tchar(p[i]))
        i++;
    /* RFC 9112 5.1: "No whitespace is allowed between the field name and colon." */
    if (i == 0 || i >= n || p[i] != ':')
        return 0;
    uint32_t v = i + 1;
    while (v < n && is_sp_ht(p[v]))
        v++;
    const uint8_t *cr = memchr(p + v, H1_CR, n - v);
    uint32_t e = cr ? (uint32_t)(cr - p) : n;
    if (e < n && e != n - 1)
        return 0; /* a CR inside the value */
    while (e > v && is_sp_ht(p[e - 1]))
        e--;
    out->name = (h1_span){line.off, i};
    out->value = (h1_span){line.off + v, e - v};
    return 1;
}

int h1_parse_fields(h1_msg *m, uint32_t off, uint32_t len, uint32_t max_fields,
                    h1_field **fields, uint32_t *n) {
    uint32_t cap = 0, bad = 0, pos = off, end = off + len;
    *fields = NULL;
    *n = 0;
    while (pos < end) {
        const uint8_t *lf = memchr(m->arena + pos, H1_LF, end - pos);
        uint32_t le = lf ? (uint32_t)(lf - m->arena) : end;
        h1_span line = {pos, le - pos};
        if (line.len && m->arena[line.off + line.len - 1] == H1_CR)
            line.len--;
        pos = le + 1;
        h1_field f;
        if (line.len && is_sp_ht(m->arena[line.off]) && *n) {
            if (fold(m, &(*fields)[*n - 1], line))
                return -1;
        } else if (field_line(m->arena, line, &f)) {
            if (push_field(fields, n, &cap, f))
                return -1;
        } else {
            bad++;
        }
    }
    if (bad)
        h1_msg_note(m, H1_NOTE_MALFORMED_FIELDS, bad);
    if (*n > max_fields)
        h1_msg_note(m, H1_NOTE_FIELDS_OVER_LIMIT, *n - max_fields);
    return 0;
}

/* ------------------------------------------------------------------ numbers */

static h1_span strip_py(const uint8_t *p, h1_span s) {
    while (s.len && h1_py_space(p[s.off])) {
        s.off++;
        s.len--;
    }
    while (s.len && h1_py_space(p[s.off + s.len - 1]))
        s.len--;
    return s;
}

static int decimal(const uint8_t *p, size_t len, uint64_t *out) {
    if (len == 0 || len > 18)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(p[i]))
            return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 1;
}

/* RFC 9110 8.6: a recipient of a list like "42, 42" "MAY either reject the message as invalid
 * or replace that invalid field value with a single instance of the decimal value, as long as
 * all members are identical"; we do the latter, also across repeated fields. Members are
 * compared with their OWS (SP / HTAB) stripped; a length is 1*DIGIT in ASCII, at most 18 digits
 * (the value fits in 63 bits). */
void h1_cl_add(h1_cl *c, const uint8_t *value, size_t len) {
    if (c->n++ == 0) {
        c->first = value;
        c->first_len = len;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && value[i] != ',')
            continue;
        h1_span s = strip_sp_ht(value, (h1_span){(uint32_t)start, (uint32_t)(i - start)});
        if (!c->ref) {
            c->ref = value + s.off;
            c->ref_len = s.len;
        } else if (s.len != c->ref_len || memcmp(value + s.off, c->ref, s.len)) {
            c->conflict = 1; /* members differ */
        }
        start = i + 1;
    }
}

int h1_cl_result(const h1_cl *c, uint64_t *out) {
    if (c->n == 1 && decimal(c->first, c->first_len, out))
        return 1; /* the usual case */
    return c->ref && !c->conflict && decimal(c->ref, c->ref_len, out);
}

int h1_parse_content_length(const uint8_t *const *values, const size_t *lens, size_t n,
                            uint64_t *out) {
    h1_cl c = {0};
    for (size_t i = 0; i < n; i++)
        h1_cl_add(&c, values[i], lens[i]);
    return h1_cl_result(&c, out);
}

/* RFC 9112 7.1: chunk-size = 1*HEXDIG, at most max_digits of them */
int h1_parse_hex(const uint8_t *p, size_t len, uint64_t *out, size_t max_digits) {
    if (len == 0 || len > max_digits)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        int d = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 1;
}

/* ------------------------------------------------------------------ text for people */

/* Python's repr() of latin-1 text or of bytes, so details read as they always did. */
size_t h1_repr(char *out, size_t cap, const uint8_t *p, size_t len, int as_bytes) {
    static const char hex[] = "0123456789abcdef";
    int has_sq = memchr(p, '\'', len) != NULL, has_dq = memchr(p, '"', len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    size_t o = 0;
    if (cap < 8)
        return 0;
    if (as_bytes)
        out[o++] = 'b';
    out[o++] = q;
    for (size_t i = 0; i < len && o + 6 < cap; i++) {
        uint8_t c = p[i];
        if (c == '\\' || c == (uint8_t)q) {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\t' || c == '\n' || c == '\r') {
            out[o++] = '\\';
            out[o++] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && (as_bytes || c <= 0xa0 || c == 0xad))) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = q;
    return o;
}

/* value.split(",")[0].strip().lower() into out (at most cap bytes) */
size_t h1_first_token_lower(char *out, size_t cap, const uint8_t *p, size_t len) {
    const uint8_t *comma = memchr(p, ',', len);
    h1_span s = strip_py(p, (h1_span){0, (uint32_t)(comma ? (size_t)(comma - p) : len)});
    size_t n = s.len < cap ? s.len : cap;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)latin1_lower(p[s.off + i]);
    return n;
}

/* ------------------------------------------------------------------ detection */

int h1_match_method(const uint8_t *p, size_t len) {
    static const char firsts[] = "ABCDGHLMNOPRSTU";
    if (len == 0 || !memchr(firsts, p[0], sizeof firsts - 1))
        return 0;
    for (size_t i = 0; i < h1_known_methods_count; i++) {
        size_t n = strlen(h1_known_methods[i]);
        if (n < len && memcmp(p, h1_known_methods[i], n) == 0 && p[n] == ' ')
            return (int)n;
    }
    return 0;
}

/* A whole request line with a known method at p: method SP target SP HTTP/1.x CRLF / LF */
int h1_sync_request_at(const uint8_t *p, size_t len) {
    size_t i = (size_t)h1_match_method(p, len);
    if (i == 0)
        return 0;
    size_t t = ++i;
    while (i < len && is_target(p[i]))
        i++;
    if (i == t || len - i < 10 || memcmp(p + i, " HTTP/1.", 8) != 0 || !is_digit(p[i + 8]))
        return 0;
    i += 9;
    if (p[i] == H1_CR)
        i++;
    return i < len && p[i] == H1_LF;
}

/* data begins with a known method, SP and a request-target; if the first line is whole it
 * must be a complete HTTP/1.x request-line */
int h1_looks_like_request(const uint8_t *data, size_t len) {
    size_t m = (size_t)h1_match_method(data, len);
    if (m == 0 || m + 1 >= len || !is_target(data[m + 1]))
        return 0;
    const uint8_t *lf = memchr(data, H1_LF, len);
    if (!lf) {
        size_t spaces = 0, third = 0;
        for (size_t i = 0; i < len; i++)
            if (data[i] == ' ' && ++spaces == 2)
                third = i + 1;
        if (spaces < 2)
            return 1;
        size_t n = len - third < 7 ? len - third : 7;
        return spaces == 2 && memcmp(data + third, "HTTP/1.0", n) == 0;
    }
    size_t nl = (size_t)(lf - data), l = nl;
    if (l && data[l - 1] == H1_CR)
        l--;
    h1_start_line sl;
    return request_line(data, l, &sl) == 0;
}

/* data begins with "HTTP/1.<digit> <3 digits>" followed by SP, CR, LF or nothing */
int h1_looks_like_response(const uint8_t *data, size_t len) {
    if (len < 12 || memcmp(data, "HTTP/1.", 7) != 0 || !is_digit(data[7]) || data[8] != ' '
        || !is_digit(data[9]) || !is_digit(data[10]) || !is_digit(data[11]))
        return 0;
    return len == 12 || data[12] == ' ' || data[12] == H1_CR || data[12] == H1_LF;
}
