"""Turning slices into the outputs: a markdown report, a CSV of per-cell statistics, the raw
slices as JSON and a PNG chart (grouped bars per cell, one colour per row, normalised to the
floor, whiskers = min–max)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.harness import HANDSHAKE_ROWS, ROWS, WS_LIBS, Cell, SliceResult, fmt_size, median

COLOURS = {
    "femtows": "#1f77b4",
    "femtows-loop": "#aec7e8",
    "femtows-cython": "#17becf",
    "picows": "#ff7f0e",
    "femtows-ws": "#393b79",
    "picows-ws": "#ffbb78",
    "websockets": "#2ca02c",
    "aiohttp": "#d62728",
    "floor": "#7f7f7f",
    "floor-afn": "#c7c7c7",
    "native": "#9467bd",
}
NOISE = 0.05  # ratio differences below this are noise on these machines
PEER_BOUND = 90.0  # peer CPU % in a multi-connection cell at which the peer limits the rate


@dataclass
class Stat:
    """Aggregate of one row in one cell."""

    row: str
    ok: int
    total: int
    median: float
    low: float
    high: float
    cpu_per_100k: Optional[float]
    peer_cpu_pct: Optional[float]
    disturbed: int
    retries: int
    error: Optional[str]

    @classmethod
    def of(cls, row: str, slices: Sequence[SliceResult]) -> Stat:
        good = [s for s in slices if not s.error]
        rps = [s.rps for s in good]
        cpu = [c for c in (s.py_cpu_per_100k for s in good) if c is not None]
        peer = [p for p in (s.peer_cpu_pct for s in good) if p is not None]
        errors = [s.error for s in slices if s.error]
        return cls(
            row=row,
            ok=len(good),
            total=len(slices),
            median=median(rps),
            low=min(rps) if rps else math.nan,
            high=max(rps) if rps else math.nan,
            cpu_per_100k=median(cpu) if cpu else None,
            peer_cpu_pct=median(peer) if peer else None,
            disturbed=sum(1 for s in good if s.disturbed),
            retries=sum(s.attempts - 1 for s in slices),
            error=errors[0] if errors else None,
        )


def cell_of(s: SliceResult) -> Cell:
    return Cell(s.side, s.loop, s.tls, s.size, s.conns)


def aggregate(slices: Sequence[SliceResult]) -> Dict[Cell, Dict[str, Stat]]:
    """Per cell, per row. The native row (measured once per TLS/size/conns) is attached to
    every cell with the same TLS/size/conns."""
    groups: Dict[Tuple[Cell, str], List[SliceResult]] = {}
    native: Dict[Tuple[bool, int, int], List[SliceResult]] = {}
    for s in slices:
        if s.side == "handshake":
            continue
        if s.row == "native":
            native.setdefault((s.tls, s.size, s.conns), []).append(s)
        else:
            groups.setdefault((cell_of(s), s.row), []).append(s)
    out: Dict[Cell, Dict[str, Stat]] = {}
    for (cell, row), items in groups.items():
        out.setdefault(cell, {})[row] = Stat.of(row, items)
    for cell, stats in out.items():
        items = native.get((cell.tls, cell.size, cell.conns))
        if items:
            stats["native"] = Stat.of("native", items)
    return out


def ordered_cells(cells: Sequence[Cell]) -> List[Cell]:
    return sorted(cells, key=lambda c: (c.side, c.loop != "uvloop", c.tls, c.conns, c.size))


def ratio(stats: Dict[str, Stat], row: str, ref: str) -> Optional[float]:
    a, b = stats.get(row), stats.get(ref)
    if not a or not b or not a.ok or not b.ok or not b.median:
        return None
    return a.median / b.median


def fmt_ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def fmt_rps(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}"


def markdown(slices: Sequence[SliceResult], extras: Dict[str, Any], meta: Dict[str, Any]) -> str:
    """The whole report as markdown."""
    stats = aggregate(slices)
    cells = ordered_cells(list(stats))
    rows_present = [r for r in ROWS if any(r in s for s in stats.values())]
    lines = [f"# femtows echo benchmark ({meta.get('started', '')})", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k not in ("started", "skipped")]
    for row, why in meta.get("skipped", {}).items():
        lines.append(f"- **skipped {row}**: {why}")
    lines.append("")
    lines += summary_table(stats, cells, rows_present)
    groups: Dict[str, List[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group, []).append(cell)
    lines += ["## Round trips per second, by cell", ""]
    lines += [
        "RPS = echo round trips per second (all connections together), median of the slices "
        "with min–max; vs picows / vs floor = ratio of medians (differences under "
        f"{NOISE:.0%} are noise); CPU/100k = CPU seconds (user+sys) of the Python process "
        "per 100,000 round trips; peer CPU = the native peer's CPU use during the window "
        "(1-connection cells share one CPU with the Python process, so this is its share).",
        "",
    ]
    for group, group_cells in groups.items():
        lines += [f"### {group}", ""]
        lines.append(
            "| size | conns | row | RPS median | min–max | vs picows | vs floor "
            "| CPU/100k | peer CPU | notes |"
        )
        lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
        for cell in group_cells:
            for row in rows_present:
                st = stats[cell].get(row)
                if st is None:
                    continue
                notes = []
                if st.error:
                    notes.append(
                        f"{st.total - st.ok}/{st.total} failed: "
                        + st.error[:120].replace("|", "/").replace("\n", " ")
                    )
                if st.disturbed:
                    notes.append(f"{st.disturbed} disturbed")
                if st.retries:
                    notes.append(f"{st.retries} retried")
                if peer_bound(cell, st):
                    notes.append("peer-bound")
                if row == "native":
                    notes.append("C↔C reference")
                cpu = "" if st.cpu_per_100k is None else f"{st.cpu_per_100k:.2f}"
                peer = "" if st.peer_cpu_pct is None else f"{st.peer_cpu_pct:.0f}%"
                lines.append(
                    f"| {fmt_size(cell.size)} | {cell.conns} | {row} | {fmt_rps(st.median)} "
                    f"| {fmt_rps(st.low)}–{fmt_rps(st.high)} "
                    f"| {fmt_ratio(ratio(stats[cell], row, 'picows'))} "
                    f"| {fmt_ratio(ratio(stats[cell], row, 'floor'))} | {cpu} | {peer} "
                    f"| {'; '.join(notes)} |"
                )
        lines.append("")
    lines += cpu_table(stats, cells)
    lines += extras_markdown(extras)
    return "\n".join(lines) + "\n"


def summary_table(
    stats: Dict[Cell, Dict[str, Stat]], cells: Sequence[Cell], rows: Sequence[str]
) -> List[str]:
    lines = ["## Summary: median RPS relative to the floor (and femtows / picows)", ""]
    head = [
        "side",
        "loop",
        "TLS",
        "size",
        "conns",
        "floor RPS",
        *[r for r in rows if r != "floor"],
        "femtows / picows",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * 5 + "---:|" * (len(head) - 5))
    for cell in cells:
        st = stats[cell]
        floor = st.get("floor")
        cols = [
            cell.side,
            cell.loop,
            "TLS" if cell.tls else "TCP",
            fmt_size(cell.size),
            str(cell.conns),
            fmt_rps(floor.median) if floor and floor.ok else "n/a",
        ]
        cols += [
            fmt_ratio(ratio(st, r, "floor")) + ("*" if peer_bound(cell, st.get(r)) else "")
            for r in rows
            if r != "floor"
        ]
        cols.append(fmt_ratio(ratio(st, "femtows", "picows")))
        lines.append("| " + " | ".join(cols) + " |")
    lines += [
        "",
        f"\\* the native peer used ≥{PEER_BOUND:.0f}% of its CPU: that cell measures the peer "
        "as much as the library (see peer CPU below).",
        "",
    ]
    return lines


def peer_bound(cell: Cell, st: Optional[Stat]) -> bool:
    """In multi-connection cells the peer has its own CPU; near 100% it is the bottleneck."""
    return bool(
        cell.conns > 1 and st and st.peer_cpu_pct is not None and st.peer_cpu_pct >= PEER_BOUND
    )


def cpu_table(stats: Dict[Cell, Dict[str, Stat]], cells: Sequence[Cell]) -> List[str]:
    rows = [r for r in (*WS_LIBS, "floor", "floor-afn") if any(r in s for s in stats.values())]
    lines = ["## CPU seconds of the Python process per 100k round trips", ""]
    lines.append("| side | loop | TLS | size | conns | " + " | ".join(rows) + " |")
    lines.append("|" + "---|" * 5 + "---:|" * len(rows))
    for cell in cells:
        cols = [
            cell.side,
            cell.loop,
            "TLS" if cell.tls else "TCP",
            fmt_size(cell.size),
            str(cell.conns),
        ]
        for r in rows:
            st = stats[cell].get(r)
            cols.append("" if not st or st.cpu_per_100k is None else f"{st.cpu_per_100k:.2f}")
        lines.append("| " + " | ".join(cols) + " |")
    lines.append("")
    return lines


def extras_markdown(extras: Dict[str, Any]) -> List[str]:
    lines: List[str] = []
    hs: List[SliceResult] = extras.get("handshakes", [])
    if hs:
        lines += [
            "## Server handshakes per second",
            "",
            "Native client, sequentially: connect, upgrade, CLOSE, wait for the server's "
            "CLOSE and EOF. Server and client share one CPU. floor / floor-afn: a server "
            "that does no WebSocket work (a fixed 101, a CLOSE for a CLOSE) on the loop's / "
            "aiofastnet's transports, the lower bound for any server on them.",
            "",
            "| server | loop | TLS | handshakes/s median | min–max | vs picows | CPU/1k |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        keys = sorted({(s.loop, s.tls) for s in hs})
        for loop, tls in keys:
            per = {
                r: Stat.of(r, [s for s in hs if s.row == r and s.loop == loop and s.tls == tls])
                for r in HANDSHAKE_ROWS
                if any(s.row == r for s in hs)
            }
            for row, st in per.items():
                cpu = "" if st.cpu_per_100k is None else f"{st.cpu_per_100k / 100:.3f}"
                err = f" ({st.error[:80]})" if st.error else ""
                lines.append(
                    f"| {row} | {loop} | {'TLS' if tls else 'TCP'} | {fmt_rps(st.median)}{err} "
                    f"| {fmt_rps(st.low)}–{fmt_rps(st.high)} "
                    f"| {fmt_ratio(ratio(per, row, 'picows'))} | {cpu} |"
                )
        lines.append("")
    rss: List[dict] = extras.get("rss", [])
    if rss:
        lines += [
            "## Server memory per idle connection",
            "",
            "Python echo server (TCP); the native peer opens 100 warm-up connections, "
            "then N more (upgraded, then idle); (RSS after − RSS before) / N.",
            "",
            "| server | loop | N opened | RSS before | RSS after | KiB per connection |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in rss:
            if r.get("error"):
                lines.append(f"| {r['lib']} | {r['loop']} | 0 | | | failed: {r['error'][:100]} |")
                continue
            note = "" if r["opened"] == r["requested"] else f" (errno {r['errno']})"
            lines.append(
                f"| {r['lib']} | {r['loop']} | {r['opened']}{note} "
                f"| {r['rss_base'] / 2**20:.1f} MiB | {r['rss_after'] / 2**20:.1f} MiB "
                f"| {r['per_conn'] / 1024:.1f} |"
            )
        lines.append("")
    return lines


def write_csv(path: Path, slices: Sequence[SliceResult]) -> None:
    stats = aggregate(slices)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "side",
                "loop",
                "tls",
                "size",
                "conns",
                "row",
                "slices_ok",
                "slices",
                "rps_median",
                "rps_min",
                "rps_max",
                "vs_picows",
                "vs_floor",
                "cpu_s_per_100k",
                "peer_cpu_pct",
                "disturbed",
                "retries",
                "error",
            ]
        )
        for cell in ordered_cells(list(stats)):
            for row in ROWS:
                st = stats[cell].get(row)
                if st is None:
                    continue
                vp, vf = ratio(stats[cell], row, "picows"), ratio(stats[cell], row, "floor")
                w.writerow(
                    [
                        cell.side,
                        cell.loop,
                        int(cell.tls),
                        cell.size,
                        cell.conns,
                        row,
                        st.ok,
                        st.total,
                        round(st.median, 1),
                        round(st.low, 1),
                        round(st.high, 1),
                        "" if vp is None else round(vp, 4),
                        "" if vf is None else round(vf, 4),
                        "" if st.cpu_per_100k is None else round(st.cpu_per_100k, 4),
                        "" if st.peer_cpu_pct is None else round(st.peer_cpu_pct, 1),
                        st.disturbed,
                        st.retries,
                        st.error or "",
                    ]
                )


def write_json(
    path: Path, slices: Sequence[SliceResult], extras: Dict[str, Any], meta: Dict[str, Any]
) -> None:
    data = {
        "meta": meta,
        "slices": [asdict(s) for s in slices],
        "handshakes": [asdict(s) for s in extras.get("handshakes", [])],
        "rss": extras.get("rss", []),
    }
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


def write_chart(path: Path, slices: Sequence[SliceResult]) -> Optional[str]:
    """Grouped bars, one panel per side/loop/TLS. Returns an error text if matplotlib is
    missing (the rest of the report does not need it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no chart: {exc}"
    stats = aggregate(slices)
    cells = ordered_cells(list(stats))
    groups: Dict[str, List[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group, []).append(cell)
    rows = [r for r in ROWS if r != "floor" and any(r in s for s in stats.values())]
    n = len(groups)
    if n == 0:
        return "no chart: no results"
    ncols = 2 if n > 1 else 1
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(8 * ncols, 3.6 * nrows), squeeze=False)
    width = 0.8 / max(1, len(rows))
    for ax, (group, group_cells) in zip(axes.flat, groups.items()):
        for i, row in enumerate(rows):
            xs, ys, lo, hi = [], [], [], []
            for j, cell in enumerate(group_cells):
                st, fl = stats[cell].get(row), stats[cell].get("floor")
                if not st or not st.ok or not fl or not fl.ok or not fl.median:
                    continue
                xs.append(j + (i - (len(rows) - 1) / 2) * width)
                ys.append(st.median / fl.median)
                lo.append((st.median - st.low) / fl.median)
                hi.append((st.high - st.median) / fl.median)
            ax.bar(
                xs,
                ys,
                width,
                color=COLOURS[row],
                label=row,
                yerr=[lo, hi],
                error_kw={"elinewidth": 0.7, "capsize": 1.5},
            )
        ax.axhline(1.0, color=COLOURS["floor"], linestyle="--", linewidth=1)
        ax.set_xticks(range(len(group_cells)))
        ax.set_xticklabels([c.short for c in group_cells], fontsize=8)
        ax.set_title(group, fontsize=10)
        ax.set_ylabel("RPS / floor", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(rows) + 1, fontsize=9, frameon=False)
    fig.text(
        0.5,
        0.005,
        "dashed line = floor (raw asyncio BufferedProtocol echo, no "
        "WebSocket); whiskers = min–max of the slices",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
