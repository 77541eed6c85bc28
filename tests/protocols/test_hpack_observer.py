"""Observer HPACK decoding: late start, gaps, desync resets; every returned header exact."""
from __future__ import annotations

import hpack
from hypothesis import given, settings
from hypothesis import strategies as st

from l7scope.protocols.hpack import DecodedBlock, ObserverDecoder


def request_headers(i: int) -> list[tuple[str, str]]:
    return [
        (":method", "GET" if i % 3 else "POST"),
        (":scheme", "https"),
        (":path", f"/item/{i % 7}"),
        (":authority", "api.example.com"),
        ("user-agent", "l7scope-test/1.0"),
        (f"x-custom-{i // 60}", f"value-{i}"),  # a new header name every 60 requests
        (f"x-trace-{i // 60}", f"trace-{i // 3}"),
    ]


def encode_all(n: int, huffman: bool = True) -> tuple[list[bytes], list[list[tuple[str, str]]]]:
    encoder = hpack.Encoder()
    lists = [request_headers(i) for i in range(n)]
    return [encoder.encode(h, huffman=huffman) for h in lists], lists


def is_subsequence(part, whole) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def assert_exact_or_unknown(result: DecodedBlock, expected) -> None:
    assert is_subsequence(result.headers, expected), (result, expected)
    assert len(result.headers) + result.unknown == len(expected)
    assert bool(result.unknown) == bool(result.notes)


def test_complete_observer_decodes_everything():
    blocks, lists = encode_all(50)
    decoder = ObserverDecoder()
    for block, expected in zip(blocks, lists):
        assert decoder.decode_observed(block) == DecodedBlock(tuple(expected), 0, (), False)


def test_late_start_returns_only_exact_headers_then_heals():
    blocks, lists = encode_all(400)
    decoder = ObserverDecoder(complete=False)
    results = {}
    for i in range(130, 400):
        results[i] = decoder.decode_observed(blocks[i])
        assert not results[i].reset
        assert_exact_or_unknown(results[i], lists[i])
    unknown_total = sum(r.unknown for r in results.values())
    assert unknown_total > 0  # user-agent, authority, x-custom-2 entries predate the observer
    assert decoder.unknown_headers == unknown_total
    assert results[130].unknown >= 3
    assert "hpack: index 62 not learned" in results[130].notes or any(
        n.startswith("hpack: index ") for n in results[130].notes)
    exact = [i for i in results if results[i].headers == tuple(lists[i])]
    healed_at = min(i for i in exact if all(j in exact for j in range(i, 400)))
    assert healed_at < 300 and decoder.complete
    assert all(results[i].unknown == 0 for i in range(healed_at, 400))


def test_unknown_name_chain_stays_unknown_until_sent_literally():
    blocks, lists = encode_all(200)
    decoder = ObserverDecoder(complete=False)
    for i in range(130, 180):  # x-custom-2 was first sent (literally) at block 120
        result = decoder.decode_observed(blocks[i])
        assert_exact_or_unknown(result, lists[i])
        assert ("x-custom-2", f"value-{i}") not in result.headers
    result = decoder.decode_observed(blocks[180])  # x-custom-3 is new: sent literally
    assert ("x-custom-3", "value-180") in result.headers


def test_late_start_across_table_size_update_to_zero():
    encoder = hpack.Encoder()
    lists = [request_headers(i) for i in range(60)]
    blocks = []
    for i, headers in enumerate(lists):
        if i == 40:
            encoder.header_table_size = 0
            encoder.header_table_size = 4096
        blocks.append(encoder.encode(headers))
    decoder = ObserverDecoder(complete=False)
    for i in range(30, 60):
        result = decoder.decode_observed(blocks[i])
        assert_exact_or_unknown(result, lists[i])
        if i >= 40:
            assert result.headers == tuple(lists[i]) and decoder.complete


def test_lost_sync_after_missed_blocks_never_gives_wrong_values():
    blocks, lists = encode_all(300)
    decoder = ObserverDecoder()
    for i in range(30):
        assert decoder.decode_observed(blocks[i]).headers == tuple(lists[i])
    decoder.lost_sync()  # blocks 30..34 fall in a gap
    assert not decoder.complete
    unknown = 0
    for i in range(35, 300):
        result = decoder.decode_observed(blocks[i])
        assert_exact_or_unknown(result, lists[i])
        unknown += result.unknown
    assert unknown > 0
    assert decoder.complete and result.headers == tuple(lists[299])


