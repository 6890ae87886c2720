"""docs/nginx.md's configuration, run for real: Debian's nginx (started by scripts/nginx/run.py
with scripts/nginx/femtows.conf) in front of a femtows server, echoes through it over ws and
wss (TLS terminated at nginx)."""

from __future__ import annotations

import asyncio
import json
import selectors
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

import femtows
from femtows import WSCloseCode, WSMsgType
from tests.conftest import TLSConfig
from tests.utils import RAW_TIMEOUT, RecordingListener, parse_http_head

RUN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "nginx" / "run.py"
START_TIMEOUT = 240.0  # apt-get install on a fresh machine


@pytest.fixture(scope="session")
def nginx() -> Iterator[dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, str(RUN_SCRIPT), "serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    info: Optional[dict[str, Any]] = None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if selector.select(START_TIMEOUT):
            line = proc.stdout.readline()
            if line:
                info = json.loads(line)
    try:
        if info is None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            pytest.fail(f"scripts/nginx/run.py did not start: {proc.stderr.read().strip()}",
                        pytrace=False)
        yield info
    finally:
        if proc.poll() is None:
            proc.stdin.close()  # run.py stops nginx and the backend on EOF
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


async def test_echo_through_nginx(nginx: dict[str, Any], tls: TLSConfig) -> None:
    port = nginx["wss" if tls.enabled else "ws"]
    url = f"{tls.scheme}://127.0.0.1:{port}/chat?room=1"
    transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
    assert isinstance(client, RecordingListener)
    assert transport.is_secure is tls.enabled

    # What the femtows server behind nginx saw of the upgrade request.
    msg_type, hello = await client.wait_message(0)
    assert msg_type == WSMsgType.TEXT
    seen = json.loads(hello)
    assert seen["path"] == "/chat?room=1"
    headers = seen["headers"]
    assert headers["Upgrade"].lower() == "websocket"
    assert headers["Connection"].lower() == "upgrade"
    assert headers["Host"] == "127.0.0.1"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == ("https" if tls.enabled else "http")

    # Messages in both directions: text, a large binary message, a fragmented one.
    transport.send(WSMsgType.TEXT, "héllo through nginx")
    assert await client.wait_message(1) == (WSMsgType.TEXT, "héllo through nginx".encode())
    big = bytes(range(256)) * 1024  # 256 KiB: several TCP segments and TLS records
    transport.send(WSMsgType.BINARY, big)
    assert await client.wait_message(2) == (WSMsgType.BINARY, big)
    transport.send(WSMsgType.TEXT, b"frag", fin=False)
    transport.send(WSMsgType.CONTINUATION, b"mented", fin=True)
    assert await client.wait_message(3) == (WSMsgType.TEXT, b"fragmented")

    # The closing handshake goes through nginx too: the server's CLOSE comes back.
    transport.send_close(WSCloseCode.OK, "bye")
    await transport.wait_disconnected()
    handshake = transport.close_handshake
    assert handshake is not None and handshake.recv is not None
    assert (handshake.recv.code, handshake.recv.reason) == (WSCloseCode.OK, "bye")


async def test_plain_http_request_through_nginx(nginx: dict[str, Any]) -> None:
    # A GET without Upgrade reaches femtows as a plain request ("Connection: close" from the
    # map), and femtows's 426 comes back through nginx.
    reader, writer = await asyncio.open_connection("127.0.0.1", nginx["ws"])
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RAW_TIMEOUT)
    finally:
        writer.close()
    status, headers = parse_http_head(head)
    assert status.split()[1] == "426", status
    assert ("upgrade", "websocket") in [(k.lower(), v.lower()) for k, v in headers]
