"""The threading-API server: websockets' ``websockets.sync.server`` (17.4).

``serve`` binds the listening socket in the calling thread; ``Server.serve_forever`` starts
accepting. The HTTP handshake and the WebSocket protocol run on the shared background loop
(``femtows.websockets.asyncio.server``); each connection's handler runs in its own thread,
as in websockets. ``process_request`` / ``select_subprotocol`` / ``process_response`` are
plain functions run on the loop thread during the handshake: they must not block.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl as ssl_module
import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Callable, Optional, Tuple, Type, Union

from femtows.websockets.asyncio import server as _aserver
from femtows.websockets.asyncio.connection import CoreProtocol
from femtows.websockets.frames import CloseCode
from femtows.websockets.http11 import SERVER, Request, Response
from femtows.websockets.sync import _loop
from femtows.websockets.sync.connection import Connection, broadcast
from femtows.websockets.typing import LoggerLike, Origin, StatusLike, Subprotocol
from femtows.websockets.utils import get_socket_name

__all__ = ["serve", "unix_serve", "ServerConnection", "Server", "basic_auth", "broadcast"]

MaxSize = Union[Optional[int], Tuple[Optional[int], Optional[int]]]


class ServerConnection(Connection):
    """A server-side connection of the threading API, handed to the handler (websockets'
    ``sync.server.ServerConnection``).

    Attributes:
        server: The ``Server``.
        username: Set by ``basic_auth`` once the client authenticated.
    """

    def __init__(self, connection: _aserver.ServerConnection, server: Server) -> None:
        super().__init__(connection)
        self.server = server
        self.username: str

    def respond(self, status: StatusLike, text: str) -> Response:
        """A plain-text HTTP response for ``process_request`` to return (see the asyncio
        ``ServerConnection.respond``)."""
        return self._conn.respond(status, text)  # type: ignore[attr-defined, no-any-return]


class Server:
    """A WebSocket server of the threading API, as returned by ``serve`` (websockets'
    ``sync.server.Server``, after ``socketserver.BaseServer``).

    Attributes:
        socket: The listening socket.
        logger: The server's logger.
    """

    def __init__(self, sock: socket.socket, server: _aserver.Server, logger: LoggerLike) -> None:
        self.socket = sock
        self.logger = logger
        self._server = server
        self._closed = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    @property
    def connections(self) -> set[ServerConnection]:
        """Connections that completed the opening handshake and are still OPEN."""
        return {connection._sync for connection in self._server.connections}  # type: ignore

    def serve_forever(self) -> None:
        """Accept connections until ``shutdown`` is called (from another thread)."""
        if self._closed.is_set():
            return
        try:
            name = get_socket_name(self.socket)
        except (OSError, ValueError):  # shutdown() ran first
            return
        _loop.run(self._server.start_serving())
        self.logger.info("server listening on %s", name)
        self._closed.wait()

    def shutdown(
        self,
        close_connections: bool = True,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
    ) -> None:
        """Stop accepting connections; with ``close_connections`` close open ones with
        ``code`` / ``reason`` (connections still in the handshake get 503); wait until all
        handlers have returned. Idempotent."""
        with self._shutdown_lock:
            first = not self._shut_down
            self._shut_down = True
        if first:
            _loop.call(self._server.close, close_connections, code, reason)
        try:
            _loop.run(self._server.wait_closed())
        finally:
            self._closed.set()

    def fileno(self) -> int:
        """File descriptor of the listening socket."""
        return self.socket.fileno()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.shutdown()


def serve(
    handler: Callable[[ServerConnection], None],
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    sock: Optional[socket.socket] = None,
    ssl: Optional[ssl_module.SSLContext] = None,
    origins: Optional[Sequence[Union[Origin, Any, None]]] = None,
    extensions: Optional[Sequence[Any]] = None,
    subprotocols: Optional[Sequence[Subprotocol]] = None,
    select_subprotocol: Optional[
        Callable[[ServerConnection, Sequence[Subprotocol]], Optional[Subprotocol]]
    ] = None,
    compression: Optional[str] = "deflate",
    process_request: Optional[
        Callable[[ServerConnection, Request], Optional[Response]]
    ] = None,
    process_response: Optional[
        Callable[[ServerConnection, Request, Response], Optional[Response]]
    ] = None,
    server_header: Optional[str] = SERVER,
    open_timeout: Optional[float] = 10,
    ping_interval: Optional[float] = 20,
    ping_timeout: Optional[float] = 20,
    close_timeout: Optional[float] = 10,
    max_size: MaxSize = 2**20,
    max_queue: MaxSize = 16,
    logger: Optional[LoggerLike] = None,
    create_connection: Optional[Type[ServerConnection]] = None,
    **kwargs: Any,
) -> Server:
    """Create a WebSocket server listening on ``host`` and ``port`` (websockets'
    ``sync.server.serve``)::

        with serve(handler, "localhost", 8765) as server:
            server.serve_forever()

    ``handler(connection)`` runs in a thread per connection; the connection is closed with
    1000 when it returns, 1011 when it raises ("connection handler failed" is logged).

    Args:
        handler: Function receiving the ``ServerConnection``.
        host, port: Address to listen on (``socket.create_server``).
        sock: A listening socket to use instead (then no ``host`` / ``port``).
        ssl: ``ssl.SSLContext`` to serve TLS.
        origins, extensions, subprotocols, compression, server_header, open_timeout,
            ping_interval, ping_timeout, close_timeout, max_size, max_queue: As for the
            asyncio ``serve``.
        select_subprotocol: ``(connection, offered) -> subprotocol | None``.
        process_request: ``(connection, request) -> Response | None``, a plain function.
        process_response: ``(connection, request, response) -> Response | None``.
        logger: Logger (default ``websockets.server``).
        create_connection: A ``ServerConnection`` subclass.
        **kwargs: ``socket.create_server`` keywords (``backlog``, ``reuse_port``,
            ``family``, ``dualstack_ipv6``).

    Raises:
        OSError: The address cannot be bound.
        ValueError: Bad combination of arguments, or unsupported ``compression``.
    """
    if compression not in ("deflate", None):
        raise ValueError(f"unsupported compression: {compression}")
    if create_connection is None:
        create_connection = ServerConnection
    unix: bool = kwargs.pop("unix", False)
    path: Any = kwargs.pop("path", None)
    if sock is None:
        if unix:
            if path is None:
                raise ValueError("missing path argument")
            kwargs.setdefault("family", socket.AF_UNIX)
            sock = socket.create_server(os.fspath(path), **kwargs)
        else:
            sock = socket.create_server((host, port), **kwargs)
    else:
        if host is not None:
            raise ValueError("host is incompatible with sock")
        if port is not None:
            raise ValueError("port is incompatible with sock")
        if path is not None:
            raise ValueError("path is incompatible with sock")
    cls = create_connection
    sync_server: Server

    def make_connection(
        protocol: CoreProtocol, server: _aserver.Server, **options: Any
    ) -> _aserver.ServerConnection:
        options.pop("write_limit", None)
        connection = _aserver.ServerConnection(protocol, server, **options)
        cls(connection, sync_server)
        return connection

    async def run_handler(connection: _aserver.ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def report(exc: Optional[BaseException]) -> None:
            if done.done():
                return
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        def target() -> None:
            try:
                handler(connection._sync)  # type: ignore[attr-defined]
            except BaseException as exc:
                loop.call_soon_threadsafe(report, exc)
            else:
                loop.call_soon_threadsafe(report, None)

        # Not a daemon, as in websockets: a running handler keeps the process alive.
        threading.Thread(
            target=target, name="femtows.websockets.sync handler", daemon=False
        ).start()
        await asyncio.shield(done)

    hooks: dict[str, Any] = {}
    if process_request is not None:
        user_request = process_request

        def async_process_request(
            connection: _aserver.ServerConnection, request: Request
        ) -> Optional[Response]:
            return user_request(connection._sync, request)  # type: ignore[attr-defined]

        hooks["process_request"] = async_process_request
    if process_response is not None:
        user_response = process_response

        def async_process_response(
            connection: _aserver.ServerConnection, request: Request, response: Response
        ) -> Optional[Response]:
            return user_response(connection._sync, request, response)  # type: ignore

        hooks["process_response"] = async_process_response
    if select_subprotocol is not None:
        user_select = select_subprotocol

        def async_select(
            connection: _aserver.ServerConnection, offered: Sequence[Subprotocol]
        ) -> Optional[Subprotocol]:
            return user_select(connection._sync, offered)  # type: ignore[attr-defined]

        hooks["select_subprotocol"] = async_select
    listening = sock

    async def create() -> _aserver.Server:
        return await _aserver.serve(
            run_handler,
            sock=listening,
            ssl=ssl,
            origins=origins,
            extensions=extensions,
            subprotocols=subprotocols,
            compression=compression,
            server_header=server_header,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_size=max_size,
            max_queue=max_queue,
            logger=logger,
            create_connection=make_connection,  # type: ignore[arg-type]
            start_serving=False,
            **hooks,
        )

    try:
        async_server = _loop.run(create())
    except BaseException:
        sock.close()
        raise
    sync_server = Server(sock, async_server, async_server.logger)
    return sync_server


def unix_serve(
    handler: Callable[[ServerConnection], None],
    path: Union[str, os.PathLike[str], None] = None,
    **kwargs: Any,
) -> Server:
    """``serve`` on a Unix socket at ``path`` (websockets' ``sync.server.unix_serve``)."""
    return serve(handler, unix=True, path=path, **kwargs)


def basic_auth(
    realm: str = "",
    credentials: Union[Tuple[str, str], Iterable[Tuple[str, str]], None] = None,
    check_credentials: Optional[Callable[[str, str], bool]] = None,
) -> Callable[[ServerConnection, Request], Optional[Response]]:
    """A ``process_request`` enforcing HTTP Basic authentication (websockets'
    ``sync.server.basic_auth``); on success it sets ``connection.username``, otherwise it
    answers 401 ("Missing credentials", "Unsupported credentials", "Invalid credentials").

    Args:
        realm: Scope of protection (ASCII).
        credentials: A ``(username, password)`` pair or an iterable of pairs.
        check_credentials: ``(username, password) -> bool``, a plain function.

    Raises:
        ValueError: Both or neither of ``credentials`` and ``check_credentials`` given.
        TypeError: ``credentials`` is not a pair or an iterable of pairs of str.
    """
    check = _aserver.basic_auth(realm, credentials, check_credentials)

    def process_request(connection: ServerConnection, request: Request) -> Optional[Response]:
        # The asyncio version never suspends with a plain check_credentials: run it to the end.
        coroutine: Any = check(connection, request)  # type: ignore[arg-type]
        try:
            coroutine.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        coroutine.close()
        raise TypeError("check_credentials must return a bool, not an awaitable")

    return process_request

