# cython: language_level=3
"""The per-message engine under ``femtows.websockets.asyncio.Connection`` (internal).

``Engine`` is a core ``WSListener`` written in Cython: the core calls ``on_ws_frame`` through
the C vtable for every frame, and the engine turns frames into websockets-style messages:

- A ``recv()`` that is already waiting gets a complete single-frame message straight from
  ``on_ws_frame`` (one future result, no queue round trip); TEXT is decoded once there
  (the core has already validated the UTF-8).
- Otherwise frames wait in a deque counted in frames (websockets' ``max_queue``); above the
  high-water mark the transport stops reading, at the low-water mark it reads again.
- ``max_size``: the core refuses a frame over the per-frame limit before its payload arrives;
  the engine checks the size of the message being assembled, with websockets' reasons.
- ``send()`` of a ``str``/``bytes``/``bytearray`` on an open connection is one core send and,
  only when the transport's buffer is over ``write_limit``, a wait for it to drain.

Everything that is not per message (closing, keepalive, pings, fragmented sends, exceptions)
is plain Python in ``connection.py``, which subclasses ``Engine``.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (
    PY_LOCK_ACQUIRED,
    PY_LOCK_INTR,
    PyLockStatus,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from cpython.unicode cimport PyUnicode_DecodeUTF8
from femtows._core.core cimport WSFrame, WSListener, WSMsgType, WSTransport

import asyncio
import codecs
import collections
import os
from time import monotonic as _monotonic

cdef extern from "pythread.h":
    ctypedef long long PY_TIMEOUT_T
    PyLockStatus PyThread_acquire_lock_timed(
        PyThread_type_lock lock, PY_TIMEOUT_T microseconds, int intr_flag) nogil

from femtows.websockets.exceptions import ConnectionClosedOK, TooManyFragments

# websockets.protocol.State values.
cdef enum:
    S_CONNECTING = 0
    S_OPEN = 1
    S_CLOSING = 2
    S_CLOSED = 3

#: Fragments allowed in one received message (websockets 17.4: WEBSOCKETS_MAX_FRAGMENTS).
MAX_FRAGMENTS = int(os.environ.get("WEBSOCKETS_MAX_FRAGMENTS", "4096"))
cdef Py_ssize_t _max_fragments = MAX_FRAGMENTS

cdef object _CancelledError = asyncio.CancelledError
cdef object _deque = collections.deque
cdef object _UTF8Decoder = codecs.getincrementaldecoder("utf-8")


class _StreamEnded(Exception):
    """Raised by ``_get_frame`` once the connection is closed and no frame is left."""


cdef inline object _convert(int op, object data, object decode):
    # ``data`` is str for TEXT decoded on arrival (bytes only after a recv(decode=False) that
    # was cancelled put it back), bytes for BINARY.
    cdef bint want_text = (op == 1) if decode is None else bool(decode)
    if want_text:
        if type(data) is str:
            return data
        return (<bytes>data).decode()
    if type(data) is str:
        return (<str>data).encode()
    return data


cdef class Engine(WSListener):
    """Frame-to-message engine; base class of ``Connection``. Internal."""

    cdef public WSTransport _wst
    cdef public object _loop
    cdef public int _state
    cdef public bint _is_client
    # receiving
    cdef object _frames                 # deque of (opcode, fin, data)
    cdef public Py_ssize_t _q_high      # -1: no flow control
    cdef public Py_ssize_t _q_low
    cdef bint _reading_paused
    cdef object _getter                 # future of the recv waiting for a frame, or None
    cdef bint _getter_fast              # that recv accepts a whole message as the result
    cdef object _getter_decode
    cdef public bint _recv_busy
    cdef public bint _stream_ended
    cdef public bint _rx_open                  # a fragmented message is being received
    cdef Py_ssize_t _rx_size            # its size so far
    cdef public long long _max_message  # -1: no limit
    cdef public long long _max_fragment
    cdef public bint _discard           # we failed the connection: ignore what arrives
    # sending
    cdef public object _send_in_progress
    cdef public bint _write_paused
    cdef public object _drain_waiters
    cdef public object _pending_pings
    cdef public int _handoff_op         # opcode of the message last handed to a recv()
    cdef object _rx_decoder             # incremental UTF-8 decoder of a fragmented TEXT
    cdef public bint _debug             # log every frame at DEBUG ("< ..." / "> ...")

    def __cinit__(self):
        self._frames = _deque()
        self._state = S_CONNECTING
        self._q_high = -1
        self._q_low = -1
        self._max_message = -1
        self._max_fragment = -1
        self._drain_waiters = []
        self._pending_pings = {}

    # -- core callbacks ------------------------------------------------------------------------

    cpdef on_ws_connected(self, WSTransport transport):
        # A frame over max_size is refused by the core (before its payload arrives) with
        # websockets' PayloadTooBig wording.
        transport._too_big_format = "frame with {size} bytes exceeds limit of {limit} bytes"
        # A compressed frame inflating past it: websockets' words for a first frame.
        transport._inflate_too_big_format = "frame exceeds limit of {limit} bytes"
        self._wst = transport
        self._state = S_OPEN
        self._connection_open()

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef int op = frame.msg_type
        cdef Py_ssize_t size
        cdef Py_ssize_t before = 0
        cdef object fut
        cdef object data
        cdef object decode
        if self._debug:
            self._log_frame("<", op, frame.get_payload_as_bytes(), frame.fin)
        if op <= 2:
            if self._discard or self._state != S_OPEN:
                return
            size = <Py_ssize_t>frame.payload_size
            if op == 0:
                if self._max_message >= 0 and self._rx_size + size > self._max_message:
                    self._too_big(size)
                    return
                before = self._rx_size
                self._rx_size += size
            if not frame.fin:
                if op != 0:
                    self._rx_size = size
                self._rx_open = True
            elif op == 0:
                self._rx_open = False
                self._rx_size = 0
            fut = self._getter
            if fut is not None and fut.done():
                # The waiting recv() was cancelled and has not run yet: nobody is waiting.
                self._getter = None
                fut = None
            if (fut is not None and self._getter_fast and frame.fin and op != 0
                    and len(self._frames) == 0):
                # A recv() is waiting and this frame is a whole message: hand it over.
                decode = self._getter_decode
                if op == 1:
                    if decode is False:
                        # As websockets: recv(decode=False) does not validate UTF-8.
                        data = frame.get_payload_as_bytes()
                    else:
                        data = self._decode_text(frame)
                        if data is None:
                            return
                elif decode is True:
                    data = None
                else:
                    data = frame.get_payload_as_bytes()
                if data is not None:
                    self._getter = None
                    self._handoff_op = op
                    fut.set_result(data)
                    return
            if op == 1:
                if frame.fin:
                    data = self._decode_text(frame)
                else:
                    self._rx_decoder = _UTF8Decoder()
                    data = self._decode_fragment(frame, 0)
                if data is None:
                    return
            elif op == 0 and self._rx_decoder is not None:
                data = self._decode_fragment(frame, before)
                if data is None:
                    return
                if frame.fin:
                    self._rx_decoder = None
            else:
                data = frame.get_payload_as_bytes()
            self._frames.append((op, frame.fin, data))
            if fut is not None:
                self._getter = None
                fut.set_result(None)
            if (self._q_high >= 0 and not self._reading_paused
                    and len(self._frames) > self._q_high):
                self._reading_paused = True
                self._wst.underlying_transport.pause_reading()
        elif op == 10:
            if self._pending_pings:
                self._acknowledge_pings(frame.get_payload_as_bytes())
        elif op == 8:
            self._on_close_frame(frame)

    cpdef on_ws_disconnected(self, WSTransport transport):
        cdef object fut
        self._state = S_CLOSED
        self._stream_ended = True
        fut = self._getter
        if fut is not None:
            self._getter = None
            if not fut.done():
                fut.set_result(None)
        self._connection_lost()

    cpdef pause_writing(self):
        self._write_paused = True

    cpdef resume_writing(self):
        self._write_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- receive side ------------------------------------------------------------------------

    cdef object _decode_text(self, WSFrame frame):
        """A whole TEXT message decoded (and so validated) once; None after failing 1007."""
        try:
            return PyUnicode_DecodeUTF8(frame.payload_ptr, <Py_ssize_t>frame.payload_size,
                                        NULL)
        except UnicodeDecodeError as exc:
            self._fail_utf8(exc, exc.start)
            return None

    cdef object _decode_fragment(self, WSFrame frame, Py_ssize_t before):
        """One fragment of a TEXT message decoded incrementally; None after failing 1007.

        ``before``: bytes of the message before this fragment, so that the position in the
        close reason counts from the start of the message, as websockets reports it.
        """
        cdef object decoder = self._rx_decoder
        cdef Py_ssize_t pending = len(decoder.getstate()[0])
        try:
            return decoder.decode(frame.get_payload_as_memoryview(), frame.fin)
        except UnicodeDecodeError as exc:
            self._rx_decoder = None
            self._fail_utf8(exc, before - pending + exc.start)
            return None

    cdef int _maybe_resume(self) except -1:
        if self._reading_paused and len(self._frames) <= self._q_low:
            self._reading_paused = False
            if not self._stream_ended:
                self._wst.underlying_transport.resume_reading()
        return 0

    cdef int _too_big(self, Py_ssize_t size) except -1:
        # websockets' PayloadTooBig text for a continuation frame: the limit is what remains
        # of max_message (or max_fragment if smaller), reported with the bytes already read.
        cdef long long limit = self._max_message - self._rx_size
        if self._max_fragment >= 0 and self._max_fragment < limit:
            limit = self._max_fragment
        self._fail_too_big(size, self._rx_size, limit + self._rx_size)
        return 0

    def _put_back(self, list entries):
        """Put frames taken by a cancelled recv back at the front of the queue."""
        self._frames.extendleft(reversed(entries))

    async def _get_frame(self):
        """The next queued frame ``(opcode, fin, data)``, waiting for one if needed.

        Raises _StreamEnded when the connection is closed and the queue is empty.
        """
        cdef object fut
        while True:
            if self._frames:
                entry = self._frames.popleft()
                if self._reading_paused:
                    self._maybe_resume()
                return entry
            if self._stream_ended:
                raise _StreamEnded()
            fut = self._loop.create_future()
            self._getter = fut
            self._getter_fast = False
            try:
                await fut
            finally:
                if self._getter is fut:
                    self._getter = None

    async def recv(self, decode=None):
        """Receive the next message: ``str`` for TEXT, ``bytes`` for BINARY.

        Args:
            decode: False returns TEXT messages as bytes; True decodes BINARY ones to str.

        Raises:
            ConnectionClosedOK: the connection was closed normally (both close frames 1000 /
                1001 / 1005).
            ConnectionClosedError: any other closure (protocol error, network failure...).
            ConcurrencyError: another coroutine is already in ``recv`` / ``recv_streaming``.
        """
        cdef object fut
        cdef tuple entry
        if self._recv_busy:
            self._raise_concurrent("recv")
        if self._frames:
            entry = <tuple>self._frames[0]
            if entry[1]:
                self._frames.popleft()
                if self._reading_paused:
                    self._maybe_resume()
                if (decode is None and (entry[0] == 2 or type(entry[2]) is str)) or (
                        decode is False and entry[0] == 2):
                    return entry[2]
                self._recv_busy = True
                try:
                    return _convert(entry[0], entry[2], decode)
                except UnicodeDecodeError as exc:
                    return await self._recv_failed(exc)
                finally:
                    self._recv_busy = False
        elif not self._stream_ended:
            fut = self._loop.create_future()
            self._getter = fut
            self._getter_fast = True
            self._getter_decode = decode
            self._recv_busy = True
            try:
                data = await fut
            except _CancelledError:
                if self._getter is fut:
                    self._getter = None
                elif fut.done() and not fut.cancelled() and fut.result() is not None:
                    # The message was handed over as we were cancelled: keep it (TEXT as str,
                    # as on_ws_frame queues it).
                    self._frames.appendleft((self._handoff_op, True, fut.result()))
                raise
            finally:
                self._recv_busy = False
            if data is not None:
                return data
        return await self._recv_assemble(decode)

    async def _recv_assemble(self, decode):
        """recv()'s general path: assemble a message frame by frame from the queue."""
        cdef list taken = []
        cdef tuple entry
        cdef int op
        self._recv_busy = True
        try:
            try:
                entry = await self._get_frame()
                taken.append(entry)
                op = entry[0]
                while not entry[1]:
                    entry = await self._get_frame()
                    if len(taken) >= _max_fragments:
                        self._recv_busy = False
                        return await self._recv_failed(TooManyFragments(_max_fragments))
                    taken.append(entry)
            except _CancelledError:
                if taken:
                    self._put_back(taken)
                raise
        except _StreamEnded:
            self._recv_busy = False
            return await self._raise_closed()
        except BaseException:
            self._recv_busy = False
            raise
        self._recv_busy = False
        if len(taken) == 1:
            data = entry[2]
        elif op == 1:
            data = "".join([e[2] for e in taken])   # TEXT fragments arrive decoded
        else:
            data = b"".join([e[2] for e in taken])
        try:
            return _convert(op, data, decode)
        except UnicodeDecodeError as exc:
            return await self._recv_failed(exc)


    # -- hand-off to a thread (femtows.websockets.sync) ---------------------------------------
    # Called from the user's thread. Each method runs without releasing the GIL (no Python
    # code in between), so it is atomic with respect to on_ws_frame on the event loop thread.

    def _sync_take(self, waiter, decode, bint fast):
        """The next queued frame ``(opcode, fin, data)``; else False once the stream ended;
        else None after installing ``waiter`` (a ``SyncWaiter``) as the waiting receiver
        (``fast``: it accepts a whole message handed over by on_ws_frame)."""
        if self._frames:
            entry = self._frames.popleft()
            if self._reading_paused and len(self._frames) <= self._q_low:
                self._loop.call_soon_threadsafe(self._resume_reading)
            return entry
        if self._stream_ended:
            return False
        self._getter = waiter
        self._getter_fast = fast
        self._getter_decode = decode
        return None

    def _sync_cancel(self, waiter):
        """Uninstall ``waiter``; False if on_ws_frame already gave it its result."""
        if self._getter is waiter:
            self._getter = None
            return True
        return False

    def _resume_reading(self):
        self._maybe_resume()

    # -- send side ---------------------------------------------------------------------------

    async def send(self, message, *, text=None):
        """Send a message: str as TEXT, bytes-like as BINARY (``text`` forces the type);
        an iterable or async iterable of them as a fragmented message.

        Raises:
            ConnectionClosed: the connection is closed.
            TypeError: ``message`` has an unsupported type.
        """
        cdef WSMsgType op
        cdef object t = type(message)
        if (self._send_in_progress is None and self._state == S_OPEN
                and self._wst.close_handshake is None):
            if t is str:
                op = WSMsgType.BINARY if text is False else WSMsgType.TEXT
            elif t is bytes or t is bytearray:
                op = WSMsgType.TEXT if text is True else WSMsgType.BINARY
            else:
                return await self._send_slow(message, text)
            if self._debug:
                self._log_frame(">", op, message, True)
            self._wst.send(op, message)
            if self._write_paused:
                await self._drain()
            return
        return await self._send_slow(message, text)

    async def _drain(self):
        """Wait until the transport's write buffer is below its low-water mark."""
        if not self._write_paused or self._stream_ended:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)


