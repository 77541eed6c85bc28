"""Build of the compiled data plane; everything else about the package is in pyproject.toml.

`pip install -e .` (make install) compiles the C extension with the system C compiler and the
running Python's headers; no other build dependency.
"""
from setuptools import Extension, setup

DATAPLANE = "l7scope/dataplane/"

setup(ext_modules=[
    Extension(
        "l7scope.dataplane._h1",
        sources=[DATAPLANE + name for name in ("_h1module.c", "h1.c", "h1_reader.c", "h1_text.c")],
        depends=[DATAPLANE + "h1.h", DATAPLANE + "h1_internal.h", DATAPLANE + "pyface.h"],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"],
    ),
    Extension("l7scope.dataplane._sockbytes", [DATAPLANE + "_sockbytesmodule.c"], extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"]),  # noqa: E501
    Extension(
        "l7scope.dataplane._hpack",
        sources=[DATAPLANE + "_hpackmodule.c", DATAPLANE + "hpack.c"],
        depends=[DATAPLANE + "hpack.h", DATAPLANE + "hpack_huffman_table.h"],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"],
    ),
    Extension(
        "l7scope.dataplane._h2frames",
        sources=[DATAPLANE + "_h2framesmodule.c", DATAPLANE + "h2frames.c"],
        depends=[DATAPLANE + "h2frames.h", DATAPLANE + "dp_bytes.h"],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"],
    ),
    Extension(
        "l7scope.dataplane._h2",
        sources=[DATAPLANE + n for n in ("_h2module.c", "h2conn.c", "h2conn_streams.c", "h2frames.c", "hpack.c")],
        depends=[DATAPLANE + n for n in ("h2conn.h", "h2conn_internal.h", "h2frames.h", "hpack.h", "pyface.h", "dp_bytes.h")],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"],
    ),
    Extension(
        "l7scope.dataplane._wire",
        sources=[DATAPLANE + "_wiremodule.c"],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"],
    ),
    Extension("l7scope.dataplane._sinks", sources=[DATAPLANE + "_sinksmodule.c", DATAPLANE + "sinks_sampling.c"], depends=[DATAPLANE + "sinks.h"], extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"]),  # noqa: E501
    Extension(
        "l7scope.dataplane._ringbuf",
        sources=[DATAPLANE + "_ringbufmodule.c"],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"],
    ),
    Extension(
        "l7scope.dataplane._jsonl",
        sources=[DATAPLANE + "_jsonlmodule.c"],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"],
    ),
    Extension("l7scope.dataplane._build", sources=[DATAPLANE + "_buildmodule.c"], extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11", "-fvisibility=hidden"]),  # noqa: E501
])
