"""Server side of the Sans-I/O layer (twin of ``websockets.server``, 17.4).

:class:`ServerProtocol` is websockets' Sans-I/O server: the opening handshake request arrives
through ``receive_data()`` as a :class:`~.http11.Request` event, :meth:`~ServerProtocol.accept`
(or :meth:`~ServerProtocol.reject`) builds the response and
:meth:`~ServerProtocol.send_response` queues it; frames go through the femtows core's engine
(see :mod:`femtows.websockets.protocol`). The asyncio server is
:mod:`femtows.websockets.asyncio.server`.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import http
import re
from typing import Any, Callable, Generator, List, Optional, Sequence, Tuple, Union, cast

from ..handshake import compute_accept
from .datastructures import Headers, MultipleValuesError
from .exceptions import (
    HeaderLineTooLong,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidMethod,
    InvalidOrigin,
    InvalidProtocol,
    InvalidUpgrade,
    NegotiationError,
    RequestLineTooLong,
    TooManyHeaders,
)
from .headers import (
    build_extension,
    check_upgrade_headers,
    parse_extension,
    parse_subprotocol,
)
from .http11 import Request, Response
from .protocol import CONNECTING, OPEN, SERVER, Protocol, State
from .typing import LoggerLike, Origin, StatusLike, Subprotocol

__all__ = ["ServerProtocol"]

_BROWSER_TEXT = (
    "\nYou cannot access a WebSocket server directly with a browser. You need a WebSocket client.\n"
)


class ServerProtocol(Protocol):
    """Sans-I/O implementation of a WebSocket server connection (websockets 17.4's API).

    Args:
        origins: acceptable ``Origin`` values (``None`` in the list: no header; compiled
            regular expressions match with ``fullmatch``); ``None`` accepts any.
        extensions: extension factories the server supports (permessage-deflate: see the
            TODO in :mod:`femtows.websockets.protocol`).
        subprotocols: supported subprotocols, in order of preference.
        select_subprotocol: ``select_subprotocol(protocol, offered)`` replacing the default
            choice (:meth:`select_subprotocol`).
        state: initial state (``CONNECTING``: the opening handshake happens here).
        max_size: as :class:`~femtows.websockets.protocol.Protocol`.
        logger: defaults to ``logging.getLogger("websockets.server")``.
    """

    def __init__(
        self,
        *,
        origins: Optional[Sequence[Union[Origin, re.Pattern[str], None]]] = None,
        extensions: Optional[Sequence[Any]] = None,
        subprotocols: Optional[Sequence[Subprotocol]] = None,
        select_subprotocol: Optional[
            Callable[[ServerProtocol, Sequence[Subprotocol]], Optional[Subprotocol]]
        ] = None,
        state: State = CONNECTING,
        max_size: Union[Tuple[Optional[int], Optional[int]], int, None] = 2**20,
        logger: Optional[LoggerLike] = None,
    ) -> None:
        super().__init__(side=SERVER, state=state, max_size=max_size, logger=logger)
        self.origins = origins
        self.available_extensions = extensions
        self.available_subprotocols = subprotocols
        if select_subprotocol is not None:
            # Bound like a method: select_subprotocol(self, offered).
            self.select_subprotocol = select_subprotocol.__get__(self, type(self))  # type: ignore[method-assign]
        self.accept_called = False

    def accept(self, request: Request) -> Response:
        """Build the response to the opening handshake ``request``: 101 when it is valid,
        else an error response (403, 405, 426, 505, 400, or 500 if a hook raised) with
        :attr:`handshake_exc` set. Send it with :meth:`send_response`."""
        self.accept_called = True
        try:
            accept_header, extensions_header, protocol_header = self.process_request(request)
        except InvalidOrigin as exc:
            return self._refuse(request, exc, http.HTTPStatus.FORBIDDEN, "invalid origin")
        except InvalidMethod as exc:
            response = self._refuse(
                request, exc, http.HTTPStatus.METHOD_NOT_ALLOWED, "invalid method"
            )
            response.headers["Allow"] = "GET"
            return response
        except InvalidProtocol as exc:
            return self._refuse(
                request, exc, http.HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "invalid protocol"
            )
        except InvalidUpgrade as exc:
            response = self._refuse(
                request, exc, http.HTTPStatus.UPGRADE_REQUIRED, "invalid upgrade", _BROWSER_TEXT
            )
            response.headers["Upgrade"] = "websocket"
            return response
        except InvalidHandshake as exc:
            text = str(exc)
            cause: Optional[BaseException] = exc.__cause__
            while cause is not None:
                text += f"; {cause}"
                cause = cause.__cause__
            request._exception = exc
            self.handshake_exc = exc
            if self.debug:
                self.logger.debug("! invalid handshake", exc_info=True)
            return self.reject(
                http.HTTPStatus.BAD_REQUEST, f"Failed to open a WebSocket connection: {text}.\n"
            )
        except Exception as exc:
            request._exception = exc
            self.handshake_exc = exc
            self.logger.error("opening handshake failed", exc_info=True)
            return self.reject(
                http.HTTPStatus.INTERNAL_SERVER_ERROR,
                "Failed to open a WebSocket connection.\nSee server log for more information.\n",
            )
        headers = Headers()
        headers["Date"] = email.utils.formatdate(usegmt=True)
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
        headers["Sec-WebSocket-Accept"] = accept_header
        if extensions_header is not None:
            headers["Sec-WebSocket-Extensions"] = extensions_header
        if protocol_header is not None:
            headers["Sec-WebSocket-Protocol"] = protocol_header
        return Response(101, "Switching Protocols", headers)

    def _refuse(
        self, request: Request, exc: Exception, status: http.HTTPStatus, what: str, more: str = ""
    ) -> Response:
        request._exception = exc
        self.handshake_exc = exc
        if self.debug:
            self.logger.debug("! %s", what, exc_info=True)
        return self.reject(status, f"Failed to open a WebSocket connection: {exc}.\n{more}")

    def process_request(self, request: Request) -> Tuple[str, Optional[str], Optional[str]]:
        """Check the opening handshake request; return the ``Sec-WebSocket-Accept``,
        ``Sec-WebSocket-Extensions`` and ``Sec-WebSocket-Protocol`` response values.

        Raises:
            InvalidHandshake: the request is not a valid WebSocket upgrade.
        """
        if request.method != "GET":
            raise InvalidMethod(request.method)
        if request.protocol != "HTTP/1.1":
            raise InvalidProtocol(request.protocol)
        headers = request.headers
        check_upgrade_headers(headers)
        try:
            key = headers["Sec-WebSocket-Key"]
        except KeyError:
            raise InvalidHeader("Sec-WebSocket-Key") from None
        except MultipleValuesError:
            raise InvalidHeader("Sec-WebSocket-Key", "multiple values") from None
        try:
            raw_key = base64.b64decode(key.encode(), validate=True)
        except binascii.Error as exc:
            raise InvalidHeaderValue("Sec-WebSocket-Key", key) from exc
        if len(raw_key) != 16:
            raise InvalidHeaderValue("Sec-WebSocket-Key", key)
        accept_header = compute_accept(key)
        try:
            version = headers["Sec-WebSocket-Version"]
        except KeyError:
            raise InvalidHeader("Sec-WebSocket-Version") from None
        except MultipleValuesError:
            raise InvalidHeader("Sec-WebSocket-Version", "multiple values") from None
        if version != "13":
            raise InvalidHeaderValue("Sec-WebSocket-Version", version)
        self.origin = self.process_origin(headers)
        extensions_header, self.extensions = self.process_extensions(headers)
        protocol_header = self.subprotocol = self.process_subprotocol(headers)
        return accept_header, extensions_header, protocol_header

    def process_origin(self, headers: Headers) -> Optional[Origin]:
        """Check the ``Origin`` header against :attr:`origins`.

        Raises:
            InvalidHeader: several Origin headers.
            InvalidOrigin: the origin is not acceptable.
        """
        try:
            origin = cast(Optional[Origin], headers.get("Origin"))
        except MultipleValuesError:
            raise InvalidHeader("Origin", "multiple values") from None
        if self.origins is not None:
            for allowed in self.origins:
                if allowed == origin:
                    break
                if isinstance(allowed, re.Pattern) and origin is not None:
                    if allowed.fullmatch(origin) is not None:
                        break
            else:
                raise InvalidOrigin(origin)
        return origin

    def process_extensions(self, headers: Headers) -> Tuple[Optional[str], List[Any]]:
        """Accept, in the client's order, the offered extensions a factory of
        :attr:`available_extensions` agrees to (``process_request_params``); return the
        ``Sec-WebSocket-Extensions`` response value and the extensions. Offers no factory
        accepts are ignored."""
        values = headers.get_all("Sec-WebSocket-Extensions")
        accepted: List[Any] = []
        answers: List[Any] = []
        if values and self.available_extensions:
            parsed: List[Any] = []
            for value in values:
                parsed.extend(parse_extension(value))
            for name, params in parsed:
                for factory in self.available_extensions:
                    if factory.name != name:
                        continue
                    try:
                        response_params, extension = factory.process_request_params(
                            params, accepted
                        )
                    except NegotiationError:
                        continue
                    answers.append((name, response_params))
                    accepted.append(extension)
                    break
        return (build_extension(answers) if answers else None), accepted

    def process_subprotocol(self, headers: Headers) -> Optional[Subprotocol]:
        """Collect the offered subprotocols and let :meth:`select_subprotocol` choose."""
        offered: List[Subprotocol] = []
        for value in headers.get_all("Sec-WebSocket-Protocol"):
            offered.extend(parse_subprotocol(value))
        return self.select_subprotocol(offered)

    def select_subprotocol(self, subprotocols: Sequence[Subprotocol]) -> Optional[Subprotocol]:
        """Pick the first of :attr:`available_subprotocols` the client offered.

        Returns ``None`` when the server has no subprotocols.

        Raises:
            NegotiationError: the client offered none, or none that the server supports.
        """
        if not self.available_subprotocols:
            return None
        if not subprotocols:
            raise NegotiationError("missing subprotocol")
        offered = set(subprotocols)
        for subprotocol in self.available_subprotocols:
            if subprotocol in offered:
                return subprotocol
        raise NegotiationError(
            "invalid subprotocol; expected one of " + ", ".join(self.available_subprotocols)
        )

    def reject(self, status: StatusLike, text: str) -> Response:
        """Build a plain-text error response (send it with :meth:`send_response`)."""
        status = http.HTTPStatus(status)
        body = text.encode()
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(body))),
                ("Content-Type", "text/plain; charset=utf-8"),
            ]
        )
        return Response(status.value, status.phrase, headers, body)

    def send_response(self, response: Response) -> None:
        """Queue the handshake response: 101 opens the connection, anything else half-closes
        it and ignores what arrives afterwards."""
        if self.debug:
            self.logger.debug("> HTTP/1.1 %d %s", response.status_code, response.reason_phrase)
            for key, value in response.headers.raw_items():
                self.logger.debug("> %s: %s", key, value)
            if response.body:
                self.logger.debug("> [body] (%d bytes)", len(response.body))
        self.writes.append(response.serialize())
        if response.status_code == 101:
            assert self._state is CONNECTING
            self._run_extensions_in_core()
            self.state = OPEN
            self.logger.info("connection open")
        else:
            self.logger.info(
                "connection rejected (%d %s)"
                if self.accept_called
                else "HTTP response sent (%d %s)",
                response.status_code,
                response.reason_phrase,
            )
            self.send_eof()
            self._discard()

    def _handshake(self) -> Generator[None, None, None]:
        reader = self._reader
        try:
            request = yield from Request.parse(reader.read_line)
        except RequestLineTooLong as exc:
            self.handshake_exc = exc
            if self.debug:
                self.logger.debug("! request line too long", exc_info=True)
            self.send_response(
                self.reject(
                    http.HTTPStatus.REQUEST_URI_TOO_LONG,
                    f"Failed to open a WebSocket connection: {exc}.\n",
                )
            )
            return
        except (HeaderLineTooLong, TooManyHeaders) as exc:
            self.handshake_exc = exc
            if self.debug:
                self.logger.debug("! header fields too large", exc_info=True)
            self.send_response(
                self.reject(
                    http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"Failed to open a WebSocket connection: {exc}.\n",
                )
            )
            return
        except Exception as exc:
            self.handshake_exc = InvalidMessage("did not receive a valid HTTP request")
            if self.debug:
                self.logger.debug("! no valid HTTP request", exc_info=True)
            self.handshake_exc.__cause__ = exc
            self.send_eof()
            self._discard()
            return
        if self.debug:
            self.logger.debug("< %s %s %s", request.method, request.path, request.protocol)
            for key, value in request.headers.raw_items():
                self.logger.debug("< %s: %s", key, value)
        self.events.append(request)
        # Like websockets, frames are parsed from here on, even before the response is sent.
        self._start_frames(reader.take())
