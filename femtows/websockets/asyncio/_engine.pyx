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

cdef extern from *:
    """
    #include <errno.h>
    #include <poll.h>
    #include <unistd.h>
    #include <sys/types.h>
    #include <sys/socket.h>
    #include <time.h>
    static long long femtows_ext_now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
    }
    /* Wait until `fd` or `wake` is readable: 1 fd (data, EOF or an error: recv() says
     * which), 2 woken, 0 timed out, -1 interrupted (EINTR) or failed. `lowat` > 1: the rest
     * of a frame that is arriving; the socket's SO_RCVLOWAT makes poll() wait for all of it
     * (one wake-up instead of one per segment; EOF and errors still wake it), and is set back
     * to 1 before returning, as the loop's transport expects it. `*quick`: poll() returned
     * within `quick_ns`, too soon to have slept: what it waited for was already there. */
    static int femtows_ext_wait(int fd, int wake, int timeout_ms, int lowat, long long quick_ns,
                                int *quick) {
        struct pollfd p[2];
        int r, one = 1;
        long long t0;
        if (lowat > 1 &&
                setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) != 0)
            lowat = 0;
        p[0].fd = fd; p[0].events = POLLIN; p[0].revents = 0;
        p[1].fd = wake; p[1].events = POLLIN; p[1].revents = 0;
        t0 = femtows_ext_now_ns();
        r = poll(p, 2, timeout_ms);
        *quick = femtows_ext_now_ns() - t0 < quick_ns;
        if (lowat > 1)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
        if (r < 0) return -1;
        if (r == 0) return 0;
        if (p[1].revents) return 2;
        return 1;
    }
    /* recv() without blocking: > 0 bytes, 0 EOF, -1 error, -2 nothing to read (EAGAIN). */
    static Py_ssize_t femtows_ext_recv(int fd, char *buf, size_t n) {
        ssize_t r;
        do { r = recv(fd, buf, n, MSG_DONTWAIT); } while (r < 0 && errno == EINTR);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -2;
        return (Py_ssize_t)r;
    }
    static void femtows_ext_drain(int fd) {
        char b[64];
        while (read(fd, b, sizeof(b)) > 0) {}
    }
    static void femtows_ext_wake(int fd) {
        char b = 1;
        ssize_t r = write(fd, &b, 1);  /* a full pipe is woken already */
        (void)r;
    }
    """
    int femtows_ext_wait(int fd, int wake, int timeout_ms, int lowat, long long quick_ns,
                         int *quick) nogil
    int __builtin_popcount(unsigned int x) nogil
    Py_ssize_t femtows_ext_recv(int fd, char *buf, size_t n) nogil
    void femtows_ext_drain(int fd) nogil
    void femtows_ext_wake(int fd) nogil

cdef extern from "unistd.h":
    int close(int fd) nogil

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

# A thread waiting for the rest of a frame of at least EXT_LOWAT_MIN bytes asks poll() to wake
# it only once it is all there (SO_RCVLOWAT, capped at EXT_LOWAT_MAX).
cdef enum:
    EXT_LOWAT_MIN = 16384
    EXT_LOWAT_MAX = 1048576

# The thread reading the socket recv()s first and poll()s only when nothing was there (a reply
# that arrived while it was sending, the rest of a frame already in the socket): one syscall
# instead of poll() + recv() (and the SO_RCVLOWAT pair). Whether that pays depends on the
# peer, so each connection keeps, for each kind of wait (start of a message, rest of a frame),
# the last 8 outcomes as bits: data was there (the recv() found it, or poll() returned within
# EXT_QUICK_NS, too soon to have slept). It tries first while at least EXT_TRY_MIN of them
# were: a try that finds nothing costs one recv(), one that finds data saves a poll().
cdef enum:
    EXT_TRY_MIN = 4
    EXT_QUICK_NS = 2000

cdef int _ext_read_first = -1          # -1: as the history says; 0: never; 1: always


def _set_ext_read_first(int policy):
    """For tests: whether a reading thread recv()s before it polls: -1 as each connection's
    history says (the default), 0 never, 1 always."""
    global _ext_read_first
    if policy not in (-1, 0, 1):
        raise ValueError(f"policy must be -1, 0 or 1, not {policy}")
    _ext_read_first = policy

