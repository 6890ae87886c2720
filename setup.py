"""Build the femtows Cython core.

Everything static lives in pyproject.toml; this file only declares the compiled extension.
The SIMD masking code picks its instruction set at run time (see femtows/_core/mask.c), so
no per-file compiler flags are needed and one wheel runs on every x86-64 CPU.

Environment knobs (for developers):
  FEMTOWS_ANNOTATE=1   write the `cython -a` HTML next to each .pyx
  FEMTOWS_DEBUG=1      build with -O0 -g and Cython's runtime checks on
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FEMTOWS_DEBUG") == "1"
annotate = os.environ.get("FEMTOWS_ANNOTATE") == "1"

extra_compile_args = ["-O0", "-g"] if debug else ["-O3"]
macros = [] if debug else [("NDEBUG", "1")]

extensions = [
    Extension(
        "femtows._core.core",
        sources=["femtows/_core/core.pyx", "femtows/_core/mask.c", "femtows/_core/utf8.c"],
        include_dirs=["femtows/_core"],
        depends=["femtows/_core/mask.h", "femtows/_core/utf8.h", "femtows/_core/simd_common.h"],
        extra_compile_args=extra_compile_args,
        define_macros=macros,
    ),
    # permessage-deflate: the system zlib, called from Cython (needs zlib.h: zlib1g-dev).
    Extension(
        "femtows._core.pmd",
        sources=["femtows/_core/pmd.pyx"],
        libraries=["z"],
        extra_compile_args=extra_compile_args,
        define_macros=macros,
    ),
    # femtows.websockets: the per-message engine under the websockets-compatible Connection.
    Extension(
        "femtows.websockets.asyncio._engine",
        sources=["femtows/websockets/asyncio/_engine.pyx"],
        extra_compile_args=extra_compile_args,
        define_macros=macros,
    ),
    # femtows.uvicorn: the per-message path under FemtowsProtocol.
    Extension(
        "femtows._uvicorn_engine",
        sources=["femtows/_uvicorn_engine.pyx"],
        extra_compile_args=extra_compile_args,
        define_macros=macros,
    ),
    # femtows.websockets Sans-I/O: the core's frame engine without an event loop.
    Extension(
        "femtows.websockets._sansio",
        sources=["femtows/websockets/_sansio.pyx"],
        extra_compile_args=extra_compile_args,
        define_macros=macros,
    ),
]

directives = {
    "language_level": "3",
    "embedsignature": True,
    "freethreading_compatible": True,
}
if not debug:
    directives.update(
        boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False, cdivision=True
    )

setup(ext_modules=cythonize(extensions, compiler_directives=directives, annotate=annotate))
