# cython: language_level=3
"""Echo listeners written in Cython for the "femtows-cython" benchmark row.

femtows calls these through the C vtable (no Python-level method lookup per frame). The bench
compiles this file at set-up (bench/build.py) against the femtows in the current tree.
"""

from femtows cimport WSFrame, WSListener, WSMsgType, WSTransport


cdef class EchoServerListener(WSListener):
    """Echoes every data frame; answers a CLOSE and disconnects."""

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


cdef class EchoClientListener(WSListener):
    """Sends ``message`` again each time its complete echo arrives; counts round trips.

    A frame of the wrong type or length sets ``error`` and stops the loop.
    """

    cdef public bytes message
    cdef public object error
    cdef readonly long long count
    cdef size_t size

    def __init__(self, bytes message):
        self.message = message
        self.error = None
        self.size = len(message)
        self.count = 0

    cpdef on_ws_connected(self, WSTransport transport):
        transport.send(WSMsgType.BINARY, self.message)

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        if frame.msg_type != WSMsgType.BINARY or frame.payload_size != self.size:
            self.error = f"unexpected echo: {frame.msg_type!r}, {frame.payload_size} bytes"
            transport.disconnect()
            return
        self.count += 1
        transport.send(WSMsgType.BINARY, self.message)
