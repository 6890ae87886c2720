"""websockets' asyncio server on the femtows core: ``serve``, ``unix_serve``, ``Server``,
``ServerConnection``, ``basic_auth`` (and ``broadcast``, from ``connection.py``).

How a connection is served
--------------------------
``serve()`` returns a ``Server``; awaiting it (or entering it) calls ``loop.create_server``
(through aiofastnet when available, as the core does) with a protocol factory that, for each
TCP connection, builds:

* a ``CoreProtocol`` and the ``ServerConnection`` (or the user's ``create_connection``), which
  is itself the core's ``WSListener``;
* the core ``WSProtocol`` whose listener factory is this module's opening handshake, run with
  websockets' semantics: ``process_request``, then the checks of a WebSocket upgrade (405, 505,
  426, 400, ``origins`` → 403, subprotocol selection), the ``Server`` header,
  ``process_response``, and 503 while the server is shutting down. The hooks may be sync or
  async: when one returns an awaitable, the listener factory returns a coroutine and the core
  pauses reading until it resolves (see docs/core-api.md).

Once the core has sent the 101, the connection is OPEN and the handler runs as
``async with connection: await handler(connection)`` in its own task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hmac
import http
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Sequence
from inspect import isawaitable
from types import TracebackType
from typing import Any, Dict, Optional, Tuple, Type, Union, cast

from multidict import CIMultiDict

from femtows import _net
from femtows import handshake as core_handshake
from femtows._core.core import WSProtocol, WSTransport
from femtows.websockets.asyncio.connection import Connection, CoreProtocol, broadcast
from femtows.websockets.datastructures import Headers
from femtows.websockets.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMethod,
    InvalidOrigin,
    InvalidProtocol,
    InvalidUpgrade,
    NegotiationError,
)
from femtows.websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    enable_server_permessage_deflate,
)
from femtows.websockets.frames import CloseCode
from femtows.websockets.headers import (
    build_www_authenticate_basic,
    parse_authorization_basic,
    parse_connection,
    parse_subprotocol,
    parse_upgrade,
    validate_subprotocols,
)
from femtows.websockets.http11 import SERVER, Request, Response
from femtows.websockets.protocol import Side, State
from femtows.websockets.typing import LoggerLike, Origin, StatusLike, Subprotocol

__all__ = [
    "Server",
    "ServerConnection",
    "basic_auth",
    "broadcast",
    "serve",
    "unix_serve",
]

HandlerType = Callable[["ServerConnection"], Awaitable[None]]
ProcessRequest = Callable[
    ["ServerConnection", Request], Union[Awaitable[Optional[Response]], Response, None]
]
ProcessResponse = Callable[
    ["ServerConnection", Request, Response],
    Union[Awaitable[Optional[Response]], Response, None],
]
SelectSubprotocol = Callable[["ServerConnection", Sequence[Subprotocol]], Optional[Subprotocol]]

_CORE_LOGGER = logging.getLogger("femtows.server")
_FAILED_TEXT = "Failed to open a WebSocket connection.\nSee server log for more information.\n"
# What the core writes itself in a 101 (build_101_response drops these from extra headers).
_CORE_101_HEADERS = frozenset({"upgrade", "connection", "sec-websocket-accept"})
_CoreResult = Union[core_handshake.WSUpgradeResponseWithListener, None]


class ServerConnection(Connection):
    """A server-side connection, handed to the handler: websockets' ``ServerConnection``.

    Built by the server for every TCP connection before the opening handshake, so
    ``process_request``, ``select_subprotocol`` and ``process_response`` receive it.

    Args:
        protocol: The connection's ``CoreProtocol`` (``Side.SERVER``).
        server: The ``Server`` it belongs to.
        ping_interval, ping_timeout, close_timeout, max_queue, write_limit: as for
            ``Connection``.

    Attributes:
        server: See Args.
        username: Set by ``basic_auth`` once the client authenticated (absent before).
    """

    def __init__(
        self,
        protocol: CoreProtocol,
        server: Server,
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
        self.server = server
        self.username: str  # set by basic_auth()
        # The TCP/TLS transport as soon as the connection is accepted: the core hands its own
        # transport to the connection only once the handshake succeeded.
        self._raw_transport: Optional[asyncio.BaseTransport] = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        """The core sent the 101: the connection is OPEN; the server starts the handler."""
        params = transport.compression
        if params is not None:
            self.protocol.extensions = [
                PerMessageDeflate.from_params(params, self.server._deflate_settings)
            ]
        super().on_ws_connected(transport)
        self.server._start_handler(self)

    @property
    def transport(self) -> Any:
        """The asyncio transport (available from the start of the opening handshake)."""
        transport = super().transport
        return self._raw_transport if transport is None else transport

    @property
    def local_address(self) -> Any:
        """Local address of the connection (``socket.getsockname()``)."""
        transport = self.transport
        return None if transport is None else transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """Remote address of the connection (``socket.getpeername()``)."""
        transport = self.transport
        return None if transport is None else transport.get_extra_info("peername")

    def respond(self, status: StatusLike, text: str) -> Response:
        """Build a plain-text HTTP response, e.g. for ``process_request`` to return.

        Args:
            status: HTTP status code.
            text: Body, encoded to UTF-8.

        Returns:
            A ``Response`` with Date, ``Connection: close``, Content-Length and
            ``Content-Type: text/plain; charset=utf-8`` headers; it may be modified before
            being returned.
        """
        return _reject(status, text)


_date_cache: Tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header value, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


def _reject(status: StatusLike, text: str) -> Response:
    code = http.HTTPStatus(status)
    body = text.encode()
    headers = Headers(
        [
            ("Date", _http_date()),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
    )
    return Response(code.value, code.phrase, headers, body)


class _Handshake:
    """The opening handshake with websockets' semantics, as the core's listener factory."""

    def __init__(
        self,
        server: Server,
        *,
        origins: Optional[Sequence[Union[Origin, re.Pattern[str], None]]],
        subprotocols: Optional[Sequence[Subprotocol]],
        select_subprotocol: Optional[SelectSubprotocol],
        process_request: Optional[ProcessRequest],
        process_response: Optional[ProcessResponse],
        server_header: Optional[str],
        deflate_factory: Optional[ServerPerMessageDeflateFactory] = None,
    ) -> None:
        self.server = server
        self.deflate_factory = deflate_factory
        #: The core's permessage-deflate configuration (None: no extension accepted).
        self.deflate_config: Optional[core_handshake.WSDeflateConfig] = (
            None if deflate_factory is None else deflate_factory.to_config()
        )
        self.origins = origins
        self.subprotocols = subprotocols
        self.select_subprotocol = select_subprotocol
        self.process_request = process_request
        self.process_response = process_response
        self.server_header = server_header

    # -- the listener factory ----------------------------------------------------------------

    def start(
        self, connection: ServerConnection, core_request: core_handshake.WSUpgradeRequest
    ) -> Union[_CoreResult, Coroutine[Any, Any, _CoreResult]]:
        """Run the handshake for ``core_request``; a coroutine if a hook turned out async."""
        request = Request(
            core_request.path.decode("ascii", "surrogateescape"),
            Headers(list(core_request.headers.items())),
            core_request.method.decode("ascii", "surrogateescape"),
            core_request.version.decode("ascii", "surrogateescape"),
        )
        connection.request = request
        if connection.debug:
            connection.logger.debug("< %s %s %s", request.method, request.path, request.protocol)
            for name, value in request.headers.raw_items():
                connection.logger.debug("< %s: %s", name, value)
        response: Optional[Response] = None
        if self.process_request is not None:
            try:
                result = self.process_request(connection, request)
            except Exception:
                response = self._hook_failed(connection, "process_request")
            else:
                if isawaitable(result):
                    return self._continue_after_request(connection, request, result)
                response = result
        return self._after_request(connection, request, response)

    async def _continue_after_request(
        self,
        connection: ServerConnection,
        request: Request,
        pending: Awaitable[Optional[Response]],
    ) -> _CoreResult:
        try:
            response = await pending
        except Exception:
            response = self._hook_failed(connection, "process_request")
        result = self._after_request(connection, request, response)
        if isawaitable(result):
            return await result
        return result

    def _after_request(
        self, connection: ServerConnection, request: Request, response: Optional[Response]
    ) -> Union[_CoreResult, Coroutine[Any, Any, _CoreResult]]:
        accepted = response is None
        if response is None:
            response = self._accept(connection, request)
        if self.server_header is not None:
            response.headers["Server"] = self.server_header
        connection.response = response
        if self.process_response is not None:
            try:
                result = self.process_response(connection, request, response)
            except Exception:
                result = self._hook_failed(connection, "process_response")
            else:
                if isawaitable(result):
                    return self._continue_after_response(connection, result, accepted)
            if result is not None:
                connection.response = result
        return self._finish(connection, accepted)

    async def _continue_after_response(
        self,
        connection: ServerConnection,
        pending: Awaitable[Optional[Response]],
        accepted: bool,
    ) -> _CoreResult:
        try:
            result = await pending
        except Exception:
            result = self._hook_failed(connection, "process_response")
        if result is not None:
            connection.response = result
        return self._finish(connection, accepted)

    def _hook_failed(self, connection: ServerConnection, name: str) -> Response:
        connection.logger.error("%s failed", name, exc_info=True)
        return _reject(http.HTTPStatus.INTERNAL_SERVER_ERROR, _FAILED_TEXT)

    def _finish(self, connection: ServerConnection, accepted: bool) -> _CoreResult:
        response = connection.response
        assert response is not None
        if response.status_code == 101 and not self.server.is_serving():
            response = connection.response = _reject(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n"
            )
        try:
            core_response = _to_core_response(response)
        except (ValueError, TypeError):
            # A reason phrase with CR/LF (websockets would send it as it is) or a character
            # Latin-1 cannot encode (websockets fails the same way, in serialize()).
            connection.logger.error("invalid HTTP response", exc_info=True)
            response = connection.response = _reject(
                http.HTTPStatus.INTERNAL_SERVER_ERROR, _FAILED_TEXT
            )
            core_response = _to_core_response(response)
        if connection.debug:
            connection.logger.debug("> HTTP/1.1 %d %s", response.status_code,
                                    response.reason_phrase)
            for name, value in response.headers.raw_items():
                connection.logger.debug("> %s: %s", name, value)
            if response.body:
                connection.logger.debug("> [body] (%d bytes)", len(response.body))
        if response.status_code == 101:
            connection.logger.info("connection open")
            return core_handshake.WSUpgradeResponseWithListener(core_response, connection)
        connection.logger.info(
            "connection rejected (%d %s)" if accepted else "HTTP response sent (%d %s)",
            response.status_code,
            response.reason_phrase,
        )
        connection.abort_handshake()
        return core_handshake.WSUpgradeResponseWithListener(core_response, None)

    # -- accept(): the checks of a WebSocket upgrade -----------------------------------------

    def _accept(self, connection: ServerConnection, request: Request) -> Response:
        try:
            accept_header, protocol_header = self._check(connection, request)
        except InvalidOrigin as exc:
            return self._refuse(connection, exc, http.HTTPStatus.FORBIDDEN)
        except InvalidMethod as exc:
            response = self._refuse(connection, exc, http.HTTPStatus.METHOD_NOT_ALLOWED)
            response.headers["Allow"] = "GET"
            return response
        except InvalidProtocol as exc:
            return self._refuse(connection, exc, http.HTTPStatus.HTTP_VERSION_NOT_SUPPORTED)
        except InvalidUpgrade as exc:
            response = self._refuse(
                connection, exc, http.HTTPStatus.UPGRADE_REQUIRED,
                "\nYou cannot access a WebSocket server directly with a browser. "
                "You need a WebSocket client.\n",
            )
            response.headers["Upgrade"] = "websocket"
            return response
        except InvalidHandshake as exc:
            return self._refuse(connection, exc, http.HTTPStatus.BAD_REQUEST)
        except Exception:
            # select_subprotocol raised something else, or a bug.
            connection.logger.error("opening handshake failed", exc_info=True)
            return _reject(http.HTTPStatus.INTERNAL_SERVER_ERROR, _FAILED_TEXT)
        headers = Headers()
        headers["Date"] = _http_date()
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
        headers["Sec-WebSocket-Accept"] = accept_header
        if self.deflate_config is not None:
            # The answer the core will check the 101 against (negotiate_deflate_for_101), so
            # that process_response sees it.
            try:
                params = core_handshake.negotiate_deflate_request(
                    self.deflate_config, CIMultiDict(request.headers.raw_items())
                )
            except core_handshake.HandshakeRejection:
                value = ", ".join(request.headers.get_all("Sec-WebSocket-Extensions"))
                return self._refuse(
                    connection,
                    InvalidHeaderValue("Sec-WebSocket-Extensions", value),
                    http.HTTPStatus.BAD_REQUEST,
                )
            if params is not None:
                headers["Sec-WebSocket-Extensions"] = params.header
        if protocol_header is not None:
            headers["Sec-WebSocket-Protocol"] = protocol_header
        return Response(101, "Switching Protocols", headers)

    @staticmethod
    def _refuse(
        connection: ServerConnection,
        exc: InvalidHandshake,
        status: http.HTTPStatus,
        more: str = "",
    ) -> Response:
        request = connection.request
        if request is not None:
            request._exception = exc
        if connection.debug:
            connection.logger.debug("! invalid handshake", exc_info=True)
        text = str(exc)
        cause = exc.__cause__
        while cause is not None:
            text += f"; {cause}"
            cause = cause.__cause__
        return _reject(status, f"Failed to open a WebSocket connection: {text}.\n{more}")

    def _check(
        self, connection: ServerConnection, request: Request
    ) -> Tuple[str, Optional[str]]:
        if request.method != "GET":
            raise InvalidMethod(request.method)
        if request.protocol != "HTTP/1.1":
            raise InvalidProtocol(request.protocol)
        headers = request.headers

        # RFC 6455 §4.2.1 (and RFC 9112 §3.2): exactly one Host. websockets 17.4 checks nothing
        # here; femtows refuses as its core does, but here, so that process_response and the
        # log see the 400 (docs/websockets.md, "Deliberate differences").
        hosts = headers.get_all("Host")
        if not hosts:
            raise InvalidHeader("Host")
        if len(hosts) > 1:
            raise InvalidHeader("Host", "multiple values")

        # Fast paths for the usual single-token values; the full parsers otherwise.
        options: list[str] = []
        for value in headers.get_all("Connection"):
            options.extend([value] if value.lower() == "upgrade" else parse_connection(value))
        if not any(option.lower() == "upgrade" for option in options):
            raise InvalidUpgrade("Connection", ", ".join(options) if options else None)

        protocols: list[str] = []
        for value in headers.get_all("Upgrade"):
            protocols.extend([value] if value.lower() == "websocket" else parse_upgrade(value))
        if not (len(protocols) == 1 and protocols[0].lower() == "websocket"):
            raise InvalidUpgrade("Upgrade", ", ".join(protocols) if protocols else None)

        keys = headers.get_all("Sec-WebSocket-Key")
        if not keys:
            raise InvalidHeader("Sec-WebSocket-Key")
        if len(keys) > 1:
            raise InvalidHeader("Sec-WebSocket-Key", "multiple values")
        key = keys[0]
        try:
            raw_key = base64.b64decode(key.encode(), validate=True)
        except binascii.Error as exc:
            raise InvalidHeaderValue("Sec-WebSocket-Key", key) from exc
        except UnicodeEncodeError:
            raise InvalidHeaderValue("Sec-WebSocket-Key", key) from None
        if len(raw_key) != 16:
            raise InvalidHeaderValue("Sec-WebSocket-Key", key)
        accept_header = core_handshake.compute_accept(key)

        versions = headers.get_all("Sec-WebSocket-Version")
        if not versions:
            raise InvalidHeader("Sec-WebSocket-Version")
        if len(versions) > 1:
            raise InvalidHeader("Sec-WebSocket-Version", "multiple values")
        if versions[0] != "13":
            raise InvalidHeaderValue("Sec-WebSocket-Version", versions[0])

        origins = headers.get_all("Origin")
        if len(origins) > 1:
            raise InvalidHeader("Origin", "multiple values")
        origin = cast(Optional[Origin], origins[0] if origins else None)
        if self.origins is not None and not _origin_allowed(origin, self.origins):
            raise InvalidOrigin(origin)

        offered: list[Subprotocol] = []
        for value in headers.get_all("Sec-WebSocket-Protocol"):
            offered.extend(parse_subprotocol(value))
        if self.select_subprotocol is not None:
            subprotocol = self.select_subprotocol(connection, offered)
        else:
            subprotocol = self._default_select(offered)
        connection.protocol.subprotocol = subprotocol
        return accept_header, subprotocol

    def _default_select(self, offered: Sequence[Subprotocol]) -> Optional[Subprotocol]:
        if not self.subprotocols:
            return None
        if not offered:
            raise NegotiationError("missing subprotocol")
        proposed = set(offered)
        for subprotocol in self.subprotocols:
            if subprotocol in proposed:
                return subprotocol
        raise NegotiationError(
            "invalid subprotocol; expected one of " + ", ".join(self.subprotocols)
        )


def _to_core_response(response: Response) -> core_handshake.WSUpgradeResponse:
    """The core's response for ``response``, its reason phrase included (websockets puts
    ``reason_phrase`` on the status line as it is, e.g. from ``process_request``).

    Raises:
        ValueError: The reason phrase has a control character or one above U+00FF.
        TypeError: The reason phrase is not a str.
    """
    if response.status_code == 101:
        headers = core_handshake.WSUpgradeResponse.create_101_response(
            [(k, v) for k, v in response.headers.raw_items() if k.lower() not in _CORE_101_HEADERS]
        ).headers
        body = None
    else:
        headers = CIMultiDict(response.headers.raw_items())
        body = bytes(response.body)
    return core_handshake.WSUpgradeResponse(
        b"HTTP/1.1", response.status_code, headers, body, reason=response.reason_phrase
    )


def _origin_allowed(
    origin: Optional[str], allowed: Sequence[Union[Origin, re.Pattern[str], None]]
) -> bool:
    for item in allowed:
        if item == origin:
            return True
        if isinstance(item, re.Pattern) and origin is not None and item.fullmatch(origin):
            return True
    return False


class _ServerCoreProtocol(WSProtocol):
    """The core protocol of one server connection, telling the Server about its TCP life."""

    def __init__(self, server: Server, connection: ServerConnection, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ws_server = server
        self._ws_connection = connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._ws_connection._raw_transport = transport
        self._ws_server._tcp_opened(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        try:
            super().connection_lost(exc)
        finally:
            connection = self._ws_connection
            if connection.state is State.CONNECTING:
                # Timeout, client gone, or the core refused the request itself.
                connection.abort_handshake()
            if connection.request is not None:
                connection.logger.info("connection closed")
            self._ws_server._tcp_closed(self)


def _socket_name(sock: socket.socket) -> str:
    if sock.family == socket.AF_INET:
        host, port = sock.getsockname()
        return f"{host}:{port}"
    if sock.family == socket.AF_INET6:
        host, port = sock.getsockname()[:2]
        return f"[{host}]:{port}"
    return str(sock.getsockname())


class Server:
    """A WebSocket server, as returned by ``serve``: websockets' ``Server``.

    Mirrors ``asyncio.Server``; ``await serve(...)`` or ``async with serve(...)`` starts it.

    Args:
        create_server: Coroutine function creating the ``asyncio.Server``.
        handler: Coroutine function run for each connection.
        logger: Logger for the server; default ``logging.getLogger("websockets.server")``.

    Attributes:
        handler: See Args.
        logger: See Args.
        server: The ``asyncio.Server`` (once started).
    """

    def __init__(
        self,
        create_server: Callable[[], Awaitable[asyncio.Server]],
        handler: Callable[[ServerConnection], Awaitable[None]],
        logger: Optional[LoggerLike] = None,
    ) -> None:
        self.create_server = create_server
        self.handler = handler
        if logger is None:
            logger = logging.getLogger("websockets.server")
        self.logger: LoggerLike = logger
        self.server: asyncio.Server
        self.all_connections: set[ServerConnection] = set()
        self.handler_tasks: set[asyncio.Task[None]] = set()
        self.close_task: Optional[asyncio.Task[None]] = None
        self._tcp: set[_ServerCoreProtocol] = set()
        self._tcp_drained: Optional[asyncio.Future[None]] = None
        # compress_settings of the permessage-deflate factory, for protocol.extensions.
        self._deflate_settings: Optional[Dict[str, Any]] = None
        loop = asyncio.get_running_loop()
        self.handlers_waiter: asyncio.Future[None] = loop.create_future()

    @property
    def connections(self) -> set[ServerConnection]:
        """Connections that completed the opening handshake and are still OPEN."""
        return {c for c in self.all_connections if c.state is State.OPEN}

    # -- connection bookkeeping --------------------------------------------------------------

    def _tcp_opened(self, protocol: _ServerCoreProtocol) -> None:
        self._tcp.add(protocol)

    def _tcp_closed(self, protocol: _ServerCoreProtocol) -> None:
        self._tcp.discard(protocol)
        waiter = self._tcp_drained
        if not self._tcp and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _start_handler(self, connection: ServerConnection) -> None:
        task = self.get_loop().create_task(self._run_handler(connection))
        self.handler_tasks.add(task)

    async def _run_handler(self, connection: ServerConnection) -> None:
        try:
            self.all_connections.add(connection)
            try:
                async with connection:
                    await self.handler(connection)
            except Exception:
                connection.logger.error("connection handler failed", exc_info=True)
            finally:
                self.all_connections.discard(connection)
        except Exception:  # pragma: no cover - a bug; never leak the TCP connection
            transport = connection.transport
            if transport is not None:
                transport.abort()
        finally:
            task = asyncio.current_task()
            if task is not None:
                self.handler_tasks.discard(task)

    # -- asyncio.Server API ------------------------------------------------------------------

    def close(
        self,
        close_connections: bool = True,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
    ) -> None:
        """Close the server; idempotent.

        Stops accepting connections; connections still in the opening handshake get HTTP 503;
        with ``close_connections`` (the default), open connections are closed with ``code``
        and ``reason``. ``wait_closed()`` returns once all TCP connections are closed and all
        handlers have returned.

        Args:
            close_connections: Close open connections (else wait for them to end).
            code: Close code for open connections (1001 GOING_AWAY by default).
            reason: Close reason for open connections.
        """
        if self.close_task is None:
            self.close_task = self.get_loop().create_task(
                self._close(close_connections, code, reason)
            )

    async def _close(self, close_connections: bool, code: int, reason: str) -> None:
        self.logger.info("server closing")
        self.server.close()
        if close_connections:
            tasks = [
                asyncio.create_task(connection.close(code, reason))
                for connection in self.all_connections
                if connection.state is State.OPEN
            ]
            if tasks:
                await asyncio.wait(tasks)
        await self.server.wait_closed()
        if self._tcp:
            self._tcp_drained = self.get_loop().create_future()
            await self._tcp_drained
        if self.handler_tasks:
            await asyncio.wait(self.handler_tasks)
        self.handlers_waiter.set_result(None)
        self.logger.info("server closed")

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """See ``asyncio.Server.get_loop``."""
        return self.server.get_loop()

    def is_serving(self) -> bool:
        """See ``asyncio.Server.is_serving``."""
        return self.server.is_serving()

    async def start_serving(self) -> None:
        """See ``asyncio.Server.start_serving`` (for ``serve(..., start_serving=False)``)."""
        await self.server.start_serving()

    async def serve_forever(self) -> None:
        """Serve until the server is closed; cancelling it closes the server gracefully
        (connections closed with 1001, handlers awaited) and re-raises CancelledError."""
        try:
            if not self.is_serving():
                await self.start_serving()
            await self.wait_closed()
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise

    async def wait_closed(self) -> None:
        """Wait until the server is closed: all TCP connections closed, all handlers done."""
        await asyncio.shield(self.handlers_waiter)

    @property
    def sockets(self) -> Tuple[socket.socket, ...]:
        """See ``asyncio.Server.sockets``."""
        return tuple(self.server.sockets)

    async def _await(self) -> Server:
        if not hasattr(self, "server"):
            self.server = await self.create_server()
            if self.server.is_serving():
                for sock in self.server.sockets:
                    self.logger.info("server listening on %s", _socket_name(sock))
        return self

    def __await__(self) -> Generator[Any, None, Server]:
        return self._await().__await__()

    async def __aenter__(self) -> Server:
        return await self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()
        await self.wait_closed()


def serve(
    handler: Callable[[ServerConnection], Awaitable[None]],
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    origins: Optional[Sequence[Union[Origin, re.Pattern[str], None]]] = None,
    extensions: Optional[Sequence[Any]] = None,
    subprotocols: Optional[Sequence[Subprotocol]] = None,
    select_subprotocol: Optional[SelectSubprotocol] = None,
    compression: Optional[str] = "deflate",
    process_request: Optional[ProcessRequest] = None,
    process_response: Optional[ProcessResponse] = None,
    server_header: Optional[str] = SERVER,
    open_timeout: Optional[float] = 10,
    ping_interval: Optional[float] = 20,
    ping_timeout: Optional[float] = 20,
    close_timeout: Optional[float] = 10,
    max_size: Union[Optional[int], Tuple[Optional[int], Optional[int]]] = 2**20,
    max_queue: Union[Optional[int], Tuple[Optional[int], Optional[int]]] = 16,
    write_limit: Union[int, Tuple[int, Optional[int]]] = 2**15,
    logger: Optional[LoggerLike] = None,
    create_connection: Optional[Type[ServerConnection]] = None,
    **kwargs: Any,
) -> Server:
    """Create a WebSocket server listening on ``host`` and ``port``: websockets' ``serve``.

    Await the result or use it as an async context manager. For every connection, the opening
    handshake runs (``process_request``, upgrade checks, ``origins``, subprotocol selection,
    ``process_response``), then ``handler(connection)`` runs inside ``async with
    connection``: it closes with 1000 when the handler returns, 1011 when it raises (logged
    as "connection handler failed").

    Args:
        handler: Coroutine function receiving the ``ServerConnection``.
        host, port: As for ``loop.create_server``.
        origins: Acceptable Origin headers: ``str`` (exact), compiled regexes (fullmatch),
            ``None`` (no header). Others get 403.
        extensions: Server extension factories: at most one
            ``ServerPerMessageDeflateFactory`` (others raise NotImplementedError).
        subprotocols: Supported subprotocols, in order of preference.
        select_subprotocol: ``(connection, offered) -> subprotocol | None`` replacing the
            default choice; ``NegotiationError`` gives 400, another exception 500.
        compression: ``"deflate"`` (default): permessage-deflate with websockets' server
            defaults (window bits 12/12, memLevel 5) unless ``extensions`` has a factory for
            it; None: only what ``extensions`` configures.
        process_request: ``(connection, request) -> Response | None``, sync or async;
            a Response short-circuits the handshake. An exception gives 500 (logged).
        process_response: ``(connection, request, response) -> Response | None``, sync or
            async; a Response replaces the one about to be sent.
        server_header: Value of the Server header; None removes it.
        open_timeout: Seconds for the opening handshake (and the TLS handshake unless
            ``ssl_handshake_timeout`` is given); None disables it.
        ping_interval, ping_timeout, close_timeout, max_size, max_queue, write_limit: As for
            ``connect``.
        logger: Logger for the server and its connections (``websockets.server``).
        create_connection: ``ServerConnection`` subclass to build connections with.
        **kwargs: Passed to ``loop.create_server`` (``ssl``, ``sock``, ``reuse_port``,
            ``backlog``, ``start_serving``, ...); ``unix=True`` with ``path`` creates a Unix
            socket server.

    Returns:
        The ``Server``.

    Raises:
        ValueError: ``compression`` is neither "deflate" nor None.
        NotImplementedError: ``extensions`` has a factory other than one
            ``ServerPerMessageDeflateFactory``.
    """
    if subprotocols is not None:
        validate_subprotocols(subprotocols)
    if compression == "deflate":
        extensions = enable_server_permessage_deflate(extensions)
    elif compression is not None:
        raise ValueError(f"unsupported compression: {compression}")
    deflate_factory = _deflate_factory(extensions)
    if create_connection is None:
        create_connection = ServerConnection
    if kwargs.get("ssl") is not None:
        kwargs.setdefault("ssl_handshake_timeout", open_timeout)
    unix = kwargs.pop("unix", False)

    def protocol_factory() -> _ServerCoreProtocol:
        protocol = CoreProtocol(Side.SERVER, max_size=max_size, logger=logger)
        connection = create_connection(
            protocol,
            server,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        options = connection.core_options()
        return _ServerCoreProtocol(
            server,
            connection,
            is_client=False,
            listener_factory=lambda request: handshake.start(connection, request),
            logger=_CORE_LOGGER,
            read_buffer_init_size=16 * 1024,
            max_frame_size=options["max_frame_size"],
            validate_utf8=options["validate_utf8"],
            allow_rsv_bits=False,
            enable_auto_pong=options["enable_auto_pong"],
            disconnect_on_exception=options["disconnect_on_exception"],
            close_timeout=options["close_timeout"],
            websocket_handshake_timeout=open_timeout,
            max_head_size=core_handshake.MAX_HEAD_SIZE,
            enable_auto_ping=options["enable_auto_ping"],
            compression=handshake.deflate_config,
        )

    async def create_server() -> asyncio.Server:
        loop = asyncio.get_running_loop()
        if (kwargs.get("ssl") is not None and "ssl_shutdown_timeout" not in kwargs
                and _net.tls_server_takes_shutdown_timeout(loop, unix)):
            # (asyncio's own TLS transports before Python 3.11 have no such parameter: their
            # shutdown keeps asyncio's own timeout.)
            kwargs["ssl_shutdown_timeout"] = close_timeout
        if unix:
            return await loop.create_unix_server(protocol_factory, **kwargs)
        server_kwargs: dict[str, Any] = {"host": host, "port": port, **kwargs}
        return await _net.create_server(None, protocol_factory, **server_kwargs)

    server = Server(create_server, handler, logger)
    handshake = _Handshake(
        server,
        origins=origins,
        subprotocols=subprotocols,
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        process_response=process_response,
        server_header=server_header,
        deflate_factory=deflate_factory,
    )
    server._deflate_settings = (
        None if deflate_factory is None else deflate_factory.compress_settings
    )
    return server


def _deflate_factory(
    extensions: Optional[Sequence[Any]],
) -> Optional[ServerPerMessageDeflateFactory]:
    """The one permessage-deflate factory of ``extensions`` (None: nothing accepted).

    Raises:
        NotImplementedError: another kind of extension factory, or several permessage-deflate
            factories (femtows negotiates with one configuration).
    """
    factories = list(extensions or ())
    for factory in factories:
        if not isinstance(factory, ServerPerMessageDeflateFactory):
            raise NotImplementedError(
                f"femtows.websockets negotiates permessage-deflate only; extension factory "
                f"{factory!r} is not supported"
            )
    if len(factories) > 1:
        raise NotImplementedError(
            "femtows.websockets accepts permessage-deflate with one configuration; got "
            f"{len(factories)} ServerPerMessageDeflateFactory"
        )
    return factories[0] if factories else None


def unix_serve(
    handler: Callable[[ServerConnection], Awaitable[None]],
    path: Union[str, os.PathLike[str], None] = None,
    **kwargs: Any,
) -> Server:
    """``serve`` on a Unix socket at ``path`` (websockets' ``unix_serve``).

    Args:
        handler: As for ``serve``.
        path: File system path of the socket.
        **kwargs: As for ``serve``.

    Returns:
        The ``Server``.
    """
    return serve(handler, unix=True, path=path, **kwargs)


def _is_credentials(value: Any) -> bool:
    try:
        username, password = value
    except (TypeError, ValueError):
        return False
    return isinstance(username, str) and isinstance(password, str)


def basic_auth(
    realm: str = "",
    credentials: Union[Tuple[str, str], Iterable[Tuple[str, str]], None] = None,
    check_credentials: Optional[Callable[[str, str], Union[Awaitable[bool], bool]]] = None,
) -> Callable[[ServerConnection, Request], Awaitable[Optional[Response]]]:
    """A ``process_request`` enforcing HTTP Basic authentication (websockets' ``basic_auth``).

    On success it sets ``connection.username``; otherwise it answers 401 with a
    ``WWW-Authenticate`` header and "Missing credentials", "Unsupported credentials" or
    "Invalid credentials".

    Args:
        realm: Scope of protection (ASCII).
        credentials: A ``(username, password)`` pair or an iterable of pairs; passwords are
            compared in constant time.
        check_credentials: ``(username, password) -> bool``, sync or async.

    Returns:
        The ``process_request`` coroutine function.

    Raises:
        ValueError: Both or neither of ``credentials`` and ``check_credentials`` given.
        TypeError: ``credentials`` is not a pair or an iterable of pairs of str.
    """
    if (credentials is None) == (check_credentials is None):
        raise ValueError("provide either credentials or check_credentials")
    check: Callable[[str, str], Union[Awaitable[bool], bool]]
    if credentials is not None:
        if _is_credentials(credentials):
            pairs = [cast(Tuple[str, str], credentials)]
        elif isinstance(credentials, Iterable):
            pairs = list(cast(Iterable[Tuple[str, str]], credentials))
            if not all(_is_credentials(pair) for pair in pairs):
                raise TypeError(f"invalid credentials argument: {credentials}")
        else:
            raise TypeError(f"invalid credentials argument: {credentials}")
        known = dict(pairs)

        def check_known(username: str, password: str) -> bool:
            expected = known.get(username)
            if expected is None:
                return False
            return hmac.compare_digest(
                expected.encode(errors="surrogateescape"),
                password.encode(errors="surrogateescape"),
            )

        check = check_known
    else:
        assert check_credentials is not None
        check = check_credentials

    def unauthorized(connection: ServerConnection, text: str) -> Response:
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, text)
        response.headers["WWW-Authenticate"] = build_www_authenticate_basic(realm)
        return response

    async def process_request(
        connection: ServerConnection, request: Request
    ) -> Optional[Response]:
        try:
            authorization = request.headers["Authorization"]  # MultipleValuesError: 500
        except KeyError:
            return unauthorized(connection, "Missing credentials\n")
        try:
            username, password = parse_authorization_basic(authorization)
        except InvalidHeader:
            return unauthorized(connection, "Unsupported credentials\n")
        valid = check(username, password)
        if isawaitable(valid):
            valid = await valid
        if not valid:
            return unauthorized(connection, "Invalid credentials\n")
        connection.username = username
        return None

    return process_request
