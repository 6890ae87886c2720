"""websockets' asyncio client API on femtows: ``connect``, ``unix_connect``, ``ClientConnection``.

The network side (TCP, TLS, proxies) and the upgrade parsing are femtows' core; this module
builds websockets' request, maps the core's handshake errors to websockets' exceptions, and
runs the ``connect`` forms (``await``, ``async with``, ``async for`` with reconnection).
"""

from __future__ import annotations

import asyncio
import http
import logging
import os
import ssl as ssl_module
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Generator, Sequence
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

from femtows import _net, handshake
from femtows._core.core import WSProtocol
from femtows.errors import (
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSProxyError,
)
from femtows.proxy import open_connection, parse_proxy_url
from femtows.websockets.asyncio.connection import Connection, CoreProtocol
from femtows.websockets.client import backoff, process_exception
from femtows.websockets.datastructures import Headers, HeadersLike
from femtows.websockets.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidProxy,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    ProxyError,
    SecurityError,
)
from femtows.websockets.extensions.base import Extension
from femtows.websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    enable_client_permessage_deflate,
)
from femtows.websockets.headers import (
    build_authorization_basic,
    build_host,
    parse_extension,
    parse_subprotocol,
    validate_subprotocols,
)
from femtows.websockets.http11 import USER_AGENT, Request, Response
from femtows.websockets.protocol import Side
from femtows.websockets.typing import LoggerLike, Origin, Subprotocol
from femtows.websockets.uri import WebSocketURI, get_proxy, parse_proxy, parse_uri

__all__ = ["connect", "unix_connect", "ClientConnection"]

#: How many connection attempts one ``connect`` makes when following redirects
#: (websockets: WEBSOCKETS_MAX_REDIRECTS).
MAX_REDIRECTS = int(os.environ.get("WEBSOCKETS_MAX_REDIRECTS", "10"))

_REDIRECT_STATUSES = (300, 301, 302, 303, 307, 308)
_CORE_LOGGER = logging.getLogger("femtows.client")


class ClientConnection(Connection):
    """A client connection, as returned by ``connect``: websockets' ``ClientConnection``.

    Args:
        protocol: A ``CoreProtocol`` with ``Side.CLIENT``.
        ping_interval, ping_timeout, close_timeout, max_queue, write_limit: see ``connect``.
    """

    def __init__(
        self,
        protocol: CoreProtocol,
        *,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        max_queue: Union[Optional[int], Tuple[Optional[int], Optional[int]]] = 16,
        write_limit: Union[int, Tuple[int, Optional[int]]] = 2**15,
    ) -> None:
        super().__init__(
            protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )


