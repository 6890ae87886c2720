"""Process plumbing for the bench: pinned child processes, line reading with timeouts, and CPU
accounting from /proc (ours versus everything else on the machine).

CPU of our own processes comes from /proc/<pid>/task/*/schedstat (nanosecond run time, user
plus system); machine-wide busy time from /proc/stat (jiffies). "Others" = machine busy time
minus ours (plus steal time, which is the hypervisor running someone else on our vCPU).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Dict, List, Optional, Sequence

CLK_TCK = os.sysconf("SC_CLK_TCK")


def usable_cpus() -> List[int]:
    return sorted(os.sched_getaffinity(0))


def machine_busy() -> tuple[float, float]:
    """(busy seconds, steal seconds) summed over all CPUs since boot.

    busy = user + nice + system + irq + softirq. Loopback TCP processing of our own traffic
    may be accounted as softirq rather than to our processes; the harness calibrates for
    that by measuring an idle baseline (see ``Snapshot.others``).
    """
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def task_cpu(pid: int) -> float:
    """CPU seconds (user+sys, all threads) consumed so far by process ``pid``; 0 if gone."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def task_user_sys(pid: int) -> tuple[float, float]:
    """(user, sys) seconds of ``pid`` from /proc/<pid>/stat (jiffy resolution)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0, 0.0
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Snapshot:
    """CPU counters at one instant."""

    t: float
    busy: float
    steal: float
    ours: Dict[int, float]

    @classmethod
    def take(cls, pids: Sequence[int]) -> Snapshot:
        ours = {pid: task_cpu(pid) for pid in (*pids, os.getpid())}
        busy, steal = machine_busy()
        return cls(time.monotonic(), busy, steal, ours)

    def cpu_of(self, later: Snapshot, pid: int) -> float:
        return later.ours.get(pid, 0.0) - self.ours.get(pid, 0.0)

    def others(self, later: Snapshot) -> float:
        """CPUs' worth of time used by other processes (and steal) between the snapshots."""
        wall = later.t - self.t
        if wall <= 0:
            return 0.0
        ours = sum(self.cpu_of(later, pid) for pid in self.ours)
        busy = later.busy - self.busy
        steal = later.steal - self.steal
        return max(0.0, busy - ours) / wall + steal / wall


class Child:
    """A child process pinned to CPUs, stdout read line by line with timeouts, stderr to a
    temporary file (its tail is quoted when something fails)."""

    def __init__(self, cmd: Sequence[str], cpus: Sequence[int], stdin_pipe: bool = False):
        self.cmd = list(cmd)
        self.err: IO[bytes] = tempfile.TemporaryFile()
        cpu_set = set(cpus)

        def pin() -> None:
            if cpu_set:
                os.sched_setaffinity(0, cpu_set)

        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=self.err,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            preexec_fn=pin,
        )
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.pending = b""
        self.eof = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float) -> Optional[str]:
        """The next stdout line (without newline), or None on EOF or timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                return None
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self.eof = True
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode(errors="replace").strip()

    def expect(self, prefix: str, timeout: float) -> str:
        """Read lines until one starts with ``prefix``; raises RuntimeError if none comes."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"expected {prefix!r} from {self.describe()}")
            if line.startswith(prefix):
                return line

    def stderr_tail(self, limit: int = 600) -> str:
        self.err.seek(0)
        text = self.err.read().decode(errors="replace").strip()
        return text[-limit:]

    def describe(self) -> str:
        name = os.path.basename(self.cmd[0])
        if name.startswith("python"):
            name = " ".join(os.path.basename(c) for c in self.cmd[1:4])
        code = self.proc.poll()
        state = f"exit {code}" if code is not None else "running"
        tail = self.stderr_tail()
        return f"{name} ({state})" + (f": {tail}" if tail else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.selector.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.err.close()


def wait_for_quiet(threshold: float, max_wait: float, probe: float = 0.25) -> float:
    """Sleep until other processes use less than ``threshold`` CPUs over a ``probe`` window,
    at most ``max_wait`` seconds. Returns the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        before = Snapshot.take(())
        time.sleep(probe)
        reading = before.others(Snapshot.take(()))
        if reading < threshold or time.monotonic() >= deadline:
            return reading
