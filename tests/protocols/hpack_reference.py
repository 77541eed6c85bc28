"""HPACK header block decoder (RFC 7541), strict and for a passive observer.

Theory of operation
-------------------
A header block is a sequence of representations, each told apart by its first octet (RFC 7541
section 6): indexed field (1xxxxxxx), literal with incremental indexing (01xxxxxx), dynamic
table size update (001xxxxx), literal never indexed (0001xxxx), literal without indexing
(0000xxxx). Indexes 1..61 name the static table (Appendix A); 62+k names the k-th entry of the
dynamic table, newest first (2.3.3). Inserting puts an entry at index 62 and evicts from the old
end until the table size (sum of len(name) + len(value) + 32 octets per entry, 4.1) fits the
maximum size chosen by the encoder, itself bounded by SETTINGS_HEADER_TABLE_SIZE (4.2).

``Decoder`` is the strict decoder: any violation raises HpackError (a ValueError with a code),
and the table is then unusable, as for an endpoint that would close the connection.

``ObserverDecoder`` decodes blocks seen by a passive observer that may have started after the
connection, or may have lost bytes. Its rules:

* The observer sees every insertion made since it started (or since its last reset), in order,
  and the table is indexed newest first; so index 62+k names the same entry for the observer
  and for the peer as long as k < the number of entries the observer learned. A reference
  beyond that, when the table is not known to be complete, names an entry the peer inserted
  before we started: the header is "unknown". It is left out of the headers (counted, with a
  note "hpack: index N not learned"), never guessed.
* A literal with incremental indexing whose NAME references an unknown entry still inserts an
  entry (name unknown, value known), so that later indexes stay aligned; a reference to it
  gives an unknown header again. Its size is only known to be at least len(value) + 32.
* Eviction is by the assumed maximum size and removes the oldest entries. Using a size that is
  a lower bound (unknown names) or a maximum that is larger than the peer's only keeps more old
  entries than the peer has; the peer's table stays a prefix of ours, so alignment never breaks,
  and the peer never references the surplus.
* The table heals on its own: once the (lower-bound) size of what we learned leaves no room
  for one more entry (size + 32 > maximum), or after a size update to 0, the peer can hold no
  entry whose insertion we did not see, and the table is complete again. Entries with unknown
  names still answer "unknown" until evicted. An encoder that inserts every new value of a
  header by referencing the name of its previous entry carries an unknown name forward for as
  long as that chain lasts; the name becomes known when the peer sends it literally again.
* Evidence of desynchronisation (a size update above the maximum, bad Huffman or padding, an
  index past the table in complete mode, an integer overflow, a truncated representation)
  resets: the learned table is cleared and marked not complete, the block's headers are dropped
  (they may have come from a misaligned table) and ``reset`` is set with a note. Never a wrong
  value.
* ``lost_sync()`` is called when a gap hit a header block of this direction: insertions may
  have been missed, so every learned index may be shifted; the table is cleared the same way.

Text: names and values are octets on the wire. They are decoded as UTF-8 where valid, else as
latin-1 (every octet maps to one code point, so nothing is lost; ``s.encode("latin-1")`` gives
the octets back for such values). Entry sizes always count octets.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tests.protocols.hpack_reference_huffman import HuffmanError, huffman_decode

ENTRY_OVERHEAD = 32  # RFC 7541 4.1: "The size of an entry is the sum of its name's length in
# octets, its value's length in octets, and 32."
DEFAULT_TABLE_SIZE = 4096  # RFC 9113 6.5.2: SETTINGS_HEADER_TABLE_SIZE initial value 4,096
_MAX_INTEGER = (1 << 32) - 1  # larger values cannot be sizes, lengths or indexes we accept

# RFC 7541 Appendix A, index 1..61 (index 0 unused).
STATIC_TABLE: tuple[tuple[str, str], ...] = (
    ("", ""),
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)
STATIC_COUNT = len(STATIC_TABLE) - 1  # 61
# Octet lengths of the static entries, for sizing entries that reuse a static name.
_STATIC_NAME_OCTETS = tuple(len(name) for name, _ in STATIC_TABLE)


class HpackError(ValueError):
    """A header block that violates RFC 7541; ``code`` names the violation."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


