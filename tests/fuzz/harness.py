"""Driving femtows's real protocol objects without a network, and a reference frame parser.

Used by the fuzz targets (tests/fuzz/targets.py) and the property tests
(tests/test_properties.py):

- :class:`FakeLoop` stands in for the event loop (timers are recorded, never run on their own)
  and is installed as *the running loop* for the duration of a ``with running(loop):`` block,
  so ``WSProtocol.__init__`` and ``_ConnectTunnel`` (which call ``asyncio.get_running_loop()``)
  can be built from plain synchronous code.
- :class:`FakeTransport` records what the protocol writes and whether it closed or aborted.
- :func:`feed` delivers bytes through ``get_buffer``/``buffer_updated`` exactly as asyncio's
  ``BufferedProtocol`` path does, in the chunks given, and checks the buffer it is handed.
- :func:`reference` is an independent, deliberately simple model of what femtows must do with a
  byte stream (RFC 6455 plus docs/strictness.md): which frames reach the listener, what femtows
  writes back (auto-PONGs, the CLOSE and its code). Fuzz targets and property tests compare the
  real protocol against it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

from femtows import WSFrame, WSListener, WSTransport, handshake
from femtows._core.core import WSProtocol
from femtows.url import parse_url

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example key and its accept value
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
UPGRADE_REQUEST = (
    "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()
UPGRADE_RESPONSE = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
).encode()

CLOSE_CODES_SENT_ON_FAILURE = frozenset({1002, 1007, 1009, 1011})

# A logger that never formats anything: the fuzz loop runs millions of connections.
QUIET = logging.getLogger("femtows.fuzz.quiet")
QUIET.disabled = True
QUIET.propagate = False


class InvariantError(AssertionError):
    """An invariant of femtows's behaviour does not hold (a bug, or a wrong model)."""


def check(cond: bool, message: str, *args: Any) -> None:
    if not cond:
        raise InvariantError(message % args if args else message)


# ---------------------------------------------------------------------------------------------
# Event loop and transport stand-ins


class FakeHandle:
    def __init__(self, delay: float, callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self.delay = delay
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeFuture:
    """The part of asyncio.Future that femtows's protocol objects use."""

    _UNSET: Any = object()

    def __init__(self) -> None:
        self._result: Any = self._UNSET
        self._exception: Optional[BaseException] = None

    def done(self) -> bool:
        return self._result is not self._UNSET or self._exception is not None

    def set_result(self, result: Any) -> None:
        check(not self.done(), "future resolved twice")
        self._result = result

    def set_exception(self, exc: BaseException) -> None:
        check(not self.done(), "future resolved twice")
        self._exception = exc

    def exception(self) -> Optional[BaseException]:
        return self._exception

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        check(self.done(), "result() of a pending future")
        return self._result

    def add_done_callback(self, cb: Callable[..., Any]) -> None:  # pragma: no cover - unused
        pass


class FakeLoop:
    """Records timers; ``fire_timers`` runs the live ones (as if their time had come)."""

    def __init__(self) -> None:
        self.timers: List[FakeHandle] = []

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> FakeHandle:
        handle = FakeHandle(delay, callback, args)
        self.timers.append(handle)
        return handle

    def create_future(self) -> FakeFuture:
        return FakeFuture()

    def time(self) -> float:
        return 0.0

    def fire_timers(self, rounds: int = 8) -> None:
        # Bounded: a periodic timer (a callback that arms the next one, like the read-buffer
        # shrink timer while a connection is open) would otherwise fire forever in a loop
        # whose clock never moves.
        for _ in range(rounds):
            live = [h for h in self.timers if not h.cancelled]
            if not live:
                return
            self.timers = []
            for h in live:
                if not h.cancelled:
                    h.cancelled = True
                    h.callback(*h.args)


class running:
    """``with running(loop):`` makes ``asyncio.get_running_loop()`` return ``loop``."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def __enter__(self) -> Any:
        self.previous = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        return self.loop

    def __exit__(self, *exc: Any) -> None:
        asyncio.events._set_running_loop(self.previous)


class FakeTransport:
    """An asyncio transport that records writes, close() and abort()."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.aborted = False
        self.paused = False
        self.protocol: Any = None
        self.writes_after_close = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: Any) -> None:
        if self.closing:
            self.writes_after_close += 1
        self.out += data

    def writelines(self, data: Iterable[Any]) -> None:  # pragma: no cover - unused by femtows
        for d in data:
            self.write(d)

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_protocol(self) -> Any:
        return self.protocol

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


