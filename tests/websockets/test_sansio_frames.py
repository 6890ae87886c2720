"""Sans-I/O frames: femtows.websockets.protocol.Protocol against websockets 17.4's own Protocol.

Both are fed the same byte streams, split at every offset (short streams) or at offsets chosen
by hypothesis (long ones), and must produce the same events (opcode, data, fin, rsv bits), the
same bytes to send (server side; client side with the masking key made the same on both), the
same state changes, close codes/reasons and exceptions (types and texts).

Where the core rejects a frame at a different point than websockets (at its header for control
frames too long or fragmented, which websockets rejects after their payload; once the whole
header with its masking key is in for bad masking or a frame over max_size, which websockets
rejects 4 bytes earlier), the same events and bytes come out, possibly from another
receive_data() call: invalid streams are compared over the whole run, not per call.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import pytest
import websockets.frames
import websockets.protocol as wsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import femtows.websockets.protocol as fwp
from femtows.websockets.exceptions import InvalidState, ProtocolError
from tests.websockets.reference import needs_reference

MASK = b"\x37\xfa\x21\x3d"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: Optional[bytes] = MASK,
    length: Optional[int] = None,
) -> bytes:
    """One frame on the wire (masked by default, i.e. client to server)."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if mask is not None else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 0x10000:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@pytest.fixture(autouse=True)
def same_mask_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """websockets draws client masking keys from secrets.token_bytes: make them MASK."""
    monkeypatch.setattr(websockets.frames.secrets, "token_bytes", lambda n: (MASK * 8)[:n])


def make(lib: Any, side: str, **kwargs: Any) -> Any:
    if "state" in kwargs:  # websockets compares states by identity: its own enum
        kwargs["state"] = lib.State[kwargs["state"].name]
    proto = lib.Protocol(getattr(lib.Side, side), **kwargs)
    if lib is fwp and proto._engine is not None:
        proto._engine.set_mask_pool(MASK * 1024)
    return proto


def _event(event: Any) -> Tuple[Any, ...]:
    return (int(event.opcode), bytes(event.data), event.fin, event.rsv1, event.rsv2, event.rsv3)


def _exc(exc: Optional[BaseException]) -> Optional[Tuple[str, str]]:
    return None if exc is None else (type(exc).__name__, str(exc))


def _final(proto: Any) -> Tuple[Any, ...]:
    closed = proto.state == 3
    close_exc = proto.close_exc if closed else None
    return (
        int(proto.state),
        proto.close_code,
        proto.close_reason,
        _exc(proto.parser_exc),
        _exc(close_exc),
        _exc(close_exc.__cause__) if close_exc is not None else None,
        proto.close_expected(),
    )


def drive(proto: Any, chunks: Sequence[bytes], eof: bool = True) -> List[Tuple[Any, ...]]:
    """Feed chunks (then EOF); one record per call: events, writes, state."""
    records = []
    for chunk in chunks:
        proto.receive_data(chunk)
        records.append(
            (
                [_event(e) for e in proto.events_received()],
                proto.data_to_send(),
                int(proto.state),
            )
        )
    if eof:
        proto.receive_eof()
        records.append(([], proto.data_to_send(), int(proto.state)))
    records.append(_final(proto))
    return records


def flatten(records: List[Tuple[Any, ...]]) -> Tuple[Any, ...]:
    events: List[Any] = []
    writes: List[bytes] = []
    for events_, writes_, _ in records[:-1]:
        events += events_
        writes += writes_
    # b"" (half-close) stays a separate item; data is compared as one stream around it.
    joined: List[bytes] = [b""]
    for data in writes:
        if data == b"":
            joined += [b"<EOF>", b""]
        else:
            joined[-1] += data
    return (events, joined, records[-1])


def compare(
    stream: bytes,
    side: str,
    splits: Iterator[List[bytes]],
    per_call: bool = True,
    eof: bool = True,
    **kwargs: Any,
) -> None:
    for chunks in splits:
        theirs = drive(make(wsp, side, **kwargs), chunks, eof)
        ours = drive(make(fwp, side, **kwargs), chunks, eof)
        if per_call:
            assert ours == theirs, chunks
        else:
            assert flatten(ours) == flatten(theirs), chunks


