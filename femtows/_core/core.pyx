# cython: language_level=3
"""The femtows hot path: frame parser, frame builder, WSFrame, WSListener, WSTransport and the
asyncio protocol that drives them.

Theory of operation
-------------------
The event loop reads straight into a buffer handed out by ``get_buffer``, then
``buffer_updated`` parses every complete frame *in place*. A connection with nothing buffered
reads into one buffer shared by the thread's connections (``_SharedReadBuffer``): frames that
arrive whole are parsed there, and only an incomplete rest is copied into a private buffer of
the connection, sized for it and freed 1 s after it empties; so an idle connection holds no
read buffer. In either buffer, the header is decoded, the payload is unmasked where it lies, and the one
``WSFrame`` object of the connection is pointed at it and handed to ``WSListener.on_ws_frame``.
No Python object is created per frame; payload bytes are copied only if the user asks
(``get_payload_as_bytes`` and friends).

Sending builds the header (and, on the client, the masked payload) in one reusable write buffer
and issues a single ``sendmsg()`` on the socket when the transport has nothing queued; whatever
the kernel does not take is handed to the asyncio transport as an immutable copy.

The protocol rules of RFC 6455 are enforced here, strictly, before the listener sees anything:
see ``_check_header`` (per header) and ``_check_frame`` (per complete frame). A violation fails
the connection: CLOSE with the right code, no further frame reaches the listener, the TCP
connection is closed once the peer answers (or ``close_timeout`` expires).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memmove

from femtows._core.kernels cimport (
    FEMTOWS_UTF8_ACCEPT,
    FEMTOWS_UTF8_REJECT,
    femtows_mask_copy,
    femtows_mask_impl,
    femtows_mask_inplace,
    femtows_utf8_validate,
)

import asyncio
import logging
import os
import socket
import threading
from http import HTTPStatus as _HTTPStatus
from inspect import isawaitable as _isawaitable

from femtows import handshake as _handshake
from femtows.errors import WSInvalidMessageError, WSProtocolError
from femtows.logs import FEMTOWS_DEBUG_LL

cdef extern from "Python.h":
    unsigned long PyThread_get_thread_ident()
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    bint PyBytes_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyByteArray_CheckExact(object o)
    int PyBUF_READ

cdef extern from *:
    """
    #include <string.h>
    #include <sys/types.h>
    #include <sys/socket.h>
    #include <sys/uio.h>
    #ifndef MSG_NOSIGNAL
    #define MSG_NOSIGNAL 0
    #endif
    #ifndef _GNU_SOURCE
    void *memmem(const void *, size_t, const void *, size_t);
    #endif
    static inline ssize_t femtows_sendv(int fd, const char *a, size_t alen,
                                        const char *b, size_t blen) {
        struct iovec iov[2];
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        iov[0].iov_base = (void *)a; iov[0].iov_len = alen;
        iov[1].iov_base = (void *)b; iov[1].iov_len = blen;
        msg.msg_iov = iov;
        msg.msg_iovlen = blen ? 2 : 1;
        return sendmsg(fd, &msg, MSG_NOSIGNAL);
    }
    #include <time.h>
    /* The clock asyncio and time.monotonic() use on Linux; read once per socket read when
     * auto-ping is on (a vDSO call, no syscall). */
    static inline double femtows_monotonic(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    static inline uint16_t femtows_load_be16(const char *p) {
        const unsigned char *u = (const unsigned char *)p;
        return (uint16_t)((u[0] << 8) | u[1]);
    }
    static inline uint64_t femtows_load_be64(const char *p) {
        const unsigned char *u = (const unsigned char *)p;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = (v << 8) | u[i];
        return v;
    }
    static inline uint32_t femtows_load_u32(const char *p) {
        uint32_t v; memcpy(&v, p, 4); return v;
    }
    static inline void femtows_store_u32(char *p, uint32_t v) { memcpy(p, &v, 4); }
    /* The key to mask payload bytes starting at `offset`: the wire key bytes rotated by
     * offset % 4 (the kernels always apply key byte 0 to their first byte). */
    static inline uint32_t femtows_rotate_key(uint32_t key, size_t offset) {
        unsigned char k[4], r[4];
        memcpy(k, &key, 4);
        for (int i = 0; i < 4; i++) r[i] = k[(i + offset) & 3];
        memcpy(&key, r, 4);
        return key;
    }
    """
    double femtows_monotonic() nogil
    ssize_t femtows_sendv(int fd, const char *a, size_t alen, const char *b, size_t blen) nogil
    uint16_t femtows_load_be16(const char *p) nogil
    uint64_t femtows_load_be64(const char *p) nogil
    uint32_t femtows_load_u32(const char *p) nogil
    void femtows_store_u32(char *p, uint32_t v) nogil
    uint32_t femtows_rotate_key(uint32_t key, size_t offset) nogil
    void *memmem(const void *haystack, size_t hlen, const void *needle, size_t nlen) nogil



# Bytes kept free after the data in the read buffer, so that users' SIMD code may read a little
# past a payload's end without faulting (WSFrame.payload_ptr).
DEF READ_SLACK = 64
# A BINARY frame the reading thread of femtows.websockets.sync receives straight into its bytes.
DEF EXT_BIG_MIN = 65536
# The longest frame header: 2 bytes, a 64-bit length, a mask key.
DEF MAX_HEADER_LEN = 14
DEF MIN_READ_BUFFER = 2048
# A read buffer grown for a large frame goes back to its initial size once it has been empty
# for this long (seconds): memory follows the data in flight, and a connection busy with
# large messages reallocates at most once per period.
DEF READ_SHRINK_DELAY = 1.0
DEF MAX_CONTROL_PAYLOAD = 125
DEF MASK_POOL_SIZE = 4096
# Largest server payload copied next to its header when there is no direct send (TLS).
DEF COALESCE_MAX = 16384
# Client payloads above MASK_DIRECT_MIN are masked into a per-thread scratch buffer and sent
# from there, in chunks of at most MASK_CHUNK bytes (a multiple of 4, so every chunk starts at
# key phase 0; it also bounds the scratch buffer).
DEF MASK_DIRECT_MIN = 16384
DEF MASK_CHUNK = 4194304

cdef object _WSCloseCode = WSCloseCode
cdef object _WSMsgType = WSMsgType
cdef object _urandom = os.urandom
# One masking scratch buffer per thread (event loops may run in several threads and the
# direct send releases the GIL), shared by every connection of that thread.
cdef object _mask_scratch = threading.local()


cdef size_t _mask_chunk = MASK_CHUNK


def _set_mask_chunk(size_t size):
    """Tests only: change the chunk size of large client sends; returns the previous one."""
    global _mask_chunk
    if size == 0 or size % 4:
        raise ValueError("the chunk size must be a positive multiple of 4")
    old = _mask_chunk
    _mask_chunk = size
    return old


@cython.final
cdef class _SharedReadBuffer:
    """The read buffer of every connection of one thread that has nothing buffered.

    Valid from a connection's get_buffer() to its buffer_updated(), which event loops call
    back to back; ``owner`` says whose read it holds, ``busy`` is set while frames are parsed
    from it (a listener callback that feeds another connection gets a private buffer).
    """
    cdef char *ptr
    cdef size_t cap
    cdef void *owner
    cdef bint busy

    def __dealloc__(self):
        if self.ptr != NULL:
            PyMem_Free(self.ptr)
            self.ptr = NULL


cdef object _shared_rbufs = threading.local()


cdef _SharedReadBuffer _thread_shared_rbuf():
    cdef _SharedReadBuffer sh
    try:
        sh = <_SharedReadBuffer>_shared_rbufs.buf
    except AttributeError:
        sh = _SharedReadBuffer.__new__(_SharedReadBuffer)
        _shared_rbufs.buf = sh
    return sh


cdef bytearray _thread_mask_scratch(size_t need):
    """This thread's scratch buffer, at least need bytes long."""
    cdef bytearray buf
    try:
        buf = <bytearray>_mask_scratch.buf
    except AttributeError:
        buf = _mask_scratch.buf = bytearray()
    if <size_t>PyByteArray_GET_SIZE(buf) < need:
        PyByteArray_Resize(buf, <Py_ssize_t>need)
    return buf

# Header validation results: 0 is OK, anything else is the close code to fail with.
cdef enum ParseResult:
    NEED_MORE = -1
    HEADER_OK = 0


def _socket_options(sock):
    """``rcvbuf=... sndbuf=... nodelay=... quickack=...`` for the INFO connection log line."""
    if sock is None:
        return "socket=None"
    parts = []
    for name, level, opt in (
            ("rcvbuf", socket.SOL_SOCKET, socket.SO_RCVBUF),
            ("sndbuf", socket.SOL_SOCKET, socket.SO_SNDBUF),
            ("nodelay", socket.IPPROTO_TCP, socket.TCP_NODELAY),
            ("quickack", socket.IPPROTO_TCP, getattr(socket, "TCP_QUICKACK", None))):
        if opt is None:
            continue
        try:
            parts.append(f"{name}={sock.getsockopt(level, opt)}")
        except OSError:  # not TCP (a Unix socket from socket_factory)
            pass
    return " ".join(parts)


cdef inline bint _is_sendable_close_code(int code) noexcept nogil:
    """RFC 6455 §7.4: the codes an endpoint may put on the wire."""
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


cdef inline uint8_t _first_byte(WSMsgType msg_type, bint fin, bint rsv1, bint rsv2,
                               bint rsv3) noexcept nogil:
    return ((0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
            | (0x10 if rsv3 else 0) | <uint8_t>msg_type)


cdef inline size_t _header_len(size_t size, bint masked) noexcept nogil:
    """Bytes of the frame header for a ``size``-byte payload, mask key included."""
    return (2 if size < 126 else (4 if size <= 0xFFFF else 10)) + (4 if masked else 0)


cdef inline size_t _encode_header(char *h, uint8_t first_byte, size_t size,
                                  bint masked) noexcept nogil:
    """Write the header (without the mask key) at ``h``; returns its length."""
    cdef uint8_t mask_bit = 0x80 if masked else 0
    cdef int i
    h[0] = <char>first_byte
    if size < 126:
        h[1] = <char>(mask_bit | size)
        return 2
    if size <= 0xFFFF:
        h[1] = <char>(mask_bit | 126)
        h[2] = <char>(size >> 8)
        h[3] = <char>(size & 0xFF)
        return 4
    h[1] = <char>(mask_bit | 127)
    for i in range(8):
        h[2 + i] = <char>((size >> (56 - 8 * i)) & 0xFF)
    return 10


cdef object _close_code_to_py(int code):
    try:
        return _WSCloseCode(code)
    except ValueError:
        return code


# ------------------------------------------------------------------------------------------------
# Close bookkeeping

cdef class WSCloseInfo:
    """One CLOSE frame: its code (``WSCloseCode``, or an int for 3000-4999) and reason."""

    def __init__(self, code, str reason=""):
        self.code = code
        self.reason = reason

    def __repr__(self):
        return f"WSCloseInfo(code={self.code!r}, reason={self.reason!r})"


cdef class WSCloseHandshake:
    """What was received and sent during the closing handshake, and in which order."""

    def __repr__(self):
        return (f"WSCloseHandshake(recv={self.recv!r}, sent={self.sent!r}, "
                f"recv_then_sent={self.recv_then_sent})")


# ------------------------------------------------------------------------------------------------
# WSFrame

@cython.no_gc
@cython.final
cdef class WSFrame:
    """One received frame, pointing into the connection's read buffer.

    .. DANGER::
       A WSFrame is only valid inside ``WSListener.on_ws_frame``. femtows reuses the same object
       for the next frame and the bytes it points to are overwritten; keep a copy
       (``get_payload_as_bytes()``) if you need the payload later.
    """

    def __str__(self):
        return (f"WSFrame({_WSMsgType(self.msg_type).name}, fin={self.fin}, rsv1={self.rsv1}, "
                f"rsv2={self.rsv2}, rsv3={self.rsv3}, payload_size={self.payload_size}, "
                f"last_in_buffer={self.last_in_buffer}, tail_size={self.tail_size})")

    def __repr__(self):
        return self.__str__()

    cpdef bytes get_payload_as_bytes(self):
        """Copy the payload into a new ``bytes`` (or, when the payload already is one,
        received straight into it, that object)."""
        cdef object owner = self._payload_owner
        if (owner is not None and PyBytes_CheckExact(owner)
                and PyBytes_AS_STRING(owner) == self.payload_ptr
                and <size_t>PyBytes_GET_SIZE(owner) == self.payload_size):
            return <bytes>owner
        return PyBytes_FromStringAndSize(self.payload_ptr, <Py_ssize_t>self.payload_size)

    cpdef str get_payload_as_utf8_text(self):
        """Decode the payload as UTF-8 (a copy). Raises UnicodeDecodeError if it is not."""
        return PyUnicode_DecodeUTF8(self.payload_ptr, <Py_ssize_t>self.payload_size, NULL)

    cpdef str get_payload_as_ascii_text(self):
        """Decode the payload as ASCII (a copy). Raises UnicodeDecodeError if it is not."""
        return PyUnicode_DecodeASCII(self.payload_ptr, <Py_ssize_t>self.payload_size, NULL)

    cpdef object get_payload_as_memoryview(self):
        """A read-only, zero-copy view of the payload.

        .. DANGER:: the view is invalid once ``on_ws_frame`` returns.
        """
        return PyMemoryView_FromMemory(self.payload_ptr, <Py_ssize_t>self.payload_size,
                                       PyBUF_READ)

    cpdef object get_close_code(self):
        """The code of a CLOSE frame; ``WSCloseCode.NO_INFO`` when the payload has none."""
        if self.msg_type != WSMsgType.CLOSE:
            raise ValueError(f"get_close_code() called on a {_WSMsgType(self.msg_type).name} frame")
        if self.payload_size < 2:
            return _WSCloseCode(0)
        return _close_code_to_py(femtows_load_be16(self.payload_ptr))

    cpdef object get_close_message(self):
        """The reason bytes of a CLOSE frame, or None when it carries none."""
        if self.msg_type != WSMsgType.CLOSE:
            raise ValueError(
                f"get_close_message() called on a {_WSMsgType(self.msg_type).name} frame")
        if self.payload_size <= 2:
            return None
        return PyBytes_FromStringAndSize(self.payload_ptr + 2, <Py_ssize_t>self.payload_size - 2)

    cpdef object get_close_reason(self):
        """The reason of a CLOSE frame decoded as UTF-8, or None when it carries none."""
        if self.msg_type != WSMsgType.CLOSE:
            raise ValueError(
                f"get_close_reason() called on a {_WSMsgType(self.msg_type).name} frame")
        if self.payload_size <= 2:
            return None
        return PyUnicode_DecodeUTF8(self.payload_ptr + 2, <Py_ssize_t>self.payload_size - 2,
                                    NULL)


def _make_test_ws_frame(msg_type, payload=b"", bint fin=True, bint rsv1=False):
    """Build a standalone WSFrame over a private copy of ``payload`` (for users' unit tests)."""
    cdef WSFrame frame = WSFrame.__new__(WSFrame)
    cdef bytes data = bytes(payload)
    frame.msg_type = msg_type
    frame.fin = fin
    frame.rsv1 = rsv1
    frame.payload_ptr = PyBytes_AS_STRING(data)
    frame.payload_size = PyBytes_GET_SIZE(data)
    frame.last_in_buffer = True
    frame._payload_owner = data
    return frame


# ------------------------------------------------------------------------------------------------
# WSListener

class _DefaultBackpressureHandler(Exception):
    """Raised by the default pause_writing/resume_writing so the protocol can warn once."""


cdef class WSListener:
    """Base class for connection handlers. Subclass it and override the ``on_ws_*`` callbacks.

    All callbacks are plain (non-async) methods called from the event loop as data arrives.
    Subclasses written in Cython (``cdef class``) are called through the C vtable.
    """

    cpdef on_ws_connected(self, WSTransport transport):
        """The upgrade completed; ``transport`` is ready to send."""

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        """A frame arrived. ``frame`` is valid only until this method returns."""

    cpdef on_ws_disconnected(self, WSTransport transport):
        """The TCP connection is closed; nothing can be sent any more."""

    cpdef send_user_specific_ping(self, WSTransport transport):
        """Send the ping used by ``measure_roundtrip_time`` (and auto-ping). Default: PING."""
        transport.send_ping()

    cpdef bint is_user_specific_pong(self, WSFrame frame) except -1:
        """Whether ``frame`` answers ``send_user_specific_ping``. Default: it is a PONG."""
        return frame.msg_type == WSMsgType.PONG

    cpdef pause_writing(self):
        """The transport's write buffer went over its high watermark: stop producing."""
        raise _DefaultBackpressureHandler()

    cpdef resume_writing(self):
        """The transport's write buffer drained below its low watermark: produce again."""
        raise _DefaultBackpressureHandler()


# ------------------------------------------------------------------------------------------------
# WSTransport

cdef class WSTransport:
    """The sending side of one WebSocket connection, handed to every WSListener callback.

    Every method must be called from the thread that runs the connection's event loop.
    """

    def __cinit__(self):
        self._fd = -1
        self._wbuf = NULL
        self._wbuf_cap = 0
        self._close_timer = None

    def __dealloc__(self):
        if self._wbuf != NULL:
            PyMem_Free(self._wbuf)
            self._wbuf = NULL

    def __init__(self, *args, **kwargs):
        raise TypeError("WSTransport is created by femtows, not by users")

    @property
    def compression(self):
        """The negotiated permessage-deflate parameters (``WSDeflateParams``), or None."""
        return self._pmd.params if self._pmd is not None else None

    @property
    def is_disconnected(self):
        """True once the underlying connection is closed."""
        return self._disconnected

    def __repr__(self):
        side = "client" if self.is_client_side else "server"
        return f"<WSTransport {side} disconnected={self._disconnected}>"

    cdef int _check_thread(self, str method) except -1:
        if PyThread_get_thread_ident() != self._thread_id:
            raise RuntimeError(
                f"WSTransport.{method} called from a wrong thread: "
                f"transport thread id={self._thread_id}, "
                f"curr thread_id={PyThread_get_thread_ident()}; a transport belongs to the "
                f"thread of its event loop (use loop.call_soon_threadsafe)")
        return 0

    # -- write buffer and masking keys --------------------------------------------------------

    cdef int _reserve_wbuf(self, size_t size) except -1:
        cdef size_t cap
        cdef char *p
        if size <= self._wbuf_cap:
            return 0
        cap = max(size + 256, self._wbuf_cap * 2)
        p = <char *>PyMem_Realloc(self._wbuf, cap)
        if p == NULL:
            raise MemoryError()
        self._wbuf = p
        self._wbuf_cap = cap
        return 0

    cdef uint32_t _next_mask_key(self) except? 0:
        # RFC 6455 §5.3: keys must be unpredictable, so they come from the OS CSPRNG, drawn
        # 1024 keys at a time to keep the per-frame cost at a memcpy.
        cdef uint32_t key
        if self._mask_pool is None or self._mask_pool_pos + 4 > MASK_POOL_SIZE:
            self._mask_pool = _urandom(MASK_POOL_SIZE)
            self._mask_pool_pos = 0
        key = femtows_load_u32(PyBytes_AS_STRING(self._mask_pool) + self._mask_pool_pos)
        self._mask_pool_pos += 4
        return key

    # -- the send path ------------------------------------------------------------------------

    cdef bint _can_send_direct(self) except -1:
        """True when a frame may go straight to the socket with sendmsg(): a plain TCP socket
        whose transport is open and has nothing queued (ordering)."""
        return (self._fd >= 0 and not self._t_is_closing()
                and self._t_write_buffer_size() == 0)

    cdef int _write(self, const char *head, size_t head_len, const char *body,
                    size_t body_len) except -1:
        """Put head+body on the wire: one sendmsg() when nothing is queued, else the transport."""
        cdef ssize_t sent = 0
        cdef size_t total = head_len + body_len
        cdef bytes rest
        cdef char *dst
        if self._disconnect_called or self._disconnected or self._t_is_closing():
            # A closing transport (the connection broke; connection_lost is on its way) drops
            # what it is given anyway: do not make it log a warning for every send.
            if self._debug:
                self._logger.log(FEMTOWS_DEBUG_LL, "send after disconnect ignored")
            return 0
        if self._pending is not None:
            self._flush_pending()
        # The direct send is only safe while the transport is open (uvloop closes the fd at
        # once on an error, connection_lost comes a loop iteration later, and the fd number may
        # be reused meanwhile: checked above) and has nothing queued (ordering).
        if self._fd >= 0 and self._t_write_buffer_size() == 0:
            if not self._send_holds_gil:
                with nogil:
                    sent = femtows_sendv(self._fd, head, head_len, body, body_len)
            elif self._pending is None:
                # Another thread may send directly (_send_from_thread): the GIL, held from the
                # check above to the end of sendmsg(), keeps its frames out of this one.
                self._tx_queued = False
                sent = femtows_sendv(self._fd, head, head_len, body, body_len)
            else:
                self._flush_pending()   # its rest arrived meanwhile: it goes first
            if <size_t>sent == total:
                return 0
            if sent < 0:
                # EAGAIN: the kernel buffer is full; anything else (EPIPE, ECONNRESET) is
                # reported by the transport itself when it retries the write below.
                sent = 0
        self._tx_queued = True
        if self._write_nocheck is not None:
            # aiofastnet sends (or encrypts) at once and copies only what it has to keep, so
            # it gets views of our buffers: no allocation and no copy here.
            if <size_t>sent < head_len and body_len:
                self._writelines_nocheck((
                    PyMemoryView_FromMemory(<char *>head + sent, head_len - sent, PyBUF_READ),
                    PyMemoryView_FromMemory(<char *>body, body_len, PyBUF_READ)))
            elif <size_t>sent < head_len:
                self._write_nocheck(
                    PyMemoryView_FromMemory(<char *>head + sent, total - sent, PyBUF_READ))
            else:
                self._write_nocheck(PyMemoryView_FromMemory(
                    <char *>body + (sent - head_len), total - sent, PyBUF_READ))
            return 0
        # The transport may keep a reference to what it is given, so it gets an immutable copy
        # of what the kernel did not take.
        rest = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(total - <size_t>sent))
        dst = PyBytes_AS_STRING(rest)
        if <size_t>sent < head_len:
            memcpy(dst, head + sent, head_len - sent)
            if body_len:
                memcpy(dst + head_len - sent, body, body_len)
        else:
            memcpy(dst, body + (sent - head_len), total - sent)
        self.underlying_transport.write(rest)
        return 0

    cdef int _flush_pending(self) except -1:
        """Give the transport the rest of a partial direct send (on the loop's thread)."""
        cdef bytes rest = self._pending
        self._pending = None
        self._tx_queued = True
        if self._write_nocheck is not None:
            self._write_nocheck(rest)
        else:
            self.underlying_transport.write(rest)
        return 0

    def _flush_direct_rest(self):
        """On the loop's thread, soon after a partial ``_send_from_thread``: send its rest."""
        if self._pending is not None:
            if self._disconnect_called or self._disconnected or self._t_is_closing():
                self._pending = None
            else:
                self._flush_pending()

    def _send_from_thread(self, uint8_t first_byte, message, closing_probe):
        """Send one whole-message frame from a thread other than the loop's (the threading
        API), straight to the socket; femtows.websockets.sync.connection explains why this is
        safe. ``_send_holds_gil`` must have been set on the loop's thread first.

        ``message`` is bytes or str; ``closing_probe`` is the transport's ``is_closing`` when
        it is thread-safe and its transport closes the fd before connection_lost (uvloop), else
        None. Returns -1: nothing was sent, use the loop; 0: sent; n > 0: n bytes are kept for
        the loop's thread, which sends them before anything else (``_flush_direct_rest``).
        """
        cdef const char *ptr
        cdef Py_ssize_t size
        cdef char head[14]
        cdef char *a
        cdef const char *b = NULL
        cdef size_t alen, blen = 0, total
        cdef ssize_t sent
        cdef uint32_t key = 0
        cdef bytes rest
        cdef char *dst
        if PyBytes_CheckExact(message):
            ptr = PyBytes_AS_STRING(message)
            size = PyBytes_GET_SIZE(message)
        elif PyUnicode_CheckExact(message):
            ptr = PyUnicode_AsUTF8AndSize(message, &size)
        else:
            return -1
        if not self._send_holds_gil or self._fd < 0 or self._pmd is not None:
            return -1
        if self.is_client_side:
            if <size_t>size > _mask_chunk:
                return -1
            key = self._next_mask_key()    # may call os.urandom, which releases the GIL
            a = PyByteArray_AS_STRING(_thread_mask_scratch(14 + <size_t>size))
        else:
            a = head
        if closing_probe is not None and closing_probe():
            return -1
        # From here to the end of sendmsg() no Python code runs, so the GIL is not released:
        # no other thread can send, close or queue anything in between.
        if (self._tx_queued or self._pending is not None or self.is_close_frame_sent
                or self._disconnect_called or self._disconnected):
            return -1
        alen = _encode_header(a, first_byte, <size_t>size, self.is_client_side)
        if self.is_client_side:
            femtows_store_u32(a + alen, key)
            alen += 4
            if size:
                femtows_mask_copy(<unsigned char *>a + alen, <const unsigned char *>ptr,
                                  <size_t>size, key)
            alen += <size_t>size
        else:
            b = ptr
            blen = <size_t>size
        total = alen + blen
        sent = femtows_sendv(self._fd, a, alen, b, blen)
        if <size_t>sent == total:
            return 0
        if sent < 0:
            sent = 0                    # EAGAIN, or an error the transport reports later
        self._tx_queued = True
        rest = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(total - <size_t>sent))
        dst = PyBytes_AS_STRING(rest)
        if <size_t>sent < alen:
            memcpy(dst, a + sent, alen - <size_t>sent)
            if blen:
                memcpy(dst + alen - <size_t>sent, b, blen)
        else:
            memcpy(dst, b + (<size_t>sent - alen), total - <size_t>sent)
        self._pending = rest
        return <Py_ssize_t>(total - <size_t>sent)

    cdef char *_ext_room(self, size_t *room, size_t *need) except? NULL:
        """In the thread that holds the socket (femtows.websockets.sync), with the GIL: where
        its next recv() may write, ``room[0]`` bytes of the private read buffer, which nothing
        else moves or frees until ``_ext_commit`` (the loop's shrink timer skips it while
        ``_ext_reading``); ``need[0]``: bytes still missing of a frame that is arriving (0 if
        none). The caller holds a reference to ``_protocol`` (the buffer's owner) until then.
        NULL: the connection is no longer open."""
        room[0] = 0
        need[0] = 0
        if not self._ext_reading:
            raise RuntimeError("_ext_room outside of an external read")
        if self._protocol is None or self._disconnected:
            return NULL
        return (<WSProtocolCore>self._protocol)._ext_room(room, need)

    cdef bint _ext_commit(self, size_t n) except -1:
        """Parse the ``n`` bytes recv() put where ``_ext_room`` said; True: the loop must take
        over (see ``WSProtocolCore._ext_commit``)."""
        cdef WSProtocolCore proto
        if self._protocol is None or self._disconnected:
            return True
        # A strong reference for the whole parse: connection_lost (on the loop's thread, if
        # it runs while the GIL is let go in here) drops the transport's one.
        proto = <WSProtocolCore>self._protocol
        return proto._ext_commit(n)

    def _ext_feed_for_tests(self, bytes data):
        """Tests and fuzzing: what femtows.websockets.sync's thread in recv does with ``data``
        (what its recv() calls returned) while ``_ext_reading`` is set: ``_ext_room``, copy,
        ``_ext_commit``, until it is all taken or the loop must take over. Returns (bytes
        taken into the read buffer, whether the loop must take over now)."""
        cdef const char *src = data
        cdef size_t n = <size_t>len(data)
        cdef size_t done = 0, room, need, k
        cdef char *p
        cdef object owner = self._protocol
        while done < n:
            p = self._ext_room(&room, &need)
            if p == NULL:
                return done, True
            k = min(room, n - done)
            memcpy(p, src + done, k)
            done += k
            if self._ext_commit(k):
                return done, True
        return done, False

    def _ext_resume(self):
        """On the loop's thread, after ``_ext_reading`` was cleared: parse what the other
        thread left buffered. The caller resumes the transport's reading."""
        if self._ext_reading:
            raise RuntimeError("_ext_resume while another thread reads")
        if self._protocol is not None and not self._disconnected:
            (<WSProtocolCore>self._protocol)._ext_resume()

    cdef int _send_frame(self, uint8_t first_byte, const char *ptr, size_t size) except -1:
        cdef char *h
        cdef size_t hlen
        cdef uint32_t key
        cdef bint large = (self.is_client_side and size > MASK_DIRECT_MIN
                           and not self._disconnect_called and not self._disconnected)
        # The client masks while copying the payload next to the header (one pass): small
        # payloads into the connection's buffer, large ones into the thread's scratch buffer.
        # The server sends the caller's payload as a second iovec, uncopied.
        self._reserve_wbuf(14 + size if self.is_client_side and not large else 14)
        h = self._wbuf
        hlen = _encode_header(h, first_byte, size, self.is_client_side)
        if self.is_client_side:
            key = self._next_mask_key()
            femtows_store_u32(h + hlen, key)
            hlen += 4
            if large:
                return self._send_masked_large(h, hlen, ptr, size, key)
            if size:
                femtows_mask_copy(<unsigned char *>h + hlen, <const unsigned char *>ptr, size,
                                  key)
            return self._write(h, hlen + size, NULL, 0)
        if self._fd < 0 and size <= COALESCE_MAX and self._write_nocheck is not None:
            # No direct send (TLS): header and payload as two writes would become two TLS
            # records; a small payload is cheaper to copy next to the header.
            self._reserve_wbuf(hlen + size)
            h = self._wbuf
            if size:
                memcpy(h + hlen, ptr, size)
            return self._write(h, hlen + size, NULL, 0)
        return self._write(h, hlen, ptr, size)

    cdef int _send_data_pmd(self, WSMsgType msg_type, const char *ptr, size_t size, bint fin,
                            bint rsv1, bint rsv2, bint rsv3, bint compress) except -1:
        """A data frame with permessage-deflate negotiated: compressed (RSV1 on the first frame
        of the message) into the deflate buffer, header written in front of it, one write."""
        cdef size_t n, hlen
        cdef char *buf
        cdef char *h
        cdef uint32_t key
        if rsv1:
            raise ValueError("RSV1 belongs to permessage-deflate on this connection; "
                             "pass compress=False to send a message uncompressed")
        if msg_type != WSMsgType.CONTINUATION:
            self._pmd_sending = compress
        if not self._pmd_sending:
            return self._send_frame(_first_byte(msg_type, fin, False, rsv2, rsv3), ptr, size)
        if fin:
            self._pmd_sending = False
        if self._disconnect_called or self._disconnected:
            return 0                    # nothing goes out any more; the zlib state may be gone
        buf = self._pmd.deflate_frame(ptr, size, fin, 14, &n)
        hlen = _header_len(n, self.is_client_side)
        h = buf + 14 - hlen
        _encode_header(h, _first_byte(msg_type, fin, msg_type != WSMsgType.CONTINUATION, rsv2,
                                      rsv3), n, self.is_client_side)
        if self.is_client_side:
            key = self._next_mask_key()
            femtows_store_u32(buf + 10, key)
            femtows_mask_inplace(<unsigned char *>buf + 14, n, key)
        self._write(h, hlen + n, NULL, 0)
        self._pmd.trim()
        return 0

    cdef int _send_masked_large(self, const char *head, size_t head_len, const char *ptr,
                                size_t size, uint32_t key) except -1:
        """Send a large client frame, masking its payload into the thread's scratch buffer.

        Masking into the connection's own buffer writes the whole payload to memory that is
        cache-cold when many connections send large messages (16 x 1 MiB buffers do not fit
        in cache), and the kernel then reads it back. One scratch buffer per thread, shared
        by its connections, stays in cache. Payloads above MASK_CHUNK go out in chunks.
        Whatever the kernel does not take goes to the transport in one write, so nothing else
        (a send from pause_writing, say) can land inside this frame.
        """
        cdef size_t n, off
        cdef ssize_t sent
        cdef char *s
        if self._fd < 0 and self._write_nocheck is None:
            # The loop's TLS transport keeps what it is given: mask straight into a bytes.
            return self._queue_masked(head, head_len, ptr, size, key)
        if self._send_holds_gil:
            if self._pending is not None:
                self._flush_pending()
            if size > _mask_chunk:
                self._tx_queued = True  # no direct send from another thread between chunks
        s = PyByteArray_AS_STRING(_thread_mask_scratch(14 + min(size, _mask_chunk)))
        memcpy(s, head, head_len)
        while True:
            n = min(size, _mask_chunk)
            femtows_mask_copy(<unsigned char *>s + head_len, <const unsigned char *>ptr, n, key)
            if n == size:
                # The last (usually the only) piece goes out like any other frame.
                return self._write(s, head_len + n, NULL, 0)
            # Every chunk is a multiple of 4 bytes long: the next one starts at key phase 0.
            ptr += n
            size -= n
            off = 0
            if self._can_send_direct():
                if self._send_holds_gil:
                    sent = femtows_sendv(self._fd, s, head_len + n, NULL, 0)
                else:
                    with nogil:
                        sent = femtows_sendv(self._fd, s, head_len + n, NULL, 0)
                if <size_t>sent == head_len + n:
                    head_len = 0
                    continue
                if sent > 0:
                    off = <size_t>sent
                # else EAGAIN, or an error the transport reports when it writes below
            return self._queue_masked(s + off, head_len + n - off, ptr, size, key)

    cdef int _queue_masked(self, const char *done, size_t done_len, const char *ptr,
                           size_t size, uint32_t key) except -1:
        """Give the transport done[:done_len] followed by ptr[:size] masked, as one bytes."""
        cdef bytes data = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(done_len + size))
        cdef char *d = PyBytes_AS_STRING(data)
        self._tx_queued = True
        memcpy(d, done, done_len)
        femtows_mask_copy(<unsigned char *>d + done_len, <const unsigned char *>ptr, size, key)
        if self._write_nocheck is not None:
            self._write_nocheck(data)
        else:
            self.underlying_transport.write(data)
        return 0

    cpdef send(self, WSMsgType msg_type, message, bint fin=True, bint rsv1=False,
               bint rsv2=False, bint rsv3=False, bint compress=True):
        """Send one frame.

        Args:
            msg_type: the opcode. CONTINUATION/TEXT/BINARY for data; PING/PONG/CLOSE control
                frames must be at most 125 bytes and final.
            message: str (sent as UTF-8), bytes, bytearray, memoryview, any object with the
                buffer protocol, or None for an empty payload. It is not retained.
            fin: False for every frame of a fragmented message but the last.
            rsv1, rsv2, rsv3: reserved bits, for extensions. With permessage-deflate
                negotiated RSV1 is femtows's: ``rsv1=True`` is a ValueError.
            compress: with permessage-deflate negotiated (``compression=``), False sends this
                message uncompressed. Decided by the first frame of a message; CONTINUATION
                frames follow it. Ignored without compression and for control frames.

        With compression, each data frame is compressed as it is sent (a fragmented message
        is compressed frame by frame, flushed at each frame, so it streams).

        Sends after ``send_close()`` are ignored (logged at debug level).
        """
        cdef const char *ptr = NULL
        cdef Py_ssize_t size = 0
        cdef Py_buffer view
        cdef bint have_view = False
        self._check_thread("send")
        if self.is_close_frame_sent:
            if self._debug:
                self._logger.log(FEMTOWS_DEBUG_LL, "send() after send_close() ignored")
            return
        if message is None:
            pass
        elif PyBytes_CheckExact(message):
            ptr = PyBytes_AS_STRING(message)
            size = PyBytes_GET_SIZE(message)
        elif PyUnicode_CheckExact(message):
            ptr = PyUnicode_AsUTF8AndSize(message, &size)
        else:
            PyObject_GetBuffer(message, &view, PyBUF_SIMPLE)
            have_view = True
            ptr = <const char *>view.buf
            size = view.len
        try:
            if msg_type >= 8:
                if size > MAX_CONTROL_PAYLOAD:
                    raise ValueError(
                        f"control frame payload is {size} bytes; RFC 6455 allows at most 125")
                if not fin:
                    raise ValueError("control frames cannot be fragmented (fin=False)")
                if msg_type == WSMsgType.CLOSE:
                    self._send_close_raw(ptr, size)
                    return
            elif self._pmd is not None:
                self._send_data_pmd(msg_type, ptr, <size_t>size, fin, rsv1, rsv2, rsv3, compress)
                return
            self._send_frame(_first_byte(msg_type, fin, rsv1, rsv2, rsv3), ptr, <size_t>size)
        finally:
            if have_view:
                PyBuffer_Release(&view)

    cdef send_reuse_external_buffer(self, WSMsgType msg_type, char *msg_ptr, size_t msg_size,
                                    bint fin=True, bint rsv1=False, bint rsv2=False,
                                    bint rsv3=False):
        """Cython only: send msg_ptr[0:msg_size] writing the header into the 14 bytes before it.

        .. DANGER:: on the client side the payload is masked in place: the caller's bytes are
           overwritten with the masked bytes.
        """
        cdef size_t hlen
        cdef char *h
        cdef uint32_t key
        self._check_thread("send_reuse_external_buffer")
        if msg_type == WSMsgType.CLOSE:
            raise ValueError("attempt to send CLOSE frame using send_reuse_external_buffer, "
                             "use send_close instead")
        if msg_type >= 8 and (msg_size > MAX_CONTROL_PAYLOAD or not fin):
            raise ValueError("control frames must be final and at most 125 bytes")
        if self.is_close_frame_sent:
            return
        if self._pmd is not None and msg_type < 8:
            # Compressed into the connection's deflate buffer: the caller's bytes stay as they are.
            self._send_data_pmd(msg_type, msg_ptr, msg_size, fin, rsv1, rsv2, rsv3, True)
            return
        hlen = _header_len(msg_size, self.is_client_side)
        h = msg_ptr - hlen
        _encode_header(h, _first_byte(msg_type, fin, rsv1, rsv2, rsv3), msg_size,
                       self.is_client_side)
        if self.is_client_side:
            key = self._next_mask_key()
            femtows_store_u32(msg_ptr - 4, key)
            femtows_mask_inplace(<unsigned char *>msg_ptr, msg_size, key)
        self._write(h, hlen + msg_size, NULL, 0)

    cpdef send_reuse_external_bytearray(self, WSMsgType msg_type, bytearray buffer,
                                        Py_ssize_t msg_offset, bint fin=True, bint rsv1=False,
                                        bint rsv2=False, bint rsv3=False):
        """Send ``buffer[msg_offset:]`` without copying it, writing the frame header into the
        ``msg_offset`` (>= 14) bytes in front of the message.

        .. DANGER:: on the client side the message is masked in place: after the call
           ``buffer[msg_offset:]`` holds the masked bytes, not your message.
        """
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(buffer)
        if msg_type == WSMsgType.CLOSE:
            raise ValueError("attempt to send CLOSE frame using send_reuse_external_bytearray, "
                             "use send_close instead")
        if msg_offset < 14:
            raise ValueError("buffer must have at least 14 bytes available before message "
                             f"starts, check msg_offset parameter (got {msg_offset})")
        if msg_offset > size:
            raise ValueError("msg_offset points beyond buffer end, msg_offset > len(buffer) "
                             f"({msg_offset} > {size})")
        self.send_reuse_external_buffer(msg_type, PyByteArray_AS_STRING(buffer) + msg_offset,
                                        <size_t>(size - msg_offset), fin, rsv1, rsv2, rsv3)

    cpdef send_ping(self, message=None):
        """Send a PING (payload at most 125 bytes)."""
        self._check_thread("send_ping")
        self.send(WSMsgType.PING, message)

    cpdef send_pong(self, message=None):
        """Send a PONG (payload at most 125 bytes)."""
        self._check_thread("send_pong")
        self.send(WSMsgType.PONG, message)

    cpdef send_close(self, close_code=WSCloseCode.NO_INFO, close_message=None):
        """Start (or answer) the closing handshake. Only the first call sends anything.

        Args:
            close_code: NO_INFO sends an empty CLOSE payload; otherwise a code that RFC 6455
                allows on the wire (1000-1003, 1007-1014, 3000-4999), else ValueError.
            close_message: str or bytes reason, at most 123 bytes of UTF-8, else ValueError.
        """
        cdef int code
        cdef bytes reason
        self._check_thread("send_close")
        if self.is_close_frame_sent:
            return
        code = int(close_code)
        if close_message is None:
            reason = b""
        elif isinstance(close_message, str):
            reason = close_message.encode("utf-8")
        else:
            reason = bytes(close_message)
        if code == 0:
            if reason:
                raise ValueError("a close reason needs a close code (close_code is NO_INFO)")
        elif not _is_sendable_close_code(code):
            raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
        if len(reason) > 123:
            raise ValueError(f"close reason is {len(reason)} bytes; at most 123 fit in a frame")
        self._send_close_payload(code, reason)

    cdef int _send_close_raw(self, const char *ptr, Py_ssize_t size) except -1:
        # send(WSMsgType.CLOSE, payload): validate like send_close, then go through its state.
        cdef int code = 0
        cdef bytes reason = b""
        if size == 1:
            raise ValueError("a CLOSE payload is empty or at least 2 bytes (code + reason)")
        if size >= 2:
            code = femtows_load_be16(ptr)
            reason = PyBytes_FromStringAndSize(ptr + 2, size - 2)
            if not _is_sendable_close_code(code):
                raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
            if femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, <const unsigned char *>ptr + 2,
                                     size - 2) != FEMTOWS_UTF8_ACCEPT:
                raise ValueError("close reason must be UTF-8")
        self._send_close_payload(code, reason)
        return 0

    cdef int _send_close_payload(self, int code, bytes reason) except -1:
        cdef bytes payload
        cdef WSCloseHandshake hs
        if code == 0:
            payload = b""
        else:
            payload = bytes(((code >> 8) & 0xFF, code & 0xFF)) + reason
        self._send_frame(0x88, PyBytes_AS_STRING(payload), <size_t>PyBytes_GET_SIZE(payload))
        self.is_close_frame_sent = True
        hs = self.close_handshake
        if hs is None:
            hs = WSCloseHandshake.__new__(WSCloseHandshake)
            self.close_handshake = hs
        hs.sent = WSCloseInfo(_close_code_to_py(code), reason.decode("utf-8", "replace"))
        hs.recv_then_sent = hs.recv is not None
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "CLOSE sent: code=%d reason=%r", code, reason)
        self._arm_close_timer()
        return 0

    cdef int _arm_close_timer(self) except -1:
        # A peer that never completes the closing handshake must not keep us open forever.
        if self._close_timer is None and not self._disconnected and self._close_timeout > 0:
            self._close_timer = self._loop.call_later(self._close_timeout, self._on_close_timeout)
        return 0

    def _on_close_timeout(self):
        self._close_timer = None
        if not self._disconnected:
            self._logger.info("closing handshake not completed within %.3gs, aborting",
                              self._close_timeout)
            self.disconnect(False)

    cpdef disconnect(self, bint graceful=True):
        """Close the TCP connection: gracefully (flush what is queued) or abort. Idempotent.

        Does not send CLOSE; call ``send_close()`` first for a clean closing handshake.
        """
        self._check_thread("disconnect")
        if self._disconnected:
            return
        if self._disconnect_called and graceful:
            return
        if graceful and self._pending is not None and not self._t_is_closing():
            self._flush_pending()
        self._disconnect_called = True
        if graceful:
            self.underlying_transport.close()
        else:
            self.underlying_transport.abort()

    async def wait_disconnected(self):
        """Wait until the connection is closed. Safe to await many times and to cancel.

        On the client side, re-raises the first exception raised by a listener callback (or the
        WSProtocolError of a protocol violation the peer committed).
        """
        await asyncio.shield(self.disconnected_future)
        if self._exception is not None:
            raise self._exception

    cdef int _store_exception(self, object exc) except -1:
        if self.is_client_side and self._exception is None:
            self._exception = exc
        return 0

    cpdef notify_user_specific_pong_received(self):
        """Tell femtows that the pong for ``send_user_specific_ping`` arrived (for pongs that
        can only be recognised after parsing, in ``on_ws_frame``)."""
        self._check_thread("notify_user_specific_pong_received")
        self._pong_received()

    cdef int _pong_received(self) except -1:
        # The pong answers whichever ping is outstanding: auto-ping's, measure_roundtrip_time's
        # round, or both (measure_roundtrip_time waits for an auto-ping pong in flight first).
        self.auto_ping_expect_pong = False
        fut = self.pong_received_at_future
        if fut is not None:
            self.pong_received_at_future = None
            if not fut.done():
                fut.set_result(femtows_monotonic())
        return 0

    async def measure_roundtrip_time(self, int rounds):
        """Send ``rounds`` user-specific pings one after another; return each round trip in
        seconds (a list of floats).

        Uses ``WSListener.send_user_specific_ping`` / ``is_user_specific_pong`` (or
        ``notify_user_specific_pong_received``). If an auto-ping is waiting for its pong, that
        pong is awaited first; auto-ping sends nothing while a measurement runs (its pongs
        prove the peer is alive). Raises ConnectionResetError if the connection is lost, and
        RuntimeError if another measurement is already running on this transport.
        """
        self._check_thread("measure_roundtrip_time")
        if rounds < 1:
            raise ValueError("rounds must be >= 1")
        if self._rtt_running:
            raise RuntimeError("measure_roundtrip_time is already running on this transport")
        if self._disconnected:
            raise ConnectionResetError("WebSocket is disconnected")
        self._rtt_running = True
        try:
            if self.auto_ping_expect_pong:
                fut = self._loop.create_future()
                self.pong_received_at_future = fut
                await fut
            results = []
            for _ in range(rounds):
                if self._disconnected:
                    raise ConnectionResetError(
                        "WebSocket disconnected during measure_roundtrip_time")
                fut = self._loop.create_future()
                self.pong_received_at_future = fut
                started = femtows_monotonic()
                self.listener_proxy.send_user_specific_ping(self)
                received = await fut
                results.append(received - started)
            return results
        finally:
            self._rtt_running = False
            self.pong_received_at_future = None


