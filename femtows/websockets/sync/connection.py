"""``Connection``: websockets' threading-API connection (``websockets.sync.connection``).

A sync ``Connection`` fronts an asyncio ``femtows.websockets.asyncio`` connection that lives
on the process-wide background loop (``_loop.py``): the Cython engine, the closing
handshake, keepalive and close timers all run there, so they keep working while a user
thread is blocked in ``recv``. The per-message paths avoid a coroutine round trip:

- ``recv``: the user thread takes a queued frame from the engine, or installs a
  ``SyncWaiter`` that the engine's ``on_ws_frame`` completes with the whole message; the
  thread waits on a raw lock that the loop thread releases with the GIL dropped. On a
  connection that sends directly (below), a thread waiting in ``recv`` is then handed the
  socket (``Engine._ext_grant``) and from the next ``recv`` on polls and parses it itself
  (``Engine._ext_recv``): no loop thread between the kernel and the caller. Anything but a
  whole TEXT/BINARY frame, EOF, an error, ``close()`` / ``ping()`` / ``wait_closed()``, or
  the loop's check finding no thread in ``recv`` (every ``EXT_CHECK_INTERVAL``) gives the
  socket back to the loop, which handles what is left as if it had read it.
- ``send`` of ``str``/bytes-like on a plain TCP connection without compression: the user
  thread writes the frame to the socket itself (``WSTransport._send_from_thread``, one
  non-blocking ``sendmsg``), as websockets' ``sendall`` does, when nothing else can be in
  the way (see "Direct sends" below). Otherwise the frame is queued to the loop with
  ``call_soon_threadsafe`` and ``send`` returns; once more than ``SEND_BUFFER`` bytes were
  queued without a check, or the transport is over its write limit, ``send`` waits for the
  loop to flush (backpressure, like a blocking ``sendall``).

Direct sends: why two threads writing one socket cannot corrupt the byte stream.

1. Mutual exclusion. The first frame ``send`` queues to the loop turns on
   ``_send_holds_gil`` on the loop's thread; from then on the core's loop-thread writes keep
   the GIL across ``sendmsg`` instead of releasing it. The direct send runs with the GIL from
   its checks to the end of its ``sendmsg`` and calls no Python code in between (so the GIL
   cannot be handed over). The two threads' ``sendmsg`` calls therefore never overlap, and
   the direct send builds its frame in the user thread's own scratch buffer (client) or on
   the stack plus the caller's payload (server), never in the connection's ``_wbuf``.
2. Nothing queued. The core sets ``_tx_queued`` before every hand-over to the transport
   (whose buffered bytes libuv / aiofastnet may write at any time, without the GIL) and
   clears it only on the loop's thread, with the GIL held, right before a direct ``sendmsg``
   that it makes after seeing the transport's buffer empty. A direct send needs
   ``_tx_queued`` clear, so it never overtakes bytes the transport holds. Large client
   frames sent in chunks set it for their whole duration.
3. Partial writes. If the kernel takes only part of a direct frame, the rest is kept in the
   core (``_pending``) and ``_tx_queued`` is set, both before the GIL can be released, and
   a ``call_soon_threadsafe(_flush_direct_rest)`` is queued. The user thread never hands
   anything to the transport (not thread-safe). Every loop-thread write (a pong, a ping,
   close) first gives ``_pending`` to the transport, and re-checks it with the GIL held right
   before its own ``sendmsg``; so the rest always goes out first. Later ``send`` calls take
   the loop path (FIFO behind the flush) until the loop sees the buffer empty again; the
   rest counts toward ``SEND_BUFFER`` (backpressure).
4. Ordering with the loop path. ``send`` counts frames it queued to the loop and goes direct
   only when the loop has written all of them; fragmented sends, pings, pongs and close are
   waited for by the calling thread, and ``_send_lock`` serialises senders.
5. A closed or closing connection: the direct send refuses (and ``send`` takes the loop
   path, today's behaviour) once the close frame was sent or the transport was closed. The
   fd is never used after it was closed: asyncio and aiofastnet close it after
   ``connection_lost`` (checked with the GIL held), and uvloop's thread-safe ``is_closing``
   is asked right before the checks. TLS, Unix sockets, compression, debug logging, other
   transports and Python builds without a GIL always use the loop path.

Everything else (close, ping, pong, fragmented sends, errors) runs as a coroutine of the
asyncio connection, waited for by the calling thread.
"""

