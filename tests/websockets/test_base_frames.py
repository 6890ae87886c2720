"""femtows.websockets.frames against websockets.frames (17.4): enums, Close, Frame (str, repr,
parse, serialize, check), side by side."""

from __future__ import annotations

import base64
import os
import socket
import tempfile
from typing import Any, Callable, Generator

import pytest
import websockets.exceptions as ref_exc
import websockets.frames as ref

from femtows.websockets import exceptions as exc
from femtows.websockets import frames
from tests.websockets.reference import needs_reference


def test_enums_match() -> None:
    assert [(m.name, m.value) for m in frames.Opcode] == [(m.name, m.value) for m in ref.Opcode]
    assert [(m.name, m.value) for m in frames.CloseCode] == [
        (m.name, m.value) for m in ref.CloseCode
    ]
    assert frames.CloseCode.NORMAL_CLOSURE == 1000
    assert frames.CloseCode.TLS_HANDSHAKE == 1015


@needs_reference  # older websockets export other names
def test_all_matches() -> None:
    assert frames.__all__ == ref.__all__


@pytest.mark.parametrize(
    "code, reason",
    [
        (1000, ""),
        (1001, "bye"),
        (1005, ""),
        (1006, ""),
        (1011, "keepalive ping timeout"),
        (1015, ""),
        (1004, ""),
        (2999, "x"),
        (3000, ""),
        (3999, "r"),
        (4000, "private"),
        (4999, ""),
        (5000, "?"),
        (frames.CloseCode.MESSAGE_TOO_BIG, "too big"),
    ],
)
def test_close_str_and_check(code: int, reason: str) -> None:
    ours, theirs = frames.Close(code, reason), ref.Close(int(code), reason)
    assert str(ours) == str(theirs)
    try:
        theirs.check()
    except ref_exc.ProtocolError as error:
        with pytest.raises(exc.ProtocolError, match=f"^{error}$"):
            ours.check()
        with pytest.raises(exc.ProtocolError):
            ours.serialize()
    else:
        ours.check()
        assert ours.serialize() == theirs.serialize()


def test_close_texts() -> None:
    assert str(frames.Close(1000, "")) == "1000 (OK)"
    assert str(frames.Close(1011, "boom")) == "1011 (internal error) boom"
    assert str(frames.Close(4000, "x")) == "4000 (private use) x"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x03\xe8",
        b"\x03\xe8bye",
        b"\x03",
        b"\x03\xed",
        b"\x0f\xa0ok",
        b"\x03\xe8\xff",
        b"\x13\x88",
    ],
)
def test_close_parse(payload: bytes) -> None:
    try:
        theirs = ref.Close.parse(payload)
    except (ref_exc.ProtocolError, UnicodeDecodeError) as error:
        expected = (
            exc.ProtocolError if isinstance(error, ref_exc.ProtocolError) else UnicodeDecodeError
        )
        with pytest.raises(expected):
            frames.Close.parse(payload)
    else:
        ours = frames.Close.parse(payload)
        assert (ours.code, ours.reason) == (theirs.code, theirs.reason)
        assert str(ours) == str(theirs)


def test_close_parse_refuses_memoryview() -> None:
    with pytest.raises(AssertionError):
        frames.Close.parse(memoryview(b"\x03\xe8"))


