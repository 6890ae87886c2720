"""Shared helpers for the tests: an echo server and a client that records what it receives."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import femtows
from femtows import WSFrame, WSListener, WSMsgType, WSTransport


class EchoListener(WSListener):
    """The seed's naive echo server listener: data back as it came, CLOSE answered."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


class RecordingListener(WSListener):
    """Records every frame as (msg_type, payload bytes, fin) and wakes waiters."""

    def __init__(self) -> None:
        self.frames: list[tuple[WSMsgType, bytes, bool]] = []
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.new_frame = asyncio.Event()
        self.transport: Optional[WSTransport] = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.connected.set()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.frames.append((frame.msg_type, frame.get_payload_as_bytes(), frame.fin))
        self.new_frame.set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected.set()

    async def wait_frames(self, count: int) -> list[tuple[WSMsgType, bytes, bool]]:
        while len(self.frames) < count:
            self.new_frame.clear()
            await self.new_frame.wait()
        return self.frames

    async def wait_message(self, index: int = 0) -> tuple[WSMsgType, bytes]:
        """Reassemble the index-th message from the recorded frames."""
        while True:
            messages: list[tuple[WSMsgType, bytes]] = []
            current: Optional[tuple[WSMsgType, bytearray]] = None
            for msg_type, payload, fin in self.frames:
                if msg_type in (WSMsgType.PING, WSMsgType.PONG, WSMsgType.CLOSE):
                    continue
                if msg_type != WSMsgType.CONTINUATION:
                    current = (msg_type, bytearray())
                assert current is not None
                current[1].extend(payload)
                if fin:
                    messages.append((current[0], bytes(current[1])))
                    current = None
            if len(messages) > index:
                return messages[index]
            self.new_frame.clear()
            await self.new_frame.wait()


async def start_echo_server(tls: Any = None, **kwargs: Any) -> tuple[asyncio.Server, str]:
    """An echo server on an ephemeral port; returns (server, url)."""
    server_kwargs = tls.server_kwargs() if tls is not None else {}
    server = await femtows.ws_create_server(
        lambda request: EchoListener(), "127.0.0.1", 0, **server_kwargs, **kwargs
    )
    port = server.sockets[0].getsockname()[1]
    scheme = tls.scheme if tls is not None else "ws"
    return server, f"{scheme}://127.0.0.1:{port}/"
