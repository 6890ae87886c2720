"""The opening handshake on the wire: raw HTTP against ws_create_server, raw servers for ws_connect.

Server side: a raw TCP client writes an upgrade request by hand and reads the exact status line,
headers and body femtows answers with, then checks that a refused connection is closed. Client
side: a raw TCP server answers ws_connect's request with a canned (often broken) response.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any, AsyncIterator, Callable, Optional

import pytest

import femtows
from femtows import (
    WSMsgType,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from tests.utils import (
    RAW_ACCEPT,
    RAW_KEY,
    RecordingListener,
    accept_for,
    close_payload,
    encode_frame,
    parse_http_head,
    raw_upgrade_request,
    read_frame,
    read_until_eof,
)

Factory = Callable[[WSUpgradeRequest], Any]


class Response:
    """A raw HTTP response as read off the wire."""

    def __init__(self, raw: bytes) -> None:
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, f"no complete head in {raw[:200]!r}"
        self.status_line, self.headers = parse_http_head(head + b"\r\n")

    def header(self, name: str) -> Optional[str]:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} repeated: {values}"
        return values[0] if values else None


@contextlib.asynccontextmanager
async def femtows_server(
    factory: Optional[Factory] = None, **kwargs: Any
) -> AsyncIterator[tuple[int, list[RecordingListener]]]:
    """ws_create_server on an ephemeral port; yields (port, listeners created)."""
    listeners: list[RecordingListener] = []

    def default_factory(request: WSUpgradeRequest) -> RecordingListener:
        listeners.append(RecordingListener())
        return listeners[-1]

    server = await femtows.ws_create_server(factory or default_factory, "127.0.0.1", 0, **kwargs)
    async with server:
        yield server.sockets[0].getsockname()[1], listeners


async def refused(port: int, request: bytes) -> Response:
    """Send ``request``; the server answers and must close the connection (EOF)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return Response(await read_until_eof(reader))
    finally:
        writer.close()


def request_with(
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
    headers: Optional[list[tuple[str, str]]] = None,
    drop: tuple[str, ...] = (),
) -> bytes:
    """A request built from the valid one with the given changes."""
    base = [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", RAW_KEY),
        ("Sec-WebSocket-Version", "13"),
    ]
    replaced = {name.lower() for name, _ in headers or []}
    lines = [f"{method} / {version}"]
    lines += [f"{k}: {v}" for k, v in base if k.lower() not in replaced and k not in drop]
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def assert_refused(
    request: bytes, status_line: str, factory: Optional[Factory] = None, **kwargs: Any
) -> Response:
    """The request is answered with ``status_line`` and Connection: close; no listener runs."""
    async with femtows_server(factory, **kwargs) as (port, listeners):
        response = await refused(port, request)
        assert response.status_line == status_line
        assert response.header("Connection") == "close"
        assert response.header("Content-Length") == str(len(response.body))
        assert all(not listener.connected.is_set() for listener in listeners)
        return response


# -- accepted upgrades --------------------------------------------------------------------------


