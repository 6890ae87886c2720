"""``Connection``: websockets' asyncio connection API on the femtows engine, and ``broadcast``.

The per-message path (frames -> messages -> a waiting ``recv()``, and ``send()`` of one
message) is the Cython ``Engine`` in ``_engine.pyx``; this module adds everything that is not
per message: closing, keepalive, pings, fragmented sends, exceptions, attributes.

Attach API (for the code that opens the connection: ``client.py``, ``server.py``)
--------------------------------------------------------------------------------------
A ``Connection`` is itself the femtows core ``WSListener`` of its connection, so it can be
built before any transport exists (a server hands it to ``process_request`` during the
handshake) and then given to the core:

1. ``protocol = CoreProtocol(Side.CLIENT or Side.SERVER, max_size=..., logger=...)``.
2. ``connection = ClientConnection(protocol, ping_interval=..., ...)`` (or the user's
   ``create_connection``). Its ``state`` is CONNECTING; ``request``/``response`` may be set
   by the owner at any time (else they are filled from the core's handshake objects).
3. Create the core ``WSProtocol`` (or call ``ws_connect``) with ``**connection.core_options()``
   (``max_frame_size``, ``close_timeout=None``: the connection runs its own close timer,
   auto-ping off: keepalive is the connection's) and make the core's listener factory return
   ``connection`` itself.
4. The core calls ``on_ws_connected``: the connection becomes OPEN, applies ``write_limit`` and
   ``max_queue`` to the transport and starts keepalive. ``protocol.subprotocol`` should be set
   before (the owner negotiates it).
5. If the handshake fails before step 4, call ``connection.abort_handshake()`` so that
   waiters (``wait_closed``) finish; the connection goes to CLOSED.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import random
import struct
import sys
import time
import traceback
import uuid
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Mapping
from types import TracebackType
from typing import Any, Dict, List, Optional, Tuple, Type, Union, cast

from femtows._core.core import WSMsgType, WSTransport
from femtows.websockets.asyncio._engine import Engine, MessageIterator, _StreamEnded
from femtows.websockets.datastructures import Headers
from femtows.websockets.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    PayloadTooBig,
    ProtocolError,
)
from femtows.websockets.extensions.base import Extension
from femtows.websockets.frames import Close, CloseCode, Frame, Opcode
from femtows.websockets.http11 import Request, Response
from femtows.websockets.protocol import Side, State
from femtows.websockets.typing import Data, LoggerLike, Subprotocol

__all__ = ["Connection", "CoreProtocol", "broadcast"]

_BytesLike = (bytes, bytearray, memoryview)
_OK_CLOSE_CODES = frozenset({1000, 1001, 1005})
_UTF8Decoder = codecs.getincrementaldecoder("utf-8")
# No frame is bigger than this in any case: the core needs a finite per-frame limit.
_NO_LIMIT = 2**62


class CoreProtocol:
    """What the connection knows about its protocol side, as ``Connection.protocol``.

    websockets exposes its Sans-I/O ``ClientProtocol``/``ServerProtocol`` there; femtows runs
    the protocol in its Cython core, so this object carries the same commonly used attributes
    (``side``, ``id``, ``logger``, ``debug``, ``state``, ``subprotocol``, ``extensions``,
    ``close_code``,
    ``close_reason``, ``close_exc``, ``max_message_size``, ``max_fragment_size``).

    Args:
        side: ``Side.CLIENT`` or ``Side.SERVER``.
        max_size: ``int``, ``None`` (no limit) or ``(max_message, max_fragment)``.
        logger: Logger or adapter; default ``websockets.client`` / ``websockets.server``.
    """

    def __init__(
        self,
        side: Side,
        *,
        max_size: Union[Optional[int], Tuple[Optional[int], Optional[int]]] = 2**20,
        logger: Optional[LoggerLike] = None,
    ) -> None:
        self.side = side
        self.id: uuid.UUID = uuid.uuid4()
        if logger is None:
            logger = logging.getLogger(
                "websockets.client" if side is Side.CLIENT else "websockets.server"
            )
        self.logger: LoggerLike = logger
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self.max_message_size: Optional[int]
        self.max_fragment_size: Optional[int]
        if max_size is None or isinstance(max_size, int):
            self.max_message_size, self.max_fragment_size = max_size, None
        else:
            self.max_message_size, self.max_fragment_size = max_size
        self.subprotocol: Optional[Subprotocol] = None
        #: Negotiated extensions: ``[PerMessageDeflate(...)]`` when permessage-deflate is on
        #: (the core runs it; the object describes the agreed parameters).
        self.extensions: List[Extension] = []
        self._connection: Optional[weakref.ReferenceType[Connection]] = None

    def _conn(self) -> Connection:
        connection = self._connection() if self._connection is not None else None
        if connection is None:
            raise RuntimeError("this protocol is not attached to a connection")
        return connection

    @property
    def state(self) -> State:
        """The connection's state."""
        return self._conn().state

    @property
    def close_code(self) -> Optional[int]:
        """See ``Connection.close_code``."""
        return self._conn().close_code

    @property
    def close_reason(self) -> Optional[str]:
        """See ``Connection.close_reason``."""
        return self._conn().close_reason

    @property
    def close_exc(self) -> ConnectionClosed:
        """The exception to raise on a closed connection (the state must be CLOSED)."""
        return self._conn()._close_exc()


