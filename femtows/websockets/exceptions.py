"""Exceptions of :mod:`femtows.websockets`, twins of ``websockets.exceptions`` (17.4).

Same names, hierarchy, constructor arguments, attributes and ``str()`` texts, so code that
catches or matches websockets' exceptions keeps working after changing its imports::

    WebSocketException
    ├─ ConnectionClosed ─ ConnectionClosedOK, ConnectionClosedError
    ├─ InvalidURI, InvalidProxy
    ├─ InvalidHandshake
    │   ├─ SecurityError ─ RequestLineTooLong, StatusLineTooLong, HeaderLineTooLong, TooManyHeaders
    │   ├─ ProxyError ─ InvalidProxyMessage, InvalidProxyStatus
    │   ├─ InvalidMessage, InvalidMethod, InvalidProtocol, InvalidStatus
    │   ├─ InvalidHeader ─ InvalidHeaderFormat, InvalidHeaderValue, InvalidOrigin, InvalidUpgrade
    │   └─ NegotiationError ─ DuplicateParameter, InvalidParameterName, InvalidParameterValue
    ├─ ProtocolError, PayloadTooBig, TooManyFragments
    ├─ InvalidState (also AssertionError)
    └─ ConcurrencyError (also RuntimeError)

The legacy names ``AbortHandshake``, ``InvalidStatusCode``, ``RedirectHandshake`` and
``WebSocketProtocolError`` are still reachable as deprecated attributes of this module (each
access emits a :class:`DeprecationWarning`), as in websockets.
"""

from __future__ import annotations

import http
import warnings
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    from .datastructures import Headers, HeadersLike
    from .frames import Close
    from .http11 import Response
    from .typing import StatusLike

__all__ = [
    "WebSocketException",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "InvalidURI",
    "InvalidProxy",
    "InvalidHandshake",
    "SecurityError",
    "RequestLineTooLong",
    "StatusLineTooLong",
    "HeaderLineTooLong",
    "TooManyHeaders",
    "TooManyFragments",
    "ProxyError",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidMessage",
    "InvalidMethod",
    "InvalidProtocol",
    "InvalidStatus",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidOrigin",
    "InvalidUpgrade",
    "NegotiationError",
    "DuplicateParameter",
    "InvalidParameterName",
    "InvalidParameterValue",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidState",
    "ConcurrencyError",
]


class WebSocketException(Exception):
    """Base class of every exception raised by :mod:`femtows.websockets`."""


class ConnectionClosed(WebSocketException):
    """Raised when using a connection that is closed (or closing).

    Args:
        rcvd: the close frame received (``code`` and ``reason``), or ``None``.
        sent: the close frame sent, or ``None``.
        rcvd_then_sent: when both frames exist, ``True`` if the received one came first;
            must be ``None`` when one of them is missing.

    ``str()`` tells what happened, e.g. ``"received 1000 (OK); then sent 1000 (OK)"`` or
    ``"no close frame received or sent"``; users match on these texts.
    """

    def __init__(
        self,
        rcvd: Optional[Close],
        sent: Optional[Close],
        rcvd_then_sent: Optional[bool] = None,
    ) -> None:
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent
        # The order is only meaningful when both frames exist.
        assert (rcvd_then_sent is None) == (rcvd is None or sent is None)

    def __str__(self) -> str:
        rcvd, sent = self.rcvd, self.sent
        if rcvd is not None and sent is not None:
            if self.rcvd_then_sent:
                return f"received {rcvd}; then sent {sent}"
            return f"sent {sent}; then received {rcvd}"
        if rcvd is not None:
            return f"received {rcvd}; no close frame sent"
        if sent is not None:
            return f"sent {sent}; no close frame received"
        return "no close frame received or sent"

    # deprecated in websockets 13.1 - 2024-09-21: kept for code written before it.
    @property
    def code(self) -> int:
        """Deprecated: the received close code, 1006 when none was received."""
        warnings.warn(
            "ConnectionClosed.code is deprecated; "
            "use Protocol.close_code or ConnectionClosed.rcvd.code",
            DeprecationWarning,
            stacklevel=2,
        )
        return 1006 if self.rcvd is None else self.rcvd.code

    @property
    def reason(self) -> str:
        """Deprecated: the received close reason, ``""`` when none was received."""
        warnings.warn(
            "ConnectionClosed.reason is deprecated; "
            "use Protocol.close_reason or ConnectionClosed.rcvd.reason",
            DeprecationWarning,
            stacklevel=2,
        )
        return "" if self.rcvd is None else self.rcvd.reason


class ConnectionClosedOK(ConnectionClosed):
    """A :exc:`ConnectionClosed` after a proper closing handshake.

    Close frames were both received and sent, with code 1000 (OK), 1001 (going away) or no code.
    """


class ConnectionClosedError(ConnectionClosed):
    """A :exc:`ConnectionClosed` after an error.

    A close code other than 1000/1001 was received or sent, or the closing handshake did not
    complete.
    """