@cython.final
cdef class SyncWaiter:
    """What a thread blocked in ``femtows.websockets.sync``'s ``recv`` waits on: the engine
    treats it as the receiving future (``done()`` / ``set_result()`` on the loop thread),
    the thread waits in ``wait()`` on a raw lock (acquired at creation, released by
    ``set_result``).

    ``set_result`` releases the lock with the GIL dropped. Releasing it with the GIL held
    makes the woken thread run at once (the kernel favours a thread that slept), find the
    GIL taken, sleep again, and be woken a second time when the loop thread lets the GIL go:
    about two extra context switches per message (6.5 -> 4.0 per 256-byte round trip in the
    client process, counted in ``/proc/<pid>/task/*/status`` under ``bench/sync_rows.py``'s
    load). With the GIL free, the woken thread takes it and returns
    the message. The engine calls ``set_result`` where its state is complete (the waiter
    already uninstalled, the frame already consumed), as at any other point where the loop
    thread may let the GIL go.
    """

    cdef PyThread_type_lock _lock
    cdef bint _locked                   # _lock is held (released for __dealloc__ if so)
    cdef public object result
    cdef bint _done

    def __cinit__(self):
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("cannot allocate a lock")
        PyThread_acquire_lock(self._lock, 1)
        self._locked = True

    def __dealloc__(self):
        if self._lock != NULL:
            if self._locked:
                PyThread_release_lock(self._lock)
            PyThread_free_lock(self._lock)
            self._lock = NULL

    def done(self):
        return self._done

    def set_result(self, value):
        if self._done:
            return
        self.result = value
        self._done = True
        self._locked = False
        with nogil:
            PyThread_release_lock(self._lock)

    def wait(self, timeout=None):
        """Block until ``set_result`` (True) or until ``timeout`` seconds passed (False);
        ``None`` waits for ever. Signal handlers run while waiting (Ctrl-C interrupts)."""
        cdef PY_TIMEOUT_T us = -1
        cdef PyLockStatus status
        cdef double deadline = 0.0
        if timeout is not None:
            deadline = _monotonic() + <double>timeout
        while True:
            if timeout is not None:
                us = <PY_TIMEOUT_T>((deadline - _monotonic()) * 1e6)
                if us < 0:
                    us = 0
            with nogil:
                status = PyThread_acquire_lock_timed(self._lock, us, 1)
            if status == PY_LOCK_ACQUIRED:
                self._locked = True
                return True
            if status == PY_LOCK_INTR:
                PyErr_CheckSignals()  # raises what the handler raised (KeyboardInterrupt)
                continue
            return False


@cython.final
cdef class MessageIterator:
    """``async for message in connection``: ``connection.recv()`` until the connection is
    closed; ConnectionClosedOK ends the iteration, ConnectionClosedError propagates.

    A Cython async iterator rather than an async generator: one coroutine per message.
    """

    cdef object _connection

    def __cinit__(self, connection):
        self._connection = connection

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self._connection.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration

    async def aclose(self):
        """Nothing to release (for code written for async generators)."""
