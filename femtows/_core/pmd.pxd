# permessage-deflate (RFC 7692) state of one connection: one zlib z_stream per direction.
# Internal to femtows: core.pyx drives it, nothing else should.

cdef extern from "zlib.h":
    ctypedef struct z_stream:
        const unsigned char *next_in
        unsigned int avail_in
        unsigned long total_in
        unsigned char *next_out
        unsigned int avail_out
        unsigned long total_out
        const char *msg


cdef class PerMessageDeflate:
    cdef z_stream _inf
    cdef z_stream _def
    cdef bint _inf_ready
    cdef bint _def_ready
    cdef bint _closed
    cdef readonly object params      # handshake.WSDeflateParams
    cdef int _remote_bits
    cdef int _local_bits
    cdef int _level
    cdef int _mem_level
    cdef bint _remote_nct
    cdef bint _local_nct
    cdef char *_ibuf                 # inflate output: the payload handed to on_ws_frame
    cdef size_t _ibuf_cap
    cdef char *_obuf                 # deflate output, after `headroom` bytes for the header
    cdef size_t _obuf_cap

    cdef int inflate_frame(self, const char *data, size_t size, bint fin, size_t limit,
                           size_t *out_size) except -1
    cdef char *deflate_frame(self, const char *data, size_t size, bint fin, size_t headroom,
                             size_t *out_size) except NULL
    cdef void trim(self) noexcept
    cdef void _release(self) noexcept
    cdef int _grow_ibuf(self, size_t cap) except -1
    cdef int _grow_obuf(self, size_t cap) except -1
    cdef int _inflate_input(self, const unsigned char *src, size_t left, size_t limit,
                            size_t *produced) except -1
    cpdef close(self)