def every_split(stream: bytes) -> Iterator[List[bytes]]:
    """The whole stream, byte by byte, and cut in two at every offset."""
    yield [stream]
    yield [stream[i : i + 1] for i in range(len(stream))]
    for cut in range(1, len(stream)):
        yield [stream[:cut], stream[cut:]]


def client(*frames_: bytes) -> bytes:
    return b"".join(frames_)


def server(*args: Tuple[Any, ...]) -> bytes:
    return b"".join(frame(*a[:2], **(a[2] if len(a) > 2 else {}), mask=None) for a in args)


VALID = {
    "text": client(frame(1, b"hello")),
    "binary-empty": client(frame(2)),
    "fragmented": client(frame(1, b"he", fin=False), frame(0, b"l", fin=False), frame(0, b"lo")),
    "ping-inside-fragments": client(
        frame(2, b"ab", fin=False), frame(9, b"ping"), frame(0, b"cd"), frame(10, b"pong")
    ),
    "close": client(frame(1, b"x"), frame(8, close_payload(1000, b"bye")), frame(1, b"after")),
    "close-empty": client(frame(8)),
    "close-1001": client(frame(8, close_payload(1001))),
    "close-4000-utf8": client(frame(8, close_payload(4000, "é".encode()))),
    "len-126": client(frame(2, bytes(range(126)))),
    "utf8-split-is-not-checked": client(frame(1, b"\xc3", fin=False), frame(0, b"\xa9")),
    "invalid-utf8-text-is-not-checked": client(frame(1, b"\xff")),
}

