#!/usr/bin/env python3
"""Run a real Debian redis-server on 127.0.0.1 for tests and examples (examples/scaleout).

    python scripts/redis/run.py serve [--port N] [--dir DIR]   # start, print JSON, obey stdin
    python scripts/redis/run.py install                        # only make sure it is installed

``serve`` installs the ``redis-server`` Debian package when the binary is missing (as root,
with apt-get, bounded by ``APT_TIMEOUT``; an installed redis-server is reused), starts it in
the foreground as its child, bound to 127.0.0.1 only, on a free port (or ``--port``), with its
working directory, log and (disabled) persistence in a new temporary directory, waits until it
answers PING and prints one JSON line::

    {"event": "started", "port": 40001, "pid": 1234, "dir": "/tmp/femtows-redis-XXXX",
     "url": "redis://127.0.0.1:40001/0"}

Then it reads commands from its standard input, one per line, and answers each with a JSON
line:

- ``stop``: SIGTERM redis-server (it closes every client connection), wait for it to exit;
  answers ``{"event": "stopped"}``.
- ``kill``: the same with SIGKILL (a crash: the kernel resets the connections).
- ``start``: start it again on the same port; answers ``{"event": "started", ...}`` as above.

At end of input (the test session ended or died), on SIGTERM or SIGINT it stops redis-server,
reaps it and removes the temporary directory. Exit status 1 with a message on stderr when the
package cannot be installed or the server does not come up.

From Python, ``RedisServer`` does the same in-process::

    from run import RedisServer        # scripts/redis on sys.path, or load it by file path
    with RedisServer() as server:      # installs if needed, starts on a free port
        server.url                     # "redis://127.0.0.1:<port>/0"
        server.stop(); server.start()  # an outage on the same port

tests/test_scaleout.py drives ``serve`` through a pipe instead, so redis-server dies with the
test session even when pytest itself is killed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Dict, Optional, Type

PACKAGE = "redis-server"
BINARY = "/usr/bin/redis-server"
APT_TIMEOUT = 150  # seconds for one apt-get run
READY_TIMEOUT = 15.0  # seconds for redis-server to answer PING
STOP_TIMEOUT = 10.0  # seconds for redis-server to exit after SIGTERM before SIGKILL


class StartError(Exception):
    """redis-server could not be installed or started; the message says why."""


def binary() -> Optional[str]:
    """The redis-server binary, or None when it is not installed."""
    if os.path.exists(BINARY):
        return BINARY
    return shutil.which("redis-server")


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["timeout", str(APT_TIMEOUT), "apt-get", *args],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )


def ensure_installed() -> str:
    """Return the redis-server binary, apt-get installing the package first when missing."""
    found = binary()
    if found:
        return found
    if os.geteuid() != 0:
        raise StartError(f"{PACKAGE} is not installed and we are not root to apt-get it")
    if shutil.which("apt-get") is None:
        raise StartError(f"{PACKAGE} is not installed and there is no apt-get")
    # The package's scripts would start a system-wide redis unless policy-rc.d says no: we want
    # only our own instances. Create the file only if the system has none.
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created_policy = True
    try:
        install = ["install", "-y", "--no-install-recommends", PACKAGE]
        result = _apt(install)
        if result.returncode != 0:  # stale or missing package lists: update once, retry
            update = _apt(["update"])
            if update.returncode != 0:
                raise StartError(f"apt-get update failed:\n{update.stderr[-2000:]}")
            result = _apt(install)
        if result.returncode != 0:
            raise StartError(f"apt-get install {PACKAGE} failed:\n{result.stderr[-2000:]}")
    finally:
        if created_policy:
            policy.unlink()
    found = binary()
    if not found:
        raise StartError(f"{PACKAGE} was installed but redis-server is not there")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server child process on 127.0.0.1, restartable on the same port.

    Args:
        port: the port to listen on; a free one when None.
        run_dir: working directory for its log; a new temporary one (removed by ``close``)
            when None.
    """

    def __init__(self, port: Optional[int] = None, run_dir: Optional[str] = None) -> None:
        self._binary = ensure_installed()
        self.port = port or free_port()
        self._own_dir = run_dir is None
        self.dir = Path(run_dir or tempfile.mkdtemp(prefix="femtows-redis-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def info(self) -> Dict[str, object]:
        """What ``serve`` prints after a start."""
        return {"event": "started", "port": self.port, "pid": self.proc.pid if self.proc else None,
                "dir": str(self.dir), "url": self.url}

    def start(self) -> None:
        """Start redis-server (no-op when running) and wait until it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return
        argv = [
            self._binary,
            "--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes",
            "--daemonize", "no", "--dir", str(self.dir), "--logfile", "redis.log",
            "--save", "", "--appendonly", "no",  # nothing on disk: a restart starts empty
        ]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     cwd=self.dir)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log")
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                self.proc = None
                raise StartError(f"redis-server exited before listening on {self.port}:\n{tail}")
            if _ping(self.port):
                return
            time.sleep(0.05)
        self.stop(kill=True)
        raise StartError(f"redis-server did not answer PING on {self.port} within "
                         f"{READY_TIMEOUT:.0f}s")

    def stop(self, kill: bool = False) -> None:
        """Stop redis-server (SIGTERM, or SIGKILL when ``kill``) and reap it; no-op if stopped."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        """``stop()`` then ``start()`` on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop it and remove the temporary directory (if we created it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()


def _emit(obj: Dict[str, object]) -> None:
    print(json.dumps(obj), flush=True)


def serve(port: Optional[int], run_dir: Optional[str]) -> int:
    """Start, print the JSON, obey stop/kill/start lines on stdin, clean up at EOF/signal."""

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = RedisServer(port, run_dir)
    except StartError as exc:
        print(f"redis: {exc}", file=sys.stderr)
        return 1
    try:
        server.start()
        _emit(server.info())
        for line in sys.stdin:
            command = line.strip()
            if command in ("stop", "kill"):
                server.stop(kill=command == "kill")
                _emit({"event": "stopped"})
            elif command == "start":
                server.start()
                _emit(server.info())
            elif command:
                _emit({"event": "error", "error": f"unknown command {command!r}"})
    except StartError as exc:
        print(f"redis: {exc}", file=sys.stderr)
        return 1
    finally:
        server.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="start, print JSON, obey stdin, stop at EOF")
    serve_parser.add_argument("--port", type=int, default=None, help="default: a free port")
    serve_parser.add_argument("--dir", default=None, help="default: a new temporary directory")
    sub.add_parser("install", help="apt-get install redis-server if it is missing")
    args = parser.parse_args()
    if args.command == "install":
        try:
            print(ensure_installed())
        except StartError as exc:
            print(f"redis: {exc}", file=sys.stderr)
            return 1
        return 0
    return serve(args.port, args.dir)


if __name__ == "__main__":
    sys.exit(main())
