/* hpack.c: HPACK header block decoding (RFC 7541); see hpack.h and docs/hpack.md.
 *
 * A block is a sequence of representations told apart by the first octet (6): indexed field
 * 1xxxxxxx, literal with incremental indexing 01xxxxxx, dynamic table size update 001xxxxx,
 * literal never indexed 0001xxxx, literal without indexing 0000xxxx. Indexes 1..61 name the
 * static table, 62+k the k-th dynamic entry, newest first (2.3.3). The dynamic table is a ring
 * of entries; inserting evicts from the old end until the 4.1 sizes fit the capacity (4.4).
 */
#include "hpack.h"

#include <stdlib.h>
#include <string.h>

#include "hpack_huffman_table.h"

const char *const hp_err_code[HP_ERR_COUNT] = {
    "ok", "truncated", "integer_overflow", "huffman", "index_zero", "bad_index",
    "late_size_update", "size_update_too_large", "no_memory", "aborted",
};

/* RFC 7541 Appendix A, index 1..61 (index 0 unused). */
static const char *const STATIC_TABLE[HP_STATIC_COUNT + 1][2] = {
    {"", ""},
    {":authority", ""}, {":method", "GET"}, {":method", "POST"}, {":path", "/"},
    {":path", "/index.html"}, {":scheme", "http"}, {":scheme", "https"}, {":status", "200"},
    {":status", "204"}, {":status", "206"}, {":status", "304"}, {":status", "400"},
    {":status", "404"}, {":status", "500"}, {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"}, {"accept-language", ""}, {"accept-ranges", ""},
    {"accept", ""}, {"access-control-allow-origin", ""}, {"age", ""}, {"allow", ""},
    {"authorization", ""}, {"cache-control", ""}, {"content-disposition", ""},
    {"content-encoding", ""}, {"content-language", ""}, {"content-length", ""},
    {"content-location", ""}, {"content-range", ""}, {"content-type", ""}, {"cookie", ""},
    {"date", ""}, {"etag", ""}, {"expect", ""}, {"expires", ""}, {"from", ""}, {"host", ""},
    {"if-match", ""}, {"if-modified-since", ""}, {"if-none-match", ""}, {"if-range", ""},
    {"if-unmodified-since", ""}, {"last-modified", ""}, {"link", ""}, {"location", ""},
    {"max-forwards", ""}, {"proxy-authenticate", ""}, {"proxy-authorization", ""},
    {"range", ""}, {"referer", ""}, {"refresh", ""}, {"retry-after", ""}, {"server", ""},
    {"set-cookie", ""}, {"strict-transport-security", ""}, {"transfer-encoding", ""},
    {"user-agent", ""}, {"vary", ""}, {"via", ""}, {"www-authenticate", ""},
};

void hp_static(uint32_t index, const char **name, uint32_t *name_len, const char **value,
               uint32_t *value_len) {
    *name = STATIC_TABLE[index][0];
    *value = STATIC_TABLE[index][1];
    *name_len = (uint32_t)strlen(*name);
    *value_len = (uint32_t)strlen(*value);
}

/* ---- primitives: integers (5.1), strings (5.2), Huffman (Appendix B) ------------------- */

typedef struct cursor { const uint8_t *p; size_t pos, len; } cursor;

/* Integer of 5.1 whose N-bit prefix is full (value prefix_max); c->pos is after the prefix.
 * "if the integer value is large enough to fill the prefix, ... the integer is encoded using
 *  a list of one or more octets ... the most significant bit of each octet is used as a
 *  continuation flag." */
static hp_err read_integer(cursor *c, uint64_t prefix_max, uint64_t *out) {
    uint64_t value = prefix_max;
    unsigned shift = 0;
    for (;;) {
        if (c->pos >= c->len)
            return HP_TRUNCATED;
        uint8_t octet = c->p[c->pos++];
        uint64_t bits = octet & 0x7F;
        if (bits) {
            if (shift >= 32) /* the addend alone passes 2**32-1 */
                return HP_INTEGER_OVERFLOW;
            value += bits << shift;
            if (value > HP_MAX_INTEGER)
                return HP_INTEGER_OVERFLOW;
        }
        if (!(octet & 0x80)) {
            *out = value;
            return HP_OK;
        }
        shift += 7; /* zero continuation octets may go on: they add nothing */
        if (shift > 63)
            shift = 63;
    }
}

/* Representation prefix: value of the low bits, or the integer that follows when full. */
static hp_err read_prefixed(cursor *c, uint8_t mask, uint64_t *out) {
    uint64_t value = c->p[c->pos++] & mask;
    if (value == mask)
        return read_integer(c, mask, out);
    *out = value;
    return HP_OK;
}

long hp_huffman_decode(const uint8_t *in, size_t len, uint8_t *out) {
    uint32_t state = 0;
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t hi = hp_huff_table[state][in[i] >> 4];
        if (hi & HP_HUFF_FAIL)
            return -1; /* 5.2: "A Huffman-encoded string literal containing the EOS symbol
                        * MUST be treated as a decoding error." */
        if (hi & HP_HUFF_EMIT)
            out[n++] = (uint8_t)(hi >> 16);
        uint32_t lo = hp_huff_table[hi & 0xFF][in[i] & 0x0F];
        if (lo & HP_HUFF_FAIL)
            return -1;
        if (lo & HP_HUFF_EMIT)
            out[n++] = (uint8_t)(lo >> 16);
        state = lo & 0xFF;
    }
    /* 5.2: "A padding strictly longer than 7 bits MUST be treated as a decoding error. A
     * padding not corresponding to the most significant bits of the code for the EOS symbol
     * MUST be treated as a decoding error." */
    return hp_huff_accepting[state] ? n : -1;
}

