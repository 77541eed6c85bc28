/* hpack.h: a sans-IO HPACK header block decoder (RFC 7541), in plain C (no Python).
 *
 * One hp_decoder per direction of a connection learns the peer encoder's dynamic table from
 * the header blocks it is given. It runs in one of two modes:
 *
 *  - strict: any violation of RFC 7541 ends the block with an error (the table is then
 *    unusable, as for an endpoint that would close the connection);
 *  - observer: for a passive observer that may have started after the connection or lost
 *    bytes. A reference to a dynamic entry it never learned is reported as an unknown field
 *    (never guessed); a literal with incremental indexing whose name is unknown still inserts
 *    an entry (name unknown) so later indexes stay aligned; the table heals once what it
 *    learned leaves no room for an entry it did not see (docs/hpack.md). The caller resets
 *    the table (hp_lost_sync) on an error or a gap.
 *
 * Decoded fields are handed to an emit callback one by one: name and value are octet spans
 * valid until the callback returns (they may point into the table or into the decoder's
 * Huffman scratch). Errors are values (hp_err); nothing here aborts or prints.
 *
 * Memory: the table holds at most its capacity in octets of entries (RFC 7541 4.1 sizes) plus
 * a fixed-size ring slot per entry; the Huffman scratch holds at most 8/5 of the longest
 * Huffman string of the last block and is released after a block when above HP_SCRATCH_KEEP.
 */
#ifndef L7SCOPE_HPACK_H
#define L7SCOPE_HPACK_H

#include <stddef.h>
#include <stdint.h>

#define HP_ENTRY_OVERHEAD 32u       /* RFC 7541 4.1: name octets + value octets + 32 */
#define HP_DEFAULT_TABLE_SIZE 4096u /* RFC 9113 6.5.2: SETTINGS_HEADER_TABLE_SIZE initial value */
#define HP_STATIC_COUNT 61u         /* RFC 7541 Appendix A */
#define HP_MAX_INTEGER 0xFFFFFFFFull /* larger integers cannot be sizes, lengths or indexes */
#define HP_SCRATCH_KEEP 65536u      /* Huffman scratch kept between blocks */

typedef enum hp_err {
    HP_OK = 0,
    HP_TRUNCATED,              /* a representation runs past the end of the block */
    HP_INTEGER_OVERFLOW,       /* an integer above 2**32-1 */
    HP_HUFFMAN,                /* EOS inside or invalid padding (5.2) */
    HP_INDEX_ZERO,             /* indexed field with index 0 (6.1) */
    HP_BAD_INDEX,              /* index beyond both tables (2.3.3) */
    HP_LATE_SIZE_UPDATE,       /* size update after a field (4.2) */
    HP_SIZE_UPDATE_TOO_LARGE,  /* size update above SETTINGS_HEADER_TABLE_SIZE (6.3) */
    HP_NO_MEMORY,              /* allocation failed */
    HP_ABORTED,                /* the emit callback asked to stop */
    HP_ERR_COUNT
} hp_err;

/* Short names of the errors ("truncated", "huffman", ...), indexed by hp_err. */
extern const char *const hp_err_code[HP_ERR_COUNT];

typedef enum hp_field_kind {
    HP_FIELD_KNOWN = 0,    /* name and value known */
    HP_FIELD_UNKNOWN_INDEX, /* names (or takes its name from) index `index`, never learned */
    HP_FIELD_UNKNOWN_NAME,  /* an entry learned with an unknown name; value known */
} hp_field_kind;

typedef struct hp_field {
    hp_field_kind kind;
    const uint8_t *name, *value;
    uint32_t name_len, value_len;
    uint32_t index; /* HP_FIELD_UNKNOWN_INDEX: the index referenced; HP_FIELD_KNOWN: the
                     * static entry whose name this is (1..61), or 0 */
    uint8_t static_entry; /* HP_FIELD_KNOWN: name and value are static entry `index` */
} hp_field;

/* Returns 0 to go on, non-zero to stop the block with HP_ABORTED. */
typedef int (*hp_emit_fn)(void *ctx, const hp_field *field);

typedef struct hp_entry {
    uint8_t *octets;       /* name octets then value octets (one allocation) */
    uint32_t name_len;     /* 0 when the name is unknown */
    uint32_t value_len;
    uint32_t size;         /* 4.1 size; a lower bound when the name is unknown */
    uint8_t name_unknown;
} hp_entry;

typedef struct hp_decoder {
    hp_entry *ring;        /* entries, ring[(head + k) % cap]: k = 0 is the newest (index 62) */
    uint32_t ring_cap, head, count;
    uint64_t size;         /* sum of entry sizes */
    uint64_t max_table_size; /* SETTINGS_HEADER_TABLE_SIZE bound on size updates */
    uint64_t capacity;     /* the encoder's current maximum size (4.2) */
    uint32_t unknown_entries; /* entries whose name was never learned */
    uint8_t observer, complete;
    uint64_t resets;          /* observer: times the table was reset (error or gap) */
    uint64_t unknown_headers; /* observer: fields left out for naming unlearned entries */
    uint8_t *scratch;      /* Huffman output: name half then value half */
    size_t scratch_cap;
    uint8_t *spill;        /* a field too large to be inserted, until the block ends */
} hp_decoder;

void hp_init(hp_decoder *d, uint64_t max_table_size, int observer, int complete);
void hp_free(hp_decoder *d);

/* Decode one complete header block, emitting every field in order. */
hp_err hp_decode(hp_decoder *d, const uint8_t *block, size_t len, hp_emit_fn emit, void *ctx);

/* Observer: decode one block; on an error the table is reset (cleared, not complete,
 * resets + 1) and the fields already emitted for the block must be discarded (they may come
 * from a misaligned table). Unknown fields are emitted (for notes) and counted in
 * unknown_headers, and *unknown is their number in this block. */
hp_err hp_decode_observed(hp_decoder *d, const uint8_t *block, size_t len, hp_emit_fn emit,
                          void *ctx, uint32_t *unknown);

/* Observer: decode one block; on an error the table is reset (cleared, not complete,
 * resets + 1) and the fields already emitted for the block must be discarded (they may come
 * from a misaligned table). Unknown fields are emitted (for notes) and counted in
 * unknown_headers, and *unknown is their number in this block. */
hp_err hp_decode_observed(hp_decoder *d, const uint8_t *block, size_t len, hp_emit_fn emit,
                          void *ctx, uint32_t *unknown);

/* SETTINGS_HEADER_TABLE_SIZE changed (applied at ACK): entries over the new bound go now. */
void hp_set_max_table_size(hp_decoder *d, uint64_t value);

/* Observer: insertions may have been missed; clear the table, mark it not complete and
 * count a reset. */
void hp_lost_sync(hp_decoder *d);

/* Entry k of the dynamic table, newest first (k < d->count). */
const hp_entry *hp_entry_at(const hp_decoder *d, uint32_t k);

/* Static table entry 1..61 (Appendix A). */
void hp_static(uint32_t index, const char **name, uint32_t *name_len, const char **value,
               uint32_t *value_len);

/* Huffman decoding (5.2, Appendix B) of in[0..len) into out (room for len * 8 / 5 + 1 octets);
 * returns the decoded length, or -1 on EOS inside or invalid padding. */
long hp_huffman_decode(const uint8_t *in, size_t len, uint8_t *out);

#endif
