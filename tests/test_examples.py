"""Every example in examples/ runs and does what its docstring says."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from tests.conftest import ProxyServers

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 120


def run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_echo_demo(loop: str) -> None:
    out = run(str(EXAMPLES / "echo_demo.py"), "--loop", loop)
    assert "echo: BINARY 70000 bytes, identical=True" in out
    assert "fragmented TEXT in 2 frames -> 'fragmented ✓'" in out
    assert "closed cleanly: peer answered OK" in out


def test_echo_server_and_client() -> None:
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "echo_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("LISTENING "), line
        port = int(line.split()[1])
        out = run(str(EXAMPLES / "echo_client.py"), "--url", f"ws://127.0.0.1:{port}")
        assert out.strip() == "Echo reply: Hello world"
    finally:
        server.kill()
        server.wait(TIMEOUT)


def test_cython_listener_example() -> None:
    out = run(str(EXAMPLES / "echo_client_cython_runner.py"), "--count", "500")
    assert "500 round trips" in out
    assert "last payload b'ping from cython'" in out


def test_okx_roundtrip_time_example_local_server() -> None:
    out = run(str(EXAMPLES / "okx_roundtrip_time.py"), "--rounds", "5")
    assert "attempt 1: 5 rounds, median RTT" in out
    assert "RTT OK" in out


def test_okx_roundtrip_time_example_reconnects_while_slow() -> None:
    # The local server delays every pong by 20 ms, so no attempt can beat a 10 ms threshold.
    out = run(
        str(EXAMPLES / "okx_roundtrip_time.py"),
        "--rounds", "3", "--server-delay", "0.02", "--threshold", "0.01", "--attempts", "2",
    )
    medians = [
        float(line.split("median RTT ")[1].split(" ms")[0])
        for line in out.splitlines()
        if line.startswith("attempt ")
    ]
    assert len(medians) == 2 and all(m >= 20.0 for m in medians), out
    assert out.count("reconnecting") == 2
    assert "RTT still above threshold after 2 attempts" in out


def test_proxy_and_redirect_example_local_proxy() -> None:
    out = run(str(EXAMPLES / "proxy_and_redirect.py"))
    # One socket per connection attempt: the first URL and the redirect target.
    assert out.count("SO_RCVBUF set before connect()") == 2
    assert "echo from /echo: hello through the proxy" in out
    assert "proxy tunnels opened: 2" in out


def test_proxy_and_redirect_example_real_tinyproxy(proxy_servers: ProxyServers) -> None:
    info = proxy_servers.get()
    out = run(str(EXAMPLES / "proxy_and_redirect.py"), "--proxy",
              f"http://{info['user']}:{info['password']}@127.0.0.1:{info['http_auth']}")
    assert f"socket_factory('127.0.0.1', {info['http_auth']})" in out
    assert "echo from /echo: hello through the proxy" in out


def test_tls_echo_example() -> None:
    out = run(str(EXAMPLES / "tls_echo.py"))
    assert "connected with TLSv1." in out
    assert "echo: 'hello over TLS', secure: True" in out


def test_auth_example() -> None:
    out = run(str(EXAMPLES / "auth.py"))
    assert "server says: hello alice" in out
    assert "refused: 401 Bearer" in out


def test_subprotocols_example() -> None:
    out = run(str(EXAMPLES / "subprotocols.py")).splitlines()
    assert "offered ['chat.v1', 'chat.v2'], server chose chat.v2" in out
    assert "offered ['chat.v1'], server chose chat.v1" in out
    assert out.count("reply: [chat.v2] hi") == 1 and out.count("reply: [chat.v1] hi") == 1
    assert "no common subprotocol: 400, b'supported subprotocols: chat.v2, chat.v1\\n'" in out


def test_broadcast_example() -> None:
    out = run(str(EXAMPLES / "broadcast.py"), "--clients", "4")
    assert "4 members in the room" in out
    for i in range(4):
        assert f"client {i} got 'hello everyone'" in out


def test_backpressure_example() -> None:
    out = run(str(EXAMPLES / "backpressure.py"), "--messages", "100", "--size", "65536")
    assert "received 100 of 100 messages, 6553600 bytes" in out
    pauses = int(out.split("producer paused ")[1].split(" time")[0])
    assert pauses >= 1, out


def test_routing_example() -> None:
    out = run(str(EXAMPLES / "routing.py")).splitlines()
    assert out == [
        "/echo: hello",
        "/upper: HELLO",
        "/rooms/lobby?user=ada: ada@lobby: hello",
        "/nowhere: HTTP 404 b'404 Not Found'",
        "GET /healthz: HTTP/1.1 200 OK, body b'ok\\n'",
    ]


def test_websockets_echo_example() -> None:
    out = run(str(EXAMPLES / "websockets_echo.py")).splitlines()
    assert out == [
        "received: Hello world!",
        "received: b'\\x00\\x01binary'",
        "closed: sent 1000 (OK); then received 1000 (OK)",
    ]


def _read_until(stream: IO[str], needle: str) -> str:
    """Lines of ``stream`` up to the first containing ``needle`` (bounded by the process)."""
    seen = []
    for line in stream:
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} never printed; output:\n{''.join(seen)}")


def test_uvicorn_echo_example() -> None:
    # Starlette on uvicorn with femtows; SIGTERM is a graceful shutdown, after which uvicorn
    # re-raises the signal (exit status -SIGTERM, its own convention).
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "uvicorn_echo.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("LISTENING "), line
        port = int(line.split()[1])
        out = run(str(EXAMPLES / "echo_client.py"), "--url", f"ws://127.0.0.1:{port}/echo")
        assert out.strip() == "Echo reply: Hello world"
        server.terminate()
        assert server.wait(TIMEOUT) == -signal.SIGTERM
    finally:
        server.kill()
        server.wait(TIMEOUT)


def test_uvicorn_command_line_ws_option() -> None:
    # uvicorn's --ws takes an import string: the documented way to pick femtows from the CLI.
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), "uvicorn_echo:app",
         "--host", "127.0.0.1", "--port", "0", "--ws", "femtows.uvicorn:FemtowsProtocol",
         "--log-level", "info"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert server.stderr is not None
        line = _read_until(server.stderr, "Uvicorn running on")
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        out = run(str(EXAMPLES / "echo_client.py"), "--url", f"ws://127.0.0.1:{port}/echo")
        assert out.strip() == "Echo reply: Hello world"
        # uvicorn's access-style line for the accepted WebSocket, as its own implementations log
        assert '"WebSocket /echo" [accepted]' in _read_until(server.stderr, "WebSocket /echo")
    finally:
        server.kill()
        server.wait(TIMEOUT)


def test_threading_echo_example() -> None:
    out = run(str(EXAMPLES / "threading_echo.py")).splitlines()
    assert out == [
        "received: Hello world!",
        "received: b'\\x00\\x01binary'",
        "closed: sent 1000 (OK); then received 1000 (OK)",
    ]
