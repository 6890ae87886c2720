"""``ws_connect``: open a WebSocket client connection with the core (callback) API."""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl as ssl_module
from typing import Any, Callable, Optional, Tuple, Union

from femtows import handshake
from femtows._core.core import WSListener, WSProtocol, WSTransport
from femtows.logs import LoggerLike, connection_logger
from femtows.url import parse_url

__all__ = ["ws_connect"]

_FORBIDDEN_KWARGS = ("ssl", "sock")


def _normalize_factory(factory: Callable[..., WSListener]) -> Callable[..., WSListener]:
    """Accept factories that take ``(request, response)`` or nothing, like picows does.

    The arity is decided once from the signature, not by catching TypeError, so a TypeError
    raised inside the user's factory is reported as it is.
    """
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature
        return lambda request, response: factory()
    try:
        sig.bind(None, None)
    except TypeError:
        return lambda request, response: factory()
    return factory


async def ws_connect(
    ws_listener_factory: Callable[..., WSListener],
    url: str,
    *,
    ssl_context: Optional[ssl_module.SSLContext] = None,
    disconnect_on_exception: bool = True,
    websocket_handshake_timeout: Optional[float] = 5,
    logger_name: LoggerLike = None,
    enable_auto_pong: bool = True,
    max_frame_size: int = 10 * 1024 * 1024,
    extra_headers: Optional[handshake.WSHeadersLike] = None,
    read_buffer_init_size: int = 16 * 1024,
    validate_utf8: bool = True,
    allow_rsv_bits: bool = False,
    close_timeout: Optional[float] = 5,
    **kwargs: Any,
) -> Tuple[WSTransport, WSListener]:
    """Connect to a WebSocket server and return ``(transport, listener)``.

    The call returns once the upgrade completed and ``listener.on_ws_connected`` ran.

    Args:
        ws_listener_factory: called once the upgrade succeeded, with ``(request, response)``
            if it accepts two arguments, else with none; returns the WSListener.
        url: ``ws://`` or ``wss://`` URL (IRIs accepted; a fragment is refused).
        ssl_context: the TLS context for ``wss://`` (default: ``ssl.create_default_context()``).
        disconnect_on_exception: an exception in ``on_ws_frame`` sends CLOSE 1011, disconnects
            and is re-raised by ``wait_disconnected()``; False only logs it.
        websocket_handshake_timeout: seconds for TCP+TLS+upgrade; None disables it. On expiry
            ``asyncio.TimeoutError("websocket handshake timeout")``.
        logger_name: None (``femtows.client``), a str (``femtows.<str>``), Logger or adapter.
        enable_auto_pong: answer PING with PONG automatically (the PING is not delivered).
        max_frame_size: larger incoming data frames fail the connection with 1009.
        extra_headers: extra request headers; a ``Host`` here replaces the generated one.
        read_buffer_init_size: initial read buffer (grows as needed; at least 2048).
        validate_utf8: fail the connection (1007) on invalid UTF-8 in TEXT messages.
        allow_rsv_bits: deliver frames with RSV bits set (for your own extension) instead of
            failing the connection with 1002.
        close_timeout: seconds to wait for the closing handshake to finish before aborting.
        **kwargs: passed to ``loop.create_connection`` (``local_addr``, ``family``, ...).

    Raises:
        WSInvalidURL: the URL is not a valid ws/wss URL.
        WSHandshakeError: the server refused or botched the upgrade (subclasses say how).
        asyncio.TimeoutError: the handshake timed out.
        OSError: the TCP or TLS connection failed.
    """
    for key in _FORBIDDEN_KWARGS:
        if key in kwargs:
            raise TypeError(
                f"ws_connect() does not take {key!r}: TLS comes from the URL scheme and "
                f"ssl_context")
    if max_frame_size <= 0:
        raise ValueError("max_frame_size must be > 0")
    parsed = parse_url(url)
    logger = connection_logger(logger_name, "client")
    if parsed.username is not None or parsed.password is not None:
        logger.warning("user info in a ws URL is ignored; send an Authorization header instead")
    factory = _normalize_factory(ws_listener_factory)
    key = handshake.generate_key()
    request, request_bytes = handshake.build_request(parsed, key, extra_headers)
    loop = asyncio.get_running_loop()
    handshake_future: asyncio.Future[Tuple[WSTransport, WSListener]] = loop.create_future()

    def make_protocol() -> WSProtocol:
        return WSProtocol(
            is_client=True,
            listener_factory=factory,
            logger=logger,
            read_buffer_init_size=read_buffer_init_size,
            max_frame_size=max_frame_size,
            validate_utf8=validate_utf8,
            allow_rsv_bits=allow_rsv_bits,
            enable_auto_pong=enable_auto_pong,
            disconnect_on_exception=disconnect_on_exception,
            close_timeout=close_timeout,
            websocket_handshake_timeout=None,  # the whole connect is bounded below
            max_head_size=handshake.MAX_HEAD_SIZE,
            request=request,
            request_bytes=request_bytes,
            key=key,
            handshake_future=handshake_future,
        )

    ssl: Union[ssl_module.SSLContext, bool, None] = None
    if parsed.is_secure:
        ssl = ssl_context if ssl_context is not None else ssl_module.create_default_context()
        kwargs.setdefault("server_hostname", parsed.host)

    async def connect() -> Tuple[WSTransport, WSListener]:
        transport, _ = await loop.create_connection(
            make_protocol, parsed.host, parsed.port, ssl=ssl, **kwargs
        )
        try:
            return await handshake_future
        except BaseException:
            transport.abort()
            raise

    if websocket_handshake_timeout is None:
        return await connect()
    try:
        return await asyncio.wait_for(connect(), websocket_handshake_timeout)
    except asyncio.TimeoutError:
        if handshake_future.done() and not handshake_future.cancelled():
            raise
        logger.info("websocket handshake timeout (%.3gs)", websocket_handshake_timeout)
        raise asyncio.TimeoutError("websocket handshake timeout") from None


logging.getLogger("femtows.client").addHandler(logging.NullHandler())
