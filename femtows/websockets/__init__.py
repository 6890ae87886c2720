"""femtows.websockets: the websockets 17.4 asyncio API on the femtows engine.

A program written for ``websockets`` runs here by changing its imports
(``websockets`` → ``femtows.websockets``). The package mirrors websockets' layout
(``asyncio.client``, ``asyncio.server``, ``asyncio.router``, ``exceptions``, ``datastructures``,
``frames``, ``http11``, ``protocol``, ``typing``, ``uri``) and this top level exports the same
names as ``websockets/__init__.py``, imported on first use (``import femtows.websockets`` stays
cheap).
See docs/websockets.md for what is the same and what differs.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from .version import version as __version__  # noqa: F401

__all__ = [
    # .asyncio.client
    "connect",
    "unix_connect",
    "ClientConnection",
    # .asyncio.router
    "route",
    "unix_route",
    "Router",
    # .asyncio.server
    "basic_auth",
    "broadcast",
    "serve",
    "unix_serve",
    "ServerConnection",
    "Server",
    # .client
    "ClientProtocol",
    # .datastructures
    "Headers",
    "HeadersLike",
    "MultipleValuesError",
    # .exceptions
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateParameter",
    "HeaderLineTooLong",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidMethod",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidProtocol",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidUpgrade",
    "InvalidURI",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "RequestLineTooLong",
    "SecurityError",
    "StatusLineTooLong",
    "TooManyFragments",
    "TooManyHeaders",
    "WebSocketException",
    # .frames
    "Close",
    "CloseCode",
    "Frame",
    "Opcode",
    # .http11
    "Request",
    "Response",
    # .protocol
    "Protocol",
    "Side",
    "State",
    # .server
    "ServerProtocol",
    # .typing
    "Data",
    "ExtensionName",
    "ExtensionParameter",
    "LoggerLike",
    "StatusLike",
    "Origin",
    "Subprotocol",
]

# Where each exported name lives (relative to this package).
_SOURCES: dict[str, str] = {}
for _module, _names in {
    ".asyncio.client": ("connect", "unix_connect", "ClientConnection"),
    ".asyncio.router": ("route", "unix_route", "Router"),
    ".asyncio.server": (
        "basic_auth",
        "broadcast",
        "serve",
        "unix_serve",
        "ServerConnection",
        "Server",
    ),
    ".datastructures": ("Headers", "HeadersLike", "MultipleValuesError"),
    ".frames": ("Close", "CloseCode", "Frame", "Opcode"),
    ".http11": ("Request", "Response"),
    ".client": ("ClientProtocol",),
    ".protocol": ("Protocol", "Side", "State"),
    ".server": ("ServerProtocol",),
    ".typing": (
        "Data",
        "ExtensionName",
        "ExtensionParameter",
        "LoggerLike",
        "StatusLike",
        "Origin",
        "Subprotocol",
    ),
}.items():
    for _name in _names:
        _SOURCES[_name] = _module
for _name in __all__:
    _SOURCES.setdefault(_name, ".exceptions")
del _module, _names, _name

# websockets' deprecated top-level aliases (deprecated in websockets 14.0 - 2024-11-09).
# The legacy exceptions exist here; the legacy API (websockets.legacy) does not.
_DEPRECATED_EXCEPTIONS = (
    "AbortHandshake",
    "InvalidStatusCode",
    "RedirectHandshake",
    "WebSocketProtocolError",
)
_LEGACY_API = (
    "BasicAuthWebSocketServerProtocol",
    "basic_auth_protocol_factory",
    "WebSocketClientProtocol",
    "WebSocketCommonProtocol",
    "WebSocketServer",
    "WebSocketServerProtocol",
)


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is not None:
        value = getattr(importlib.import_module(source, __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    if name in _DEPRECATED_EXCEPTIONS:
        warnings.warn(f"{__name__}.{name} is deprecated", DeprecationWarning, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return getattr(importlib.import_module(".exceptions", __name__), name)
    if name in _LEGACY_API:
        raise AttributeError(
            f"module {__name__!r} has no attribute {name!r}: websockets' legacy API "
            "(websockets.legacy, deprecated since websockets 14.0) is not provided; "
            "use the asyncio API (connect, serve, ClientConnection, ServerConnection)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))


if TYPE_CHECKING:
    from .client import ClientProtocol
    from .datastructures import Headers, HeadersLike, MultipleValuesError
    from .exceptions import (
        ConcurrencyError,
        ConnectionClosed,
        ConnectionClosedError,
        ConnectionClosedOK,
        DuplicateParameter,
        HeaderLineTooLong,
        InvalidHandshake,
        InvalidHeader,
        InvalidHeaderFormat,
        InvalidHeaderValue,
        InvalidMessage,
        InvalidMethod,
        InvalidOrigin,
        InvalidParameterName,
        InvalidParameterValue,
        InvalidProtocol,
        InvalidProxy,
        InvalidProxyMessage,
        InvalidProxyStatus,
        InvalidState,
        InvalidStatus,
        InvalidUpgrade,
        InvalidURI,
        NegotiationError,
        PayloadTooBig,
        ProtocolError,
        ProxyError,
        RequestLineTooLong,
        SecurityError,
        StatusLineTooLong,
        TooManyFragments,
        TooManyHeaders,
        WebSocketException,
    )
    from .frames import Close, CloseCode, Frame, Opcode
    from .http11 import Request, Response
    from .protocol import Protocol, Side, State
    from .server import ServerProtocol
    from .typing import (
        Data,
        ExtensionName,
        ExtensionParameter,
        LoggerLike,
        Origin,
        StatusLike,
        Subprotocol,
    )
