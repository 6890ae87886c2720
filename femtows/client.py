"""``ws_connect``: open a WebSocket client connection with the core (callback) API.

One call may make several connection attempts: the first URL, then one per followed HTTP
redirect. Each attempt opens its byte stream with :func:`femtows.proxy.open_connection`
(direct, through a proxy, or on a socket from ``socket_factory``) and runs the upgrade in the
core's ``WSProtocol``; the whole chain is bounded by one ``websocket_handshake_timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl as ssl_module
import urllib.parse
from collections import abc
from typing import Any, Callable, List, Optional, Tuple, Union

from femtows import _net, handshake
from femtows._core.core import WSAutoPingStrategy, WSListener, WSProtocol, WSTransport
from femtows._options import check_auto_ping, check_compression
from femtows.errors import (
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidStatusError,
    WSInvalidURL,
    redact_url,
)
from femtows.logs import LoggerLike, connection_logger
from femtows.proxy import (
    WSSocketFactory,
    normalize_socket_factory,
    open_connection,
    parse_proxy_url,
)
from femtows.url import WSParsedURL, parse_url

__all__ = ["ws_connect"]

_FORBIDDEN_KWARGS = ("ssl", "sock")

#: Statuses that ``ws_connect`` follows when ``max_redirects`` allows (RFC 9110 §15.4). The
#: upgrade is a GET, so 303 ("see other, with GET") is followed like the others.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Request headers that carry the user's credentials for the original server: never sent to
# another origin after a redirect. A Host override names the original server, so it goes too.
_ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie", "host"})

# Location may name an http(s) URL for the same resource; the WebSocket equivalent is used.
_REDIRECT_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
# urljoin only resolves relative references for schemes it knows; http(s) it always knows.
_JOIN_SCHEMES = {"ws": "http", "wss": "https"}


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
    enable_auto_ping: bool = False,
    auto_ping_idle_timeout: float = 10,
    auto_ping_reply_timeout: float = 10,
    auto_ping_strategy: WSAutoPingStrategy = WSAutoPingStrategy.PING_WHEN_IDLE,
    enable_auto_pong: bool = True,
    max_frame_size: int = 10 * 1024 * 1024,
    extra_headers: Optional[handshake.WSHeadersLike] = None,
    max_redirects: int = 5,
    proxy: Optional[str] = None,
    proxy_ssl_context: Optional[ssl_module.SSLContext] = None,
    socket_factory: Optional[WSSocketFactory] = None,
    read_buffer_init_size: int = 16 * 1024,
    validate_utf8: bool = True,
    allow_rsv_bits: bool = False,
    close_timeout: Optional[float] = 5,
    use_aiofastnet: Optional[bool] = None,
    compression: Union[None, str, handshake.WSDeflateConfig] = None,
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
        websocket_handshake_timeout: seconds for the whole connect: proxy tunnel, TCP, TLS,
            upgrade, and every redirect followed (one budget for the chain, not one per
            attempt). None disables it. On expiry
            ``asyncio.TimeoutError("websocket handshake timeout")``.
        logger_name: None (``femtows.client``), a str (``femtows.<str>``), Logger or adapter.
        enable_auto_ping: send a PING (``listener.send_user_specific_ping``) when the server
            has been silent for ``auto_ping_idle_timeout`` seconds, and disconnect with CLOSE
            1001 when no PONG arrives within ``auto_ping_reply_timeout``. Keeps NAT and proxy
            mappings alive and detects dead peers.
        auto_ping_idle_timeout: seconds of silence before a ping (> 0).
        auto_ping_reply_timeout: seconds to wait for the PONG (> 0, at most the idle timeout).
        auto_ping_strategy: ``PING_WHEN_IDLE`` (ping only after silence) or
            ``PING_PERIODICALLY`` (ping every ``auto_ping_idle_timeout`` whatever the traffic).
        enable_auto_pong: answer PING with PONG automatically (the PING is not delivered).
        max_frame_size: larger incoming data frames fail the connection with 1009.
        extra_headers: extra request headers; a ``Host`` here replaces the generated one.
            ``Authorization``, ``Cookie`` and ``Host`` are not sent again after a redirect to
            another origin (scheme, host or port differ).
        max_redirects: how many HTTP redirects (301, 302, 303, 307, 308) to follow; 0 turns
            redirects off, so a 3xx raises ``WSInvalidStatusError`` like any other status. The
            ``Location`` is resolved against the current URL; ``http``/``https`` locations map
            to ``ws``/``wss``; a redirect from ``wss`` to ``ws`` is refused. One more redirect
            than allowed raises ``WSHandshakeError("too many redirects ...")``.
        proxy: ``http://``, ``https://``, ``socks4://``, ``socks4a://``, ``socks5://`` or
            ``socks5h://`` URL of a proxy to tunnel through, with optional
            ``user:password@`` (percent-encoded). The host name of the server is resolved by
            the proxy, except with ``socks4://``. ``wss`` runs TLS to the server inside the
            tunnel. Failures of the proxy raise ``WSProxyError``.
        proxy_ssl_context: TLS context for an ``https://`` proxy (default context when None);
            ValueError with any other proxy.
        socket_factory: called for every connection with ``(host, port)`` if it takes two
            positional arguments, else with the ``WSParsedURL`` (picows's convention); the
            proxy's address when ``proxy`` is set. Sync or async. Returns a connected socket,
            an unconnected one (femtows connects it to the first resolved address of its
            family), or None for the default path. Use it for options that must be set before
            connect().
        read_buffer_init_size: initial read buffer (grows as needed; at least 2048; see
            docs/internals.md for the buffer shared by idle connections).
        validate_utf8: fail the connection (1007) on invalid UTF-8 in TEXT messages.
        allow_rsv_bits: deliver frames with RSV bits set (for your own extension) instead of
            failing the connection with 1002.
        close_timeout: seconds to wait for the closing handshake to finish before aborting.
        use_aiofastnet: connect through aiofastnet's transports (faster reads and TLS; see
            bench/README.md): None uses it when installed, True requires it (ImportError
            otherwise), False never. Connections through a proxy use the loop's transports.
        compression: permessage-deflate (RFC 7692). None (default) offers nothing;
            ``"deflate"`` offers ``permessage-deflate; client_max_window_bits``
            (``WSDeflateConfig.client()``); a ``WSDeflateConfig`` offers exactly its
            parameters. When the server accepts, received messages reach ``on_ws_frame``
            decompressed, ``send()`` compresses (``compress=False`` per message opts out) and
            ``transport.compression`` holds the agreed ``WSDeflateParams``. Decompressed frames
            are limited by ``max_frame_size`` too (1009). An answer that does not match the
            offer raises ``WSInvalidHeaderError``. Not combinable with a
            ``Sec-WebSocket-Extensions`` in ``extra_headers``.
        **kwargs: passed to ``loop.create_connection`` (``local_addr``, ``family``,
            ``ssl_handshake_timeout``, ``server_hostname``, ...). Connection keywords cannot
            be combined with a socket from ``socket_factory`` (TypeError); with a SOCKS proxy
            only ``local_addr`` is supported. ``server_hostname`` applies to the original host
            only; after a redirect to another host that host's name is used.

    Raises:
        WSInvalidURL: ``url`` is not a valid ws/wss URL, or ``proxy`` not a valid proxy URL.
        WSHandshakeError: the server refused or botched the upgrade (subclasses say how), or a
            redirect could not be followed.
        WSProxyError: the proxy could not be reached or refused the tunnel (``status`` holds an
            HTTP proxy's status, e.g. 407).
        asyncio.TimeoutError: the whole connect took longer than
            ``websocket_handshake_timeout``.
        OSError: the TCP or TLS connection failed.
        ValueError: an argument is out of range (auto-ping timeouts, ``max_frame_size``,
            ``max_redirects``, ``proxy_ssl_context`` without an https proxy).
    """
    for name in _FORBIDDEN_KWARGS:
        if name in kwargs:
            raise TypeError(
                f"ws_connect() does not take {name!r}: TLS comes from the URL scheme and "
                f"ssl_context")
    if "all_errors" in kwargs:
        raise TypeError("ws_connect() does not take 'all_errors': a failed connect raises one "
                        "OSError (or WSProxyError), never an ExceptionGroup")
    # picows 1.x's option, a no-op since its sends stopped copying; accepted so that ported
    # code runs unchanged.
    kwargs.pop("zero_copy_unsafe_ssl_write", None)
    if max_frame_size <= 0:
        raise ValueError("max_frame_size must be > 0")
    deflate = check_compression(compression, True)
    if isinstance(max_redirects, bool) or not isinstance(max_redirects, int) or max_redirects < 0:
        raise ValueError(f"max_redirects must be an int >= 0, got {max_redirects!r}")
    strategy = check_auto_ping(
        enable_auto_ping, auto_ping_idle_timeout, auto_ping_reply_timeout, auto_ping_strategy
    )
    parsed = parse_url(url)
    proxy_url = parse_proxy_url(proxy) if proxy is not None else None
    if proxy_ssl_context is not None and (proxy_url is None or proxy_url.scheme != "https"):
        raise ValueError("proxy_ssl_context is only used with an https:// proxy")
    url_socket_factory = (
        normalize_socket_factory(socket_factory) if socket_factory is not None else None
    )
    _net.aiofastnet_module(use_aiofastnet)  # ImportError now, not after DNS and TCP
    logger = connection_logger(logger_name, "client")
    if parsed.username is not None or parsed.password is not None:
        logger.warning("user info in a ws URL is ignored; send an Authorization header instead")
    factory = _normalize_factory(ws_listener_factory)
    if extra_headers is not None and not isinstance(
        extra_headers, (abc.Mapping, str, bytes, bytearray)
    ):
        extra_headers = list(extra_headers)  # a generator must survive redirects
    if deflate is not None:
        pairs = list(
            extra_headers.items() if isinstance(extra_headers, abc.Mapping)
            else (extra_headers or [])
        )
        if any(str(name).lower() == "sec-websocket-extensions" for name, _ in pairs):
            raise ValueError("compression= negotiates Sec-WebSocket-Extensions itself; do not "
                             "pass that header in extra_headers as well")
        extra_headers = pairs + [("Sec-WebSocket-Extensions", handshake.deflate_offer(deflate))]
    user_server_hostname: Optional[str] = kwargs.pop("server_hostname", None)
    loop = asyncio.get_running_loop()
    default_ssl: List[ssl_module.SSLContext] = []

    def tls_for(target: WSParsedURL) -> Optional[ssl_module.SSLContext]:
        if not target.is_secure:
            return None
        if ssl_context is not None:
            return ssl_context
        if not default_ssl:
            default_ssl.append(ssl_module.create_default_context())
        return default_ssl[0]

    async def attempt(
        target: WSParsedURL, headers: Optional[handshake.WSHeadersLike]
    ) -> Tuple[WSTransport, WSListener]:
        """One connection and upgrade to ``target``."""
        key = handshake.generate_key()
        request, request_bytes = handshake.build_request(target, key, headers)
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
                enable_auto_ping=enable_auto_ping,
                auto_ping_idle_timeout=float(auto_ping_idle_timeout),
                auto_ping_reply_timeout=float(auto_ping_reply_timeout),
                auto_ping_strategy=strategy,
                compression=deflate,
            )

        server_hostname = target.host
        if user_server_hostname is not None and target.host == parsed.host:
            server_hostname = user_server_hostname
        transport = await open_connection(
            loop,
            make_protocol,
            target,
            ssl=tls_for(target),
            server_hostname=server_hostname,
            proxy=proxy_url,
            proxy_ssl_context=proxy_ssl_context,
            socket_factory=url_socket_factory,
            kwargs=kwargs,
            logger=logger,
            use_aiofastnet=use_aiofastnet,
        )
        try:
            return await handshake_future
        except BaseException:
            transport.abort()
            raise

    async def follow_redirects() -> Tuple[WSTransport, WSListener]:
        """Attempt the URL, then each redirect target, up to ``max_redirects`` of them."""
        target = parsed
        headers: Optional[handshake.WSHeadersLike] = extra_headers
        chain = [redact_url(url)]
        while True:
            try:
                return await attempt(target, headers)
            except WSInvalidStatusError as exc:
                response = exc.response
                if (
                    max_redirects == 0
                    or response is None
                    or int(response.status) not in REDIRECT_STATUSES
                ):
                    raise
                if len(chain) > max_redirects:
                    location = response.headers.get("Location")
                    shown = chain + ([redact_url(location)] if location else [])
                    raise WSHandshakeError(
                        f"too many redirects (max_redirects={max_redirects}): "
                        + " -> ".join(shown),
                        exc.raw_header,
                        exc.raw_body,
                        response,
                    ) from exc
                new_target = _redirect_target(target, exc)
                if not _same_origin(target, new_target):
                    headers = _without_origin_bound_headers(headers)
                chain.append(redact_url(new_target.url))
                logger.info(
                    "redirect %d/%d: HTTP %d from %s to %s", len(chain) - 1, max_redirects,
                    int(response.status), redact_url(target.url), redact_url(new_target.url),
                )
                target = new_target

    if websocket_handshake_timeout is None:
        return await follow_redirects()
    return await _with_handshake_timeout(
        loop, follow_redirects(), websocket_handshake_timeout, logger
    )


