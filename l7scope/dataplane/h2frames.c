/* HTTP/2 frame splitter for one direction of a connection (RFC 9113 section 4), sans-IO C.
 *
 * Theory of operation
 * -------------------
 * A direction's byte stream is the optional client connection preface followed by frames, each
 * a 9-octet header (24-bit length, 8-bit type, 8-bit flags, 1 reserved bit + 31-bit stream id)
 * and `length` octets of payload. The splitter is a state machine driven by TRANSITIONS below:
 *
 *     PREFACE  --preface matched-->  HEADER   (client direction of a connection seen from start)
 *     HEADER   --9 octets-->         PAYLOAD  (or HEADER again for an empty payload)
 *     PAYLOAD  --payload done-->     HEADER
 *     RESYNC   --plausible header--> HEADER   (connection seen mid-way, or after a hole)
 *     any      --hole outside a DATA payload / bad preface-->  RESYNC
 *     RESYNC   --resync limit-->     ABANDONED (everything after is ignored)
 *
 * Frames are emitted whole (H2F_EV_FRAME), their payload buffered up to a bound: a DATA payload
 * never beyond `data_capture` (its length is exact), other known types up to `payload_cap`
 * (beyond that the frame is marked truncated), unknown types not at all.
 *
 * A hole (h2f_skip) inside a payload marks the frame damaged (DATA: the captured prefix stops
 * there; sizes stay exact). A hole anywhere else loses the frame boundaries: the splitter emits
 * LOST and scans for a plausible frame header (h2f_plausible_header: known type, flags defined
 * for the type, reserved bit clear, stream id and length rules of the type, length within the
 * maximum frame size), confirmed by the next header when it is already buffered. While in sync,
 * a header no conforming peer sends (h2f_conforming_header, or longer than the frame size the
 * receiver allows) loses the boundaries too; the scan restarts at the header's second octet.
 *
 * The scan is linear: a cheap byte test picks the positions that can begin a plausible header,
 * only those get the full check (counted in header_checks), and scan_pos remembers how far the
 * buffer was examined. The scan buffer holds at most scan_cap octets plus the chunk being fed
 * (beyond scan_cap a waiting candidate is taken as it is). Octets discarded while scanning are
 * counted (scan_dropped); after resync_limit of them (each non-conforming header is charged
 * H2F_NOT_CONFORMING_PENALTY more) the splitter gives up: ABANDONED, one last LOST.
 */
#include "h2frames.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t PREFACE[H2F_PREFACE_LEN + 1] = H2F_PREFACE;

/* Flags defined per frame type (RFC 9113 section 6); used only to judge plausibility. */
static const uint8_t DEFINED_FLAGS[H2F_KNOWN_TYPES] = {0x09, 0x2D, 0, 0, 0x01, 0x0C, 0x01, 0, 0,
                                                       0x04};
/* "DATA frames MUST be associated with a stream" (6.1), likewise 6.2, 6.3, 6.4, 6.6, 6.10;
 * "The stream identifier for a SETTINGS frame MUST be zero (0x00)" (6.5), likewise 6.7, 6.8. */
enum { STREAM_ANY, STREAM_REQUIRED, STREAM_ZERO };
static const uint8_t STREAM_RULE[H2F_KNOWN_TYPES] = {
    STREAM_REQUIRED, STREAM_REQUIRED, STREAM_REQUIRED, STREAM_REQUIRED, STREAM_ZERO,
    STREAM_REQUIRED, STREAM_ZERO, STREAM_ZERO, STREAM_ANY, STREAM_REQUIRED};
/* PRIORITY 5 (6.3), RST_STREAM 4 (6.4), PING 8 (6.7), WINDOW_UPDATE 4 (6.9); 0: any. */
static const uint8_t FIXED_LENGTH[H2F_KNOWN_TYPES] = {0, 0, 5, 4, 0, 0, 8, 0, 4, 0};

/* --- state table ------------------------------------------------------------------------ */

typedef enum { IN_PREFACE_MATCHED, IN_PREFACE_MISMATCH, IN_HOLE, IN_HEADER_WITH_PAYLOAD,
               IN_HEADER_EMPTY_PAYLOAD, IN_HEADER_NOT_CONFORMING, IN_PAYLOAD_DONE,
               IN_HOLE_IN_PAYLOAD, IN_HOLE_PAST_PAYLOAD, IN_HEADER_FOUND, IN_RESYNC_LIMIT,
               NINPUTS } h2f_input;