class connect:
    """Connect to the WebSocket server at ``uri``: ``await connect(...)``,
    ``async with connect(...) as ws``, or ``async for ws in connect(...)`` (reconnecting).

    Keywords and defaults are websockets 17.4's: ``origin``, ``extensions`` (at most one
    ``ClientPerMessageDeflateFactory``; other factories raise NotImplementedError),
    ``subprotocols``, ``compression`` ("deflate": permessage-deflate with websockets' offer
    unless ``extensions`` has a factory for it; None: nothing offered),
    ``additional_headers``, ``user_agent_header``, ``proxy`` (True: from the environment),
    ``process_exception``, ``open_timeout`` (TCP + TLS + proxy + handshake + redirects),
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``reconnect_delays``, ``max_size``,
    ``max_queue``, ``write_limit``, ``logger`` (default ``websockets.client``),
    ``create_connection``; any other keyword goes to ``loop.create_connection`` (``ssl``,
    ``server_hostname``, ``sock``, ``host``, ``port``, ``local_addr``, ...), or with a proxy,
    ``proxy_ssl`` / ``proxy_server_hostname`` / ... to the proxy leg.

    Raises:
        InvalidURI: ``uri`` isn't a valid WebSocket URI.
        InvalidProxy: ``proxy`` isn't a valid proxy.
        OSError: the TCP connection failed.
        InvalidHandshake: the opening handshake failed (InvalidStatus, InvalidMessage, ...).
        TimeoutError: "timed out during opening handshake".
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: Optional[Origin] = None,
        extensions: Optional[Sequence[Any]] = None,
        subprotocols: Optional[Sequence[Subprotocol]] = None,
        compression: Optional[str] = "deflate",
        additional_headers: Optional[HeadersLike] = None,
        user_agent_header: Optional[str] = USER_AGENT,
        proxy: Union[str, bool, None] = True,
        process_exception: Callable[[Exception], Optional[Exception]] = process_exception,
        open_timeout: Optional[float] = 10,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        reconnect_delays: Callable[[], Generator[float, None, None]] = backoff,
        max_size: Union[Optional[int], Tuple[Optional[int], Optional[int]]] = 2**20,
        max_queue: Union[Optional[int], Tuple[Optional[int], Optional[int]]] = 16,
        write_limit: Union[int, Tuple[int, Optional[int]]] = 2**15,
        logger: Optional[LoggerLike] = None,
        create_connection: Optional[Type[ClientConnection]] = None,
        **kwargs: Any,
    ) -> None:
        self.uri = uri
        self.ws_uri = parse_uri(uri)
        if not self.ws_uri.secure and kwargs.get("ssl") is not None:
            raise ValueError("ssl argument is incompatible with a ws:// URI")
        if subprotocols is not None:
            validate_subprotocols(subprotocols)
        if compression == "deflate":
            extensions = enable_client_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        self.deflate_factory = _deflate_factory(extensions)
        #: The core's permessage-deflate configuration (None: nothing offered).
        self.deflate_config: Optional[handshake.WSDeflateConfig] = (
            None if self.deflate_factory is None else self.deflate_factory.to_config()
        )
        if logger is None:
            logger = logging.getLogger("websockets.client")
        if create_connection is None:
            create_connection = ClientConnection
        self.origin = origin
        self.subprotocols = subprotocols
        self.max_size = max_size
        self.logger: LoggerLike = logger
        self.create_connection = create_connection
        self.connection_kwargs: Dict[str, Any] = dict(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        self.additional_headers = additional_headers
        self.user_agent_header = user_agent_header
        self.proxy = proxy
        self.process_exception = process_exception
        self.open_timeout = open_timeout
        self.reconnect_delays = reconnect_delays
        self.create_connection_kwargs = kwargs

    # -- one attempt -------------------------------------------------------------------------

    def _new_connection(self) -> ClientConnection:
        protocol = CoreProtocol(Side.CLIENT, max_size=self.max_size, logger=self.logger)
        return self.create_connection(protocol, **self.connection_kwargs)

    def _build_request(self, ws_uri: WebSocketURI, key: str) -> Tuple[Request, bytes]:
        headers = Headers()
        headers["Host"] = build_host(ws_uri.host, ws_uri.port, ws_uri.secure)
        if ws_uri.user_info:
            headers["Authorization"] = build_authorization_basic(*ws_uri.user_info)
        if self.origin is not None:
            headers["Origin"] = self.origin
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
        headers["Sec-WebSocket-Key"] = key
        headers["Sec-WebSocket-Version"] = "13"
        if self.deflate_config is not None:
            headers["Sec-WebSocket-Extensions"] = handshake.deflate_offer(self.deflate_config)
        if self.subprotocols is not None:
            headers["Sec-WebSocket-Protocol"] = ", ".join(self.subprotocols)
        if self.additional_headers is not None:
            headers.update(self.additional_headers)
        if self.user_agent_header is not None:
            headers.setdefault("User-Agent", self.user_agent_header)
        request = Request(ws_uri.resource_name, headers)
        lines = [f"GET {request.path} HTTP/1.1\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.raw_items())
        lines.append("\r\n")
        return request, "".join(lines).encode()

    def _accept(self, connection: ClientConnection, core_response: Any) -> ClientConnection:
        """Runs in the core's listener factory once the 101 response is validated."""
        response = _response(core_response, None)
        connection.response = response
        if connection.debug:
            connection.logger.debug("< HTTP/1.1 %d %s", response.status_code,
                                    response.reason_phrase)
            for name, value in response.headers.raw_items():
                connection.logger.debug("< %s: %s", name, value)
        if self.deflate_config is None and response.headers.get_all("Sec-WebSocket-Extensions"):
            raise NegotiationError("no extensions supported")
        values = response.headers.get_all("Sec-WebSocket-Protocol")
        if values:
            if self.subprotocols is None:
                raise NegotiationError("no subprotocols supported")
            parsed: List[Subprotocol] = sum([parse_subprotocol(value) for value in values], [])
            if len(parsed) > 1:
                raise InvalidHeader(
                    "Sec-WebSocket-Protocol", f"multiple values: {', '.join(parsed)}"
                )
            if parsed[0] not in self.subprotocols:
                raise NegotiationError(f"unsupported subprotocol: {parsed[0]}")
            connection.protocol.subprotocol = Subprotocol(parsed[0])
        return connection

    async def _open(self, ws_uri: WebSocketURI) -> ClientConnection:
        """Open the stream to ``ws_uri`` and run the opening handshake on it."""
        loop = asyncio.get_running_loop()
        connection = self._new_connection()
        key = handshake.generate_key()
        request, request_bytes = self._build_request(ws_uri, key)
        connection.request = request
        if connection.debug:
            connection.logger.debug("> GET %s HTTP/1.1", request.path)
            for name, value in request.headers.raw_items():
                connection.logger.debug("> %s: %s", name, value)
        handshake_future: asyncio.Future[Any] = loop.create_future()
        options = connection.core_options()

        def make_protocol() -> WSProtocol:
            return WSProtocol(
                is_client=True,
                listener_factory=lambda _request, response: self._accept(connection, response),
                logger=_CORE_LOGGER,
                read_buffer_init_size=16 * 1024,
                max_frame_size=options["max_frame_size"],
                validate_utf8=options["validate_utf8"],
                allow_rsv_bits=False,
                enable_auto_pong=True,
                disconnect_on_exception=True,
                close_timeout=None,
                websocket_handshake_timeout=None,
                max_head_size=handshake.MAX_HEAD_SIZE,
                request=request,
                request_bytes=request_bytes,
                key=key,
                handshake_future=handshake_future,
                compression=self.deflate_config,
            )

        transport = await self._open_transport(loop, make_protocol, ws_uri)
        try:
            await handshake_future
        except BaseException as exc:
            transport.abort()
            connection.abort_handshake()
            if isinstance(exc, WSHandshakeError):
                mapped = self._extensions_error(exc) or _map_handshake_error(exc)
                raise mapped from mapped.__cause__
            raise
        params = handshake_future.result()[0].compression
        if params is not None and self.deflate_factory is not None:
            connection.protocol.extensions = [
                PerMessageDeflate.from_params(params, self.deflate_factory.compress_settings)
            ]
        return connection

    def _extensions_error(self, exc: WSHandshakeError) -> Optional[Exception]:
        """websockets' exception for a ``Sec-WebSocket-Extensions`` answer the core refused
        (its checks are the same; websockets words and types them per extension)."""
        if not (
            isinstance(exc, WSInvalidHeaderError)
            and exc.name == "Sec-WebSocket-Extensions"
            and exc.response is not None
            and self.deflate_factory is not None
        ):
            return None
        values = exc.response.headers.getall("Sec-WebSocket-Extensions", [])
        accepted: List[Extension] = []
        try:
            for value in values:
                for name, params in parse_extension(value):
                    if name != self.deflate_factory.name:
                        raise NegotiationError(
                            f"Unsupported extension: name = {name}, params = {params}"
                        )
                    try:
                        accepted.append(
                            self.deflate_factory.process_response_params(params, accepted)
                        )
                    except NegotiationError:
                        raise NegotiationError(
                            f"Unsupported extension: name = {name}, params = {params}"
                        ) from None
        except InvalidHandshake as error:
            error.__cause__ = exc
            return error
        return None

    async def _open_transport(
        self, loop: asyncio.AbstractEventLoop, make_protocol: Callable[[], WSProtocol],
        ws_uri: WebSocketURI,
    ) -> asyncio.Transport:
        kwargs = dict(self.create_connection_kwargs)
        unix = kwargs.pop("unix", False)
        proxy: Union[str, bool, None] = self.proxy
        if unix or kwargs.get("sock") is not None:
            proxy = None
        if proxy is True:
            proxy = get_proxy(ws_uri)
        if ws_uri.secure:
            kwargs.setdefault("ssl", True)
            if kwargs.get("ssl") is None:
                raise ValueError("ssl=None is incompatible with a wss:// URI")
            if kwargs["ssl"] is True:
                kwargs["ssl"] = ssl_module.create_default_context()
            kwargs.setdefault("server_hostname", ws_uri.host)
        if unix:
            path = kwargs.pop("path", None)
            transport, _ = await loop.create_unix_connection(make_protocol, path, **kwargs)
            return transport
        if proxy is not None and proxy is not False:
            return await self._open_via_proxy(loop, make_protocol, ws_uri, str(proxy), kwargs)
        if kwargs.get("sock") is None:
            host = kwargs.pop("host", None)
            port = kwargs.pop("port", None)
            transport, _ = await _net.create_connection(
                None, make_protocol,
                ws_uri.host if host is None else host,
                ws_uri.port if port is None else port,
                **kwargs,
            )
            return transport
        transport, _ = await loop.create_connection(make_protocol, **kwargs)
        return transport

    async def _open_via_proxy(
        self, loop: asyncio.AbstractEventLoop, make_protocol: Callable[[], WSProtocol],
        ws_uri: WebSocketURI, proxy: str, kwargs: dict[str, Any],
    ) -> asyncio.Transport:
        parse_proxy(proxy)
        proxy_url = parse_proxy_url(proxy)
        proxy_kwargs = {k[6:]: v for k, v in kwargs.items() if k.startswith("proxy_")}
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("proxy_")}
        proxy_ssl = proxy_kwargs.pop("ssl", True if proxy_url.scheme == "https" else None)
        if proxy_url.scheme == "https":
            if proxy_ssl is None:
                raise ValueError("proxy_ssl=None is incompatible with an https:// proxy")
        elif proxy_ssl is not None:
            raise ValueError("proxy_ssl argument is incompatible with an http:// proxy")
        ssl = kwargs.pop("ssl", None)
        server_hostname = kwargs.pop("server_hostname", None)
        from femtows.url import parse_url

        target = parse_url(f"{'wss' if ws_uri.secure else 'ws'}://"
                           f"{build_host(ws_uri.host, ws_uri.port, ws_uri.secure)}/")
        try:
            return await open_connection(
                loop, make_protocol, target,
                ssl=ssl, server_hostname=server_hostname, proxy=proxy_url,
                proxy_ssl_context=proxy_ssl if isinstance(proxy_ssl, ssl_module.SSLContext)
                else None,
                socket_factory=None, kwargs=kwargs, logger=_CORE_LOGGER,
            )
        except WSProxyError as exc:
            if exc.status is not None:
                raise InvalidProxyStatus(
                    Response(exc.status, _phrase(exc.status), Headers(), b"")
                ) from exc
            if isinstance(exc.__cause__, OSError):
                raise exc.__cause__ from None
            raise ProxyError(str(exc)) from exc

    def _process_redirect(self, exc: Exception) -> Union[Exception, str]:
        """The URI to follow for a redirect response, or the exception to raise."""
        if not (
            isinstance(exc, InvalidStatus)
            and exc.response.status_code in _REDIRECT_STATUSES
            and "Location" in exc.response.headers
        ):
            return exc
        old_ws_uri = self.ws_uri
        new_uri = urllib.parse.urljoin(self.uri, exc.response.headers["Location"])
        new_ws_uri = parse_uri(new_uri)
        if self.create_connection_kwargs.get("sock") is not None:
            return ValueError(f"cannot follow redirect to {new_uri} with a preexisting socket")
        if old_ws_uri.secure and not new_ws_uri.secure:
            return SecurityError(f"cannot follow redirect to non-secure URI {new_uri}")
        if (
            old_ws_uri.secure != new_ws_uri.secure
            or old_ws_uri.host != new_ws_uri.host
            or old_ws_uri.port != new_ws_uri.port
        ):
            if self.create_connection_kwargs.get("unix", False):
                return ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} with a Unix socket"
                )
            if (
                self.create_connection_kwargs.get("host") is not None
                or self.create_connection_kwargs.get("port") is not None
            ):
                return ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} "
                    f"with an explicit host or port"
                )
            if self.additional_headers is not None:
                self.additional_headers = Headers(
                    (key, value)
                    for key, value in Headers(self.additional_headers).raw_items()
                    if key.lower() not in ("authorization", "cookie", "proxy-authorization")
                )
        return new_uri

    async def _connect_with_redirects(self) -> ClientConnection:
        for _ in range(MAX_REDIRECTS):
            try:
                return await self._open(self.ws_uri)
            except Exception as exc:
                exc_or_uri = self._process_redirect(exc)
                if isinstance(exc_or_uri, Exception):
                    if exc_or_uri is exc:
                        raise
                    raise exc_or_uri from exc
                self.uri = exc_or_uri
                self.ws_uri = parse_uri(exc_or_uri)
        raise SecurityError(f"more than {MAX_REDIRECTS} redirects")

    async def _connect(self) -> ClientConnection:
        if self.open_timeout is None:
            return await self._connect_with_redirects()
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._connect_with_redirects())
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            if not task.done():
                timed_out = True
                task.cancel()

        timer = loop.call_later(self.open_timeout, on_timeout)
        try:
            return await task
        except asyncio.CancelledError:
            if not timed_out:
                task.cancel()
                raise
            raise TimeoutError("timed out during opening handshake") from TimeoutError()
        finally:
            timer.cancel()

    # -- the three forms ---------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._connect().__await__()

    async def __aenter__(self) -> ClientConnection:
        if hasattr(self, "connection"):
            raise RuntimeError("connect() isn't reentrant")
        self.connection = await self
        return await self.connection.__aenter__()  # type: ignore[return-value]

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        try:
            await self.connection.__aexit__(exc_type, exc_value, traceback)
        finally:
            del self.connection

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        delays: Optional[Generator[float, None, None]] = None
        while True:
            try:
                async with self as connection:
                    yield connection
            except Exception as exc:
                try:
                    new_exc = self.process_exception(exc)
                except Exception as raised_exc:
                    new_exc = raised_exc
                if new_exc is exc:
                    raise
                if new_exc is not None:
                    raise new_exc from exc
                if delays is None:
                    delays = self.reconnect_delays()
                delay = next(delays)
                self.logger.info(
                    "connect failed; reconnecting in %.1f seconds: %s",
                    delay,
                    traceback.format_exception_only(type(exc), exc)[0].strip(),
                )
                await asyncio.sleep(delay)
            else:
                delays = None