from __future__ import annotations

import asyncio
import codecs
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Optional, Type, Union

from femtows._core.core import WSMsgType
from femtows.websockets.asyncio._engine import (
    EXT_GRANTED,
    EXT_READING,
    EXT_TIMEOUT,
    MAX_FRAGMENTS,
    SyncWaiter,
)
from femtows.websockets.asyncio.connection import Connection as AsyncConnection
from femtows.websockets.asyncio.connection import broadcast as _async_broadcast
from femtows.websockets.exceptions import ConcurrencyError, ConnectionClosedOK, TooManyFragments
from femtows.websockets.frames import CloseCode
from femtows.websockets.http11 import Request, Response
from femtows.websockets.protocol import State
from femtows.websockets.sync import _loop
from femtows.websockets.typing import Data, LoggerLike, Subprotocol

__all__ = ["Connection", "broadcast"]

#: Bytes ``send`` may queue to the loop before it waits for them to be written.
SEND_BUFFER = 2**20
#: Whether a thread waiting in ``recv`` may read the socket itself (see ``_next``);
#: False keeps every read on the loop's thread (tests compare both).
EXT_READS = True

_BytesLike = (bytes, bytearray, memoryview)
_UTF8Decoder = codecs.getincrementaldecoder("utf-8")
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_monotonic = time.monotonic
# Direct sends rely on the GIL (free-threaded builds: the loop path only).
_GIL = getattr(sys, "_is_gil_enabled", lambda: True)


def _send_one(sync: Connection, op: WSMsgType, data: Any) -> None:
    # On the loop: one whole message queued by Connection.send. If the connection closed in
    # between, the message is dropped, as bytes written into a closing socket would be.
    conn = sync._conn
    try:
        if conn._state == 1 and conn._wst.close_handshake is None:
            if conn._debug:
                conn._log_frame(">", op, data, True)
            if sync._direct is None:
                sync._init_direct()
            conn._wst.send(op, data)
    finally:
        sync._done += 1


def _closing_probe(transport: Any) -> Any:
    """What ``_send_from_thread`` needs for this transport, or False: no direct sends."""
    module = type(transport).__module__
    if module.startswith("uvloop"):
        return transport.is_closing  # thread-safe; uvloop closes the fd before connection_lost
    if module.startswith("aiofastnet.") or module == "asyncio.selector_events":
        return None  # the fd is closed after connection_lost, which the core checks
    return False


def _convert(op: int, data: Any, decode: Optional[bool]) -> Data:
    want_text = (op == 1) if decode is None else decode
    if want_text:
        return data if type(data) is str else bytes(data).decode()
    return data.encode() if type(data) is str else data


