#!/usr/bin/env python3
"""Put Debian's nginx in front of a femtows server on 127.0.0.1, for tests/test_nginx.py.

    python scripts/nginx/run.py serve [--backend PORT]   # start, print JSON, stop at stdin EOF

``serve`` installs nginx with apt-get when it is missing (as root, bounded by a timeout),
starts the femtows server ``scripts/nginx/backend.py`` on a free port unless ``--backend``
names a running one, writes an nginx configuration into a new temporary directory (never
/etc) and runs nginx in the foreground as its child, then prints::

    {"dir": "/tmp/femtows-nginx-XXXX", "ws": 40001, "wss": 40002, "backend": 40003}

``ws`` is nginx's plain port, ``wss`` its TLS port (tests/certs/cert.pem, valid for
127.0.0.1). The site configuration is ``scripts/nginx/femtows.conf``, the file that
docs/nginx.md shows, with only its three addresses and two certificate paths replaced; the
main configuration around it only keeps pid, logs and temporary files in the run directory.
Everything stops when standard input closes (the test session ended, or died) or on
SIGTERM/SIGINT. Exit status 1 with a message on stderr when nginx cannot be installed or
does not come up.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SITE_CONF = HERE / "femtows.conf"
CERT = REPO / "tests" / "certs" / "cert.pem"
KEY = REPO / "tests" / "certs" / "key.pem"
NGINX = "/usr/sbin/nginx"
APT_TIMEOUT = 150  # seconds for one apt-get run
READY_TIMEOUT = 15.0  # seconds for nginx and the backend to accept connections

#: What femtows.conf says -> what this run uses. Each must occur in the file.
PLACEHOLDERS = ("127.0.0.1:8000", "127.0.0.1:8080", "127.0.0.1:8443",
                "/etc/ssl/femtows/cert.pem", "/etc/ssl/femtows/key.pem")


class StartError(Exception):
    """nginx or the backend could not be installed or started."""


def _apt(args: List[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["timeout", str(APT_TIMEOUT), "apt-get", *args],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )


def ensure_nginx() -> str:
    """The nginx binary; apt-get install it first if it is missing."""
    found = NGINX if os.path.exists(NGINX) else shutil.which("nginx")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StartError("nginx is missing and cannot be installed (needs root and apt-get)")
    # Debian's package scripts would start the system nginx on port 80; policy-rc.d says no.
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = not policy.exists()
    if created_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        install = ["install", "-y", "--no-install-recommends", "nginx"]
        result = _apt(install)
        if result.returncode != 0:
            update = _apt(["update"])
            if update.returncode != 0:
                raise StartError(f"apt-get update failed:\n{update.stderr[-2000:]}")
            result = _apt(install)
        if result.returncode != 0:
            raise StartError(f"apt-get install nginx failed:\n{result.stderr[-2000:]}")
    finally:
        if created_policy:
            policy.unlink()
    if not os.path.exists(NGINX):
        raise StartError(f"nginx was installed but {NGINX} is missing")
    return NGINX


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_config(backend: int, ws: int, wss: int) -> str:
    """femtows.conf with this run's addresses and certificate."""
    text = SITE_CONF.read_text()
    values = (f"127.0.0.1:{backend}", f"127.0.0.1:{ws}", f"127.0.0.1:{wss}", str(CERT), str(KEY))
    for placeholder, value in zip(PLACEHOLDERS, values):
        if placeholder not in text:
            raise StartError(f"{SITE_CONF} no longer contains {placeholder!r}")
        text = text.replace(placeholder, value)
    return text


def main_config(run: Path) -> str:
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {run / 'tmp' / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""\
{user}daemon off;
worker_processes 1;
pid {run / "nginx.pid"};
error_log {run / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {run / "access.log"};
{temp}
    include {run / "femtows.conf"};
}}
"""


def wait_ready(proc: subprocess.Popen[bytes], name: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StartError(f"{name} exited ({proc.returncode}) before listening:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise StartError(f"{name} did not accept connections on {port} within {READY_TIMEOUT:.0f}s")


def start_backend(run: Path) -> tuple[subprocess.Popen[bytes], int]:
    out = open(run / "backend.out", "w+b")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, str(HERE / "backend.py"), "--port", "0"],
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        out.seek(0)
        first = out.readline()
        if first.startswith(b"LISTENING ") and first.endswith(b"\n"):
            out.close()
            return proc, int(first.split()[1])
        time.sleep(0.05)
    out.close()
    proc.kill()
    proc.wait()
    tail = (run / "backend.out").read_text(errors="replace")[-2000:]
    raise StartError(f"the femtows backend did not start:\n{tail}")


def stop(procs: List[subprocess.Popen[bytes]]) -> None:
    for proc in procs:  # nginx: SIGTERM is a fast shutdown of master and workers
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 5
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # each was started as a session leader
            proc.wait()


def serve(backend_port: Optional[int]) -> int:
    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run = Path(tempfile.mkdtemp(prefix="femtows-nginx-"))
    procs: List[subprocess.Popen[bytes]] = []
    try:
        try:
            nginx = ensure_nginx()
            if backend_port is None:
                backend, backend_port = start_backend(run)
                procs.append(backend)
            ws, wss = free_port(), free_port()
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
                (run / "tmp" / kind).mkdir(parents=True)
            (run / "femtows.conf").write_text(site_config(backend_port, ws, wss))
            (run / "nginx.conf").write_text(main_config(run))
            log = run / "nginx.out"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [nginx, "-p", str(run), "-e", str(run / "error.log"),
                     "-c", str(run / "nginx.conf")],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            procs.append(proc)
            wait_ready(proc, "nginx", ws, log)
            wait_ready(proc, "nginx", wss, log)
        except StartError as exc:
            print(f"nginx: {exc}", file=sys.stderr)
            return 1
        info: Dict[str, object] = {"dir": str(run), "ws": ws, "wss": wss,
                                   "backend": backend_port}
        print(json.dumps(info), flush=True)
        while sys.stdin.read(4096):
            pass
    finally:
        stop(procs)
        shutil.rmtree(run, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--backend", type=int, help="port of a running femtows server")
    args = parser.parse_args()
    return serve(args.backend)


if __name__ == "__main__":
    sys.exit(main())