class Connection(Engine):
    """A WebSocket connection: websockets' ``websockets.asyncio.connection.Connection``.

    Use ``ClientConnection`` (from ``connect``) or ``ServerConnection`` (handed to a server's
    handler); the attach API in the module docstring explains how they are wired.

    Args:
        protocol: A ``CoreProtocol``.
        ping_interval: Seconds between keepalive pings; None disables keepalive.
        ping_timeout: Seconds to wait for a keepalive pong before failing the connection with
            1011 "keepalive ping timeout"; None waits forever.
        close_timeout: Seconds to wait for the closing handshake and the TCP close before
            aborting the connection; None waits forever.
        max_queue: High-water mark of the receive queue, in frames (``int``), or
            ``(high, low)``; None disables flow control. Above it the transport stops reading.
        write_limit: High-water mark of the write buffer in bytes, or ``(high, low)``;
            ``send()`` waits while the buffer is above it.
    """

    def __init__(
        self,
        protocol: CoreProtocol,
        *,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        max_queue: Union[Optional[int], Tuple[Optional[int], Optional[int]]] = 16,
        write_limit: Union[int, Tuple[int, Optional[int]]] = 2**15,
    ) -> None:
        self.protocol = protocol
        protocol._connection = weakref.ref(self)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        high: Optional[int]
        low: Optional[int]
        if max_queue is None or isinstance(max_queue, int):
            high, low = max_queue, None
        else:
            high, low = max_queue
        if high is not None and low is None:
            low = high // 4
        if high is None and low is not None:
            high = low * 4
        if high is not None and low is not None:
            if low < 0:
                raise ValueError("low must be positive or equal to zero")
            if high < low:
                raise ValueError("high must be greater than or equal to low")
        self.max_queue_high, self.max_queue_low = high, low
        self._q_high = -1 if high is None else high
        self._q_low = -1 if low is None else low
        self.write_limit_high: int
        self.write_limit_low: Optional[int]
        if isinstance(write_limit, int):
            self.write_limit_high, self.write_limit_low = write_limit, None
        else:
            self.write_limit_high, self.write_limit_low = write_limit
        self._max_message = (
            -1 if protocol.max_message_size is None else protocol.max_message_size
        )
        self._max_fragment = (
            -1 if protocol.max_fragment_size is None else protocol.max_fragment_size
        )
        self._is_client = protocol.side is Side.CLIENT

        protocol.logger = logging.LoggerAdapter(
            protocol.logger, {"websocket": weakref.proxy(self)}
        )
        self.id: uuid.UUID = protocol.id
        self.logger: LoggerLike = protocol.logger
        self.debug: bool = protocol.debug
        self._debug = self.debug
        self.request: Optional[Request] = None
        self.response: Optional[Response] = None
        self.loop = asyncio.get_running_loop()
        self._loop = self.loop
        self.latency: float = 0.0
        self.keepalive_task: Optional[asyncio.Task[None]] = None
        self.connection_exc: Optional[BaseException] = None
        self.connection_lost_waiter: asyncio.Future[None] = self.loop.create_future()
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self._parser_exc: Optional[BaseException] = None
        self._ignore_rcvd = False
        if self.debug:
            self.logger.debug("= connection is CONNECTING")

    # -- attach API --------------------------------------------------------------------------

    def core_options(self) -> Dict[str, Any]:
        """Keyword arguments for the core ``WSProtocol`` / ``ws_connect`` of this connection."""
        limits = [
            size for size in (self.protocol.max_message_size, self.protocol.max_fragment_size)
            if size is not None
        ]
        return {
            "max_frame_size": min(limits) if limits else _NO_LIMIT,
            "close_timeout": None,
            "enable_auto_ping": False,
            "enable_auto_pong": True,
            # The engine validates TEXT while decoding it (once), with websockets' reasons.
            "validate_utf8": False,
            "disconnect_on_exception": True,
        }

    def abort_handshake(self) -> None:
        """The opening handshake failed: the connection goes to CLOSED without opening."""
        if self._state == 3:
            return
        self._state = 3
        self._stream_ended = True
        if not self.connection_lost_waiter.done():
            self.connection_lost_waiter.set_result(None)

    # -- public attributes -------------------------------------------------------------------

    @property
    def transport(self) -> Optional[asyncio.Transport]:
        """The asyncio transport (None before the connection is attached)."""
        wst: Optional[WSTransport] = self._wst
        return None if wst is None else wst.underlying_transport

    @property
    def local_address(self) -> Any:
        """Local address of the connection (``socket.getsockname()``)."""
        transport = self.transport
        return None if transport is None else transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """Remote address of the connection (``socket.getpeername()``)."""
        transport = self.transport
        return None if transport is None else transport.get_extra_info("peername")

    @property
    def state(self) -> State:
        """``State.CONNECTING``, ``OPEN``, ``CLOSING`` or ``CLOSED``."""
        state = self._state
        if state == 1 and self._wst.close_handshake is not None:
            return State.CLOSING
        return State(state)

    @property
    def subprotocol(self) -> Optional[Subprotocol]:
        """Subprotocol negotiated during the opening handshake, or None."""
        return self.protocol.subprotocol

    @property
    def close_code(self) -> Optional[int]:
        """None until CLOSED; then the received close code, 1005 for an empty close frame,
        1006 when no close frame arrived."""
        if self._state != 3:
            return None
        rcvd = self._close_rcvd()
        return CloseCode.ABNORMAL_CLOSURE if rcvd is None else rcvd.code

    @property
    def close_reason(self) -> Optional[str]:
        """None until CLOSED; then the received close reason ("" when none arrived)."""
        if self._state != 3:
            return None
        rcvd = self._close_rcvd()
        return "" if rcvd is None else rcvd.reason

    # -- public methods ----------------------------------------------------------------------

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.close(CloseCode.INTERNAL_ERROR)

    def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate over incoming messages; ends on ConnectionClosedOK, raises
        ConnectionClosedError."""
        return MessageIterator(self)

    async def recv_streaming(self, decode: Optional[bool] = None) -> AsyncIterator[Data]:
        """Receive the next message fragment by fragment (see websockets' docs).

        The iterator must be consumed fully; otherwise later ``recv`` / ``recv_streaming``
        calls raise ConcurrencyError.
        """
        if self._recv_busy:
            self._raise_concurrent("recv_streaming")
        self._recv_busy = True
        try:
            entry = await self._get_frame()
        except _StreamEnded:
            self._recv_busy = False
            await self._raise_closed()
            return
        except BaseException:
            self._recv_busy = False
            raise
        op, fin, data = entry
        if decode is None:
            decode = op == 1
        decoder = _UTF8Decoder() if decode else None
        try:
            while True:
                if decoder is not None:
                    if type(data) is str:
                        yield data
                    else:
                        yield decoder.decode(data, fin)
                elif type(data) is str:
                    yield data.encode()
                else:
                    yield data
                if fin:
                    break
                try:
                    op, fin, data = await self._get_frame()
                except _StreamEnded:
                    await self._raise_closed()
        except UnicodeDecodeError as exc:
            await self._recv_failed(exc)
        self._recv_busy = False

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Perform the closing handshake and wait for the TCP connection to close (at most
        ``close_timeout``, then abort). Idempotent."""
        if self._is_open():
            if self._send_in_progress is not None:
                self._fail(CloseCode.INTERNAL_ERROR, "close during fragmented message")
            else:
                payload = Close(code, reason).serialize()
                if len(payload) > 125:
                    raise ProtocolError("control frame too long")
                if self.debug:
                    self._log_frame(">", WSMsgType.CLOSE, payload, True)
                self._wst.send(WSMsgType.CLOSE, payload)
                self._arm_close_timer()
        if self._state == 0:
            return
        try:
            await self._raise_closed()
        except ConnectionClosed:
            pass

    async def wait_closed(self) -> None:
        """Wait until the closing handshake is done and the TCP connection is closed."""
        await asyncio.shield(self.connection_lost_waiter)

    async def ping(self, data: Union[str, bytes, bytearray, memoryview, None] = None) -> (
        Awaitable[float]
    ):
        """Send a ping; return a future resolved with the latency when the pong arrives.

        Raises:
            ConnectionClosed: the connection is closed.
            ConcurrencyError: a ping with the same payload is still waiting for its pong.
        """
        if isinstance(data, _BytesLike):
            data = bytes(data)
        elif isinstance(data, str):
            data = data.encode()
        elif data is not None:
            raise TypeError("data must be str or bytes-like")
        if not self._is_open():
            await self._raise_closed()
        if data in self._pending_pings:
            raise ConcurrencyError("already waiting for a pong with the same data")
        if data is not None and len(data) > 125:
            raise ProtocolError("control frame too long")
        while data is None or data in self._pending_pings:
            data = struct.pack("!I", random.getrandbits(32))
        pong_received: asyncio.Future[float] = self.loop.create_future()
        # time.monotonic(), not loop.time(): uvloop's clock has a 1 ms resolution, which made
        # every loopback latency 0.0.
        self._pending_pings[data] = (pong_received, time.monotonic())
        if self.debug:
            self._log_frame(">", WSMsgType.PING, data, True)
        self._wst.send_ping(data)
        return pong_received

    async def pong(self, data: Union[str, bytes, bytearray, memoryview] = b"") -> None:
        """Send an unsolicited pong.

        Raises:
            ConnectionClosed: the connection is closed.
        """
        if isinstance(data, _BytesLike):
            data = bytes(data)
        elif isinstance(data, str):
            data = data.encode()
        else:
            raise TypeError("data must be str or bytes-like")
        if not self._is_open():
            await self._raise_closed()
        if len(data) > 125:
            raise ProtocolError("control frame too long")
        if self.debug:
            self._log_frame(">", WSMsgType.PONG, data, True)
        self._wst.send_pong(data)

    # -- sending (general path) --------------------------------------------------------------

    async def _send_slow(self, message: Any, text: Optional[bool]) -> None:
        while self._send_in_progress is not None:
            await asyncio.shield(self._send_in_progress)
        if isinstance(message, str):
            await self._send_frame(
                WSMsgType.BINARY if text is False else WSMsgType.TEXT, message, True
            )
        elif isinstance(message, _BytesLike):
            await self._send_frame(
                WSMsgType.TEXT if text is True else WSMsgType.BINARY, message, True
            )
        elif isinstance(message, Mapping):
            raise TypeError("data is a dict-like object")
        elif isinstance(message, Iterable):
            await self._send_fragments(message, text)
        elif isinstance(message, AsyncIterable):
            await self._send_async_fragments(message, text)
        else:
            raise TypeError("data must be str, bytes, iterable, or async iterable")

    async def _send_frame(self, op: WSMsgType, data: Any, fin: bool) -> None:
        if not self._is_open():
            await self._raise_closed()
        if isinstance(data, memoryview) and not (data.c_contiguous and data.itemsize == 1):
            data = data.tobytes()
        if self.debug:
            self._log_frame(">", op, data, fin)
        self._wst.send(op, data, fin)
        if self._write_paused:
            await self._drain()

    def _start_fragments(self) -> None:
        self._send_in_progress = self.loop.create_future()

    def _end_fragments(self) -> None:
        waiter = self._send_in_progress
        self._send_in_progress = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _fail_fragments(self) -> None:
        # Half-way through a fragmented message: the connection is unusable. Fail it, wait
        # for the closure, and let the caller re-raise the original error.
        if self._is_open():
            self._fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
            await asyncio.shield(self.connection_lost_waiter)

    async def _send_fragments(self, message: Iterable[Any], text: Optional[bool]) -> None:
        chunks = iter(message)
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        self._start_fragments()
        try:
            if isinstance(chunk, str):
                op = WSMsgType.BINARY if text is False else WSMsgType.TEXT
                encode = True
            elif isinstance(chunk, _BytesLike):
                op = WSMsgType.TEXT if text is True else WSMsgType.BINARY
                encode = False
            else:
                raise TypeError("iterable must contain bytes or str")
            await self._send_frame(op, chunk, False)
            for chunk in chunks:
                if isinstance(chunk, str) if encode else isinstance(chunk, _BytesLike):
                    await self._send_frame(WSMsgType.CONTINUATION, chunk, False)
                else:
                    raise TypeError("iterable must contain uniform types")
            await self._send_frame(WSMsgType.CONTINUATION, b"", True)
        except Exception:
            await self._fail_fragments()
            raise
        finally:
            self._end_fragments()

    async def _send_async_fragments(
        self, message: AsyncIterable[Any], text: Optional[bool]
    ) -> None:
        achunks = message.__aiter__()
        try:
            chunk = await achunks.__anext__()
        except StopAsyncIteration:
            return
        self._start_fragments()
        try:
            if isinstance(chunk, str):
                op = WSMsgType.BINARY if text is False else WSMsgType.TEXT
                encode = True
            elif isinstance(chunk, _BytesLike):
                op = WSMsgType.TEXT if text is True else WSMsgType.BINARY
                encode = False
            else:
                raise TypeError("async iterable must contain bytes or str")
            await self._send_frame(op, chunk, False)
            async for chunk in achunks:
                if isinstance(chunk, str) if encode else isinstance(chunk, _BytesLike):
                    await self._send_frame(WSMsgType.CONTINUATION, chunk, False)
                else:
                    raise TypeError("async iterable must contain uniform types")
            await self._send_frame(WSMsgType.CONTINUATION, b"", True)
        except Exception:
            await self._fail_fragments()
            raise
        finally:
            self._end_fragments()

    # -- closing -----------------------------------------------------------------------------

    def _is_open(self) -> bool:
        return self._state == 1 and self._wst.close_handshake is None

    def _close_rcvd(self) -> Optional[Close]:
        hs = self._wst.close_handshake if self._wst is not None else None
        if hs is None or hs.recv is None or self._ignore_rcvd:
            return None
        return Close(int(hs.recv.code) or CloseCode.NO_STATUS_RCVD, hs.recv.reason)

    def _close_sent(self) -> Optional[Close]:
        hs = self._wst.close_handshake if self._wst is not None else None
        if hs is None or hs.sent is None:
            return None
        return Close(int(hs.sent.code) or CloseCode.NO_STATUS_RCVD, hs.sent.reason)

    def _close_exc(self) -> ConnectionClosed:
        rcvd = self._close_rcvd()
        sent = self._close_sent()
        rcvd_then_sent: Optional[bool] = None
        hs = self._wst.close_handshake
        if rcvd is not None and sent is not None and hs is not None:
            rcvd_then_sent = bool(hs.recv_then_sent)
        exc_type: Type[ConnectionClosed] = ConnectionClosedError
        if (
            rcvd is not None and sent is not None
            and rcvd.code in _OK_CLOSE_CODES and sent.code in _OK_CLOSE_CODES
        ):
            exc_type = ConnectionClosedOK
        exc = exc_type(rcvd, sent, rcvd_then_sent)
        cause = self.connection_exc if self.connection_exc is not None else self._parser_exc
        exc.__cause__ = cause
        return exc

    def _set_connection_exc(self, exc: BaseException) -> None:
        if self.connection_exc is None:
            self.connection_exc = exc

    async def _raise_closed(self) -> None:
        """Wait until the connection is CLOSED, then raise its ConnectionClosed exception."""
        if self._state == 1:
            self._arm_close_timer()
        await asyncio.shield(self.connection_lost_waiter)
        raise self._close_exc()

    def _arm_close_timer(self) -> None:
        if (self._close_timer is None and self.close_timeout is not None
                and not self._stream_ended):
            self._close_timer = self.loop.call_later(self.close_timeout, self._on_close_timeout)

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        if self._stream_ended:
            return
        if self.debug:
            self.logger.debug("- timed out waiting for TCP close")
        self._set_connection_exc(TimeoutError("timed out while closing connection"))
        self._wst.disconnect(False)

    def _fail(self, code: int, reason: str = "") -> None:
        """Fail the connection: send a close frame with ``code`` unless one was sent, ignore
        what arrives afterwards; a server then closes TCP, a client waits for the server to."""
        self._discard = True
        wst: WSTransport = self._wst
        if wst is None or self._stream_ended:
            return
        # As websockets: after failing, what arrives is discarded, the peer's close frame too.
        hs = wst.close_handshake
        if hs is None or hs.recv is None:
            self._ignore_rcvd = True
        if not wst.is_close_frame_sent and code != CloseCode.ABNORMAL_CLOSURE:
            if self.debug:
                self._log_frame(">", WSMsgType.CLOSE, Close(code, reason).serialize(), True)
            wst.send_close(code, reason.encode("utf-8")[:123])
        if not self._is_client:
            wst.disconnect(True)
        self._arm_close_timer()

    # -- hooks called by the engine ----------------------------------------------------------

    def _connection_open(self) -> None:
        wst: WSTransport = self._wst
        if self.request is None and wst.request is not None:
            self.request = _request_from_core(wst.request)
        if self.response is None and wst.response is not None:
            self.response = _response_from_core(wst.response)
        transport = wst.underlying_transport
        try:
            transport.set_write_buffer_limits(self.write_limit_high, self.write_limit_low)
        except (AttributeError, NotImplementedError):  # pragma: no cover - exotic transports
            pass
        if self.debug:
            self.logger.debug("= connection is OPEN")
        self.start_keepalive()

    def _connection_lost(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._parser_exc is None:
            sent = self._close_sent()
            hs = self._wst.close_handshake if self._wst is not None else None
            if (sent is not None and sent.code == CloseCode.PROTOCOL_ERROR
                    and hs is not None and not hs.recv_then_sent):
                # The core failed the connection on a protocol violation by the peer.
                self._parser_exc = ProtocolError(sent.reason)
            elif self._close_rcvd() is None:
                self._parser_exc = EOFError("unexpected end of stream")
        if self.debug:
            self.logger.debug("= connection is CLOSED")
        if self._pending_pings:
            exc = self._close_exc()
            for pong_received, _ in self._pending_pings.values():
                if not pong_received.done():
                    pong_received.set_exception(exc)
                pong_received.cancel()
            self._pending_pings.clear()
        if self.keepalive_task is not None:
            self.keepalive_task.cancel()
            self.keepalive_task = None
        if not self.connection_lost_waiter.done():
            self.connection_lost_waiter.set_result(None)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _on_close_frame(self, frame: Any) -> None:
        wst: WSTransport = self._wst
        if not wst.is_close_frame_sent and not self._discard:
            # Echo the close frame as received. (websockets 17.4 answers 1002 "incomplete
            # fragmented message" when it arrives inside a fragmented message; RFC 6455 allows
            # control frames there, and Autobahn 7.1.5 requires the echo, so femtows echoes.)
            payload = frame.get_payload_as_bytes()
            if self.debug:
                self._log_frame(">", WSMsgType.CLOSE, payload, True)
            wst.send(WSMsgType.CLOSE, payload)
        if self._is_client:
            self._arm_close_timer()

    def _acknowledge_pings(self, data: bytes) -> None:
        if data not in self._pending_pings:
            return
        pong_timestamp = time.monotonic()
        acknowledged = []
        for ping_id, (pong_received, ping_timestamp) in self._pending_pings.items():
            acknowledged.append(ping_id)
            latency = pong_timestamp - ping_timestamp
            if not pong_received.done():
                pong_received.set_result(latency)
            if ping_id == data:
                self.latency = latency
                break
        for ping_id in acknowledged:
            del self._pending_pings[ping_id]

    def _fail_too_big(self, size: int, current: int, limit: int) -> None:
        wst: Optional[WSTransport] = self._wst
        # With permessage-deflate, websockets finds the excess while inflating the frame and
        # cannot tell its size (the core already inflated it: the text says the same).
        compressed = wst is not None and wst.compression is not None
        exc = PayloadTooBig(None if compressed else size, limit - current)
        exc.set_current_size(current)
        self._parser_exc = exc
        self._fail(CloseCode.MESSAGE_TOO_BIG, str(exc))

    def _log_frame(self, direction: str, opcode: int, data: Any, fin: bool) -> None:
        """DEBUG line for a frame, as websockets writes it (``< TEXT 'hi' [2 bytes]``)."""
        if isinstance(data, str):
            data = data.encode()
        self.logger.debug("%s %s", direction, Frame(Opcode(opcode), bytes(data), fin))
        if direction == ">" and opcode == WSMsgType.CLOSE:
            self.logger.debug("= connection is CLOSING")

    def _fail_utf8(self, exc: UnicodeDecodeError, position: int) -> None:
        self._set_connection_exc(exc)
        self._fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {position}")

    def _raise_concurrent(self, method: str) -> None:
        raise ConcurrencyError(
            f"cannot call {method} while another coroutine "
            f"is already running recv or recv_streaming"
        )

    async def _recv_failed(self, exc: BaseException) -> Any:
        self._set_connection_exc(exc)
        if isinstance(exc, UnicodeDecodeError):
            self._fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
        else:
            self._fail(CloseCode.MESSAGE_TOO_BIG, "too many fragments")
        await self._raise_closed()

    # -- keepalive ---------------------------------------------------------------------------

    def start_keepalive(self) -> None:
        """Start the keepalive task, unless ``ping_interval`` is None."""
        if self.ping_interval is not None and self.keepalive_task is None:
            self.keepalive_task = self.loop.create_task(self.keepalive())

    async def keepalive(self) -> None:
        """Ping every ``ping_interval`` seconds; fail with 1011 if a pong is late."""
        assert self.ping_interval is not None
        latency = 0.0
        try:
            while True:
                await asyncio.sleep(self.ping_interval - latency)
                pong_received = await self.ping()
                if self.debug:
                    self.logger.debug("% sent keepalive ping")
                if self.ping_timeout is not None:
                    try:
                        latency = await asyncio.wait_for(
                            asyncio.shield(pong_received), self.ping_timeout
                        )
                    except asyncio.TimeoutError:
                        if self.debug:
                            self.logger.debug("- timed out waiting for keepalive pong")
                        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                        await self._raise_closed()
                    if self.debug:
                        self.logger.debug("% received keepalive pong")
        except ConnectionClosed:
            pass
        except Exception:
            self.logger.error("keepalive ping failed", exc_info=True)


def _request_from_core(request: Any) -> Request:
    headers = Headers(list(request.headers.items()))
    return Request(request.path.decode("ascii", "surrogateescape"), headers)


def _response_from_core(response: Any) -> Response:
    status = int(response.status)
    phrase = getattr(response, "reason", None)
    if phrase is None:
        try:
            import http

            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
    headers = Headers(list(response.headers.items()))
    return Response(status, phrase, headers, response.body or b"")


def broadcast(
    connections: Iterable[Connection],
    message: Union[str, bytes, bytearray, memoryview],
    *,
    text: Optional[bool] = None,
    raise_exceptions: bool = False,
) -> None:
    """Send ``message`` to every open connection in ``connections``, without backpressure.

    Connections that are not OPEN are skipped; so are connections in the middle of a
    fragmented send (a WARNING, or a ConcurrencyError with ``raise_exceptions``). Write
    failures are logged as warnings, or collected and raised together as
    ``ExceptionGroup("skipped broadcast", ...)`` when ``raise_exceptions`` is True.

    Raises:
        TypeError: ``message`` is not str or bytes-like.
    """
    if isinstance(message, str):
        op = WSMsgType.BINARY if text is False else WSMsgType.TEXT
        data: Any = message.encode()
    elif isinstance(message, _BytesLike):
        op = WSMsgType.TEXT if text is True else WSMsgType.BINARY
        data = message
        if isinstance(data, memoryview) and not (data.c_contiguous and data.itemsize == 1):
            data = data.tobytes()
    else:
        raise TypeError("data must be str or bytes")
    exceptions: List[Exception] = []
    for connection in connections:
        if not connection._is_open():
            continue
        if connection._send_in_progress is not None:
            if raise_exceptions:
                exceptions.append(ConcurrencyError("sending a fragmented message"))
            else:
                connection.logger.warning("skipped broadcast: sending a fragmented message")
            continue
        try:
            connection._wst.send(op, data)
        except Exception as write_exception:
            if raise_exceptions:
                exception = RuntimeError("failed to write message")
                exception.__cause__ = write_exception
                exceptions.append(exception)
            else:
                connection.logger.warning(
                    "skipped broadcast: failed to write message: %s",
                    traceback.format_exception_only(
                        type(write_exception), write_exception
                    )[0].strip(),
                )
    if raise_exceptions and exceptions:
        raise _exception_group()("skipped broadcast", exceptions)


def _exception_group() -> Any:
    if sys.version_info >= (3, 11):
        return ExceptionGroup  # noqa: F821 - builtin since 3.11
    import importlib  # pragma: no cover - Python < 3.11: the exceptiongroup backport

    return importlib.import_module("exceptiongroup").ExceptionGroup  # pragma: no cover


# websockets documents broadcast in its server module.
broadcast.__module__ = "femtows.websockets.asyncio.server"

_ = cast  # keep typing import used by stubs
