"""Opening the connection under a WebSocket: directly, through a proxy, or on a user's socket.

:func:`open_connection` is what ``ws_connect`` awaits for every attempt (the first URL and each
redirect). It returns a transport whose protocol is the WebSocket protocol and on which
``connection_made`` has already run, whatever the path:

- **direct**: ``loop.create_connection`` to the server (TLS for ``wss``);
- **socket_factory**: the user's socket, connected here when it is not yet, then handed to
  ``loop.create_connection(sock=...)``;
- **HTTP(S) proxy**: our own ``CONNECT`` client (:class:`_ConnectTunnel`) over a plain or TLS
  connection to the proxy; TLS to a ``wss`` server then runs inside the tunnel with
  ``loop.start_tls`` (TLS in TLS for an ``https://`` proxy);
- **SOCKS4/SOCKS5 proxy**: python-socks opens the tunnel and returns a connected socket, which
  is handed to ``loop.create_connection(sock=...)`` like a factory's socket.

Every failure that is the proxy's (unreachable, refusal, malformed answer, early close) is a
:class:`~femtows.errors.WSProxyError`, chained to the original error. Nothing here has its own
timeout: ``ws_connect`` bounds the whole attempt chain with ``websocket_handshake_timeout``.
The proxy password never appears in a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import re
import socket
import ssl as ssl_module
import sys
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple, Union, cast

from . import _net
from .errors import WSInvalidURL, WSProxyError, redact_url
from .url import WSParsedURL, parse_url

__all__ = [
    "MAX_PROXY_HEAD_SIZE",
    "PROXY_SCHEMES",
    "WSSocketFactory",
    "normalize_socket_factory",
    "open_connection",
    "parse_proxy_url",
]

#: Schemes accepted in ``ws_connect(proxy=...)``. ``socks4a`` and ``socks5h`` are the
#: curl spellings for "let the proxy resolve the host name"; femtows always lets a SOCKS5 proxy
#: resolve it, so ``socks5h`` is the same as ``socks5``.
PROXY_SCHEMES: Tuple[str, ...] = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")

#: Largest response head an HTTP proxy may send to our CONNECT, in bytes. Real answers are a few
#: hundred bytes; the cap only bounds what a broken or hostile proxy can make us buffer.
MAX_PROXY_HEAD_SIZE = 64 * 1024

#: A ``socket_factory``: called as ``factory(host, port)`` when it takes two positional
#: arguments, else as ``factory(parsed_url)`` (a :class:`~femtows.url.WSParsedURL`, as in
#: picows 2.3.1). It may be a coroutine function. It returns a connected socket, an unconnected
#: one (femtows connects it), or None for the default connection path.
WSSocketFactory = Callable[..., Union[Optional[socket.socket], Awaitable[Optional[socket.socket]]]]

# A socket factory with its calling convention resolved: always called with the parsed URL.
_UrlSocketFactory = Callable[
    [WSParsedURL], Union[Optional[socket.socket], Awaitable[Optional[socket.socket]]]
]

# create_connection() keywords that only make sense with a TLS layer; everything else it takes
# (local_addr, family, proto, flags, happy_eyeballs_delay, interleave, all_errors) is about
# opening the TCP connection and cannot apply to a socket that someone else opened.
_TLS_KWARGS = ("server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout")

_STATUS_LINE_RE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")

_Logger = Union[logging.Logger, logging.LoggerAdapter]  # type: ignore[type-arg]


def parse_proxy_url(proxy: str) -> WSParsedURL:
    """Parse and validate a proxy URL for ``ws_connect(proxy=...)``.

    The userinfo, if any, is percent-decoded into ``username`` / ``password`` (Basic
    authentication for HTTP proxies, username/password authentication for SOCKS5, the user id
    for SOCKS4).

    Raises:
        WSInvalidURL: the scheme is not one of :data:`PROXY_SCHEMES`, or the URL is malformed
            or has a path or query (a proxy is only a host and a port).
    """
    parsed = parse_url(proxy, allowed_schemes=PROXY_SCHEMES)
    if parsed.path != "/" or parsed.query:
        raise WSInvalidURL(proxy, "a proxy URL cannot have a path or a query")
    return parsed


def normalize_socket_factory(factory: WSSocketFactory) -> _UrlSocketFactory:
    """Decide once, from the signature, how to call ``factory``.

    The seed documentation shows ``socket_factory(host, port)``; picows 2.3.1 actually passes
    one ``WSParsedURL``. Both are supported: a callable that takes exactly two positional
    arguments (and not one) is called with ``(host, port)``, anything that takes one is called
    with the parsed URL (so ``*args`` gets the picows convention). Deciding by signature rather
    than by catching TypeError keeps a TypeError raised inside the factory intact.

    Raises:
        TypeError: ``factory`` is not callable, or takes neither one nor two arguments.
    """
    if not callable(factory):
        raise TypeError(f"socket_factory must be callable, got {type(factory).__name__}")
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature: use picows's convention
        return factory
    if _binds(sig, 1):
        return factory
    if _binds(sig, 2):
        return lambda url: factory(url.host, url.port)
    raise TypeError(
        "socket_factory must take (host, port) or one WSParsedURL argument, "
        f"not {sig}"
    )


def _binds(sig: inspect.Signature, count: int) -> bool:
    try:
        sig.bind(*([None] * count))
    except TypeError:
        return False
    return True


async def open_connection(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    target: WSParsedURL,
    *,
    ssl: Optional[ssl_module.SSLContext],
    server_hostname: Optional[str],
    proxy: Optional[WSParsedURL],
    proxy_ssl_context: Optional[ssl_module.SSLContext],
    socket_factory: Optional[_UrlSocketFactory],
    kwargs: Dict[str, Any],
    logger: _Logger,
    use_aiofastnet: Optional[bool] = None,
) -> asyncio.Transport:
    """Open the byte stream to ``target`` and attach the protocol from ``protocol_factory``.

    Args:
        loop: The running loop.
        protocol_factory: Builds the WebSocket protocol; called once.
        target: The WebSocket server's URL.
        ssl: The TLS context for ``target`` (None for ``ws://``).
        server_hostname: SNI and certificate host name for ``target`` when ``ssl`` is set.
        proxy: The parsed proxy URL, or None to connect directly.
        proxy_ssl_context: TLS context for an ``https://`` proxy (default context when None).
        socket_factory: The user's socket factory (normalised), called for the proxy's address
            when there is a proxy, else for the target's.
        kwargs: The extra ``ws_connect`` keywords meant for ``loop.create_connection``.
        logger: The connection's logger (proxy URLs are logged with the password redacted).
        use_aiofastnet: Connect with aiofastnet's transports (see ``femtows._net``) on the
            direct and ``socket_factory`` paths; proxied connections use the loop's own.

    Returns:
        The transport; ``protocol.connection_made(transport)`` has been called.

    Raises:
        WSProxyError: the proxy could not be reached or did not open the tunnel.
        OSError: the server could not be reached, or TLS to it failed.
        TypeError: ``socket_factory`` returned something that is not a socket, or connection
            keywords (``local_addr``, ``family``, ...) cannot apply to the path taken.
    """
    tls_kwargs = {k: v for k, v in kwargs.items() if k in _TLS_KWARGS and k != "server_hostname"}
    connect_kwargs = {k: v for k, v in kwargs.items() if k not in _TLS_KWARGS}
    if ssl is None:
        tls_kwargs = {}

    if proxy is None:
        sock = None
        if socket_factory is not None:
            sock = await _socket_from_factory(socket_factory, target, loop)
        if sock is None:
            if ssl is not None:
                tls_kwargs["server_hostname"] = server_hostname
            transport, _ = await _net.create_connection(
                use_aiofastnet, protocol_factory, target.host, target.port, ssl=ssl,
                **tls_kwargs, **connect_kwargs
            )
            return transport
        _refuse_connect_kwargs(connect_kwargs, "socket_factory returned a socket", sock)
        return await _connection_on_socket(
            loop, protocol_factory, sock, ssl, server_hostname, tls_kwargs, use_aiofastnet
        )

    if proxy.scheme in ("http", "https"):
        return await _connect_via_http_proxy(
            loop, protocol_factory, target, ssl, server_hostname, proxy, proxy_ssl_context,
            socket_factory, connect_kwargs, tls_kwargs, logger,
        )
    sock = await _connect_via_socks_proxy(
        loop, target, proxy, socket_factory, connect_kwargs, logger
    )
    return await _connection_on_socket(
        loop, protocol_factory, sock, ssl, server_hostname, tls_kwargs
    )


# ------------------------------------------------------------------------------------------------
# socket_factory


async def _socket_from_factory(
    factory: _UrlSocketFactory, url: WSParsedURL, loop: asyncio.AbstractEventLoop
) -> Optional[socket.socket]:
    """Call the user's factory for ``url`` and return a connected, non-blocking socket or None.

    Exceptions from the factory itself propagate unchanged. An unconnected socket is connected
    to the first address that ``url.host`` resolves to in the socket's own family (a socket
    whose connect() failed is in an unspecified state, so there is no retry on the next
    address); the socket is closed if that fails.
    """
    result = factory(url)
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return None
    if not isinstance(result, socket.socket):
        raise TypeError(
            f"socket_factory must return a socket.socket or None, not {type(result).__name__}"
        )
    sock = result
    try:
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"socket_factory must return a SOCK_STREAM socket, got {sock!r}")
        sock.setblocking(False)
        if not _is_connected(sock):
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                raise ValueError(
                    "socket_factory returned an unconnected socket that is not AF_INET or "
                    "AF_INET6; connect it in the factory"
                )
            infos = await loop.getaddrinfo(
                url.host, url.port, family=sock.family, type=socket.SOCK_STREAM
            )
            if not infos:  # pragma: no cover - getaddrinfo raises instead
                raise OSError(f"cannot resolve {url.host!r} for family {sock.family!r}")
            await loop.sock_connect(sock, infos[0][4])
    except BaseException:
        sock.close()
        raise
    return sock


def _is_connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _refuse_connect_kwargs(
    connect_kwargs: Dict[str, Any], why: str, sock: Optional[socket.socket] = None,
    allowed: Tuple[str, ...] = (),
) -> None:
    """Raise TypeError for connection keywords that the path taken would silently ignore."""
    unused = sorted(k for k in connect_kwargs if k not in allowed)
    if unused:
        if sock is not None:
            sock.close()
        raise TypeError(f"{', '.join(unused)} cannot be used: {why}")


async def _connection_on_socket(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    sock: socket.socket,
    ssl: Optional[ssl_module.SSLContext],
    server_hostname: Optional[str],
    tls_kwargs: Dict[str, Any],
    use_aiofastnet: Optional[bool] = False,
) -> asyncio.Transport:
    """Run ``protocol_factory`` over an already connected socket (TLS on top when ``ssl``)."""
    try:
        if ssl is not None:
            transport, _ = await _net.create_connection(
                use_aiofastnet, protocol_factory, sock=sock, ssl=ssl,
                server_hostname=server_hostname, **tls_kwargs
            )
        else:
            transport, _ = await _net.create_connection(use_aiofastnet, protocol_factory,
                                                        sock=sock)
    except BaseException:
        sock.close()
        raise
    return transport


# ------------------------------------------------------------------------------------------------
# HTTP(S) proxies: CONNECT


def _authority(host: str, port: int) -> str:
    """``host:port`` for a CONNECT request line (IPv6 in brackets, without a zone)."""
    if ":" in host:
        return f"[{host.partition('%')[0]}]:{port}"
    return f"{host}:{port}"


def _connect_request(proxy: WSParsedURL, target: WSParsedURL) -> bytes:
    """The CONNECT request for ``target``, with Basic credentials from the proxy URL."""
    authority = _authority(target.host, target.port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.username is not None:
        credentials = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials).decode("ascii"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class _ConnectTunnel(asyncio.Protocol):
    """Client side of an HTTP CONNECT exchange (RFC 9110 §9.3.6).

    Sends the request as soon as the connection (to the proxy) is made and reads the response
    head. ``done`` resolves to None once a 2xx head has arrived; reading is then paused so that
    no tunnelled byte is delivered here before the WebSocket protocol (or TLS) takes over the
    transport. Any other outcome sets ``done`` to a :class:`WSProxyError` and aborts.
    """

    def __init__(self, request: bytes, proxy_name: str, target: str) -> None:
        self._request = request
        self._proxy_name = proxy_name
        self._target = target
        self._buffer = bytearray()
        self._searched = 0  # bytes of _buffer already known not to hold the end of the head
        self.transport: Optional[asyncio.Transport] = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, hence a cast, not a check.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            # Reading is paused on success, so only a failed exchange gets here: ignore.
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n", max(0, self._searched - 3))
        if end == -1:
            self._searched = len(self._buffer)
            if len(self._buffer) > MAX_PROXY_HEAD_SIZE:
                self._fail("HTTP proxy response headers are too large: "
                           f"response head exceeds {MAX_PROXY_HEAD_SIZE} bytes")
            return
        head_len = end + 4
        if head_len > MAX_PROXY_HEAD_SIZE:
            self._fail("HTTP proxy response headers are too large: "
                           f"response head exceeds {MAX_PROXY_HEAD_SIZE} bytes")
            return
        status_line = bytes(self._buffer[: self._buffer.find(b"\r\n")])
        match = _STATUS_LINE_RE.fullmatch(status_line)
        if match is None:
            self._fail("HTTP proxy returned an invalid response: "
                       f"invalid response status line {status_line[:100]!r}")
            return
        status = int(match.group(1))
        if not 200 <= status <= 299:
            reason = (match.group(2) or b"").decode("latin-1")
            self._fail(f"HTTP proxy rejected connection with status {status}: "
                       f"CONNECT refused with HTTP {status} {reason}".rstrip(), status)
            return
        if len(self._buffer) > head_len:
            # Nothing may come from the server before we speak, so these bytes are the proxy's
            # (a body it should not send); passing them on would corrupt the stream.
            self._fail("the proxy sent unexpected data after its CONNECT response")
            return
        assert self.transport is not None
        self.transport.pause_reading()
        self.done.set_result(None)

    def eof_received(self) -> Optional[bool]:
        self._fail("HTTP proxy closed the connection before replying "
                   "(before completing its CONNECT response)")
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.done.done():
            message = ("HTTP proxy closed the connection before replying "
                       "(before completing its CONNECT response)")
            error = WSProxyError(
                f"proxy {self._proxy_name}: {message}" + (f" ({exc})" if exc else ""),
                self._proxy_name,
            )
            error.__cause__ = exc
            self.done.set_exception(error)

    def _fail(self, message: str, status: Optional[int] = None) -> None:
        if not self.done.done():
            self.done.set_exception(WSProxyError(
                f"proxy {self._proxy_name} (CONNECT {self._target}): {message}",
                self._proxy_name,
                status,
            ))
        if self.transport is not None:
            self.transport.abort()


async def _connect_via_http_proxy(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    target: WSParsedURL,
    ssl: Optional[ssl_module.SSLContext],
    server_hostname: Optional[str],
    proxy: WSParsedURL,
    proxy_ssl_context: Optional[ssl_module.SSLContext],
    socket_factory: Optional[_UrlSocketFactory],
    connect_kwargs: Dict[str, Any],
    tls_kwargs: Dict[str, Any],
    logger: _Logger,
) -> asyncio.Transport:
    """Open a CONNECT tunnel through an HTTP(S) proxy and attach the WebSocket protocol."""
    name = redact_url(proxy.url)
    proxy_tls: Optional[ssl_module.SSLContext] = None
    if proxy.scheme == "https":
        proxy_tls = proxy_ssl_context or ssl_module.create_default_context()
        if ssl is not None and sys.version_info < (3, 11) and isinstance(
            loop, asyncio.BaseEventLoop
        ):
            # start_tls over a TLS transport (TLS in TLS) arrived in 3.11's asyncio; before it
            # the loop refuses or misbehaves. uvloop supports it.
            raise NotImplementedError(
                "wss:// through an https:// proxy needs Python 3.11+ with the asyncio event "
                "loop (TLS inside TLS); use uvloop, or an http:// proxy"
            )
    target_name = _authority(target.host, target.port)
    tunnel = _ConnectTunnel(_connect_request(proxy, target), name, target_name)
    logger.info("opening a CONNECT tunnel to %s through proxy %s", target_name, name)

    sock = None
    if socket_factory is not None:
        sock = await _socket_from_factory(socket_factory, proxy, loop)
    proxy_tls_kwargs: Dict[str, Any] = {}
    if proxy_tls is not None:
        proxy_tls_kwargs = dict(tls_kwargs, server_hostname=proxy.host)
    try:
        if sock is None:
            transport, _ = await loop.create_connection(
                lambda: tunnel, proxy.host, proxy.port, ssl=proxy_tls, **proxy_tls_kwargs,
                **connect_kwargs,
            )
        else:
            _refuse_connect_kwargs(connect_kwargs, "socket_factory returned a socket", sock)
            try:
                transport, _ = await loop.create_connection(
                    lambda: tunnel, sock=sock, ssl=proxy_tls, **proxy_tls_kwargs
                )
            except BaseException:
                sock.close()
                raise
    except OSError as exc:
        raise WSProxyError(f"cannot connect to proxy {name}: {exc}", name) from exc

    try:
        await tunnel.done
        protocol = protocol_factory()
        if ssl is not None:
            tls_transport = await loop.start_tls(
                transport, protocol, ssl, server_hostname=server_hostname, **tls_kwargs
            )
            if tls_transport is None:  # pragma: no cover - only when the loop is closing
                raise ConnectionError("the event loop closed the transport during start_tls")
            protocol.connection_made(tls_transport)
            return tls_transport
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        transport.resume_reading()
        return transport
    except BaseException:
        transport.abort()
        raise


# ------------------------------------------------------------------------------------------------
# SOCKS proxies: python-socks


class _PremadeHop:
    """Stands in for python-socks's ``forward`` proxy: hands over the factory's socket.

    python-socks connects to the proxy itself unless it is given a ``forward`` object (the
    previous hop of a proxy chain), whose ``connect(dest_host, dest_port, ...)`` must return a
    socket connected to the proxy. That public hook lets the SOCKS handshake run on the socket
    from ``socket_factory`` without reaching into python-socks internals.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    async def connect(self, dest_host: str, dest_port: int, *args: Any, **kwargs: Any) -> Any:
        return self._sock


