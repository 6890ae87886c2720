"""The Sans-I/O WebSocket protocol (twin of ``websockets.protocol``, websockets 17.4).

:class:`Protocol` turns bytes received from the network into events (:class:`~.frames.Frame`,
and during the opening handshake :class:`~.http11.Request` / :class:`~.http11.Response`) and
the ``send_*()`` calls into bytes to write, without doing any I/O: the caller owns the socket.
The client and server roles are :class:`~.client.ClientProtocol` and
:class:`~.server.ServerProtocol`.

Frames are parsed, unmasked, validated, built and masked by the femtows core's Cython engine
(a ``WSProtocolCore`` driven without an event loop, see ``_sansio.pyx``): there is no second
frame parser. This module keeps websockets' state machine (states, closing handshake, what is
sent back automatically, exceptions and their texts) in plain Python.

Known differences from websockets 17.4 (all on invalid input; the close code is the same):

- the core rejects a frame once its whole header (with the masking key) is in; websockets
  rejects bad masking or a frame over ``max_size`` up to 4 bytes earlier, and a control frame
  that is too long or fragmented only after its payload. The events and bytes that result are
  the same, but they may come out of another ``receive_data()`` call;
- a non-minimal payload length is a protocol error here (RFC 6455 §5.2), websockets accepts it;
- a frame with several faults at once is reported by the first fault the core checks (masking
  before opcode, fragmented before too long, a CLOSE payload before reserved bits);
- ``max_size`` below 126 bytes does not apply to control frames (they are at most 125 bytes);
- invalid permessage-deflate data fails with websockets' ``ProtocolError("decompression
  failed")`` but without the ``zlib.error`` as its ``__cause__``.

Extensions follow websockets' protocol (factories negotiate them, ``decode`` / ``encode`` run on
each frame). permessage-deflate negotiated with the factories of
:mod:`femtows.websockets.extensions.permessage_deflate` runs in the core (zlib from Cython): same
compressed bytes as websockets.
"""

from __future__ import annotations

import enum
import logging
import re
import uuid
from typing import Any, Callable, Generator, Optional, Type, Union

from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)
from .frames import OK_CLOSE_CODES, Close, CloseCode, Frame, Opcode
from .http11 import Request, Response
from .typing import BytesLike, LoggerLike, Origin, Subprotocol

__all__ = [
    "Protocol",
    "Side",
    "SERVER",
    "CLIENT",
    "State",
    "CONNECTING",
    "OPEN",
    "CLOSING",
    "CLOSED",
    "SEND_EOF",
]

Event = Union[Request, Response, Frame]
"""Events that :meth:`~Protocol.events_received` may return."""


class Side(enum.IntEnum):
    """Which end of the connection: :attr:`SERVER` (0) or :attr:`CLIENT` (1)."""

    SERVER = 0
    CLIENT = 1


SERVER = Side.SERVER
CLIENT = Side.CLIENT


class State(enum.IntEnum):
    """State of a WebSocket connection: CONNECTING (0), OPEN (1), CLOSING (2), CLOSED (3)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED

SEND_EOF = b""
"""Sentinel meaning "half-close the TCP connection" in websockets' Sans-I/O output."""

# No frame is larger than this: "no limit" for the core.
_UNLIMITED = 2**64 - 1

# The core's failure reasons -> websockets' ProtocolError texts.
_REASONS = (
    ("Received masked frame", "incorrect masking"),
    ("Received un-masked frame", "incorrect masking"),
    ("Received frame with invalid opcode", "invalid opcode"),
    ("Received fragmented control frame", "fragmented control frame"),
    ("Received control frame with payload size", "control frame too long"),
    ("CONTINUATION frame with no message", "unexpected continuation frame"),
    ("new data frame while a fragmented", "expected a continuation frame"),
    ("Received CLOSE with invalid close code size", "close frame too short"),
    ("Received CLOSE with invalid close code", "invalid status code"),
)
_TOO_BIG = re.compile(r"(\d+) > (\d+)$")


class _NullFuture:
    """What the core's transport keeps as its ``disconnected_future`` here."""

    def done(self) -> bool:
        return True

    def set_result(self, result: object) -> None:
        pass

    def set_exception(self, exc: BaseException) -> None:
        pass


class _NullHandle:
    def cancel(self) -> None:
        pass


class _NoLoop:
    """Stands in for the event loop of the core: the Sans-I/O layer arms no timers.

    The core's only timer in this configuration returns a grown read buffer to its initial
    size after a while; here a grown buffer is kept until the protocol object goes away.
    """

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> _NullHandle:
        return _NullHandle()

    def create_future(self) -> _NullFuture:
        return _NullFuture()