INVALID = {
    "reserved-opcode": client(frame(3, b"x")),
    "reserved-control-opcode": client(frame(11)),
    "unmasked": frame(1, b"x", mask=None),
    "rsv1": client(frame(1, b"x", rsv=4)),
    "rsv3-after-frame": client(frame(2, b"ok"), frame(2, b"x", rsv=1)),
    "fragmented-ping": client(frame(9, b"p", fin=False)),
    "ping-too-long": client(frame(9, b"p" * 126)),
    "unexpected-continuation": client(frame(0, b"x")),
    "expected-continuation": client(frame(1, b"a", fin=False), frame(1, b"b")),
    "close-1-byte": client(frame(8, b"\x03")),
    "close-code-999": client(frame(8, close_payload(999))),
    "close-code-1005": client(frame(8, close_payload(1005))),
    "close-bad-utf8": client(frame(8, close_payload(1000, b"ok\xff"))),
    "close-in-fragmented-message": client(frame(1, b"a", fin=False), frame(8)),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_streams_server_side(name: str) -> None:
    compare(VALID[name], "SERVER", every_split(VALID[name]))


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_streams_server_side(name: str) -> None:
    compare(INVALID[name], "SERVER", every_split(INVALID[name]), per_call=False)


@pytest.mark.parametrize("name", sorted(VALID))
def test_truncated_streams_end_with_the_same_eof_error(name: str) -> None:
    """EOF at every offset: websockets' 'stream ends after N bytes, expected M bytes'."""
    stream = VALID[name]
    for cut in range(len(stream)):
        compare(stream[:cut], "SERVER", iter([[stream[:cut]]]))


CLIENT_STREAMS = {
    "text-ping-close": server((1, b"hello"), (9, b"are you there"), (8, close_payload(1000))),
    "fragments": server((2, b"a", {"fin": False}), (10, b""), (0, b"b")),
    "masked-from-server": frame(1, b"x"),
    "close-then-data": server((8, close_payload(3000, b"r")), (1, b"ignored")),
    "too-long-control": server((10, b"x" * 200)),
}


@pytest.mark.parametrize("name", sorted(CLIENT_STREAMS))
def test_client_side_with_same_mask_keys(name: str) -> None:
    stream = CLIENT_STREAMS[name]
    valid = name not in ("too-long-control", "masked-from-server")
    compare(stream, "CLIENT", every_split(stream), per_call=valid)


@pytest.mark.parametrize(
    "max_size, stream",
    [
        (10, client(frame(2, b"x" * 11))),
        (10, client(frame(2, b"x" * 10), frame(2, b"y" * 11))),
        (10, client(frame(1, b"abcdef", fin=False), frame(0, b"ghijk"))),
        # (message, fragment) limits: not in older websockets.
        pytest.param(
            (None, 4),
            client(frame(1, b"abcd", fin=False), frame(0, b"abcde")),
            marks=needs_reference,
        ),
        pytest.param(
            (20, 8),
            client(
                frame(2, b"12345678", fin=False),
                frame(0, b"12345678", fin=False),
                frame(0, b"12345"),
            ),
            marks=needs_reference,
        ),
        (None, client(frame(2, b"z" * 300))),
        (200, client(frame(2, b"z" * 300))),
    ],
)
def test_max_size(max_size: Any, stream: bytes) -> None:
    # Refused frames: websockets fails before the masking key arrives, the core once its
    # header is complete (4 bytes later): same result, compared over the whole run.
    compare(stream, "SERVER", every_split(stream), per_call=max_size is None, max_size=max_size)


def test_too_big_frame_fails_before_its_payload_arrives() -> None:
    for lib in (wsp, fwp):
        proto = make(lib, "SERVER", max_size=1000)
        proto.receive_data(frame(2, length=70000, mask=MASK)[:14])
        assert proto.state == lib.State.CLOSING
        assert str(proto.parser_exc) == "frame with 70000 bytes exceeds limit of 1000 bytes"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=70200), max_size=12),
    side=st.sampled_from(["SERVER", "CLIENT"]),
)
def test_long_streams_split_anywhere(cuts: List[int], side: str) -> None:
    mask = MASK if side == "SERVER" else None
    stream = b"".join(
        [
            frame(2, bytes(range(256)) * 256 + b"tail", mask=mask, fin=False),
            frame(9, b"ping", mask=mask),
            frame(0, b"x" * 3000, mask=mask),
            frame(1, "é".encode() * 100, mask=mask),
            frame(8, close_payload(1000, b"done"), mask=mask),
        ]
    )
    points = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(points, points[1:])]
    compare(stream, side, iter([chunks]), max_size=None)


# -- sending -------------------------------------------------------------------------------


