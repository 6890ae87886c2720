"""``ws_create_server``: serve WebSockets with the core (callback) API."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Optional, Union

from femtows import _net, handshake
from femtows._core.core import WSAutoPingStrategy, WSListener, WSProtocol
from femtows._options import check_auto_ping, check_compression
from femtows.logs import LoggerLike, connection_logger_factory

__all__ = ["ws_create_server"]

ServerListenerResult = Union[WSListener, handshake.WSUpgradeResponseWithListener, None]
ServerListenerFactory = Callable[
    [handshake.WSUpgradeRequest],
    Union[ServerListenerResult, Awaitable[ServerListenerResult]],
]


async def ws_create_server(
    ws_listener_factory: ServerListenerFactory,
    host: Union[str, list[str], None] = None,
    port: Optional[int] = None,
    *,
    disconnect_on_exception: bool = True,
    websocket_handshake_timeout: Optional[float] = 5,
    logger_name: LoggerLike = None,
    enable_auto_ping: bool = False,
    auto_ping_idle_timeout: float = 20,
    auto_ping_reply_timeout: float = 20,
    auto_ping_strategy: WSAutoPingStrategy = WSAutoPingStrategy.PING_WHEN_IDLE,
    enable_auto_pong: bool = True,
    max_frame_size: int = 10 * 1024 * 1024,
    read_buffer_init_size: int = 16 * 1024,
    validate_utf8: bool = True,
    allow_rsv_bits: bool = False,
    close_timeout: Optional[float] = 5,
    use_aiofastnet: Optional[bool] = None,
    compression: Union[None, str, handshake.WSDeflateConfig] = None,
    **kwargs: Any,
) -> asyncio.Server:
    """Start a WebSocket server; returns the ``asyncio.Server``.

    For every connection, ``ws_listener_factory(request)`` is called with the parsed
    ``WSUpgradeRequest`` *before* the WebSocket headers are checked, so it can route, refuse or
    answer plain HTTP. It returns:

    * a ``WSListener``: the upgrade is validated and answered with 101;
    * a ``WSUpgradeResponseWithListener``: its response is sent (101 with extra headers and a
      listener, or any other status without one, after which the connection is closed);
    * ``None``: 404;
    * or an awaitable (e.g. it is a coroutine function) resolving to one of those. Nothing more
      is processed until it resolves; the handshake timeout still applies and a lost
      connection cancels it.

    An exception in the factory answers 500 with a generic body (details go to the log).
    Malformed requests get 400, a wrong ``Sec-WebSocket-Version`` 426, a non-GET 405, a head
    over 16 KiB 431.

    Args:
        host, port: as for ``loop.create_server``.
        disconnect_on_exception: an exception in ``on_ws_frame`` sends CLOSE 1011 and
            disconnects (it is logged either way).
        websocket_handshake_timeout: seconds for the client to send its upgrade request;
            None disables it. On expiry the connection is dropped.
        logger_name: None (``femtows.server``), a str (``femtows.<str>``), Logger or adapter.
        enable_auto_ping: ping the client when it has been silent; disconnect it (CLOSE 1001
            GOING_AWAY) when it does not answer in time. See docs/auto-ping.md.
        auto_ping_idle_timeout: seconds of silence (PING_WHEN_IDLE) or between pings
            (PING_PERIODICALLY) before a ping is sent.
        auto_ping_reply_timeout: seconds to wait for the pong; must be <= the idle timeout.
        auto_ping_strategy: ``WSAutoPingStrategy.PING_WHEN_IDLE`` (pings only when no data
            arrived for the idle timeout) or ``PING_PERIODICALLY`` (pings despite traffic).
        enable_auto_pong: answer PING with PONG automatically.
        max_frame_size: larger incoming data frames fail the connection with 1009.
        read_buffer_init_size: initial size of a read buffer (at least 2048): of the one shared
            by the thread's idle connections, and of a connection's own while a frame waits
            in it (see docs/internals.md).
        validate_utf8: fail the connection (1007) on invalid UTF-8 in TEXT messages.
        allow_rsv_bits: deliver frames with RSV bits set instead of failing with 1002.
        close_timeout: seconds to wait for the closing handshake before aborting.
        use_aiofastnet: serve through aiofastnet's transports (faster TLS); None uses them
            for TLS when installed and the loop's for plain TCP (faster accepts, less memory
            per connection: bench/README.md), True requires them (ImportError otherwise),
            False never.
        compression: permessage-deflate (RFC 7692). None (default): never negotiated (RSV1
            stays a protocol error). ``"deflate"`` accepts the client's first valid offer
            with websockets' server limits: 12-bit windows, memLevel 5, zlib level 1
            (``WSDeflateConfig.server()``); a ``WSDeflateConfig`` applies its limits
            (forced no_context_takeover, window caps, required client_max_window_bits).
            Invalid offers are declined (RFC 7692 §5), a malformed header is a 400. When
            agreed, frames reach ``on_ws_frame`` decompressed (limited by ``max_frame_size``,
            1009), ``send()`` compresses (``compress=False`` per message opts out) and
            ``transport.compression`` holds the ``WSDeflateParams``. A factory that returns a
            101 with its own ``Sec-WebSocket-Extensions`` gets compression only if that
            answer is exactly the one this configuration gives (anything else is its own
            business).
        **kwargs: passed to ``loop.create_server``: ``ssl``, ``reuse_port``, ``backlog``,
            ``sock``, ...
    """
    if max_frame_size <= 0:
        raise ValueError("max_frame_size must be > 0")
    deflate = check_compression(compression, False)
    strategy = check_auto_ping(enable_auto_ping, auto_ping_idle_timeout,
                               auto_ping_reply_timeout, auto_ping_strategy)
    _net.aiofastnet_module(use_aiofastnet)  # ImportError now, not at the first connection

    new_logger = connection_logger_factory(logger_name, "server")

    def make_protocol() -> WSProtocol:
        return WSProtocol(
            is_client=False,
            listener_factory=ws_listener_factory,
            logger=new_logger(),
            read_buffer_init_size=read_buffer_init_size,
            max_frame_size=max_frame_size,
            validate_utf8=validate_utf8,
            allow_rsv_bits=allow_rsv_bits,
            enable_auto_pong=enable_auto_pong,
            disconnect_on_exception=disconnect_on_exception,
            close_timeout=close_timeout,
            websocket_handshake_timeout=websocket_handshake_timeout,
            max_head_size=handshake.MAX_HEAD_SIZE,
            enable_auto_ping=enable_auto_ping,
            auto_ping_idle_timeout=float(auto_ping_idle_timeout),
            auto_ping_reply_timeout=float(auto_ping_reply_timeout),
            auto_ping_strategy=strategy,
            compression=deflate,
        )

    # host/port go through the keyword dict: typeshed's create_server signature differs
    # across Python versions (port: int vs int | None).
    kwargs.pop("zero_copy_unsafe_ssl_write", None)  # picows 1.x's no-op option, see client.py
    server_kwargs: dict[str, Any] = {"host": host, "port": port, **kwargs}
    return await _net.create_server(use_aiofastnet, make_protocol, **server_kwargs)


logging.getLogger("femtows.server").addHandler(logging.NullHandler())
