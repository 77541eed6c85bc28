"""HPACK Huffman code (RFC 7541 Appendix B) and its table-driven decoder.

Theory of operation
-------------------
The canonical Huffman code of Appendix B is a binary tree with 257 leaves (256 octets + EOS)
and therefore 256 internal nodes. A decoder that has consumed some bits of the current code sits
on one internal node, so the internal nodes are the states of a finite-state machine whose
start state is the root.

At import we build that machine in two steps, never walking bits at decode time:

1. ``_NIBBLE_TABLE``: for each state and each 4-bit input, the state reached, the octets
   completed on the way (at most one: the shortest code is 5 bits long) and whether EOS was hit.
2. ``_BYTE_TABLE``: two nibble steps composed, so that decoding consumes one whole input octet
   per lookup. An octet completes at most two symbols. States are stored pre-multiplied by 256
   so that the lookup index is ``state + octet``. A dedicated FAIL state absorbs every input
   after an error (EOS decoded), so the inner loop has no error branch.

At the end of the string the machine must sit on an accepting state (RFC 7541 5.2):

    "A padding strictly longer than 7 bits MUST be treated as a decoding error. A padding not
     corresponding to the most significant bits of the code for the EOS symbol MUST be treated
     as a decoding error. A Huffman-encoded string literal containing the EOS symbol MUST be
     treated as a decoding error."

The EOS code is 30 one-bits, so the accepting states are the root and the nodes reached from the
root by 1 to 7 one-bits.
"""
from __future__ import annotations


class HuffmanError(ValueError):
    """The octets are not a valid Huffman-encoded string (EOS inside, or bad padding)."""


# (code, bit length) for symbols 0..255 and EOS (256), RFC 7541 Appendix B.
HUFFMAN_CODES: tuple[tuple[int, int], ...] = (
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), (0xfffffe4, 28), (0xfffffe5, 28),
    (0xfffffe6, 28), (0xfffffe7, 28), (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28), (0xfffffed, 28), (0xfffffee, 28),
    (0xfffffef, 28), (0xffffff0, 28), (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), (0xffffff8, 28), (0xffffff9, 28),
    (0xffffffa, 28), (0xffffffb, 28), (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11), (0x3fa, 10), (0x3fb, 10),
    (0xf9, 8), (0x7fb, 11), (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6), (0x1a, 6), (0x1b, 6),
    (0x1c, 6), (0x1d, 6), (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10), (0x1ffa, 13), (0x21, 6),
    (0x5d, 7), (0x5e, 7), (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7), (0x67, 7), (0x68, 7),
    (0x69, 7), (0x6a, 7), (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7), (0xfc, 8), (0x73, 7),
    (0xfd, 8), (0x1ffb, 13), (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), (0x24, 6), (0x5, 5),
    (0x25, 6), (0x26, 6), (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5), (0x2b, 6), (0x76, 7),
    (0x2c, 6), (0x8, 5), (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), (0x7fc, 11), (0x3ffd, 14),
    (0x1ffd, 13), (0xffffffc, 28), (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23), (0x3fffd6, 22), (0x7fffda, 23),
    (0x7fffdb, 23), (0x7fffdc, 23), (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23), (0xffffee, 24), (0x7fffe1, 23),
    (0x7fffe2, 23), (0x7fffe3, 23), (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24), (0x3fffda, 22), (0x1fffdd, 21),
    (0xfffe9, 20), (0x3fffdb, 22), (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24), (0x1fffdf, 21), (0x3fffdf, 22),
    (0x7fffeb, 23), (0x7fffec, 23), (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23), (0xfffea, 20), (0x3fffe2, 22),
    (0x3fffe3, 22), (0x3fffe4, 22), (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), (0x3fffe7, 22), (0x7ffff2, 23),
    (0x3fffe8, 22), (0x1ffffec, 25), (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25), (0x7fff2, 19), (0x1fffe3, 21),
    (0x3ffffe6, 26), (0x7ffffe0, 27), (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), (0xffffffd, 28), (0x7ffffe3, 27),
    (0x7ffffe4, 27), (0x7ffffe5, 27), (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23), (0x3fffea, 22), (0x3fffeb, 22),
    (0x1ffffee, 25), (0x1ffffef, 25), (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26), (0x7ffffe7, 27), (0x7ffffe8, 27),
    (0x7ffffe9, 27), (0x7ffffea, 27), (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), (0x3fffffff, 30),
)
EOS_SYMBOL = 256
_MAX_PADDING_BITS = 7


