"""Autobahn TestSuite conformance run for femtows, driven by kosoku.

Server mode: starts examples/autobahn_echo_server.py on an ephemeral port and lets
``kosoku -m fuzzingclient`` drive it. Client mode: starts ``kosoku -m fuzzingserver`` and
runs examples/autobahn_echo_client.py against it. Then reads kosoku's JSON reports, prints a
per-category summary, lists every failing case, and exits non-zero if any selected case
FAILED (or errored, or is missing) or closed with a bad verdict (WRONG CODE, UNCLEAN, ...).
UNIMPLEMENTED is accepted only for the compression categories 12.* and 13.*.

    python tests/autobahn/run_autobahn.py --mode both --cases '1.*' '2.*' \\
        --exclude '12.*' '13.*' --loop uvloop --outdir reports/autobahn

Every subprocess runs in its own session, is bounded by --timeout and is killed on exit
(also on Ctrl-C, SIGTERM or an exception). See tests/autobahn/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, TextIO
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
ECHO_SERVER = EXAMPLES / "autobahn_echo_server.py"
ECHO_CLIENT = EXAMPLES / "autobahn_echo_client.py"
# --api websockets: the same echo written against femtows.websockets (websockets' API):
# ``async for message in ws: await ws.send(message)``.
ECHO_PROGRAMS = {
    "core": (ECHO_SERVER, ECHO_CLIENT),
    "websockets": (
        EXAMPLES / "websockets" / "autobahn_echo_server.py",
        EXAMPLES / "websockets" / "autobahn_echo_client.py",
    ),
    # --api sync: the same echo on the threading API (femtows.websockets.sync).
    "sync": (
        EXAMPLES / "websockets" / "autobahn_echo_sync_server.py",
        EXAMPLES / "websockets" / "autobahn_echo_sync_client.py",
    ),
}
UVICORN_ECHO = EXAMPLES / "uvicorn_echo.py"  # Starlette echo endpoint on uvicorn (--uvicorn)
UVICORN_IMPLS = ("femtows", "websockets-sansio", "wsproto")

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0  # seconds for a subprocess to start listening
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
REPORT_GRACE = 60.0  # seconds kosoku fuzzingserver may take to write reports and exit

CATEGORIES: Dict[str, str] = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8",
    "7": "Close",
    "9": "Limits/Performance",
    "10": "Misc",
    "12": "Compression",
    "13": "Compression",
}
# Categories where UNIMPLEMENTED is acceptable (permessage-deflate is optional).
OPTIONAL_CATEGORIES = frozenset({"12", "13"})
# With --compression the echo programs negotiate permessage-deflate: 12.* and 13.* must then be
# OK like every other case (main() empties the set).
_optional_categories = set(OPTIONAL_CATEGORIES)

GOOD_BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL")
GOOD_CLOSE = ("OK", "INFORMATIONAL")
BEHAVIOR_COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")

DIRECTIONS = {
    "server": "femtows server (kosoku fuzzingclient -> autobahn_echo_server.py)",
    "client": "femtows client (autobahn_echo_client.py -> kosoku fuzzingserver)",
}


class HarnessError(Exception):
    """The run could not produce a trustworthy report (timeout, crash, missing files)."""


# --------------------------------------------------------------------------- processes


class Proc:
    """A subprocess in its own session (process group) with stdin closed.

    Its stdout and stderr are read by a thread that copies them to a log file and keeps
    the lines, so they can be matched (e.g. the server's ``LISTENING <port>``).
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: Dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log: TextIO = open(log_path, "w", encoding="utf-8", errors="replace")
        self._log.write("$ " + " ".join(self.argv) + "\n")
        self._log.flush()
        self._lines: List[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._read, args=(self.popen.stdout,), daemon=True, name=f"{name}-reader"
        )
        self._reader.start()

    def _read(self, stream: Optional[IO[str]]) -> None:
        if stream is None:
            return
        for line in stream:
            self._log.write(line)
            self._log.flush()
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def lines(self) -> List[str]:
        with self._cond:
            return list(self._lines)

    def wait_for_line(self, pattern: str, timeout: float) -> Optional[re.Match[str]]:
        """First output line matching ``pattern``; None on timeout or process exit."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if self.popen.poll() is not None and not self._reader.is_alive():
                    return None
                self._cond.wait(min(remaining, 0.2))

    def wait(self, timeout: float) -> Optional[int]:
        """Exit code, or None if still running after ``timeout`` seconds."""
        try:
            return self.popen.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after a grace period; close the log."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            if self.wait(STOP_GRACE) is None:
                self._signal(signal.SIGKILL)
                self.wait(STOP_GRACE)
        self._reader.join(timeout=STOP_GRACE)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)  # its own session: pgid == pid
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def tail(self, n: int = 20) -> str:
        lines = self.lines()[-n:]
        return "\n".join(lines) if lines else "(no output)"


@contextlib.contextmanager
def started(name: str, argv: Sequence[str], log_path: Path, env: Dict[str, str]) -> Iterator[Proc]:
    proc = Proc(name, argv, log_path, env)
    try:
        yield proc
    finally:
        proc.stop()


def kosoku_argv() -> List[str]:
    """The kosoku console script: next to this interpreter, else on PATH."""
    bindir = Path(sys.executable).parent
    for name in ("kosoku", "kosoku.exe"):
        candidate = bindir / name
        if candidate.is_file():
            return [str(candidate)]
    found = shutil.which("kosoku")
    if found:
        return [found]
    try:
        import kosoku  # noqa: F401
    except ImportError:
        raise HarnessError("kosoku not found: pip install kosoku") from None
    return [sys.executable, "-c", "from kosoku._cli import main; main()"]


def update_reports(port: int, agent: str) -> None:
    """Open ``/updateReports`` on kosoku's fuzzing server with a bare-socket handshake."""
    request = (
        f"GET /updateReports?agent={quote(agent)} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        with socket.create_connection((HOST, port), timeout=10.0) as sock:
            sock.sendall(request.encode())
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                response += chunk
            # Masked CLOSE 1000, then wait for the server to drop the connection.
            mask = os.urandom(4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8"))
            sock.sendall(b"\x88\x82" + mask + payload)
            while sock.recv(4096):
                pass
    except OSError as exc:
        print(f"[client] /updateReports failed: {exc}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_accepting(proc: Proc, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def selection_args(cases: Sequence[str], exclude: Sequence[str]) -> List[str]:
    args: List[str] = []
    for case in cases:
        args += ["-i", case]
    for case in exclude:
        args += ["-x", case]
    return args


def clear_reports(report_dir: Path) -> None:
    """Remove a previous run's report files (kosoku only adds/overwrites)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    for pattern in ("index.json", "index.html", "*_case_*.json", "*_case_*.html"):
        for path in report_dir.glob(pattern):
            path.unlink()


# --------------------------------------------------------------------------- directions


@dataclass
class Options:
    cases: List[str]
    exclude: List[str]
    loop: str
    outdir: Path
    timeout: float
    parallelism: int
    agent: str
    env: Dict[str, str]
    api: str = "core"
    uvicorn: List[str] = field(default_factory=list)
    compression: bool = False


@dataclass
class CaseOutcome:
    case_id: str
    behavior: str
    behavior_close: str
    report_file: Path
    agent: str

    @property
    def category(self) -> str:
        return self.case_id.split(".", 1)[0]

    @property
    def behavior_ok(self) -> bool:
        if self.behavior in GOOD_BEHAVIORS:
            return True
        return self.behavior == "UNIMPLEMENTED" and self.category in _optional_categories

    @property
    def close_ok(self) -> bool:
        if self.behavior_close in GOOD_CLOSE:
            return True
        return (self.behavior_close == "UNIMPLEMENTED"
                and self.category in _optional_categories)

    @property
    def passed(self) -> bool:
        return self.behavior_ok and self.close_ok


@dataclass
class DirectionResult:
    direction: str
    wall_time: float = 0.0
    outcomes: List[CaseOutcome] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)  # harness-level problems
    expected_count: Optional[int] = None
    title: Optional[str] = None  # instead of DIRECTIONS[direction]
    informational: bool = False  # a comparison run: its failures do not fail the run

    @property
    def failures(self) -> List[CaseOutcome]:
        return [o for o in self.outcomes if not o.passed]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failures


def run_server_direction(opts: Options, uvicorn_impl: Optional[str] = None) -> DirectionResult:
    """kosoku fuzzingclient drives the example echo server, or (``uvicorn_impl``) the Starlette
    echo endpoint of examples/uvicorn_echo.py on uvicorn with that WebSocket implementation."""
    result = DirectionResult("server")
    report_dir = opts.outdir / "servers"
    server_argv = [
        sys.executable, "-u", str(ECHO_PROGRAMS[opts.api][0]),
        "--host", HOST, "--port", "0", "--loop", opts.loop,
    ] + (["--compression"] if opts.compression else [])  # fmt: skip
    log_name = "server.log"
    if uvicorn_impl is not None:
        result.title = f"Starlette echo on uvicorn, ws={uvicorn_impl} (kosoku fuzzingclient)"
        result.informational = uvicorn_impl != "femtows"
        report_dir = opts.outdir / f"uvicorn-{uvicorn_impl}"
        log_name = f"uvicorn-{uvicorn_impl}.log"
        server_argv = [
            sys.executable, "-u", str(UVICORN_ECHO),
            "--host", HOST, "--port", "0", "--loop", opts.loop, "--ws", uvicorn_impl,
        ]  # fmt: skip
    clear_reports(report_dir)
    deadline = time.monotonic() + opts.timeout
    started_at = time.monotonic()
    try:
        with started("echo-server", server_argv, opts.outdir / log_name, opts.env) as server:
            match = server.wait_for_line(r"^LISTENING (\d+)$", STARTUP_TIMEOUT)
            if match is None:
                code = server.popen.poll()
                when = f"exited with code {code}" if code is not None else "timed out"
                raise HarnessError(
                    f"echo server {when} before printing LISTENING; see {server.log_path}:\n"
                    f"{server.tail()}"
                )
            port = int(match.group(1))
            print(f"[server] echo server listening on {HOST}:{port} (loop={opts.loop})")
            kosoku = kosoku_argv() + [
                "-m", "fuzzingclient", f"{HOST}:{port}",
                "-p", str(opts.parallelism), "-o", str(report_dir),
            ] + selection_args(opts.cases, opts.exclude)  # fmt: skip
            print(f"[server] {' '.join(kosoku)}", flush=True)
            with started("kosoku", kosoku, opts.outdir / "kosoku-servers.log", opts.env) as fuzz:
                code = fuzz.wait(deadline - time.monotonic())
                if code is None:
                    raise HarnessError(
                        f"kosoku fuzzingclient did not finish within {opts.timeout:g}s:\n"
                        f"{fuzz.tail()}"
                    )
                if not (report_dir / "index.json").is_file():
                    raise HarnessError(
                        f"kosoku fuzzingclient exited with {code} without writing "
                        f"{report_dir / 'index.json'}:\n{fuzz.tail()}"
                    )
            if server.popen.poll() is not None:
                result.errors.append(
                    f"echo server exited during the run (code {server.popen.returncode}); "
                    f"see {server.log_path}"
                )
    except HarnessError as exc:
        result.errors.append(str(exc))
    finally:
        result.wall_time = time.monotonic() - started_at
    load_reports(result, report_dir)
    return result


def run_client_direction(opts: Options) -> DirectionResult:
    """The example echo client runs every case served by kosoku fuzzingserver."""
    result = DirectionResult("client")
    report_dir = opts.outdir / "clients"
    clear_reports(report_dir)
    deadline = time.monotonic() + opts.timeout
    started_at = time.monotonic()
    log_path = opts.outdir / "kosoku-clients.log"
    try:
        with contextlib.ExitStack() as stack:
            fuzz: Optional[Proc] = None
            port = 0
            for _attempt in range(3):  # free_port() can race with another process
                port = free_port()
                kosoku = kosoku_argv() + [
                    "-m", "fuzzingserver", f"{HOST}:{port}", "-o", str(report_dir),
                ] + selection_args(opts.cases, opts.exclude)  # fmt: skip
                print(f"[client] {' '.join(kosoku)}", flush=True)
                proc = stack.enter_context(started("kosoku", kosoku, log_path, opts.env))
                if wait_accepting(proc, port, STARTUP_TIMEOUT):
                    fuzz = proc
                    break
                print(f"[client] kosoku fuzzingserver did not start:\n{proc.tail()}")
                proc.stop()
            if fuzz is None:
                raise HarnessError("kosoku fuzzingserver did not start listening")

            # With compression the client also offers client_no_context_takeover: the fuzzing
            # server's 13.2/13.5/13.6 accept only such offers (UNIMPLEMENTED otherwise).
            client_argv = [
                sys.executable, "-u", str(ECHO_PROGRAMS[opts.api][1]),
                "--url", f"ws://{HOST}:{port}", "--agent", opts.agent, "--loop", opts.loop,
            ] + (["--compression", "--no-context-takeover"] * opts.compression)  # fmt: skip
            client_log = opts.outdir / "client.log"
            with started("echo-client", client_argv, client_log, opts.env) as client:
                code = client.wait(deadline - time.monotonic())
            for line in client.lines():
                found = re.match(r"server has (\d+) cases", line)
                if found:
                    result.expected_count = int(found.group(1))
                if line.startswith(("server has ", "ran ")):
                    print(f"[client] {line}")
            if code is None:
                result.errors.append(
                    f"echo client did not finish within {opts.timeout:g}s (killed; see "
                    f"{client_log}):\n{client.tail()}"
                )
            elif code != 0:
                result.errors.append(
                    f"echo client exited with code {code}; see {client_log}:\n{client.tail()}"
                )
            if code != 0:
                # Reports are only written on /updateReports: ask for them ourselves so the
                # cases that did run still get a verdict.
                update_reports(port, opts.agent)
            # After /updateReports kosoku writes the reports and exits.
            if fuzz.wait(REPORT_GRACE) is None:
                raise HarnessError(
                    f"kosoku fuzzingserver did not exit within {REPORT_GRACE:g}s after "
                    f"/updateReports:\n{fuzz.tail()}"
                )
            if not (report_dir / "index.json").is_file():
                raise HarnessError(
                    f"kosoku fuzzingserver exited without writing {report_dir / 'index.json'}:"
                    f"\n{fuzz.tail()}"
                )
    except HarnessError as exc:
        result.errors.append(str(exc))
    finally:
        result.wall_time = time.monotonic() - started_at
    load_reports(result, report_dir)
    if result.expected_count is not None and len(result.outcomes) < result.expected_count:
        result.errors.append(
            f"only {len(result.outcomes)} of {result.expected_count} cases have a report"
        )
    return result


# --------------------------------------------------------------------------- reports


def case_sort_key(case_id: str) -> List[int]:
    return [int(part) if part.isdigit() else 0 for part in case_id.split(".")]


def load_reports(result: DirectionResult, report_dir: Path) -> None:
    index_path = report_dir / "index.json"
    if not index_path.is_file():
        if not result.errors:
            result.errors.append(f"no report: {index_path} is missing")
        return
    with open(index_path, encoding="utf-8") as f:
        index: Dict[str, Dict[str, Dict[str, Any]]] = json.load(f)
    for agent, cases in index.items():
        for case_id, entry in cases.items():
            result.outcomes.append(
                CaseOutcome(
                    case_id=case_id,
                    behavior=str(entry.get("behavior")),
                    behavior_close=str(entry.get("behaviorClose")),
                    report_file=report_dir / str(entry.get("reportfile", "")),
                    agent=agent,
                )
            )
    result.outcomes.sort(key=lambda o: case_sort_key(o.case_id))
    if not result.outcomes and not result.errors:
        result.errors.append(f"{index_path} lists no case (empty selection?)")


def case_details(outcome: CaseOutcome) -> Dict[str, str]:
    try:
        with open(outcome.report_file, encoding="utf-8") as f:
            report: Dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return {}

    def clean(key: str) -> str:
        return " ".join(re.sub(r"<[^>]+>", "", str(report.get(key) or "")).split())

    return {
        "description": clean("description"),
        "result": clean("result"),
        "resultClose": clean("resultClose"),
    }


def category_label(category: str) -> str:
    name = CATEGORIES.get(category)
    return f"{category} {name}" if name else category


SUMMARY_HEADER = [
    "category", "cases", "OK", "NON-STRICT", "INFO", "UNIMPL", "FAILED", "other",
    "close OK", "close INFO", "close bad", "verdict",
]  # fmt: skip


def summary_rows(result: DirectionResult) -> List[List[str]]:
    by_category: Dict[str, List[CaseOutcome]] = {}
    for outcome in result.outcomes:
        by_category.setdefault(outcome.category, []).append(outcome)
    rows: List[List[str]] = []
    totals = [0] * (len(SUMMARY_HEADER) - 1)
    for category in sorted(by_category, key=lambda c: case_sort_key(c)):
        outcomes = by_category[category]
        counts = [len(outcomes)]
        counts += [sum(o.behavior == b for o in outcomes) for b in BEHAVIOR_COLUMNS]
        counts.append(sum(o.behavior not in BEHAVIOR_COLUMNS for o in outcomes))
        counts.append(sum(o.behavior_close == "OK" for o in outcomes))
        counts.append(sum(o.behavior_close == "INFORMATIONAL" for o in outcomes))
        counts.append(sum(not o.close_ok for o in outcomes))
        failing = sum(not o.passed for o in outcomes)
        counts.append(failing)
        totals = [t + c for t, c in zip(totals, counts)]
        rows.append(
            [category_label(category)] + [str(c) for c in counts[:-1]]
            + ["FAIL" if failing else "pass"]
        )  # fmt: skip
    rows.append(["total"] + [str(t) for t in totals[:-1]] + ["FAIL" if totals[-1] else "pass"])
    return rows


def format_text_table(rows: List[List[str]]) -> str:
    table = [SUMMARY_HEADER] + rows
    widths = [max(len(row[i]) for row in table) for i in range(len(SUMMARY_HEADER))]
    lines = []
    for n, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown_table(rows: List[List[str]]) -> str:
    lines = [
        "| " + " | ".join(SUMMARY_HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(SUMMARY_HEADER) - 2) + ["---"]) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def failure_lines(result: DirectionResult, markdown: bool) -> List[str]:
    lines: List[str] = []
    for outcome in result.failures:
        details = case_details(outcome)
        why = details.get("resultClose") if outcome.behavior_ok else details.get("result")
        report = outcome.report_file
        html = report.with_suffix(".html")
        if markdown:
            lines.append(
                f"- `{outcome.case_id}` behavior **{outcome.behavior}**, close "
                f"**{outcome.behavior_close}**: {details.get('description', '')} "
                f"({why or 'no details'}) `{report}`"
            )
        else:
            lines.append(
                f"  {outcome.case_id:<8} {outcome.behavior:<13} close={outcome.behavior_close}"
            )
            lines.append(f"           {details.get('description', '(no report file)')}")
            if why:
                lines.append(f"           -> {why}")
            lines.append(f"           {report} ({html.name})")
    return lines


def format_result(result: DirectionResult, markdown: bool) -> str:
    title = result.title or DIRECTIONS[result.direction]
    agents = sorted({o.agent for o in result.outcomes})
    verdict = "PASS" if result.ok else "FAIL"
    if result.informational:
        verdict += " (comparison only)"
    wall = f"wall time {result.wall_time:.1f}s" if result.wall_time else "existing reports"
    head = f"{len(result.outcomes)} cases, agent {', '.join(agents) or '-'}, {wall}: {verdict}"
    out: List[str] = []
    if markdown:
        out += [f"## {title}", "", head, ""]
        if result.outcomes:
            out += [format_markdown_table(summary_rows(result)), ""]
    else:
        out += ["", f"=== {title}", head]
        if result.outcomes:
            out += [format_text_table(summary_rows(result))]
    if result.errors:
        out += ["", "Harness errors:" if not markdown else "**Harness errors:**", ""]
        for error in result.errors:
            first, _, rest = error.partition("\n")
            out.append(("- " if markdown else "  ! ") + first)
            if rest and markdown:
                out += ["", "  ```"] + ["  " + line for line in rest.splitlines()] + ["  ```"]
            elif rest:
                out += ["      " + line for line in rest.splitlines()]
    failures = result.failures
    if failures:
        label = f"Failing cases ({len(failures)}):"
        out += ["", f"**{label}**" if markdown else label]
        if markdown:
            out.append("")
        out += failure_lines(result, markdown)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the Autobahn TestSuite (kosoku) against femtows's echo examples."
    )
    parser.add_argument("--mode", choices=("server", "client", "both"), default="both")
    parser.add_argument(
        "--cases", nargs="+", default=[], metavar="GLOB",
        help="case ids or globs to run, e.g. '1.*' '9.7.1' (default: the whole suite)",
    )  # fmt: skip
    parser.add_argument(
        "--exclude", nargs="+", default=[], metavar="GLOB",
        help="case ids or globs to leave out, e.g. '12.*' '13.*'",
    )  # fmt: skip
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--api", choices=tuple(ECHO_PROGRAMS), default="core",
        help="echo programs: the core callback API (examples/) or the websockets-compatible "
             "API (examples/websockets/)",
    )  # fmt: skip
    parser.add_argument("--outdir", type=Path, default=Path("reports/autobahn"))
    parser.add_argument(
        "--timeout", type=float, default=900.0,
        help="seconds allowed per direction, everything included (default 900)",
    )  # fmt: skip
    parser.add_argument(
        "-p", "--parallelism", type=int, default=1,
        help="cases kosoku runs at once in server mode (fuzzingclient -p; default 1)",
    )  # fmt: skip
    parser.add_argument("--agent", default="femtows", help="agent name in client mode")
    parser.add_argument(
        "--uvicorn", nargs="+", default=[], choices=UVICORN_IMPLS, metavar="IMPL",
        help="server mode against examples/uvicorn_echo.py (Starlette on uvicorn) with these "
             "WebSocket implementations instead of the core echo server: femtows, "
             "websockets-sansio, wsproto (only femtows's verdict decides the exit status)",
    )  # fmt: skip
    parser.add_argument(
        "--compression", action="store_true",
        help="run the echo examples with permessage-deflate on (cases 12.* and 13.*)",
    )  # fmt: skip
    parser.add_argument("--markdown", type=Path, help="also write the summary as markdown")
    parser.add_argument(
        "--pythonpath", action="append", default=[], metavar="DIR",
        help="prepend DIR to PYTHONPATH for the example processes (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--report-only", action="store_true",
        help="run nothing: summarize the reports already in OUTDIR/servers and OUTDIR/clients",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.compression and args.api != "core":
        # The websockets-API echo uses its own default (compression="deflate" once wired).
        parser.error("--compression applies to --api core only")
    return args


def existing_result(direction: str, report_dir: Path) -> DirectionResult:
    result = DirectionResult(direction)
    load_reports(result, report_dir)
    return result


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    print(f"terminated by signal {signum}, stopping subprocesses", file=sys.stderr)
    raise SystemExit(128 + signum)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Also when started with SIGINT ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.compression:
        _optional_categories.clear()
    outdir: Path = args.outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.pythonpath:
        paths = [str(Path(p).resolve()) for p in args.pythonpath]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
    opts = Options(
        cases=list(args.cases),
        exclude=list(args.exclude),
        loop=args.loop,
        outdir=outdir,
        timeout=args.timeout,
        parallelism=args.parallelism,
        agent=args.agent,
        env=env,
        api=args.api,
        uvicorn=list(args.uvicorn),
        compression=args.compression,
    )
    selection = " ".join(opts.cases) or "all cases"
    if opts.exclude:
        selection += " minus " + " ".join(opts.exclude)
    print(
        f"Autobahn (kosoku): {selection}; api={opts.api}; loop={opts.loop}; "
        f"compression={'deflate' if opts.compression else 'off'}; reports in {outdir}",
        flush=True,
    )

    results: List[DirectionResult] = []
    try:
        if args.mode in ("server", "both") and opts.uvicorn:
            for impl in opts.uvicorn:
                if args.report_only:
                    res = existing_result("server", outdir / f"uvicorn-{impl}")
                    res.title = f"Starlette echo on uvicorn, ws={impl}"
                    res.informational = impl != "femtows"
                    results.append(res)
                else:
                    results.append(run_server_direction(opts, impl))
        elif args.mode in ("server", "both"):
            if args.report_only:
                results.append(existing_result("server", outdir / "servers"))
            else:
                results.append(run_server_direction(opts))
        if args.mode in ("client", "both"):
            if args.report_only:
                results.append(existing_result("client", outdir / "clients"))
            else:
                results.append(run_client_direction(opts))
    except KeyboardInterrupt:
        print("interrupted, subprocesses stopped", file=sys.stderr)
        return 130

    for result in results:
        print(format_result(result, markdown=False), end="")
    print()
    for result in results:
        name = result.title.split(" (")[0] if result.title else result.direction
        print(
            f"{name:>6}: {'PASS' if result.ok else 'FAIL'}"
            f"{' (comparison only)' if result.informational else ''} "
            f"({len(result.outcomes)} cases, {len(result.failures)} failing, "
            f"{len(result.errors)} harness errors, {result.wall_time:.1f}s)"
        )
    if args.markdown:
        md = [
            "# Autobahn TestSuite (kosoku)",
            "",
            f"Selection: {selection}; loop: {opts.loop}",
            "",
        ]
        md += [format_result(result, markdown=True) for result in results]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(md), encoding="utf-8")
        print(f"markdown summary written to {args.markdown}")
    return 0 if results and all(r.ok or r.informational for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
