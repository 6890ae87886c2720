"""The threading-API client: websockets' ``websockets.sync.client`` (17.4).

``connect`` / ``unix_connect`` open a connection (the opening handshake runs on the shared
background loop, through ``femtows.websockets.asyncio.client``); ``reconnect`` /
``unix_reconnect`` reconnect with backoff when iterated.
"""

from __future__ import annotations

import os
import socket
import ssl as ssl_module
import time
import traceback
import warnings
from collections.abc import Generator, Iterator, Sequence
from types import TracebackType
from typing import Any, Callable, Literal, Optional, Tuple, Type, Union, overload

from femtows.websockets.asyncio.client import ClientConnection as AsyncClientConnection
from femtows.websockets.asyncio.client import connect as _async_connect
from femtows.websockets.client import backoff, process_exception
from femtows.websockets.datastructures import HeadersLike
from femtows.websockets.exceptions import InvalidStatus
from femtows.websockets.http11 import USER_AGENT
from femtows.websockets.sync import _loop
from femtows.websockets.sync.connection import Connection
from femtows.websockets.typing import LoggerLike, Origin, Subprotocol

__all__ = ["connect", "unix_connect", "reconnect", "unix_reconnect", "ClientConnection"]

MaxSize = Union[Optional[int], Tuple[Optional[int], Optional[int]]]


class ClientConnection(Connection):
    """A client connection of the threading API (websockets' ``sync.client.ClientConnection``).

    Returned by ``connect``; ``create_connection`` may name a subclass.
    """

    def __init__(self, connection: AsyncClientConnection) -> None:
        super().__init__(connection)
        self.pending_legacy_warning = True

    def __enter__(self) -> ClientConnection:
        self.pending_legacy_warning = False
        return self

    def maybe_raise_legacy_warning(self) -> None:
        """Warn once (DeprecationWarning) when the connection is used without ``with`` and
        ``connect`` was called without ``legacy=True``, as websockets 17.x does."""
        if self.pending_legacy_warning:
            self.pending_legacy_warning = False
            warnings.warn(
                "connect() must be used as a context manager: "
                "with connect(...) as websocket: ...; alternatively, use "
                "websocket = connect(..., legacy=True) to connect directly",
                DeprecationWarning,
                stacklevel=3,
            )


