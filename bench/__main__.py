"""femtows echo benchmark: ``python -m bench [--quick] [options]`` (see bench/README.md).

Builds the native peer and the Cython listeners, runs every cell (rows interleaved, fresh
processes per slice, disturbed slices re-run), then writes NAME.md, NAME.csv, NAME.json and
NAME.png for ``--out NAME`` and prints the markdown report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import math
import os
import platform
import ssl
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench import build, report
from bench.harness import (
    HANDSHAKE_ROWS,
    PY_ROWS,
    REPO,
    ROWS,
    Cell,
    Config,
    Runner,
    SliceResult,
)

QUICK = {
    "loops": ["uvloop"],
    "tls": [0],
    "sizes": [256, 8192],
    "conns": [1, 16],
    "sides": ["client", "server"],
    "slices": 3,
    "duration": 0.12,
    "warmup": 0.08,
    "retries": 1,
    "max_wait": 3.0,
    "retry_budget": 8.0,  # keeps a busy machine from pushing the smoke test past a minute
    "max_other_cpu": 0.25,  # short windows: /proc/stat's 10 ms ticks make readings coarse
    "idle_conns": 300,
    "extra_slices": 1,
}
FULL = {
    "loops": ["uvloop", "asyncio"],
    "tls": [0, 1],
    "sizes": [256, 8192, 102400, 1048576],
    "conns": [1, 16],
    "sides": ["client", "server"],
    "slices": 5,
    "duration": 2.0,
    "warmup": 0.3,
    "retries": 3,
    "max_wait": 30.0,
    "retry_budget": math.inf,
    "max_other_cpu": 0.10,
    "idle_conns": 10000,
    "extra_slices": None,  # = --slices
}
REQUIRED_MODULE = {
    "femtows": "femtows",
    "femtows-loop": "femtows",
    "femtows-cython": "femtows",
    "floor-afn": "aiofastnet",
    "picows": "picows",
    "femtows-ws": "femtows.websockets.asyncio.client",
    "picows-ws": "picows.websockets",
    "websockets": "websockets.asyncio.client",
    "aiohttp": "aiohttp",
}


def split_list(values: Optional[Sequence[str]]) -> Optional[List[str]]:
    """``--x a b``, ``--x a,b`` and ``--x a, b`` all give [a, b]."""
    if values is None:
        return None
    return [v for item in values for v in item.split(",") if v.strip()]


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke test: uvloop, TCP, 256 B and 8 KiB, 1 and 16 connections, "
        "both sides, every row but femtows-loop and floor-afn, 3 short slices (< 1 minute)",
    )
    p.add_argument(
        "--libs",
        "--rows",
        dest="rows",
        nargs="+",
        help=f"rows to run (default all): {', '.join(ROWS)}",
    )
    p.add_argument("--sizes", nargs="+", help="message sizes in bytes")
    p.add_argument("--loops", nargs="+", help="uvloop, asyncio")
    p.add_argument("--tls", nargs="+", help="0 (TCP), 1 (TLS)")
    p.add_argument("--sides", nargs="+", help="client, server")
    p.add_argument("--conns", nargs="+", help="connections per cell, e.g. 1 16")
    p.add_argument("--slices", type=int, help="slices per row per cell")
    p.add_argument("--duration", type=float, help="measured seconds per slice")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each window")
    p.add_argument("--retries", type=int, help="re-runs of a disturbed slice")
    p.add_argument(
        "--max-other-cpu",
        type=float,
        help="CPUs used by other processes above which a slice is disturbed",
    )
    p.add_argument("--max-wait", type=float, help="max seconds to wait for a quiet machine")
    p.add_argument(
        "--retry-budget", type=float, help="total seconds for retries and waits (default: no cap)"
    )
    p.add_argument(
        "--extras", nargs="+", default=["handshake", "rss"], help="handshake, rss, or none"
    )
    p.add_argument("--no-echo", action="store_true", help="skip the echo cells (extras only)")
    p.add_argument("--idle-conns", type=int, help="connections for the RSS measurement")
    p.add_argument("--extra-slices", type=int, help="handshake slices (default --slices)")
    p.add_argument("--latency-cpu", type=int, help="CPU for both processes, 1-conn cells")
    p.add_argument("--client-cpu", type=int, help="CPU of the Python side, multi-conn cells")
    p.add_argument("--peer-cpu", type=int, help="CPU of the native peer, multi-conn cells")
    p.add_argument("--out", help="output path without extension (default bench/results/...)")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key in ("loops", "tls", "sizes", "conns", "sides"):
        value = split_list(getattr(args, key))
        setattr(args, key, value if value else list(defaults[key]))
    args.sizes = [int(x) for x in args.sizes]
    args.conns = [int(x) for x in args.conns]
    args.tls = [bool(int(x)) for x in args.tls]
    for key in (
        "slices",
        "duration",
        "warmup",
        "retries",
        "max_wait",
        "max_other_cpu",
        "idle_conns",
        "extra_slices",
        "retry_budget",
    ):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    if args.extra_slices is None:
        args.extra_slices = args.slices
    # --quick leaves out the two transport-comparison rows (femtows-loop, floor-afn): the smoke
    # test must stay under a minute.
    args.rows = split_list(args.rows) or [
        r for r in ROWS if not (args.quick and r in ("femtows-loop", "floor-afn"))
    ]
    args.extras = [e for e in split_list(args.extras) or [] if e != "none"]
    bad = [r for r in args.rows if r not in ROWS]
    if bad:
        p.error(f"unknown rows {bad}; choose from {', '.join(ROWS)}")
    bad = [x for x in args.loops if x not in ("uvloop", "asyncio")]
    bad += [x for x in args.sides if x not in ("client", "server")]
    bad += [x for x in args.extras if x not in ("handshake", "rss")]
    if bad:
        p.error(f"unknown values {bad}")
    if args.out is None:
        name = "quick" if args.quick else dt.datetime.now().strftime("bench-%Y%m%d-%H%M%S")
        args.out = str(REPO / "bench" / "results" / name)
    return args


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "femtows"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + (" + uncommitted changes in femtows/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def check_rows(rows: List[str], skipped: Dict[str, str]) -> Optional[Path]:
    """Drop rows whose library is missing (recorded in ``skipped``); build the Cython
    listeners if that row is wanted. Returns the compiled module's path."""
    cython_so: Optional[Path] = None
    for row in list(rows):
        module = REQUIRED_MODULE.get(row)
        if module is None:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            skipped[row] = f"{module} is not importable (pip install -r bench/requirements.txt)"
            rows.remove(row)
    if "femtows-cython" in rows:
        try:
            cython_so = build.build_cython()
        except build.BuildError as exc:
            skipped["femtows-cython"] = str(exc).splitlines()[0]
            rows.remove("femtows-cython")
    return cython_so


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        wspeer = build.build_native()
    except build.BuildError as exc:
        print(exc, file=sys.stderr)
        return 2
    skipped: Dict[str, str] = {}
    rows = list(args.rows)
    cython_so = check_rows(rows, skipped)
    loops = list(args.loops)
    if "uvloop" in loops and importlib.util.find_spec("uvloop") is None:
        skipped["uvloop loop"] = "uvloop is not installed"
        loops.remove("uvloop")
    for what, why in skipped.items():
        print(f"skipping {what}: {why}", flush=True)
    cfg = Config(
        wspeer=wspeer,
        cython_so=cython_so,
        slices=args.slices,
        duration=args.duration,
        warmup=args.warmup,
        retries=args.retries,
        max_other_cpu=args.max_other_cpu,
        max_wait=args.max_wait,
        retry_budget=args.retry_budget,
    )
    if args.latency_cpu is not None:
        cfg.latency_cpus = [args.latency_cpu]
    if args.client_cpu is not None:
        cfg.client_cpus = [args.client_cpu]
    if args.peer_cpu is not None:
        cfg.peer_cpus = [args.peer_cpu]
    runner = Runner(cfg, log=lambda s: print(s, flush=True))

    cells = [
        Cell(side, loop, tls, size, conns)
        for tls in args.tls
        for loop in loops
        for side in args.sides
        for conns in args.conns
        for size in args.sizes
        if not args.no_echo
    ]
    py_rows = [r for r in rows if r in PY_ROWS]
    per_slice = args.duration + args.warmup + 0.3
    estimate = len(cells) * len(py_rows) * args.slices * per_slice
    print(
        f"{len(cells)} cells × {len(py_rows)} rows × {args.slices} slices "
        f"(≈{estimate / 60:.1f} min before retries and extras); pinning: 1-conn cells on "
        f"CPU {cfg.latency_cpus}, multi-conn: Python {cfg.client_cpus} / peer "
        f"{cfg.peer_cpus}",
        flush=True,
    )
    if len(set(cfg.client_cpus) | set(cfg.peer_cpus)) < 2:
        print("warning: fewer than 2 CPUs: multi-connection cells share one CPU", flush=True)

    slices: List[SliceResult] = []
    extras: Dict[str, Any] = {}
    native_done: set = set()
    interrupted = False
    try:
        for i, cell in enumerate(cells, 1):
            cell_rows = list(py_rows)
            key = (cell.tls, cell.size, cell.conns)
            if "native" in rows and key not in native_done:
                cell_rows.append("native")
                native_done.add(key)
            print(
                f"[{i}/{len(cells)}] {cell.group} · {cell.short}  "
                f"(t={time.monotonic() - started:.0f}s)",
                flush=True,
            )
            results = runner.run_cell(cell, cell_rows)
            for r in results:
                if r.row == "native":
                    r.side, r.loop = "native", "-"
            slices.extend(results)
        if "handshake" in args.extras:
            extras["handshakes"] = run_handshakes(runner, rows, loops, args.tls, args.extra_slices)
        if "rss" in args.extras:
            extras["rss"] = run_rss(runner, rows, loops[0] if loops else "asyncio", args.idle_conns)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: writing what was measured", flush=True)

    meta = {
        "started": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "femtows": f"{version_of('femtows')} (git {git_revision()})",
        "peers": ", ".join(
            f"{d} {version_of(d)}" for d in ("picows", "websockets", "aiohttp", "uvloop")
        ),
        "python": f"{platform.python_version()} ({sys.executable})",
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"{ssl.OPENSSL_VERSION}",
        "settings": f"{args.slices} slices × {args.duration}s (+{args.warmup}s warm-up), "
        f"retries ≤{args.retries} when others used >{args.max_other_cpu} CPU",
        "pinning": f"1-conn cells: both on CPU {cfg.latency_cpus}; multi-conn: Python "
        f"{cfg.client_cpus}, native peer {cfg.peer_cpus}",
        "disturbed slices re-run": str(runner.retried),
        "wall time": f"{time.monotonic() - started:.0f}s",
        "skipped": skipped,
    }
    text = report.markdown(slices, extras, meta)
    out.with_suffix(".md").write_text(text)
    report.write_csv(out.with_suffix(".csv"), slices)
    report.write_json(out.with_suffix(".json"), slices, extras, meta)
    chart_error = report.write_chart(out.with_suffix(".png"), slices)
    print()
    print(text)
    if chart_error:
        print(chart_error)
    print(
        f"wrote {out}.md, .csv, .json"
        + ("" if chart_error else ", .png")
        + f" in {time.monotonic() - started:.0f}s"
    )
    own_failures = [
        s
        for s in slices
        if s.error and s.row in ("femtows", "femtows-loop", "femtows-cython", "floor", "native")
    ]
    if own_failures:
        print(f"{len(own_failures)} femtows/floor/native slices failed", file=sys.stderr)
    return 1 if interrupted or own_failures else 0


def run_handshakes(
    runner: Runner,
    rows: Sequence[str],
    loops: Sequence[str],
    tls_values: Sequence[bool],
    slices: int,
) -> List[SliceResult]:
    """Server handshakes per second for each WebSocket row, interleaved per slice."""
    libs = [r for r in HANDSHAKE_ROWS if r in rows]
    out: List[SliceResult] = []
    for tls in tls_values:
        for loop in loops[:1]:
            print(f"handshakes · {loop} · {'TLS' if tls else 'TCP'}", flush=True)
            for index in range(slices):
                for lib in libs:
                    res = runner.handshake_slice(lib, loop, tls, index)
                    if res.error:
                        print(f"    {lib}: ERROR {res.error}", flush=True)
                    out.append(res)
    return out


def run_rss(runner: Runner, rows: Sequence[str], loop: str, conns: int) -> List[dict]:
    """Idle-connection memory of each Python server (TCP)."""
    out = []
    for lib in [r for r in PY_ROWS if r in rows]:
        print(f"idle RSS · {lib} · {conns} connections", flush=True)
        out.append(runner.idle_rss(lib, loop, conns))
    return out


if __name__ == "__main__":
    sys.exit(main())
