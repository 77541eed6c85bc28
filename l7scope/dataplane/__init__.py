"""The compiled data plane: native code on the per-record path (see docs/architecture.md).

``_h1`` is the HTTP/1.x analyzer (h1.h / h1.c / h1_reader.c / h1_text.c, a pure C library,
and _h1module.c, its CPython face). It is built by ``pip install -e .`` (setup.py).
"""