static hp_err ensure_scratch(hp_decoder *d, size_t need) {
    if (need <= d->scratch_cap)
        return HP_OK;
    uint8_t *grown = realloc(d->scratch, need);
    if (!grown)
        return HP_NO_MEMORY;
    d->scratch = grown;
    d->scratch_cap = need;
    return HP_OK;
}

/* String literal of 5.2: H flag, 7-bit-prefix length, octets. A Huffman string is decoded
 * into the scratch at offset `slot` (the name and the value of one field use two halves). */
static hp_err read_string(hp_decoder *d, cursor *c, size_t slot, const uint8_t **s,
                          uint32_t *n, size_t *used) {
    if (c->pos >= c->len)
        return HP_TRUNCATED;
    int huffman = c->p[c->pos] & 0x80;
    uint64_t length;
    hp_err err = read_prefixed(c, 0x7F, &length);
    if (err)
        return err;
    if (length > c->len - c->pos)
        return HP_TRUNCATED;
    const uint8_t *raw = c->p + c->pos;
    c->pos += length;
    if (!huffman) {
        *s = raw;
        *n = (uint32_t)length;
        return HP_OK;
    }
    /* Room for every Huffman string of this block at once (the shortest code is 5 bits), so
     * the scratch never moves while a field's name is held in it. */
    if ((err = ensure_scratch(d, c->len / 5 * 8 + 16)))
        return err;
    long got = hp_huffman_decode(raw, length, d->scratch + slot);
    if (got < 0)
        return HP_HUFFMAN;
    *s = d->scratch + slot;
    *n = (uint32_t)got;
    *used = (size_t)got;
    return HP_OK;
}

/* ---- the dynamic table (2.3.2, 4) ------------------------------------------------------ */

const hp_entry *hp_entry_at(const hp_decoder *d, uint32_t k) {
    return &d->ring[(d->head + k) % d->ring_cap];
}

static void drop_oldest(hp_decoder *d) {
    hp_entry *e = &d->ring[(d->head + d->count - 1) % d->ring_cap];
    d->size -= e->size;
    d->unknown_entries -= e->name_unknown;
    free(e->octets);
    e->octets = NULL;
    d->count--;
}

static void clear_entries(hp_decoder *d) {
    while (d->count)
        drop_oldest(d);
    d->head = 0;
}

/* 4.4: "evict entries from the end of the dynamic table until the size of the dynamic table
 * is less than or equal to (maximum size - new entry size) or until the table is empty." */
static void evict(hp_decoder *d, uint64_t incoming) {
    while (d->count && d->size + incoming > d->capacity)
        drop_oldest(d);
}

/* Observer's healing rule: our (lower-bound) size leaves no room for an entry inserted
 * before we started, so the peer's table holds only insertions we saw. */
static void check_healed(hp_decoder *d) {
    if (d->observer && !d->complete && d->size + HP_ENTRY_OVERHEAD > d->capacity)
        d->complete = 1;
}

static hp_err grow_ring(hp_decoder *d) {
    uint32_t cap = d->ring_cap ? d->ring_cap * 2 : 16;
    hp_entry *ring = calloc(cap, sizeof *ring);
    if (!ring)
        return HP_NO_MEMORY;
    for (uint32_t k = 0; k < d->count; k++)
        ring[k] = *hp_entry_at(d, k);
    free(d->ring);
    d->ring = ring;
    d->ring_cap = cap;
    d->head = 0;
    return HP_OK;
}

