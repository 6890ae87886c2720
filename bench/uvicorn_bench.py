"""uvicorn WebSocket implementations side by side: ``python -m bench.uvicorn_bench``.

The same FastAPI echo endpoint (``receive_bytes`` -> ``send_bytes``) served by uvicorn with
femtows (``femtows.uvicorn.FemtowsProtocol``), ``websockets-sansio`` and ``wsproto``; the
native peer (bench/native/wspeer) is the load client, exactly as in bench/'s server-side cells:
every connection sends a BINARY message, waits for the echo, sends again. ``floor-task``
(bench/pyside.py's ``TaskFloorServer``, raw TCP, no uvicorn) hands each message to one asyncio
task per connection and writes it back: what any ASGI WebSocket server pays per message before
the WebSocket layer and the framework (bench/fastapi_cost.py measures the latter).
``floor-asgi`` (``AsgiFloorServer``) runs the same FastAPI app on raw TCP, one chunk one
message: the framework's whole per-message cost with no WebSocket work, the bound of the
femtows row. Rows are interleaved
slice by slice in fresh processes, disturbed slices are re-run (bench/harness.py).

    python -m bench.uvicorn_bench                       # uvloop, 256 B and 8 KiB, 1 and 16 conns
    python -m bench.uvicorn_bench --slices 5 --duration 2 --out bench/results/uvicorn

Prints (and with ``--out`` writes NAME.md / NAME.json) a table of RPS medians (min-max), CPU
of the server process per 100k round trips, and femtows's ratio to the best built-in.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench import build
from bench.harness import Cell, Config, Runner, SliceResult, median

ROWS = ("uvicorn-femtows", "uvicorn-websockets-sansio", "uvicorn-wsproto", "floor-task",
        "floor-asgi")
BUILTINS = ("uvicorn-websockets-sansio", "uvicorn-wsproto")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.uvicorn_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 8192])
    p.add_argument("--conns", type=int, nargs="+", default=[1, 16])
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--slices", type=int, default=3)
    p.add_argument("--duration", type=float, default=1.0)
    p.add_argument("--warmup", type=float, default=0.3)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--max-other-cpu", type=float, default=0.25)
    p.add_argument("--retry-budget", type=float, default=30.0)
    p.add_argument("--out", help="write NAME.md and NAME.json")
    return p.parse_args(argv)


def table(slices: List[SliceResult], cells: List[Cell]) -> str:
    lines = [
        "| cell | " + " | ".join(r.removeprefix("uvicorn-") for r in ROWS)
        + " | femtows / best built-in |",
        "|---|" + "---|" * (len(ROWS) + 1),
    ]
    for cell in cells:
        meds: Dict[str, float] = {}
        parts = []
        for row in ROWS:
            got = [s for s in slices if s.row == row and s.size == cell.size
                   and s.conns == cell.conns and not s.error]
            if not got:
                parts.append("failed")
                continue
            rps = [s.rps for s in got]
            cpu = [c for c in (s.py_cpu_per_100k for s in got) if c is not None]
            meds[row] = median(rps)
            parts.append(f"{meds[row]:,.0f} ({min(rps):,.0f}–{max(rps):,.0f})"
                         + (f", {median(cpu):.1f} s CPU/100k" if cpu else ""))
        best = max((meds[r] for r in BUILTINS if r in meds), default=math.nan)
        ratio = meds.get("uvicorn-femtows", math.nan) / best if best else math.nan
        lines.append(f"| {cell.short} | " + " | ".join(parts) + f" | **{ratio:.2f}×** |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        wspeer = build.build_native()
    except build.BuildError as exc:
        print(exc, file=sys.stderr)
        return 2
    cfg = Config(wspeer=wspeer, cython_so=None, slices=args.slices, duration=args.duration,
                 warmup=args.warmup, retries=args.retries, max_other_cpu=args.max_other_cpu,
                 max_wait=3.0, retry_budget=args.retry_budget)
    runner = Runner(cfg, log=lambda s: print(s, flush=True))
    cells = [Cell("server", args.loop, False, size, conns)
             for conns in args.conns for size in args.sizes]
    slices: List[SliceResult] = []
    for i, cell in enumerate(cells, 1):
        print(f"[{i}/{len(cells)}] uvicorn · {args.loop} · TCP · {cell.short}  "
              f"(t={time.monotonic() - started:.0f}s)", flush=True)
        slices.extend(runner.run_cell(cell, ROWS))
    text = (f"FastAPI echo on uvicorn, server side, {args.loop}, TCP; {args.slices} slices × "
            f"{args.duration}s (+{args.warmup}s warm-up), rows interleaved; RPS median "
            f"(min–max), server CPU s per 100k round trips; {runner.retried} disturbed slices "
            f"re-run; wall {time.monotonic() - started:.0f}s\n\n" + table(slices, cells) + "\n")
    print()
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(json.dumps([asdict(s) for s in slices], indent=1))
    failed = [s for s in slices if s.row == "uvicorn-femtows" and s.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