def _payloads() -> list[Any]:
    # The needs_reference ones: older websockets show them otherwise (or fail on them).
    text = "héllo wörld ✓ ".encode()
    long_text = ("abcdefghij" * 40).encode()
    binary = bytes(range(256))
    cases = [
        (0x1, b"", True),
        (0x1, b"hello", True),
        (0x1, text, True),
        (0x1, text[:3], False),  # cut inside a multi-byte character
        (0x0, text[1:], True),  # continuation starting mid-character
        (0x0, text[1:5], False),
        (0x1, long_text, True),
        (0x1, long_text + "é".encode(), True),
        (0x2, b"\x00\x01\x02", True),
        pytest.param(0x2, b"spam", True, marks=needs_reference),  # binary frame carrying text
        (0x2, binary, True),
        (0x2, binary * 3, False),
        (0x2, b"\x80\x80\x80\x80\x80\x80", True),
        pytest.param(0x0, b"abc\x80\x80\x80\x80", False, marks=needs_reference),
        pytest.param(0x1, b"\xff\xfe", True, marks=needs_reference),
        (0x9, b"", True),
        (0x9, b"ping", True),
        (0x9, b"\x00\xff\x10\x20", True),
        (0xA, b"pong\n", True),
        pytest.param(0x8, b"", True, marks=needs_reference),
        (0x8, b"\x03\xe8", True),
        (0x8, b"\x03\xe8bye", True),
        pytest.param(0x8, b"\x03", True, marks=needs_reference),
        pytest.param(0x8, b"\x03\xe8\xff", True, marks=needs_reference),
        (0x1, os.urandom(0) + b"x" * 301, True),
        (0x2, b"\xe2\x9c" + b"x" * 400 + b"\xe2", False),
    ]
    return cases


@pytest.mark.parametrize("opcode, data, fin", _payloads())
def test_frame_str_and_repr(opcode: int, data: bytes, fin: bool) -> None:
    ours = frames.Frame(frames.Opcode(opcode), data, fin)
    theirs = ref.Frame(ref.Opcode(opcode), data, fin)
    assert str(ours) == str(theirs)
    assert repr(ours) == repr(theirs)


def test_frame_str_examples() -> None:
    assert str(frames.Frame(frames.Opcode.TEXT, b"hello")) == "TEXT 'hello' [5 bytes]"
    assert (
        str(frames.Frame(frames.Opcode.BINARY, b"\x00", False)) == "BINARY 00 [1 byte, continued]"
    )
    assert str(frames.Frame(frames.Opcode.CLOSE, b"\x03\xe8")) == "CLOSE 1000 (OK) [2 bytes]"


def _reader(data: bytes) -> Callable[[int], Generator[None, None, bytes]]:
    view = memoryview(data)
    position = 0

    def read_exact(n: int) -> Generator[None, None, bytes]:
        nonlocal position
        if position + n > len(view):
            raise EOFError(f"stream ends after {len(view) - position} bytes, expected {n} bytes")
        chunk = bytes(view[position : position + n])
        position += n
        return chunk
        yield  # pragma: no cover - makes this a generator

    return read_exact


def _run(gen: Generator[None, None, Any]) -> Any:
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("parser asked for more data")


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_frame_serialize_parse_round_trip(mask: bool, size: int) -> None:
    data = os.urandom(size)
    wire = frames.Frame(frames.Opcode.BINARY, data).serialize(mask=mask)
    # websockets parses what we serialize, and we parse it back too.
    theirs = _run(ref.Frame.parse(_reader(wire), mask=mask))
    ours = _run(frames.Frame.parse(_reader(wire), mask=mask))
    assert theirs.data == data == ours.data
    assert (ours.opcode, ours.fin) == (frames.Opcode.BINARY, True)
    # And we parse what websockets serializes.
    wire = ref.Frame(ref.Opcode.TEXT, data, fin=False).serialize(mask=mask)
    ours = _run(frames.Frame.parse(_reader(wire), mask=mask))
    assert (ours.opcode, ours.data, ours.fin) == (frames.Opcode.TEXT, data, False)


def test_frame_serialize_unmasked_matches_websockets() -> None:
    for frame_args in [(0x1, b"hi", True), (0x2, b"x" * 300, False), (0x9, b"", True)]:
        ours = frames.Frame(frames.Opcode(frame_args[0]), frame_args[1], frame_args[2])
        theirs = ref.Frame(ref.Opcode(frame_args[0]), frame_args[1], frame_args[2])
        assert ours.serialize(mask=False) == theirs.serialize(mask=False)


