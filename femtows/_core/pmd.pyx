# cython: language_level=3
"""permessage-deflate (RFC 7692) for the femtows core: zlib called directly, no Python object
per message.

One ``PerMessageDeflate`` per connection holds a raw-deflate z_stream per direction, each
created on first use (a connection that never sends or never receives a compressed message
never pays for that side) with the negotiated window bits and memLevel, and freed by
``close()`` when the connection is lost.

Receiving: ``inflate_frame`` inflates one frame's payload (plus, at the end of a message, the
``00 00 ff ff`` tail the sender removed, §7.2.2) into a buffer owned by this object, growing it
geometrically but never past ``limit + 1`` bytes: the moment the output passes ``limit`` it
returns 1009, so a small frame that inflates to gigabytes costs at most the limit.

Sending: ``deflate_frame`` compresses into a buffer that keeps ``headroom`` bytes free in front
for the frame header, so the core writes header + payload with one syscall and no copy. Calls
are the ones Python's ``zlib.compressobj().compress()`` + ``flush(Z_SYNC_FLUSH)`` make, so the
bytes on the wire are identical to a ``zlib``-module reference (the tests check this).
"""

from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.string cimport memcmp, memset


cdef extern from "zlib.h":
    int Z_OK
    int Z_STREAM_END
    int Z_BUF_ERROR
    int Z_MEM_ERROR
    int Z_NO_FLUSH
    int Z_SYNC_FLUSH
    int Z_DEFLATED
    int Z_DEFAULT_STRATEGY
    const char *zlibVersion()
    int deflateInit2(z_stream *strm, int level, int method, int windowBits, int memLevel,
                     int strategy)
    int deflate(z_stream *strm, int flush) nogil
    int deflateReset(z_stream *strm)
    int deflateEnd(z_stream *strm)
    int inflateInit2(z_stream *strm, int windowBits)
    int inflate(z_stream *strm, int flush) nogil
    int inflateReset(z_stream *strm)
    int inflateEnd(z_stream *strm)

# Largest chunk handed to zlib at once (avail_in / avail_out are 32-bit).
DEF ZCHUNK = 1073741824
DEF MIN_INFLATE_BUF = 16384
# Output buffers larger than this are freed after each frame instead of kept for the next:
# an idle connection then holds only zlib's own state. A malloc per compressed frame costs
# tens of nanoseconds next to microseconds of (de)compression.
DEF KEEP_BUF = 0

cdef const unsigned char *_TAIL = b"\x00\x00\xff\xff"


def zlib_version():
    """The version of the zlib library the core is linked with."""
    return zlibVersion().decode()


