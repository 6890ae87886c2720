"""Autobahn TestSuite echo client written the websockets way, run on femtows.websockets.

The same program runs on websockets 17.4 by changing the import (``--lib websockets``). Asks
the fuzzing server for its case count, runs every case with
``async for message in ws: await ws.send(message)``, then asks for the reports.

    kosoku -m fuzzingserver 127.0.0.1:9002
    python examples/websockets/autobahn_echo_client.py --url ws://127.0.0.1:9002
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from typing import Any, Awaitable, List, Optional
from urllib.parse import quote

# Autobahn 9.1.6 / 9.2.6 send a 16 MiB message; leave room above that.
MAX_SIZE = 2**25
# Autobahn 9.3.1 / 9.4.1 send 4 MiB in 64-byte fragments (65536 of them): raise websockets'
# fragment limit (default 4096) through its environment variable, read at import time.
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(2**17))


async def run_case(connect: Any, exceptions: Any, url: str, timeout: float) -> Optional[str]:
    try:
        async with asyncio.timeout(timeout) if hasattr(asyncio, "timeout") else _null():
            async with connect(url, max_size=MAX_SIZE, compression=None) as ws:
                async for message in ws:
                    await ws.send(message)
    except exceptions.ConnectionClosed as exc:
        return f"{type(exc).__name__}: {exc}"  # can be the expected outcome of a case
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class _null:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *args: Any) -> None:
        return None


def parse_cases(spec: Optional[str], count: int) -> List[int]:
    """``None`` -> 1..count; otherwise a comma list of numbers and ranges: ``1-5,9``."""
    if not spec:
        return list(range(1, count + 1))
    selected: List[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            selected.extend(range(int(lo), int(hi) + 1))
        elif part:
            selected.append(int(part))
    return [n for n in selected if 1 <= n <= count]


async def amain(lib: str, url: str, agent: str, cases_spec: Optional[str],
                timeout: float) -> int:
    client = importlib.import_module(f"{lib}.asyncio.client")
    exceptions = importlib.import_module(f"{lib}.exceptions")
    url = url.rstrip("/")
    async with client.connect(f"{url}/getCaseCount") as ws:
        count = int(await ws.recv())
    cases = parse_cases(cases_spec, count)
    print(f"server has {count} cases, running {len(cases)} as agent {agent!r} on {lib}",
          flush=True)
    started = time.monotonic()
    problems = 0
    for case in cases:
        problem = await run_case(client.connect, exceptions,
                                 f"{url}/runCase?case={case}&agent={quote(agent)}", timeout)
        if problem is not None:
            problems += 1
            print(f"case {case}: {problem}", flush=True)
    elapsed = time.monotonic() - started
    async with client.connect(f"{url}/updateReports?agent={quote(agent)}"):
        pass
    print(f"ran {len(cases)} cases in {elapsed:.1f}s ({problems} ended with an exception, "
          "which can be the expected outcome); reports updated", flush=True)
    return 0


def run(main: Awaitable[int], loop_name: str) -> int:
    loop: asyncio.AbstractEventLoop
    if loop_name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:9002", help="fuzzing server URL")
    parser.add_argument("--agent", default="femtows-websockets", help="agent name in reports")
    parser.add_argument("--lib", choices=("femtows.websockets", "websockets"),
                        default="femtows.websockets")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--cases", help="case numbers to run, e.g. '1-10,42' (default: all)")
    parser.add_argument("--case-timeout", type=float, default=120.0,
                        help="seconds allowed per case")
    args = parser.parse_args()
    try:
        return run(amain(args.lib, args.url, args.agent, args.cases, args.case_timeout),
                   args.loop)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
