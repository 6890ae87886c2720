"""Slow and hostile peers against a femtows server, on raw sockets: a peer that never reads
(backpressure, and what femtows itself may queue: docs/internals.md "Memory bounds"), a PING
flood from a peer that never reads, slowloris upgrade requests cut at the handshake timeout, a
frame trickled one byte at a time, and 64-bit lengths of 2^63-1 and beyond."""

from __future__ import annotations

import asyncio
import resource
import socket
from typing import Any, Optional

import pytest

import femtows
from femtows import WSFrame, WSListener, WSMsgType, WSTransport
from femtows._core.core import _buffer_sizes
from tests.load.hostile import FakeTransport, Sink, feed, new_protocol
from tests.utils import (
    RAW_ACCEPT,
    EchoListener,
    echo_round_trip,
    encode_frame,
    raw_upgrade_request,
    read_frame,
    read_until_eof,
)

INIT_READ_BUFFER = 16 * 1024 + 64  # read_buffer_init_size's default + the slack
HEADER_WRITE_BUFFER = 14 + 256  # a server's write buffer over TCP: headers only


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class Recorder(WSListener):
    """Keeps the server-side transport and counts backpressure callbacks and frames."""

    last: Optional[Recorder] = None

    def __init__(self) -> None:
        self.transport: Optional[WSTransport] = None
        self.paused = 0
        self.resumed = 0
        self.frames: list[tuple[WSMsgType, bytes]] = []
        self.event = asyncio.Event()
        Recorder.last = self

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.event.set()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.frames.append((frame.msg_type, frame.get_payload_as_bytes()))
        self.event.set()

    def pause_writing(self) -> None:
        self.paused += 1
        self.event.set()

    def resume_writing(self) -> None:
        self.resumed += 1
        self.event.set()

    async def wait(self, predicate: Any) -> None:
        while not predicate():
            self.event.clear()
            await self.event.wait()


async def start(listener: Any = Recorder, **kwargs: Any) -> tuple[asyncio.Server, int]:
    server = await femtows.ws_create_server(lambda request: listener(), "127.0.0.1", 0,
                                            **kwargs)
    return server, server.sockets[0].getsockname()[1]


