"""Strict HPACK decoder: RFC 7541 Appendix C, the hpack-test-case corpus, errors, fuzz."""
from __future__ import annotations

import json
from pathlib import Path

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.protocols.hpack import Decoder, HpackError
from l7scope.protocols.hpack import HuffmanError, huffman_decode
from tests.protocols.hpack_reference_huffman import huffman_encode

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora" / "hpack-test-case"
IMPLEMENTATIONS = [
    "go-hpack", "haskell-http2-naive-huffman", "nghttp2", "node-http2-hpack", "python-hpack",
    "swift-nio-hpack-huffman",
]

# --- RFC 7541 Appendix C ---------------------------------------------------------------

C2 = [  # (wire, headers, table after)
    ("400a637573746f6d2d6b65790d637573746f6d2d686561646572",
     [("custom-key", "custom-header")], [("custom-key", "custom-header")], 55),
    ("040c2f73616d706c652f70617468", [(":path", "/sample/path")], [], 0),
    ("100870617373776f726406736563726574", [("password", "secret")], [], 0),
    ("82", [(":method", "GET")], [], 0),
]

REQUESTS = [
    ([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
     [(":authority", "www.example.com")], 57),
    ([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"),
      ("cache-control", "no-cache")],
     [("cache-control", "no-cache"), (":authority", "www.example.com")], 110),
    ([(":method", "GET"), (":scheme", "https"), (":path", "/index.html"),
      (":authority", "www.example.com"), ("custom-key", "custom-value")],
     [("custom-key", "custom-value"), ("cache-control", "no-cache"),
      (":authority", "www.example.com")], 164),
]
C3_WIRE = ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865",
           "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"]
C4_WIRE = ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
           "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"]

DATE1, DATE2 = "Mon, 21 Oct 2013 20:13:21 GMT", "Mon, 21 Oct 2013 20:13:22 GMT"
LOCATION = "https://www.example.com"
COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
RESPONSES = [
    ([(":status", "302"), ("cache-control", "private"), ("date", DATE1), ("location", LOCATION)],
     [("location", LOCATION), ("date", DATE1), ("cache-control", "private"),
      (":status", "302")], 222),
    ([(":status", "307"), ("cache-control", "private"), ("date", DATE1), ("location", LOCATION)],
     [(":status", "307"), ("location", LOCATION), ("date", DATE1),
      ("cache-control", "private")], 222),
    ([(":status", "200"), ("cache-control", "private"), ("date", DATE2), ("location", LOCATION),
      ("content-encoding", "gzip"), ("set-cookie", COOKIE)],
     [("set-cookie", COOKIE), ("content-encoding", "gzip"), ("date", DATE2)], 215),
]
C5_WIRE = [
    "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54"
    "6e1768747470733a2f2f7777772e6578616d706c652e636f6d",
    "4803333037c1c0bf",
    "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f"
    "3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076"
    "657273696f6e3d31",
]
C6_WIRE = [
    "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f"
    "0b97c8e9ae82ae43d3",
    "4883640effc1c0bf",
    "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335df"
    "dfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
]


@pytest.mark.parametrize("wire,headers,table,size", C2)
def test_appendix_c2_single_representations(wire, headers, table, size):
    decoder = Decoder()
    assert decoder.decode(bytes.fromhex(wire)) == headers
    assert decoder.dynamic_entries() == table
    assert decoder.table_size == size


@pytest.mark.parametrize("section,wires,expected,table_size", [
    ("C.3", C3_WIRE, REQUESTS, 4096), ("C.4", C4_WIRE, REQUESTS, 4096),
    ("C.5", C5_WIRE, RESPONSES, 256), ("C.6", C6_WIRE, RESPONSES, 256),
])
def test_appendix_c_sequences(section, wires, expected, table_size):
    decoder = Decoder(max_table_size=table_size)
    for wire, (headers, table, size) in zip(wires, expected):
        assert decoder.decode(bytes.fromhex(wire)) == headers, section
        assert decoder.dynamic_entries() == table, section
        assert decoder.table_size == size, section


# --- hpack-test-case corpus ---------------------------------------------------------------

