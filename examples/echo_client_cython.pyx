# cython: language_level=3
"""An echo client listener written in Cython: femtows calls it through the C vtable.

Build and run: python examples/echo_client_cython_runner.py (compiles this file with
pyximport-free cythonize into a temporary directory).
"""

from femtows cimport WSFrame, WSListener, WSMsgType, WSTransport


cdef class CountingEchoClient(WSListener):
    """Sends a message, counts echoes until ``total`` arrived, then closes."""

    cdef public int received
    cdef public int total
    cdef public bytes last_payload

    def __init__(self, int total=1000):
        self.received = 0
        self.total = total
        self.last_payload = b""

    cpdef on_ws_connected(self, WSTransport transport):
        transport.send(WSMsgType.BINARY, b"ping from cython")

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        if frame.msg_type != WSMsgType.BINARY:
            return
        self.received += 1
        if self.received == self.total:
            # payload_ptr/payload_size are the Cython-level zero-copy view of the payload.
            self.last_payload = frame.payload_ptr[:frame.payload_size]
            transport.send_close(1000)
        else:
            transport.send(WSMsgType.BINARY, frame.get_payload_as_memoryview())