#define X -1 /* no such transition: a bug; the splitter stops (ABANDONED) rather than guess */
static const int8_t TRANSITIONS[H2F_NSTATES][NINPUTS] = {
    /*             pmatch        pmismatch     hole          hdr+payload    hdr-empty
                   not-conf      pay-done      hole-in-pay   hole-past     found     limit */
    [H2F_S_PREFACE] = {H2F_S_HEADER, H2F_S_RESYNC, H2F_S_RESYNC, X, X, X, X, X, X, X, X},
    [H2F_S_HEADER] = {X, X, H2F_S_RESYNC, H2F_S_PAYLOAD, H2F_S_HEADER, H2F_S_RESYNC, X, X, X,
                      X, X},
    [H2F_S_PAYLOAD] = {X, X, X, X, X, X, H2F_S_HEADER, H2F_S_PAYLOAD, H2F_S_RESYNC, X, X},
    [H2F_S_RESYNC] = {X, X, H2F_S_RESYNC, X, X, X, X, X, X, H2F_S_HEADER, H2F_S_ABANDONED},
    [H2F_S_ABANDONED] = {X, X, H2F_S_ABANDONED, X, X, X, X, X, X, X, X},
};
#undef X

static void go(h2f_splitter *sp, h2f_input input) {
    int8_t next = TRANSITIONS[sp->state][input];
    sp->state = next < 0 ? H2F_S_ABANDONED : (h2f_state)next;
}

static const char *const STATE_NAMES[H2F_NSTATES] = {"preface", "header", "payload", "resync",
                                                     "abandoned"};
static const char *const LOST_TEXT[H2F_NLOST] = {
    "bad connection preface", "frame header no conforming peer sends",
    "capture gap outside a frame payload", "gave up: too many octets without a frame header"};

const char *h2f_state_name(h2f_state state) { return STATE_NAMES[state]; }
const char *h2f_lost_text(h2f_lost_reason reason) { return LOST_TEXT[reason]; }

/* --- header judgements ---------------------------------------------------------------- */

static uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }

static uint32_t stream_of(const uint8_t *h) {
    return ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) & 0x7FFFFFFFu;
}

static int type_rules_hold(uint32_t length, uint8_t type, uint8_t flags, uint32_t stream_id) {
    if (STREAM_RULE[type] == STREAM_REQUIRED && stream_id == 0)
        return 0;
    if (STREAM_RULE[type] == STREAM_ZERO && stream_id != 0)
        return 0;
    if (FIXED_LENGTH[type] && FIXED_LENGTH[type] != length)
        return 0;
    if (type == H2F_SETTINGS) /* 6.5: length a multiple of 6; an ACK has an empty payload */
        return length % 6 == 0 && !((flags & 0x1) && length);
    if (type == H2F_GOAWAY) /* 6.8: last stream id and error code: 8 octets at least */
        return length >= 8;
    return 1;
}

int h2f_plausible_header(const uint8_t *h, uint32_t max_frame_size) {
    uint8_t type = h[3];
    if (type >= H2F_KNOWN_TYPES || (h[4] & ~DEFINED_FLAGS[type]) || (h[5] & 0x80))
        return 0;
    if (be24(h) > max_frame_size)
        return 0;
    return type_rules_hold(be24(h), type, h[4], stream_of(h));
}

/* RFC 9113 5.5: "Implementations MUST ignore unknown or unsupported values in all extensible
 * protocol elements", 4.1: "Flags that have no defined semantics for a particular frame type
 * MUST be ignored"; but a DATA frame on stream 0, a SETTINGS frame on a stream, a PING that is
 * not 8 octets... are connection errors no peer sends: the octets are not frames. */
int h2f_conforming_header(const uint8_t *h) {
    if (h[3] >= H2F_KNOWN_TYPES)
        return 1;
    return type_rules_hold(be24(h), h[3], h[4], stream_of(h));
}