def _text(raw: bytes) -> str:
    """Octets as text: UTF-8 where valid, else latin-1 (module docstring)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _read_integer(block: bytes, pos: int, prefix_max: int) -> tuple[int, int]:
    """Integer of RFC 7541 5.1 whose prefix (value prefix_max) is full; pos after the prefix.

    "if the integer value is large enough to fill the prefix, ... the integer is encoded using
     a list of one or more octets ... the most significant bit of each octet is used as a
     continuation flag."  Returns (value, next position).
    """
    value = prefix_max
    shift = 0
    end = len(block)
    while True:
        if pos >= end:
            raise HpackError("truncated", "integer runs past the end of the block")
        octet = block[pos]
        pos += 1
        value += (octet & 0x7F) << shift
        if value > _MAX_INTEGER:
            raise HpackError("integer_overflow", "integer larger than 2**32-1")
        if not octet & 0x80:
            return value, pos
        shift += 7


def _read_string(block: bytes, pos: int) -> tuple[bytes, int]:
    """String literal of RFC 7541 5.2: H flag, 7-bit-prefix length, octets."""
    if pos >= len(block):
        raise HpackError("truncated", "string literal missing")
    first = block[pos]
    length = first & 0x7F
    pos += 1
    if length == 0x7F:
        length, pos = _read_integer(block, pos, 0x7F)
    end = pos + length
    if end > len(block):
        raise HpackError("truncated", "string literal runs past the end of the block")
    raw = block[pos:end]
    if first & 0x80:
        raw = _huffman(raw)
    return raw, end


def _huffman(raw: bytes) -> bytes:
    """Decoded Huffman string, through the process-wide cache (below)."""
    decoded = _HUFFMAN_CACHE.get(raw)
    if decoded is not None:
        return decoded
    try:
        decoded = huffman_decode(raw)
    except HuffmanError as exc:
        raise HpackError("huffman", str(exc)) from None
    if len(raw) <= HUFFMAN_CACHE_MAX_STRING:
        global _huffman_cache_bytes
        cost = len(raw) + len(decoded) + HUFFMAN_CACHE_ENTRY_OVERHEAD
        if _huffman_cache_bytes + cost > HUFFMAN_CACHE_BYTES or \
                len(_HUFFMAN_CACHE) >= HUFFMAN_CACHE_SIZE:
            _HUFFMAN_CACHE.clear()
            _huffman_cache_bytes = 0
        _HUFFMAN_CACHE[raw] = decoded
        _huffman_cache_bytes += cost
    return decoded


# Header strings repeat byte for byte across blocks (server, content-type, user-agent...):
# decoded Huffman strings are kept, keyed by their encoded octets. Only valid encodings are
# cached, so an error is raised every time. Process-wide and bounded by bytes: strings longer
# than HUFFMAN_CACHE_MAX_STRING encoded octets are decoded every time (long values rarely
# repeat, and they would crowd out the short ones); entries cost their key and value octets
# plus HUFFMAN_CACHE_ENTRY_OVERHEAD (two bytes objects and a dict slot); the cache is cleared
# when the next entry would pass HUFFMAN_CACHE_BYTES or HUFFMAN_CACHE_SIZE entries.
HUFFMAN_CACHE_BYTES = 1024 * 1024
HUFFMAN_CACHE_MAX_STRING = 256
HUFFMAN_CACHE_ENTRY_OVERHEAD = 96
HUFFMAN_CACHE_SIZE = 4096
_HUFFMAN_CACHE: dict[bytes, bytes] = {}
_huffman_cache_bytes = 0


def huffman_cache_bytes() -> int:
    """Bytes the Huffman cache holds now, by the accounting above (at most HUFFMAN_CACHE_BYTES)."""
    return _huffman_cache_bytes


class Decoder:
    """Strict HPACK decoder for one direction of one connection."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self._max_table_size = max_table_size
        self._capacity = max_table_size  # the encoder's current maximum size (4.2)
        self._entries: deque[tuple[str | None, str | None]] = deque()
        self._sizes: deque[int] = deque()  # octet size of each entry (lower bound if unknown)
        self._name_octets: deque[int] = deque()  # octet length of each entry's name
        self._size = 0  # sum of self._sizes
        self._unknown_entries = 0  # entries whose name was never learned
        self._complete = True  # every entry the peer holds is one we learned
        self.advertised_table_size: int | None = None  # set when the limit was clamped

    @property
    def max_table_size(self) -> int:
        """The bound set by SETTINGS_HEADER_TABLE_SIZE; size updates may not exceed it."""
        return self._max_table_size

    @max_table_size.setter
    def max_table_size(self, value: int) -> None:
        self._max_table_size = value
        if self._capacity > value:
            # The encoder must follow with a size update <= value; entries over the new bound
            # cannot survive it, so evicting now keeps only what the peer may still reference.
            self._capacity = value
            self._evict(0)

    def set_limit(self, limit: int, advertised: int | None = None) -> None:
        """Apply an acknowledged SETTINGS_HEADER_TABLE_SIZE; ``advertised``: the larger value
        the peer sent when ``limit`` is our clamp of it (kept to explain a later reset)."""
        self.max_table_size = limit
        self.advertised_table_size = advertised

    def memory(self) -> int:
        """Size of the dynamic table by RFC 7541 4.1 (entries + 32 octets each)."""
        return self._size

    @property
    def table_size(self) -> int:
        """Current dynamic table size in octets (entries + 32 each)."""
        return self._size

    @property
    def table_capacity(self) -> int:
        """Current maximum size of the dynamic table as set by the encoder."""
        return self._capacity

    def dynamic_entries(self) -> list[tuple[str | None, str | None]]:
        """The dynamic table, newest first (index 62 first); None marks an unknown name."""
        return list(self._entries)

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """Decode one complete header block; HpackError on any violation."""
        return self._decode_block(block)  # type: ignore[return-value]

    def _decode_block(self, block: bytes) -> list[tuple[str | None, str | None]]:
        headers: list[tuple[str | None, str | None]] = []
        pos = 0
        end = len(block)
        while pos < end:
            first = block[pos]
            if first & 0x80:  # 6.1 Indexed Header Field
                index = first & 0x7F
                pos += 1
                if index == 0x7F:
                    index, pos = _read_integer(block, pos, 0x7F)
                headers.append(self._lookup(index))
            elif first & 0x40:  # 6.2.1 Literal Header Field with Incremental Indexing
                pos = self._literal(block, pos, first & 0x3F, 0x3F, headers, True)
            elif first & 0x20:  # 6.3 Dynamic Table Size Update
                pos = self._size_update(block, pos, first & 0x1F, bool(headers))
            else:  # 6.2.2 without indexing (0000) / 6.2.3 never indexed (0001)
                pos = self._literal(block, pos, first & 0x0F, 0x0F, headers, False)
        return headers

    def _lookup(self, index: int) -> tuple[str | None, str | None]:
        if index <= STATIC_COUNT:
            if index == 0:
                # 6.1: "The index value of 0 is not used. It MUST be treated as a decoding
                # error if found in an indexed header field representation."
                raise HpackError("index_zero", "indexed header field with index 0")
            return STATIC_TABLE[index]
        offset = index - STATIC_COUNT - 1
        if offset < len(self._entries):
            return self._entries[offset]
        if self._complete:
            # 2.3.3: "Indices strictly greater than the sum of the lengths of both tables MUST
            # be treated as a decoding error."
            raise HpackError("bad_index", f"index {index} beyond the dynamic table")
        return (None, index)

    def _literal(self, block: bytes, pos: int, index: int, prefix_max: int,
                 headers: list, indexing: bool) -> int:
        """Literal header field (6.2.x); name indexed when the prefix is non-zero."""
        pos += 1
        if index == prefix_max:
            index, pos = _read_integer(block, pos, prefix_max)
        if index:
            name, name_octets = self._indexed_name(index)
        else:
            raw_name, pos = _read_string(block, pos)
            name, name_octets = _text(raw_name), len(raw_name)
        raw_value, pos = _read_string(block, pos)
        value = _text(raw_value)
        if indexing:
            self._insert(name, value, name_octets, len(raw_value))
        # An unknown name is reported as (None, index) so the observer can name the index.
        headers.append((name, value) if name is not None else (None, index))
        return pos

    def _indexed_name(self, index: int) -> tuple[str | None, int]:
        """Name of an indexed entry and its length in octets (0 when unknown: a lower bound)."""
        if index <= STATIC_COUNT:
            return self._lookup(index)[0], _STATIC_NAME_OCTETS[index]
        name = self._lookup(index)[0]
        if name is None:
            return None, 0
        return name, self._name_octets[index - STATIC_COUNT - 1]

    def _size_update(self, block: bytes, pos: int, value: int, after_fields: bool) -> int:
        pos += 1
        if value == 0x1F:
            value, pos = _read_integer(block, pos, 0x1F)
        if after_fields:
            # 4.2: "This dynamic table size update MUST occur at the beginning of the first
            # header block following the change to the dynamic table size."
            raise HpackError("late_size_update", "table size update after a header field")
        if value > self._max_table_size:
            # 6.3: "The new maximum size MUST be lower than or equal to the limit ...
            # A value that exceeds this limit MUST be treated as a decoding error."
            raise HpackError("size_update_too_large",
                             f"size update {value} above the limit {self._max_table_size}")
        self._capacity = value
        self._evict(0)
        if value == 0:
            self._complete = True  # the peer's table is empty too: everything is known again
        self._check_healed()
        return pos

    def _insert(self, name: str | None, value: str, name_octets: int, value_octets: int) -> None:
        """4.4: evict until the new entry fits, then add it at index 62.

        An unknown name counts 0 octets: a lower bound, so we may keep more than the peer,
        never less.
        """
        size = name_octets + value_octets + ENTRY_OVERHEAD
        if size > self._capacity:
            # 4.4: "an attempt to add an entry larger than the maximum size causes the table to
            # be emptied of all existing entries and results in an empty table."
            self._clear_entries()
            return
        self._evict(size)
        self._entries.appendleft((name, value))
        self._sizes.appendleft(size)
        self._name_octets.appendleft(name_octets)
        self._size += size
        if name is None:
            self._unknown_entries += 1
        self._check_healed()

    def _check_healed(self) -> None:
        """Observer's healing rule (after an insertion or a size update); strict: always complete."""

    def _evict(self, incoming: int) -> None:
        """4.4: evict from the end of the table until size + incoming <= capacity."""
        limit = self._capacity - incoming
        while self._size > limit and self._sizes:
            self._size -= self._sizes.pop()
            self._name_octets.pop()
            if self._entries.pop()[0] is None:
                self._unknown_entries -= 1

    def _clear_entries(self) -> None:
        self._entries.clear()
        self._sizes.clear()
        self._name_octets.clear()
        self._size = 0
        self._unknown_entries = 0


