"""Sync-API client rows side by side: ``femtows-sync`` vs ``websockets-sync``.

    .venv/bin/python -m bench.sync_rows [--sizes 256 8192 102400] [--slices 5] [--duration 2]

Client side, 1 connection, one message in flight, against the native echo peer; rows are
interleaved slice by slice (bench/harness.py's Runner, the method of the main table). Prints
the median RPS and Python-process CPU per message of each row and femtows/websockets ratios.
The threading API has no server rows (its server runs the asyncio engine).
"""

from __future__ import annotations

import argparse
import statistics
from typing import List, Optional

from bench.build import build_native
from bench.harness import Cell, Config, Runner

ROWS = ("femtows-sync", "websockets-sync")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 8192, 102400])
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    args = parser.parse_args(argv)
    cfg = Config(wspeer=build_native(), cython_so=None, slices=args.slices,
                 duration=args.duration, retries=1, retry_budget=20.0)
    runner = Runner(cfg)
    print("| size | femtows-sync RPS | websockets-sync RPS | RPS ratio | CPU µs/msg femtows "
          "| CPU µs/msg websockets | CPU ratio | disturbed slices |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        cell = Cell("client", args.loop, False, size, 1)
        results = runner.run_cell(cell, ROWS)
        med = {}
        for row in ROWS:
            ok = [r for r in results if r.row == row and not r.error]
            if not ok:
                errs = [r.error for r in results if r.row == row]
                raise SystemExit(f"{row} failed: {errs[:1]}")
            med[row] = (
                statistics.median(r.rps for r in ok),
                statistics.median(r.py_cpu / r.count * 1e6 for r in ok if r.py_cpu),
            )
        disturbed = sum(r.disturbed for r in results)
        f, w = med["femtows-sync"], med["websockets-sync"]
        print(f"| {size} | {f[0]:,.0f} | {w[0]:,.0f} | {f[0] / w[0]:.2f}× | {f[1]:.1f} | "
              f"{w[1]:.1f} | {f[1] / w[1]:.2f}× | {disturbed}/{len(results)} |", flush=True)


if __name__ == "__main__":
    main()
