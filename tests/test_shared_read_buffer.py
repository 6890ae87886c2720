"""The shared read buffer: connections with nothing buffered read into one buffer per thread;
only the incomplete rest of a read is copied into a private buffer, freed once it is empty
again (by the 1 s timer, called directly here).

The protocol objects are driven the way an event loop drives them (get_buffer, write into the
returned buffer, buffer_updated) with a fake transport, so that reads of two connections can be
interleaved at chosen points.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

import pytest

from femtows import WSFrame, WSListener, WSMsgType, WSTransport
from femtows._core.core import WSProtocol, _buffer_sizes
from femtows.handshake import MAX_HEAD_SIZE
from tests.utils import encode_frame, raw_upgrade_request

INIT = 2048 + 64  # read_buffer_init_size below + the slack


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Recorder(WSListener):
    def __init__(self, on_frame: Optional[Callable[[], None]] = None) -> None:
        self.frames: list[tuple[WSMsgType, bytes, bool]] = []
        self.transport: Optional[WSTransport] = None
        self.on_frame = on_frame

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.frames.append((frame.msg_type, frame.get_payload_as_bytes(), frame.fin))
        if self.on_frame is not None:
            self.on_frame()


class Conn:
    """One server-side protocol object with a fake transport, upgraded."""

    def __init__(self, listener: Recorder, init: int = 2048) -> None:
        self.listener = listener
        self.proto = WSProtocol(
            is_client=False, listener_factory=lambda request: listener,
            logger=logging.getLogger("femtows.test"), read_buffer_init_size=init,
            max_frame_size=1 << 20, validate_utf8=True, allow_rsv_bits=False,
            enable_auto_pong=True, disconnect_on_exception=True, close_timeout=None,
            websocket_handshake_timeout=None, max_head_size=MAX_HEAD_SIZE)
        self.fake = FakeTransport()
        self.proto.connection_made(self.fake)

    def feed(self, data: bytes) -> None:
        """Reads of ``data``: one if it fits in the buffer handed out."""
        while True:
            buf = memoryview(self.proto.get_buffer(-1))
            n = min(len(buf), len(data))
            buf[:n] = data[:n]
            self.proto.buffer_updated(n)
            data = data[n:]
            if not data:
                return

    def upgrade(self) -> WSTransport:
        self.feed(raw_upgrade_request())
        assert self.fake.written and self.fake.written[0].startswith(b"HTTP/1.1 101 ")
        assert self.listener.transport is not None
        return self.listener.transport

    def read_cap(self) -> int:
        assert self.listener.transport is not None
        return _buffer_sizes(self.listener.transport)[0]


def stream() -> tuple[bytes, list[tuple[WSMsgType, bytes, bool]]]:
    """Frames of sizes around the header-length boundaries, as one byte stream."""
    frames: list[tuple[WSMsgType, bytes, bool]] = []
    data = b""
    for i, size in enumerate([0, 1, 125, 126, 300, 1900, 5]):
        payload = bytes((i * 7 + k) % 251 for k in range(size))
        msg_type = WSMsgType.TEXT if i == 4 else WSMsgType.BINARY
        payload = b"t" * size if msg_type == WSMsgType.TEXT else payload
        frames.append((msg_type, payload, True))
        data += encode_frame(int(msg_type), payload)
    return data, frames


async def test_whole_frames_leave_no_private_buffer() -> None:
    """Frames that arrive whole are parsed in the shared buffer: the connection holds no read
    buffer of its own before, between or after them."""
    conn = Conn(Recorder())
    conn.upgrade()
    assert conn.read_cap() == 0
    _, expected = stream()
    for msg_type, payload, _fin in expected:
        conn.feed(encode_frame(int(msg_type), payload))
        assert conn.read_cap() == 0
    assert conn.listener.frames == expected


async def test_split_at_every_offset_interleaved() -> None:
    """A stream cut in two at every offset, on two connections whose reads alternate (each read
    lands in the shared buffer the other one used just before): every frame arrives intact,
    and a private buffer exists exactly while a frame is incomplete, until the timer frees it."""
    data, expected = stream()
    a, b = Conn(Recorder()), Conn(Recorder())
    a.upgrade()
    b.upgrade()
    # b's stream differs from a's: the same frames reversed, payloads reversed.
    b_expected = [(t, p[::-1], f) for t, p, f in reversed(expected)]
    other = b"".join(encode_frame(int(t), p) for t, p, _f in b_expected)
    rounds = 0
    for cut in range(len(data) + 1):
        cut_b = (len(data) - cut) % (len(other) + 1)
        a.feed(data[:cut])
        b.feed(other[:cut_b])
        a.feed(data[cut:])
        b.feed(other[cut_b:])
        rounds += 1
        for conn in (a, b):
            # Everything was consumed: at most an empty private buffer, which the timer frees.
            conn.proto._on_shrink_timer()
            assert conn.read_cap() == 0
    assert a.listener.frames == expected * rounds
    assert b.listener.frames == b_expected * rounds


async def test_partial_frame_gets_private_buffer_sized_for_it() -> None:
    """The start of a frame larger than the initial size is copied into a private buffer that
    holds the whole frame (so the rest is read in place); freed when empty, not before."""
    conn = Conn(Recorder())
    conn.upgrade()
    payload = bytes(range(256)) * 40  # 10 KiB > 2 KiB initial size
    frame = encode_frame(int(WSMsgType.BINARY), payload)
    conn.feed(frame[:1000])
    cap = conn.read_cap()
    assert cap >= len(frame)
    conn.proto._on_shrink_timer()  # data is waiting: kept
    assert conn.read_cap() == cap
    rest = frame[1000:]
    while rest:
        n = min(len(rest), 1500)
        conn.feed(rest[:n])
        rest = rest[n:]
    assert conn.listener.frames == [(WSMsgType.BINARY, payload, True)]
    assert conn.read_cap() == cap  # kept while large frames may keep coming ...
    conn.proto._on_shrink_timer()
    assert conn.read_cap() == 0  # ... and freed by the timer once empty


async def test_small_partial_frame_gets_initial_size() -> None:
    conn = Conn(Recorder())
    conn.upgrade()
    frame = encode_frame(int(WSMsgType.TEXT), b"hello")
    conn.feed(frame[:3])
    assert conn.read_cap() == INIT
    conn.feed(frame[3:])
    assert conn.listener.frames == [(WSMsgType.TEXT, b"hello", True)]


async def test_reentrant_read_gets_private_buffer() -> None:
    """A listener callback that makes another connection read while frames are parsed in the
    shared buffer: that read goes to a private buffer; both streams arrive intact."""
    b = Conn(Recorder())
    b.upgrade()
    b_frame = encode_frame(int(WSMsgType.BINARY), b"from b")
    caps: list[int] = []

    def feed_b() -> None:
        b.feed(b_frame)
        caps.append(b.read_cap())

    a = Conn(Recorder(on_frame=feed_b))
    a.upgrade()
    a.feed(encode_frame(int(WSMsgType.BINARY), b"one") + encode_frame(int(WSMsgType.BINARY),
                                                                       b"two"))
    assert a.listener.frames == [(WSMsgType.BINARY, b"one", True),
                                 (WSMsgType.BINARY, b"two", True)]
    assert b.listener.frames == [(WSMsgType.BINARY, b"from b", True)] * 2
    assert caps == [INIT, INIT]


async def test_broken_read_sequence_is_an_error() -> None:
    """A transport that lets another connection read between one connection's get_buffer and
    buffer_updated would hand it someone else's bytes: that is refused loudly."""
    a, b = Conn(Recorder()), Conn(Recorder())
    a.upgrade()
    b.upgrade()
    a.proto.get_buffer(-1)
    b.feed(encode_frame(int(WSMsgType.BINARY), b"b"))
    with pytest.raises(RuntimeError, match="shared read buffer"):
        a.proto.buffer_updated(3)
    assert a.listener.frames == []


