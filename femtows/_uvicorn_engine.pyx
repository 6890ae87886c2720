# cython: language_level=3
"""The per-message path under ``femtows.uvicorn.FemtowsProtocol`` (internal).

``Engine`` is the base class of ``FemtowsProtocol`` (which is plain Python, in
femtows/uvicorn.py) and holds the state the per-message path touches; ``Listener`` is the
core's listener of an accepted connection. What runs once per message is here:

- ``Listener.on_ws_frame`` (called by the core through the C vtable; a final type, so no
  check for a Python override) passes the frame to ``Engine._frame`` (a C call), which turns a
  complete TEXT or BINARY frame into the ASGI ``websocket.receive`` event and hands it to the
  ``receive()`` that is waiting (one future result) or queues it (``ws_max_queue``: above it
  the transport stops reading). Fragments and CLOSE frames go to
  ``FemtowsProtocol._on_other_frame``.
- ``receive()``: a queued event, else a future to wait on.
- ``send()``: ``websocket.send`` on an open connection whose transport is not paused is one
  core send; everything else (accept, close, the HTTP denial response, a paused transport, a
  closed connection) is ``FemtowsProtocol._send_slow``, which has the whole state machine.

This module does not import uvicorn; the states and rules are femtows/uvicorn.py's.
"""

cimport cython
from femtows._core.core cimport WSFrame, WSListener, WSMsgType, WSTransport

import asyncio

# States of one connection (femtows/uvicorn.py imports these).
_CONNECTING = 0  # the app has not accepted yet
_RESPONDING = 1  # the app is sending an HTTP response (websocket.http.response extension)
_OPEN = 2  # accepted: the core protocol owns the transport
_CLOSED = 3  # the app sent websocket.close, or the connection was refused

cdef enum:
    S_OPEN = 2

cdef object _InvalidStateError = asyncio.InvalidStateError


cdef class Engine:
    """Frame-to-ASGI-event engine; base class of ``FemtowsProtocol``. Internal."""

    cdef public object loop
    cdef public object transport      # the asyncio transport of the connection
    cdef public Py_ssize_t max_size
    cdef public Py_ssize_t max_queue
    cdef public int _state
    cdef public WSTransport _ws       # set once the core has answered 101
    cdef public object _queue         # deque of ASGI events not received yet
    cdef public object _waiter        # future of the receive() waiting for an event, or None
    cdef public object _disconnect    # the websocket.disconnect event, once there is one
    cdef public object _writable      # future set while the transport's writing is paused
    cdef public bint _read_paused
    cdef public bint _lost
    cdef public bint _app_closed

    # -- core callbacks (through Listener) -----------------------------------------------------

    cdef int _frame(self, WSTransport transport, WSFrame frame) except -1:
        cdef int op = frame.msg_type
        cdef dict message
        if frame.fin and (op == WSMsgType.BINARY or op == WSMsgType.TEXT):
            if self._state != S_OPEN or self._disconnect is not None:
                return 0  # the app closed: what the client still sends is discarded
            if op == WSMsgType.BINARY:
                message = {"type": "websocket.receive", "bytes": frame.get_payload_as_bytes()}
            else:
                # The core has validated the UTF-8 already.
                message = {"type": "websocket.receive", "text": frame.get_payload_as_utf8_text()}
            self._push(message)
        else:
            self._on_other_frame(transport, frame)
        return 0

    cpdef pause_writing(self):
        """The transport's buffer is full: ``send()`` waits until it drains."""
        if self._writable is None:
            self._writable = self.loop.create_future()

    cpdef resume_writing(self):
        """The transport's buffer drained: waiting ``send()`` calls go on."""
        fut = self._writable
        self._writable = None
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- delivery ------------------------------------------------------------------------------

    cdef int _push(self, message) except -1:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            try:
                waiter.set_result(message)
                return 0
            except _InvalidStateError:
                pass  # the receive() waiting on it was cancelled: queue the event
        queue = self._queue
        queue.append(message)
        if len(queue) >= self.max_queue and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        return 0

    def _deliver(self, message):
        """Hand an ASGI event to the app (dropped once the app has closed)."""
        if self._state != S_OPEN or self._disconnect is not None:
            return
        self._push(message)

    # -- ASGI callables ------------------------------------------------------------------------

    async def receive(self):
        """ASGI ``receive``: connect, then receive events, then one disconnect event."""
        queue = self._queue
        if queue:
            message = queue.popleft()
            if self._read_paused and len(queue) < self.max_queue // 2 + 1:
                self._read_paused = False
                self.transport.resume_reading()
            return message
        if self._disconnect is not None:
            return self._disconnect  # every later call gets the disconnect again
        if self._waiter is not None:
            raise RuntimeError("receive() is already awaited by another task")
        waiter = self.loop.create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    async def send(self, message):
        """ASGI ``send``: accept / close / http.response.* before accepting; send / close
        after."""
        cdef WSTransport ws = self._ws
        if (type(message) is dict and self._writable is None and self._state == S_OPEN
                and not self._lost and ws is not None and not ws.is_close_frame_sent
                and (<dict>message).get("type") == "websocket.send"):
            data = (<dict>message).get("bytes")
            if data is not None:
                ws.send(WSMsgType.BINARY, data)
                return
            data = (<dict>message).get("text")
            if data is not None:
                ws.send(WSMsgType.TEXT, data)
                return
        await self._send_slow(message)


@cython.final
cdef class Listener(WSListener):
    """The core's listener of an accepted connection: forwards to its ``Engine``.

    A final extension type, so the core's per-frame vtable call needs no check for a Python
    override (``FemtowsProtocol`` is a Python subclass of ``Engine``); the frame goes on to
    ``Engine`` through its C vtable.
    """

    cdef Engine engine

    def __cinit__(self, Engine engine):
        self.engine = engine

    cpdef on_ws_connected(self, WSTransport transport):
        self.engine._ws = transport

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        self.engine._frame(transport, frame)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.engine._on_disconnected(transport)

    cpdef pause_writing(self):
        self.engine.pause_writing()

    cpdef resume_writing(self):
        self.engine.resume_writing()