def test_literal_with_unknown_name_still_inserts_to_keep_alignment():
    decoder = ObserverDecoder(complete=False)
    # 0x7e = literal with incremental indexing, name index 62 (never learned), value "v1"
    result = decoder.decode_observed(bytes([0x7E, 0x02]) + b"v1")
    assert result.headers == () and result.unknown == 1
    assert result.notes == ("hpack: index 62 not learned",)
    assert decoder.dynamic_entries() == [(None, "v1")]
    # literal with indexing, new name: index 62 is now it, the unknown one moves to 63
    decoder.decode_observed(bytes([0x40, 1]) + b"a" + bytes([1]) + b"b")
    result = decoder.decode_observed(bytes([0xBE, 0xBF, 0xC0, 0x82]))  # 62, 63, 64, static 2
    assert result.headers == (("a", "b"), (":method", "GET"))
    assert result.unknown == 2
    assert result.notes == ("hpack: entry with an unlearned name referenced",
                            "hpack: index 64 not learned")


def test_unknown_name_with_known_value_in_literal_without_indexing():
    decoder = ObserverDecoder(complete=False)
    result = decoder.decode_observed(bytes([0x0F, 0x37, 0x01]) + b"x" + bytes([0x82]))
    assert result.headers == ((":method", "GET"),) and result.unknown == 1  # name index 70


def test_index_beyond_table_in_complete_mode_resets():
    decoder = ObserverDecoder()
    decoder.decode_observed(bytes([0x40, 1]) + b"a" + bytes([1]) + b"b")
    result = decoder.decode_observed(bytes([0x82, 0xC6]))  # static 2, then index 70
    assert result.reset and result.headers == ()
    assert result.notes == ("hpack: table reset (bad_index)",)
    assert not decoder.complete and decoder.dynamic_entries() == []
    assert decoder.resets == 1


def test_bad_huffman_and_oversized_update_reset():
    decoder = ObserverDecoder()
    assert decoder.decode_observed(bytes.fromhex("4081ff0161")).reset
    decoder = ObserverDecoder(max_table_size=100)
    result = decoder.decode_observed(bytes.fromhex("3f4682"))  # size update to 101
    assert result.reset and result.notes == ("hpack: table reset (size_update_too_large)",)


def test_shrinking_the_bound_evicts_and_bounds_updates():
    decoder = ObserverDecoder()
    blocks, lists = encode_all(3)
    for block in blocks:
        decoder.decode_observed(block)
    assert decoder.table_size > 100
    decoder.max_table_size = 100
    assert decoder.table_size <= 100


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(["a", "b", "x-c", "user-agent", ":path"]),
                           st.sampled_from(["", "1", "v" * 30, "é", "long" * 20])),
                 max_size=6),
        min_size=1, max_size=40),
    st.integers(min_value=0, max_value=39),
    st.sampled_from([64, 256, 4096]),
)
def test_any_suffix_returns_only_exact_headers(lists, start, table_size):
    encoder = hpack.Encoder()
    encoder.header_table_size = table_size
    blocks = [encoder.encode(h) for h in lists]
    decoder = ObserverDecoder(max_table_size=4096, complete=False)
    for block, expected in list(zip(blocks, lists))[start:]:
        result = decoder.decode_observed(block)
        assert not result.reset
        assert_exact_or_unknown(result, expected)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=6), st.booleans())
def test_fuzz_observer_never_raises(blocks, complete):
    decoder = ObserverDecoder(complete=complete)
    for block in blocks:
        result = decoder.decode_observed(block)
        assert isinstance(result, DecodedBlock)
        assert all(isinstance(n, str) and isinstance(v, str) for n, v in result.headers)


def test_strict_decode_on_an_incomplete_observer_raises_instead_of_guessing():
    import pytest

    from l7scope.protocols.hpack import HpackError
    with pytest.raises(HpackError) as info:
        ObserverDecoder(complete=False).decode(bytes([0x82, 0xC6]))
    assert info.value.code == "not_learned"
