#!/usr/bin/env python3
"""Start and stop real proxy servers on 127.0.0.1 for tests/test_proxy.py.

    python scripts/proxies/run.py start [--dir DIR]   # prints one JSON object, see below
    python scripts/proxies/run.py stop DIR            # stops exactly what start started
    python scripts/proxies/run.py serve [--dir DIR]   # start, print, stop at stdin EOF

``serve`` is what the tests use: it stays in the foreground as the parent of the servers, so
it reaps them when they exit (after ``start`` they are orphans, and a container whose pid 1
does not reap orphans collects zombies), and it stops them when its standard input closes
(the test session ended, or died) or on SIGTERM/SIGINT.

``start`` installs the Debian packages it needs when they are missing (tinyproxy,
dante-server, stunnel4; as root, with apt-get), writes every config file into a run directory
(a new temporary one unless ``--dir`` is given; never /etc), starts the servers in the
foreground as children in their own sessions, waits until each port accepts connections and
prints::

    {"dir": "/tmp/femtows-proxies-XXXX", "http": 40001, "http_auth": 40002, "https": 40003,
     "socks": 40004, "user": "user", "password": "pass"}

- ``http``: tinyproxy, no authentication, CONNECT allowed to any port.
- ``http_auth``: tinyproxy with ``BasicAuth user pass``.
- ``https``: stunnel accepting TLS (tests/certs/cert.pem, valid for 127.0.0.1) in front of
  the ``http`` tinyproxy: an HTTPS proxy.
- ``socks``: dante (danted), SOCKS4 and SOCKS5 on the same port, no authentication. Dante's
  username authentication checks system accounts (getpwnam/PAM); creating a system user for
  a test is not something a test script should do, so SOCKS5 with a password is tested
  against a fake proxy in the test file instead.

The pids are written to DIR/state.json; ``stop`` checks that each pid still runs the binary it
started, sends it SIGTERM (a server stops its own children), waits, and sends SIGKILL to the
process group of what is left (every server was started as the leader of a new session, so its
group holds only it and the children it forked). Exit status: 0 on success, 1 with a message on
stderr when a package cannot be installed or a server does not come up.
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
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
CERT = REPO / "tests" / "certs" / "cert.pem"
KEY = REPO / "tests" / "certs" / "key.pem"
USER = "user"
PASSWORD = "pass"

# binary -> Debian package that provides it
BINARIES = {
    "tinyproxy": ("/usr/bin/tinyproxy", "tinyproxy"),
    "danted": ("/usr/sbin/danted", "dante-server"),
    "stunnel": ("/usr/bin/stunnel4", "stunnel4"),
}
APT_TIMEOUT = 150  # seconds for one apt-get run
READY_TIMEOUT = 15.0  # seconds for a server to accept connections


class StartError(Exception):
    """A server could not be installed or started; the message says which and why."""


def _binary(name: str) -> str:
    path, _package = BINARIES[name]
    if os.path.exists(path):
        return path
    found = shutil.which(Path(path).name)
    return found or path


def _missing_packages() -> List[str]:
    return sorted({pkg for name, (_, pkg) in BINARIES.items() if not os.path.exists(_binary(name))})


def _apt(args: List[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["timeout", str(APT_TIMEOUT), "apt-get", *args],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )


def ensure_packages() -> None:
    """apt-get install whatever is missing; 'apt-get update' only if the first try fails."""
    missing = _missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise StartError(f"missing packages {missing} and not root, cannot apt-get install them")
    if shutil.which("apt-get") is None:
        raise StartError(f"missing packages {missing} and there is no apt-get")
    # Debian package scripts start the services they install unless policy-rc.d says no; we
    # want our own instances only. Only create the file if the system has none.
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created_policy = True
    try:
        install = ["install", "-y", "--no-install-recommends", *missing]
        result = _apt(install)
        if result.returncode != 0:
            update = _apt(["update"])
            if update.returncode != 0:
                raise StartError(f"apt-get update failed:\n{update.stderr[-2000:]}")
            result = _apt(install)
        if result.returncode != 0:
            raise StartError(
                f"apt-get install {' '.join(missing)} failed:\n{result.stderr[-2000:]}"
            )
    finally:
        if created_policy:
            policy.unlink()
    still = _missing_packages()
    if still:
        raise StartError(f"packages {still} were installed but their binaries are missing")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tinyproxy_config(run: Path, name: str, port: int, auth: bool) -> Path:
    # No ConnectPort line: tinyproxy then allows CONNECT to every port (the packaged config
    # allows only 443 and 563, which would refuse our test servers' ephemeral ports).
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 60",
        "MaxClients 64",
        "LogLevel Info",
        f'LogFile "{run / (name + ".log")}"',
        "Allow 127.0.0.1",
        "DisableViaHeader Yes",
    ]
    if os.geteuid() == 0:
        lines += ["User nobody", "Group nogroup"]
    if auth:
        lines.append(f"BasicAuth {USER} {PASSWORD}")
    path = run / f"{name}.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def dante_config(run: Path, port: int) -> Path:
    text = f"""\