class reconnect:
    """Like ``connect``, reconnecting automatically when iterated (websockets 17.4's
    ``sync.client.reconnect``)::

        for websocket in reconnect(uri):
            try:
                ...
            except ConnectionClosed:
                continue

    Transient errors (``process_exception`` returns None) are retried after the delays of
    ``reconnect_delays`` (exponential backoff by default); others are raised. It is also a
    context manager opening one connection. Takes ``connect``'s arguments except ``legacy``.
    """

    def __init__(
        self,
        uri: str,
        *,
        sock: Optional[socket.socket] = None,
        ssl: Optional[ssl_module.SSLContext] = None,
        server_hostname: Optional[str] = None,
        origin: Optional[Origin] = None,
        extensions: Optional[Sequence[Any]] = None,
        subprotocols: Optional[Sequence[Subprotocol]] = None,
        compression: Optional[str] = "deflate",
        additional_headers: Optional[HeadersLike] = None,
        user_agent_header: Optional[str] = USER_AGENT,
        proxy: Union[str, Literal[True], None] = True,
        proxy_ssl: Optional[ssl_module.SSLContext] = None,
        proxy_server_hostname: Optional[str] = None,
        process_exception: Callable[[Exception], Optional[Exception]] = process_exception,
        open_timeout: Optional[float] = 10,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        reconnect_delays: Callable[[], Generator[float, None, None]] = backoff,
        max_size: MaxSize = 2**20,
        max_queue: MaxSize = 16,
        logger: Optional[LoggerLike] = None,
        create_connection: Optional[Type[ClientConnection]] = None,
        **kwargs: Any,
    ) -> None:
        if ssl is None and "ssl_context" in kwargs:
            ssl = kwargs.pop("ssl_context")
            warnings.warn("ssl_context was renamed to ssl", DeprecationWarning, stacklevel=2)
        # socket.create_connection's keywords, translated for the event loop.
        kwargs.pop("timeout", None)  # open_timeout bounds the whole opening
        if "source_address" in kwargs:
            kwargs["local_addr"] = kwargs.pop("source_address")
        if sock is not None:
            kwargs["sock"] = sock
        if ssl is not None:
            kwargs["ssl"] = ssl
        if server_hostname is not None:
            kwargs["server_hostname"] = server_hostname
        if proxy_ssl is not None:
            kwargs["proxy_ssl"] = proxy_ssl
        if proxy_server_hostname is not None:
            kwargs["proxy_server_hostname"] = proxy_server_hostname
        self._connecter = _async_connect(
            uri,
            origin=origin,
            extensions=extensions,
            subprotocols=subprotocols,
            compression=compression,
            additional_headers=additional_headers,
            user_agent_header=user_agent_header,
            proxy=proxy,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_size=max_size,
            max_queue=max_queue,
            logger=logger,
            **kwargs,
        )
        self.process_exception = process_exception
        self.reconnect_delays = reconnect_delays
        self.logger: LoggerLike = self._connecter.logger
        self.create_connection = ClientConnection if create_connection is None else (
            create_connection
        )

    @property
    def uri(self) -> str:
        """The URI connected to (updated when following a redirect)."""
        return self._connecter.uri

    def connect(self) -> ClientConnection:
        """Open one connection (following redirects, within ``open_timeout``)."""
        try:
            connection: AsyncClientConnection = _loop.run(self._connecter._connect())
        except InvalidStatus as exc:
            # websockets' threading client reads the body of a refusal into a bytearray.
            body = exc.response.body
            if isinstance(body, bytes):
                exc.response.body = bytearray(body)
            raise
        except TimeoutError as exc:
            if str(exc) != "timed out during opening handshake":
                raise
            raise TimeoutError("timed out while waiting for handshake response") from None
        except OSError as exc:
            # socket.create_connection's error ("[Errno 111] Connection refused"), not the
            # event loop's ("Connect call failed ('127.0.0.1', 1)").
            if exc.errno is None or exc.strerror == os.strerror(exc.errno):
                raise
            raise type(exc)(exc.errno, os.strerror(exc.errno)) from None
        sync = self.create_connection(connection)
        if sync._direct is None:
            # Decide on direct sends and reads now (a server connection decides at its first
            # send): a client that only receives reads its socket itself too.
            _loop.call(sync._init_direct)
        return sync

    def __enter__(self) -> ClientConnection:
        if hasattr(self, "connection"):
            raise RuntimeError("connect() isn't reentrant")
        self.connection = self.connect()
        self.connection.pending_legacy_warning = False
        return self.connection.__enter__()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        try:
            self.connection.__exit__(exc_type, exc_value, traceback)
        finally:
            del self.connection

    def __iter__(self) -> Iterator[ClientConnection]:
        delays: Optional[Generator[float, None, None]] = None
        while True:
            try:
                with self as connection:
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
                time.sleep(delay)
            else:
                delays = None


@overload
def connect(uri: str, *, legacy: Literal[False], **kwargs: Any) -> reconnect: ...


@overload
def connect(
    uri: str, *, legacy: Optional[Literal[True]] = None, **kwargs: Any
) -> ClientConnection: ...


