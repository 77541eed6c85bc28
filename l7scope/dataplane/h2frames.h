/* HTTP/2 frame splitter for one direction of a connection (RFC 9113 section 4), sans-IO C.
 *
 * No Python.h: _h2framesmodule.c is the CPython face, tests/dataplane/fuzz_h2frames.c the
 * libFuzzer harness. The theory of operation is at the top of h2frames.c.
 *
 * Use: h2f_init() once, then h2f_feed() / h2f_skip() / h2f_finish() with an emit callback
 * that receives every event in order; h2f_free() releases the buffers. Every call returns
 * H2F_OK or an error value (allocation failure, or the callback's refusal); the state stays
 * valid for h2f_free() either way.
 */
#ifndef L7SCOPE_H2FRAMES_H
#define L7SCOPE_H2FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "dp_bytes.h"

#define H2F_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2F_PREFACE_LEN 24
#define H2F_HEADER_LEN 9
#define H2F_DEFAULT_MAX_FRAME_SIZE 16384u  /* RFC 9113 6.5.2 initial value */
#define H2F_MAX_FRAME_SIZE_LIMIT 16777215u  /* 2^24 - 1 */
#define H2F_LENIENT_FRAME_SIZE (1u << 20)   /* accepted on a connection picked up mid-way */
#define H2F_DEFAULT_RESYNC_LIMIT (256 * 1024)
#define H2F_DEFAULT_SCAN_CAP (64 * 1024)
#define H2F_NOT_CONFORMING_PENALTY 1024

enum { H2F_DATA, H2F_HEADERS, H2F_PRIORITY, H2F_RST_STREAM, H2F_SETTINGS, H2F_PUSH_PROMISE,
       H2F_PING, H2F_GOAWAY, H2F_WINDOW_UPDATE, H2F_CONTINUATION, H2F_KNOWN_TYPES };

typedef enum { H2F_S_PREFACE, H2F_S_HEADER, H2F_S_PAYLOAD, H2F_S_RESYNC, H2F_S_ABANDONED,
               H2F_NSTATES } h2f_state;

typedef enum { H2F_OK = 0, H2F_ERR_NOMEM = -1, H2F_ERR_SINK = -2 } h2f_result;

typedef enum { H2F_EV_FRAME, H2F_EV_LOST, H2F_EV_RESUMED } h2f_event_kind;

typedef enum { H2F_LOST_PREFACE, H2F_LOST_NOT_CONFORMING, H2F_LOST_GAP, H2F_LOST_GAVE_UP,
               H2F_NLOST } h2f_lost_reason;

typedef struct {
    h2f_event_kind kind;
    int64_t ts;              /* FRAME: ts_end; LOST / RESUMED: ts of the call */
    /* FRAME */
    uint8_t type, flags, damaged, truncated;
    uint32_t stream_id, length;
    int64_t ts_start;
    const uint8_t *payload;  /* valid during the callback only */
    uint32_t payload_len;
    /* LOST */
    h2f_lost_reason reason;
    /* RESUMED */
    uint64_t skipped;
} h2f_event;

typedef int (*h2f_emit_fn)(void *ctx, const h2f_event *ev); /* nonzero: stop, H2F_ERR_SINK */

typedef dp_bytes h2f_bytes;

typedef struct {
    h2f_state state;
    uint32_t max_frame_size;  /* raised by the peer's SETTINGS */
    uint8_t size_known;       /* seen from the start: SETTINGS_MAX_FRAME_SIZE is known */
    uint32_t payload_cap, data_capture;
    uint64_t scan_cap;
    int64_t resync_limit;
    uint64_t scan_dropped;    /* octets discarded while looking for a frame header */
    int64_t resync_charge;    /* scan_dropped + penalties, against resync_limit */
    uint64_t header_checks;   /* full plausibility checks made while scanning */
    uint8_t pending[H2F_PREFACE_LEN]; /* partial preface / frame header */
    size_t pending_len;
    h2f_bytes scan;
    size_t scan_pos;          /* octets of scan before this offset were examined, rejected */
    int64_t ts_start;
    uint8_t in_frame, ftype, fflags, damaged;
    uint32_t flength, stream_id;
    uint64_t remaining;
    h2f_bytes payload;
    uint32_t keep;            /* payload octets kept for the current frame */
} h2f_splitter;

void h2f_init(h2f_splitter *sp, int expect_preface, int in_sync, uint32_t payload_cap,
              uint32_t data_capture, uint64_t scan_cap, int64_t resync_limit);
void h2f_free(h2f_splitter *sp);
h2f_result h2f_feed(h2f_splitter *sp, const uint8_t *data, size_t len, int64_t ts,
                    h2f_emit_fn emit, void *ctx);
h2f_result h2f_skip(h2f_splitter *sp, uint64_t length, int64_t ts, h2f_emit_fn emit, void *ctx);
h2f_result h2f_finish(h2f_splitter *sp, int64_t ts, h2f_emit_fn emit, void *ctx);
size_t h2f_memory(const h2f_splitter *sp);

const char *h2f_state_name(h2f_state state);
const char *h2f_lost_text(h2f_lost_reason reason);

/* Header judgements, shared with detection (9 octets at header). */
int h2f_plausible_header(const uint8_t *header, uint32_t max_frame_size);
int h2f_conforming_header(const uint8_t *header);
/* Offset of the first confirmed plausible header from start, else -1 (see h2f_scan). */
int64_t h2f_find_plausible_header(const uint8_t *buf, size_t len, uint32_t max_frame_size,
                                  int final, size_t start);
int h2f_looks_like_http2(const uint8_t *data, size_t len);

#endif