def _build_tree() -> tuple[list[list[int]], list[int]]:
    """Children of each internal node; a child >= 0 is a node id, a child < 0 is leaf ~symbol.

    Also returns the depth of every internal node along the all-ones path (else -1), which
    decides the accepting states.
    """
    children: list[list[int]] = [[0, 0]]
    ones_depth = [0]
    for symbol, (code, length) in enumerate(HUFFMAN_CODES):
        node = 0
        for shift in range(length - 1, -1, -1):
            bit = (code >> shift) & 1
            if shift == 0:
                children[node][bit] = ~symbol
                break
            if children[node][bit] == 0:
                children.append([0, 0])
                depth = length - shift
                is_ones_path = ones_depth[node] >= 0 and bit == 1
                ones_depth.append(depth if is_ones_path else -1)
                children[node][bit] = len(children) - 1
            node = children[node][bit]
    return children, ones_depth


def _build_nibble_table(children: list[list[int]]) -> list[list[tuple[int, bytes, bool]]]:
    """For each state and nibble: (next state, octets emitted, EOS hit)."""
    table = []
    for state in range(len(children)):
        row = []
        for nibble in range(16):
            node, emitted, failed = state, bytearray(), False
            for shift in (3, 2, 1, 0):
                child = children[node][(nibble >> shift) & 1]
                if child >= 0:
                    node = child
                    continue
                symbol = ~child
                if symbol == EOS_SYMBOL:
                    failed = True
                    break
                emitted.append(symbol)
                node = 0
            row.append((node, bytes(emitted), failed))
        table.append(row)
    return table


def _build_byte_table(nibbles: list[list[tuple[int, bytes, bool]]]) -> list[tuple[int, bytes]]:
    """Flat table indexed by ``state * 256 + octet`` -> (next state * 256, octets emitted)."""
    fail = len(nibbles)
    table: list[tuple[int, bytes]] = []
    interned: dict[bytes, bytes] = {}
    for state in range(fail):
        for high in range(16):
            mid, first, failed_high = nibbles[state][high]
            for low in range(16):
                end, second, failed_low = nibbles[mid][low]
                if failed_high or failed_low:
                    table.append((fail << 8, b""))
                    continue
                emitted = interned.setdefault(first + second, first + second)
                table.append((end << 8, emitted))
    table.extend([(fail << 8, b"")] * 256)
    return table


_CHILDREN, _ONES_DEPTH = _build_tree()
_BYTE_TABLE = _build_byte_table(_build_nibble_table(_CHILDREN))
_ACCEPTING = frozenset(
    state << 8 for state, depth in enumerate(_ONES_DEPTH) if 0 <= depth <= _MAX_PADDING_BITS
)
del _CHILDREN, _ONES_DEPTH


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-encoded string literal; HuffmanError on EOS or bad padding."""
    table = _BYTE_TABLE
    state = 0
    out = []
    append = out.append
    for octet in data:
        state, emitted = table[state + octet]
        append(emitted)
    if state not in _ACCEPTING:
        raise HuffmanError("EOS symbol or invalid padding in Huffman string")
    return b"".join(out)


def huffman_encode(data: bytes) -> bytes:
    """Encode octets with the Appendix B code, padded with the EOS prefix (used by tests)."""
    acc = 0
    nbits = 0
    for octet in data:
        code, length = HUFFMAN_CODES[octet]
        acc = (acc << length) | code
        nbits += length
    padding = -nbits % 8
    acc = (acc << padding) | ((1 << padding) - 1)
    return (acc).to_bytes((nbits + padding) // 8, "big")