class InvalidURI(WebSocketException):
    """Raised when a URI is not a valid WebSocket URI.

    Args:
        uri: the URI as given.
        msg: what is wrong with it.
    """

    def __init__(self, uri: str, msg: str) -> None:
        self.uri = uri
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.uri} isn't a valid URI: {self.msg}"


class InvalidProxy(WebSocketException):
    """Raised when a proxy address is not valid.

    Args:
        proxy: the proxy address as given.
        msg: what is wrong with it.
    """

    def __init__(self, proxy: str, msg: str) -> None:
        self.proxy = proxy
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.proxy} isn't a valid proxy: {self.msg}"


class InvalidHandshake(WebSocketException):
    """Base class of the errors that make an opening handshake fail."""


class SecurityError(InvalidHandshake):
    """Raised when a handshake request or response breaks a security limit.

    The limits are set by the ``WEBSOCKETS_MAX_*`` environment variables.
    """


class RequestLineTooLong(SecurityError):
    """Raised when the request line of a handshake request is too long."""


class StatusLineTooLong(SecurityError):
    """Raised when the status line of a handshake response is too long."""


class HeaderLineTooLong(SecurityError):
    """Raised when a header line of a handshake request or response is too long."""


class TooManyHeaders(SecurityError):
    """Raised when a handshake request or response has too many headers."""


class ProxyError(InvalidHandshake):
    """Raised when connecting through a proxy fails."""


class InvalidProxyMessage(ProxyError):
    """Raised when an HTTP proxy's response is malformed."""


class InvalidProxyStatus(ProxyError):
    """Raised when an HTTP proxy refuses the CONNECT request.

    Args:
        response: the proxy's response (its ``status_code`` appears in ``str()``).
    """

    def __init__(self, response: Response) -> None:
        self.response = response

    def __str__(self) -> str:
        return f"proxy rejected connection: HTTP {self.response.status_code:d}"


class InvalidMessage(InvalidHandshake):
    """Raised when a handshake request or response is malformed."""


class InvalidMethod(InvalidHandshake):
    """Raised when a handshake request does not use GET.

    Args:
        method: the request's method.
    """

    def __init__(self, method: str) -> None:
        self.method = method

    def __str__(self) -> str:
        return f"unsupported HTTP method: {self.method}"


class InvalidProtocol(InvalidHandshake):
    """Raised when a handshake request does not use HTTP/1.1.

    Args:
        protocol: the request's protocol, e.g. ``"HTTP/1.0"``.
    """

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol

    def __str__(self) -> str:
        return f"unsupported HTTP version: {self.protocol}"


class InvalidStatus(InvalidHandshake):
    """Raised when the server answers the upgrade request with something other than 101.

    Args:
        response: the server's response, available as ``.response``.
    """

    def __init__(self, response: Response) -> None:
        self.response = response

    def __str__(self) -> str:
        return f"server rejected WebSocket connection: HTTP {self.response.status_code:d}"


class InvalidHeader(InvalidHandshake):
    """Raised when an HTTP header is missing, empty or invalid.

    Args:
        name: the header's name.
        value: its value; ``None`` means missing, ``""`` empty.
    """

    def __init__(self, name: str, value: Optional[str] = None) -> None:
        self.name = name
        self.value = value

    def __str__(self) -> str:
        if self.value is None:
            return f"missing {self.name} header"
        if not self.value:
            return f"empty {self.name} header"
        return f"invalid {self.name} header: {self.value}"


class InvalidHeaderFormat(InvalidHeader):
    """Raised when an HTTP header does not follow its grammar.

    Args:
        name: the header's name.
        error: what was expected.
        header: the header's value.
        pos: where parsing failed in ``header``.
    """

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        super().__init__(name, f"{error} at {pos} in {header}")


class InvalidHeaderValue(InvalidHeader):
    """Raised when an HTTP header is well formed but its value is not acceptable."""


class InvalidOrigin(InvalidHeader):
    """Raised when the ``Origin`` header of a request is not allowed.

    Args:
        origin: the request's origin, ``None`` when it had none.
    """

    def __init__(self, origin: Optional[str]) -> None:
        super().__init__("Origin", origin)


class InvalidUpgrade(InvalidHeader):
    """Raised when the ``Upgrade`` or ``Connection`` header is wrong."""


class NegotiationError(InvalidHandshake):
    """Raised when negotiating an extension or a subprotocol fails."""


class DuplicateParameter(NegotiationError):
    """Raised when an extension header repeats a parameter.

    Args:
        name: the parameter's name.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return f"duplicate parameter: {self.name}"


class InvalidParameterName(NegotiationError):
    """Raised when an extension header has an unknown parameter.

    Args:
        name: the parameter's name.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return f"invalid parameter name: {self.name}"