async def open_upgrade(port: int, request: bytes) -> tuple[Response, Any, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return Response(head), reader, writer


async def close_cleanly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Client-initiated closing handshake: CLOSE 1000 echoed, then the server closes TCP."""
    writer.write(encode_frame(0x8, close_payload(1000)))
    frame = await read_frame(reader)
    assert (frame.opcode, frame.close_code) == (0x8, 1000)
    assert await read_until_eof(reader) == b""
    writer.close()


async def test_valid_request_gets_101():
    """A valid request is answered 101 with the RFC 6455 §1.3 accept value for its key."""
    async with femtows_server() as (port, listeners):
        response, reader, writer = await open_upgrade(port, raw_upgrade_request())
        assert response.status_line == "HTTP/1.1 101 Switching Protocols"
        assert response.headers == [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", RAW_ACCEPT),
        ]
        assert response.body == b""
        await asyncio.wait_for(listeners[0].connected.wait(), 5)
        await close_cleanly(reader, writer)


async def test_firefox_connection_header_gets_101():
    """Connection is a token list: "keep-alive, Upgrade" (Firefox) is accepted."""
    request = request_with(headers=[("Connection", "keep-alive, Upgrade")])
    async with femtows_server() as (port, listeners):
        response, reader, writer = await open_upgrade(port, request)
        assert response.status_line == "HTTP/1.1 101 Switching Protocols"
        assert response.header("Sec-WebSocket-Accept") == RAW_ACCEPT
        await close_cleanly(reader, writer)


async def test_header_names_and_tokens_are_case_insensitive():
    """Header names and the Upgrade/Connection tokens match case-insensitively."""
    request = (
        f"GET / HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\nconnection: UPGRADE\r\n"
        f"sec-websocket-key: {RAW_KEY}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n"
    ).encode()
    async with femtows_server() as (port, listeners):
        response, reader, writer = await open_upgrade(port, request)
        assert response.status_line == "HTTP/1.1 101 Switching Protocols"
        assert response.header("Sec-WebSocket-Accept") == RAW_ACCEPT
        await close_cleanly(reader, writer)


async def test_128_headers_are_accepted():
    """MAX_HEADERS (128) header lines is still a valid request."""
    filler = [(f"X-Filler-{i}", "v") for i in range(128 - 5)]
    async with femtows_server() as (port, listeners):
        response, reader, writer = await open_upgrade(port, request_with(headers=filler))
        assert response.status_line == "HTTP/1.1 101 Switching Protocols"
        await close_cleanly(reader, writer)


async def test_101_with_extra_headers_from_factory():
    """create_101_response(extra_headers) adds its headers to the 101, after the standard ones."""
    listener = RecordingListener()

    def factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        response = WSUpgradeResponse.create_101_response(extra_headers={"X-Extra": "1"})
        return WSUpgradeResponseWithListener(response, listener)

    async with femtows_server(factory) as (port, _):
        response, reader, writer = await open_upgrade(port, raw_upgrade_request())
        assert response.status_line == "HTTP/1.1 101 Switching Protocols"
        assert response.headers == [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", RAW_ACCEPT),
            ("X-Extra", "1"),
        ]
        await asyncio.wait_for(listener.connected.wait(), 5)
        assert listener.transport.response.headers["X-Extra"] == "1"
        await close_cleanly(reader, writer)


async def test_pipelined_frames_after_request_are_delivered():
    """Frames sent in the same write as the upgrade request reach the listener, in order."""
    frames = encode_frame(0x1, b"early", fin=False) + encode_frame(0x0, b" bird")
    frames += encode_frame(0x2, b"\x00\x01")
    async with femtows_server() as (port, listeners):
        response, reader, writer = await open_upgrade(port, raw_upgrade_request() + frames)
        assert response.status_line == "HTTP/1.1 101 Switching Protocols"
        assert await asyncio.wait_for(listeners[0].wait_frames(3), 5) == [
            (WSMsgType.TEXT, b"early", False),
            (WSMsgType.CONTINUATION, b" bird", True),
            (WSMsgType.BINARY, b"\x00\x01", True),
        ]
        await close_cleanly(reader, writer)


async def test_factory_sees_request_before_validation():
    """The factory gets the parsed request: method, path and headers as sent."""
    seen: list[WSUpgradeRequest] = []

    def factory(request: WSUpgradeRequest) -> RecordingListener:
        seen.append(request)
        return RecordingListener()

    async with femtows_server(factory) as (port, _):
        request = raw_upgrade_request(path="/chat?room=1", extra=b"X-Token: abc\r\n")
        response, reader, writer = await open_upgrade(port, request)
        assert response.status_line == "HTTP/1.1 101 Switching Protocols"
        assert (seen[0].method, seen[0].path, seen[0].version) == (
            b"GET",
            b"/chat?room=1",
            b"HTTP/1.1",
        )
        assert seen[0].headers["X-Token"] == "abc"
        await close_cleanly(reader, writer)


# -- refused upgrades ---------------------------------------------------------------------------


async def test_unsupported_version_gets_426():
    """Sec-WebSocket-Version 8 is answered 426 with Sec-WebSocket-Version: 13."""
    response = await assert_refused(
        request_with(headers=[("Sec-WebSocket-Version", "8")]), "HTTP/1.1 426 Upgrade Required"
    )
    assert response.header("Sec-WebSocket-Version") == "13"


async def test_missing_upgrade_header_gets_426():
    """No Upgrade header at all is answered 426 naming the protocol (Upgrade: websocket)."""
    response = await assert_refused(
        request_with(drop=("Upgrade",)), "HTTP/1.1 426 Upgrade Required"
    )
    assert response.header("Upgrade") == "websocket"


@pytest.mark.parametrize(
    "change",
    [
        {"drop": ("Sec-WebSocket-Key",)},
        {"headers": [("Sec-WebSocket-Key", base64.b64encode(b"x" * 15).decode())]},
        {"headers": [("Sec-WebSocket-Key", base64.b64encode(b"x" * 17).decode())]},
        {"headers": [("Sec-WebSocket-Key", "not base64 at all!!!")]},
        {"headers": [("Sec-WebSocket-Key", RAW_KEY), ("Sec-WebSocket-Key", RAW_KEY)]},
        {"drop": ("Sec-WebSocket-Version",)},
        {"drop": ("Host",)},
        {"headers": [("Connection", "keep-alive")]},
        {"headers": [("Upgrade", "h2c")]},
    ],
    ids=[
        "no-key",
        "key-15-bytes",
        "key-17-bytes",
        "key-not-base64",
        "key-twice",
        "no-version",
        "no-host",
        "connection-without-upgrade",
        "upgrade-not-websocket",
    ],
)
async def test_malformed_websocket_headers_get_400(change):
    """A missing, repeated or malformed WebSocket header is answered 400."""
    response = await assert_refused(request_with(**change), "HTTP/1.1 400 Bad Request")
    assert response.header("Content-Type") == "text/plain; charset=utf-8"


async def test_post_gets_405():
    """A method other than GET is answered 405 with Allow: GET."""
    response = await assert_refused(request_with(method="POST"), "HTTP/1.1 405 Method Not Allowed")
    assert response.header("Allow") == "GET"


async def test_http_1_0_gets_400():
    """HTTP/1.0 has no upgrade mechanism: 400."""
    await assert_refused(request_with(version="HTTP/1.0"), "HTTP/1.1 400 Bad Request")


async def test_http_2_gets_505():
    """An HTTP major version other than 1 is answered 505."""
    await assert_refused(
        request_with(version="HTTP/2.0"), "HTTP/1.1 505 HTTP Version Not Supported"
    )


@pytest.mark.parametrize(
    "request_line",
    [b"HELLO", b"GET /", b"GET  / HTTP/1.1", b"GET / HTTP/1.1 extra", b"\x00\x01\x02 / HTTP/1.1"],
    ids=["word", "no-version", "double-space", "trailing", "binary"],
)
async def test_garbage_request_line_gets_400(request_line):
    """A request line that is not METHOD SP target SP HTTP/x.y is answered 400."""
    request = request_line + b"\r\n" + request_with().split(b"\r\n", 1)[1]
    await assert_refused(request, "HTTP/1.1 400 Bad Request")


@pytest.mark.parametrize(
    "line",
    [b"No colon here", b" folded: continuation", b"Bad Name: v", b"X-Ctl: a\x01b"],
    ids=["no-colon", "obs-fold", "space-in-name", "control-char"],
)
async def test_malformed_header_line_gets_400(line):
    """A header line that is not a strict field-name ":" field-value is answered 400."""
    await assert_refused(raw_upgrade_request(extra=line + b"\r\n"), "HTTP/1.1 400 Bad Request")


async def test_129_headers_get_431():
    """More than MAX_HEADERS (128) header lines is answered 431."""
    filler = [(f"X-Filler-{i}", "v") for i in range(129 - 5)]
    await assert_refused(
        request_with(headers=filler), "HTTP/1.1 431 Request Header Fields Too Large"
    )


async def test_unterminated_head_over_16_kib_gets_431():
    """16 KiB + 1 bytes without CRLFCRLF is answered 431 and closed, without waiting for more."""
    prefix = b"GET / HTTP/1.1\r\nX-Big: "
    request = prefix + b"a" * (16 * 1024 + 1 - len(prefix))
    await assert_refused(request, "HTTP/1.1 431 Request Header Fields Too Large")


async def test_complete_head_over_16_kib_gets_431():
    """A complete head over 16 KiB is answered 431 too."""
    request = raw_upgrade_request(extra=b"X-Big: " + b"a" * (16 * 1024) + b"\r\n")
    await assert_refused(request, "HTTP/1.1 431 Request Header Fields Too Large")


async def test_request_body_gets_400():
    """Transfer-Encoding or a non-zero Content-Length on the upgrade GET is answered 400."""
    await assert_refused(
        request_with(headers=[("Transfer-Encoding", "chunked")]), "HTTP/1.1 400 Bad Request"
    )
    await assert_refused(
        request_with(headers=[("Content-Length", "5")]), "HTTP/1.1 400 Bad Request"
    )


async def test_factory_returning_none_gets_404():
    """A factory that returns None refuses the upgrade with 404."""
    await assert_refused(raw_upgrade_request(), "HTTP/1.1 404 Not Found", lambda request: None)


async def test_factory_exception_gets_generic_500():
    """A factory exception is answered 500 and its text never reaches the peer."""

    def factory(request: WSUpgradeRequest) -> None:
        raise RuntimeError("secret detail")

    response = await assert_refused(
        raw_upgrade_request(), "HTTP/1.1 500 Internal Server Error", factory
    )
    assert b"secret" not in response.body
    assert all("secret" not in value for _, value in response.headers)


async def test_factory_returning_non_listener_gets_500():
    """A factory that returns something that is not a WSListener is answered 500."""
    await assert_refused(
        raw_upgrade_request(),
        "HTTP/1.1 500 Internal Server Error",
        lambda request: "not a listener",
    )


async def test_factory_ok_response_is_sent_and_closed():
    """A 200 response from the factory (health check) is sent with its body, then closed."""

    def factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b"healthy"), None)

    response = await assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK", factory
    )
    assert response.body == b"healthy"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"


async def test_factory_error_response_with_headers():
    """create_error_response(401, ...) is sent as given, plus Connection: close."""

    def factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        response = WSUpgradeResponse.create_error_response(
            401, b"who are you?", {"WWW-Authenticate": "Bearer"}
        )
        return WSUpgradeResponseWithListener(response, None)

    response = await assert_refused(raw_upgrade_request(), "HTTP/1.1 401 Unauthorized", factory)
    assert response.body == b"who are you?"
    assert response.header("WWW-Authenticate") == "Bearer"


async def test_factory_response_reason_phrase_is_sent():
    """WSUpgradeResponse(reason=...) from the factory is the status line's phrase."""

    def factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        response = WSUpgradeResponse(b"HTTP/1.1", 403, None, b"bye", reason="Go Away \xe9")
        return WSUpgradeResponseWithListener(response, None)

    response = await assert_refused(raw_upgrade_request(), "HTTP/1.1 403 Go Away \xe9", factory)
    assert response.body == b"bye"


async def test_factory_101_reason_phrase_is_sent():
    """A 101 with a custom phrase: sent as given, the connection opens as usual."""
    listener = RecordingListener()

    def factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        response = WSUpgradeResponse.create_101_response({"X-A": "1"})
        response.reason = "Upgrading"
        return WSUpgradeResponseWithListener(response, listener)

    async with femtows_server(factory) as (port, _):
        response, reader, writer = await open_upgrade(port, raw_upgrade_request())
        assert response.status_line == "HTTP/1.1 101 Upgrading"
        assert response.header("Sec-WebSocket-Accept") == RAW_ACCEPT
        await asyncio.wait_for(listener.connected.wait(), 5)
        assert listener.transport.response.reason == "Upgrading"
        await close_cleanly(reader, writer)


@pytest.mark.parametrize("status", [101, 403])
async def test_factory_response_with_unsafe_reason_gets_500(status: int):
    """A reason phrase with CR LF assigned after construction never reaches the wire: 500."""

    def factory(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        if status == 101:
            response = WSUpgradeResponse.create_101_response()
            listener: Optional[RecordingListener] = RecordingListener()
        else:
            response = WSUpgradeResponse.create_error_response(status)
            listener = None
        response.reason = "x\r\nSet-Cookie: injected=1"
        return WSUpgradeResponseWithListener(response, listener)

    response = await assert_refused(
        raw_upgrade_request(), "HTTP/1.1 500 Internal Server Error", factory
    )
    assert response.body == b"Internal Server Error"
    assert all("injected" not in value for _, value in response.headers)


async def test_silent_client_is_dropped_after_handshake_timeout():
    """A client that sends nothing is disconnected after websocket_handshake_timeout."""
    async with femtows_server(websocket_handshake_timeout=0.2) as (port, listeners):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        try:
            assert await read_until_eof(reader, 3) == b""
        finally:
            writer.close()
        assert 0.15 < time.monotonic() - started < 3
        assert listeners == []


async def test_partial_request_is_dropped_after_handshake_timeout():
    """A client that stops in the middle of its request is dropped too (slowloris)."""
    async with femtows_server(websocket_handshake_timeout=0.2) as (port, listeners):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request()[:40])
        started = time.monotonic()
        try:
            assert await read_until_eof(reader, 3) == b""
        finally:
            writer.close()
        assert 0.15 < time.monotonic() - started < 3
        assert listeners == []


# -- client side: ws_connect against canned responses -------------------------------------------


@contextlib.asynccontextmanager
async def canned_server(
    respond: Callable[[str], bytes], *, close: bool = True
) -> AsyncIterator[str]:
    """A raw server answering the request with ``respond(accept)``, then closing (or not)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(respond(accept_for(head)))
            if close:
                writer.close()
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        for writer in writers:
            writer.close()
        server.close()


def switching(
    accept: str, *, status: bytes = b"101 Switching Protocols", upgrade: bool = True
) -> bytes:
    lines = [b"HTTP/1.1 " + status]
    if upgrade:
        lines.append(b"Upgrade: websocket")
    lines += [b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + accept.encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def connect_error(
    respond: Callable[[str], bytes], close: bool = True
) -> femtows.WSHandshakeError:
    async with canned_server(respond, close=close) as url:
        with pytest.raises(femtows.WSHandshakeError) as info:
            await asyncio.wait_for(femtows.ws_connect(RecordingListener, url), 5)
        return info.value


async def test_client_status_404():
    """A 404 raises WSInvalidStatusError carrying the parsed response and its body."""
    exc = await connect_error(
        lambda accept: b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
    )
    assert type(exc) is femtows.WSInvalidStatusError
    assert exc.response.status == 404
    assert exc.raw_body == b"nope"


async def test_client_missing_upgrade_header():
    """A 101 without Upgrade raises WSInvalidUpgradeError naming the header."""
    exc = await connect_error(lambda accept: switching(accept, upgrade=False))
    assert type(exc) is femtows.WSInvalidUpgradeError
    assert (exc.name, exc.value) == ("Upgrade", None)


async def test_client_wrong_accept():
    """A wrong Sec-WebSocket-Accept raises WSInvalidHeaderError naming the header."""
    exc = await connect_error(lambda accept: switching(RAW_ACCEPT))
    assert type(exc) is femtows.WSInvalidHeaderError
    assert (exc.name, exc.value) == ("Sec-WebSocket-Accept", RAW_ACCEPT)


async def test_client_response_head_over_16_kib():
    """A response head over 16 KiB raises WSInvalidMessageError."""
    exc = await connect_error(
        lambda accept: b"HTTP/1.1 101 Switching Protocols\r\nX-Big: " + b"a" * (16 * 1024),
        close=False,
    )
    assert type(exc) is femtows.WSInvalidMessageError
    assert str(exc) == (
        "upgrade response headers exceed max_size threshold: 16384 "
        "(upgrade response head exceeds 16384 bytes)"
    )


async def test_client_server_closes_mid_head():
    """The server closing before the end of the head raises a WSHandshakeError."""
    exc = await connect_error(lambda accept: b"HTTP/1.1 101 Switching Protocols\r\nUpgr")
    assert type(exc) is femtows.WSInvalidMessageError
    assert str(exc) == "the connection was closed before the upgrade response was complete"


async def test_client_garbage_status_line():
    """A response that is not HTTP/1.1 raises WSInvalidMessageError."""
    exc = await connect_error(lambda accept: b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert type(exc) is femtows.WSInvalidMessageError


@pytest.mark.parametrize("status", [b"101 null", b"101 ", b"101", b"101 OK whatever"])
async def test_client_accepts_any_reason_phrase(status):
    """The reason phrase is free text (even "null", or absent): the upgrade succeeds."""
    async with canned_server(lambda accept: switching(accept, status=status), close=False) as url:
        transport, listener = await asyncio.wait_for(femtows.ws_connect(RecordingListener, url), 5)
        assert transport.response.status == 101
        assert listener.connected.is_set()
        transport.disconnect()
        await asyncio.wait_for(transport.wait_disconnected(), 5)


async def test_client_gets_frames_sent_with_the_101():
    """Frames in the same write as the 101 response are delivered after on_ws_connected."""

    def respond(accept: str) -> bytes:
        return (
            switching(accept)
            + encode_frame(0x1, b"hello", mask=False)
            + encode_frame(0x2, b"\x00", mask=False)
        )

    async with canned_server(respond, close=False) as url:
        transport, listener = await asyncio.wait_for(femtows.ws_connect(RecordingListener, url), 5)
        assert await asyncio.wait_for(listener.wait_frames(2), 5) == [
            (WSMsgType.TEXT, b"hello", True),
            (WSMsgType.BINARY, b"\x00", True),
        ]
        transport.disconnect()
        await asyncio.wait_for(transport.wait_disconnected(), 5)


async def test_request_split_across_writes_is_accepted():
    """The request head may arrive in pieces, even with CRLFCRLF split between writes."""
    request = raw_upgrade_request()
    async with femtows_server() as (port, listeners):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for piece in (request[:10], request[10:-3], request[-3:-1], request[-1:]):
            writer.write(piece)
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert Response(head).status_line == "HTTP/1.1 101 Switching Protocols"
        await close_cleanly(reader, writer)
