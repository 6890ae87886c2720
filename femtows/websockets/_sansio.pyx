# cython: language_level=3
"""The frame engine under the Sans-I/O ``Protocol`` (internal).

A core ``WSProtocolCore`` runs without an event loop: ``feed()`` copies received bytes into
its read buffer (``get_buffer`` / ``buffer_updated``, as asyncio would), the core parses,
unmasks and validates the frames and hands them to this ``WSListener``, which passes each one
to the Python protocol; ``send_frame()`` builds (and on the client side masks) a frame with
the core's ``WSTransport`` into an in-memory transport. There is no second frame parser.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memcpy
from femtows._core.core cimport WSFrame, WSListener, WSMsgType, WSTransport

cdef extern from "Python.h":
    unsigned long PyThread_get_thread_ident()


cdef class FrameEngine(WSListener):
    """Connects a core protocol object to the Sans-I/O ``Protocol``. Internal."""

    cdef public object core        # WSProtocolCore
    cdef public object on_frame    # on_frame(opcode, data, fin, rsv1, rsv2, rsv3)
    cdef WSTransport _t

    cpdef on_ws_connected(self, WSTransport transport):
        self._t = transport

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        self.on_frame(<int>frame.msg_type, frame.get_payload_as_bytes(), frame.fin,
                      frame.rsv1, frame.rsv2, frame.rsv3)

    def set_fail_hook(self, hook):
        """hook(code, core_reason, close_payload) -> reason, called when the core fails."""
        self._t._fail_hook = hook
        self._t._too_big_format = None

    def stop(self):
        """Make the core deliver nothing more and send nothing of its own (no CLOSE echo, no
        CLOSE on failure): from here on the Sans-I/O protocol discards what arrives."""
        self._t.is_close_frame_sent = True
        self._t._disconnect_called = True

    def set_mask_pool(self, bytes pool):
        """Testing aid: the client's masking keys are taken from ``pool`` (4 bytes each)."""
        self._t._mask_pool = pool
        self._t._mask_pool_pos = 0

    def feed(self, data):
        """Copy ``data`` into the core's read buffer, letting it process frames as they fit."""
        cdef Py_buffer src
        cdef Py_buffer dst
        cdef Py_ssize_t off = 0
        cdef Py_ssize_t n
        core = self.core
        # The core's transport checks that it is used from one thread; Sans-I/O objects may
        # be driven from any thread (one at a time).
        self._t._thread_id = PyThread_get_thread_ident()
        PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
        try:
            while off < src.len:
                view = core.get_buffer(src.len - off)
                PyObject_GetBuffer(view, &dst, PyBUF_WRITABLE)
                n = min(dst.len, src.len - off)
                memcpy(dst.buf, <char *>src.buf + off, n)
                PyBuffer_Release(&dst)
                off += n
                core.buffer_updated(n)
        finally:
            PyBuffer_Release(&src)

    def send_frame(self, int opcode, data, bint fin=True, bint rsv1=False, bint rsv2=False,
                   bint rsv3=False):
        """Serialize one frame (masked on the client side) into the transport's writes."""
        cdef Py_buffer view
        cdef WSTransport t = self._t
        cdef int b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) \
            | (0x10 if rsv3 else 0) | opcode
        # The Sans-I/O protocol decides what may be sent when (websockets' rules): the core's
        # own "nothing after disconnect" guard does not apply to an in-memory transport.
        t._disconnect_called = False
        t._thread_id = PyThread_get_thread_ident()
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if opcode == 8:
                t._send_frame(<unsigned char>b0, <const char *>view.buf, <size_t>view.len)
                t.is_close_frame_sent = True
            elif opcode < 8 and t._pmd is not None:
                # permessage-deflate run by the core (zlib from Cython).
                t._send_data_pmd(<WSMsgType>opcode, <const char *>view.buf, <size_t>view.len,
                                 fin, False, rsv2, rsv3, True)
            else:
                t._send_frame(<unsigned char>b0, <const char *>view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)
