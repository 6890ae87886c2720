"""The HTTP side of the drop-in servers (asyncio and sync) on the wire, against websockets 17.4
serving the same hooks: custom reason phrases from ``process_request`` / ``process_response``
reach the status line as websockets sends them, and the one deliberate difference, an upgrade
request without exactly one ``Host`` header, is refused with 400 (RFC 6455 §4.2.1) where
websockets accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import websockets.asyncio.server as ws_aserver
import websockets.sync.server as ws_sserver

from femtows.websockets.asyncio import client as f_client
from femtows.websockets.asyncio import server as f_aserver
from femtows.websockets.exceptions import InvalidStatus
from femtows.websockets.sync import server as f_sserver
from tests.utils import RAW_ACCEPT, RAW_TIMEOUT
from tests.websockets.reference import needs_reference
from tests.websockets.server_helpers import RawResponse, port_of, raw_exchange, upgrade

FAILED = "Failed to open a WebSocket connection.\nSee server log for more information.\n"
HOSTLESS = upgrade().replace(b"Host: 127.0.0.1\r\n", b"")
TWO_HOSTS = upgrade(extra="Host: other.example\r\n")
HOST_REFUSALS = [
    pytest.param(HOSTLESS, "missing Host header", id="no-host"),
    pytest.param(TWO_HOSTS, "invalid Host header: multiple values", id="two-hosts"),
]

# -- the hooks, written once for both libraries ------------------------------------------------

# path -> (status, reason phrase); the body is "<path>\n".
CUSTOM = {
    "/forbidden": (403, "Go Away"),
    "/latin": (200, "Tr\u00e8s bien"),
    "/empty": (200, ""),
    "/unknown": (599, "Network Connect Timeout"),
    "/tabs": (418, "I'm\ta teapot"),
}
# process_response changes the 101's phrase for this path.
SWITCHING = "/switch"
SWITCHING_PHRASE = "Switching, gladly"


def process_request(connection: Any, request: Any) -> Any:
    """Works with either library: ``connection.respond`` builds that library's Response."""
    if request.path not in CUSTOM:
        return None
    status, reason = CUSTOM[request.path]
    response = connection.respond(200, request.path + "\n")
    return dataclasses.replace(response, status_code=status, reason_phrase=reason)


def process_response(connection: Any, request: Any, response: Any) -> Any:
    if request.path == SWITCHING:
        return dataclasses.replace(response, reason_phrase=SWITCHING_PHRASE)
    return None


HOOKS: dict[str, Any] = {"process_request": process_request, "process_response": process_response}


def handler(ws: Any) -> Any:
    """Closes at once; sync or async as the server wants it."""
    return ws.close()


async def read_head(port: int, request: bytes) -> RawResponse:
    """The head of the answer (a 101 keeps the connection: read up to the blank line)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RAW_TIMEOUT)
        return RawResponse(head)
    finally:
        writer.close()


def read_head_blocking(port: int, request: bytes) -> RawResponse:
    """``read_head`` for the sync servers, from a plain socket; the body too when the server
    closes (anything but a 101)."""
    with socket.create_connection(("127.0.0.1", port), timeout=RAW_TIMEOUT) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or not data.startswith(b"HTTP/1.1 101"):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    if data.startswith(b"HTTP/1.1 101"):
        data = data[: data.index(b"\r\n\r\n") + 4]  # not the frames that may follow
    return RawResponse(data)


async def async_exchange(port: int, request: bytes) -> RawResponse:
    if request.split(b" ")[1] == SWITCHING.encode() and b"Host:" in request:
        return await read_head(port, request)
    return await raw_exchange(port, request)


@contextlib.asynccontextmanager
async def asyncio_server(lib: str, **kwargs: Any) -> AsyncIterator[int]:
    serve = ws_aserver.serve if lib == "websockets" else f_aserver.serve

    async def async_handler(ws: Any) -> None:
        await ws.close()

    async with serve(async_handler, "127.0.0.1", 0, **kwargs) as server:
        yield port_of(server)


@contextlib.contextmanager
def sync_server(lib: str, **kwargs: Any) -> Iterator[int]:
    serve = ws_sserver.serve if lib == "websockets" else f_sserver.serve
    server = serve(handler, "127.0.0.1", 0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.shutdown()
        thread.join(RAW_TIMEOUT)


# -- custom reason phrases ----------------------------------------------------------------------

PATHS = [*CUSTOM, SWITCHING]


def expected_status_line(path: str) -> str:
    if path == SWITCHING:
        return f"HTTP/1.1 101 {SWITCHING_PHRASE}"
    status, reason = CUSTOM[path]
    return f"HTTP/1.1 {status} {reason}"


@needs_reference
@pytest.mark.parametrize("path", PATHS)
async def test_asyncio_reason_phrase_matches_websockets(path: str) -> None:
    """The status line, headers and body are websockets' (Date and Server aside)."""
    async with asyncio_server("websockets", **HOOKS) as port:
        expected = await async_exchange(port, upgrade(path))
    async with asyncio_server("femtows", **HOOKS) as port:
        actual = await async_exchange(port, upgrade(path))
    assert expected.status_line == expected_status_line(path)
    assert actual.comparable() == expected.comparable()


