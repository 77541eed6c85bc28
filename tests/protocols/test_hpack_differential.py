"""The compiled HPACK decoder against the reference (the Python decoder it replaced, kept in
tests/protocols/hpack_reference.py for this test only): on encoder-made blocks, mutated blocks
and garbage, in strict and observer mode, with table size changes, gaps and mid-connection
starts, both give the same headers, errors, notes, tables and counters after every step."""
from __future__ import annotations

import random

import hpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l7scope.protocols import hpack as compiled
from tests.protocols import hpack_reference as reference
from tests.protocols.hpack_reference_huffman import huffman_encode

TABLE_SIZES = (0, 40, 64, 256, 4096, 65_536)

names = st.sampled_from([":method", ":path", ":status", "content-type", "x-a", "x-b",
                         "cookie", "user-agent", "grpc-status", "Ünï", "x-\xe9"])
values = st.one_of(st.text(max_size=30), st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
                   st.sampled_from(["", "GET", "/", "200", "application/grpc", "x" * 300]))
header_lists = st.lists(st.tuples(names, values), max_size=8)


def state(decoder) -> tuple:
    extra = ()
    if hasattr(decoder, "resets"):
        extra = (decoder.complete, decoder.resets, decoder.unknown_headers)
    return (decoder.dynamic_entries(), decoder.table_size, decoder.table_capacity,
            decoder.max_table_size, decoder.memory(), decoder.advertised_table_size) + extra


def strict(decoder, block: bytes):
    try:
        return ("ok", decoder.decode(block))
    except (reference.HpackError, compiled.HpackError) as exc:
        return ("error", exc.code)


def observed(decoder, block: bytes) -> tuple:
    got = decoder.decode_observed(block)
    return (got.headers, got.unknown, got.notes, got.reset)


class Pair:
    """The same operations on both decoders, compared after each."""

    def __init__(self, observer: bool, table_size: int, complete: bool) -> None:
        if observer:
            self.ref = reference.ObserverDecoder(table_size, complete=complete)
            self.new = compiled.ObserverDecoder(table_size, complete=complete)
        else:
            self.ref, self.new = reference.Decoder(table_size), compiled.Decoder(table_size)
        self.observer = observer
        self.broken = False  # a strict decoder's table is unusable after an error
        self.check()

    def check(self) -> None:
        assert state(self.new) == state(self.ref)

    def block(self, block: bytes, strict_on_observer: bool = False) -> None:
        if self.broken:
            return
        if self.observer and not strict_on_observer:
            assert observed(self.new, block) == observed(self.ref, block), block.hex()
        else:
            got, want = strict(self.new, block), strict(self.ref, block)
            assert got == want, block.hex()
            self.broken = got[0] == "error" and not self.observer
        self.check()

    def limit(self, size: int, advertised: int | None) -> None:
        if advertised is None:
            self.ref.max_table_size = self.new.max_table_size = size
        else:
            self.ref.set_limit(size, advertised)
            self.new.set_limit(size, advertised)
        self.check()

    def gap(self) -> None:
        if self.observer:
            self.ref.lost_sync()
            self.new.lost_sync()
            self.check()


def mutate(rng: random.Random, block: bytes) -> bytes:
    data = bytearray(block)
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        if data and choice < 0.4:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif data and choice < 0.6:
            del data[rng.randrange(len(data)):]
        elif choice < 0.8:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        else:
            data += bytes([0xFF, 0x80, 0x80, 0x80, 0x80, 0x0F][:rng.randint(1, 6)])
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(header_lists, st.booleans(), st.sampled_from((None,) + TABLE_SIZES)),
                min_size=1, max_size=10),
       st.booleans(), st.booleans(), st.integers(0, 3), st.integers(0, 2**32))
def test_encoder_blocks_and_mutations_decode_alike(blocks, observer, complete, skip, seed):
    """Blocks from the hpack package's encoder (Huffman or not, with size updates), the first
    `skip` unseen (an observer started mid-connection), some mutated."""
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    pair = Pair(observer, 65_536 if observer else 4096, complete or skip == 0)
    for n, (headers, huffman, resize) in enumerate(blocks):
        if resize is not None:
            encoder.header_table_size = resize
        wire = encoder.encode(headers, huffman=huffman)
        if n < skip and observer:
            continue
        if rng.random() < 0.15:
            wire = mutate(rng, wire)
        pair.block(wire)
        if rng.random() < 0.1:
            pair.gap()


operations = st.lists(st.one_of(
    st.tuples(st.just("block"), st.binary(max_size=80)),
    st.tuples(st.just("limit"), st.sampled_from(TABLE_SIZES + (2**32 - 1,)),
              st.sampled_from((None, None, 1 << 20))),
    st.tuples(st.just("gap")),
), max_size=20)


@settings(max_examples=1500, deadline=None)
@given(operations, st.booleans(), st.sampled_from(TABLE_SIZES), st.booleans())
def test_garbage_and_table_changes_decode_alike(ops, observer, table_size, complete):
    pair = Pair(observer, table_size, complete)
    for op in ops:
        if op[0] == "block":
            pair.block(op[1])
        elif op[0] == "limit":
            pair.limit(op[1], op[2])
        else:
            pair.gap()


# Representations that reach every branch: indexed (static, dynamic, past the end), literals
# of each kind with indexed or literal names, size updates, long integers, Huffman strings.
PIECES = [b"\x82", b"\xbe", b"\xbf", b"\xc5", b"\xff\x80\x01", b"\x80", b"\x40\x01a\x01b",
          b"\x7e\x02zz", b"\x41\x03abc", b"\x00\x01c\x00", b"\x10\x01d\x01e", b"\x0f\x30\x01f",
          b"\x20", b"\x3f\xe1\x1f", b"\x3f\x01", b"\x44\x86\xa8\xeb\x10\x64\x9c\xbf",
          b"\x40\x81\xff\x00", b"\x01\x7f\x80\x80\x80\x80\x10", b"\x5f\x00\x01x",
          b"\x40\x01n\x7f\x20" + b"v" * 159]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(PIECES), max_size=8).map(b"".join),
                          st.integers(0, 9)), max_size=12),
       st.booleans(), st.sampled_from(TABLE_SIZES), st.booleans())
def test_representation_soup_decodes_alike(blocks, observer, table_size, complete):
    """On an observer, one block in ten goes through decode() (strict: an unlearned entry
    is an error there) and one in ten follows a gap."""
    pair = Pair(observer, table_size, complete)
    for block, dice in blocks:
        if dice == 1:
            pair.gap()
        pair.block(block, strict_on_observer=dice == 0)


def huffman_alike(data: bytes) -> None:
    try:
        want = ("ok", reference.huffman_decode(data))
    except reference.HuffmanError:
        want = ("error",)
    try:
        got = ("ok", compiled.huffman_decode(data))
    except compiled.HuffmanError:
        got = ("error",)
    assert got == want, data.hex()


@settings(max_examples=1000)
@given(st.binary(max_size=200))
def test_huffman_decodes_alike(data):
    """Valid encodings (every octet value), the same with a cut or flipped last octet, and
    arbitrary octets (mostly invalid: EOS or bad padding)."""
    encoded = huffman_encode(data)
    huffman_alike(encoded)
    huffman_alike(data)
    if encoded:
        huffman_alike(encoded[:-1])
        huffman_alike(encoded[:-1] + bytes([encoded[-1] ^ 0x01]))
