"""Client side of the Sans-I/O layer (twin of ``websockets.client``, 17.4).

:class:`ClientProtocol` is websockets' Sans-I/O client: :meth:`~ClientProtocol.connect` builds
the opening handshake request, :meth:`~ClientProtocol.send_request` queues it, and the
response is checked as it arrives through ``receive_data()``; frames then go through the
femtows core's engine (see :mod:`femtows.websockets.protocol`).

:func:`process_exception` and :func:`backoff` are the helpers that ``connect()``'s reconnection
loop (``async for ws in connect(...)``) relies on.

The backoff delays come from the environment like websockets:
``WEBSOCKETS_BACKOFF_INITIAL_DELAY`` (5 s), ``WEBSOCKETS_BACKOFF_MIN_DELAY`` (3.1 s),
``WEBSOCKETS_BACKOFF_MAX_DELAY`` (90 s), ``WEBSOCKETS_BACKOFF_FACTOR`` (1.618).
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any, Generator, List, Optional, Sequence, Union

from ..handshake import compute_accept, generate_key
from .datastructures import Headers, MultipleValuesError
from .exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidStatus,
    NegotiationError,
    StatusLineTooLong,
)
from .headers import (
    build_authorization_basic,
    build_extension,
    build_host,
    build_subprotocol,
    check_upgrade_headers,
    parse_extension,
    parse_subprotocol,
)
from .http11 import Request, Response
from .protocol import CLIENT, CONNECTING, OPEN, Protocol, State
from .typing import LoggerLike, Origin, Subprotocol
from .uri import WebSocketURI

__all__ = ["ClientProtocol", "process_exception", "backoff"]


class ClientProtocol(Protocol):
    """Sans-I/O implementation of a WebSocket client connection (websockets 17.4's API).

    Args:
        uri: the target, from :func:`~femtows.websockets.uri.parse_uri`.
        origin: value of the ``Origin`` header, if any.
        extensions: extension factories offered to the server (permessage-deflate: see the
            TODO in :mod:`femtows.websockets.protocol`).
        subprotocols: subprotocols offered, in order of preference.
        state: initial state (``CONNECTING``: the opening handshake happens here).
        max_size: as :class:`~femtows.websockets.protocol.Protocol`.
        logger: defaults to ``logging.getLogger("websockets.client")``.
    """

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        origin: Optional[Origin] = None,
        extensions: Optional[Sequence[Any]] = None,
        subprotocols: Optional[Sequence[Subprotocol]] = None,
        state: State = CONNECTING,
        max_size: Union[tuple[Optional[int], Optional[int]], int, None] = 2**20,
        logger: Optional[LoggerLike] = None,
    ) -> None:
        super().__init__(side=CLIENT, state=state, max_size=max_size, logger=logger)
        self.uri = uri
        self.origin = origin
        self.available_extensions = extensions
        self.available_subprotocols = subprotocols
        self.key = generate_key()

    def connect(self) -> Request:
        """Build the opening handshake request; send it with :meth:`send_request` (it may be
        changed before, e.g. to add headers)."""
        headers = Headers()
        headers["Host"] = build_host(self.uri.host, self.uri.port, self.uri.secure)
        if self.uri.user_info:
            headers["Authorization"] = build_authorization_basic(*self.uri.user_info)
        if self.origin is not None:
            headers["Origin"] = self.origin
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
        headers["Sec-WebSocket-Key"] = self.key
        headers["Sec-WebSocket-Version"] = "13"
        if self.available_extensions is not None:
            headers["Sec-WebSocket-Extensions"] = build_extension(
                [
                    (factory.name, factory.get_request_params())
                    for factory in self.available_extensions
                ]
            )
        if self.available_subprotocols is not None:
            headers["Sec-WebSocket-Protocol"] = build_subprotocol(self.available_subprotocols)
        return Request(self.uri.resource_name, headers)

    def send_request(self, request: Request) -> None:
        """Queue the opening handshake request for :meth:`data_to_send`."""
        if self.debug:
            self.logger.debug("> GET %s HTTP/1.1", request.path)
            for key, value in request.headers.raw_items():
                self.logger.debug("> %s: %s", key, value)
        self.writes.append(request.serialize())

    def process_response(self, response: Response) -> None:
        """Check the handshake response; set :attr:`extensions` and :attr:`subprotocol`.

        Raises:
            InvalidHandshake: the response does not open the connection.
        """
        if response.status_code != 101:
            raise InvalidStatus(response)
        headers = response.headers
        check_upgrade_headers(headers)
        try:
            accept = headers["Sec-WebSocket-Accept"]
        except KeyError:
            raise InvalidHeader("Sec-WebSocket-Accept") from None
        except MultipleValuesError:
            raise InvalidHeader("Sec-WebSocket-Accept", "multiple values") from None
        if accept != compute_accept(self.key):
            raise InvalidHeaderValue("Sec-WebSocket-Accept", accept)
        self.extensions = self.process_extensions(headers)
        self.subprotocol = self.process_subprotocol(headers)

    def process_extensions(self, headers: Headers) -> List[Any]:
        """Accept the extensions the server chose; each must match an offered factory
        (``process_response_params``), in the server's order.

        Raises:
            NegotiationError: an extension was not offered or its parameters are refused.
        """
        accepted: List[Any] = []
        values = headers.get_all("Sec-WebSocket-Extensions")
        if not values:
            return accepted
        if self.available_extensions is None:
            raise NegotiationError("no extensions supported")
        parsed: List[Any] = []
        for value in values:
            parsed.extend(parse_extension(value))
        for name, params in parsed:
            for factory in self.available_extensions:
                if factory.name != name:
                    continue
                try:
                    extension = factory.process_response_params(params, accepted)
                except NegotiationError:
                    continue
                accepted.append(extension)
                break
            else:
                raise NegotiationError(f"Unsupported extension: name = {name}, params = {params}")
        return accepted

    def process_subprotocol(self, headers: Headers) -> Optional[Subprotocol]:
        """Check the subprotocol the server chose, if any (one, and one that was offered)."""
        values = headers.get_all("Sec-WebSocket-Protocol")
        if not values:
            return None
        if self.available_subprotocols is None:
            raise NegotiationError("no subprotocols supported")
        parsed: List[Subprotocol] = []
        for value in values:
            parsed.extend(parse_subprotocol(value))
        if len(parsed) > 1:
            raise InvalidHeader("Sec-WebSocket-Protocol", f"multiple values: {', '.join(parsed)}")
        subprotocol = parsed[0]
        if subprotocol not in self.available_subprotocols:
            raise NegotiationError(f"unsupported subprotocol: {subprotocol}")
        return subprotocol

    def _handshake(self) -> Generator[None, None, None]:
        reader = self._reader
        try:
            response = yield from Response.parse(
                reader.read_line, reader.read_exact, reader.read_to_eof
            )
        except StatusLineTooLong as exc:
            self.handshake_exc = exc
            self.send_eof()
            self._discard()
            return
        except Exception as exc:
            self.handshake_exc = InvalidMessage("did not receive a valid HTTP response")
            self.handshake_exc.__cause__ = exc
            self.send_eof()
            self._discard()
            return
        if self.debug:
            self.logger.debug("< HTTP/1.1 %d %s", response.status_code, response.reason_phrase)
            for key, value in response.headers.raw_items():
                self.logger.debug("< %s: %s", key, value)
            if response.body:
                self.logger.debug("< [body] (%d bytes)", len(response.body))
        try:
            self.process_response(response)
        except InvalidHandshake as exc:
            response._exception = exc
            self.events.append(response)
            self.handshake_exc = exc
            self.send_eof()
            self._discard()
            return
        self.state = OPEN
        self.events.append(response)
        self._start_frames(reader.take())


# Status codes after which trying again may succeed: server or proxy trouble.
_RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


def process_exception(exc: Exception) -> Optional[Exception]:
    """Decide whether a failed connection attempt is worth retrying.

    Used by the reconnection loop ``async for ws in connect(...)`` unless ``connect()`` is
    given its own ``process_exception``. Returns ``None`` to retry (the error is logged at INFO
    level) or an exception to raise, which ends the loop.

    Retried: :exc:`OSError` and :exc:`TimeoutError` (network trouble, including proxy
    connection errors), :exc:`~femtows.websockets.exceptions.InvalidMessage` caused by an
    :exc:`EOFError` (the connection dropped during the handshake), and
    :exc:`~femtows.websockets.exceptions.InvalidStatus` with status 500, 502, 503 or 504.
    Everything else is returned as is (fatal).
    """
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError)):
        return None
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return None
    if isinstance(exc, InvalidStatus) and exc.response.status_code in _RETRYABLE_STATUS:
        return None
    return exc


BACKOFF_INITIAL_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_INITIAL_DELAY", "5"))
BACKOFF_MIN_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_MIN_DELAY", "3.1"))
BACKOFF_MAX_DELAY = float(os.environ.get("WEBSOCKETS_BACKOFF_MAX_DELAY", "90.0"))
BACKOFF_FACTOR = float(os.environ.get("WEBSOCKETS_BACKOFF_FACTOR", "1.618"))


def backoff(
    initial_delay: float = BACKOFF_INITIAL_DELAY,
    min_delay: float = BACKOFF_MIN_DELAY,
    max_delay: float = BACKOFF_MAX_DELAY,
    factor: float = BACKOFF_FACTOR,
) -> Generator[float, None, None]:
    """Yield the delays (seconds) to wait between reconnection attempts, forever.

    First a random delay in ``[0, initial_delay)`` (RFC 6455 §7.2.3: spread reconnections
    after an outage), then ``min_delay`` multiplied by ``factor`` at each attempt while it is
    below ``max_delay``, then ``max_delay`` forever.
    """
    yield random.random() * initial_delay
    delay = min_delay
    while delay < max_delay:
        yield delay
        delay *= factor
    while True:
        yield max_delay