def chunked(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    """``data`` cut into pieces of the given sizes (the last piece takes the rest)."""
    pos = 0
    for size in sizes:
        if pos >= len(data):
            return
        yield data[pos : pos + size]
        pos += size
    if pos < len(data):
        yield data[pos:]


def feed(protocol: Any, transport: FakeTransport, chunks: Iterable[bytes],
         max_free: Optional[int] = None) -> None:
    """Deliver ``chunks`` as socket reads until the transport is closed (a closed transport
    reads no more). ``max_free`` bounds the free space get_buffer may offer (buffer limit)."""
    for chunk in chunks:
        while chunk:
            if transport.closing:
                return
            view = memoryview(protocol.get_buffer(-1))
            free = view.nbytes
            check(free > 0, "get_buffer() returned an empty buffer")
            if max_free is not None:
                check(free <= max_free, "read buffer grew to %d free bytes (limit %d)",
                      free, max_free)
            n = min(free, len(chunk))
            view[:n] = chunk[:n]
            view.release()
            protocol.buffer_updated(n)
            chunk = chunk[n:]


def feed_mixed(protocol: Any, transport: FakeTransport, listener: Recorder,
               chunks: Iterable[bytes], ext: Sequence[bool],
               max_free: Optional[int] = None) -> None:
    """As ``feed``, but the reads flagged in ``ext`` go through the path of
    femtows.websockets.sync's thread in recv (``WSTransport._ext_feed_for_tests`` while
    ``_ext_reading``): consecutive flagged reads stay on it; it ends, as the loop takes the
    socket back, when it stops at a frame it leaves for the loop or before an unflagged read
    (``_ext_resume`` parses what it left), and the rest of the read goes the loop's way."""
    flags = list(ext)
    ext_on = False

    def take_back() -> None:
        wst = listener.wst
        assert wst is not None
        wst._ext_reading = False
        wst._ext_resume()

    for index, chunk in enumerate(chunks):
        use_ext = flags[index % len(flags)] if flags else False
        if ext_on and not use_ext:
            take_back()
            ext_on = False
        wst = listener.wst
        if (use_ext and not ext_on and wst is not None and not transport.closing
                and not wst.is_close_frame_sent):
            wst._ext_reading = True
            ext_on = True
        if ext_on:
            assert wst is not None
            # The thread in recv may only append whole data frames to the listener: it never
            # writes (no PONG, no CLOSE), never closes or pauses the transport, never fails.
            out, paused, frames = len(transport.out), transport.paused, len(listener.frames)
            taken, stop = wst._ext_feed_for_tests(chunk)
            check(0 <= taken <= len(chunk), "_ext_feed_for_tests took %d of %d bytes", taken,
                  len(chunk))
            check(len(transport.out) == out and not wst.is_close_frame_sent,
                  "the reading thread wrote to the socket")
            check(not transport.closing and transport.paused == paused,
                  "the reading thread closed or paused the transport")
            for op, _, fin, rsv in listener.frames[frames:]:
                check(op in (1, 2) and fin and rsv == 0,
                      "the reading thread delivered a frame (%d, fin=%s) that is the loop's",
                      op, fin)
            chunk = chunk[taken:]
            if stop:
                take_back()
                ext_on = False
        if chunk:
            feed(protocol, transport, [chunk], max_free=max_free)
    if ext_on:
        take_back()


# ---------------------------------------------------------------------------------------------
# A listener that records everything


class Recorder(WSListener):
    """Records each delivered frame as (opcode, payload, fin, rsv bits) and checks that none
    arrives after a CLOSE was delivered or after femtows sent a CLOSE of its own."""

    def __init__(self, raise_at: int = -1) -> None:
        self.frames: List[Tuple[int, bytes, bool, int]] = []
        self.connected = 0
        self.disconnected = 0
        self.raise_at = raise_at
        self.wst: Optional[WSTransport] = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.connected += 1
        self.wst = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        check(self.connected == 1 and self.disconnected == 0,
              "frame delivered outside the connection")
        check(not transport.is_close_frame_sent,
              "frame delivered after femtows sent CLOSE (the listener never sends one)")
        check(not self.frames or self.frames[-1][0] != 8, "frame delivered after a CLOSE")
        rsv = (frame.rsv1 << 2) | (frame.rsv2 << 1) | frame.rsv3
        self.frames.append((int(frame.msg_type), frame.get_payload_as_bytes(), bool(frame.fin),
                            rsv))
        check(frame.tail_size >= 0, "negative tail_size")
        if len(self.frames) - 1 == self.raise_at:
            raise ValueError("listener failure requested by the fuzz input")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected += 1


# ---------------------------------------------------------------------------------------------
# Wire format helpers


def mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    k = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(
        len(payload), "big")


def encode_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, masked: bool = True,
                 rsv: int = 0, key: bytes = b"\x37\xfa\x21\x3d", length_bytes: int = 0) -> bytes:
    """One frame. ``rsv`` is the 3 RSV bits (0-7); ``length_bytes`` forces a 2- or 8-byte
    extended length (non-minimal when the payload is short)."""
    n = len(payload)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if masked else 0
    if length_bytes == 8 or (not length_bytes and n > 0xFFFF):
        head = bytes([first, mbit | 127]) + n.to_bytes(8, "big")
    elif length_bytes == 2 or (not length_bytes and n > 125):
        head = bytes([first, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, mbit | n])
    if masked:
        return head + key + mask(payload, key)
    return head + payload


