"""Autobahn TestSuite echo client on the threading API (``femtows.websockets.sync``).

Asks the fuzzing server for its case count, runs every case with
``for message in ws: ws.send(message)``, then asks for the reports. The same program runs on
websockets 17.4 with ``--lib websockets``.

    kosoku -m fuzzingserver 127.0.0.1:9002
    python examples/websockets/autobahn_echo_sync_client.py --url ws://127.0.0.1:9002
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import Any, List, Optional
from urllib.parse import quote

MAX_SIZE = 2**25  # Autobahn 9.1.6 / 9.2.6 send 16 MiB
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(2**17))


def run_case(connect: Any, exceptions: Any, url: str, timeout: float) -> Optional[str]:
    try:
        with connect(url, max_size=MAX_SIZE, compression=None, open_timeout=timeout) as ws:
            for message in ws:
                ws.send(message)
    except exceptions.ConnectionClosed as exc:
        return f"{type(exc).__name__}: {exc}"  # can be the expected outcome of a case
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:9002", help="fuzzing server URL")
    parser.add_argument("--agent", default="femtows-websockets-sync")
    parser.add_argument("--lib", choices=("femtows.websockets", "websockets"),
                        default="femtows.websockets")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--cases", help="case numbers to run, e.g. '1-10,42' (default: all)")
    parser.add_argument("--case-timeout", type=float, default=120.0)
    args = parser.parse_args()
    os.environ["FEMTOWS_SYNC_LOOP"] = args.loop
    client = importlib.import_module(f"{args.lib}.sync.client")
    exceptions = importlib.import_module(f"{args.lib}.exceptions")
    url = args.url.rstrip("/")
    with client.connect(f"{url}/getCaseCount") as ws:
        count = int(ws.recv())
    cases = parse_cases(args.cases, count)
    print(f"server has {count} cases, running {len(cases)} as agent {args.agent!r} on "
          f"{args.lib}.sync", flush=True)
    started = time.monotonic()
    problems = 0
    for case in cases:
        problem = run_case(client.connect, exceptions,
                           f"{url}/runCase?case={case}&agent={quote(args.agent)}",
                           args.case_timeout)
        if problem is not None:
            problems += 1
            print(f"case {case}: {problem}", flush=True)
    elapsed = time.monotonic() - started
    with client.connect(f"{url}/updateReports?agent={quote(args.agent)}"):
        pass
    print(f"ran {len(cases)} cases in {elapsed:.1f}s ({problems} ended with an exception, "
          "which can be the expected outcome); reports updated", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