async def test_handshake_head_split_across_reads() -> None:
    """An upgrade request trickled in: its start waits in a private buffer."""
    conn = Conn(Recorder())
    head = raw_upgrade_request()
    for i in range(len(head) - 1):
        conn.feed(head[i:i + 1])
        assert not conn.fake.written
    conn.feed(head[-1:])
    assert conn.fake.written[0].startswith(b"HTTP/1.1 101 ")
    conn.proto._on_shrink_timer()
    assert conn.read_cap() == 0


async def test_async_factory_with_pipelined_frame() -> None:
    """A frame sent right behind the upgrade request waits (in a private buffer) while an async
    listener factory decides; it is delivered after the 101, and the buffer freed later."""
    listener = Recorder()
    decide = asyncio.Event()
    delivered = asyncio.Event()
    listener.on_frame = delivered.set

    async def factory(request: Any) -> Recorder:
        await decide.wait()
        return listener

    conn = Conn(listener)  # (its own protocol object is replaced below)
    conn.proto = WSProtocol(
        is_client=False, listener_factory=factory, logger=logging.getLogger("femtows.test"),
        read_buffer_init_size=2048, max_frame_size=1 << 20, validate_utf8=True,
        allow_rsv_bits=False, enable_auto_pong=True, disconnect_on_exception=True,
        close_timeout=None, websocket_handshake_timeout=None, max_head_size=MAX_HEAD_SIZE)
    conn.proto.connection_made(conn.fake)
    conn.feed(raw_upgrade_request() + encode_frame(int(WSMsgType.TEXT), b"early"))
    assert not conn.fake.written
    decide.set()
    await delivered.wait()
    assert conn.fake.written[0].startswith(b"HTTP/1.1 101 ")
    assert listener.frames == [(WSMsgType.TEXT, b"early", True)]
    assert conn.read_cap() == INIT
    conn.proto._on_shrink_timer()
    assert conn.read_cap() == 0
