# Cython users: `from femtows cimport WSListener, WSTransport, WSFrame, WSMsgType, WSCloseCode`
# gives C-level access (vtable calls, WSFrame.payload_ptr, send_reuse_external_buffer).
from femtows._core.core cimport (
    WSCloseCode,
    WSCloseHandshake,
    WSCloseInfo,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
)