_NO_LOOP = _NoLoop()


class _MemoryTransport:
    """The core's "socket": whatever it writes is collected for ``data_to_send()``."""

    def __init__(self, writes: list[bytes]) -> None:
        self.writes = writes

    def write(self, data: Optional[bytes]) -> None:
        if data:
            self.writes.append(bytes(data))

    def close(self) -> None:
        pass  # half-closing is the Sans-I/O protocol's decision (SEND_EOF)

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


# The core logs its own view of events (connection established, protocol errors); the
# Sans-I/O layer logs websockets' lines itself, so the core gets a silent logger.
_CORE_LOGGER = logging.Logger("femtows.websockets.sansio-core")
_CORE_LOGGER.disabled = True


class Protocol:
    """Sans-I/O implementation of a WebSocket connection (websockets 17.4's API).

    Args:
        side: :attr:`~Side.CLIENT` or :attr:`~Side.SERVER`.
        state: initial state (``OPEN`` when the handshake happened elsewhere).
        max_size: largest incoming message in bytes; ``None`` for no limit; or a
            ``(max_message_size, max_fragment_size)`` tuple.
        logger: defaults to ``logging.getLogger("websockets.client")`` or
            ``logging.getLogger("websockets.server")`` depending on ``side``.
    """

    def __init__(
        self,
        side: Side,
        *,
        state: State = OPEN,
        max_size: Union[tuple[Optional[int], Optional[int]], int, None] = 2**20,
        logger: Optional[LoggerLike] = None,
    ) -> None:
        self.id: uuid.UUID = uuid.uuid4()
        """Unique identifier of the connection, for logs."""
        if logger is None:
            logger = logging.getLogger(f"websockets.{side.name.lower()}")
        self.logger: LoggerLike = logger
        """Logger for this connection."""
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self.side = side
        self._state = state
        self.max_message_size: Optional[int]
        self.max_fragment_size: Optional[int]
        if isinstance(max_size, int) or max_size is None:
            self.max_message_size, self.max_fragment_size = max_size, None
        else:
            self.max_message_size, self.max_fragment_size = max_size
        self.current_size: Optional[int] = None
        self.expect_continuation_frame = False
        self.origin: Optional[Origin] = None
        # Negotiated extensions (websockets' Extension protocol: ``decode(frame, max_size=)``
        # on each received frame, in reverse order, ``encode(frame)`` on each sent frame).
        # permessage-deflate (femtows.websockets.extensions' PerMessageDeflate, last in the
        # list) is handed to the core, which inflates and deflates in Cython; any other
        # extension runs its own decode/encode here.
        self.extensions: list[Any] = []
        self._core_extension: Any = None  # the extension the core runs (permessage-deflate)
        self._frame_limit: Optional[int] = None
        self.subprotocol: Optional[Subprotocol] = None
        self.close_rcvd: Optional[Close] = None
        self.close_sent: Optional[Close] = None
        self.close_rcvd_then_sent: Optional[bool] = None
        self.handshake_exc: Optional[Exception] = None
        """Exception to raise if the opening handshake failed; ``None`` if it succeeded."""
        self.parser_exc: Optional[BaseException] = None
        self.eof_sent = False
        self.events: list[Event] = []
        self.writes: list[bytes] = []
        # Input side: "frames" (the core parses), "discard" (after a close or a failure),
        # "handshake" (subclasses parse HTTP), "done" (after EOF was processed).
        self._eof = False
        self._discarding = False
        self._core: Any = None
        self._engine: Any = None
        self._reader = _HandshakeReader()
        self._hs: Optional[Generator[None, None, None]] = None
        if state is not CONNECTING or type(self)._handshake is Protocol._handshake:
            # No opening handshake here (websockets' bare Protocol parses frames at once).
            self._start_frames(b"")

    # -- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """State of the WebSocket connection (RFC 6455 §4.1, §4.2, §7.1.3, §7.1.4)."""
        return self._state

    @state.setter
    def state(self, state: State) -> None:
        if self.debug:
            self.logger.debug("= connection is %s", state.name)
        self._state = state

    @property
    def close_code(self) -> Optional[int]:
        """Close code received from the peer; ``None`` until the connection is CLOSED."""
        if self._state is not CLOSED:
            return None
        if self.close_rcvd is None:
            return CloseCode.ABNORMAL_CLOSURE
        return self.close_rcvd.code

    @property
    def close_reason(self) -> Optional[str]:
        """Close reason received from the peer; ``None`` until the connection is CLOSED."""
        if self._state is not CLOSED:
            return None
        if self.close_rcvd is None:
            return ""
        return self.close_rcvd.reason

    @property
    def close_exc(self) -> ConnectionClosed:
        """The exception to raise when using a CLOSED connection (AssertionError before)."""
        assert self._state is CLOSED, "connection isn't closed yet"
        exc_type: type[ConnectionClosed]
        if (
            self.close_rcvd is not None
            and self.close_sent is not None
            and self.close_rcvd.code in OK_CLOSE_CODES
            and self.close_sent.code in OK_CLOSE_CODES
        ):
            exc_type = ConnectionClosedOK
        else:
            exc_type = ConnectionClosedError
        exc = exc_type(self.close_rcvd, self.close_sent, self.close_rcvd_then_sent)
        exc.__cause__ = self.parser_exc
        return exc

    # -- input ----------------------------------------------------------------------------------

    def receive_data(self, data: Union[bytes, bytearray]) -> None:
        """Receive bytes from the network; then call :meth:`data_to_send` and
        :meth:`events_received`.

        Raises:
            EOFError: :meth:`receive_eof` was called earlier.
        """
        if self._eof:
            raise EOFError("stream ended")
        if self._discarding or not data:
            return
        if self._core is None:
            self._receive_handshake(data)
        else:
            self._engine.feed(data)

    def receive_eof(self) -> None:
        """Receive the end of the data stream; idempotent. :meth:`data_to_send` then returns
        ``[b""]`` (half-close) or ``[]``."""
        if self._eof:
            return
        self._eof = True
        if self._discarding:
            self._discard_eof()
            return
        if self._core is None:
            self._handshake_eof()
            return
        self._frames_eof()

    # -- the opening handshake (driven by the subclasses' ``_handshake()`` generator) ---------

    def _handshake(self) -> Generator[None, None, None]:
        raise AssertionError("no opening handshake in this role")  # pragma: no cover

    def _receive_handshake(self, data: Union[bytes, bytearray]) -> None:
        self._reader.buffer += data
        self._step_handshake()

    def _handshake_eof(self) -> None:
        self._reader.eof = True
        self._step_handshake()

    def _step_handshake(self) -> None:
        if self._hs is None:
            self._hs = self._handshake()
        try:
            next(self._hs)
        except StopIteration:
            pass
        if self._core is not None and self._eof and not self._discarding:
            self._frames_eof()

    def _frames_eof(self) -> None:
        pending, size, _ = self._core._sansio_pending()
        exc = EOFError(_eof_message(pending, size, self.side is SERVER))
        if self.debug and size == 0:
            self.logger.debug("< EOF")
        self.fail(CloseCode.ABNORMAL_CLOSURE, str(exc))
        self.parser_exc = exc

    def _start_frames(self, leftover: Union[bytes, bytearray]) -> None:
        """Start the core's frame engine (after the opening handshake) and feed it."""
        from femtows._core.core import WSProtocolCore

        from ._sansio import FrameEngine

        client = self.side is CLIENT
        engine = FrameEngine()
        core = WSProtocolCore(
            is_client=client,
            listener_factory=None,
            logger=_CORE_LOGGER,
            read_buffer_init_size=4096,
            max_frame_size=_UNLIMITED,
            validate_utf8=False,
            allow_rsv_bits=True,  # checked after the payload, as websockets does
            enable_auto_pong=False,  # websockets' rules, below
            disconnect_on_exception=True,
            close_timeout=None,
            websocket_handshake_timeout=None,
            max_head_size=0,
            loop=_NO_LOOP,
        )
        core.connection_made(_MemoryTransport(self.writes))
        engine.core = core
        engine.on_frame = self._on_frame
        core._sansio_start(engine)
        engine.set_fail_hook(self._on_core_failure)
        self._core = core
        self._engine = engine
        self._update_limit()
        self._run_extensions_in_core()
        if leftover:
            engine.feed(leftover)

    def _run_extensions_in_core(self) -> None:
        """Let the core run permessage-deflate (zlib from Cython) when it is the last
        extension negotiated (the first to decode, the last to encode) and its zlib settings
        are ones the core takes; otherwise the extension's own encode/decode run."""
        if self._core is None or self._core_extension is not None or not self.extensions:
            return
        from ..handshake import WSDeflateParams
        from .extensions.permessage_deflate import PerMessageDeflate

        extension = self.extensions[-1]
        if type(extension) is not PerMessageDeflate:
            return
        settings = dict(extension.compress_settings)
        if set(settings) - {"level", "memLevel"}:
            return
        self._core._sansio_set_compression(
            WSDeflateParams(
                extension.remote_no_context_takeover,
                extension.local_no_context_takeover,
                extension.remote_max_window_bits,
                extension.local_max_window_bits,
                settings.get("level", -1),
                settings.get("memLevel", 8),
            )
        )
        self._core_extension = extension

    def _update_limit(self) -> None:
        max_size: Optional[int] = None
        if self.max_message_size is not None:
            if self.current_size is None:
                max_size = self.max_message_size
            else:
                max_size = self.max_message_size - self.current_size
        if self.max_fragment_size is not None:
            if max_size is None:
                max_size = self.max_fragment_size
            else:
                max_size = min(max_size, self.max_fragment_size)
        self._frame_limit = max_size
        self._core._sansio_set_max_frame_size(_UNLIMITED if max_size is None else max_size)

    def _on_core_failure(self, code: int, reason: str, close_payload: Optional[bytes]) -> str:
        """The core found an invalid frame: fail like websockets, with its exception."""
        exc: BaseException
        if reason.startswith("decompressed frame exceeds"):
            too_big = PayloadTooBig(None, self._frame_limit or 0)
            too_big.set_current_size(self.current_size)
            exc = too_big
        elif code == 1009:
            match = _TOO_BIG.search(reason)
            assert match is not None
            too_big = PayloadTooBig(int(match.group(1)), int(match.group(2)))
            too_big.set_current_size(self.current_size)
            exc = too_big
        elif code == 1007 and close_payload is not None:
            try:
                bytes(close_payload[2:]).decode()
            except UnicodeDecodeError as decode_error:
                exc = decode_error
            else:  # pragma: no cover - the core and the codec agree on UTF-8
                exc = ProtocolError(reason)
        elif reason == "invalid permessage-deflate data":
            exc = ProtocolError("decompression failed")
        elif reason.startswith("reserved bits"):
            pending, _, inflating = self._core._sansio_pending()
            continuation = bool(pending) and pending[0] & 0x4F == 0x40
            exc = ProtocolError(
                "RSV1 bit set in continuation frame"
                if continuation and inflating
                else "reserved bits must be 0"
            )
        else:
            text = reason
            for prefix, words in _REASONS:
                if reason.startswith(prefix):
                    text = words
                    break
            exc = ProtocolError(text)
        self._fail_with(exc)
        # The CLOSE (if any) is already written by fail(): the core sends nothing more.
        self._engine.stop()
        return reason

    def _fail_with(self, exc: BaseException) -> None:
        if isinstance(exc, ProtocolError):
            self.fail(CloseCode.PROTOCOL_ERROR, str(exc))
        elif isinstance(exc, UnicodeDecodeError):
            self.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
        elif isinstance(exc, PayloadTooBig):
            self.fail(CloseCode.MESSAGE_TOO_BIG, str(exc))
        else:  # pragma: no cover - defensive
            self.logger.error("parser failed", exc_info=exc)
            self.fail(CloseCode.INTERNAL_ERROR)
        self.parser_exc = exc

    def _on_frame(
        self, opcode: int, data: bytes, fin: bool, rsv1: bool, rsv2: bool, rsv3: bool
    ) -> None:
        """A frame from the core (already unmasked and checked at the header level)."""
        if self._discarding:
            return
        frame = Frame(Opcode(opcode), data, fin, rsv1, rsv2, rsv3)
        try:
            for extension in reversed(self.extensions):
                if extension is not self._core_extension:
                    frame = extension.decode(frame, max_size=self._frame_limit)
            frame.check()
            if self.debug:
                self.logger.debug("< %s", frame)
            self._recv_frame(frame)
        except PayloadTooBig as exc:
            exc.set_current_size(self.current_size)
            self._fail_with(exc)
        except (ProtocolError, UnicodeDecodeError) as exc:
            self._fail_with(exc)
        except Exception as exc:
            self.logger.error("parser failed", exc_info=True)
            self.fail(CloseCode.INTERNAL_ERROR)
            self.parser_exc = exc
        if self._discarding:
            # Nothing after a CLOSE or a failure is parsed.
            self._engine.stop()
            return
        self._update_limit()

    def _recv_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if self.current_size is not None:
                raise ProtocolError("expected a continuation frame")
            if not frame.fin:
                self.current_size = len(frame.data)
        elif opcode is Opcode.CONT:
            if self.current_size is None:
                raise ProtocolError("unexpected continuation frame")
            if frame.fin:
                self.current_size = None
            else:
                self.current_size += len(frame.data)
        elif opcode is Opcode.PING:
            self.send_frame(Frame(Opcode.PONG, frame.data))
        elif opcode is Opcode.CLOSE:
            self.close_rcvd = Close.parse(frame.data)
            if self._state is CLOSING:
                self.close_rcvd_then_sent = False
            if self.current_size is not None:
                raise ProtocolError("incomplete fragmented message")
            if self._state is OPEN:
                self.send_frame(Frame(Opcode.CLOSE, frame.data))
                self.close_sent = self.close_rcvd
                self.close_rcvd_then_sent = True
                self.state = CLOSING
            if self.side is SERVER:
                self.send_eof()
            self._discard()
        self.events.append(frame)

    def _discard(self) -> None:
        """From now on incoming data is ignored until EOF (websockets' ``discard()``)."""
        self._discarding = True
        if self._eof:
            self._discard_eof()

    def _discard_eof(self) -> None:
        if self.side is CLIENT and self._state is not CONNECTING:
            self.send_eof()
        self.state = CLOSED
        if self.side is SERVER:
            self.logger.info("connection closed")

    # -- output ---------------------------------------------------------------------------------

    def send_continuation(self, data: BytesLike, fin: bool) -> None:
        """Send a continuation frame.

        Raises:
            ProtocolError: no fragmented message is in progress.
            InvalidState: the connection is not OPEN.
        """
        if not self.expect_continuation_frame:
            raise ProtocolError("unexpected continuation frame")
        if self._state is not OPEN:
            raise InvalidState(f"connection is {self.state.name.lower()}")
        self.expect_continuation_frame = not fin
        self.send_frame(Frame(Opcode.CONT, data, fin))

    def send_text(self, data: BytesLike, fin: bool = True) -> None:
        """Send a text frame (``data`` is UTF-8 encoded text).

        Raises:
            ProtocolError: a fragmented message is in progress.
            InvalidState: the connection is not OPEN.
        """
        if self.expect_continuation_frame:
            raise ProtocolError("expected a continuation frame")
        if self._state is not OPEN:
            raise InvalidState(f"connection is {self.state.name.lower()}")
        self.expect_continuation_frame = not fin
        self.send_frame(Frame(Opcode.TEXT, data, fin))

    def send_binary(self, data: BytesLike, fin: bool = True) -> None:
        """Send a binary frame.

        Raises:
            ProtocolError: a fragmented message is in progress.
            InvalidState: the connection is not OPEN.
        """
        if self.expect_continuation_frame:
            raise ProtocolError("expected a continuation frame")
        if self._state is not OPEN:
            raise InvalidState(f"connection is {self.state.name.lower()}")
        self.expect_continuation_frame = not fin
        self.send_frame(Frame(Opcode.BINARY, data, fin))

    def send_close(self, code: Optional[int] = None, reason: str = "") -> None:
        """Send a close frame (no payload when ``code`` is ``None``).

        Raises:
            ProtocolError: invalid code, or a reason without a code.
            InvalidState: the connection is not OPEN.
        """
        if self._state is not OPEN:
            raise InvalidState(f"connection is {self.state.name.lower()}")
        if code is None:
            if reason != "":
                raise ProtocolError("cannot send a reason without a code")
            close = Close(CloseCode.NO_STATUS_RCVD, "")
            data = b""
        else:
            close = Close(code, reason)
            data = close.serialize()
        self.send_frame(Frame(Opcode.CLOSE, data))
        self.close_sent = close
        self.state = CLOSING

    def send_ping(self, data: BytesLike) -> None:
        """Send a ping frame. Raises InvalidState unless OPEN or CLOSING."""
        if self._state is not OPEN and self._state is not CLOSING:
            raise InvalidState(f"connection is {self.state.name.lower()}")
        self.send_frame(Frame(Opcode.PING, data))

    def send_pong(self, data: BytesLike) -> None:
        """Send a pong frame. Raises InvalidState unless OPEN or CLOSING."""
        if self._state is not OPEN and self._state is not CLOSING:
            raise InvalidState(f"connection is {self.state.name.lower()}")
        self.send_frame(Frame(Opcode.PONG, data))

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7): send a close frame unless the code
        is 1006, half-close on the server side, and ignore incoming data from now on.

        Raises:
            ProtocolError: the code may not be sent.
        """
        if self._state is OPEN:
            if code != CloseCode.ABNORMAL_CLOSURE:
                close = Close(code, reason)
                data = close.serialize()
                self.send_frame(Frame(Opcode.CLOSE, data))
                self.close_sent = close
                if self.close_rcvd is not None:
                    self.close_rcvd_then_sent = True
                self.state = CLOSING
        if self.side is SERVER and not self.eof_sent:
            self.send_eof()
        self._discard()

    def send_frame(self, frame: Frame) -> None:
        """Serialize ``frame`` with the core's engine into the data to send."""
        if self.debug:
            self.logger.debug("> %s", frame)
        frame.check()
        for extension in self.extensions:
            if extension is not self._core_extension:
                frame = extension.encode(frame)
        if self._engine is None:
            # Before the opening handshake completed (a fail() while CONNECTING never sends
            # a frame, so this is a misuse).
            raise InvalidState(f"connection is {self.state.name.lower()}")
        self._engine.send_frame(
            frame.opcode, frame.data, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3
        )

    def send_eof(self) -> None:
        """Queue the half-close sentinel :data:`SEND_EOF`."""
        assert not self.eof_sent
        self.eof_sent = True
        if self.debug:
            self.logger.debug("> EOF")
        self.writes.append(SEND_EOF)

    def events_received(self) -> list[Event]:
        """Return (and forget) the events received since the last call."""
        events, self.events = self.events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return (and forget) the bytes to write; ``b""`` means "half-close now"."""
        writes = self.writes[:]
        del self.writes[:]  # the core's in-memory transport holds this list
        return writes

    def close_expected(self) -> bool:
        """Whether the TCP connection is expected to close soon (then close it after a short
        timeout if the peer does not)."""
        if self._state is OPEN:
            return False
        if self._state is CLOSING:
            return True
        if self._state is CLOSED:
            return False
        return self.eof_sent


def _eof_message(pending: bytes, size: int, masked: bool) -> str:
    """websockets' EOFError text for a stream that ends ``size`` bytes into a frame."""
    if size == 0:
        return "unexpected end of stream"
    steps: list[int] = [2]
    if size >= 2:
        length = pending[1] & 0x7F
        ext = 2 if length == 126 else 8 if length == 127 else 0
        if ext:
            steps.append(ext)
        if masked:
            steps.append(4)
        if len(pending) >= 2 + ext:
            if ext == 2:
                length = int.from_bytes(pending[2:4], "big")
            elif ext == 8:
                length = int.from_bytes(pending[2:10], "big")
            steps.append(length)
    left = size
    for step in steps:
        if left < step:
            return f"stream ends after {left} bytes, expected {step} bytes"
        left -= step
    raise AssertionError("a complete frame was left unparsed")  # pragma: no cover