def _sends(proto: Any) -> List[Any]:
    out: List[Any] = []

    def step(call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:  # compared between the libraries
            out.append(_exc(exc))
        out.append((proto.data_to_send(), int(proto.state), proto.close_expected()))

    step(lambda: proto.send_text(b"hello"))
    step(lambda: proto.send_binary(b"\x00" * 200, fin=False))
    step(lambda: proto.send_text(b"no"))
    step(lambda: proto.send_ping(b"p"))
    step(lambda: proto.send_continuation(b"x" * 70000, fin=True))
    step(lambda: proto.send_continuation(b"x", fin=True))
    step(lambda: proto.send_pong(b""))
    step(lambda: proto.send_ping(b"x" * 126))
    step(lambda: proto.send_close(None, "reason"))
    step(lambda: proto.send_close(999))
    step(lambda: proto.send_close(1001, "bye"))
    step(lambda: proto.send_text(b"late"))
    step(lambda: proto.send_ping(b"still ok"))
    step(lambda: proto.send_close())
    return out


@pytest.mark.parametrize("side", ["SERVER", "CLIENT"])
def test_sending(side: str) -> None:
    assert _sends(make(fwp, side)) == _sends(make(wsp, side))


@pytest.mark.parametrize("side", ["SERVER", "CLIENT"])
@pytest.mark.parametrize("code, reason", [(1011, "oops"), (1006, ""), (1000, "")])
def test_fail(side: str, code: int, reason: str) -> None:
    results = []
    for lib in (wsp, fwp):
        proto = make(lib, side)
        proto.fail(code, reason)
        record = [proto.data_to_send(), int(proto.state), proto.close_expected()]
        proto.receive_data(frame(1, b"ignored", mask=MASK if side == "SERVER" else None))
        record += [proto.events_received(), proto.data_to_send()]
        proto.receive_eof()
        record += [proto.data_to_send(), _final(proto)]
        results.append(record)
    assert results[0] == results[1]


def test_close_exc_before_closed_and_errors() -> None:
    proto = make(fwp, "SERVER")
    with pytest.raises(AssertionError, match="connection isn't closed yet"):
        proto.close_exc  # noqa: B018
    proto.receive_eof()
    with pytest.raises(EOFError, match="stream ended"):
        proto.receive_data(b"x")
    with pytest.raises(InvalidState, match="connection is closed"):
        proto.send_text(b"x")
    assert isinstance(proto.close_exc.__cause__, EOFError)
    with pytest.raises(ProtocolError, match="unexpected continuation frame"):
        make(fwp, "CLIENT").send_continuation(b"", fin=True)


def test_attributes() -> None:
    import logging
    import uuid

    proto = fwp.Protocol(fwp.SERVER)
    assert isinstance(proto.id, uuid.UUID)
    assert proto.logger is logging.getLogger("websockets.server")
    assert fwp.Protocol(fwp.CLIENT).logger is logging.getLogger("websockets.client")
    assert proto.side is fwp.Side.SERVER and proto.state is fwp.State.OPEN
    assert proto.extensions == [] and proto.subprotocol is None and proto.handshake_exc is None
    assert (proto.max_message_size, proto.max_fragment_size) == (2**20, None)
    assert (fwp.Protocol(fwp.CLIENT, max_size=(5, 3)).max_fragment_size) == 3
    assert fwp.SEND_EOF == b""


def test_bare_protocol_created_connecting_parses_frames() -> None:
    # (A bare client-side Protocol left CONNECTING trips an assertion in websockets itself.)
    stream = frame(1, b"hi") + frame(8, close_payload(1000))
    compare(stream, "SERVER", every_split(stream), state=fwp.State.CONNECTING)


class XorExtension:
    """A toy extension for both libraries: data frames carry RSV2 and their payload XOR 0x55."""

    name = "x-xor"

    def decode(self, frame: Any, *, max_size: Optional[int] = None) -> Any:
        if frame.opcode >= 8 or not frame.rsv2:
            return frame
        if max_size is not None and len(frame.data) > max_size:
            raise AssertionError("the core checks max_size first")
        return dataclasses.replace(frame, data=bytes(b ^ 0x55 for b in frame.data), rsv2=False)

    def encode(self, frame: Any) -> Any:
        if frame.opcode >= 8:
            return frame
        return dataclasses.replace(frame, data=bytes(b ^ 0x55 for b in frame.data), rsv2=True)


def _xored(data: bytes) -> bytes:
    return bytes(b ^ 0x55 for b in data)


EXTENDED = {
    "xored": client(frame(1, _xored(b"hello"), rsv=2), frame(2, b"plain")),
    "xored-fragments": client(
        frame(2, _xored(b"ab"), rsv=2, fin=False), frame(9, b"p"), frame(0, _xored(b"cd"), rsv=2)
    ),
    "rsv1-still-refused": client(frame(1, b"x", rsv=4)),
    "close": client(frame(8, close_payload(1000))),
}


@pytest.mark.parametrize("name", sorted(EXTENDED))
def test_extensions_decode_and_encode_like_websockets(name: str) -> None:
    stream = EXTENDED[name]
    for chunks in every_split(stream):
        records = []
        for lib in (wsp, fwp):
            proto = make(lib, "SERVER")
            proto.extensions = [XorExtension()]
            record = drive(proto, chunks, eof=False)
            if proto.state == 1:
                proto.send_text(b"reply", fin=False)
                proto.send_continuation(b"!", fin=True)
                proto.send_ping(b"ping")
                record.append(proto.data_to_send())
            records.append(flatten(record) if "refused" in name else record)
        assert records[0] == records[1], chunks