/* Cheap test of the positions that may begin a plausible header (a superset of it). */
static int candidate(const uint8_t *h, uint8_t top0, uint8_t top1) {
    uint8_t type = h[3];
    if (h[0] > top0 || h[1] > top1 || type >= H2F_KNOWN_TYPES || (h[4] & ~DEFINED_FLAGS[type]))
        return 0;
    if (STREAM_RULE[type] == STREAM_ZERO)
        return !(h[5] | h[6] | h[7] | h[8]);
    if (h[5] & 0x80)
        return 0;
    return STREAM_RULE[type] != STREAM_REQUIRED || (h[5] | h[6] | h[7] | h[8]);
}

/* Confirmed offset from start, else -1; *next: where the next scan of this buffer may start.
 * A candidate is confirmed when the next header is buffered and plausible too, or when its
 * frame ends exactly at the end of the buffer; when the buffer ends before that can be known,
 * the scan waits there (-1) unless final. */
static int64_t scan(const uint8_t *buf, size_t end, uint32_t mfs, int final, size_t pos,
                    size_t *next, uint64_t *checks) {
    uint32_t bound = mfs < H2F_MAX_FRAME_SIZE_LIMIT ? mfs : H2F_MAX_FRAME_SIZE_LIMIT;
    uint8_t top0 = (uint8_t)(bound >> 16), top1 = bound < 0x10000 ? (uint8_t)(bound >> 8) : 0xFF;
    for (; pos + H2F_HEADER_LEN <= end; pos++) {
        if (!candidate(buf + pos, top0, top1))
            continue;
        ++*checks;
        if (!h2f_plausible_header(buf + pos, mfs))
            continue;
        size_t nxt = pos + H2F_HEADER_LEN + be24(buf + pos);
        *next = pos;
        if (nxt == end)
            return (int64_t)pos;
        if (nxt + H2F_HEADER_LEN > end)
            return final ? (int64_t)pos : -1;
        ++*checks;
        if (h2f_plausible_header(buf + nxt, mfs))
            return (int64_t)pos;
    }
    *next = pos; /* the positions before were examined; a later octet may complete one */
    return -1;
}

int64_t h2f_find_plausible_header(const uint8_t *buf, size_t len, uint32_t max_frame_size,
                                  int final, size_t start) {
    size_t next;
    uint64_t checks = 0;
    return scan(buf, len, max_frame_size, final, start, &next, &checks);
}

/* The client preface, or a plausible frame header whose length agrees with the chunk (a DATA
 * frame may continue past it) and whose successor, when present, is plausible too. */
int h2f_looks_like_http2(const uint8_t *data, size_t len) {
    if (len >= 3 && !memcmp(data, PREFACE, len < H2F_PREFACE_LEN ? len : H2F_PREFACE_LEN))
        return 1;
    if (len < H2F_HEADER_LEN || !h2f_plausible_header(data, H2F_MAX_FRAME_SIZE_LIMIT))
        return 0;
    size_t end = H2F_HEADER_LEN + (size_t)be24(data);
    if (end == len)
        return 1;
    if (end > len)
        return data[3] == H2F_DATA;
    if (end + H2F_HEADER_LEN <= len)
        return h2f_plausible_header(data + end, H2F_MAX_FRAME_SIZE_LIMIT);
    return 0;
}

/* --- buffers -------------------------------------------------------------------------- */

#define KEEP_ALLOCATED 4096 /* buffers larger than this are freed when emptied */

