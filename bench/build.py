"""Bench set-up: compile the native peer and the Cython echo listeners into bench/build/.

Both are rebuilt only when their inputs change (a content hash names each artefact): the
Cython module is keyed on bench/echo_cython.pyx, femtows' .pxd files, the Cython version and
the Python ABI, because a listener compiled against another core layout would crash.

    python -m bench.build        # build both, print their paths
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Iterable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BUILD = BENCH / "build"
NATIVE_SRC = BENCH / "native" / "wspeer.c"
CYTHON_SRC = BENCH / "echo_cython.pyx"


class BuildError(RuntimeError):
    """A bench component could not be built (the message says why)."""


def _digest(paths: Iterable[Path], *extra: str) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(REPO)).encode())
        h.update(path.read_bytes())
    for item in extra:
        h.update(item.encode())
    return h.hexdigest()[:16]


def build_native() -> Path:
    """Compile bench/native/wspeer.c (``cc -O2 ... -lssl -lcrypto``); returns the binary."""
    cc = os.environ.get("CC", "cc")
    key = _digest([NATIVE_SRC], cc)
    binary = BUILD / f"wspeer-{key}"
    if binary.exists():
        return binary
    BUILD.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    cmd = [cc, "-O2", "-Wall", "-o", str(tmp), str(NATIVE_SRC), "-lssl", "-lcrypto"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(
            f"native peer build failed ({' '.join(cmd)}); needs a C compiler and OpenSSL "
            f"headers (libssl-dev):\n{proc.stderr}"
        )
    tmp.replace(binary)
    return binary


def build_cython() -> Path:
    """cythonize + compile bench/echo_cython.pyx against this tree's femtows; returns the .so."""
    try:
        import Cython
        from Cython.Build import cythonize
        from setuptools import Distribution, Extension
    except ImportError as exc:
        raise BuildError(f"the femtows-cython row needs Cython and setuptools: {exc}") from exc
    pxds = list((REPO / "femtows").glob("*.pxd")) + list((REPO / "femtows").glob("_core/*.pxd"))
    key = _digest(
        [CYTHON_SRC, *pxds], Cython.__version__, sysconfig.get_config_var("EXT_SUFFIX") or ""
    )
    out_dir = BUILD / f"cython-{key}"
    found = sorted(out_dir.glob("echo_cython*.so"))
    if found:
        return found[0]
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / CYTHON_SRC.name
        shutil.copy(CYTHON_SRC, src)
        ext = Extension("echo_cython", [str(src)], extra_compile_args=["-O2"])
        try:
            modules = cythonize(
                [ext], build_dir=str(tmp), include_path=[str(REPO)], quiet=True, force=True
            )
            dist = Distribution({"ext_modules": modules})
            cmd = dist.get_command_obj("build_ext")
            cmd.build_lib = str(tmp / "lib")  # type: ignore[attr-defined]
            cmd.build_temp = str(tmp / "tmp")  # type: ignore[attr-defined]
            dist.run_command("build_ext")
        except (Exception, SystemExit) as exc:  # cythonize/distutils raise assorted types
            raise BuildError(f"building {CYTHON_SRC.name} failed: {exc}") from exc
        built = next((tmp / "lib").glob("echo_cython*.so"))
        staging = BUILD / f".cython-{key}-{os.getpid()}"
        staging.mkdir()
        shutil.copy(built, staging / built.name)
        try:
            staging.rename(out_dir)
        except OSError:  # built concurrently by another run: use theirs
            shutil.rmtree(staging, ignore_errors=True)
    return sorted(out_dir.glob("echo_cython*.so"))[0]


def main() -> None:
    print(build_native())
    try:
        print(build_cython())
    except BuildError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
