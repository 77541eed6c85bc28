/* libFuzzer harness for the compiled HPACK decoder (l7scope/dataplane/hpack.h).
 *
 * Build and run (tests/dataplane/test_hpack_fuzz.py does a bounded run of this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Il7scope/dataplane \
 *     tests/dataplane/fuzz_hpack.c l7scope/dataplane/hpack.c -o /tmp/fuzz_hpack
 *   mkdir -p /tmp/hpcorpus && /tmp/fuzz_hpack /tmp/hpcorpus tests/dataplane/hpack_corpus  # endless
 *
 * Input: byte 0 picks the table size (bits 0-2), observer mode (bit 3) and whether an observer
 * starts complete (bit 4); then operations, each one byte and a length byte: op & 3 = 0 a
 * header block of `length` bytes (strict decode, or observed), 1 the same decoded strictly on
 * an observer, 2 SETTINGS_HEADER_TABLE_SIZE = SIZES[length & 7], 3 a gap (lost_sync).
 * Invariants: every call returns an hp_err in range, every field's octets are readable, the
 * table's sizes add up (RFC 7541 4.1) and stay within capacity <= the SETTINGS bound, the
 * Huffman scratch is released over HP_SCRATCH_KEEP; ASan/UBSan/LSan do the rest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hpack.h"

static volatile uint8_t sink_hole;
static const uint64_t SIZES[8] = {0, 32, 64, 100, 4096, 65536, 1u << 20, 0xFFFFFFFFull};

#define require(ok)                                                                      \
    do {                                                                                  \
        if (!(ok)) {                                                                      \
            fprintf(stderr, "fuzz_hpack.c:%d: invariant broken: %s\n", __LINE__, #ok);    \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

static int check_field(void *ctx, const hp_field *f) {
    (void)ctx;
    require(f->kind <= HP_FIELD_UNKNOWN_NAME);
    if (f->kind == HP_FIELD_UNKNOWN_INDEX) {
        require(f->index > HP_STATIC_COUNT);
        return 0;
    }
    if (f->static_entry)
        require(f->index >= 1 && f->index <= HP_STATIC_COUNT);
    for (uint32_t i = 0; i < f->name_len; i++)
        sink_hole ^= f->name[i];
    for (uint32_t i = 0; i < f->value_len; i++)
        sink_hole ^= f->value[i];
    return 0;
}

static void check_table(const hp_decoder *d) {
    uint64_t size = 0;
    uint32_t unknown = 0;
    for (uint32_t k = 0; k < d->count; k++) {
        const hp_entry *e = hp_entry_at(d, k);
        require(e->size == (uint64_t)e->name_len + e->value_len + HP_ENTRY_OVERHEAD);
        require(!e->name_unknown || e->name_len == 0);
        size += e->size;
        unknown += e->name_unknown;
    }
    require(size == d->size && unknown == d->unknown_entries);
    require(d->size <= d->capacity && d->capacity <= d->max_table_size);
    require(d->count <= d->ring_cap && d->scratch_cap <= HP_SCRATCH_KEEP && !d->spill);
    require(d->complete || d->observer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    hp_decoder d;
    int observer = (data[0] >> 3) & 1;
    hp_init(&d, SIZES[data[0] & 7], observer, (data[0] >> 4) & 1);
    size_t pos = 1;
    while (pos + 2 <= size) {
        uint8_t op = data[pos] & 3, len = data[pos + 1];
        pos += 2;
        if (op == 2) {
            hp_set_max_table_size(&d, SIZES[len & 7]);
        } else if (op == 3) {
            hp_lost_sync(&d);
        } else {
            size_t n = len < size - pos ? len : size - pos;
            uint32_t unknown = 0;
            hp_err err = observer && op == 0
                ? hp_decode_observed(&d, data + pos, n, check_field, NULL, &unknown)
                : hp_decode(&d, data + pos, n, check_field, NULL);
            require(err < HP_ERR_COUNT && err != HP_ABORTED && err != HP_NO_MEMORY);
            require(!err || !observer || op != 0 || (!d.complete && d.count == 0));
            pos += n;
        }
        check_table(&d);
    }
    hp_free(&d);
    return 0;
}