static void bytes_clear(h2f_bytes *b) {
    b->len = 0;
    if (b->cap > KEEP_ALLOCATED) {
        free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
}

/* --- events --------------------------------------------------------------------------- */

typedef struct {
    h2f_emit_fn emit;
    void *ctx;
    int64_t ts;
} sink;

static h2f_result lost(const sink *k, h2f_lost_reason reason) {
    h2f_event ev = {.kind = H2F_EV_LOST, .ts = k->ts, .reason = reason};
    return k->emit(k->ctx, &ev) ? H2F_ERR_SINK : H2F_OK;
}

static h2f_result finish_frame(h2f_splitter *sp, const sink *k) {
    h2f_event ev = {.kind = H2F_EV_FRAME, .ts = k->ts, .type = sp->ftype, .flags = sp->fflags,
                    .damaged = sp->damaged, .stream_id = sp->stream_id, .length = sp->flength,
                    .ts_start = sp->ts_start, .payload = sp->payload.buf,
                    .payload_len = (uint32_t)sp->payload.len};
    ev.truncated = sp->ftype != H2F_DATA && sp->ftype < H2F_KNOWN_TYPES && sp->flength > sp->keep;
    sp->in_frame = 0;
    int refused = k->emit(k->ctx, &ev);
    bytes_clear(&sp->payload); /* nothing kept between frames */
    return refused ? H2F_ERR_SINK : H2F_OK;
}

/* --- scanning while unsynchronised ----------------------------------------------------- */

static h2f_result count_dropped(h2f_splitter *sp, uint64_t dropped, int64_t penalty,
                                const sink *k) {
    sp->scan_dropped += dropped;
    sp->resync_charge += (int64_t)dropped + penalty;
    if (sp->resync_charge <= sp->resync_limit)
        return H2F_OK;
    bytes_clear(&sp->scan);
    sp->scan_pos = 0;
    h2f_result rc = lost(k, H2F_LOST_GAVE_UP);
    go(sp, IN_RESYNC_LIMIT);
    return rc;
}

static h2f_result drop_scanned(h2f_splitter *sp, const sink *k) {
    size_t dropped = sp->scan_pos;
    memmove(sp->scan.buf, sp->scan.buf + dropped, sp->scan.len - dropped);
    sp->scan.len -= dropped;
    sp->scan_pos = 0;
    return count_dropped(sp, dropped, 0, k);
}

/* Buffer octets while lost; on a confirmed frame start, hand the octets from there to *rest
 * (the caller frees rest->buf) and go back to HEADER. */
static h2f_result scan_for_header(h2f_splitter *sp, const uint8_t *data, size_t n, int final,
                                  h2f_bytes *rest, const sink *k) {
    int64_t start;
    if (dp_bytes_append(&sp->scan, data, n))
        return H2F_ERR_NOMEM;
    if (sp->scan.len > sp->scan_cap)
        final = 1; /* cannot wait any longer for a candidate to be confirmed */
    if (sp->scan.len >= H2F_PREFACE_LEN && !memcmp(sp->scan.buf, PREFACE, H2F_PREFACE_LEN)) {
        start = 0;
        sp->scan.len -= H2F_PREFACE_LEN;
        memmove(sp->scan.buf, sp->scan.buf + H2F_PREFACE_LEN, sp->scan.len);
    } else if (!sp->scan_pos && sp->scan.len <= H2F_PREFACE_LEN && !final &&
               (!sp->scan.len || !memcmp(sp->scan.buf, PREFACE, sp->scan.len))) {
        return H2F_OK; /* maybe the preface of a connection that is new after all */
    } else {
        start = scan(sp->scan.buf, sp->scan.len, sp->max_frame_size, final, sp->scan_pos,
                     &sp->scan_pos, &sp->header_checks);
    }
    if (start < 0)
        return drop_scanned(sp, k);
    h2f_result rc = count_dropped(sp, (uint64_t)start, 0, k);
    if (rc || sp->state == H2F_S_ABANDONED)
        return rc;
    h2f_event ev = {.kind = H2F_EV_RESUMED, .ts = k->ts, .skipped = (uint64_t)start};
    if (k->emit(k->ctx, &ev))
        return H2F_ERR_SINK;
    memmove(sp->scan.buf, sp->scan.buf + start, sp->scan.len - (size_t)start);
    *rest = sp->scan; /* the scan buffer becomes the octets to read on */
    rest->len -= (size_t)start;
    memset(&sp->scan, 0, sizeof sp->scan);
    sp->scan_pos = 0;
    go(sp, IN_HEADER_FOUND);
    return H2F_OK;
}

/* --- reading in sync ------------------------------------------------------------------ */

static h2f_result read_preface(h2f_splitter *sp, const uint8_t *data, size_t len, size_t *pos,
                               const sink *k) {
    size_t n = H2F_PREFACE_LEN - sp->pending_len;
    if (n > len - *pos)
        n = len - *pos;
    if (memcmp(data + *pos, PREFACE + sp->pending_len, n)) {
        /* RFC 9113 3.4: "the connection preface starts with the string
         * PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" - anything else is not (this part of) HTTP/2. */
        sp->pending_len = 0;
        go(sp, IN_PREFACE_MISMATCH);
        return lost(k, H2F_LOST_PREFACE);
    }
    memcpy(sp->pending + sp->pending_len, data + *pos, n);
    sp->pending_len += n;
    *pos += n;
    if (sp->pending_len == H2F_PREFACE_LEN) {
        sp->pending_len = 0;
        go(sp, IN_PREFACE_MATCHED);
    }
    return H2F_OK;
}

/* RFC 9113 4.2: "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame exceeds the
 * size defined in SETTINGS_MAX_FRAME_SIZE": no conforming peer sends one. Picked up mid-way,
 * the limit may have been raised before we looked: only absurd lengths are refused. */
static uint32_t length_bound(const h2f_splitter *sp) {
    if (sp->size_known || sp->max_frame_size > H2F_LENIENT_FRAME_SIZE)
        return sp->max_frame_size;
    return H2F_LENIENT_FRAME_SIZE;
}

static void start_frame(h2f_splitter *sp) {
    const uint8_t *h = sp->pending;
    sp->flength = be24(h);
    sp->ftype = h[3];
    sp->fflags = h[4];
    sp->stream_id = stream_of(h);
    sp->remaining = sp->flength;
    sp->payload.len = 0;
    sp->damaged = 0;
    sp->in_frame = 1;
    if (sp->ftype == H2F_DATA)
        sp->keep = sp->flength < sp->data_capture ? sp->flength : sp->data_capture;
    else if (sp->ftype < H2F_KNOWN_TYPES)
        sp->keep = sp->flength < sp->payload_cap ? sp->flength : sp->payload_cap;
    else
        sp->keep = 0; /* RFC 9113 5.5: "Implementations MUST ignore ... frames of unknown types" */
}

static h2f_result read_header(h2f_splitter *sp, const uint8_t *data, size_t len, size_t *pos,
                              const sink *k) {
    if (!sp->pending_len)
        sp->ts_start = k->ts;
    size_t take = H2F_HEADER_LEN - sp->pending_len;
    if (take > len - *pos)
        take = len - *pos;
    memcpy(sp->pending + sp->pending_len, data + *pos, take);
    sp->pending_len += take;
    *pos += take;
    if (sp->pending_len < H2F_HEADER_LEN)
        return H2F_OK;
    sp->pending_len = 0;
    if (be24(sp->pending) > length_bound(sp) || !h2f_conforming_header(sp->pending)) {
        sp->scan.len = 0; /* the frame may start at any later octet */
        if (dp_bytes_append(&sp->scan, sp->pending + 1, H2F_HEADER_LEN - 1))
            return H2F_ERR_NOMEM;
        sp->scan_pos = 0;
        go(sp, IN_HEADER_NOT_CONFORMING);
        h2f_result rc = lost(k, H2F_LOST_NOT_CONFORMING);
        return rc ? rc : count_dropped(sp, 1, H2F_NOT_CONFORMING_PENALTY, k);
    }
    start_frame(sp);
    if (sp->remaining) {
        go(sp, IN_HEADER_WITH_PAYLOAD);
        return H2F_OK;
    }
    go(sp, IN_HEADER_EMPTY_PAYLOAD);
    return finish_frame(sp, k);
}

static h2f_result read_payload(h2f_splitter *sp, const uint8_t *data, size_t len, size_t *pos,
                               const sink *k) {
    size_t take = len - *pos;
    if (take > sp->remaining)
        take = (size_t)sp->remaining;
    if (sp->keep > sp->payload.len && !sp->damaged) {
        size_t room = sp->keep - sp->payload.len;
        if (dp_bytes_append(&sp->payload, data + *pos, take < room ? take : room))
            return H2F_ERR_NOMEM;
    }
    sp->remaining -= take;
    *pos += take;
    if (sp->remaining)
        return H2F_OK;
    go(sp, IN_PAYLOAD_DONE);
    return finish_frame(sp, k);
}

/* Read data from the current state on; `owned` (may be NULL) is freed at the end. */
static h2f_result run(h2f_splitter *sp, const uint8_t *data, size_t len, uint8_t *owned,
                      const sink *k) {
    size_t pos = 0;
    h2f_result rc = H2F_OK;
    while (pos < len && !rc && sp->state != H2F_S_ABANDONED) {
        if (sp->state == H2F_S_HEADER) {
            rc = read_header(sp, data, len, &pos, k);
        } else if (sp->state == H2F_S_PAYLOAD) {
            rc = read_payload(sp, data, len, &pos, k);
        } else if (sp->state == H2F_S_PREFACE) {
            rc = read_preface(sp, data, len, &pos, k);
        } else {
            h2f_bytes rest = {0};
            rc = scan_for_header(sp, data + pos, len - pos, 0, &rest, k);
            if (!rest.buf)
                break;
            free(owned);
            owned = rest.buf;
            data = rest.buf;
            len = rest.len;
            pos = 0;
        }
    }
    free(owned);
    return rc;
}

/* --- public --------------------------------------------------------------------------- */

void h2f_init(h2f_splitter *sp, int expect_preface, int in_sync, uint32_t payload_cap,
              uint32_t data_capture, uint64_t scan_cap, int64_t resync_limit) {
    memset(sp, 0, sizeof *sp);
    sp->state = expect_preface ? H2F_S_PREFACE : in_sync ? H2F_S_HEADER : H2F_S_RESYNC;
    sp->max_frame_size = H2F_DEFAULT_MAX_FRAME_SIZE;
    sp->size_known = in_sync || expect_preface;
    sp->payload_cap = payload_cap;
    sp->data_capture = data_capture;
    sp->scan_cap = scan_cap;
    sp->resync_limit = resync_limit;
}

void h2f_free(h2f_splitter *sp) {
    free(sp->scan.buf);
    free(sp->payload.buf);
    memset(&sp->scan, 0, sizeof sp->scan);
    memset(&sp->payload, 0, sizeof sp->payload);
}

size_t h2f_memory(const h2f_splitter *sp) {
    return sp->pending_len + sp->scan.len + sp->payload.len;
}

h2f_result h2f_feed(h2f_splitter *sp, const uint8_t *data, size_t len, int64_t ts,
                    h2f_emit_fn emit, void *ctx) {
    sink k = {emit, ctx, ts};
    if (sp->state == H2F_S_ABANDONED)
        return H2F_OK;
    return run(sp, data, len, NULL, &k);
}

/* End of what is buffered while lost: a waiting candidate is taken as it is. */
static h2f_result flush_scan(h2f_splitter *sp, const sink *k) {
    if (sp->state != H2F_S_RESYNC || !sp->scan.len)
        return H2F_OK;
    h2f_bytes rest = {0};
    h2f_result rc = scan_for_header(sp, NULL, 0, 1, &rest, k);
    if (rc) {
        free(rest.buf);
        return rc;
    }
    return rest.buf ? run(sp, rest.buf, rest.len, rest.buf, k) : H2F_OK;
}

/* A hole inside the current payload; returns the part of it beyond the frame (0: absorbed). */
static uint64_t skip_payload(h2f_splitter *sp, uint64_t length, const sink *k, h2f_result *rc) {
    sp->damaged = 1; /* DATA: the captured prefix stops here; others: payload unusable */
    uint64_t take = length < sp->remaining ? length : sp->remaining;
    sp->remaining -= take;
    if (sp->remaining) {
        go(sp, IN_HOLE_IN_PAYLOAD);
        return 0;
    }
    *rc = finish_frame(sp, k);
    if (take == length) {
        go(sp, IN_PAYLOAD_DONE);
        return 0;
    }
    return length - take; /* the hole goes on past the frame: boundaries are lost */
}

h2f_result h2f_skip(h2f_splitter *sp, uint64_t length, int64_t ts, h2f_emit_fn emit,
                    void *ctx) {
    sink k = {emit, ctx, ts};
    h2f_result rc = flush_scan(sp, &k);
    if (rc || sp->state == H2F_S_ABANDONED)
        return rc;
    if (sp->state == H2F_S_PAYLOAD && (!skip_payload(sp, length, &k, &rc) || rc))
        return rc;
    sp->pending_len = 0;
    bytes_clear(&sp->scan);
    sp->scan_pos = 0;
    sp->in_frame = 0;
    go(sp, sp->state == H2F_S_PAYLOAD ? IN_HOLE_PAST_PAYLOAD : IN_HOLE);
    return lost(&k, H2F_LOST_GAP);
}

h2f_result h2f_finish(h2f_splitter *sp, int64_t ts, h2f_emit_fn emit, void *ctx) {
    sink k = {emit, ctx, ts};
    return flush_scan(sp, &k);
}
