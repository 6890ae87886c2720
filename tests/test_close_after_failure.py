"""After the server fails a connection, the client's CLOSE reply completes the closing
handshake even when it is longer than max_frame_size (which limits data frames only)."""

from __future__ import annotations

import asyncio

import femtows
from tests.utils import (
    RecordingListener,
    close_payload,
    encode_frame,
    raw_upgrade_request,
    read_frame,
    read_until_eof,
)


async def test_long_close_reply_after_1009_closes_tcp() -> None:
    server = await femtows.ws_create_server(
        lambda request: RecordingListener(), "127.0.0.1", 0, max_frame_size=10,
        close_timeout=None,  # only the peer's CLOSE can end the connection
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(encode_frame(0x2, b"x" * 11))  # over max_frame_size, all at once
        close = await read_frame(reader)
        assert close.close_code == 1009
        assert len(close.payload) > 10
        writer.write(encode_frame(0x8, close.payload))  # echo it back, as websockets does
        assert await read_until_eof(reader) == b""  # the server closes TCP right away
        writer.close()


async def test_oversized_close_reply_is_still_refused() -> None:
    """A CLOSE over 125 bytes is not a valid reply: the stream is dropped (close timer ends
    the connection)."""
    server = await femtows.ws_create_server(
        lambda request: RecordingListener(), "127.0.0.1", 0, max_frame_size=10,
        close_timeout=0.2,
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(encode_frame(0x2, b"x" * 11))
        assert (await read_frame(reader)).close_code == 1009
        too_long = close_payload(1000, b"r" * 124)  # 126 bytes
        writer.write(encode_frame(0x8, too_long, length=bytes([126, 0, 126])))
        assert await read_until_eof(reader) == b""
        writer.close()
