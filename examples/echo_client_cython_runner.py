"""Compile examples/echo_client_cython.pyx and run it against a femtows echo server.

    python examples/echo_client_cython_runner.py [--count 1000]

Needs Cython and a C compiler (both are build requirements of femtows anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def build(build_dir: Path) -> ModuleType:
    """cythonize + compile the example into build_dir and import it."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    ext = Extension("echo_client_cython", [str(HERE / "echo_client_cython.pyx")])
    dist = Distribution({"ext_modules": cythonize([ext], build_dir=str(build_dir), quiet=True)})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib = str(build_dir)
    cmd.build_temp = str(build_dir / "tmp")
    dist.run_command("build_ext")
    path = next(build_dir.glob("echo_client_cython*.so"))
    spec = importlib.util.spec_from_file_location("echo_client_cython", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run(module: ModuleType, count: int) -> int:
    sys.path.insert(0, str(HERE))
    from echo_server import ServerClientListener

    import femtows

    server = await femtows.ws_create_server(lambda r: ServerClientListener(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.perf_counter()
    transport, client = await femtows.ws_connect(
        lambda: module.CountingEchoClient(count), f"ws://127.0.0.1:{port}/"
    )
    await transport.wait_disconnected()
    elapsed = time.perf_counter() - started
    print(f"{client.received} round trips in {elapsed:.3f}s, last payload {client.last_payload!r}")
    server.close()
    return int(client.received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        module = build(Path(tmp))
        received = asyncio.run(run(module, args.count))
    sys.exit(0 if received == args.count else 1)


if __name__ == "__main__":
    main()
