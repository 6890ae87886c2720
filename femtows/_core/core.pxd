# The C-level contract of the femtows core, for femtows itself and for users' Cython code:
#
#     from femtows._core.core cimport WSListener, WSTransport, WSFrame, WSMsgType, WSCloseCode
#
# A `cdef class` subclass of WSListener that overrides the cpdef callbacks is called through
# the C vtable (no Python call per frame). See examples/echo_client_cython.pyx.

from libc.stdint cimport uint8_t, uint32_t, uint64_t

from femtows._core.pmd cimport PerMessageDeflate


cpdef enum WSMsgType:
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


cpdef enum WSCloseCode:
    NO_INFO = 0
    OK = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL_CLOSURE = 1006
    INVALID_TEXT = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


cpdef enum WSAutoPingStrategy:
    PING_WHEN_IDLE = 1
    PING_PERIODICALLY = 2


cdef class WSCloseInfo:
    cdef readonly object code      # WSCloseCode or int (3000-4999), NO_INFO when absent
    cdef readonly str reason


cdef class WSCloseHandshake:
    cdef readonly WSCloseInfo recv
    cdef readonly WSCloseInfo sent
    cdef readonly bint recv_then_sent


cdef class WSFrame:
    # Points into the connection's read buffer: valid only during on_ws_frame.
    cdef char *payload_ptr
    cdef readonly size_t payload_size
    cdef readonly size_t tail_size
    cdef readonly WSMsgType msg_type
    cdef readonly bint fin
    cdef readonly bint rsv1
    cdef readonly bint rsv2
    cdef readonly bint rsv3
    cdef readonly bint last_in_buffer
    cdef object _payload_owner       # only for frames made by _make_test_ws_frame

    cpdef bytes get_payload_as_bytes(self)
    cpdef str get_payload_as_utf8_text(self)
    cpdef str get_payload_as_ascii_text(self)
    cpdef object get_payload_as_memoryview(self)
    cpdef object get_close_code(self)
    cpdef object get_close_message(self)
    cpdef object get_close_reason(self)


cdef class WSListener:
    cpdef on_ws_connected(self, WSTransport transport)
    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame)
    cpdef on_ws_disconnected(self, WSTransport transport)
    cpdef send_user_specific_ping(self, WSTransport transport)
    cpdef bint is_user_specific_pong(self, WSFrame frame) except -1
    cpdef pause_writing(self)
    cpdef resume_writing(self)


cdef class WSTransport:
    cdef readonly object underlying_transport
    cdef readonly bint is_client_side
    cdef readonly bint is_secure
    cdef readonly bint is_close_frame_sent
    cdef readonly object request
    cdef readonly object response
    cdef readonly WSCloseHandshake close_handshake

    # Accessible to Cython users, undocumented (as in picows).
    cdef public object disconnected_future
    cdef public object pong_received_at_future
    cdef public object listener_proxy
    cdef public bint auto_ping_expect_pong

    cdef object __weakref__
    cdef object _protocol            # the WSProtocol that owns this transport
    cdef object _loop
    cdef object _logger
    cdef bint _debug
    cdef unsigned long _thread_id
    cdef int _fd                     # >= 0: plain TCP socket we may send() on directly
    cdef object _t_is_closing        # underlying_transport.is_closing, bound once
    # The CLOSE reason for a frame over max_frame_size, as a str.format() template with {size}
    # and {limit}; None: picows's wording. Set by layers that word limits their own way.
    cdef str _too_big_format
    # The same for a compressed frame that inflates past max_frame_size ({limit}).
    cdef str _inflate_too_big_format
    # Called as _fail_hook(code, reason, close_payload or None) when the core fails the
    # connection; returns the CLOSE reason to send. None: no hook (the Sans-I/O layer sets it).
    cdef object _fail_hook
    cdef object _t_write_buffer_size # underlying_transport.get_write_buffer_size, bound once
    cdef object _write_nocheck       # aiofastnet: write_nocheck (copies only what it keeps)
    cdef object _writelines_nocheck  # aiofastnet: writelines_nocheck
    cdef bint _disconnect_called
    cdef bint _disconnected
    cdef object _exception           # first listener/parser exception (client side)
    cdef double _close_timeout
    cdef object _close_timer
    cdef bint _rtt_running           # measure_roundtrip_time in progress (auto-ping holds back)
    cdef char *_wbuf
    cdef size_t _wbuf_cap
    cdef bytes _mask_pool
    cdef size_t _mask_pool_pos
    cdef PerMessageDeflate _pmd      # permessage-deflate negotiated, else None
    cdef bint _pmd_sending           # the message being sent is compressed
    # Direct sends from another thread (femtows.websockets.sync; see _send_from_thread).
    cdef public bint _send_holds_gil # set by the sync layer: sendmsg() keeps the GIL
    cdef bint _tx_queued             # bytes may be queued in the transport (or a send is in progress)
    cdef bytes _pending              # rest of a partial direct send; goes out before anything else
    # Reading by another thread (femtows.websockets.sync): set on the loop's thread after
    # pausing the transport's reading; the loop neither reads nor trims the read buffer.
    cdef public bint _ext_reading
    cdef char *_ext_room(self, size_t *room, size_t *need) except? NULL
    cdef bint _ext_commit(self, size_t n) except -1

    cpdef send(self, WSMsgType msg_type, message, bint fin=*, bint rsv1=*, bint rsv2=*,
               bint rsv3=*, bint compress=*)
    cpdef send_reuse_external_bytearray(self, WSMsgType msg_type, bytearray buffer,
                                        Py_ssize_t msg_offset, bint fin=*, bint rsv1=*,
                                        bint rsv2=*, bint rsv3=*)
    cdef send_reuse_external_buffer(self, WSMsgType msg_type, char *msg_ptr, size_t msg_size,
                                    bint fin=*, bint rsv1=*, bint rsv2=*, bint rsv3=*)
    cpdef send_ping(self, message=*)
    cpdef send_pong(self, message=*)
    cpdef send_close(self, close_code=*, close_message=*)
    cpdef disconnect(self, bint graceful=*)
    cpdef notify_user_specific_pong_received(self)

    cdef int _check_thread(self, str method) except -1
    cdef int _send_frame(self, uint8_t first_byte, const char *ptr, size_t size) except -1
    cdef int _send_data_pmd(self, WSMsgType msg_type, const char *ptr, size_t size, bint fin,
                            bint rsv1, bint rsv2, bint rsv3, bint compress) except -1
    cdef int _send_masked_large(self, const char *head, size_t head_len, const char *ptr,
                                size_t size, uint32_t key) except -1
    cdef int _queue_masked(self, const char *done, size_t done_len, const char *ptr,
                           size_t size, uint32_t key) except -1
    cdef bint _can_send_direct(self) except -1
    cdef int _write(self, const char *head, size_t head_len, const char *body,
                    size_t body_len) except -1
    cdef int _reserve_wbuf(self, size_t size) except -1
    cdef uint32_t _next_mask_key(self) except? 0
    cdef int _flush_pending(self) except -1
    cdef int _send_close_payload(self, int code, bytes reason) except -1
    cdef int _send_close_raw(self, const char *ptr, Py_ssize_t size) except -1
    cdef int _arm_close_timer(self) except -1
    cdef int _store_exception(self, object exc) except -1
    cdef int _pong_received(self) except -1