def connect(
    uri: str,
    *,
    sock: Optional[socket.socket] = None,
    ssl: Optional[ssl_module.SSLContext] = None,
    server_hostname: Optional[str] = None,
    origin: Optional[Origin] = None,
    extensions: Optional[Sequence[Any]] = None,
    subprotocols: Optional[Sequence[Subprotocol]] = None,
    compression: Optional[str] = "deflate",
    additional_headers: Optional[HeadersLike] = None,
    user_agent_header: Optional[str] = USER_AGENT,
    proxy: Union[str, Literal[True], None] = True,
    proxy_ssl: Optional[ssl_module.SSLContext] = None,
    proxy_server_hostname: Optional[str] = None,
    open_timeout: Optional[float] = 10,
    ping_interval: Optional[float] = 20,
    ping_timeout: Optional[float] = 20,
    close_timeout: Optional[float] = 10,
    max_size: MaxSize = 2**20,
    max_queue: MaxSize = 16,
    logger: Optional[LoggerLike] = None,
    create_connection: Optional[Type[ClientConnection]] = None,
    legacy: Optional[bool] = None,
    **kwargs: Any,
) -> Union[ClientConnection, reconnect]:
    """Connect to the WebSocket server at ``uri`` (websockets' ``sync.client.connect``).

    Use it as a context manager: ``with connect(uri) as websocket: ...``. Called directly
    it returns the connection, and the first use of the connection raises a
    DeprecationWarning unless ``legacy=True``; ``legacy=False`` returns a ``reconnect``.

    Args:
        uri: ``ws://`` or ``wss://`` URI.
        sock: A connected socket to use instead of opening one.
        ssl: ``ssl.SSLContext`` for ``wss://``.
        server_hostname: Host name for TLS (SNI and certificate check).
        origin, extensions, subprotocols, compression, additional_headers,
            user_agent_header, proxy, proxy_ssl, proxy_server_hostname: As for
            ``femtows.websockets.asyncio.client.connect``.
        open_timeout: Seconds for opening the connection and the handshake.
        ping_interval, ping_timeout, close_timeout, max_size, max_queue: As for the asyncio
            ``connect`` (``close_timeout`` also bounds ``close()``).
        logger: Logger (default ``websockets.client``).
        create_connection: A ``ClientConnection`` subclass.
        legacy: See above.
        **kwargs: ``socket.create_connection`` keywords (``source_address``; ``timeout`` is
            covered by ``open_timeout``); ``unix=True`` / ``path`` for Unix sockets.

    Raises:
        InvalidURI, InvalidHandshake, TimeoutError, OSError: as websockets.
    """
    connecter = reconnect(
        uri,
        sock=sock,
        ssl=ssl,
        server_hostname=server_hostname,
        origin=origin,
        extensions=extensions,
        subprotocols=subprotocols,
        compression=compression,
        additional_headers=additional_headers,
        user_agent_header=user_agent_header,
        proxy=proxy,
        proxy_ssl=proxy_ssl,
        proxy_server_hostname=proxy_server_hostname,
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        max_size=max_size,
        max_queue=max_queue,
        logger=logger,
        create_connection=create_connection,
        **kwargs,
    )
    if legacy is False:
        return connecter
    connection = connecter.connect()
    if legacy:
        connection.pending_legacy_warning = False
    return connection


def unix_reconnect(
    path: Union[str, os.PathLike[str], None] = None,
    uri: Optional[str] = None,
    **kwargs: Any,
) -> reconnect:
    """``reconnect`` over a Unix socket at ``path``; ``uri`` defaults to ``ws://localhost/``
    (``wss://localhost/`` with ``ssl``)."""
    if uri is None:
        uri = "ws://localhost/" if kwargs.get("ssl") is None else "wss://localhost/"
    return reconnect(uri=uri, unix=True, path=path, **kwargs)


def unix_connect(
    path: Union[str, os.PathLike[str], None] = None,
    uri: Optional[str] = None,
    *,
    legacy: Optional[bool] = None,
    **kwargs: Any,
) -> Union[ClientConnection, reconnect]:
    """``connect`` over a Unix socket at ``path``; ``uri`` defaults to ``ws://localhost/``
    (``wss://localhost/`` with ``ssl``)."""
    connecter = unix_reconnect(path, uri, **kwargs)
    if legacy is False:
        return connecter
    connection = connecter.connect()
    if legacy:
        connection.pending_legacy_warning = False
    return connection
