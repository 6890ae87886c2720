"""A server listener factory that returns an awaitable (or is a coroutine function).

The core awaits it with reading paused, keeps the handshake timeout running, cancels it when
the connection is lost, answers 500 when it raises, and then treats its result exactly like a
sync factory's (WSListener / WSUpgradeResponseWithListener / None).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

import pytest

import femtows
from femtows import WSMsgType, WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener
from tests.utils import (
    RAW_ACCEPT,
    RecordingListener,
    encode_frame,
    parse_http_head,
    raw_upgrade_request,
    read_frame,
    read_until_eof,
)


async def start(factory: Any, **kwargs: Any) -> tuple[asyncio.Server, int]:
    server = await femtows.ws_create_server(factory, "127.0.0.1", 0, **kwargs)
    return server, server.sockets[0].getsockname()[1]


async def read_head(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return parse_http_head(head)


async def test_coroutine_factory_accepts_and_frames_flow() -> None:
    listener = RecordingListener()
    seen: list[bytes] = []

    async def factory(request: WSUpgradeRequest) -> RecordingListener:
        seen.append(request.path)
        await asyncio.sleep(0)
        return listener

    server, port = await start(factory)
    async with server:
        transport, client = await femtows.ws_connect(
            RecordingListener, f"ws://127.0.0.1:{port}/async?x=1"
        )
        await listener.connected.wait()
        transport.send(WSMsgType.TEXT, b"hello")
        assert await listener.wait_message(0) == (WSMsgType.TEXT, b"hello")
        assert seen == [b"/async?x=1"]
        transport.disconnect()
        await transport.wait_disconnected()


async def test_reading_is_paused_and_buffered_frames_delivered_after() -> None:
    """Frames sent right behind the request wait, in order, until the factory decides; more
    than the head limit of them pauses reading, and nothing is lost."""
    listener = RecordingListener()
    decide = asyncio.Event()
    entered = asyncio.Event()
    big = bytes(range(256)) * 160  # 40 KiB: over the 16 KiB head limit

    async def factory(request: WSUpgradeRequest) -> RecordingListener:
        entered.set()
        await decide.wait()
        return listener

    server, port = await start(factory)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request() + encode_frame(0x1, b"early"))
        await entered.wait()
        writer.write(encode_frame(0x2, big))
        await writer.drain()
        assert listener.frames == []
        decide.set()
        status, headers = await read_head(reader)
        assert status == "HTTP/1.1 101 Switching Protocols"
        assert ("Sec-WebSocket-Accept", RAW_ACCEPT) in headers
        assert await listener.wait_frames(2) == [
            (WSMsgType.TEXT, b"early", True),
            (WSMsgType.BINARY, big, True),
        ]
        writer.close()


async def test_awaitable_result_kinds() -> None:
    """None → 404; an error response → sent as is; a 101 with headers → added to the 101."""
    listener = RecordingListener()

    async def factory(request: WSUpgradeRequest) -> Any:
        await asyncio.sleep(0)
        if request.path == b"/none":
            return None
        if request.path == b"/teapot":
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(418, b"short and stout"), None
            )
        return WSUpgradeResponseWithListener(
            WSUpgradeResponse.create_101_response({"X-Async": "yes"}), listener
        )

    server, port = await start(factory)
    async with server:
        for path, expected_status, body in (
            ("/none", "HTTP/1.1 404 Not Found", b"404 Not Found"),
            ("/teapot", "HTTP/1.1 418 I'm a Teapot", b"short and stout"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw_upgrade_request(path))
            raw = await read_until_eof(reader)
            writer.close()
            head, _, rest = raw.partition(b"\r\n\r\n")
            status, _ = parse_http_head(head + b"\r\n")
            assert (status, rest) == (expected_status, body)

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request("/ok"))
        status, headers = await read_head(reader)
        assert status == "HTTP/1.1 101 Switching Protocols"
        assert ("X-Async", "yes") in headers
        await listener.connected.wait()
        writer.close()


async def test_factory_raising_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    async def factory(request: WSUpgradeRequest) -> Any:
        await asyncio.sleep(0)
        raise RuntimeError("secret detail")

    server, port = await start(factory)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with caplog.at_level(logging.ERROR, logger="femtows.server"):
            writer.write(raw_upgrade_request())
            raw = await read_until_eof(reader)
        writer.close()
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert raw.endswith(b"\r\n\r\nInternal Server Error")
    assert b"secret" not in raw
    records = [r for r in caplog.records if "listener factory raised" in r.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is not None and isinstance(records[0].exc_info[1], RuntimeError)


async def test_awaitable_returning_awaitable_is_refused() -> None:
    async def factory(request: WSUpgradeRequest) -> Any:
        return asyncio.get_running_loop().create_future()

    server, port = await start(factory)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request())
        raw = await read_until_eof(reader)
        writer.close()
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


async def test_handshake_timeout_applies_and_cancels_the_factory() -> None:
    cancelled = asyncio.Event()

    async def factory(request: WSUpgradeRequest) -> Optional[RecordingListener]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    server, port = await start(factory, websocket_handshake_timeout=0.2)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request())
        assert await read_until_eof(reader) == b""  # dropped, no response
        await asyncio.wait_for(cancelled.wait(), 5)
        writer.close()


async def test_connection_lost_cancels_the_factory() -> None:
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def factory(request: WSUpgradeRequest) -> Optional[RecordingListener]:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    server, port = await start(factory)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request())
        await entered.wait()
        writer.transport.abort()
        await asyncio.wait_for(cancelled.wait(), 5)


async def test_future_as_result_and_close_frame_after_open() -> None:
    """Any awaitable works (here a Future); the connection then behaves as usual."""
    loop = asyncio.get_running_loop()
    listener = RecordingListener()

    def factory(request: WSUpgradeRequest) -> asyncio.Future[RecordingListener]:
        fut: asyncio.Future[RecordingListener] = loop.create_future()
        loop.call_soon(fut.set_result, listener)
        return fut

    server, port = await start(factory)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request())
        status, _ = await read_head(reader)
        assert status == "HTTP/1.1 101 Switching Protocols"
        await listener.connected.wait()
        assert listener.transport is not None
        listener.transport.send_close(femtows.WSCloseCode.OK)
        frame = await read_frame(reader)
        assert frame.close_code == 1000
        writer.close()