async def raw_client(port: int, rcvbuf: Optional[int] = None
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP client that has completed the upgrade (the 101 head is consumed)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(raw_upgrade_request())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101") and RAW_ACCEPT.encode() in head
    return reader, writer


def small_send_buffer(transport: WSTransport) -> None:
    sock = transport.underlying_transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


async def test_never_reading_peer_gets_backpressure() -> None:
    """The writer sees pause_writing once the transport holds more than its high watermark;
    femtows keeps nothing of its own (read and write buffers stay small); when the peer reads
    again, resume_writing follows."""
    server, port = await start()
    try:
        reader, writer = await raw_client(port, rcvbuf=4096)
        listener = Recorder.last
        assert listener is not None
        await listener.wait(lambda: listener.transport is not None)
        t = listener.transport
        assert t is not None
        small_send_buffer(t)
        chunk = b"x" * 65536
        sent = 0
        while not listener.paused and sent < 4096:  # at most 256 MiB: must pause long before
            t.send(WSMsgType.BINARY, chunk)
            sent += 1
        assert listener.paused == 1, f"no pause_writing after {sent} x 64 KiB"
        low, high = t.underlying_transport.get_write_buffer_limits()
        queued = t.underlying_transport.get_write_buffer_size()
        assert high < queued <= high + len(chunk) + 14
        read_cap, write_cap = _buffer_sizes(t)
        assert read_cap <= INIT_READ_BUFFER and write_cap <= HEADER_WRITE_BUFFER
        # The peer reads everything that was sent: the transport drains, writing resumes.
        expected = sent * (len(chunk) + 10)
        received = 0
        while received < expected:
            data = await asyncio.wait_for(reader.read(1 << 20), 10)
            assert data
            received += len(data)
        await listener.wait(lambda: listener.resumed == 1)
        assert t.underlying_transport.get_write_buffer_size() <= low
        writer.close()
    finally:
        server.close()


async def test_ping_flood_from_a_peer_that_never_reads() -> None:
    """A peer sends PINGs and never reads. While the transport is over its high watermark,
    auto-pong keeps only the latest PING's answer (RFC 6455 §5.5.3) instead of queueing a
    PONG per PING: what femtows queues stays at the watermark however long the flood. When the
    peer reads, the last PONG answers the last PING."""
    server, port = await start()
    try:
        reader, writer = await raw_client(port, rcvbuf=4096)
        listener = Recorder.last
        assert listener is not None
        await listener.wait(lambda: listener.transport is not None)
        t = listener.transport
        assert t is not None
        small_send_buffer(t)
        count = 20_000  # 2.6 MB of PONGs, far over any socket buffer here
        for i in range(0, count, 1000):
            writer.write(b"".join(encode_frame(0x9, (i + j).to_bytes(4, "big") + b"p" * 121)
                                  for j in range(1000)))
            await writer.drain()
        writer.write(encode_frame(0x2, b"end"))
        await listener.wait(lambda: listener.frames == [(WSMsgType.BINARY, b"end")])
        assert listener.paused >= 1
        low, high = t.underlying_transport.get_write_buffer_limits()
        assert t.underlying_transport.get_write_buffer_size() <= high + 127
        # Read it all: PONGs in order, the last one for the last PING.
        last = -1
        while last != count - 1:
            frame = await read_frame(reader)
            assert frame.opcode == 0xA
            number = int.from_bytes(frame.payload[:4], "big")
            assert number > last
            last = number
        await listener.wait(lambda: listener.resumed == listener.paused)
        writer.close()
    finally:
        server.close()


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard < need:
            pytest.fail(f"this test needs {need} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def test_slowloris() -> None:
    """1,000 connections send half an upgrade request and stall. A normal client still
    connects and exchanges a message while they are pending; every one of them is then cut at
    the handshake timeout (the server closes them)."""
    raise_nofile(2 * 1000 + 200)
    n = 1000
    server = await femtows.ws_create_server(lambda request: EchoListener(), "127.0.0.1", 0,
                                            websocket_handshake_timeout=2.0, backlog=n)
    port = server.sockets[0].getsockname()[1]
    url = f"ws://127.0.0.1:{port}/"
    stalled: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        partial = raw_upgrade_request()[:-30]

        async def stall() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(partial)
            stalled.append((reader, writer))

        for _ in range(n // 100):
            await asyncio.gather(*(stall() for _i in range(100)))
        await echo_round_trip(url)
        assert not any(reader.at_eof() for reader, _ in stalled), "cut before the timeout"
        # Each is closed by the server without an answer: EOF (or a reset), no bytes.
        results = await asyncio.gather(*(read_until_eof(reader) for reader, _ in stalled))
        assert results == [b""] * n
    finally:
        for _, writer in stalled:
            writer.close()
        server.close()


async def test_frame_trickled_one_byte_at_a_time() -> None:
    """The upgrade request and then a masked 2 KiB TEXT frame, one byte per write: the
    request is answered and the frame is delivered once, intact."""
    server, port = await start(EchoListener)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        payload = ("trickle é " * 205)[:2048].encode()
        data = raw_upgrade_request() + encode_frame(0x1, payload)
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        frame = await read_frame(reader)
        assert (frame.opcode, frame.fin, frame.payload) == (0x1, True, payload)
        writer.close()
    finally:
        server.close()


async def test_head_and_frame_one_byte_per_read() -> None:
    """Straight into the protocol, one byte per read (no kernel to coalesce them): the upgrade
    request is answered once complete (the CRLFCRLF search resumes across reads, so it is
    found wherever the reads split it) and the frame is delivered once, intact."""
    sink = Sink()
    transport = FakeTransport()
    proto = new_protocol(sink, transport)
    request = raw_upgrade_request(extra=b"X-Filler: " + b"f" * 3000 + b"\r\n")
    for i in range(len(request)):
        assert transport.written == []
        feed(proto, request[i:i + 1])
    assert len(transport.written) == 1 and transport.written[0].startswith(b"HTTP/1.1 101")
    payload = b"0123456789" * 2000
    frame = encode_frame(0x1, payload)
    for i in range(len(frame)):
        assert sink.frames == 0
        feed(proto, frame[i:i + 1])
    assert (sink.frames, sink.payload) == (1, payload)
    proto.connection_lost(None)


@pytest.mark.parametrize(("length", "code"), [(2**63 - 1, 1009), (2**63, 1002),
                                              (2**64 - 1, 1002)])
async def test_huge_64_bit_length(length: int, code: int) -> None:
    """A header announcing 2^63-1 payload bytes is refused with 1009 (over max_frame_size)
    without allocating anything, and the payload that follows is skipped, not buffered;
    lengths with the most significant bit set are a protocol error (RFC 6455 §5.2)."""
    server, port = await start(close_timeout=0.5)
    try:
        reader, writer = await raw_client(port)
        listener = Recorder.last
        assert listener is not None
        await listener.wait(lambda: listener.transport is not None)
        t = listener.transport
        assert t is not None
        before = rss()
        writer.write(encode_frame(0x2, length=bytes([127]) + length.to_bytes(8, "big")))
        frame = await read_frame(reader)
        assert (frame.opcode, frame.close_code) == (0x8, code)
        for _ in range(16):  # 16 MiB of "payload": counted and dropped
            writer.write(b"\0" * (1 << 20))
            await writer.drain()
        assert _buffer_sizes(t)[0] <= INIT_READ_BUFFER
        assert rss() - before < 8 << 20
        assert listener.frames == []
        assert await read_until_eof(reader) == b""  # the close timeout ends it
    finally:
        server.close()


async def test_sends_to_a_reset_connection_are_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A peer that resets the connection: sends made after the transport noticed (and before
    connection_lost reaches femtows) are dropped without a warning per send from the
    transport ("writelines() called after connection lost", "socket.send() raised")."""
    Recorder.last = None
    server = await femtows.ws_create_server(lambda r: Recorder(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(raw_upgrade_request())
        listener = Recorder.last
        while listener is None or listener.transport is None:
            await asyncio.sleep(0)  # a loop turn, not a timer: the server handles the upgrade
            listener = Recorder.last
        transport = listener.transport
        # RST instead of FIN: the server's next write fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        caplog.set_level("WARNING")
        for _ in range(10_000):  # until the transport has seen the reset (bounded)
            for _ in range(20):
                transport.send(WSMsgType.BINARY, b"x" * 1000)
            if transport.underlying_transport.is_closing() or transport.is_disconnected:
                break
            await asyncio.sleep(0)
        assert transport.underlying_transport.is_closing() or transport.is_disconnected
        for _ in range(20):
            transport.send(WSMsgType.BINARY, b"after the reset")
        await asyncio.wait_for(transport.wait_disconnected(), 5)
    noisy = [r for r in caplog.records if "connection lost" in r.getMessage()
             or "raised exception" in r.getMessage()]
    assert noisy == []
