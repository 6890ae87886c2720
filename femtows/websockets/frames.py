"""WebSocket frames: :class:`Opcode`, :class:`CloseCode`, :class:`Frame`, :class:`Close`.

Twins of ``websockets.frames`` (17.4): same member names and values, same ``str()`` of a
:class:`Close` (``"1000 (OK)"``, ``"1011 (internal error) keepalive ping timeout"``) and of a
:class:`Frame` (the one-line summary websockets writes in its debug log), same
:meth:`Frame.parse` / :meth:`Frame.serialize` / :meth:`Close.parse` / :meth:`Close.serialize`
contracts. The femtows engine does not use these classes on its receive path (frames are parsed
in C); they exist for user code, logging and the Sans-I/O layer.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import secrets
import struct
import sys
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generator, Optional, Sequence, Union

from .exceptions import PayloadTooBig, ProtocolError

if TYPE_CHECKING:
    from .typing import BytesLike

__all__ = ["Opcode", "CloseCode", "Frame", "Close"]


class Opcode(enum.IntEnum):
    """Opcode of a WebSocket frame (RFC 6455 §5.2)."""

    CONT = 0x00
    TEXT = 0x01
    BINARY = 0x02
    CLOSE = 0x08
    PING = 0x09
    PONG = 0x0A


CONT, TEXT, BINARY = Opcode.CONT, Opcode.TEXT, Opcode.BINARY
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG
DATA_OPCODES = (CONT, TEXT, BINARY)
CTRL_OPCODES = (CLOSE, PING, PONG)


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455 §7.4.1 and the IANA registry, with websockets' names."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# Explanations shown in str(Close); the wording is websockets' (users match on it).
CLOSE_CODE_EXPLANATIONS: dict[int, str] = {
    1000: "OK",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received [internal]",
    1006: "abnormal closure [internal]",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure [internal]",
}

# Codes that may appear in a close frame on the wire (besides 3000-4999).
EXTERNAL_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

# Codes that make a closed connection "OK" (ConnectionClosedOK) when received and sent.
OK_CLOSE_CODES = frozenset({1000, 1001, 1005})


def apply_mask(data: BytesLike, mask: Union[bytes, bytearray]) -> bytes:
    """Return ``data`` XOR-ed with the 4-byte ``mask`` repeated (RFC 6455 §5.3)."""
    if len(mask) != 4:
        raise ValueError("mask must contain 4 bytes")
    size = len(data)
    if not size:
        return b""
    key = (bytes(mask) * (size // 4 + 1))[:size]
    value = int.from_bytes(bytes(data), sys.byteorder) ^ int.from_bytes(key, sys.byteorder)
    return value.to_bytes(size, sys.byteorder)


_PRINTABLE_ASCII = re.compile(rb"[\x09-\x0d\x20-\x7e]*")


def _looks_like_utf8(data: bytes, clean_start: bool, clean_end: bool) -> bool:
    """Guess whether ``data`` is (a fragment of) printable UTF-8 text.

    When the start (end) need not be clean, up to 3 continuation bytes at the start and an
    incomplete multi-byte sequence at the end are tolerated: a fragment boundary may cut a
    character.
    """
    start, end = 0, len(data)
    if not clean_start:
        while start < min(3, len(data)) and data[start] & 0xC0 == 0x80:
            start += 1
    if not clean_end and data:
        # Walk back over continuation bytes to the lead byte of the last character.
        last = len(data) - 1
        floor = max(len(data) - 4, start)
        while last >= floor and data[last] & 0xC0 == 0x80:
            last -= 1
        if last >= floor:
            lead = data[last]
            if lead < 0x80:
                width = 1
            elif lead & 0xE0 == 0xC0:
                width = 2
            elif lead & 0xF0 == 0xE0:
                width = 3
            elif lead & 0xF8 == 0xF0:
                width = 4
            else:
                width = 0
            if width > len(data) - last:
                end = last  # the last character is cut: drop it
        else:
            end = last  # only continuation bytes at the end: leave them out
    try:
        text = data[start:end].decode()
    except UnicodeDecodeError:
        return False
    return "\\x" not in repr(text)


def _hex(data: BytesLike) -> str:
    return " ".join(f"{byte:02x}" for byte in bytes(data))


@dataclasses.dataclass
class Frame:
    """A WebSocket frame.

    Attributes:
        opcode: the frame's :class:`Opcode`.
        data: its payload.
        fin: the FIN bit.
        rsv1: the RSV1 bit.
        rsv2: the RSV2 bit.
        rsv3: the RSV3 bit.

    Masking and the payload length are handled by :meth:`parse` and :meth:`serialize`.
    ``str(frame)`` is a one-line summary for logs, elided to ``WEBSOCKETS_MAX_LOG_SIZE``
    (75) characters, e.g. ``TEXT 'hello' [5 bytes]``.
    """

    opcode: Opcode
    data: BytesLike
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    MAX_LOG_SIZE: ClassVar[int] = int(os.environ.get("WEBSOCKETS_MAX_LOG_SIZE", "75"))

    # Which payload type each opcode is expected to carry; None means "no expectation".
    _TEXT_EXPECTED: ClassVar[dict[int, bool]] = {TEXT: True, BINARY: False, CLOSE: True}

    def __str__(self) -> str:
        expected = self._TEXT_EXPECTED.get(self.opcode)
        shown, is_text = self._payload_summary()
        size = len(self.data)
        notes = []
        if expected != is_text:
            notes.append("text" if is_text else "binary")
        notes.append(f"{size} byte" if size == 1 else f"{size} bytes")
        if not self.fin:
            notes.append("continued")
        return f"{self.opcode.name} {shown} [{', '.join(notes)}]"

    def _payload_summary(self) -> tuple[str, Optional[bool]]:
        """Return the payload as shown in ``str()`` and whether it was taken for text."""
        limit = self.MAX_LOG_SIZE
        if not self.data:
            return "''", self._TEXT_EXPECTED.get(self.opcode)
        is_text: Optional[bool]
        if self.opcode == CLOSE:
            try:
                shown, is_text = str(Close.parse(bytes(self.data))), True
            except (ProtocolError, UnicodeDecodeError):
                shown, is_text = _hex(self.data), False
        elif self.opcode in CTRL_OPCODES:
            if _PRINTABLE_ASCII.fullmatch(bytes(self.data)):
                shown, is_text = repr(bytes(self.data).decode("ascii")), True
            else:
                shown, is_text = _hex(self.data), False
        else:
            shown, is_text = self._data_summary(limit)
        if len(shown) > limit:
            keep = limit // 3 - 1
            shown = f"{shown[: 2 * keep]}...{shown[-keep:]}"
        return shown, is_text

    def _data_summary(self, limit: int) -> tuple[str, bool]:
        clean_start = self.opcode != CONT
        if len(self.data) > 4 * limit:
            # Only the head and the tail can be shown: look at those alone.
            head = bytes(self.data[: 8 * limit // 3])
            tail = bytes(self.data[-(4 * limit // 3) :])
            is_text = _looks_like_utf8(head, clean_start, False) and _looks_like_utf8(
                tail, False, self.fin
            )
            text = head + tail
        else:
            text = bytes(self.data)
            is_text = _looks_like_utf8(text, clean_start, self.fin)
        if is_text:
            return repr(text.decode(errors="replace")), True
        raw = bytes(self.data)
        if len(raw) > limit // 3:
            keep = (limit // 3 - 1) // 3
            # Two filler bytes make the hex longer than the limit so the middle gets elided.
            raw = raw[: 2 * keep] + b"\x00\x00" + raw[-keep:]
        return _hex(raw), False

    @classmethod
    def parse(
        cls,
        read_exact: Callable[[int], Generator[None, None, Union[bytes, bytearray]]],
        *,
        mask: bool,
        max_size: Optional[int] = None,
        extensions: Optional[Sequence[Any]] = None,
    ) -> Generator[None, None, Frame]:
        """Parse one frame (a generator-based coroutine over ``read_exact``).

        Args:
            read_exact: generator-based coroutine returning exactly the bytes asked for.
            mask: whether the frame must be masked (reading on the server side).
            max_size: largest payload accepted, ``None`` for no limit.
            extensions: extensions whose ``decode(frame, max_size=...)`` apply, last first.

        Raises:
            EOFError: the stream ended inside the frame.
            PayloadTooBig: the payload is larger than ``max_size``.
            ProtocolError: the frame is invalid.
        """
        head = yield from read_exact(2)
        first, second = head[0], head[1]
        try:
            opcode = Opcode(first & 0x0F)
        except ValueError as exc:
            raise ProtocolError("invalid opcode") from exc
        if bool(second & 0x80) != mask:
            raise ProtocolError("incorrect masking")
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", (yield from read_exact(2)))[0]
        elif length == 127:
            length = struct.unpack("!Q", (yield from read_exact(8)))[0]
        if max_size is not None and length > max_size:
            raise PayloadTooBig(length, max_size)
        key = (yield from read_exact(4)) if mask else b""
        data: BytesLike = yield from read_exact(length)
        if mask:
            data = apply_mask(data, key)
        frame = cls(
            opcode,
            data,
            bool(first & 0x80),
            bool(first & 0x40),
            bool(first & 0x20),
            bool(first & 0x10),
        )
        for extension in reversed(list(extensions or ())):
            frame = extension.decode(frame, max_size=max_size)
        frame.check()
        return frame

    def serialize(self, *, mask: bool, extensions: Optional[Sequence[Any]] = None) -> bytes:
        """Return the frame's bytes on the wire.

        Args:
            mask: whether to mask the payload (writing on the client side) with a random key.
            extensions: extensions whose ``encode(frame)`` apply, in order.

        Raises:
            ProtocolError: the frame is invalid.
        """
        self.check()
        frame = self
        for extension in extensions or ():
            frame = extension.encode(frame)
        first = (
            (0x80 if frame.fin else 0)
            | (0x40 if frame.rsv1 else 0)
            | (0x20 if frame.rsv2 else 0)
            | (0x10 if frame.rsv3 else 0)
            | frame.opcode
        )
        mask_bit = 0x80 if mask else 0
        size = len(frame.data)
        if size < 126:
            header = struct.pack("!BB", first, mask_bit | size)
        elif size < 0x10000:
            header = struct.pack("!BBH", first, mask_bit | 126, size)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 127, size)
        if mask:
            key = secrets.token_bytes(4)
            return header + key + apply_mask(frame.data, key)
        return header + bytes(frame.data)

    def check(self) -> None:
        """Check the reserved bits and the control-frame rules.

        Raises:
            ProtocolError: a reserved bit is set, or a control frame is fragmented or has more
                than 125 bytes.
        """
        if self.rsv1 or self.rsv2 or self.rsv3:
            raise ProtocolError("reserved bits must be 0")
        if self.opcode in CTRL_OPCODES:
            if len(self.data) > 125:
                raise ProtocolError("control frame too long")
            if not self.fin:
                raise ProtocolError("fragmented control frame")


@dataclasses.dataclass
class Close:
    """Code and reason of a close frame.

    Attributes:
        code: the close code (:class:`CloseCode` or any int).
        reason: the close reason.

    ``str()`` gives ``"<code> (<explanation>)"`` followed by the reason if any, e.g.
    ``"1000 (OK)"``, ``"4000 (private use) bye"``.
    """

    code: Union[CloseCode, int]
    reason: str

    def __str__(self) -> str:
        code = self.code
        if 3000 <= code < 4000:
            explanation = "registered"
        elif 4000 <= code < 5000:
            explanation = "private use"
        else:
            explanation = CLOSE_CODE_EXPLANATIONS.get(code, "unknown")
        text = f"{code} ({explanation})"
        return f"{text} {self.reason}" if self.reason else text

    @classmethod
    def parse(cls, data: BytesLike) -> Close:
        """Parse a close frame's payload; an empty payload means 1005 (no status received).

        Raises:
            ProtocolError: the payload is 1 byte long or the code is not allowed on the wire.
            UnicodeDecodeError: the reason is not UTF-8.
        """
        if isinstance(data, memoryview):
            raise AssertionError("only compressed outgoing frames use memoryview")
        if not data:
            return cls(CloseCode.NO_STATUS_RCVD, "")
        if len(data) == 1:
            raise ProtocolError("close frame too short")
        close = cls(int.from_bytes(data[:2], "big"), bytes(data[2:]).decode())
        close.check()
        return close

    def serialize(self) -> bytes:
        """Return the close frame's payload.

        Raises:
            ProtocolError: the code is not allowed on the wire.
        """
        self.check()
        return struct.pack("!H", self.code) + self.reason.encode()

    def check(self) -> None:
        """Check that the code may be sent in a close frame.

        Raises:
            ProtocolError: it may not (e.g. 1005, 1006, 1015, 2999, 5000).
        """
        if not (self.code in EXTERNAL_CLOSE_CODES or 3000 <= self.code < 5000):
            raise ProtocolError("invalid status code")
