"""Sync-API client rows side by side: ``femtows-sync`` vs ``websockets-sync``.

    .venv/bin/python -m bench.sync_rows [--sizes 256 8192 102400] [--slices 5] [--duration 2]
        [--base DIR]

Client side, 1 connection, one message in flight, against the native echo peer
(bench/native/wspeer.c), rows interleaved slice by slice in fresh processes, as the main
table does (bench/harness.py's ``Runner.run_pair``). CPU per message is the client process's
own ``getrusage`` (all its threads) over the measured window. Prints the medians and the
femtows/websockets ratios. ``--base DIR`` adds a row ``femtows-sync@base``: the same client
with femtows imported from DIR (another checkout, e.g. ``git worktree add DIR REV``, built
with ``python setup.py build_ext --inplace``), interleaved with the others: before/after in
one run. The threading API has no server rows (its server is the asyncio
engine's, measured by the ``femtows-ws`` row).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Dict, List, Optional, Tuple

from bench.build import build_native
from bench.harness import Config, Runner

ROWS: Tuple[str, ...] = ("femtows-sync", "websockets-sync")
BASE = "femtows-sync@base"


def client_cmd(runner: Runner, row: str, loop: str, size: int, port: int,
               base: Optional[str]) -> List[str]:
    if row == BASE:
        assert base is not None
        return runner.pyside_cmd("femtows-sync", "client", loop, False, size, 1, port) + [
            "--femtows-from", base]
    return runner.pyside_cmd(row, "client", loop, False, size, 1, port)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 8192, 102400])
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    parser.add_argument("--base", metavar="DIR", help="also run femtows-sync from DIR")
    args = parser.parse_args(argv)
    rows = ROWS + ((BASE,) if args.base else ())
    cfg = Config(wspeer=build_native(), cython_so=None, duration=args.duration)
    runner = Runner(cfg)
    print("| size | femtows-sync RPS | websockets-sync RPS | RPS ratio | CPU µs/msg femtows "
          "| CPU µs/msg websockets | CPU ratio | machine busy (other CPUs) |"
          + (" base RPS | base RPS ratio | base CPU µs/msg |" if args.base else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|---|---|" if args.base else ""))
    for size in args.sizes:
        samples: Dict[str, List[Tuple[float, float]]] = {row: [] for row in rows}
        others: List[float] = []
        for _ in range(args.slices):
            for row in rows:
                result, _, _, busy = runner.run_pair(
                    runner.native_server_cmd(False, False),
                    lambda port, row=row, size=size: client_cmd(  # type: ignore[misc]
                        runner, row, args.loop, size, port, args.base
                    ),
                    cfg.latency_cpus,
                    cfg.latency_cpus,
                    "driver",
                    cfg.duration,
                )
                cpu = float(result["cpu_user"]) + float(result["cpu_sys"])
                samples[row].append((float(result["rps"]), cpu / int(result["count"]) * 1e6))
                others.append(busy)
        f = [statistics.median(x[i] for x in samples["femtows-sync"]) for i in (0, 1)]
        w = [statistics.median(x[i] for x in samples["websockets-sync"]) for i in (0, 1)]
        line = (f"| {size} | {f[0]:,.0f} | {w[0]:,.0f} | {f[0] / w[0]:.2f}× | {f[1]:.1f} | "
                f"{w[1]:.1f} | {f[1] / w[1]:.2f}× | {statistics.median(others):.1f} |")
        if args.base:
            b = [statistics.median(x[i] for x in samples[BASE]) for i in (0, 1)]
            line += f" {b[0]:,.0f} | {b[0] / w[0]:.2f}× | {b[1]:.1f} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
