"""HPACK header block decoder (RFC 7541), strict and for a passive observer: the compiled one.

The decoder is C (l7scope/dataplane/hpack.c, its Python face _hpackmodule.c); this module only
names it for the HTTP/2 analyzer. Theory of operation, the observer's rules and the bounds:
docs/hpack.md.

``Decoder`` is the strict decoder: any violation raises HpackError (a ValueError with a code),
and the table is then unusable, as for an endpoint that would close the connection.
``ObserverDecoder`` decodes blocks seen by a passive observer that may have started after the
connection, or may have lost bytes: ``decode_observed`` never raises and returns a
``DecodedBlock`` (headers known exactly, how many were left out, notes, whether the table was
reset); ``lost_sync()`` clears the table after a gap.
"""
from __future__ import annotations

from l7scope.dataplane._hpack import (
    DEFAULT_TABLE_SIZE,
    ENTRY_OVERHEAD,
    DecodedBlock,
    Decoder,
    HpackError,
    HuffmanError,
    ObserverDecoder,
    huffman_decode,
)

__all__ = ["DEFAULT_TABLE_SIZE", "ENTRY_OVERHEAD", "DecodedBlock", "Decoder", "HpackError",
           "HuffmanError", "ObserverDecoder", "huffman_decode"]