logoutput: {run / "danted.log"}
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
}}
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    protocol: tcp
}}
"""
    path = run / "danted.conf"
    path.write_text(text)
    return path


def stunnel_config(run: Path, port: int, backend: int) -> Path:
    text = f"""\
foreground = yes
pid =
output = {run / "stunnel.log"}
debug = 5

[https-proxy]
accept = 127.0.0.1:{port}
connect = 127.0.0.1:{backend}
cert = {CERT}
key = {KEY}
"""
    path = run / "stunnel.conf"
    path.write_text(text)
    return path


def spawn(run: Path, name: str, argv: List[str]) -> Dict[str, object]:
    out = open(run / f"{name}.out", "wb")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=run,
        )
    finally:
        out.close()
    return {"name": name, "pid": proc.pid, "binary": argv[0]}


def wait_ready(run: Path, server: Dict[str, object], port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    pid = int(str(server["pid"]))
    while time.monotonic() < deadline:
        try:
            done_pid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done_pid, status = pid, 0
        if done_pid == pid:
            output = (run / f"{server['name']}.out").read_text(errors="replace")[-2000:]
            raise StartError(
                f"{server['name']} exited (status {status}) before listening on {port}:\n{output}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise StartError(f"{server['name']} did not accept connections on {port} within "
                     f"{READY_TIMEOUT:.0f}s")


def start(run_dir: Optional[str]) -> Dict[str, object]:
    ensure_packages()
    run = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="femtows-proxies-"))
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o777)  # tinyproxy drops to nobody and writes its log here
    ports = {name: free_port() for name in ("http", "http_auth", "https", "socks")}
    servers: List[Dict[str, object]] = []
    state = {"dir": str(run), "servers": servers}
    state_file = run / "state.json"
    plan = [
        ("tinyproxy", [_binary("tinyproxy"), "-d", "-c",
                       str(tinyproxy_config(run, "tinyproxy", ports["http"], auth=False))],
         ports["http"]),
        ("tinyproxy-auth", [_binary("tinyproxy"), "-d", "-c",
                            str(tinyproxy_config(run, "tinyproxy-auth", ports["http_auth"],
                                                 auth=True))],
         ports["http_auth"]),
        ("stunnel", [_binary("stunnel"), str(stunnel_config(run, ports["https"], ports["http"]))],
         ports["https"]),
        ("danted", [_binary("danted"), "-f", str(dante_config(run, ports["socks"])), "-N", "1"],
         ports["socks"]),
    ]
    try:
        for name, argv, port in plan:
            server = spawn(run, name, argv)
            servers.append(server)
            state_file.write_text(json.dumps(state))
            wait_ready(run, server, port)
    except BaseException:
        stop(str(run))
        raise
    return {"dir": str(run), **ports, "user": USER, "password": PASSWORD}


def _runs(pid: int, binary: str) -> bool:
    """True if ``pid`` is alive and still runs ``binary`` (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmdline.split(b"\0", 1)[0].decode(errors="replace") == binary


def _signal_group(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int, block: bool) -> None:
    """Collect ``pid``'s exit status if it is our child (after ``serve``); else nothing."""
    try:
        os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        pass


def stop(run_dir: str) -> None:
    """SIGTERM each server (the main pid: it stops its own children), SIGKILL what is left."""
    state_file = Path(run_dir) / "state.json"
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    servers = [(int(s["pid"]), str(s["binary"])) for s in state["servers"]]
    alive = [(pid, binary) for pid, binary in servers if _runs(pid, binary)]
    for pid, _ in alive:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pid, _ in alive:
            _reap(pid, block=False)
        if not any(_runs(pid, binary) for pid, binary in alive):
            break
        time.sleep(0.05)
    for pid, binary in alive:
        if _runs(pid, binary):
            _signal_group(pid, signal.SIGKILL)
    for pid, _ in servers:
        _reap(pid, block=True)
    state_file.unlink()


def serve(run_dir: Optional[str]) -> int:
    """start, print the JSON, then wait for stdin EOF or a signal and stop."""

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = start(run_dir)
    except StartError as exc:
        print(f"proxies: {exc}", file=sys.stderr)
        return 1
    try:
        print(json.dumps(info), flush=True)
        while sys.stdin.read(4096):
            pass
    finally:
        stop(str(info["dir"]))
        if run_dir is None:  # our temporary directory: configs and logs go with it
            shutil.rmtree(str(info["dir"]), ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_parser = sub.add_parser("start")
    start_parser.add_argument("--dir", help="run directory (default: a new temporary one)")
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--dir", help="run directory (default: a new temporary one)")
    stop_parser = sub.add_parser("stop")
    stop_parser.add_argument("dir", help="the run directory printed by start")
    args = parser.parse_args()
    if args.command == "stop":
        stop(args.dir)
        return 0
    if args.command == "serve":
        return serve(args.dir)
    try:
        info = start(args.dir)
    except StartError as exc:
        print(f"proxies: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