class Connection:
    """A WebSocket connection of the threading API: websockets' ``sync.connection.Connection``.

    Built by ``connect`` / ``serve`` around the asyncio connection ``connection``; use
    ``ClientConnection`` or ``ServerConnection``.

    Attributes:
        id: Unique ``uuid.UUID`` of the connection.
        logger: Logger of the connection.
        protocol: Protocol-side state (``side``, ``state``, ``subprotocol``, ...).
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection
        self._loop = connection.loop
        connection._sync = self  # type: ignore[attr-defined]
        self.protocol = connection.protocol
        self.id = connection.id
        self.logger: LoggerLike = connection.logger
        self.debug: bool = connection.debug
        self.ping_interval = connection.ping_interval
        self.ping_timeout = connection.ping_timeout
        self.close_timeout = connection.close_timeout
        self._recv_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._fragmenting = False
        self._queued = 0
        # Frames queued to the loop (written by the user thread) and written by it (by the
        # loop): a direct send needs them equal (ordering).
        self._scheduled = 0
        self._done = 0
        self._partial_sends = 0  # direct writes the kernel took only part of (tests)
        # Direct sends (and reads): None until decided on the loop's thread, by a client's
        # connect or at the first send.
        self._direct: Optional[bool] = None
        self._probe: Any = None

    def _init_direct(self) -> None:
        # On the loop's thread, at connect (client) or the first send (the server side
        # builds the connection before its handshake): may the user thread send, and
        # receive, directly from now on?
        conn = self._conn
        wst = conn._wst
        probe = _closing_probe(conn.transport)
        if (probe is False or conn._debug or wst is None or wst.compression is not None
                or not _GIL()):
            self._direct = False
            return
        wst._send_holds_gil = True  # before any direct send: see "Direct sends" above
        self._probe = probe
        self._direct = True
        if EXT_READS:
            conn._ext_enable()  # recv may read the socket itself (see _next)

    # -- attributes --------------------------------------------------------------------------

    @property
    def request(self) -> Optional[Request]:
        """Opening handshake request."""
        return self._conn.request

    @request.setter
    def request(self, value: Optional[Request]) -> None:
        self._conn.request = value

    @property
    def response(self) -> Optional[Response]:
        """Opening handshake response."""
        return self._conn.response

    @response.setter
    def response(self, value: Optional[Response]) -> None:
        self._conn.response = value

    @property
    def latency(self) -> float:
        """Latency in seconds measured by the last ping/pong (0 until one completed)."""
        return self._conn.latency

    @property
    def socket(self) -> Any:
        """The connection's socket (as the transport exposes it)."""
        return self._transport_info("socket")

    @property
    def local_address(self) -> Any:
        """Local address of the connection (``socket.getsockname()``)."""
        return self._transport_info("sockname")

    @property
    def remote_address(self) -> Any:
        """Remote address of the connection (``socket.getpeername()``)."""
        return self._transport_info("peername")

    def _transport_info(self, name: str) -> Any:
        # Transports may only be used on their loop's thread (uvloop checks it).
        def get() -> Any:
            transport = self._conn.transport
            return None if transport is None else transport.get_extra_info(name)

        return get() if _loop.in_loop_thread() else _loop.call(get)

    @property
    def state(self) -> State:
        """``State.CONNECTING``, ``OPEN``, ``CLOSING`` or ``CLOSED``."""
        return self._conn.state

    @property
    def subprotocol(self) -> Optional[Subprotocol]:
        """Subprotocol negotiated during the opening handshake, or None."""
        return self._conn.subprotocol

    @property
    def close_code(self) -> Optional[int]:
        """None until CLOSED; then the received close code (1006 when none arrived)."""
        return self._conn.close_code

    @property
    def close_reason(self) -> Optional[str]:
        """None until CLOSED; then the received close reason."""
        return self._conn.close_reason

    # -- context manager and iteration -------------------------------------------------------

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close(CloseCode.INTERNAL_ERROR)

    def __iter__(self) -> Iterator[Data]:
        """Receive messages until the connection closes: ConnectionClosedOK ends the
        iteration, ConnectionClosedError propagates."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    # -- receiving ---------------------------------------------------------------------------

    def recv(self, timeout: Optional[float] = None, decode: Optional[bool] = None) -> Data:
        """Receive the next message: ``str`` for TEXT, ``bytes`` for BINARY.

        Args:
            timeout: Seconds to wait; None waits forever; ``<= 0`` returns a message only if
                one is already there.
            decode: False returns TEXT as bytes; True decodes BINARY to str.

        Raises:
            TimeoutError: ``timeout`` elapsed ("timed out in 1.0s").
            ConnectionClosed: the connection is closed.
            ConcurrencyError: another thread is in ``recv`` / ``recv_streaming``.
        """
        self.maybe_raise_legacy_warning()
        if not self._recv_lock.acquire(False):
            raise ConcurrencyError(
                "cannot call recv while another thread is already running recv or "
                "recv_streaming"
            )
        try:
            conn = self._conn
            if conn._ext == EXT_READING and timeout is None and decode is None:
                # This thread holds the socket (see _next): the common case in one call.
                entry = conn._ext_recv(-1.0)
                if type(entry) is tuple:
                    op, fin, data = entry
                    if fin and (op == 2 or (op == 1 and type(data) is str)):
                        return data  # type: ignore[no-any-return]
                    conn._put_back([entry])  # a fragment: assembled below
            return self._recv(timeout, decode)
        finally:
            self._recv_lock.release()

    def _next(
        self, decode: Optional[bool], fast: bool, deadline: Optional[float],
        timeout: Optional[float],
    ) -> Any:
        # A frame (op, fin, data), a whole message (fast), or False once the stream ended.
        conn = self._conn
        while True:
            if conn._ext == EXT_READING:
                # This thread holds the socket: read and parse it here (Engine._ext_recv).
                remaining = -1.0 if deadline is None else deadline - _monotonic()
                entry = conn._ext_recv(max(remaining, 0.0) if deadline is not None else -1.0)
                if entry is EXT_TIMEOUT:
                    raise TimeoutError(f"timed out in {remaining:.1f}s")
                if entry is not None:
                    return entry
                # None: the loop has the socket again; wait for it as below.
            waiter = SyncWaiter()
            result = conn._sync_take(waiter, decode, fast)
            if result is None:
                conn._ext_request(waiter)
                remaining = 0.0
                try:
                    if deadline is None:
                        acquired = waiter.wait()
                    else:
                        # As websockets, the message shows the time left when the wait began.
                        remaining = deadline - _monotonic()
                        acquired = remaining > 0 and waiter.wait(remaining)
                except BaseException:
                    # A signal handler raised (Ctrl-C) while this thread waited. A message
                    # handed over in the meantime is kept for the next recv, not lost.
                    if not conn._sync_cancel(waiter) and fast and waiter.result is not None:
                        conn._put_back([(conn._handoff_op, True, waiter.result)])
                    raise
                if not acquired and conn._sync_cancel(waiter):
                    raise TimeoutError(f"timed out in {remaining:.1f}s")
                result = waiter.result
                if result is None or result is EXT_GRANTED:
                    continue
            return result

    def _recv(self, timeout: Optional[float], decode: Optional[bool]) -> Data:
        deadline = None if timeout is None else _monotonic() + timeout
        entry = self._next(decode, True, deadline, timeout)
        if entry is False:
            self._raise_closed()
        if type(entry) is not tuple:
            return entry  # type: ignore[no-any-return]
        op, fin, data = entry
        if not fin:
            taken = [entry]
            try:
                while not fin:
                    entry = self._next(decode, False, deadline, timeout)
                    if entry is False:
                        self._raise_closed()
                    if len(taken) >= MAX_FRAGMENTS:
                        self._failed(TooManyFragments(MAX_FRAGMENTS))
                    taken.append(entry)
                    fin = entry[1]
            except TimeoutError:
                self._conn._put_back(taken)
                raise
            if op == 1:
                data = "".join([e[2] for e in taken])
            else:
                data = b"".join([e[2] for e in taken])
        try:
            return _convert(op, data, decode)
        except UnicodeDecodeError as exc:
            self._failed(exc)
            raise  # pragma: no cover - _failed raises

    def recv_streaming(self, decode: Optional[bool] = None) -> Iterator[Data]:
        """Receive the next message fragment by fragment.

        Args:
            decode: As for ``recv``.

        Raises:
            ConnectionClosed: the connection is closed.
            ConcurrencyError: another thread is in ``recv`` / ``recv_streaming``.
        """
        self.maybe_raise_legacy_warning()
        if not self._recv_lock.acquire(False):
            raise ConcurrencyError(
                "cannot call recv_streaming while another thread is already running recv "
                "or recv_streaming"
            )
        try:
            entry = self._next(decode, False, None, None)
            if entry is False:
                self._raise_closed()
            op, fin, data = entry
            if decode is None:
                decode = op == 1
            decoder = _UTF8Decoder() if decode else None
            try:
                while True:
                    if decoder is not None:
                        yield data if type(data) is str else decoder.decode(data, fin)
                    else:
                        yield data.encode() if type(data) is str else data
                    if fin:
                        break
                    entry = self._next(decode, False, None, None)
                    if entry is False:
                        self._raise_closed()
                    op, fin, data = entry
            except UnicodeDecodeError as exc:
                self._failed(exc)
        finally:
            self._recv_lock.release()

    def _raise_closed(self) -> None:
        _loop.run(self._conn._raise_closed())

    def _failed(self, exc: BaseException) -> None:
        _loop.run(self._conn._recv_failed(exc))

    # -- sending -----------------------------------------------------------------------------

    def send(self, message: Any, text: Optional[bool] = None) -> None:
        """Send a message: ``str`` as TEXT, bytes-like as BINARY (``text`` forces the type),
        an iterable of them as a fragmented message.

        Raises:
            ConnectionClosed: the connection is closed.
            ConcurrencyError: another thread is sending a fragmented message.
            TypeError: ``message`` has an unsupported type.
        """
        self.maybe_raise_legacy_warning()
        t = type(message)
        if t is str:
            op = _BINARY if text is False else _TEXT
        elif t is bytes or t is bytearray or t is memoryview:
            op = _TEXT if text is True else _BINARY
            if t is not bytes:
                message = bytes(message)  # the caller may reuse its buffer once we return
        elif isinstance(message, str):
            op = _BINARY if text is False else _TEXT
            message = str(message)
        elif isinstance(message, _BytesLike):
            op = _TEXT if text is True else _BINARY
            message = bytes(message)
        elif isinstance(message, Mapping):
            raise TypeError("data is a dict-like object")
        elif isinstance(message, Iterable):
            self._send_fragments(message, text)
            return
        else:
            raise TypeError("data must be str, bytes, or iterable")
        conn = self._conn
        with self._send_lock:
            if self._fragmenting:
                raise ConcurrencyError(
                    "cannot call send while another thread is already running send"
                )
            if not (conn._state == 1 and conn._wst.close_handshake is None):
                _loop.run(conn._send_frame(op, message, True))  # raises ConnectionClosed
                return
            rest = -1
            if self._direct and self._scheduled == self._done:
                rest = conn._wst._send_from_thread(0x80 | op, message, self._probe)
                if rest == 0:
                    return
            if rest > 0:
                # The kernel took part of it: the loop's thread sends the rest first.
                self._partial_sends += 1
                self._loop.call_soon_threadsafe(conn._wst._flush_direct_rest)
                self._queued += rest
            else:
                self._scheduled += 1
                self._loop.call_soon_threadsafe(_send_one, self, op, message)
                self._queued += len(message)
            if self._queued >= SEND_BUFFER or conn._write_paused:
                self._queued = 0
                _loop.run(conn._drain())

    def _send_fragments(self, message: Iterable[Any], text: Optional[bool]) -> None:
        conn = self._conn
        with self._send_lock:
            if self._fragmenting:
                raise ConcurrencyError(
                    "cannot call send while another thread is already running send"
                )
            self._fragmenting = True
        try:
            chunks = iter(message)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            if isinstance(chunk, str):
                op, encode = (_BINARY if text is False else _TEXT), True
            elif isinstance(chunk, _BytesLike):
                op, encode = (_TEXT if text is True else _BINARY), False
            else:
                raise TypeError("iterable must contain bytes or str")
            _loop.call(conn._start_fragments)
            try:
                _loop.run(conn._send_frame(op, chunk, False))
                for chunk in chunks:
                    if isinstance(chunk, str) if encode else isinstance(chunk, _BytesLike):
                        _loop.run(conn._send_frame(_CONTINUATION, chunk, False))
                    else:
                        raise TypeError("iterable must contain uniform types")
                _loop.run(conn._send_frame(_CONTINUATION, b"", True))
            except Exception:
                _loop.run(conn._fail_fragments())
                raise
            finally:
                _loop.call(conn._end_fragments)
        finally:
            self._fragmenting = False

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Perform the closing handshake and wait for the TCP connection to close (at most
        ``close_timeout``). Idempotent."""
        self.maybe_raise_legacy_warning()
        self._conn._ext_release()  # the loop reads the peer's CLOSE (see Engine._ext_recv)
        _loop.run(self._conn.close(code, reason))

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Wait until the connection is closed; return False if ``timeout`` elapsed first."""
        if self._conn.connection_lost_waiter.done():
            return True
        self._conn._ext_release()
        try:
            _loop.run(self._conn.wait_closed(), timeout)
        except TimeoutError:
            return False
        return True

    def ping(
        self, data: Union[str, bytes, bytearray, memoryview, None] = None, *,
        ack_on_close: bool = False,
    ) -> threading.Event:
        """Send a ping; return a ``threading.Event`` set when the matching pong arrives
        (``ack_on_close``: also when the connection closes first).

        Raises:
            ConnectionClosed: the connection is closed.
            ConcurrencyError: a ping with the same payload is still waiting for its pong.
        """
        self.maybe_raise_legacy_warning()
        if isinstance(data, _BytesLike):
            data = bytes(data)
        elif isinstance(data, str):
            data = data.encode()
        elif data is not None:
            raise TypeError("data must be str or bytes-like")
        event = threading.Event()
        conn = self._conn

        def on_pong(future: asyncio.Future[float]) -> None:
            if future.cancelled() or future.exception() is not None:
                if ack_on_close:
                    event.set()
            else:
                event.set()

        async def send_ping() -> None:
            pong_received = await conn.ping(data)
            pong_received.add_done_callback(on_pong)  # type: ignore[attr-defined]

        conn._ext_release()  # the loop reads the PONG at once: latency stays exact
        _loop.run(send_ping())
        return event

    def pong(self, data: Union[str, bytes, bytearray, memoryview] = b"") -> None:
        """Send an unsolicited pong.

        Raises:
            ConnectionClosed: the connection is closed.
        """
        self.maybe_raise_legacy_warning()
        if isinstance(data, _BytesLike):
            data = bytes(data)
        elif isinstance(data, str):
            data = data.encode()
        else:
            raise TypeError("data must be str or bytes-like")
        _loop.run(self._conn.pong(data))

    def maybe_raise_legacy_warning(self) -> None:
        """Nothing here; ``ClientConnection`` warns about ``connect()`` without ``with``."""


def broadcast(
    connections: Iterable[Connection],
    message: Union[str, bytes, bytearray, memoryview],
    raise_exceptions: bool = False,
) -> None:
    """Send ``message`` to every connection that is OPEN, without waiting (websockets'
    ``sync.connection.broadcast``).

    Connections that are not open, or in the middle of a fragmented message, are skipped
    with a warning (or, with ``raise_exceptions``, an ExceptionGroup "skipped broadcast").

    Raises:
        TypeError: ``message`` is neither str nor bytes-like.
    """
    if not isinstance(message, (str, bytes, bytearray, memoryview)):
        raise TypeError("data must be str or bytes")
    if not isinstance(message, (str, bytes)):
        message = bytes(message)
    targets = [connection._conn for connection in connections]
    _loop.call(lambda: _async_broadcast(targets, message, raise_exceptions=raise_exceptions))