class _HandshakeReader:
    """Buffered input of the opening handshake, read by generator-based coroutines (the
    ``read_line`` / ``read_exact`` / ``read_to_eof`` that ``Request.parse`` and
    ``Response.parse`` take). Frames never go through it."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False

    def read_line(
        self, limit: int, too_long: Type[Exception] = RuntimeError
    ) -> Generator[None, None, bytearray]:
        scanned = 0
        while True:
            end = self.buffer.find(b"\n", scanned) + 1
            if end:
                break
            scanned = len(self.buffer)
            if scanned > limit:
                raise too_long(f"read {scanned} bytes, expected no more than {limit} bytes")
            if self.eof:
                raise EOFError(f"stream ends after {scanned} bytes, before end of line")
            yield
        if end > limit:
            raise too_long(f"read {end} bytes, expected no more than {limit} bytes")
        line = self.buffer[:end]
        del self.buffer[:end]
        return line

    def read_exact(self, size: int) -> Generator[None, None, bytearray]:
        while len(self.buffer) < size:
            if self.eof:
                raise EOFError(f"stream ends after {len(self.buffer)} bytes, expected {size} bytes")
            yield
        data = self.buffer[:size]
        del self.buffer[:size]
        return data

    def read_to_eof(
        self, limit: int, too_long: Type[Exception] = RuntimeError
    ) -> Generator[None, None, bytearray]:
        while not self.eof:
            if len(self.buffer) > limit:
                raise too_long(
                    f"read {len(self.buffer)} bytes, expected no more than {limit} bytes"
                )
            yield
        data = self.buffer[:]
        del self.buffer[:]
        return data

    def take(self) -> bytes:
        data = bytes(self.buffer)
        del self.buffer[:]
        return data