# ------------------------------------------------------------------------------------------------
# The read buffer view handed to the event loop

@cython.final
cdef class _ReadView:
    """The free tail of the read buffer, exposed through the buffer protocol.

    One instance per connection is returned by every get_buffer() call, so reading allocates
    no Python object.
    """
    cdef char *ptr
    cdef Py_ssize_t size

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        PyBuffer_FillInfo(buffer, self, self.ptr, self.size, 0, flags)

    def __releasebuffer__(self, Py_buffer *buffer):
        pass

    def __len__(self):
        return self.size

    # asyncio's TLS and fallback paths (sslproto, protocols._feed_data_to_buffered_proto)
    # slice the buffer; they get memoryviews, plain TCP reads never come here.
    def __getitem__(self, key):
        return memoryview(self)[key]

    def __setitem__(self, key, value):
        memoryview(self)[key] = value


# ------------------------------------------------------------------------------------------------
# The protocol

cdef enum ProtoState:
    HANDSHAKE = 0
    OPEN = 1           # frames flow
    CLOSE_RECEIVED = 2 # the peer's CLOSE was delivered: nothing after it is
    FAILED = 3         # we failed the connection: only the peer's CLOSE is looked for
    DISCONNECTED = 4


cdef struct FrameHeader:
    uint8_t b0
    uint8_t opcode
    bint fin
    bint masked
    size_t header_len
    uint64_t payload_len


