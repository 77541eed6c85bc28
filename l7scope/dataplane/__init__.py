"""The compiled data plane: native code on the per-record path (see docs/architecture.md).

``_h1`` is the HTTP/1.x analyzer (h1.h / h1.c / h1_reader.c / h1_text.c, a pure C library,
and _h1module.c, its CPython face); ``_wire`` turns ring-buffer DATA records into DataChunk
events, a batch per call (_wiremodule.c, used by capture/wire.py); ``_jsonl`` writes an
Exchange's JSON Lines line, byte for byte the json module's (_jsonlmodule.c, used by
outputs/jsonl.py); ``_build`` makes the Exchange record of each parsed exchange
(_buildmodule.c, Pipeline.build) and WallClock's time text. All are built by
``pip install -e .`` (setup.py).
"""
