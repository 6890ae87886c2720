#!/usr/bin/env python3
"""Real WebSocket peers for tests: Node's ``ws`` package and headless Chromium, on 127.0.0.1.

    python scripts/peers/run.py install            # apt-get install node-ws / chromium if missing
    python scripts/peers/run.py node               # the Node driver (JSON lines on stdin/stdout)
    python scripts/peers/run.py chromium           # headless Chromium; prints one JSON line:
        {"devtools": "ws://127.0.0.1:PORT/devtools/browser/...", "port": PORT, "pid": PID}

Both stay in the foreground and stop when their standard input closes (the test session ended
or died) or on SIGTERM/SIGINT; Chromium is started in its own session and its whole process
group is killed on the way out, and its profile lives in a temporary directory removed at exit.
Chromium's DevTools endpoint listens on 127.0.0.1 only. Everything is bounded: apt-get by
APT_TIMEOUT, Chromium's start by READY_TIMEOUT. Exit status 1 with a message on stderr when a
package cannot be installed or Chromium does not come up.

The Python API over these (NodePeer, ChromiumPeer) is scripts/peers/peers.py; see
scripts/peers/README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DRIVER = HERE / "node_driver.js"
NODE_PATH = "/usr/share/nodejs"
# what must exist -> the Debian package that provides it
REQUIREMENTS = {
    "node": ("/usr/share/nodejs/ws/package.json", "node-ws"),
    "chromium": ("/usr/bin/chromium", "chromium"),
}
APT_TIMEOUT = 300  # seconds for one apt-get run (chromium is large)
READY_TIMEOUT = 30.0  # seconds for Chromium to print its DevTools endpoint


class PeerError(Exception):
    """A package could not be installed or a peer did not start; the message says why."""


def install(*names: str) -> None:
    """Install the Debian packages of the named peers ("node", "chromium") when missing."""
    missing = [pkg for name in names for path, pkg in [REQUIREMENTS[name]]
               if not os.path.exists(path)]
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise PeerError(f"missing {', '.join(missing)}: install them (apt-get, as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        try:
            subprocess.run(args, env=env, check=True, timeout=APT_TIMEOUT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (subprocess.SubprocessError, OSError) as exc:
            raise PeerError(f"{' '.join(args)} failed: {exc}") from None
    still = [pkg for name in names for path, pkg in [REQUIREMENTS[name]]
             if not os.path.exists(path)]
    if still:
        raise PeerError(f"{', '.join(still)} still missing after apt-get install")


def node_command() -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the Node driver."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise PeerError("node not found (Debian package nodejs, pulled in by node-ws)")
    env = dict(os.environ)
    env["NODE_PATH"] = os.pathsep.join(p for p in (NODE_PATH, env.get("NODE_PATH")) if p)
    return [node, str(NODE_DRIVER)], env


def run_node() -> int:
    install("node")
    cmd, env = node_command()
    os.execve(cmd[0], cmd, env)  # the driver itself exits at stdin EOF


def run_chromium() -> int:
    install("chromium")
    profile = tempfile.mkdtemp(prefix="femtows-chromium-")
    args = [
        "/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
        "--disable-extensions", "--disable-background-networking", "--mute-audio",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "about:blank",
    ]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        assert proc.stderr is not None
        found: list[str] = []

        def scan() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                match = re.search(r"DevTools listening on (ws://\S+)", line)
                if match and not found:
                    found.append(match.group(1))
            # keep draining so Chromium never blocks on a full pipe

        threading.Thread(target=scan, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not found:
            if proc.poll() is not None or time.monotonic() > deadline or stopping.is_set():
                print("chromium did not start (no DevTools endpoint)", file=sys.stderr)
                return 1
            time.sleep(0.05)
        port = int(re.search(r":(\d+)/", found[0]).group(1))  # type: ignore[union-attr]
        print(json.dumps({"devtools": found[0], "port": port, "pid": proc.pid}), flush=True)
        # Wait for stdin EOF (or a signal) in a thread, so that a signal can interrupt.
        threading.Thread(target=lambda: (sys.stdin.read(), stopping.set()), daemon=True).start()
        while not stopping.is_set() and proc.poll() is None:
            stopping.wait(0.5)
        return 0
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        shutil.rmtree(profile, ignore_errors=True)


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        if command == "install":
            install(*(sys.argv[2:] or REQUIREMENTS))
            return 0
        if command == "node":
            return run_node()
        if command == "chromium":
            return run_chromium()
    except PeerError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
