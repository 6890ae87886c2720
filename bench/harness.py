"""Running slices: one measurement = a fresh echo server + a fresh load driver, pinned to CPUs,
timed over the driver's START..result window, with the CPU used by everything else on the
machine measured over the same window (disturbed slices are re-run).

Rows (``ROWS``): the Python libraries, ``floor`` (raw asyncio.BufferedProtocol echo, no
WebSocket) and ``native`` (the C peer on both ends: a reference, the same for both sides).
Sides: ``client`` = the Python process is the client and the native peer the echo server;
``server`` = the native peer is the load client and the Python process the echo server.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from bench.procs import Child, Snapshot, rss_bytes, usable_cpus, wait_for_quiet

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CERT = REPO / "tests" / "certs" / "cert.pem"
KEY = REPO / "tests" / "certs" / "key.pem"
PYSIDE = BENCH / "pyside.py"

PY_ROWS = (
    "femtows", "femtows-loop", "femtows-cython", "picows", "femtows-ws", "picows-ws",
    "websockets", "aiohttp", "floor", "floor-afn",
)
ROWS = (*PY_ROWS, "native")
WS_LIBS = (
    "femtows", "femtows-loop", "femtows-cython", "picows", "femtows-ws", "picows-ws",
    "websockets", "aiohttp",
)
#: Rows of the handshake table: the WebSocket servers and the floors (HandshakeFloorServer).
HANDSHAKE_ROWS = (*WS_LIBS, "floor", "floor-afn")


@dataclass(frozen=True)
class Cell:
    """One table cell: all rows are measured interleaved within it."""

    side: str  # "client" or "server": which role the Python process plays
    loop: str  # "uvloop" or "asyncio"
    tls: bool
    size: int
    conns: int

    @property
    def group(self) -> str:
        return f"{self.side} side · {self.loop} · {'TLS' if self.tls else 'TCP'}"

    @property
    def short(self) -> str:
        return f"{fmt_size(self.size)} ×{self.conns}"


def fmt_size(size: int) -> str:
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size >> 10} KiB"
    if size == 102400:
        return "100 KiB"
    return f"{size} B"


@dataclass
class Config:
    """Knobs shared by every slice."""

    wspeer: Path
    cython_so: Optional[Path]
    slices: int = 5
    duration: float = 2.0
    warmup: float = 0.3
    retries: int = 3
    max_other_cpu: float = 0.10  # CPUs' worth of other processes' time that marks a slice
    max_wait: float = 30.0  # longest wait for a quiet machine before a retry
    retry_budget: float = math.inf  # total seconds of retries and waits, then no more
    latency_cpus: List[int] = field(default_factory=list)  # 1-connection cells: both here
    client_cpus: List[int] = field(default_factory=list)  # multi-connection: Python side
    peer_cpus: List[int] = field(default_factory=list)  # multi-connection: native peer
    verbose: bool = True

    def __post_init__(self) -> None:
        cpus = usable_cpus()
        if not self.latency_cpus:
            self.latency_cpus = [cpus[-1]]
        if not self.client_cpus:
            self.client_cpus = [cpus[0]]
        if not self.peer_cpus:
            self.peer_cpus = [cpus[-1]]


@dataclass
class SliceResult:
    """One measured slice (the least disturbed of its attempts)."""

    row: str
    side: str
    loop: str
    tls: bool
    size: int
    conns: int
    slice: int
    count: int = 0
    elapsed: float = 0.0
    rps: float = 0.0
    py_cpu: Optional[float] = None  # seconds of the Python process in the window
    peer_cpu: Optional[float] = None  # seconds of the native peer in the window
    others: float = 0.0  # CPUs used by other processes during the window
    attempts: int = 0
    disturbed: bool = False
    error: Optional[str] = None

    @property
    def py_cpu_per_100k(self) -> Optional[float]:
        if self.py_cpu is None or not self.count:
            return None
        return self.py_cpu / self.count * 1e5

    @property
    def peer_cpu_pct(self) -> Optional[float]:
        if self.peer_cpu is None or not self.elapsed:
            return None
        return 100.0 * self.peer_cpu / self.elapsed


class Runner:
    """Runs slices and keeps the disturbance bookkeeping between them."""

    def __init__(self, cfg: Config, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        self.last_disturbed = False
        self.retried = 0
        self.retry_seconds = 0.0  # spent on retries and quiet-waits so far

    # -- commands ---------------------------------------------------------------------------

    def native_server_cmd(self, raw: bool, tls: bool) -> List[str]:
        cmd = [str(self.cfg.wspeer), "server", "--port", "0"]
        if raw:
            cmd.append("--raw")
        if tls:
            cmd += ["--tls", str(CERT), str(KEY)]
        return cmd

    def native_driver_cmd(
        self, mode: str, port: int, size: int, conns: int, raw: bool, tls: bool, duration: float
    ) -> List[str]:
        cmd = [
            str(self.cfg.wspeer),
            mode,
            "--port",
            str(port),
            "--size",
            str(size),
            "--conns",
            str(conns),
            "--duration",
            str(duration),
            "--warmup",
            str(self.cfg.warmup),
        ]
        if raw:
            cmd.append("--raw")
        if tls:
            cmd.append("--tls")
        return cmd

    def pyside_cmd(
        self, lib: str, role: str, loop: str, tls: bool, size: int, conns: int, port: int
    ) -> List[str]:
        cmd = [
            sys.executable,
            str(PYSIDE),
            "--lib",
            lib,
            "--role",
            role,
            "--loop",
            loop,
            "--tls",
            str(int(tls)),
            "--size",
            str(size),
            "--conns",
            str(conns),
            "--duration",
            str(self.cfg.duration),
            "--warmup",
            str(self.cfg.warmup),
            "--port",
            str(port),
        ]
        if self.cfg.cython_so is not None:
            cmd += ["--cython-so", str(self.cfg.cython_so)]
        return cmd

    # -- one attempt ------------------------------------------------------------------------

    def run_pair(
        self,
        server_cmd: List[str],
        driver_cmd: Callable[[int], List[str]],
        server_cpus: Sequence[int],
        driver_cpus: Sequence[int],
        python_is: str,
        duration: float,
    ) -> tuple[dict, Optional[float], Optional[float], float]:
        """Start the server, then the driver; measure over the driver's window.

        Returns (driver's JSON result, Python process CPU s, native process CPU s, others).
        ``python_is``: "server", "driver" or "" (which process is the Python one).
        """
        server = Child(server_cmd, server_cpus)
        driver: Optional[Child] = None
        try:
            port = int(server.expect("LISTENING", 30).split()[1])
            driver = Child(driver_cmd(port), driver_cpus)
            pids = [server.pid, driver.pid]
            driver.expect("START", 60)
            before = Snapshot.take(pids)
            line = driver.expect("{", duration + 30)
            after = Snapshot.take(pids)
            result = json.loads(line)
            if result.get("error"):
                raise RuntimeError(f"{result['error']} ({driver.describe()})")
            if server.proc.poll() is not None:
                raise RuntimeError(f"server died: {server.describe()}")
            py_pid = {"server": server.pid, "driver": driver.pid}.get(python_is)
            native_pid = {"server": driver.pid, "driver": server.pid}.get(python_is, server.pid)
            py_cpu = before.cpu_of(after, py_pid) if py_pid else None
            native_cpu = before.cpu_of(after, native_pid)
            return result, py_cpu, native_cpu, before.others(after)
        except RuntimeError as exc:
            if driver is not None and driver.proc.poll() not in (None, 0):
                raise RuntimeError(f"{exc}; server: {server.describe()}") from None
            raise RuntimeError(f"{exc}") from None
        finally:
            server.kill()
            if driver is not None:
                driver.kill()

    def echo_attempt(self, row: str, cell: Cell, res: SliceResult) -> None:
        """One attempt of an echo slice; fills ``res``."""
        raw = row.startswith("floor")
        single = cell.conns == 1
        py_cpus = self.cfg.latency_cpus if single else self.cfg.client_cpus
        peer_cpus = self.cfg.latency_cpus if single else self.cfg.peer_cpus
        d = self.cfg.duration
        if row == "native":
            server_cmd = self.native_server_cmd(False, cell.tls)
            result, py_cpu, peer_cpu, others = self.run_pair(
                server_cmd,
                lambda p: self.native_driver_cmd(
                    "client", p, cell.size, cell.conns, False, cell.tls, d
                ),
                py_cpus,
                peer_cpus,
                "",
                d,
            )
        elif cell.side == "client":
            result, py_cpu, peer_cpu, others = self.run_pair(
                self.native_server_cmd(raw, cell.tls),
                lambda p: self.pyside_cmd(
                    row, "client", cell.loop, cell.tls, cell.size, cell.conns, p
                ),
                peer_cpus,
                py_cpus,
                "driver",
                d,
            )
        else:
            result, py_cpu, peer_cpu, others = self.run_pair(
                self.pyside_cmd(row, "server", cell.loop, cell.tls, cell.size, cell.conns, 0),
                lambda p: self.native_driver_cmd(
                    "client", p, cell.size, cell.conns, raw, cell.tls, d
                ),
                py_cpus,
                peer_cpus,
                "server",
                d,
            )
        res.count = int(result["count"])
        res.elapsed = float(result["elapsed"])
        res.rps = res.count / res.elapsed if res.elapsed else 0.0
        res.py_cpu = py_cpu
        res.peer_cpu = peer_cpu
        res.others = others

    def handshake_attempt(self, row: str, loop: str, tls: bool, res: SliceResult) -> None:
        """One attempt of a handshake slice (Python server, native connect+upgrade+close)."""
        cpus = self.cfg.latency_cpus
        d = self.cfg.duration
        server = self.pyside_cmd(row, "server", loop, tls, 0, 1, 0)
        if row.startswith("floor"):
            server.append("--handshake-floor")  # the floor rows answer handshakes, not echoes
        result, py_cpu, peer_cpu, others = self.run_pair(
            server,
            lambda p: self.native_driver_cmd("handshake", p, 0, 1, False, tls, d),
            cpus,
            cpus,
            "server",
            d,
        )
        res.count = int(result["count"])
        res.elapsed = float(result["elapsed"])
        res.rps = res.count / res.elapsed if res.elapsed else 0.0
        res.py_cpu, res.peer_cpu, res.others = py_cpu, peer_cpu, others

    # -- retries ----------------------------------------------------------------------------

    def measure(self, res: SliceResult, attempt: Callable[[SliceResult], None]) -> SliceResult:
        """Run ``attempt`` until a slice is undisturbed (at most 1 + retries times); keep the
        least disturbed one. Waits for a quiet machine before retrying."""
        best: Optional[SliceResult] = None
        for n in range(1 + self.cfg.retries):
            t0 = time.monotonic()
            if self.last_disturbed and self.retry_seconds < self.cfg.retry_budget:
                wait_for_quiet(self.cfg.max_other_cpu, self.cfg.max_wait if n else 2.0)
            trial = SliceResult(**{**asdict(res), "attempts": n + 1})
            try:
                attempt(trial)
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                trial.error = str(exc)[:800]
                self.last_disturbed = False
                return trial  # a broken library is reported, not retried
            trial.disturbed = trial.others > self.cfg.max_other_cpu
            self.last_disturbed = trial.disturbed
            if n or self.last_disturbed:
                self.retry_seconds += time.monotonic() - t0
            if best is None or trial.others < best.others:
                best = trial
            if not trial.disturbed or self.retry_seconds >= self.cfg.retry_budget:
                break
            self.retried += 1
        assert best is not None
        best.attempts = n + 1
        return best

    def echo_slice(self, row: str, cell: Cell, index: int) -> SliceResult:
        res = SliceResult(row, cell.side, cell.loop, cell.tls, cell.size, cell.conns, index)
        return self.measure(res, lambda r: self.echo_attempt(row, cell, r))

    def handshake_slice(self, row: str, loop: str, tls: bool, index: int) -> SliceResult:
        res = SliceResult(row, "handshake", loop, tls, 0, 1, index)
        return self.measure(res, lambda r: self.handshake_attempt(row, loop, tls, r))

    # -- whole cells ------------------------------------------------------------------------

    def run_cell(self, cell: Cell, rows: Sequence[str]) -> List[SliceResult]:
        """All rows of a cell, interleaved: slice 0 of every row, then slice 1, ..."""
        results: List[SliceResult] = []
        for index in range(self.cfg.slices):
            for row in rows:
                res = self.echo_slice(row, cell, index)
                results.append(res)
                if res.error:
                    self.log(f"    {row}: ERROR {res.error}")
        if self.cfg.verbose:
            summary = []
            for row in rows:
                rps = [r.rps for r in results if r.row == row and not r.error]
                summary.append(f"{row} {median(rps):,.0f}" if rps else f"{row} failed")
            self.log("    " + " | ".join(summary))
        return results

    def idle_rss(self, lib: str, loop: str, conns: int, warm: int = 100) -> dict:
        """Server RSS per idle connection: Python echo server, ``warm`` connections opened
        first (one-time costs), then ``conns`` more; (RSS after - RSS before) / opened."""
        raw = lib.startswith("floor")
        cpus = self.cfg.latency_cpus
        server = Child(self.pyside_cmd(lib, "server", loop, False, 256, 1, 0), cpus)
        clients: List[Child] = []
        try:
            port = int(server.expect("LISTENING", 30).split()[1])

            def open_idle(n: int) -> tuple[int, int]:
                cmd = [str(self.cfg.wspeer), "idle", "--port", str(port), "--conns", str(n)]
                if raw:
                    cmd.append("--raw")
                child = Child(cmd, self.cfg.peer_cpus, stdin_pipe=True)
                clients.append(child)
                _, opened, err = child.expect("READY", 300).split()
                return int(opened), int(err)

            settle = 0.1 if conns <= 2000 else 0.5
            open_idle(warm)
            time.sleep(settle)
            base = rss_bytes(server.pid)
            opened, err = open_idle(conns)
            time.sleep(settle)  # let the server finish whatever it does after the 101
            after = rss_bytes(server.pid)
            return {
                "lib": lib,
                "loop": loop,
                "requested": conns,
                "opened": opened,
                "errno": err,
                "rss_base": base,
                "rss_after": after,
                "per_conn": (after - base) / opened if opened else math.nan,
            }
        except RuntimeError as exc:
            return {
                "lib": lib,
                "loop": loop,
                "requested": conns,
                "opened": 0,
                "error": f"{exc}; server: {server.describe()}"[:800],
            }
        finally:
            for child in clients:
                child.kill()
            server.kill()


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
