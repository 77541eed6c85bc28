/* libFuzzer harness for the compiled HTTP/2 frame splitter (l7scope/dataplane/h2frames.h).
 *
 * Build and run (tests/dataplane/test_h2frames_fuzz.py does a bounded run of this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Il7scope/dataplane \
 *     tests/dataplane/fuzz_h2frames.c l7scope/dataplane/h2frames.c -o /tmp/fuzz_h2frames
 *   mkdir -p /tmp/h2corpus && /tmp/fuzz_h2frames /tmp/h2corpus tests/dataplane/h2frames_corpus
 *   (endless; add -max_total_time=3600 for an hour)
 *
 * Input: byte 0 picks the start (bit 0: expect the preface, bit 1: in sync) and the limits
 * (bits 2-3); then operations of a flags byte and a length byte: flags bits 1-2 = 3 is a hole
 * of length * 67 + 1 octets, 2 raises max_frame_size, else `length` bytes follow and are fed.
 * The invariants: every call returns H2F_OK; every event is well formed (payload within the
 * frame length and its cap, a DATA payload within data_capture, a damaged or truncated frame
 * only where it can be, lost reasons and states in range, nothing after ABANDONED); memory()
 * stays within the caps plus the chunk fed; ASan/UBSan/LSan do the rest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h2frames.h"

typedef struct {
    uint32_t payload_cap, data_capture;
    uint64_t scan_cap;
    int64_t resync_limit;
} limits;

static const limits CHOICES[4] = {{65536, 4097, 65536, 262144}, {600, 49, 100, 3000},
                                  {0, 0, 16, 50}, {7, 1, 1024, 0}};
static limits lim;
static int after_abandon; /* events seen once the splitter gave up: a bug */
static volatile uint8_t sink_hole;

static void require(int ok) {
    if (!ok)
        abort();
}

static int check_event(void *ctx, const h2f_event *ev) {
    const h2f_splitter *sp = ctx;
    require(!after_abandon);
    switch (ev->kind) {
    case H2F_EV_FRAME: {
        uint32_t cap = ev->type == H2F_DATA ? lim.data_capture
                       : ev->type < H2F_KNOWN_TYPES ? lim.payload_cap : 0;
        require(ev->length <= H2F_MAX_FRAME_SIZE_LIMIT && ev->payload_len <= ev->length);
        require(ev->payload_len <= cap && ev->ts_start <= ev->ts);
        require(!ev->truncated || (ev->type != H2F_DATA && ev->length > cap));
        require(!(ev->stream_id & 0x80000000u));
        for (uint32_t i = 0; i < ev->payload_len; i++)
            sink_hole ^= ev->payload[i];
        break;
    }
    case H2F_EV_LOST:
        require(ev->reason < H2F_NLOST && h2f_lost_text(ev->reason)[0]);
        if (ev->reason == H2F_LOST_GAVE_UP)
            after_abandon = 1;
        break;
    case H2F_EV_RESUMED:
        require(sp->state != H2F_S_ABANDONED);
        break;
    default:
        abort();
    }
    return 0;
}

static void check_state(const h2f_splitter *sp, size_t chunk) {
    require(sp->state < H2F_NSTATES && h2f_state_name(sp->state)[0]);
    require(sp->pending_len <= H2F_PREFACE_LEN && sp->scan_pos <= sp->scan.len);
    require(h2f_memory(sp) <= lim.scan_cap + chunk + H2F_PREFACE_LEN + 65536 + 4097);
    require((sp->state == H2F_S_ABANDONED) == after_abandon);
}

static void judge(const uint8_t *data, size_t size) {
    sink_hole ^= (uint8_t)h2f_looks_like_http2(data, size);
    int64_t at = h2f_find_plausible_header(data, size, H2F_DEFAULT_MAX_FRAME_SIZE, size & 1, 0);
    require(at == -1 || (at >= 0 && (size_t)at + H2F_HEADER_LEN <= size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    judge(data, size);
    h2f_splitter sp;
    lim = CHOICES[(data[0] >> 2) & 3];
    after_abandon = 0;
    h2f_init(&sp, data[0] & 1, data[0] & 2, lim.payload_cap, lim.data_capture, lim.scan_cap,
             lim.resync_limit);
    size_t pos = 1;
    int64_t ts = 0;
    while (pos + 2 <= size) {
        uint8_t op = data[pos], len = data[pos + 1];
        pos += 2;
        if (((op >> 1) & 3) == 3) {
            require(h2f_skip(&sp, (uint64_t)len * 67 + 1, ++ts, check_event, &sp) == H2F_OK);
        } else if (((op >> 1) & 3) == 2) {
            uint32_t mfs = H2F_DEFAULT_MAX_FRAME_SIZE + (uint32_t)len * 4096;
            if (mfs > sp.max_frame_size)
                sp.max_frame_size = mfs;
        } else {
            size_t n = len < size - pos ? len : size - pos;
            require(h2f_feed(&sp, data + pos, n, ++ts, check_event, &sp) == H2F_OK);
            pos += n;
            check_state(&sp, n);
        }
    }
    require(h2f_finish(&sp, ++ts, check_event, &sp) == H2F_OK);
    check_state(&sp, 0);
    h2f_free(&sp);
    return 0;
}