def load_story(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cases"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_corpus_every_story(impl):
    stories = sorted((CORPUS / impl).glob("story_*.json"))
    assert len(stories) == 32, f"hpack-test-case corpus missing under {CORPUS / impl}"
    for story in stories:
        decoder = Decoder()
        for case in load_story(story):
            if case.get("header_table_size") is not None:
                decoder.max_table_size = case["header_table_size"]
            expected = [next(iter(h.items())) for h in case["headers"]]
            got = decoder.decode(bytes.fromhex(case["wire"]))
            assert got == expected, f"{story.name} seqno {case['seqno']}"


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("wire,code", [
    ("80", "index_zero"),
    ("be", "bad_index"),  # index 62 with an empty dynamic table
    ("ff80808080808001", "integer_overflow"),
    ("ff", "truncated"),
    ("4005616263", "truncated"),  # name string shorter than its length
    ("3fe21f", "size_update_too_large"),  # 4096 + 1 > 4096
    ("8220", "late_size_update"),
    ("4081ff0161", "huffman"),  # 8 one-bits of padding
    ("4084ffffffff0161", "huffman"),  # EOS inside the string
])
def test_strict_errors(wire, code):
    with pytest.raises(HpackError) as info:
        Decoder().decode(bytes.fromhex(wire))
    assert info.value.code == code


def test_size_update_at_start_evicts_and_zero_empties():
    decoder = Decoder()
    decoder.decode(bytes.fromhex(C3_WIRE[0]))
    assert decoder.table_size == 57
    assert decoder.decode(bytes.fromhex("20") + bytes.fromhex("82")) == [(":method", "GET")]
    assert decoder.dynamic_entries() == [] and decoder.table_capacity == 0
    decoder.decode(bytes.fromhex("3fe11f"))  # back to 4096
    assert decoder.table_capacity == 4096


def test_entry_larger_than_table_empties_it():
    decoder = Decoder(max_table_size=64)
    decoder.decode(bytes.fromhex("4001610162"))  # a: b -> 34 octets
    assert decoder.dynamic_entries() == [("a", "b")]
    big = "x" * 40
    block = bytes([0x40, 1]) + b"a" + bytes([len(big)]) + big.encode()
    assert decoder.decode(block) == [("a", big)]
    assert decoder.dynamic_entries() == [] and decoder.table_size == 0


def test_text_is_utf8_where_valid_else_latin1():
    block = bytes([0x00, 1]) + b"a" + bytes([2]) + "é".encode() + bytes([0x00, 1]) + b"b"
    block += bytes([1]) + b"\xe9"
    assert Decoder().decode(block) == [("a", "é"), ("b", "é")]


def test_entry_size_counts_octets_not_characters():
    decoder = Decoder()
    value = "é" * 10  # 20 octets in UTF-8
    decoder.decode(bytes([0x40, 1]) + b"n" + bytes([20]) + value.encode())
    assert decoder.table_size == 1 + 20 + 32


# --- Huffman ------------------------------------------------------------------------------

def test_huffman_vectors():
    assert huffman_decode(bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")) == b"www.example.com"
    assert huffman_decode(bytes.fromhex("a8eb10649cbf")) == b"no-cache"
    assert huffman_decode(b"") == b""
    for bad in (b"\xff", b"\xff\xff\xff\xff", bytes.fromhex("f1e3c2e5f23a6ba0ab90f4")):
        with pytest.raises(HuffmanError):
            huffman_decode(bad)


@given(st.binary(max_size=200))
def test_huffman_roundtrip_and_matches_reference_encoder(data):
    encoded = huffman_encode(data)
    assert encoded == hpack.huffman.HuffmanEncoder(
        hpack.huffman_constants.REQUEST_CODES, hpack.huffman_constants.REQUEST_CODES_LENGTH
    ).encode(data)
    assert huffman_decode(encoded) == data


# --- round trip against the hpack package encoder and fuzz --------------------------------

header_lists = st.lists(
    st.tuples(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
              st.text(max_size=40)),
    max_size=12,
)


@settings(max_examples=200)
@given(st.lists(header_lists, min_size=1, max_size=8), st.booleans())
def test_roundtrip_with_reference_encoder(blocks, huffman):
    encoder = hpack.Encoder()
    decoder = Decoder()
    for headers in blocks:
        wire = encoder.encode(headers, huffman=huffman)
        assert decoder.decode(wire) == headers


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_fuzz_strict_raises_only_hpack_error(block):
    try:
        headers = Decoder().decode(block)
    except HpackError:
        return
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in headers)