/* 4.4: evict until the new entry fits, then add it at index 62. An unknown name counts 0
 * octets: a lower bound, so the observer may keep more entries than the peer, never fewer.
 * The field's name may be an entry that eviction frees: it is copied first, and the field is
 * pointed at the copy (the new entry, or the spill buffer when the entry is not kept). */
static hp_err insert(hp_decoder *d, hp_field *f) {
    int name_unknown = f->kind != HP_FIELD_KNOWN;
    uint64_t size = (uint64_t)f->name_len + f->value_len + HP_ENTRY_OVERHEAD;
    uint8_t *octets = malloc((size_t)f->name_len + f->value_len + 1);
    if (!octets)
        return HP_NO_MEMORY;
    if (f->name_len)
        memcpy(octets, f->name, f->name_len);
    if (f->value_len)
        memcpy(octets + f->name_len, f->value, f->value_len);
    f->name = octets;
    f->value = octets + f->name_len;
    if (size > d->capacity) {
        /* 4.4: "an attempt to add an entry larger than the maximum size causes the table to
         * be emptied of all existing entries and results in an empty table." */
        clear_entries(d);
        free(d->spill);
        d->spill = octets;
        return HP_OK;
    }
    evict(d, size);
    if (d->count == d->ring_cap && grow_ring(d)) {
        free(octets);
        return HP_NO_MEMORY;
    }
    d->head = (d->head + d->ring_cap - 1) % d->ring_cap;
    d->ring[d->head] = (hp_entry){octets, f->name_len, f->value_len, (uint32_t)size,
                                  (uint8_t)name_unknown};
    d->count++;
    d->size += size;
    d->unknown_entries += (uint32_t)name_unknown;
    check_healed(d);
    return HP_OK;
}

void hp_init(hp_decoder *d, uint64_t max_table_size, int observer, int complete) {
    memset(d, 0, sizeof *d);
    d->max_table_size = d->capacity = max_table_size;
    d->observer = (uint8_t)(observer != 0);
    d->complete = (uint8_t)(complete != 0 || !observer);
}

void hp_free(hp_decoder *d) {
    clear_entries(d);
    free(d->ring);
    free(d->scratch);
    free(d->spill);
    memset(d, 0, sizeof *d);
}

void hp_set_max_table_size(hp_decoder *d, uint64_t value) {
    d->max_table_size = value;
    if (d->capacity > value) {
        /* The encoder must follow with a size update <= value (4.2); entries over the new
         * bound cannot survive it, so evicting now keeps only what the peer may reference. */
        d->capacity = value;
        evict(d, 0);
    }
}

void hp_lost_sync(hp_decoder *d) {
    clear_entries(d);
    d->complete = !d->observer; /* a strict decoder never references what it did not see */
    d->resets++;
}

/* ---- representations (6) --------------------------------------------------------------- */

/* Field named by an index (6.1), or the name of a literal (6.2) when only the name is used. */
static hp_err lookup(const hp_decoder *d, uint64_t index, hp_field *f) {
    if (index <= HP_STATIC_COUNT) {
        if (index == 0) /* 6.1: "The index value of 0 is not used. It MUST be treated as a
                         * decoding error if found in an indexed header field representation." */
            return HP_INDEX_ZERO;
        const char *n, *v;
        hp_static((uint32_t)index, &n, &f->name_len, &v, &f->value_len);
        f->name = (const uint8_t *)n;
        f->value = (const uint8_t *)v;
        f->kind = HP_FIELD_KNOWN;
        f->index = (uint32_t)index;
        f->static_entry = 1;
        return HP_OK;
    }
    f->index = 0;
    f->static_entry = 0;
    uint64_t k = index - HP_STATIC_COUNT - 1;
    if (k < d->count) {
        const hp_entry *e = hp_entry_at(d, (uint32_t)k);
        f->kind = e->name_unknown ? HP_FIELD_UNKNOWN_NAME : HP_FIELD_KNOWN;
        f->name = e->octets;
        f->name_len = e->name_len;
        f->value = e->octets + e->name_len;
        f->value_len = e->value_len;
        return HP_OK;
    }
    if (d->complete) /* 2.3.3: "Indices strictly greater than the sum of the lengths of both
                      * tables MUST be treated as a decoding error." */
        return HP_BAD_INDEX;
    f->kind = HP_FIELD_UNKNOWN_INDEX; /* inserted before we started: never guessed */
    f->static_entry = 0;
    f->index = (uint32_t)index;
    f->name = f->value = NULL;
    f->name_len = f->value_len = 0;
    return HP_OK;
}