# Who reads the socket of a threading-API connection (see Engine._ext_recv).
cdef enum:
    EXT_OFF = 0         # the loop, always (asyncio API, TLS, compression, debug logging)
    EXT_LOOP = 1        # the loop; a thread waiting in recv may ask for the socket
    EXT_GRANTING = 2    # asked: Engine._ext_grant is queued on the loop
    EXT_USER = 3        # the thread in recv reads it; the transport's reading is paused
    EXT_RETURNING = 4   # handed back: Engine._ext_return is queued on the loop
    EXT_DEAD = 5        # the connection is closed

#: ``Engine._ext`` while the thread in recv holds the socket (for the sync layer and tests).
EXT_READING = EXT_USER
#: What a ``SyncWaiter`` gets when the loop has handed the socket to the waiting thread.
EXT_GRANTED = object()
#: What ``Engine._ext_recv`` returns when its timeout elapsed.
EXT_TIMEOUT = object()
#: How often the loop checks whether a thread holding the socket has left recv (seconds): a
#: PING or CLOSE from the peer waits at most this long for an answer while nobody is in recv.
EXT_CHECK_INTERVAL = 0.05

cdef object _EXT_GRANTED = EXT_GRANTED
cdef object _EXT_TIMEOUT = EXT_TIMEOUT

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
    # a thread reading the socket itself (threading API, see _ext_recv)
    cdef public int _ext
    cdef public bint _in_recv
    cdef bint _ext_revoke
    cdef int _ext_fd                    # dup of the socket's fd, used only by that thread
    cdef int _wake_r                    # pipe that wakes it (revocation, connection lost)
    cdef int _wake_w
    cdef unsigned int _ext_seen[2]      # the last 8 waits of each kind: 1 where data was there
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
        self._ext_fd = -1
        self._wake_r = -1
        self._wake_w = -1
        self._ext_seen[0] = self._ext_seen[1] = 0xFF

    def __dealloc__(self):
        self._ext_close_fds()

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
            if (self._q_high >= 0 and not self._reading_paused and not self._wst._ext_reading
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
        self._ext_shutdown()
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
            if not self._stream_ended and not self._wst._ext_reading:
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

    # -- a thread reading the socket itself (threading API) -----------------------------------
    #
    # A thread blocked in the threading API's recv normally waits for the loop's thread to
    # read the reply and wake it: two threads, and context switches, per message. Instead the
    # loop can hand the socket to that thread (_ext_grant: the transport stops reading), which
    # then polls it itself and parses what it reads with the core (WSTransport._ext_room and
    # _ext_commit):
    # plain whole data frames only. The first frame of any other kind (PING, PONG, CLOSE,
    # fragments, anything invalid), EOF or an error hands the socket back (_ext_return) with
    # that frame still buffered, and the loop handles it as if it had read it. The loop takes
    # the socket back by itself when no thread is in recv at its periodic check (_ExtTicker),
    # so PINGs and CLOSE from the peer are answered while the application does something else,
    # and at once when close() or ping() is called. It never reads while a thread is in
    # recv; it revokes (_ext_revoke + the wake pipe) and that thread hands the socket back.
    # The thread polls a dup of the fd, so the loop closing the transport never leaves it
    # with a closed (or reused) descriptor; the dup is closed by whoever sees the connection
    # closed with no thread in recv. Every state change happens with the GIL held, in C code
    # that does not let it go between the check and the change.

    def _ext_enable(self):
        """On the loop's thread: a threading-API connection whose socket a waiting thread
        may read itself (plain TCP, no compression: the direct-send conditions)."""
        cdef WSTransport wst = self._wst
        if (self._ext == EXT_OFF and wst is not None and wst._fd >= 0
                and wst._pmd is None and not self._debug):
            self._ext = EXT_LOOP

    def _ext_request(self, waiter):
        """In the thread about to wait on ``waiter``: ask the loop for the socket."""
        if self._ext == EXT_LOOP and self._state == S_OPEN and not self._reading_paused:
            self._ext = EXT_GRANTING
            self._loop.call_soon_threadsafe(self._ext_grant, waiter)

    def _ext_grant(self, waiter):
        """On the loop's thread: hand the socket to the thread waiting on ``waiter``."""
        cdef WSTransport wst = self._wst
        if self._ext != EXT_GRANTING:
            return
        self._ext = EXT_LOOP
        if (self._state != S_OPEN or self._stream_ended or self._reading_paused
                or self._getter is not waiter or wst is None or wst._fd < 0
                or wst.close_handshake is not None or wst.is_close_frame_sent
                or wst.underlying_transport.is_closing()):
            return
        if self._ext_fd < 0:
            self._ext_fd = os.dup(wst._fd)
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._wake_r = r
            self._wake_w = w
        else:
            femtows_ext_drain(self._wake_r)
        wst.underlying_transport.pause_reading()
        wst._ext_reading = True
        self._ext_revoke = False
        self._ext = EXT_USER
        _ext_ticker(self._loop).add(self)
        self._getter = None
        waiter.set_result(_EXT_GRANTED)

    def _ext_recv(self, double timeout):
        """In the thread in recv, while it holds the socket: the next queued frame
        ``(opcode, fin, data)``; ``EXT_TIMEOUT`` once ``timeout`` seconds (< 0: no limit;
        0: only what is there) passed; None when the loop has the socket now (wait on it)."""
        cdef int r, ms
        cdef Py_ssize_t n
        cdef double deadline = _monotonic() + timeout if timeout > 0 else 0.0
        cdef WSTransport wst = self._wst
        cdef object owner               # keeps the read buffer's owner alive during recv()
        cdef char *buf
        cdef size_t room, need
        cdef int fd, wake, lowat, quick, kind
        cdef unsigned int seen
        cdef bint tried
        if self._ext != EXT_USER:
            return None
        self._in_recv = True
        try:
            while True:
                if self._frames:
                    return self._frames.popleft()
                if self._ext != EXT_USER:
                    return None
                if self._ext_revoke:
                    self._ext_handback()
                    return None
                if timeout < 0:
                    ms = -1
                elif timeout == 0:
                    ms = 0
                else:
                    ms = <int>((deadline - _monotonic()) * 1000.0 + 0.999)
                    if ms < 0:
                        ms = 0
                fd = self._ext_fd
                wake = self._wake_r
                owner = wst._protocol
                buf = wst._ext_room(&room, &need)
                if buf == NULL:
                    self._ext_handback()
                    continue
                # The kernel copies straight into the core's read buffer: nothing on the loop's
                # thread moves or frees it while _ext_reading (see WSTransport._ext_room).
                kind = need > 0
                seen = self._ext_seen[kind]
                if _ext_read_first < 0:
                    tried = __builtin_popcount(seen) >= EXT_TRY_MIN
                else:
                    tried = _ext_read_first
                n = -2
                if tried:
                    with nogil:
                        n = femtows_ext_recv(fd, buf, room)
                    self._ext_seen[kind] = ((seen << 1) | (n != -2)) & 0xFF
                if n == -2:
                    # The rest of a large frame: wake up once it has all arrived.
                    lowat = <int>min(need, EXT_LOWAT_MAX) if need >= EXT_LOWAT_MIN else 0
                    with nogil:
                        r = femtows_ext_wait(fd, wake, ms, lowat, EXT_QUICK_NS, &quick)
                    if r == 0:
                        return _EXT_TIMEOUT
                    if r < 0:
                        PyErr_CheckSignals()  # EINTR: run the handlers (Ctrl-C raises here)
                        continue
                    if r == 2 or self._ext != EXT_USER:
                        self._ext_revoke = True
                        continue
                    if not tried:
                        self._ext_seen[kind] = ((seen << 1) | (quick != 0)) & 0xFF
                    with nogil:
                        n = femtows_ext_recv(fd, buf, room)
                if self._ext != EXT_USER:
                    return None                 # the connection was lost meanwhile
                if n == -2:
                    continue
                if n <= 0:
                    # EOF or an error: the loop reads the socket again and sees it for itself.
                    self._ext_handback()
                    continue
                if wst._ext_commit(<size_t>n):
                    self._ext_handback()
                owner = None
                if timeout == 0 and not self._frames:
                    return _EXT_TIMEOUT
        finally:
            self._in_recv = False
            if self._ext == EXT_USER and self._ext_revoke:
                self._ext_handback()
            elif self._ext == EXT_DEAD:
                self._ext_close_fds()

    cdef int _ext_handback(self) except -1:
        # In the thread holding the socket: give it back to the loop.
        if self._ext == EXT_USER:
            self._ext = EXT_RETURNING
            self._loop.call_soon_threadsafe(self._ext_return)
        return 0

    def _ext_release(self):
        """In a thread about to wait for the loop (close, ping): the loop must read the
        socket again. Takes it back from a thread in recv through the wake pipe."""
        if self._ext == EXT_GRANTING:
            self._ext = EXT_LOOP          # the queued grant will do nothing
        elif self._ext == EXT_USER:
            if self._in_recv:
                self._ext_revoke = True
                femtows_ext_wake(self._wake_w)
            else:
                self._ext_handback()

    def _ext_return(self):
        """On the loop's thread: the socket was handed back."""
        if self._ext == EXT_RETURNING:
            self._ext_take_back()

    cdef bint _ext_check(self) except -1:
        """On the loop's thread, every EXT_CHECK_INTERVAL while a thread holds the socket
        (``_ExtTicker``): take it back if no thread is in recv, so that the peer's PING or
        CLOSE is answered. False: this connection needs no more checks."""
        if self._ext != EXT_USER:
            return False
        if self._in_recv:
            return True
        self._ext_take_back()
        return False

    cdef int _ext_take_back(self) except -1:
        # On the loop's thread, with no thread reading the socket.
        cdef WSTransport wst = self._wst
        self._ext = EXT_LOOP
        wst._ext_reading = False
        wst._ext_resume()               # what that thread left buffered (the frame it stopped at)
        if (not self._reading_paused and not self._stream_ended
                and not wst.underlying_transport.is_closing()):
            wst.underlying_transport.resume_reading()
        return 0

    cdef int _ext_shutdown(self) except -1:
        # On the loop's thread, when the connection is lost.
        if self._ext == EXT_OFF:
            return 0
        self._ext = EXT_DEAD
        if self._wst is not None:
            self._wst._ext_reading = False
        if self._in_recv:
            femtows_ext_wake(self._wake_w)  # that thread closes the fds on its way out
        else:
            self._ext_close_fds()
        return 0

    cdef void _ext_close_fds(self) noexcept:
        if self._ext_fd >= 0:
            close(self._ext_fd)
            self._ext_fd = -1
        if self._wake_r >= 0:
            close(self._wake_r)
            self._wake_r = -1
        if self._wake_w >= 0:
            close(self._wake_w)
            self._wake_w = -1

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
cdef class _ExtTicker:
    """One timer per event loop for every connection whose socket a thread holds: every
    EXT_CHECK_INTERVAL it asks each of them (``Engine._ext_check``) whether that thread is
    still in recv. One timer for all (not one per connection) keeps a server whose handler
    threads all wait in recv cheap: a C call per connection per tick."""

    cdef object loop
    cdef set engines
    cdef object handle

    def __cinit__(self, loop):
        self.loop = loop
        self.engines = set()
        self.handle = None

    cdef int add(self, Engine engine) except -1:
        self.engines.add(engine)
        if self.handle is None:
            self.handle = self.loop.call_later(EXT_CHECK_INTERVAL, self.tick)
        return 0

    def tick(self):
        cdef Engine engine
        self.handle = None
        for engine in list(self.engines):
            try:
                keep = engine._ext_check()
            except Exception as exc:  # never stop checking the others
                keep = False
                self.loop.call_exception_handler({
                    "message": "femtows: taking a socket back from a reading thread failed",
                    "exception": exc})
            if not keep:
                self.engines.discard(engine)
        if self.engines:
            self.handle = self.loop.call_later(EXT_CHECK_INTERVAL, self.tick)
        else:
            _ext_tickers.pop(self.loop, None)


cdef dict _ext_tickers = {}             # event loop -> its _ExtTicker, while it has connections


cdef _ExtTicker _ext_ticker(loop):
    cdef _ExtTicker ticker = _ext_tickers.get(loop)
    if ticker is None:
        ticker = _ext_tickers[loop] = _ExtTicker(loop)
    return ticker


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