@dataclass(frozen=True, slots=True)
class DecodedBlock:
    """One header block as decoded by an observer."""

    headers: tuple[tuple[str, str], ...]  # only headers known exactly, in order
    unknown: int  # headers that referenced entries never learned (left out of headers)
    notes: tuple[str, ...]
    reset: bool  # the table was found desynchronised and reset


_MAX_NOTES = 8


class ObserverDecoder(Decoder):
    """Tolerant decoder for a passive observer (module docstring); never raises."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE, complete: bool = True) -> None:
        super().__init__(max_table_size)
        self._complete = complete
        self.resets = 0  # times the table was found desynchronised or a gap was reported
        self.unknown_headers = 0  # headers left out because they named unlearned entries

    @property
    def complete(self) -> bool:
        """True when every entry the peer may reference is one we learned."""
        return self._complete

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """Strict decoding on an observer: a header naming an unlearned entry is an error."""
        headers = self._decode_block(block)
        if any(name is None for name, _ in headers):
            raise HpackError("not_learned", "header names a dynamic entry never learned")
        return headers  # type: ignore[return-value]

    def lost_sync(self) -> None:
        """A gap hit a header block of this direction: insertions may have been missed."""
        self._clear_learned()

    def decode_observed(self, block: bytes) -> DecodedBlock:
        try:
            decoded = self._decode_block(block)
        except HpackError as exc:
            self._clear_learned()
            notes = (f"hpack: table reset ({exc.code})",)
            if exc.code == "size_update_too_large" and self.advertised_table_size is not None:
                notes += (f"hpack: peer table size {self.advertised_table_size} above the "
                          f"{self.max_table_size} octets followed",)
            return DecodedBlock(headers=(), unknown=1, notes=notes, reset=True)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the observer's pipeline
            self._clear_learned()
            note = f"hpack: table reset (internal {type(exc).__name__})"
            return DecodedBlock(headers=(), unknown=1, notes=(note,), reset=True)
        return self._known_only(decoded)

    def _known_only(self, decoded: list) -> DecodedBlock:
        known = [h for h in decoded if h[0] is not None]
        unknown = len(decoded) - len(known)
        if not unknown:
            return DecodedBlock(headers=tuple(known), unknown=0, notes=(), reset=False)
        self.unknown_headers += unknown
        notes = []
        for name, detail in decoded:
            if name is None and len(notes) < _MAX_NOTES:
                notes.append(f"hpack: index {detail} not learned" if isinstance(detail, int)
                             else "hpack: entry with an unlearned name referenced")
        if unknown > len(notes):
            notes.append(f"hpack: {unknown - len(notes)} more headers not learned")
        return DecodedBlock(headers=tuple(known), unknown=unknown, notes=tuple(notes),
                            reset=False)

    def _clear_learned(self) -> None:
        self._clear_entries()
        self._complete = False
        self.resets += 1

    def _check_healed(self) -> None:
        # Healing: our (lower-bound) size leaves no room for any entry inserted before we
        # started, so the peer's table holds only insertions we saw (some names may still be
        # unknown: those entries keep answering "unknown" until evicted).
        if not self._complete and self._size + ENTRY_OVERHEAD > self._capacity:
            self._complete = True