@pytest.mark.parametrize(
    "wire, mask, max_size, error",
    [
        (b"\x83\x00", False, None, "invalid opcode"),
        (b"\x81\x80\x00\x00\x00\x00", False, None, "incorrect masking"),
        (b"\x81\x00", True, None, "incorrect masking"),
        (b"\xc1\x00", False, None, "reserved bits must be 0"),
        (b"\x09\x00", False, None, "fragmented control frame"),
        (b"\x89\x7e\x00\x7e" + b"x" * 126, False, None, "control frame too long"),
        (
            b"\x82\x7e\x01\x00" + b"x" * 256,
            False,
            255,
            "frame with 256 bytes exceeds limit of 255 bytes",
        ),
    ],
)
def test_frame_parse_errors(wire: bytes, mask: bool, max_size: Any, error: str) -> None:
    with pytest.raises((exc.ProtocolError, exc.PayloadTooBig)) as ours:
        _run(frames.Frame.parse(_reader(wire), mask=mask, max_size=max_size))
    with pytest.raises((ref_exc.ProtocolError, ref_exc.PayloadTooBig)) as theirs:
        _run(ref.Frame.parse(_reader(wire), mask=mask, max_size=max_size))
    assert str(ours.value) == str(theirs.value) == error
    assert type(ours.value).__name__ == type(theirs.value).__name__


def test_frame_parse_eof() -> None:
    with pytest.raises(EOFError):
        _run(frames.Frame.parse(_reader(b"\x81\x05hel"), mask=False))


class _Reverse:
    """A toy extension: reverses payloads (to check the order extensions apply in)."""

    def __init__(self, tag: bytes) -> None:
        self.tag = tag

    def encode(self, frame: frames.Frame) -> frames.Frame:
        return frames.Frame(frame.opcode, bytes(frame.data) + self.tag, frame.fin)

    def decode(self, frame: frames.Frame, *, max_size: Any = None) -> frames.Frame:
        assert bytes(frame.data).endswith(self.tag)
        return frames.Frame(frame.opcode, bytes(frame.data)[: -len(self.tag)], frame.fin)


def test_frame_extensions_order() -> None:
    extensions = [_Reverse(b"1"), _Reverse(b"2")]
    wire = frames.Frame(frames.Opcode.TEXT, b"x").serialize(mask=False, extensions=extensions)
    assert wire == b"\x81\x03x12"
    frame = _run(frames.Frame.parse(_reader(wire), mask=False, extensions=extensions))
    assert frame.data == b"x"


def test_apply_mask() -> None:
    assert frames.apply_mask(b"\x00\x00\x00\x00\x00", b"abcd") == b"abcda"
    assert (
        frames.apply_mask(frames.apply_mask(b"hello", b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04")
        == b"hello"
    )
    with pytest.raises(ValueError, match="mask must contain 4 bytes"):
        frames.apply_mask(b"x", b"abc")


@needs_reference  # older websockets have no utils.get_socket_name
def test_utils_match_websockets() -> None:
    import websockets.utils as ref_utils

    from femtows.websockets import utils

    assert utils.__all__[:3] == ref_utils.__all__
    with socket.socket(socket.AF_INET) as sock:
        sock.bind(("127.0.0.1", 0))
        assert utils.get_socket_name(sock) == ref_utils.get_socket_name(sock)
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:  # a host without IPv6 loopback: nothing to compare
            pass
        else:
            assert utils.get_socket_name(sock) == ref_utils.get_socket_name(sock)
    with tempfile.TemporaryDirectory() as directory, socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.path.join(directory, "s"))
        assert utils.get_socket_name(sock) == ref_utils.get_socket_name(sock)
    key = utils.generate_key()
    assert len(base64.b64decode(key)) == 16 and key != utils.generate_key()
    assert utils.accept_key(key) == ref_utils.accept_key(key)
    assert utils.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    data, mask = os.urandom(37), os.urandom(4)
    assert utils.apply_mask(data, mask) == ref_utils.apply_mask(data, mask)
