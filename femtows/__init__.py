"""femtows: a fast, strict asyncio WebSocket client and server with a picows-compatible API.

The core API (this module) is callback based: subclass ``WSListener``, pass its factory to
``ws_connect`` or ``ws_create_server``, send through the ``WSTransport`` handed to every
callback. A picows program runs on femtows by replacing ``picows`` with ``femtows`` in its
imports.
"""

from femtows._core.core import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSCloseHandshake,
    WSCloseInfo,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
)
from femtows.client import ws_connect
from femtows.errors import (
    WSError,
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSInvalidURL,
    WSProtocolError,
    WSProxyError,
)
from femtows.handshake import (
    WSDeflateConfig,
    WSDeflateParams,
    WSHeadersLike,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from femtows.logs import FEMTOWS_DEBUG_LL
from femtows.server import ws_create_server
from femtows.url import WSParsedURL
from femtows.version import __version__

__all__ = [
    "FEMTOWS_DEBUG_LL",
    "WSAutoPingStrategy",
    "WSCloseCode",
    "WSCloseHandshake",
    "WSCloseInfo",
    "WSDeflateConfig",
    "WSDeflateParams",
    "WSError",
    "WSFrame",
    "WSHandshakeError",
    "WSHeadersLike",
    "WSInvalidHeaderError",
    "WSInvalidMessageError",
    "WSInvalidStatusError",
    "WSInvalidURL",
    "WSInvalidUpgradeError",
    "WSListener",
    "WSMsgType",
    "WSParsedURL",
    "WSProtocolError",
    "WSProxyError",
    "WSTransport",
    "WSUpgradeRequest",
    "WSUpgradeResponse",
    "WSUpgradeResponseWithListener",
    "__version__",
    "ws_connect",
    "ws_create_server",
]
