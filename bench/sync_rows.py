"""Sync-API client rows side by side: ``femtows-sync`` vs ``websockets-sync``.

    .venv/bin/python -m bench.sync_rows [--sizes 256 8192 102400] [--slices 5] [--duration 2]

Client side, 1 connection, one message in flight, against the native echo peer
(bench/native/wspeer.c), rows interleaved slice by slice in fresh processes, as the main
table does (bench/harness.py's ``Runner.run_pair``). CPU per message is the client process's
own ``getrusage`` (all its threads) over the measured window. Prints the medians and the
femtows/websockets ratios. The threading API has no server rows (its server is the asyncio
engine's, measured by the ``femtows-ws`` row).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Dict, List, Optional, Tuple

from bench.build import build_native
from bench.harness import Config, Runner

ROWS = ("femtows-sync", "websockets-sync")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 8192, 102400])
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    args = parser.parse_args(argv)
    cfg = Config(wspeer=build_native(), cython_so=None, duration=args.duration)
    runner = Runner(cfg)
    print("| size | femtows-sync RPS | websockets-sync RPS | RPS ratio | CPU µs/msg femtows "
          "| CPU µs/msg websockets | CPU ratio | machine busy (other CPUs) |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        samples: Dict[str, List[Tuple[float, float]]] = {row: [] for row in ROWS}
        others: List[float] = []
        for _ in range(args.slices):
            for row in ROWS:
                result, _, _, busy = runner.run_pair(
                    runner.native_server_cmd(False, False),
                    lambda port, row=row, size=size: runner.pyside_cmd(  # type: ignore[misc]
                        row, "client", args.loop, False, size, 1, port
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
        print(f"| {size} | {f[0]:,.0f} | {w[0]:,.0f} | {f[0] / w[0]:.2f}× | {f[1]:.1f} | "
              f"{w[1]:.1f} | {f[1] / w[1]:.2f}× | {statistics.median(others):.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