@dataclass
class WireFrame:
    opcode: int
    payload: bytes
    fin: bool
    rsv: int
    masked: bool


def parse_wire(data: bytes) -> Tuple[List[WireFrame], bytes]:
    """Frames femtows wrote (well formed by construction) and any incomplete rest."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        n = b1 & 0x7F
        hlen = 2
        if n == 126:
            n = int.from_bytes(data[pos + 2 : pos + 4], "big")
            hlen = 4
        elif n == 127:
            n = int.from_bytes(data[pos + 2 : pos + 10], "big")
            hlen = 10
        masked = bool(b1 & 0x80)
        if masked:
            hlen += 4
        if len(data) - pos < hlen + n:
            break
        payload = data[pos + hlen : pos + hlen + n]
        if masked:
            payload = mask(payload, data[pos + hlen - 4 : pos + hlen])
        frames.append(WireFrame(b0 & 0x0F, payload, bool(b0 & 0x80), (b0 >> 4) & 7, masked))
        pos += hlen + n
    return frames, data[pos:]


# ---------------------------------------------------------------------------------------------
# Reference model

# UTF-8 (RFC 3629) as (continuation bytes still needed, allowed range of the next byte).
UTF8_ACCEPT = (0, 0x80, 0xBF)
UTF8_REJECT = (-1, 0, 0)


def utf8_step(state: Tuple[int, int, int], data: bytes) -> Tuple[int, int, int]:
    """Advance the reference UTF-8 automaton over ``data``; rejects on the first byte that no
    valid continuation can follow (as femtows's validator does)."""
    need, lo, hi = state
    if need < 0:
        return UTF8_REJECT
    if need == 0 and data.isascii():
        return UTF8_ACCEPT
    for b in data:
        if need:
            if not lo <= b <= hi:
                return UTF8_REJECT
            need, lo, hi = need - 1, 0x80, 0xBF
        elif b < 0x80:
            continue
        elif 0xC2 <= b <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif b == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif b == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif 0xE1 <= b <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif b == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= b <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif b == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            return UTF8_REJECT
    return (need, lo, hi)


def is_sendable_close_code(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclass
class Config:
    is_client: bool = False
    max_frame_size: int = 1 << 20
    validate_utf8: bool = True
    allow_rsv: bool = False
    auto_pong: bool = True
    raise_at: int = -1  # the listener raises on this delivered frame (-1: never)
    disconnect_on_exception: bool = True


@dataclass
class Expected:
    frames: List[Tuple[int, bytes, bool, int]] = field(default_factory=list)
    pongs: List[bytes] = field(default_factory=list)
    close_code: Optional[int] = None  # the code of the CLOSE femtows sends, None if none
    close_payload: Optional[bytes] = None  # the exact CLOSE payload when it is an echo
    failed: bool = False  # True when femtows failed the connection (a protocol violation)


def reference(stream: bytes, cfg: Config) -> Expected:
    """What femtows must deliver and send for ``stream`` (bytes after the handshake).

    Rules (RFC 6455 and docs/strictness.md), in femtows's order of checks: a non-minimal
    length, RSV bits, wrong masking direction, bad control frames, CONTINUATION/new-message
    sequencing and reserved opcodes are 1002; a data frame over max_frame_size is 1009 (from
    its header alone); invalid UTF-8 in TEXT is 1007 as soon as the received bytes cannot be
    completed to valid UTF-8 (so also inside an incomplete last frame); a bad CLOSE payload is
    1002 (length 1, code not allowed on the wire) or 1007 (reason not UTF-8). A valid CLOSE is
    delivered and echoed (with the peer's code, 1000 if none); nothing is delivered after it.
    """
    exp = Expected()
    pos = 0
    msg_open = False
    msg_text = False
    utf8 = UTF8_ACCEPT

    def fail(code: int) -> Expected:
        exp.close_code = code
        exp.failed = True
        return exp

    def delivered() -> Optional[Expected]:
        # The listener raises on this frame: 1011 and the end, if that disconnects.
        if len(exp.frames) - 1 == cfg.raise_at and cfg.disconnect_on_exception:
            exp.close_code = 1011
            exp.failed = True
            return exp
        return None

    n_data = len(stream)
    while True:
        avail = n_data - pos
        if avail < 2:
            return exp
        b0, b1 = stream[pos], stream[pos + 1]
        op = b0 & 0x0F
        fin = bool(b0 & 0x80)
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        hlen = 2
        if n == 126:
            if avail < 4:
                return exp
            n = int.from_bytes(stream[pos + 2 : pos + 4], "big")
            hlen = 4
            if n < 126:
                return fail(1002)
        elif n == 127:
            if avail < 10:
                return exp
            n = int.from_bytes(stream[pos + 2 : pos + 10], "big")
            hlen = 10
            if n < 0x10000 or n >> 63:
                return fail(1002)
        if masked:
            hlen += 4
        if avail < hlen:
            return exp
        if (b0 & 0x70) and not cfg.allow_rsv:
            return fail(1002)
        if masked == cfg.is_client:
            return fail(1002)
        if op >= 8:
            if op > 10 or not fin or n > 125:
                return fail(1002)
        elif op == 0:
            if not msg_open:
                return fail(1002)
        elif op <= 2:
            if msg_open:
                return fail(1002)
        else:
            return fail(1002)
        if op < 8 and n > cfg.max_frame_size:
            return fail(1009)
        is_text = cfg.validate_utf8 and (op == 1 or (op == 0 and msg_text))
        payload = stream[pos + hlen : pos + hlen + n]
        if masked:
            payload = mask(payload, stream[pos + hlen - 4 : pos + hlen])
        if len(payload) < n:
            # Incomplete last frame: only its UTF-8 can already be known to be bad.
            if is_text and utf8_step(utf8 if op == 0 else UTF8_ACCEPT, payload) == UTF8_REJECT:
                return fail(1007)
            return exp
        pos += hlen + n
        rsv = (b0 >> 4) & 7
        if op <= 2:
            if op != 0:
                msg_text = op == 1
                utf8 = UTF8_ACCEPT
            if is_text:
                utf8 = utf8_step(utf8, payload)
                if utf8 == UTF8_REJECT or (fin and utf8 != UTF8_ACCEPT):
                    return fail(1007)
            msg_open = not fin
        elif op == 8:
            if len(payload) == 1:
                return fail(1002)
            code = 0
            if len(payload) >= 2:
                code = int.from_bytes(payload[:2], "big")
                if not is_sendable_close_code(code):
                    return fail(1002)
                if utf8_step(UTF8_ACCEPT, payload[2:]) != UTF8_ACCEPT:
                    return fail(1007)
            exp.frames.append((op, payload, fin, rsv))
            if delivered() is not None:
                return exp
            exp.close_code = code or 1000
            exp.close_payload = (code or 1000).to_bytes(2, "big")
            return exp
        elif op == 9 and cfg.auto_pong:
            exp.pongs.append(payload)
            continue
        exp.frames.append((op, payload, fin, rsv))
        if delivered() is not None:
            return exp


# ---------------------------------------------------------------------------------------------
# Running a connection


@dataclass
class Outcome:
    """What the real protocol did with a stream."""

    listener: Recorder
    transport: FakeTransport
    protocol: Any
    sent: List[WireFrame]
    handshake_future: Optional[FakeFuture]


_CLIENT_REQUEST: List[Tuple[handshake.WSUpgradeRequest, bytes]] = []


def _client_request() -> Tuple[handshake.WSUpgradeRequest, bytes]:
    if not _CLIENT_REQUEST:
        _CLIENT_REQUEST.append(
            handshake.build_request(parse_url("ws://example.com/chat"), KEY, None))
    return _CLIENT_REQUEST[0]


def make_protocol(cfg: Config, listener: Recorder, *, read_buffer_init_size: int = 2048,
                  max_head_size: int = handshake.MAX_HEAD_SIZE) -> Tuple[Any, Optional[FakeFuture]]:
    """A real WSProtocol for ``cfg`` (call inside ``running(loop)``)."""
    common = dict(
        logger=QUIET,
        read_buffer_init_size=read_buffer_init_size,
        max_frame_size=cfg.max_frame_size,
        validate_utf8=cfg.validate_utf8,
        allow_rsv_bits=cfg.allow_rsv,
        enable_auto_pong=cfg.auto_pong,
        disconnect_on_exception=cfg.disconnect_on_exception,
        close_timeout=5.0,
        websocket_handshake_timeout=5.0,
        max_head_size=max_head_size,
    )
    if not cfg.is_client:
        return WSProtocol(is_client=False, listener_factory=lambda request: listener,
                          **common), None
    request, wire = _client_request()
    future = FakeFuture()
    common["websocket_handshake_timeout"] = None  # as ws_connect: it bounds the whole connect
    proto = WSProtocol(is_client=True, listener_factory=lambda request, response: listener,
                       request=request, request_bytes=wire, key=KEY,
                       handshake_future=future, **common)
    return proto, future


def run_connection(cfg: Config, stream: bytes, sizes: Iterable[int], *,
                   read_buffer_init_size: int = 2048,
                   ext: Optional[Sequence[bool]] = None) -> Outcome:
    """Upgrade a real protocol (server or client side), feed it ``stream`` cut into ``sizes``
    (the handshake bytes included in the first pieces), fire its timers, lose the connection."""
    loop = FakeLoop()
    listener = Recorder(cfg.raise_at)
    transport = FakeTransport()
    with running(loop):
        proto, future = make_protocol(cfg, listener, read_buffer_init_size=read_buffer_init_size)
        transport.protocol = proto
        proto.connection_made(transport)
        head = UPGRADE_RESPONSE if cfg.is_client else UPGRADE_REQUEST
        if cfg.is_client:
            check(bytes(transport.out).endswith(b"\r\n\r\n"), "no upgrade request written")
            del transport.out[:]
        # Bound on the read buffer: twice the largest frame femtows may have to hold plus
        # slack (its growth policy), or the initial size.
        # The per-thread shared read buffer (16 KiB, handed out while nothing is pending) is
        # not the connection's own memory: it sets the floor.
        limit = max(read_buffer_init_size, 2048, 16384) + 2 * (min(cfg.max_frame_size, 1 << 30) + 14
                                                        + 4096)
        if ext:
            # The handshake first, the loop's way (the sync layer hands the socket over only
            # once the connection is open).
            feed(proto, transport, [head], max_free=limit)
            feed_mixed(proto, transport, listener, chunked(stream, sizes), ext, max_free=limit)
        else:
            feed(proto, transport, chunked(head + stream, sizes), max_free=limit)
        check(listener.connected == 1, "the upgrade did not complete")
        loop.fire_timers()
        proto.connection_lost(None)
        loop.fire_timers()
    check(listener.disconnected == 1, "on_ws_disconnected called %d times", listener.disconnected)
    check(transport.writes_after_close == 0, "write after close()/abort()")
    out = bytes(transport.out)
    if not cfg.is_client:
        check(out.startswith(b"HTTP/1.1 101 "), "no 101 response")
        out = out[out.index(b"\r\n\r\n") + 4 :]
    sent, rest = parse_wire(out)
    check(rest == b"", "incomplete frame written")
    for f in sent:
        check(f.masked == cfg.is_client, "frame written with the wrong masking")
    return Outcome(listener, transport, proto, sent, future)


def compare(outcome: Outcome, exp: Expected, cfg: Config) -> None:
    """The real protocol's behaviour matches the reference model."""
    got = outcome.listener.frames
    check(got == exp.frames, "delivered frames differ from the model:\n got %r\nwant %r",
          [(f[0], f[1][:20], f[2], f[3], len(f[1])) for f in got],
          [(f[0], f[1][:20], f[2], f[3], len(f[1])) for f in exp.frames])
    sent = outcome.sent
    pongs = [f.payload for f in sent if f.opcode == 0xA]
    check(pongs == exp.pongs, "auto-PONGs differ from the model: %r != %r", pongs, exp.pongs)
    closes = [f for f in sent if f.opcode == 8]
    check(len(closes) <= 1, "more than one CLOSE sent")
    check(all(f.opcode in (8, 0xA) for f in sent), "unexpected frame sent: %r", sent)
    if sent:
        check(sent[-1].opcode == 8 or not closes, "something was sent after the CLOSE")
    if exp.close_code is None:
        check(not closes, "CLOSE %r sent, the model expects none", closes)
        return
    check(bool(closes), "no CLOSE sent, the model expects %d", exp.close_code)
    payload = closes[0].payload
    code = int.from_bytes(payload[:2], "big")
    check(code == exp.close_code, "CLOSE code %d, the model expects %d", code, exp.close_code)
    check(is_sendable_close_code(code), "CLOSE code %d may not be sent", code)
    check(len(payload) <= 125, "CLOSE payload too long")
    check(utf8_step(UTF8_ACCEPT, payload[2:]) == UTF8_ACCEPT, "CLOSE reason is not UTF-8")
    if exp.failed:
        check(code in CLOSE_CODES_SENT_ON_FAILURE, "failure code %d not allowed", code)
    if exp.close_payload is not None:
        check(payload == exp.close_payload, "CLOSE echo %r, want %r", payload, exp.close_payload)
    if not cfg.is_client and not exp.failed:
        # A server closes TCP after the closing handshake (the peer's CLOSE, then its echo).
        check(outcome.transport.closing, "server did not close TCP after the CLOSE echo")
