/* h2conn_internal.h: what h2conn.c (frames) and h2conn_streams.c (streams) share. */
#ifndef L7SCOPE_H2CONN_INTERNAL_H
#define L7SCOPE_H2CONN_INTERNAL_H

#include "h2conn.h"
#include "h2frames.h"
#include "hpack.h"

/* uint32 key -> non-NULL pointer; open addressing, linear probing, backward-shift deletion. */
typedef struct {
    uint32_t *keys;
    void **vals;
    uint32_t cap, n;
} h2c_idmap;

typedef struct h2c_stream {
    uint32_t id;
    uint64_t cost; /* bytes charged to the connection's stream budget */
    h2c_message msg[2]; /* [1]: the request (client's direction), [0]: the response */
    struct h2c_stream *prev, *next; /* open streams, oldest first */
} h2c_stream;

typedef struct {
    uint8_t present, clamped;
    uint64_t limit, advertised;
} h2c_pending_size;

typedef struct {
    h2f_splitter sp;
    hp_decoder dec;
    uint8_t has_advertised; /* the last limit applied was clamped from `advertised` */
    uint64_t advertised;
    /* the header block being stitched (HEADERS / PUSH_PROMISE + CONTINUATION) */
    uint8_t in_block, block_lost, block_end_stream, block_push;
    uint32_t block_stream;
    int64_t block_ts;
    h2c_bytes fragments;
    h2c_pending_size sent[H2C_PENDING_SETTINGS]; /* this endpoint's SETTINGS, awaiting ACK */
    uint32_t sent_head, sent_n;
} h2c_dir;

/* One splitter event of the current call, its payload copied into the call's buffer. */
typedef struct {
    h2f_event ev;
    size_t payload_off;
} h2c_pending_event;

/* A decoded header block, before it is bounded and applied. */
typedef struct {
    h2c_fields fields;
    h2c_bytes octets;
    uint32_t unknown, noted;
    uint8_t unknown_kind[8];
    uint32_t unknown_index[8];
    hp_err err;
} h2c_block;

struct h2c_conn {
    h2c_limits lim;
    uint32_t max_streams;
    uint8_t abandoned;
    uint64_t counters[H2C_NCOUNTERS];
    h2c_dir dirs[2]; /* [1]: from the client */
    h2c_idmap open;  /* stream id -> h2c_stream */
    h2c_stream *oldest, *newest;
    uint32_t nopen;
    uint64_t stream_bytes;
    uint32_t *closed_ring; /* closed ids, oldest at closed_head; at most max_streams * 2 */
    uint32_t closed_cap, closed_head, closed_n;
    h2c_idmap closed_set;
    h2c_pending_event *events; /* the current call's splitter events */
    size_t nevents, events_cap;
    h2c_bytes payloads;
    h2c_block block;
    h2c_emit_fn emit;
    void *ctx;
    h2c_result rc; /* first failure of the current call */
};

/* h2conn_streams.c */
void *h2c_idmap_get(const h2c_idmap *m, uint32_t key);
int h2c_idmap_put(h2c_idmap *m, uint32_t key, void *val);
void h2c_idmap_del(h2c_idmap *m, uint32_t key);
void h2c_idmap_free(h2c_idmap *m);

void h2c_bytes_free(h2c_bytes *b);

h2c_stream *h2c_stream_get(h2c_conn *c, uint32_t id);
int h2c_is_closed(const h2c_conn *c, uint32_t id);
h2c_stream *h2c_stream_open(h2c_conn *c, uint32_t id);
void h2c_mark_closed(h2c_conn *c, uint32_t id);
void h2c_charge(h2c_conn *c, h2c_stream *s, uint64_t n);
void h2c_count(h2c_conn *c, h2c_counter which, uint64_t n);
void h2c_note(h2c_conn *c, h2c_message *m, const char *text);
void h2c_end_message(h2c_conn *c, h2c_stream *s, int from_client, int64_t ts);
void h2c_flush(h2c_conn *c, h2c_stream *s, const char *reason);
void h2c_flush_all(h2c_conn *c, const char *reason);
void h2c_shed_streams(h2c_conn *c);
void h2c_apply_block(h2c_conn *c, h2c_stream *s, int from_client, int64_t block_ts);
void h2c_streams_free(h2c_conn *c);
uint64_t h2c_field_list_size(const h2c_field *f, uint32_t n);
int h2c_add_field(h2c_message *m, h2c_fields *to, const h2c_bytes *src, const h2c_field *f);
void h2c_fail(h2c_conn *c, h2c_result rc);

#endif