cdef inline int _parse_header(const char *p, size_t avail, FrameHeader *h) noexcept nogil:
    """Decode a frame header: 0 when decoded, NEED_MORE, or 1002 for a non-minimal length."""
    cdef uint8_t b1
    cdef uint64_t n
    if avail < 2:
        return NEED_MORE
    h.b0 = <uint8_t>p[0]
    b1 = <uint8_t>p[1]
    h.opcode = h.b0 & 0x0F
    h.fin = (h.b0 & 0x80) != 0
    h.masked = (b1 & 0x80) != 0
    n = b1 & 0x7F
    h.header_len = 2
    if n == 126:
        if avail < 4:
            return NEED_MORE
        n = femtows_load_be16(p + 2)
        h.header_len = 4
        if n < 126:
            h.payload_len = n  # for the error message
            return 1002
    elif n == 127:
        if avail < 10:
            return NEED_MORE
        n = femtows_load_be64(p + 2)
        h.header_len = 10
        if n < 0x10000 or (n >> 63):
            h.payload_len = n  # for the error message
            return 1002
    if h.masked:
        h.header_len += 4
    h.payload_len = n
    if avail < h.header_len:
        return NEED_MORE
    return HEADER_OK


cdef class WSProtocolCore:
    """The asyncio protocol of one connection (client or server side). Internal."""

    cdef:
        object _loop
        object _logger
        bint _debug
        bint _is_client
        ProtoState _state
        WSTransport _transport
        WSListener _listener
        WSFrame _frame
        _ReadView _view
        object _underlying

        # The read buffer: the private one (NULL when nothing is buffered and it was freed),
        # or, while _using_shared, the thread's shared one.
        char *_rbuf
        size_t _rcap           # allocated bytes; READ_SLACK of them stay free after the data
        size_t _rstart         # first unconsumed byte
        size_t _rend           # end of received data
        size_t _rneed          # end of a frame that is still arriving (room made for it), or 0
        size_t _rinit          # the initial size of a private buffer (and the shared one's least)
        _SharedReadBuffer _shared
        bint _in_shared        # get_buffer() handed out the shared buffer
        bint _using_shared     # buffer_updated() is parsing in the shared buffer
        size_t _head_scanned   # bytes of the HTTP head already searched for CRLFCRLF
        object _shrink_timer

        # message state (fragmentation and UTF-8)
        bint _msg_open
        bint _msg_is_text
        uint32_t _utf8_state
        uint64_t _skip         # payload bytes of a refused (1009) frame still to discard
        # A data frame still arriving: its first _partial_done payload bytes are already
        # unmasked and (TEXT) UTF-8 checked, ending in state _partial_utf8.
        size_t _partial_done
        uint32_t _partial_utf8
        # permessage-deflate: the configuration to negotiate (None: off), the state once
        # negotiated, and whether the message being received is compressed.
        object _compression
        PerMessageDeflate _pmd
        bint _inflating

        # configuration
        uint64_t _max_frame_size
        bint _validate_utf8
        bint _allow_rsv
        bint _auto_pong
        bint _disconnect_on_exception
        double _close_timeout
        double _handshake_timeout
        size_t _max_head_size

        # auto-ping: one timer at a time, re-armed by the timer itself, never per frame
        bint _auto_ping
        bint _ping_periodically
        double _ping_idle
        double _ping_reply
        object _ping_timer
        bint _ping_awaiting_reply     # the armed timer is the reply deadline
        double _ping_sent_at
        double _last_data_time        # updated once per socket read while auto-ping is on

        # handshake
        object _handshake_timer
        object _handshake_future      # client: resolves to (transport, listener)
        object _listener_factory
        object _factory_task          # server: an async listener factory still deciding
        bint _factory_paused          # ... and reading was paused meanwhile (too much data)
        object _request
        bytes _request_bytes
        str _key
        bint _warned_backpressure
        # Reading by another thread (femtows.websockets.sync, see _ext_commit): parse only plain
        # whole data frames and stop before anything else, leaving it for the loop.
        bint _ext_parse
        bint _ext_stopped
        # A large BINARY frame the reading thread receives straight into the bytes object
        # it will be delivered as (no copy): the object, bytes in it so far, its mask key.
        bytes _big
        size_t _big_done
        uint32_t _big_key
        bint _big_masked
        # The last frame the reading thread took was a large one: its next read from an empty
        # buffer takes only a header's worth, so that a next large frame goes into its bytes
        # whole instead of being copied there from the read buffer.
        bint _ext_after_big
        # While the transport is over its high watermark, auto-pong answers only the latest
        # PING, on resume_writing (RFC 6455 §5.5.3): a peer that sends PINGs and never reads
        # cannot make us queue PONGs without bound.
        bint _write_paused
        bytes _pending_pong

    def __cinit__(self):
        self._rbuf = NULL

    def __dealloc__(self):
        if self._rbuf != NULL and not self._using_shared:
            PyMem_Free(self._rbuf)
        self._rbuf = NULL

    def __init__(self, *, bint is_client, listener_factory, logger, size_t read_buffer_init_size,
                 uint64_t max_frame_size, bint validate_utf8, bint allow_rsv_bits,
                 bint enable_auto_pong, bint disconnect_on_exception, close_timeout,
                 websocket_handshake_timeout, size_t max_head_size, request=None,
                 bytes request_bytes=None, str key=None, handshake_future=None,
                 bint enable_auto_ping=False, double auto_ping_idle_timeout=10.0,
                 double auto_ping_reply_timeout=10.0,
                 auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE, compression=None,
                 loop=None):
        # loop: the Sans-I/O layer passes a stand-in (no timers are armed there).
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._logger = logger
        self._debug = logger.isEnabledFor(FEMTOWS_DEBUG_LL)
        self._is_client = is_client
        self._state = HANDSHAKE
        self._listener_factory = listener_factory
        self._max_frame_size = max_frame_size
        self._validate_utf8 = validate_utf8
        self._allow_rsv = allow_rsv_bits
        self._auto_pong = enable_auto_pong
        self._disconnect_on_exception = disconnect_on_exception
        self._close_timeout = close_timeout if close_timeout is not None else 0.0
        self._handshake_timeout = (websocket_handshake_timeout
                                   if websocket_handshake_timeout is not None else 0.0)
        self._max_head_size = max_head_size
        self._auto_ping = enable_auto_ping
        self._ping_periodically = auto_ping_strategy == WSAutoPingStrategy.PING_PERIODICALLY
        self._ping_idle = auto_ping_idle_timeout
        self._ping_reply = auto_ping_reply_timeout
        self._request = request
        self._request_bytes = request_bytes
        self._key = key
        self._handshake_future = handshake_future
        self._compression = compression
        self._frame = WSFrame.__new__(WSFrame)
        self._view = _ReadView.__new__(_ReadView)
        self._rinit = max(read_buffer_init_size, MIN_READ_BUFFER) + READ_SLACK
        self._shared = _thread_shared_rbuf()
        self._rcap = 0  # no private buffer until data must wait in one
        self._rstart = 0
        self._rend = 0

    # -- asyncio protocol callbacks -----------------------------------------------------------

    def connection_made(self, transport):
        cdef WSTransport t = WSTransport.__new__(WSTransport)
        self._underlying = transport
        t.underlying_transport = transport
        t.is_client_side = self._is_client
        t._protocol = self
        t._loop = self._loop
        t._logger = self._logger
        t._debug = self._debug
        t._thread_id = PyThread_get_thread_ident()
        t._close_timeout = self._close_timeout
        t.disconnected_future = self._loop.create_future()
        t.is_secure = transport.get_extra_info("ssl_object") is not None
        self._transport = t
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if hasattr(socket, "TCP_QUICKACK"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                pass
            if not t.is_secure:
                t._fd = sock.fileno()
        t._t_is_closing = transport.is_closing
        t._t_write_buffer_size = transport.get_write_buffer_size
        # aiofastnet's transports copy only what they keep, so they may be given views.
        if (type(transport).__module__.startswith("aiofastnet.")
                and hasattr(transport, "writelines_nocheck")):
            t._write_nocheck = transport.write_nocheck
            t._writelines_nocheck = transport.writelines_nocheck
        if self._handshake_timeout > 0:
            self._handshake_timer = self._loop.call_later(self._handshake_timeout,
                                                          self._on_handshake_timeout)
        if self._is_client:
            if self._debug:
                self._logger.log(FEMTOWS_DEBUG_LL, "upgrade request: %r", self._request_bytes)
            transport.write(self._request_bytes)
        if self._logger.isEnabledFor(logging.INFO):
            self._logger.info("connection established: peer=%s %s mask_impl=%s",
                              transport.get_extra_info("peername"), _socket_options(sock),
                              femtows_mask_impl().decode())

    def connection_lost(self, exc):
        cdef WSTransport t = self._transport
        cdef bint was_open = self._state != HANDSHAKE
        self._state = DISCONNECTED
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._shrink_timer is not None:
            self._shrink_timer.cancel()
            self._shrink_timer = None
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._factory_task is not None:
            self._factory_task.cancel()
            self._factory_task = None
        if t is None:
            return
        t._disconnected = True
        if self._pmd is not None:
            self._pmd.close()           # the zlib state (up to ~300 KiB) goes at once
        if t._close_timer is not None:
            t._close_timer.cancel()
            t._close_timer = None
        fut = t.pong_received_at_future
        if fut is not None:
            t.pong_received_at_future = None
            if not fut.done():
                fut.set_exception(ConnectionResetError("WebSocket disconnected"))
        if not was_open:
            self._fail_handshake(exc if isinstance(exc, OSError) else None)
        else:
            self._logger.info("disconnected%s", f": {exc!r}" if exc is not None else "")
            if self._listener is not None:
                try:
                    self._listener.on_ws_disconnected(t)
                except Exception as e:
                    # Nothing left to close: log it, and on the client hand it to
                    # wait_disconnected() like any other callback exception.
                    self._handle_callback_exception(e, "on_ws_disconnected", False)
                    t._store_exception(e)
        if not t.disconnected_future.done():
            t.disconnected_future.set_result(None)
        # Break the transport -> protocol reference cycle: the protocol and its read buffer are
        # freed as soon as the event loop lets go of it, not at the next full GC (which let
        # hundreds of closed connections' buffers pile up under connection churn).
        t._protocol = None

    def eof_received(self):
        # Returning False lets the transport close itself: after the peer's FIN there is
        # nothing left for a WebSocket to do.
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "EOF received")
        return False

    def pause_writing(self):
        self._write_paused = True
        self._forward_backpressure(True)

    def resume_writing(self):
        cdef WSTransport t = self._transport
        cdef bytes pong = self._pending_pong
        self._write_paused = False
        if pong is not None:
            self._pending_pong = None
            if not t.is_close_frame_sent:
                t._send_frame(0x8A, PyBytes_AS_STRING(pong), <size_t>PyBytes_GET_SIZE(pong))
        self._forward_backpressure(False)

    cdef _forward_backpressure(self, bint pause):
        if self._listener is None:
            return
        try:
            if pause:
                self._listener.pause_writing()
            else:
                self._listener.resume_writing()
        except _DefaultBackpressureHandler:
            if pause and not self._warned_backpressure:
                self._warned_backpressure = True
                self._logger.warning(
                    "the transport's write buffer is over its high watermark and the listener "
                    "does not override pause_writing/resume_writing; the peer reads slower than "
                    "we send")
        except Exception as e:
            self._handle_callback_exception(e, "pause_writing" if pause else "resume_writing",
                                            True)

    def get_buffer(self, Py_ssize_t size_hint):
        cdef _SharedReadBuffer sh
        cdef size_t usable, live
        cdef char *p
        if self._rbuf == NULL:
            sh = self._shared
            if not sh.busy:
                # Nothing buffered: read into the thread's shared buffer.
                if sh.cap < self._rinit:
                    p = <char *>PyMem_Realloc(sh.ptr, self._rinit)
                    if p == NULL:
                        raise MemoryError()
                    sh.ptr = p
                    sh.cap = self._rinit
                sh.owner = <void *>self
                self._in_shared = True
                self._view.ptr = sh.ptr
                self._view.size = <Py_ssize_t>(sh.cap - READ_SLACK)
                if self._debug:
                    self._logger.log(FEMTOWS_DEBUG_LL, "get_buffer: %d bytes free (shared)",
                                     self._view.size)
                return self._view
            self._alloc_private(self._rinit)
        self._in_shared = False
        usable = self._rcap - READ_SLACK
        live = self._rend - self._rstart
        # While a frame that has room made for it is still arriving, its bytes go where they
        # belong: growing here would double the buffer of every connection that receives
        # large messages (2 MiB for 1 MiB messages), and compacting would move the partial
        # frame for nothing.
        if usable - self._rend < usable // 4 and self._rend >= self._rneed:
            if self._rstart > 0:
                memmove(self._rbuf, self._rbuf + self._rstart, live)
                self._rstart = 0
                self._rend = live
                self._rneed = 0
            if usable - self._rend < usable // 8:
                self._grow(usable * 2)
                usable = self._rcap - READ_SLACK
        self._view.ptr = self._rbuf + self._rend
        self._view.size = <Py_ssize_t>(usable - self._rend)
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "get_buffer: %d bytes free", self._view.size)
        return self._view

    def buffer_updated(self, Py_ssize_t nbytes):
        cdef _SharedReadBuffer sh
        if self._in_shared:
            self._in_shared = False
            sh = self._shared
            if sh.owner != <void *>self or sh.busy:
                raise RuntimeError("femtows: the shared read buffer was reused before "
                                   "buffer_updated(); the transport broke the "
                                   "get_buffer/buffer_updated sequence")
            sh.owner = NULL
            sh.busy = True
            self._rbuf = sh.ptr
            self._rcap = sh.cap
            self._using_shared = True
            try:
                self._updated(nbytes)
            finally:
                sh.busy = False
                self._using_shared = False
                self._leave_shared()
            return
        self._updated(nbytes)
        if self._rstart == self._rend:
            self._rstart = 0
            self._rend = 0
            self._rneed = 0
            if self._rbuf != NULL and self._shrink_timer is None:
                self._arm_shrink_timer()

    cdef _updated(self, Py_ssize_t nbytes):
        self._rend += <size_t>nbytes
        if self._auto_ping:
            self._last_data_time = femtows_monotonic()
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "buffer_updated: +%d bytes, %d buffered", nbytes,
                             self._rend - self._rstart)
        if self._state == HANDSHAKE:
            if self._is_client:
                self._process_upgrade_response()
            else:
                self._process_upgrade_request()
        if self._state == OPEN or self._state == FAILED or self._state == CLOSE_RECEIVED:
            self._process_frames()

    # -- read buffer --------------------------------------------------------------------------

    cdef int _alloc_private(self, size_t cap) except -1:
        self._rbuf = <char *>PyMem_Malloc(cap)
        if self._rbuf == NULL:
            self._rcap = 0
            raise MemoryError()
        self._rcap = cap
        return 0

    cdef int _leave_shared(self) except -1:
        """After parsing in the shared buffer: copy what is left (the start of a frame or of
        the HTTP head) into a private buffer with room for all of it."""
        cdef size_t live = self._rend - self._rstart
        cdef size_t need, usable
        cdef const char *src = self._rbuf + self._rstart
        self._rbuf = NULL
        self._rcap = 0
        if live == 0 or self._state == DISCONNECTED:
            self._rstart = self._rend = self._rneed = 0
            return 0
        need = self._rneed - self._rstart if self._rneed > self._rstart else live
        usable = self._rinit - READ_SLACK
        if need > usable:
            # As _make_room_for_frame: the frame plus room for the next header.
            usable = need + 4096
        if live > usable:
            usable = live
        self._alloc_private(usable + READ_SLACK)
        memcpy(self._rbuf, src, live)
        self._rneed = self._rneed - self._rstart if self._rneed > self._rstart else 0
        self._rstart = 0
        self._rend = live
        if self._shrink_timer is None:
            self._arm_shrink_timer()
        return 0

    cdef int _grow(self, size_t usable) except -1:
        cdef size_t cap = usable + READ_SLACK
        cdef char *p
        if cap <= self._rcap:
            return 0
        p = <char *>PyMem_Realloc(self._rbuf, cap)
        if p == NULL:
            raise MemoryError()
        self._rbuf = p
        self._rcap = cap
        return 0

    cdef int _arm_shrink_timer(self) except -1:
        if self._state != DISCONNECTED:
            self._shrink_timer = self._loop.call_later(READ_SHRINK_DELAY, self._on_shrink_timer)
        return 0

    def _on_shrink_timer(self):
        """Free the private read buffer if it is empty now (reads go to the shared buffer
        again); if data is buffered (a frame still arriving), look again one period later."""
        self._shrink_timer = None
        if (self._state == DISCONNECTED or self._rbuf == NULL or self._using_shared
                or self._transport is not None and self._transport._ext_reading):
            return  # (another thread reads into this buffer now; _ext_commit trims it)
        if self._rstart != self._rend:
            self._arm_shrink_timer()
            return
        PyMem_Free(self._rbuf)
        self._rbuf = NULL
        self._rcap = 0
        self._rstart = self._rend = self._rneed = 0

    cdef int _make_room_for_frame(self, size_t total) except -1:
        """Make sure a frame of ``total`` bytes starting at _rstart fits in the buffer."""
        cdef size_t usable = self._rcap - READ_SLACK
        cdef size_t live
        if self._rstart + total <= usable or self._using_shared:
            # (In the shared buffer, _leave_shared makes the room in a private one.)
            self._rneed = self._rstart + total
            return 0
        live = self._rend - self._rstart
        if self._rstart > 0:
            memmove(self._rbuf, self._rbuf + self._rstart, live)
            self._rstart = 0
            self._rend = live
        if total > usable:
            self._grow(max(total + 4096, usable * 2) if total < usable * 2 else total + 4096)
        self._rneed = total  # _rstart is 0 now
        return 0

    # -- handshake ----------------------------------------------------------------------------

    cdef bytes _take_head(self):
        """The HTTP head (through CRLFCRLF) once complete, else None; enforces the size limit."""
        cdef size_t avail = self._rend - self._rstart
        cdef const char *start = self._rbuf + self._rstart
        # The search resumes where the previous read left it (3 bytes back: CRLFCRLF may
        # straddle two reads), so a head trickled byte by byte costs O(n), not O(n^2).
        cdef size_t skip = self._head_scanned - 3 if self._head_scanned > 3 else 0
        cdef const char *end = <const char *>memmem(start + skip, avail - skip,
                                                    b"\r\n\r\n", 4)
        cdef size_t head_len
        if end == NULL:
            self._head_scanned = avail
            if avail > self._max_head_size:
                raise _HeadTooLarge()
            return None
        head_len = <size_t>(end - start) + 4
        self._head_scanned = 0
        if head_len > self._max_head_size:
            raise _HeadTooLarge()
        self._rstart += head_len
        return PyBytes_FromStringAndSize(start, <Py_ssize_t>head_len)

    def _on_handshake_timeout(self):
        self._handshake_timer = None
        if self._state != HANDSHAKE:
            return
        self._logger.info("websocket handshake timeout (%.3gs)", self._handshake_timeout)
        if self._is_client:
            fut = self._handshake_future
            if fut is not None and not fut.done():
                fut.set_exception(asyncio.TimeoutError("websocket handshake timeout"))
        self._underlying.abort()

    cdef _fail_handshake(self, exc):
        # The connection ended (or failed) before the upgrade completed.
        fut = self._handshake_future
        if fut is not None and not fut.done():
            if exc is None:
                exc = WSInvalidMessageError(
                    "the connection was closed before the upgrade response was complete")
            fut.set_exception(exc)

    cdef _process_upgrade_response(self):
        cdef bytes head
        cdef bytes raw_body
        try:
            head = self._take_head()
        except _HeadTooLarge:
            self._fail_handshake(WSInvalidMessageError(
                f"upgrade response headers exceed max_size threshold: {self._max_head_size} "
                f"(upgrade response head exceeds {self._max_head_size} bytes)"))
            self._underlying.abort()
            return
        if head is None:
            return
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "upgrade response: %r", head)
        try:
            response = _handshake.parse_response(head)
            raw_body = PyBytes_FromStringAndSize(self._rbuf + self._rstart,
                                                 <Py_ssize_t>(self._rend - self._rstart))
            _handshake.validate_response(response, self._key, head, raw_body or None)
            params = None
            if self._compression is not None:
                params = _handshake.negotiate_deflate_from_response(self._compression, response,
                                                                    head)
        except Exception as e:
            self._fail_handshake(e)
            self._underlying.close()
            self._state = FAILED
            self._rstart = self._rend
            return
        try:
            listener = self._listener_factory(self._request, response)
            if not isinstance(listener, WSListener):
                raise TypeError(f"the listener factory returned {type(listener).__name__}, "
                                f"not a WSListener")
        except Exception as e:
            self._fail_handshake(e)
            self._underlying.abort()
            self._state = FAILED
            return
        self._start_websocket(listener, self._request, response, params)
        fut = self._handshake_future
        if fut is not None and not fut.done():
            fut.set_result((self._transport, listener))

    cdef _process_upgrade_request(self):
        cdef bytes head
        if self._factory_task is not None:
            # An async listener factory is deciding: what arrives waits in the buffer. Reading
            # goes on (so that a peer leaving is noticed) until that exceeds the head limit.
            if not self._factory_paused and self._rend - self._rstart > self._max_head_size:
                self._factory_paused = True
                self._underlying.pause_reading()
            return
        try:
            head = self._take_head()
        except _HeadTooLarge:
            self._reject(_HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request head too large",
                         None)
            return
        if head is None:
            return
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "upgrade request: %r", head)
        try:
            request = _handshake.parse_request(head)
        except _handshake.HandshakeRejection as e:
            self._reject(e.status, e.reason, e.headers)
            return
        try:
            result = self._listener_factory(request)
        except Exception:
            self._logger.exception("the listener factory raised; answering 500")
            self._reject(_HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error", None)
            return
        if (result is not None and not isinstance(result, WSListener)
                and not isinstance(result, _handshake.WSUpgradeResponseWithListener)
                and _isawaitable(result)):
            self._await_listener_factory(request, result)
            return
        self._answer_upgrade_request(request, result)

    cdef _await_listener_factory(self, request, awaitable):
        # An async factory: nothing more is processed until it decides (the head is consumed;
        # whatever follows waits in the buffer, see _process_upgrade_request). The handshake
        # timer keeps running; a lost connection cancels the task (connection_lost).
        self._request = request
        self._factory_task = asyncio.ensure_future(awaitable)
        self._factory_task.add_done_callback(self._on_listener_factory_done)

    def _on_listener_factory_done(self, task):
        self._factory_task = None
        request = self._request
        self._request = None
        if self._state != HANDSHAKE or task.cancelled():
            if self._state == HANDSHAKE:
                self._underlying.abort()  # cancelled by someone else: nothing sensible to send
            return
        exc = task.exception()
        if exc is not None:
            self._logger.error("the listener factory raised; answering 500", exc_info=exc)
            self._reject(_HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error", None)
            return
        self._answer_upgrade_request(request, task.result())
        if self._state == OPEN:
            if self._factory_paused:
                self._factory_paused = False
                self._underlying.resume_reading()
            if self._rstart < self._rend:
                self._process_frames()
                if self._rstart == self._rend:
                    self._rstart = 0
                    self._rend = 0
                    self._rneed = 0
                    if self._rbuf != NULL and self._shrink_timer is None:
                        self._arm_shrink_timer()

    cdef _answer_upgrade_request(self, request, result):
        custom = None
        if result is None:
            self._reject(_HTTPStatus.NOT_FOUND, "404 Not Found", None)
            return
        if isinstance(result, _handshake.WSUpgradeResponseWithListener):
            custom = result.response
            result = result.listener
            if custom.status != 101:
                self._send_custom_response(custom)
                return
        if not isinstance(result, WSListener):
            self._logger.error("the listener factory returned %r, not a WSListener; answering 500",
                               type(result).__name__)
            self._reject(_HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error", None)
            return
        params = None
        add_header = False
        extra = custom.headers if custom is not None else None
        try:
            key = _handshake.validate_request(request)
            if self._compression is not None:
                params, add_header = _handshake.negotiate_deflate_for_101(
                    self._compression, request.headers, extra)
        except _handshake.HandshakeRejection as e:
            self._reject(e.status, e.reason, e.headers)
            return
        if add_header:
            extra = list(extra.items()) if extra is not None else []
            extra.append(("Sec-WebSocket-Extensions", params.header))
        try:
            response, wire = _handshake.build_101_response(
                key, extra, None if custom is None else custom.reason)
        except (ValueError, TypeError):
            self._logger.exception("the listener factory's 101 response is invalid; answering 500")
            self._reject(_HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error", None)
            return
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "upgrade response: %r", wire)
        self._underlying.write(wire)
        self._start_websocket(result, request, response, params)

    cdef _reject(self, status, str reason, headers):
        self._logger.info("upgrade refused: %d %s", int(status), reason)
        self._underlying.write(_handshake.build_error_response(
            status, reason.encode(), headers))
        self._state = FAILED
        self._rstart = self._rend
        self._underlying.close()

    cdef _send_custom_response(self, response):
        response.headers["Connection"] = "close"
        try:
            wire = response.to_bytes()
        except (ValueError, TypeError):
            self._logger.exception("the listener factory's response is invalid; answering 500")
            self._reject(_HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error", None)
            return
        self._underlying.write(wire)
        self._state = FAILED
        self._rstart = self._rend
        self._underlying.close()

    cdef _start_websocket(self, WSListener listener, request, response, params):
        cdef WSTransport t = self._transport
        if params is not None:
            self._pmd = PerMessageDeflate(params)
            t._pmd = self._pmd
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        t.request = request
        t.response = response
        t.listener_proxy = listener
        self._listener = listener
        self._state = OPEN
        if self._auto_ping:
            self._last_data_time = femtows_monotonic()
            self._arm_ping_timer(self._ping_idle)
        try:
            listener.on_ws_connected(t)
        except Exception as e:
            self._handle_callback_exception(e, "on_ws_connected", True)

    # -- auto-ping ----------------------------------------------------------------------------

    cdef int _arm_ping_timer(self, double delay) except -1:
        self._ping_timer = self._loop.call_later(delay if delay > 0 else 0, self._on_ping_timer)
        return 0

    def _on_ping_timer(self):
        """The single auto-ping timer: either a ping is due, or a ping's reply deadline passed.

        Incoming data does not touch the timer; it only stamps ``_last_data_time``. When the
        timer fires early relative to that stamp (PING_WHEN_IDLE), it re-arms for the rest.
        """
        cdef WSTransport t = self._transport
        cdef double now, due
        self._ping_timer = None
        if self._state != OPEN or t._disconnected or t.is_close_frame_sent:
            return
        now = femtows_monotonic()
        if self._ping_awaiting_reply:
            self._ping_awaiting_reply = False
            if t.auto_ping_expect_pong:
                self._on_ping_timeout()
                return
            due = (self._ping_sent_at if self._ping_periodically
                   else self._last_data_time) + self._ping_idle
            self._arm_ping_timer(due - now)
            return
        if t._rtt_running:
            # measure_roundtrip_time's own pings prove the peer is alive; check again later.
            self._arm_ping_timer(self._ping_idle)
            return
        if not self._ping_periodically:
            # 1 ms of slack: loops may fire a timer slightly before its deadline.
            due = self._last_data_time + self._ping_idle
            if due - now > 0.001:
                self._arm_ping_timer(due - now)
                return
        t.auto_ping_expect_pong = True
        self._ping_sent_at = now
        self._ping_awaiting_reply = True
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "auto-ping: sending ping")
        try:
            self._listener.send_user_specific_ping(t)
        except Exception as e:
            t.auto_ping_expect_pong = False
            self._ping_awaiting_reply = False
            self._handle_callback_exception(e, "send_user_specific_ping", True)
            return
        self._arm_ping_timer(self._ping_reply)

    cdef _on_ping_timeout(self):
        cdef WSTransport t = self._transport
        reason = (f"peer has not replied to ping/heartbeat request within "
                  f"{self._ping_reply} second(s)")
        self._logger.info("auto-ping: %s; closing with GOING_AWAY", reason)
        t.auto_ping_expect_pong = False
        self._state = FAILED
        t._send_close_payload(1001, reason.encode("utf-8"))
        # Graceful: the CLOSE is flushed first; the close timer aborts if that stalls.
        t.disconnect(True)

    # -- frames -------------------------------------------------------------------------------

    cdef int _check_header(self, FrameHeader *h) noexcept:
        """Per-header RFC 6455 rules; returns 0 or the close code to fail with."""
        cdef uint8_t op = h.opcode
        if h.b0 & 0x70:
            if self._pmd is not None and (h.b0 & 0x40):
                # RFC 7692 §6.1: RSV1 marks the first frame of a compressed data message.
                if (op != 1 and op != 2) or self._msg_open:
                    return 1002                    # RSV1 on a control or continuation frame
                self._inflating = True
                if (h.b0 & 0x30) and not self._allow_rsv:
                    return 1002
            elif not self._allow_rsv:
                return 1002                        # RSV bits without a negotiated extension
        if h.masked == self._is_client:
            return 1002                            # clients mask, servers do not (§5.1)
        if op >= 8:
            if op > 10:
                return 1002                        # reserved control opcode
            if not h.fin or h.payload_len > MAX_CONTROL_PAYLOAD:
                return 1002                        # control frames: final, <= 125 bytes (§5.5)
            return 0
        if op == 0:
            if not self._msg_open:
                return 1002                        # CONTINUATION with no message open
        elif op <= 2:
            if self._msg_open:
                return 1002                        # new message before the last one ended
        else:
            return 1002                            # reserved data opcode
        if h.payload_len > self._max_frame_size:
            return 1009
        return 0

    cdef inline bint _has_complete_frame(self, const char *p, size_t avail) noexcept:
        cdef FrameHeader h
        if _parse_header(p, avail, &h) != HEADER_OK:
            return False
        return avail - h.header_len >= h.payload_len

    cdef _process_frames(self):
        cdef FrameHeader h
        cdef int rc
        cdef size_t avail, total
        cdef char *p
        cdef char *payload
        cdef uint32_t st
        cdef WSFrame frame = self._frame
        cdef uint8_t op
        cdef bint is_text
        cdef size_t done, n
        while self._state != DISCONNECTED:
            avail = self._rend - self._rstart
            p = self._rbuf + self._rstart
            if self._ext_parse and (self._skip or self._state != OPEN):
                self._ext_stopped = True
                return
            if self._skip:
                # Counting past the payload of a frame refused with 1009, without buffering it.
                if avail == 0:
                    return
                total = <size_t>min(<uint64_t>avail, self._skip)
                self._skip -= total
                self._rstart += total
                continue
            rc = _parse_header(p, avail, &h)
            if rc == NEED_MORE:
                return
            if self._ext_parse and not self._ext_simple(rc, &h):
                self._ext_stopped = True
                return
            if self._state != OPEN:
                # Closing: nothing more is delivered. We only look for the peer's CLOSE to
                # finish the handshake; a stream we cannot parse is simply dropped.
                # (max_frame_size is for data frames: the peer's CLOSE may echo a reason
                # longer than a small max_frame_size.)
                if (rc != HEADER_OK
                        or (h.opcode >= 8 and h.payload_len > MAX_CONTROL_PAYLOAD)
                        or (h.opcode < 8 and h.payload_len > self._max_frame_size)):
                    self._rstart = self._rend
                    return
                total = h.header_len + <size_t>h.payload_len
                if avail < total:
                    self._make_room_for_frame(total)
                    return
                self._rstart += total
                if h.opcode == 8 and self._state == FAILED:
                    self._on_closing_handshake_done()
                continue
            if rc == HEADER_OK:
                rc = self._check_header(&h)
            elif rc != HEADER_OK:
                self._fail(rc, _length_error_reason(&h))
                return
            if rc != HEADER_OK:
                self._fail(rc, _header_error_reason(rc, &h, self._is_client,
                                                    self._max_frame_size,
                                                    self._transport._too_big_format))
                if rc == 1009 and avail < h.header_len + h.payload_len:
                    # The frame is well formed, only too big: skip its payload as it arrives
                    # so that the peer's CLOSE reply is still recognised.
                    self._skip = h.header_len + h.payload_len - avail
                return
            if self._inflating and h.opcode < 8:
                # A frame of a compressed message (never the case without permessage-deflate).
                if self._process_compressed(&h, p, avail):
                    continue
                return
            total = h.header_len + <size_t>h.payload_len
            op = h.opcode
            payload = p + h.header_len
            is_text = self._validate_utf8 and (op == 1 or (op == 0 and self._msg_is_text))
            if avail < total and self._ext_parse and op == 2 and h.payload_len >= EXT_BIG_MIN:
                # The reading thread: the rest of this frame goes straight into its bytes.
                self._ext_start_big(&h, payload, avail - h.header_len)
                return
            if avail < total:
                # Work on what has arrived of a data frame now: unmasking stays cache-hot and
                # invalid UTF-8 fails the connection on the read that brought it (fail fast).
                # (Not for the reading thread of a masked frame: it unmasks a frame only once
                # it is whole, so that a frame it leaves to the loop is never half unmasked.)
                if (op <= 2 and (h.masked or is_text) and not (self._ext_parse and h.masked)
                        and avail - h.header_len > self._partial_done):
                    if self._partial_done == 0:
                        self._partial_utf8 = (self._utf8_state if op == 0
                                              else FEMTOWS_UTF8_ACCEPT)
                    done = self._partial_done
                    n = avail - h.header_len - done
                    if h.masked:
                        femtows_mask_inplace(<unsigned char *>payload + done, n,
                                             femtows_rotate_key(femtows_load_u32(payload - 4),
                                                                done))
                    if is_text:
                        st = femtows_utf8_validate(self._partial_utf8,
                                                   <const unsigned char *>payload + done, n)
                        if st == FEMTOWS_UTF8_REJECT:
                            if self._ext_parse:
                                self._ext_stopped = True  # the loop fails it
                                return
                            self._fail(1007, "invalid UTF-8 in a TEXT message")
                            return
                        self._partial_utf8 = st
                    self._partial_done = done + n
                self._make_room_for_frame(total)
                return
            done = self._partial_done
            self._partial_done = 0
            if h.masked and h.payload_len > done:
                femtows_mask_inplace(<unsigned char *>payload + done,
                                     <size_t>h.payload_len - done,
                                     femtows_rotate_key(femtows_load_u32(payload - 4), done))
            # Message-level rules, on the complete frame.
            if op <= 2:
                if op != 0:
                    self._msg_is_text = op == 1
                    self._utf8_state = FEMTOWS_UTF8_ACCEPT
                if is_text:
                    if done:
                        self._utf8_state = self._partial_utf8
                    st = femtows_utf8_validate(self._utf8_state,
                                               <const unsigned char *>payload + done,
                                               <size_t>h.payload_len - done)
                    if st == FEMTOWS_UTF8_REJECT or (h.fin and st != FEMTOWS_UTF8_ACCEPT):
                        if self._ext_parse:
                            # Left to the loop, which fails it: the whole payload is unmasked
                            # and known invalid (REJECT is sticky).
                            self._partial_done = <size_t>h.payload_len
                            self._partial_utf8 = FEMTOWS_UTF8_REJECT
                            self._ext_stopped = True
                            return
                        self._fail(1007, "invalid UTF-8 in a TEXT message")
                        return
                    self._utf8_state = st
                self._msg_open = not h.fin
            elif op == 8:
                rc = self._check_close_payload(payload, <size_t>h.payload_len)
                if rc != 0:
                    self._fail(rc, _close_payload_error_reason(payload, <size_t>h.payload_len),
                               PyBytes_FromStringAndSize(payload, <Py_ssize_t>h.payload_len))
                    # The peer has sent its CLOSE already: with ours the handshake is over.
                    self._on_closing_handshake_done()
                    return
            if (self._ext_parse and op == 1 and not is_text
                    and femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT,
                                              <const unsigned char *>payload,
                                              <size_t>h.payload_len) != FEMTOWS_UTF8_ACCEPT):
                # The layer above validates TEXT itself (its own error wording): invalid text
                # goes to the loop, which delivers it there (the payload is unmasked already).
                self._partial_done = <size_t>h.payload_len
                self._ext_stopped = True
                return
            self._rstart += total
            frame.payload_ptr = payload
            frame.payload_size = <size_t>h.payload_len
            frame.msg_type = <WSMsgType>op
            frame.fin = h.fin
            frame.rsv1 = (h.b0 & 0x40) != 0
            frame.rsv2 = (h.b0 & 0x20) != 0
            frame.rsv3 = (h.b0 & 0x10) != 0
            frame.tail_size = avail - total
            frame.last_in_buffer = (frame.tail_size == 0 or
                                    not self._has_complete_frame(p + total, frame.tail_size))
            if op == 9 and self._auto_pong:
                if self._write_paused:
                    self._pending_pong = PyBytes_FromStringAndSize(payload,
                                                                   <Py_ssize_t>h.payload_len)
                elif not self._transport.is_close_frame_sent:
                    self._transport._send_frame(0x8A, payload, <size_t>h.payload_len)
                continue
            if op == 8:
                self._on_close_frame(frame)
                continue
            if (self._transport.auto_ping_expect_pong
                    or self._transport.pong_received_at_future is not None):
                if self._consume_pong(frame):
                    continue
            self._deliver(frame)
            if self._transport._disconnect_called:
                # The listener disconnected: what is left in the buffer is not delivered.
                self._rstart = self._rend
                return

    cdef bint _ext_simple(self, int rc, FrameHeader *h) noexcept:
        """Whether another thread may handle this frame itself (``_ext_commit``): a
        well-formed, final TEXT or BINARY frame, masked as this side must receive it, within
        the limit, on an open connection with no fragmented or compressed message going on and
        no pong awaited. Anything else (control frames, fragments, errors) stops the parse
        before the frame: the loop handles it."""
        cdef WSTransport t = self._transport
        return (rc == HEADER_OK and self._state == OPEN and h.fin
                and h.masked != self._is_client
                and (h.opcode == 1 or h.opcode == 2) and (h.b0 & 0x70) == 0
                and not self._msg_open and not self._inflating and self._pmd is None
                and h.payload_len <= self._max_frame_size
                and not t.auto_ping_expect_pong and t.pong_received_at_future is None
                and not t._disconnect_called)

    cdef char *_ext_room(self, size_t *room, size_t *need) except? NULL:
        """Room in the private read buffer for another thread's recv() (see
        ``WSTransport._ext_room``): what a frame still arriving needs (made by
        ``_make_room_for_frame``), else at least the initial buffer size."""
        cdef size_t usable, live, want
        room[0] = 0
        need[0] = 0
        if self._state != OPEN:
            return NULL
        if self._big is not None:
            room[0] = need[0] = <size_t>PyBytes_GET_SIZE(self._big) - self._big_done
            return PyBytes_AS_STRING(self._big) + self._big_done
        if self._rbuf == NULL:
            self._alloc_private(self._rinit)
            self._rstart = self._rend = self._rneed = 0
        usable = self._rcap - READ_SLACK
        want = self._rinit - READ_SLACK
        if self._rneed <= self._rend and usable - self._rend < want:
            live = self._rend - self._rstart
            if self._rstart > 0:
                memmove(self._rbuf, self._rbuf + self._rstart, live)
                self._rstart = 0
                self._rend = live
                self._rneed = 0
            if usable - live < want:
                self._grow(live + want)
                usable = self._rcap - READ_SLACK
        room[0] = usable - self._rend
        if self._rneed > self._rend:
            need[0] = self._rneed - self._rend
        elif self._ext_after_big and self._rend == self._rstart:
            self._ext_after_big = False
            if room[0] > MAX_HEADER_LEN:
                room[0] = MAX_HEADER_LEN
        return self._rbuf + self._rend

    cdef bint _ext_commit(self, size_t n) except -1:
        """Parse ``n`` bytes another thread read into the buffer (femtows.websockets.sync),
        with the GIL held, while ``WSTransport._ext_reading`` keeps the loop from reading.

        Only plain whole data frames are parsed and delivered (see ``_ext_simple``); the
        first other frame stops the parse before it. Returns True when the loop must take
        over: a frame was left for it, or the connection is no longer open. Never arms a loop
        timer (this is not the loop's thread).
        """
        if self._state != OPEN:
            return True
        self._ext_stopped = False
        self._ext_parse = True
        try:
            if self._big is not None:
                if self._auto_ping:
                    self._last_data_time = femtows_monotonic()
                self._ext_big_arrived(n)
            else:
                self._updated(<Py_ssize_t>n)
        finally:
            self._ext_parse = False
        if self._rstart == self._rend and self._rbuf != NULL:
            self._rstart = self._rend = self._rneed = 0
            if self._rcap > self._rinit and n + READ_SLACK <= self._rinit:
                # Large messages are over (this read fits the initial size): back to a small
                # buffer, as the loop's shrink timer does after a quiet period. (A run of large
                # messages keeps the large buffer rather than reallocating it for each.)
                PyMem_Free(self._rbuf)
                self._rbuf = NULL
                self._rcap = 0
            elif self._rcap > self._rinit and n >= EXT_BIG_MIN:
                # A grown buffer took a large frame whole, to be copied out of it: the next
                # read is header-sized (_ext_room), so that a next large frame is received
                # into its bytes instead, and the buffer shrinks on that small read.
                self._ext_after_big = True
        return self._ext_stopped or self._state != OPEN

    cdef int _ext_start_big(self, FrameHeader *h, char *payload, size_t have) except -1:
        """The reading thread parsed the header of a large whole BINARY frame that has not all
        arrived: move what has (``have`` payload bytes, unmasked) into the ``bytes`` it will be
        delivered as; ``_ext_room`` points the next reads at the rest of it."""
        cdef bytes big = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>h.payload_len)
        cdef char *dst = PyBytes_AS_STRING(big)
        cdef size_t done = self._partial_done  # (the loop may have unmasked a part already)
        self._partial_done = 0
        self._big_masked = h.masked
        self._big_key = femtows_load_u32(payload - 4) if h.masked else 0
        memcpy(dst, payload, have)
        if h.masked and have > done:
            femtows_mask_inplace(<unsigned char *>dst + done, have - done,
                                 femtows_rotate_key(self._big_key, done))
        self._big = big
        self._big_done = have
        self._rstart = self._rend = self._rneed = 0
        return 0

    cdef int _ext_big_arrived(self, size_t n) except -1:
        """``n`` more bytes of the large frame were read into it: unmask them; once it is
        whole, deliver it (``get_payload_as_bytes`` returns the object itself)."""
        cdef bytes big = self._big
        cdef char *data = PyBytes_AS_STRING(big)
        cdef size_t size = <size_t>PyBytes_GET_SIZE(big)
        cdef WSFrame frame = self._frame
        if self._big_masked:
            femtows_mask_inplace(<unsigned char *>data + self._big_done, n,
                                 femtows_rotate_key(self._big_key, self._big_done))
        self._big_done += n
        if self._big_done < size:
            return 0
        self._big = None
        self._big_done = 0
        self._ext_after_big = True
        frame.payload_ptr = data
        frame.payload_size = size
        frame.msg_type = WSMsgType.BINARY
        frame.fin = True
        frame.rsv1 = frame.rsv2 = frame.rsv3 = False
        frame.tail_size = 0
        frame.last_in_buffer = True
        frame._payload_owner = big
        try:
            self._deliver(frame)
        finally:
            frame._payload_owner = None
        return 0

    cdef int _ext_unbig(self) except -1:
        """On the loop's thread, taking the socket back in the middle of a large frame: put
        its header and what has arrived back in the read buffer (unmasked, as the loop's own
        partial work leaves a frame: ``_partial_done``), for the loop's parser to go on."""
        cdef bytes big = self._big
        cdef size_t size = <size_t>PyBytes_GET_SIZE(big)
        cdef size_t done = self._big_done
        cdef char head[14]
        cdef size_t hlen = _encode_header(head, 0x82, size, self._big_masked)
        if self._big_masked:
            femtows_store_u32(head + hlen, self._big_key)
            hlen += 4
        self._big = None
        self._big_done = 0
        if self._rbuf != NULL:
            PyMem_Free(self._rbuf)
        self._rbuf = NULL
        self._alloc_private(hlen + size + 4096 + READ_SLACK)
        memcpy(self._rbuf, head, hlen)
        memcpy(self._rbuf + hlen, PyBytes_AS_STRING(big), done)
        self._rstart = 0
        self._rend = hlen + done
        self._rneed = hlen + size
        self._partial_done = done
        self._partial_utf8 = FEMTOWS_UTF8_ACCEPT
        return 0

    cdef int _ext_resume(self) except -1:
        """On the loop's thread, when reading comes back from another thread: parse what it
        left in the buffer (the frame it stopped at, and what followed)."""
        if self._big is not None:
            self._ext_unbig()
        if self._rbuf != NULL and self._rend > self._rstart and (
                self._state == OPEN or self._state == FAILED or self._state == CLOSE_RECEIVED):
            self._process_frames()
        if self._rbuf != NULL and self._rstart == self._rend:
            self._rstart = self._rend = self._rneed = 0
            if self._shrink_timer is None:
                self._arm_shrink_timer()
        return 0

    cdef bint _process_compressed(self, FrameHeader *h, char *p, size_t avail) except -1:
        """One frame of a compressed message: inflated once complete, then delivered.

        Returns True to go on parsing, False to stop (more data needed, or the connection
        failed, or the listener disconnected).
        """
        cdef size_t total = h.header_len + <size_t>h.payload_len
        cdef char *payload = p + h.header_len
        cdef size_t done, n
        cdef int rc
        cdef uint32_t st
        cdef uint8_t op = h.opcode
        cdef WSFrame frame = self._frame
        cdef WSTransport t = self._transport
        if avail < total:
            # Unmask what has arrived while it is cache-hot; inflate once the frame is whole.
            if h.masked and avail - h.header_len > self._partial_done:
                done = self._partial_done
                n = avail - h.header_len - done
                femtows_mask_inplace(<unsigned char *>payload + done, n,
                                     femtows_rotate_key(femtows_load_u32(payload - 4), done))
                self._partial_done = done + n
            self._make_room_for_frame(total)
            return False
        done = self._partial_done
        self._partial_done = 0
        if h.masked and h.payload_len > done:
            femtows_mask_inplace(<unsigned char *>payload + done, <size_t>h.payload_len - done,
                                 femtows_rotate_key(femtows_load_u32(payload - 4), done))
        if op != 0:
            self._msg_is_text = op == 1
            self._utf8_state = FEMTOWS_UTF8_ACCEPT
        rc = self._pmd.inflate_frame(payload, <size_t>h.payload_len, h.fin,
                                     <size_t>self._max_frame_size, &n)
        if rc != 0:
            if rc != 1009:
                self._fail(rc, "invalid permessage-deflate data")
            elif t._inflate_too_big_format is not None:
                self._fail(rc, t._inflate_too_big_format.format(limit=self._max_frame_size))
            else:
                self._fail(rc, f"decompressed frame exceeds max_frame_size "
                               f"({self._max_frame_size} bytes)")
            return False
        if self._validate_utf8 and self._msg_is_text:
            st = femtows_utf8_validate(self._utf8_state, <const unsigned char *>self._pmd._ibuf,
                                       n)
            if st == FEMTOWS_UTF8_REJECT or (h.fin and st != FEMTOWS_UTF8_ACCEPT):
                self._fail(1007, "invalid UTF-8 in a TEXT message")
                return False
            self._utf8_state = st
        self._msg_open = not h.fin
        self._inflating = not h.fin
        self._rstart += total
        frame.payload_ptr = self._pmd._ibuf
        frame.payload_size = n
        frame.msg_type = <WSMsgType>op
        frame.fin = h.fin
        frame.rsv1 = False              # the payload is the decompressed one
        frame.rsv2 = (h.b0 & 0x20) != 0
        frame.rsv3 = (h.b0 & 0x10) != 0
        frame.tail_size = avail - total
        frame.last_in_buffer = (frame.tail_size == 0 or
                                not self._has_complete_frame(p + total, frame.tail_size))
        if ((t.auto_ping_expect_pong or t.pong_received_at_future is not None)
                and self._consume_pong(frame)):
            pass
        else:
            self._deliver(frame)
        if self._pmd._ibuf != NULL:
            self._pmd.trim()
        if t._disconnect_called:
            self._rstart = self._rend
            return False
        return True

    cdef int _check_close_payload(self, const char *payload, size_t size) noexcept:
        cdef int code
        if size == 0:
            return 0
        if size == 1:
            return 1002
        code = femtows_load_be16(payload)
        if not _is_sendable_close_code(code):
            return 1002
        if femtows_utf8_validate(FEMTOWS_UTF8_ACCEPT, <const unsigned char *>payload + 2,
                                 size - 2) != FEMTOWS_UTF8_ACCEPT:
            return 1007
        return 0

    cdef bint _consume_pong(self, WSFrame frame) except -1:
        # Only called while a pong is expected (auto-ping or measure_roundtrip_time).
        try:
            is_pong = self._listener.is_user_specific_pong(frame)
        except Exception as e:
            self._handle_callback_exception(e, "is_user_specific_pong", True)
            return True
        if is_pong:
            if self._debug:
                self._logger.log(FEMTOWS_DEBUG_LL, "pong received")
            self._transport._pong_received()
            return True
        return False

    cdef _deliver(self, WSFrame frame):
        try:
            self._listener.on_ws_frame(self._transport, frame)
        except Exception as e:
            self._handle_callback_exception(e, "on_ws_frame", self._disconnect_on_exception)

    cdef _on_close_frame(self, WSFrame frame):
        cdef WSTransport t = self._transport
        cdef WSCloseHandshake hs = t.close_handshake
        cdef int code = 0
        if frame.payload_size >= 2:
            code = femtows_load_be16(frame.payload_ptr)
        if hs is None:
            hs = WSCloseHandshake.__new__(WSCloseHandshake)
            t.close_handshake = hs
        hs.recv = WSCloseInfo(_close_code_to_py(code),
                              PyUnicode_DecodeUTF8(frame.payload_ptr + 2,
                                                   <Py_ssize_t>frame.payload_size - 2, NULL)
                              if frame.payload_size > 2 else "")
        self._state = CLOSE_RECEIVED
        if self._debug:
            self._logger.log(FEMTOWS_DEBUG_LL, "CLOSE received: %r", hs.recv)
        self._deliver(frame)
        if not t.is_close_frame_sent and not t._disconnected:
            # The listener did not answer: RFC 6455 §5.5.1 says we must echo the CLOSE.
            t._send_close_payload(code if code else 1000, b"")
        self._on_closing_handshake_done()

    cdef _on_closing_handshake_done(self):
        cdef WSTransport t = self._transport
        self._rstart = self._rend
        if self._is_client:
            # RFC 6455 §7.1.1: the server closes TCP first; wait for it (bounded by the timer).
            t._arm_close_timer()
        elif not t._disconnected:
            t.disconnect(True)

    cdef _fail(self, int code, str reason, bytes close_payload=None):
        """Fail the connection (RFC 6455 §7.1.7): CLOSE with ``code``, deliver nothing more."""
        cdef WSTransport t = self._transport
        if t._fail_hook is not None:
            # A layer above (the Sans-I/O protocol) records the failure and words the reason.
            reason = t._fail_hook(code, reason, close_payload)
        self._logger.info("protocol error, failing the connection: %d %s", code, reason)
        self._state = FAILED
        self._partial_done = 0
        # What follows a bad frame cannot be framed reliably: drop it. The peer's CLOSE reply,
        # sent after it read ours, starts on a frame boundary of its own.
        self._rstart = self._rend
        t._store_exception(WSProtocolError(code, reason))
        if not t.is_close_frame_sent and not t._disconnected:
            t._send_close_payload(code, reason.encode("utf-8")[:123])
        if t.close_handshake is not None and t.close_handshake.recv is not None:
            self._on_closing_handshake_done()
        # Otherwise keep reading: the peer's CLOSE completes the handshake (see
        # _process_frames), the close timer bounds the wait.

    cdef _handle_callback_exception(self, exc, str where, bint disconnect):
        cdef WSTransport t = self._transport
        cdef int code
        if isinstance(exc, WSProtocolError):
            disconnect = True
            code = exc.code
            if not _is_sendable_close_code(code):
                code = 1011
            reason = str(exc)
        elif where == "send_user_specific_ping":
            code = 1011
            reason = "an exception occurred in auto-ping loop"  # picows's words
        else:
            code = 1011
            reason = "Internal error"
        if self._is_client:
            self._logger.info("%s raised %r", where, exc)
        else:
            self._logger.error("%s raised", where, exc_info=exc)
        if not disconnect:
            return
        t._store_exception(exc)
        if self._state == OPEN:
            self._state = FAILED
        if not t.is_close_frame_sent and not t._disconnected:
            try:
                t._send_close_payload(code, reason.encode("utf-8")[:123])
            except Exception:
                pass
        if not t._disconnected:
            t.disconnect(True)

    # -- Sans-I/O (femtows.websockets.protocol drives this object without an event loop) ------

    def _sansio_start(self, WSListener listener):
        """Go OPEN without an HTTP handshake (the Sans-I/O layer did it)."""
        self._start_websocket(listener, None, None, None)

    def _sansio_set_compression(self, params):
        """Run permessage-deflate with ``params`` (a WSDeflateParams) from now on."""
        self._pmd = PerMessageDeflate(params)
        self._transport._pmd = self._pmd

    def _sansio_set_max_frame_size(self, uint64_t size):
        """Change the per-frame limit (checked at each frame header)."""
        self._max_frame_size = size

    def _sansio_pending(self):
        """(the first <= 14 unconsumed bytes, the number of unconsumed bytes, whether a
        compressed message is being received)."""
        cdef size_t avail = self._rend - self._rstart
        return (PyBytes_FromStringAndSize(self._rbuf + self._rstart,
                                          <Py_ssize_t>min(avail, <size_t>14)), avail,
                self._inflating)


# Failure reasons (the WSProtocolError message and the CLOSE reason). Where picows 2.3.1 fails
# the same frame with the same code, the reason starts with picows's words, so that programs and
# tests matching on them keep working after the switch; femtows's detail may follow.

cdef str _length_error_reason(FrameHeader *h):
    if h.header_len == 4:
        return (f"Received frame with invalid 16-bit payload len: {h.payload_len} "
                f"(non-minimal encoding)")
    if h.payload_len >> 63:
        return (f"Received frame with invalid 64-bit payload length: {h.payload_len} "
                f"(most significant bit set)")
    return (f"Received frame with invalid 64-bit payload length: {h.payload_len} "
            f"(non-minimal encoding)")


cdef str _header_error_reason(int code, FrameHeader *h, bint is_client,
                              uint64_t max_frame_size, str too_big_format):
    if code == 1009:
        if too_big_format is not None:
            # A layer above (femtows.websockets) words its own limit: see core.pxd.
            return too_big_format.format(size=h.payload_len, limit=max_frame_size)
        return (f"Received frame with payload size exceeding max allowed size, "
                f"{h.payload_len} > {max_frame_size}")
    if h.b0 & 0x70:
        return "reserved bits set that no negotiated extension allows here"
    if h.masked == is_client:
        if is_client:
            return "Received masked frame from server, RFC 6455 section 5.1 forbids this"
        return "Received un-masked frame from client, RFC 6455 section 5.1 forbids this"
    if h.opcode in (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF):
        return f"Received frame with invalid opcode={h.opcode:#x}"
    if h.opcode >= 8:
        if not h.fin:
            return "Received fragmented control frame"
        return f"Received control frame with payload size > 125 bytes, opcode={h.opcode:#x}"
    if h.opcode == 0:
        return "CONTINUATION frame with no message in progress"
    return "new data frame while a fragmented message is in progress"


cdef str _close_payload_error_reason(const char *payload, size_t size):
    cdef int code
    if size == 1:
        return "Received CLOSE with invalid close code size: 1 byte"
    code = femtows_load_be16(payload)
    if not _is_sendable_close_code(code):
        return f"Received CLOSE with invalid close code: {code}"
    return "Received CLOSE with invalid UTF-8 reason"


class _HeadTooLarge(Exception):
    pass


class WSProtocol(WSProtocolCore, asyncio.BufferedProtocol):
    """The asyncio protocol of a femtows connection (internal).

    Deriving from asyncio.BufferedProtocol is what makes both asyncio and uvloop use the
    zero-copy get_buffer/buffer_updated path.
    """


def _buffer_sizes(WSTransport transport):
    """Tests and load runs: (read buffer bytes allocated, write buffer bytes allocated) of the
    connection behind ``transport``."""
    cdef WSProtocolCore proto = <WSProtocolCore>transport._protocol
    return (0 if proto._using_shared else proto._rcap, transport._wbuf_cap)


def mask_impl():
    """The SIMD variant chosen at run time for masking: "avx2", "sse2" or "scalar"."""
    return femtows_mask_impl().decode()