class InvalidParameterValue(NegotiationError):
    """Raised when an extension parameter's value is missing, empty or invalid.

    Args:
        name: the parameter's name.
        value: its value; ``None`` means missing, ``""`` empty.
    """

    def __init__(self, name: str, value: Optional[str]) -> None:
        self.name = name
        self.value = value

    def __str__(self) -> str:
        if self.value is None:
            return f"missing value for parameter {self.name}"
        if not self.value:
            return f"empty value for parameter {self.name}"
        return f"invalid value for parameter {self.name}: {self.value}"


class ProtocolError(WebSocketException):
    """Raised when a frame, or a sequence of frames, breaks RFC 6455."""


class PayloadTooBig(WebSocketException):
    """Raised when a frame or message exceeds ``max_size``.

    Args:
        size_or_message: the frame's size in bytes (``None`` when unknown). Passing a ``str``
            message is deprecated (DeprecationWarning) and then ``str()`` is that message.
        max_size: the limit in bytes.
        current_size: bytes of the message already read; added to ``max_size`` and shown.
    """

    def __init__(
        self,
        size_or_message: Union[int, None, str],
        max_size: Optional[int] = None,
        current_size: Optional[int] = None,
    ) -> None:
        self.message: Optional[str] = None
        if isinstance(size_or_message, str):
            # deprecated in websockets 14.0 - 2024-11-09
            warnings.warn(
                "PayloadTooBig(message) is deprecated; change to PayloadTooBig(size, max_size)",
                DeprecationWarning,
                stacklevel=2,
            )
            assert max_size is None and current_size is None
            self.message = size_or_message
            return
        assert max_size is not None
        self.size: Optional[int] = size_or_message
        self.max_size: int = max_size
        self.current_size: Optional[int] = None
        self.set_current_size(current_size)

    def set_current_size(self, current_size: Optional[int]) -> None:
        """Record how many bytes of the message were read before this frame (once)."""
        assert self.current_size is None
        if current_size is None:
            return
        self.current_size = current_size
        self.max_size += current_size

    def __str__(self) -> str:
        if self.message is not None:
            return self.message
        parts = ["frame"]
        if self.size is not None:
            parts.append(f"with {self.size} bytes")
        if self.current_size is not None:
            parts.append(f"after reading {self.current_size} bytes")
        parts.append(f"exceeds limit of {self.max_size} bytes")
        return " ".join(parts)


class TooManyFragments(WebSocketException):
    """Raised when a fragmented message has more frames than allowed.

    Args:
        max_fragments: the limit (``WEBSOCKETS_MAX_FRAGMENTS``, 4096 by default).
    """

    def __init__(self, max_fragments: int) -> None:
        super().__init__(f"fragmented message exceeds limit of {max_fragments} frames")


class InvalidState(WebSocketException, AssertionError):
    """Raised when an operation is not allowed in the connection's current state.

    For example sending a data frame when the state is not OPEN.
    """


class ConcurrencyError(WebSocketException, RuntimeError):
    """Raised when two coroutines receive (or send fragmented messages) at the same time.

    Reading and writing concurrently is fine; two concurrent readers are not.
    """


# Legacy exceptions (websockets.legacy.exceptions), reachable as deprecated attributes.
# deprecated in websockets 14.0 - 2024-11-09


class InvalidStatusCode(InvalidHandshake):
    """Legacy: the handshake response's status code was not 101 (use :exc:`InvalidStatus`).

    Args:
        status_code: the status code.
        headers: the response headers.
    """

    def __init__(self, status_code: int, headers: Headers) -> None:
        self.status_code = status_code
        self.headers = headers

    def __str__(self) -> str:
        return f"server rejected WebSocket connection: HTTP {self.status_code}"


class AbortHandshake(InvalidHandshake):
    """Legacy: abort a handshake with an HTTP response (use ``process_request``).

    Args:
        status: the HTTP status (an int is converted to :class:`http.HTTPStatus`).
        headers: response headers.
        body: response body.
    """

    def __init__(self, status: StatusLike, headers: HeadersLike, body: bytes = b"") -> None:
        from .datastructures import Headers

        self.status = http.HTTPStatus(status)
        self.headers = Headers(headers)
        self.body = body

    def __str__(self) -> str:
        return f"HTTP {self.status:d}, {len(self.headers)} headers, {len(self.body)} bytes"


class RedirectHandshake(InvalidHandshake):
    """Legacy: the handshake was redirected.

    Args:
        uri: where to.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __str__(self) -> str:
        return f"redirect to {self.uri}"


_DEPRECATED: dict[str, Any] = {
    "AbortHandshake": AbortHandshake,
    "InvalidStatusCode": InvalidStatusCode,
    "RedirectHandshake": RedirectHandshake,
    "WebSocketProtocolError": ProtocolError,
}
# Keep the legacy classes out of the module namespace so that reaching them goes through
# __getattr__ and warns, as in websockets.
del AbortHandshake, InvalidStatusCode, RedirectHandshake


def __getattr__(name: str) -> Any:
    try:
        value = _DEPRECATED[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    warnings.warn(f"{__name__}.{name} is deprecated", DeprecationWarning, stacklevel=2)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_DEPRECATED))