async def _connect_via_socks_proxy(
    loop: asyncio.AbstractEventLoop,
    target: WSParsedURL,
    proxy: WSParsedURL,
    socket_factory: Optional[_UrlSocketFactory],
    connect_kwargs: Dict[str, Any],
    logger: _Logger,
) -> socket.socket:
    """Open a SOCKS tunnel to ``target`` with python-socks; returns the connected socket."""
    from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
    from python_socks.async_.asyncio import Proxy

    name = redact_url(proxy.url)
    socks4 = proxy.scheme.startswith("socks4")
    sock = None
    if socket_factory is not None:
        sock = await _socket_from_factory(socket_factory, proxy, loop)
    if sock is not None:
        _refuse_connect_kwargs(connect_kwargs, "socket_factory returned a socket", sock)
    else:
        _refuse_connect_kwargs(
            connect_kwargs, "only local_addr is supported with a SOCKS proxy",
            allowed=("local_addr",),
        )
    client = Proxy(
        ProxyType.SOCKS4 if socks4 else ProxyType.SOCKS5,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=None if socks4 else (proxy.password or ("" if proxy.username else None)),
        # socks4: the client resolves (the protocol carries only IPv4 addresses); socks4a,
        # socks5 and socks5h: the proxy resolves, as picows and curl's socks5h do.
        rdns=proxy.scheme != "socks4",
        forward=_PremadeHop(sock) if sock is not None else None,  # type: ignore[arg-type]
        loop=loop,
    )
    target_name = _authority(target.host, target.port)
    logger.info("opening a SOCKS tunnel to %s through proxy %s", target_name, name)
    try:
        # No timeout of its own (python-socks defaults to 60 s): ws_connect bounds the attempt.
        result = await client.connect(
            target.host, target.port, timeout=365 * 24 * 3600.0,
            local_addr=connect_kwargs.get("local_addr"),
        )
    except ProxyTimeoutError as exc:  # pragma: no cover - the timeout above is never reached
        raise WSProxyError(f"proxy {name} timed out", name) from exc
    except ProxyConnectionError as exc:
        raise WSProxyError(f"cannot connect to proxy {name}: {exc}", name) from exc
    except ProxyError as exc:
        raise WSProxyError(
            f"proxy {name} refused the connection to {target_name}: {exc}", name
        ) from exc
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise WSProxyError(
            f"proxy {name}: connection failed during the SOCKS handshake: {exc}", name
        ) from exc
    except ValueError as exc:
        # python-socks lets some malformed replies through as ValueError (a bound host name
        # that is not UTF-8 raises UnicodeDecodeError): still the proxy's failure.
        if sock is not None:
            sock.close()
        raise WSProxyError(f"proxy {name}: invalid SOCKS reply: {exc}", name) from exc
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    assert isinstance(result, socket.socket)
    return result