@needs_reference
@pytest.mark.parametrize("path", PATHS)
def test_sync_reason_phrase_matches_websockets(path: str) -> None:
    """The same through the threading servers of both libraries."""
    with sync_server("websockets", **HOOKS) as port:
        expected = read_head_blocking(port, upgrade(path))
    with sync_server("femtows", **HOOKS) as port:
        actual = read_head_blocking(port, upgrade(path))
    assert expected.status_line == expected_status_line(path)
    assert actual.comparable() == expected.comparable()


async def test_client_sees_the_reason_phrase() -> None:
    """femtows's client reports the phrase the server sent, as websockets' client does."""
    async with asyncio_server("femtows", **HOOKS) as port:
        with pytest.raises(InvalidStatus) as info:
            async with f_client.connect(f"ws://127.0.0.1:{port}/forbidden"):
                pass
        assert info.value.response.status_code == 403
        assert info.value.response.reason_phrase == "Go Away"
        assert info.value.response.body == b"/forbidden\n"
        async with f_client.connect(f"ws://127.0.0.1:{port}{SWITCHING}") as ws:
            assert ws.response is not None
            assert ws.response.reason_phrase == SWITCHING_PHRASE
            assert ws.response.headers["Sec-WebSocket-Accept"]
        async with f_client.connect(f"ws://127.0.0.1:{port}/") as ws:
            assert ws.response is not None
            assert ws.response.reason_phrase == "Switching Protocols"


@pytest.mark.parametrize("status", [101, 403])
@pytest.mark.parametrize("reason", ["a\r\nSet-Cookie: injected=1", "check \u2713"])
async def test_unsafe_reason_phrase_answers_500(
    status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A phrase with CR LF (websockets would send it: header injection) or that Latin-1 cannot
    encode is never sent: 500 with websockets' generic body, the detail in the log."""

    def hook(connection: Any, request: Any, response: Any) -> Any:
        if status != 101:
            response = connection.respond(status, "no\n")
        return dataclasses.replace(response, reason_phrase=reason)

    with caplog.at_level(logging.ERROR, logger="websockets.server"):
        async with asyncio_server("femtows", process_response=hook) as port:
            raw = await raw_exchange(port, upgrade())
    assert raw.status_line == "HTTP/1.1 500 Internal Server Error"
    assert raw.body == FAILED.encode()
    assert all("injected" not in value for _, value in raw.headers)
    records = [r for r in caplog.records if r.getMessage() == "invalid HTTP response"]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert "invalid character in the reason phrase" in str(records[0].exc_info[1])


# -- Host: exactly one, or 400 (a deliberate difference from websockets 17.4) ---------------------


@pytest.mark.parametrize(("request_bytes", "text"), HOST_REFUSALS)
async def test_asyncio_server_refuses_request_without_one_host(
    request_bytes: bytes, text: str
) -> None:
    """400 with websockets' wording for a bad header; process_response sees the 400 and the
    handler never runs. websockets 17.4 answers 101 to the same bytes."""
    seen: list[int] = []
    handled: list[bool] = []

    def record(connection: Any, request: Any, response: Any) -> None:
        seen.append(response.status_code)

    async def f_handler(ws: Any) -> None:
        handled.append(True)

    async with f_aserver.serve(f_handler, "127.0.0.1", 0, process_response=record) as server:
        raw = await raw_exchange(port_of(server), request_bytes)
    assert raw.status_line == "HTTP/1.1 400 Bad Request"
    assert raw.body == f"Failed to open a WebSocket connection: {text}.\n".encode()
    assert raw.header("Content-Length") == str(len(raw.body))
    assert raw.header("Connection") == "close"
    assert seen == [400]
    assert handled == []
    async with asyncio_server("websockets") as port:
        reference = await read_head(port, request_bytes)
    assert reference.status_line == "HTTP/1.1 101 Switching Protocols"
    assert reference.header("Sec-WebSocket-Accept") == RAW_ACCEPT


@pytest.mark.parametrize(("request_bytes", "text"), HOST_REFUSALS)
def test_sync_server_refuses_request_without_one_host(request_bytes: bytes, text: str) -> None:
    """The threading server answers the same 400."""
    with sync_server("femtows") as port:
        raw = read_head_blocking(port, request_bytes)
    assert raw.status_line == "HTTP/1.1 400 Bad Request"
    assert raw.body == f"Failed to open a WebSocket connection: {text}.\n".encode()
    with sync_server("websockets") as port:
        reference = read_head_blocking(port, request_bytes)
    assert reference.status_line == "HTTP/1.1 101 Switching Protocols"


async def test_empty_host_is_accepted() -> None:
    """An empty Host value is one Host header: accepted, as by websockets and the core."""
    request = upgrade().replace(b"Host: 127.0.0.1", b"Host: ")
    async with asyncio_server("femtows") as port:
        raw = await read_head(port, request)
    assert raw.status_line == "HTTP/1.1 101 Switching Protocols"