async def _with_handshake_timeout(
    loop: asyncio.AbstractEventLoop,
    coro: Any,
    timeout: float,
    logger: Union[logging.Logger, logging.LoggerAdapter],  # type: ignore[type-arg]
) -> Tuple[WSTransport, WSListener]:
    """Run ``coro`` but cancel it after ``timeout`` seconds with a handshake TimeoutError.

    A flag set by our own timer tells our timeout apart from a TimeoutError raised inside
    (a python-socks or TLS timeout), which propagates as it is.
    """
    task: asyncio.Task[Tuple[WSTransport, WSListener]] = loop.create_task(coro)
    timed_out = False

    def on_timeout() -> None:
        nonlocal timed_out
        if not task.done():
            timed_out = True
            task.cancel()

    timer = loop.call_later(timeout, on_timeout)
    try:
        return await task
    except asyncio.CancelledError:
        if not timed_out:
            raise
        logger.info("websocket handshake timeout (%.3gs)", timeout)
        raise asyncio.TimeoutError("websocket handshake timeout") from None
    finally:
        timer.cancel()


def _redirect_target(current: WSParsedURL, exc: WSInvalidStatusError) -> WSParsedURL:
    """The URL a 3xx response sends us to, resolved and checked.

    Raises:
        WSInvalidHeaderError: Location is missing or not a usable ws/wss/http/https URL.
        WSHandshakeError: the redirect would downgrade wss to ws.
    """
    response = exc.response
    assert response is not None
    status = int(response.status)
    details = (exc.raw_header, exc.raw_body, response)
    locations = response.headers.getall("Location", [])
    if len(locations) != 1 or not locations[0].strip():
        # picows's words first (see errors.py), then ours.
        problem = (
            f"received redirect HTTP response without Location header (HTTP {status})"
            if not locations
            else f"redirect (HTTP {status}) with several Locations"
        )
        raise WSInvalidHeaderError(
            problem, "Location",
            ", ".join(locations) or None, *details,
        ) from exc
    location = locations[0].strip()

    base_scheme, sep, base_rest = current.url.partition(":")
    join_base = _JOIN_SCHEMES.get(base_scheme.lower(), base_scheme) + sep + base_rest
    joined, _fragment = urllib.parse.urldefrag(urllib.parse.urljoin(join_base, location))
    scheme, sep, rest = joined.partition(":")
    ws_scheme = _REDIRECT_SCHEMES.get(scheme.lower())
    if ws_scheme is None:
        raise WSInvalidHeaderError(
            f"redirect (HTTP {status}) to a URL that is not ws, wss, http or https: "
            f"{redact_url(location)!r}", "Location", location, *details,
        ) from exc
    try:
        target = parse_url(ws_scheme + sep + rest)
    except WSInvalidURL as url_error:
        raise WSInvalidHeaderError(
            f"redirect (HTTP {status}) to an invalid URL: {url_error.msg}", "Location",
            location, *details,
        ) from url_error
    if current.is_secure and not target.is_secure:
        raise WSHandshakeError(
            f"cannot follow redirect to non-secure URL {redact_url(target.url)}: refusing to "
            f"follow a redirect (HTTP {status}) from wss:// to ws://", *details,
        ) from exc
    if not _same_origin(current, target) and target.username is not None:
        # Userinfo is never sent, but do not carry it (from a relative Location) to another
        # origin even in logs and exception messages.
        target = parse_url(_strip_userinfo(target))
    return target


def _same_origin(a: WSParsedURL, b: WSParsedURL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _strip_userinfo(url: WSParsedURL) -> str:
    netloc = url.netloc.rpartition("@")[2]
    query = f"?{url.query}" if url.query else ""
    return f"{url.scheme}://{netloc}{url.path}{query}"


def _without_origin_bound_headers(
    headers: Optional[handshake.WSHeadersLike],
) -> Optional[handshake.WSHeadersLike]:
    """``headers`` minus the ones that must not follow a redirect to another origin."""
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, abc.Mapping) else headers
    return [(name, value) for name, value in pairs if name.lower() not in _ORIGIN_BOUND_HEADERS]


logging.getLogger("femtows.client").addHandler(logging.NullHandler())