cdef class PerMessageDeflate:
    """The permessage-deflate state of one connection (internal)."""

    def __cinit__(self):
        memset(&self._inf, 0, sizeof(z_stream))
        memset(&self._def, 0, sizeof(z_stream))

    def __init__(self, params):
        self.params = params
        self._remote_bits = params.remote_max_window_bits
        self._local_bits = params.local_max_window_bits
        self._remote_nct = params.remote_no_context_takeover
        self._local_nct = params.local_no_context_takeover
        self._level = params.compress_level
        self._mem_level = params.mem_level
        if not 8 <= self._remote_bits <= 15 or not 9 <= self._local_bits <= 15:
            raise ValueError("window bits out of range")

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        if self._inf_ready:
            inflateEnd(&self._inf)
            self._inf_ready = False
        if self._def_ready:
            deflateEnd(&self._def)
            self._def_ready = False
        PyMem_Free(self._ibuf)
        self._ibuf = NULL
        self._ibuf_cap = 0
        PyMem_Free(self._obuf)
        self._obuf = NULL
        self._obuf_cap = 0

    cpdef close(self):
        """Free the zlib state and buffers; the object cannot be used afterwards."""
        self._closed = True
        self._release()

    def __repr__(self):
        return (f"<PerMessageDeflate {self.params!r} inflater={bool(self._inf_ready)} "
                f"deflater={bool(self._def_ready)}>")

    @property
    def buffer_sizes(self):
        """(inflate output buffer, deflate output buffer) sizes in bytes (for tests)."""
        return self._ibuf_cap, self._obuf_cap

    cdef void trim(self) noexcept:
        """Free output buffers that grew large for one big message."""
        if self._ibuf_cap > KEEP_BUF:
            PyMem_Free(self._ibuf)
            self._ibuf = NULL
            self._ibuf_cap = 0
        if self._obuf_cap > KEEP_BUF:
            PyMem_Free(self._obuf)
            self._obuf = NULL
            self._obuf_cap = 0

    # -- receiving ---------------------------------------------------------------------------

    cdef int _grow_ibuf(self, size_t cap) except -1:
        cdef char *p = <char *>PyMem_Realloc(self._ibuf, cap)
        if p == NULL:
            raise MemoryError()
        self._ibuf = p
        self._ibuf_cap = cap
        return 0

    cdef int _inflate_input(self, const unsigned char *src, size_t left, size_t limit,
                            size_t *produced) except -1:
        """Inflate src[:left] after what is already in _ibuf; 0, or 1009 / 1002."""
        cdef int ret
        cdef size_t chunk, cap
        while True:
            chunk = left if left < ZCHUNK else ZCHUNK
            self._inf.next_in = src
            self._inf.avail_in = <unsigned int>chunk
            while True:
                if produced[0] == self._ibuf_cap:
                    if self._ibuf_cap > limit:
                        return 1009
                    cap = self._ibuf_cap * 2 if self._ibuf_cap else MIN_INFLATE_BUF
                    if cap > limit + 1 or cap < self._ibuf_cap:
                        cap = limit + 1
                    self._grow_ibuf(cap)
                chunk = self._ibuf_cap - produced[0]
                if chunk > ZCHUNK:
                    chunk = ZCHUNK
                self._inf.next_out = <unsigned char *>self._ibuf + produced[0]
                self._inf.avail_out = <unsigned int>chunk
                with nogil:
                    ret = inflate(&self._inf, Z_SYNC_FLUSH)
                produced[0] += chunk - self._inf.avail_out
                if produced[0] > limit:
                    return 1009
                if ret == Z_STREAM_END:
                    # The peer ended the stream with a BFINAL block (RFC 7692 §7.2.3.4):
                    # whatever follows starts a new one.
                    inflateReset(&self._inf)
                elif ret == Z_BUF_ERROR:
                    if self._inf.avail_out != 0:
                        break               # no progress possible: the input is used up
                elif ret == Z_MEM_ERROR:
                    raise MemoryError()
                elif ret != Z_OK:
                    return 1002             # corrupt data, or a preset dictionary
                if self._inf.avail_in == 0 and self._inf.avail_out != 0:
                    break
            if self._inf.avail_in != 0:
                return 1002
            src += (left if left < ZCHUNK else ZCHUNK)
            left -= (left if left < ZCHUNK else ZCHUNK)
            if left == 0:
                return 0

    cdef int inflate_frame(self, const char *data, size_t size, bint fin, size_t limit,
                           size_t *out_size) except -1:
        """Inflate one frame of a compressed message into the inflate buffer.

        Returns 0 (``out_size`` bytes at ``self._ibuf``), 1009 as soon as the output passes
        ``limit``, or 1002 for data that is not a valid deflate stream.
        """
        cdef size_t produced = 0
        cdef size_t cap
        cdef int rc
        if self._closed:
            raise RuntimeError("permessage-deflate state used after close")
        if not self._inf_ready:
            # A peer that asked for 8 bits but compresses with zlib really uses 9
            # (madler/zlib#171); a larger inflate window is always safe.
            rc = inflateInit2(&self._inf, -(self._remote_bits if self._remote_bits > 9 else 9))
            if rc == Z_MEM_ERROR:
                raise MemoryError()
            if rc != Z_OK:
                raise RuntimeError(f"inflateInit2 failed ({rc})")
            self._inf_ready = True
        if size:
            # Start from a guess (JSON-like text inflates 2-5x) instead of doubling from 16 KiB.
            cap = size * 4 if size < (<size_t>1 << 40) else size
            if cap > limit + 1:
                cap = limit + 1
            if cap > self._ibuf_cap:
                self._grow_ibuf(cap)
            rc = self._inflate_input(<const unsigned char *>data, size, limit, &produced)
            if rc:
                return rc
        if fin:
            rc = self._inflate_input(_TAIL, 4, limit, &produced)
            if rc:
                return rc
            if self._remote_nct:
                inflateReset(&self._inf)
        out_size[0] = produced
        return 0

    # -- sending -----------------------------------------------------------------------------

    cdef int _grow_obuf(self, size_t cap) except -1:
        cdef char *p = <char *>PyMem_Realloc(self._obuf, cap)
        if p == NULL:
            raise MemoryError()
        self._obuf = p
        self._obuf_cap = cap
        return 0

    cdef char *deflate_frame(self, const char *data, size_t size, bint fin, size_t headroom,
                             size_t *out_size) except NULL:
        """Compress one frame's payload; returns the buffer, payload at ``+ headroom``.

        At the end of a message (``fin``) the trailing ``00 00 ff ff`` is removed (§7.2.1) and,
        without context takeover, the compressor is reset.
        """
        cdef size_t produced = headroom
        cdef size_t chunk, left = size
        cdef int ret, flush
        cdef const unsigned char *src = <const unsigned char *>data
        if self._closed:
            raise RuntimeError("permessage-deflate state used after close")
        if not self._def_ready:
            ret = deflateInit2(&self._def, self._level, Z_DEFLATED, -self._local_bits,
                               self._mem_level, Z_DEFAULT_STRATEGY)
            if ret == Z_MEM_ERROR:
                raise MemoryError()
            if ret != Z_OK:
                raise RuntimeError(f"deflateInit2 failed ({ret})")
            self._def_ready = True
        if self._obuf_cap < headroom + size // 2 + 64:
            self._grow_obuf(headroom + size // 2 + 256)
        # Like zlib.compressobj: compress(data) with Z_NO_FLUSH, then flush(Z_SYNC_FLUSH).
        flush = Z_NO_FLUSH
        while True:
            if flush == Z_NO_FLUSH:
                chunk = left if left < ZCHUNK else ZCHUNK
                self._def.next_in = src
                self._def.avail_in = <unsigned int>chunk
                src += chunk
                left -= chunk
            while True:
                if produced == self._obuf_cap:
                    self._grow_obuf(self._obuf_cap * 2)
                chunk = self._obuf_cap - produced
                if chunk > ZCHUNK:
                    chunk = ZCHUNK
                self._def.next_out = <unsigned char *>self._obuf + produced
                self._def.avail_out = <unsigned int>chunk
                with nogil:
                    ret = deflate(&self._def, flush)
                produced += chunk - self._def.avail_out
                if ret != Z_OK and ret != Z_BUF_ERROR:
                    raise RuntimeError(f"deflate failed ({ret})")
                if self._def.avail_out != 0 and (flush != Z_NO_FLUSH or self._def.avail_in == 0):
                    break
            if flush == Z_SYNC_FLUSH:
                break
            if left == 0:
                flush = Z_SYNC_FLUSH
        if fin:
            if (produced < headroom + 4
                    or memcmp(self._obuf + produced - 4, _TAIL, 4) != 0):
                raise RuntimeError("zlib sync flush did not end with 00 00 ff ff")
            produced -= 4
            if self._local_nct:
                deflateReset(&self._def)
        out_size[0] = produced - headroom
        return self._obuf

    # -- Python entry points (tests and bench/deflate_micro.py; the core uses the cdef ones) --

    def compress(self, data, bint fin=True):
        """Compress one frame's payload as the core would send it; returns bytes."""
        cdef const unsigned char[::1] view = data
        cdef size_t n
        cdef char *buf = self.deflate_frame(<const char *>&view[0] if view.shape[0] else NULL,
                                            <size_t>view.shape[0], fin, 0, &n)
        return buf[:n]

    def decompress(self, data, bint fin=True, size_t limit=16777216):
        """Inflate one received frame's payload; WSProtocolError(1009 or 1002) on failure."""
        cdef const unsigned char[::1] view = data
        cdef size_t n
        cdef int rc = self.inflate_frame(<const char *>&view[0] if view.shape[0] else NULL,
                                         <size_t>view.shape[0], fin, limit, &n)
        if rc:
            from femtows.errors import WSProtocolError
            raise WSProtocolError(rc, "inflate failed" if rc == 1002 else "over the limit")
        return self._ibuf[:n] if n else b""