def unix_connect(
    path: Union[str, os.PathLike[str], None] = None,
    uri: Optional[str] = None,
    **kwargs: Any,
) -> connect:
    """Connect to a WebSocket server listening on a Unix socket at ``path``.

    ``uri`` defaults to ``ws://localhost/``, or ``wss://localhost/`` when ``ssl`` is given.
    Takes the same keywords as ``connect``.
    """
    if uri is None:
        uri = "ws://localhost/" if kwargs.get("ssl") is None else "wss://localhost/"
    return connect(uri=uri, unix=True, path=path, **kwargs)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _response(core_response: Any, body: Optional[bytes]) -> Response:
    """websockets' Response for the core's, with the reason phrase the server sent."""
    status = int(core_response.status)
    headers = Headers(list(core_response.headers.items()))
    reason = getattr(core_response, "reason", None)
    return Response(status, _phrase(status) if reason is None else reason, headers, body or b"")


def _map_handshake_error(exc: WSHandshakeError) -> Exception:
    """websockets' exception for a handshake failure reported by the core."""
    new: Exception
    if isinstance(exc, WSInvalidStatusError) and exc.response is not None:
        new = InvalidStatus(_response(exc.response, exc.raw_body))
    elif isinstance(exc, WSInvalidUpgradeError):
        new = InvalidUpgrade(exc.name, exc.value)
    elif isinstance(exc, WSInvalidHeaderError):
        new = InvalidHeader(exc.name) if exc.value is None else InvalidHeaderValue(
            exc.name, exc.value
        )
    elif isinstance(exc, WSInvalidMessageError):
        new = InvalidMessage("did not receive a valid HTTP response")
        if "closed before" in str(exc):
            new.__cause__ = EOFError("connection closed while reading HTTP status line")
            return new
    else:
        new = InvalidHandshake(str(exc))
    new.__cause__ = exc
    return new


def _deflate_factory(
    extensions: Optional[Sequence[Any]],
) -> Optional[ClientPerMessageDeflateFactory]:
    """The one permessage-deflate factory of ``extensions`` (None: nothing to offer).

    Raises:
        NotImplementedError: another kind of extension factory, or several permessage-deflate
            factories (websockets would offer each in turn; femtows negotiates one offer).
    """
    factories = list(extensions or ())
    for factory in factories:
        if not isinstance(factory, ClientPerMessageDeflateFactory):
            raise NotImplementedError(
                f"femtows.websockets negotiates permessage-deflate only; extension factory "
                f"{factory!r} is not supported"
            )
    if len(factories) > 1:
        raise NotImplementedError(
            "femtows.websockets offers one permessage-deflate configuration; got "
            f"{len(factories)} ClientPerMessageDeflateFactory"
        )
    return factories[0] if factories else None


_ = (InvalidProxy,)