/* Literal header field (6.2.1 with incremental indexing, 6.2.2 without, 6.2.3 never indexed);
 * the name is indexed when the prefix is non-zero, else a string literal follows. */
static hp_err literal(hp_decoder *d, cursor *c, uint8_t mask, int indexing, hp_field *f) {
    uint64_t index;
    size_t slot = 0; /* scratch octets used by a Huffman-decoded name */
    hp_err err = read_prefixed(c, mask, &index);
    if (err)
        return err;
    if (index) {
        if ((err = lookup(d, index, f)))
            return err;
        if (f->kind != HP_FIELD_KNOWN) { /* the name is unknown: its size counts 0 octets */
            f->kind = HP_FIELD_UNKNOWN_INDEX;
            f->index = (uint32_t)index;
            f->name_len = 0;
        }
        f->static_entry = 0; /* only the name comes from the table */
    } else {
        f->kind = HP_FIELD_KNOWN;
        f->index = 0;
        f->static_entry = 0;
        if ((err = read_string(d, c, 0, &f->name, &f->name_len, &slot)))
            return err;
    }
    /* The value goes after a Huffman-decoded name in the scratch. */
    if ((err = read_string(d, c, slot, &f->value, &f->value_len, &slot)))
        return err;
    return indexing ? insert(d, f) : HP_OK;
}

/* 6.3 Dynamic Table Size Update. */
static hp_err size_update(hp_decoder *d, cursor *c, int after_fields) {
    uint64_t value;
    hp_err err = read_prefixed(c, 0x1F, &value);
    if (err)
        return err;
    if (after_fields) /* 4.2: "This dynamic table size update MUST occur at the beginning of
                       * the first header block following the change to the dynamic table
                       * size." */
        return HP_LATE_SIZE_UPDATE;
    if (value > d->max_table_size) /* 6.3: "The new maximum size MUST be lower than or equal
                                    * to the limit ... A value that exceeds this limit MUST be
                                    * treated as a decoding error." */
        return HP_SIZE_UPDATE_TOO_LARGE;
    d->capacity = value;
    evict(d, 0);
    if (value == 0)
        d->complete = 1; /* the peer's table is empty too: everything is known again */
    check_healed(d);
    return HP_OK;
}

static hp_err decode_block(hp_decoder *d, cursor *c, hp_emit_fn emit, void *ctx) {
    int fields = 0;
    while (c->pos < c->len) {
        uint8_t first = c->p[c->pos];
        hp_field f;
        hp_err err;
        if (first & 0x80) { /* 6.1 Indexed Header Field */
            uint64_t index;
            if (!(err = read_prefixed(c, 0x7F, &index)))
                err = lookup(d, index, &f);
        } else if (first & 0x40) { /* 6.2.1 Literal Header Field with Incremental Indexing */
            err = literal(d, c, 0x3F, 1, &f);
        } else if (first & 0x20) { /* 6.3 Dynamic Table Size Update */
            if ((err = size_update(d, c, fields)))
                return err;
            continue;
        } else { /* 6.2.2 without indexing (0000xxxx), 6.2.3 never indexed (0001xxxx) */
            err = literal(d, c, 0x0F, 0, &f);
        }
        if (err)
            return err;
        fields = 1;
        if (emit(ctx, &f))
            return HP_ABORTED;
    }
    return HP_OK;
}

hp_err hp_decode(hp_decoder *d, const uint8_t *block, size_t len, hp_emit_fn emit, void *ctx) {
    cursor c = {block, 0, len};
    hp_err err = decode_block(d, &c, emit, ctx);
    free(d->spill);
    d->spill = NULL;
    if (d->scratch_cap > HP_SCRATCH_KEEP) { /* a large block's scratch is not kept */
        free(d->scratch);
        d->scratch = NULL;
        d->scratch_cap = 0;
    }
    return err;
}

typedef struct observed { hp_emit_fn emit; void *ctx; uint32_t unknown; } observed;

static int count_unknown(void *ctx, const hp_field *f) {
    observed *o = ctx;
    o->unknown += f->kind != HP_FIELD_KNOWN;
    return o->emit(o->ctx, f);
}

hp_err hp_decode_observed(hp_decoder *d, const uint8_t *block, size_t len, hp_emit_fn emit,
                          void *ctx, uint32_t *unknown) {
    observed o = {emit, ctx, 0};
    hp_err err = hp_decode(d, block, len, count_unknown, &o);
    *unknown = err ? 0 : o.unknown;
    if (err) {
        hp_lost_sync(d); /* evidence of desynchronisation: never a wrong value */
        return err;
    }
    d->unknown_headers += o.unknown;
    return HP_OK;
}
