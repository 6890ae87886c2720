"""Shared helpers for the tests: an echo server, a client that records what it receives, and
a byte pipe for fake proxies."""

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


async def echo_round_trip(
    url: str, message: bytes = b"round trip \x00\xff", **kwargs: Any
) -> femtows.WSTransport:
    """``ws_connect(url, **kwargs)`` to an echo server, check that one BINARY message comes
    back unchanged, close cleanly; returns the (closed) transport for further checks."""
    transport, client = await femtows.ws_connect(RecordingListener, url, **kwargs)
    assert isinstance(client, RecordingListener)
    transport.send(WSMsgType.BINARY, message)
    assert await client.wait_message(0) == (WSMsgType.BINARY, message)
    transport.send_close(femtows.WSCloseCode.OK)
    await transport.wait_disconnected()
    return transport


async def start_echo_server(tls: Any = None, **kwargs: Any) -> tuple[asyncio.Server, str]:
    """An echo server on an ephemeral port; returns (server, url)."""
    server_kwargs = tls.server_kwargs() if tls is not None else {}
    server = await femtows.ws_create_server(
        lambda request: EchoListener(), "127.0.0.1", 0, **server_kwargs, **kwargs
    )
    port = server.sockets[0].getsockname()[1]
    scheme = tls.scheme if tls is not None else "ws"
    return server, f"{scheme}://127.0.0.1:{port}/"


# ------------------------------------------------------------------------------------------------
# Raw wire helpers (test_malformed.py, test_server_handshake.py): frames and handshakes written
# and read byte by byte, without any WebSocket library in between.

RAW_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RAW_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3's example pair
RAW_TIMEOUT = 5.0


def raw_upgrade_request(
    path: str = "/", key: str = RAW_KEY, extra: bytes = b"", host: str = "127.0.0.1"
) -> bytes:
    """A valid client upgrade request (RFC 6455 §4.1); ``extra`` holds more header lines."""
    return (
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        ).encode()
        + extra
        + b"\r\n"
    )


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    length: Optional[bytes] = None,
    key: bytes = b"\x37\xfa\x21\x3d",
) -> bytes:
    """One frame as bytes. ``rsv`` is OR-ed into the first byte (0x40/0x20/0x10); ``length``
    overrides the length field (the 7-bit byte and any extended bytes, without the mask bit)."""
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask else 0
    if length is None:
        n = len(payload)
        if n < 126:
            length = bytes([n])
        elif n <= 0xFFFF:
            length = bytes([126]) + n.to_bytes(2, "big")
        else:
            length = bytes([127]) + n.to_bytes(8, "big")
    head = bytes([first, length[0] | mask_bit]) + length[1:]
    if not mask:
        return head + payload
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


class RawFrame:
    """A frame read off the wire by :func:`read_frame` (payload already unmasked)."""

    def __init__(self, fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes) -> None:
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.payload = payload

    @property
    def close_code(self) -> Optional[int]:
        assert self.opcode == 0x8, f"not a CLOSE frame: opcode {self.opcode:#x}"
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    def __repr__(self) -> str:
        return (
            f"RawFrame(fin={self.fin}, rsv={self.rsv:#x}, opcode={self.opcode:#x}, "
            f"masked={self.masked}, payload={self.payload[:40]!r})"
        )


async def read_frame(reader: asyncio.StreamReader, timeout: float = RAW_TIMEOUT) -> RawFrame:
    """Read one frame; raises asyncio.IncompleteReadError on EOF, TimeoutError on silence."""

    async def read() -> RawFrame:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await reader.readexactly(8), "big")
        key = await reader.readexactly(4) if b1 & 0x80 else b""
        payload = await reader.readexactly(n)
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return RawFrame(bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, bool(b1 & 0x80), payload)

    return await asyncio.wait_for(read(), timeout)


async def read_until_eof(reader: asyncio.StreamReader, timeout: float = RAW_TIMEOUT) -> bytes:
    """Everything the peer sends until it closes; fails (TimeoutError) if it does not."""

    async def read() -> bytes:
        chunks = []
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    return await asyncio.wait_for(read(), timeout)


def parse_http_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """Split an HTTP response head into its status line and (name, value) header pairs."""
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
    return lines[0], headers


def accept_for(request_head: bytes) -> str:
    """Sec-WebSocket-Accept for the key in a raw request head, computed by hand (RFC 6455)."""
    import base64
    import hashlib
    import re

    match = re.search(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", request_head)
    assert match is not None, f"no Sec-WebSocket-Key in {request_head!r}"
    digest = hashlib.sha1(match.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return base64.b64encode(digest).decode()


async def pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
) -> None:
    """Join the client's stream to 127.0.0.1:port both ways until either side closes."""
    target_reader, target_writer = await asyncio.open_connection("127.0.0.1", port)

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()

    await asyncio.gather(
        copy(reader, target_writer), copy(target_reader, writer), return_exceptions=True
    )
