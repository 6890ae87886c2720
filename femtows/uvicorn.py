"""A uvicorn WebSocket protocol on the femtows engine.

Serve any ASGI application (FastAPI, Starlette, ...) with femtows's WebSocket implementation::

    uvicorn.run(app, ws=FemtowsProtocol)
    uvicorn.Config(app, ws="femtows.uvicorn:FemtowsProtocol")
    $ uvicorn app:app --ws femtows.uvicorn:FemtowsProtocol

uvicorn's HTTP protocol parses the request and, on ``Upgrade: websocket``, hands the transport
to :class:`FemtowsProtocol`. The ASGI application is run while this class owns the transport;
when it accepts, the connection is handed to femtows's core protocol (the Cython parser and
sender), which answers 101 and from then on drives every frame. See docs/uvicorn.md.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from http import HTTPStatus
from typing import Any, Optional, Union, cast
from urllib.parse import unquote

try:
    from uvicorn.config import Config
    from uvicorn.logging import TRACE_LOG_LEVEL
    from uvicorn.protocols.utils import (
        ClientDisconnected,
        get_client_addr,
        get_local_addr,
        get_path_with_query_string,
        get_remote_addr,
        is_ssl,
    )
    from uvicorn.server import ServerState
except ImportError as exc:  # uvicorn is an optional dependency
    raise ImportError(
        "femtows.uvicorn needs uvicorn: pip install 'femtows[uvicorn]'"
    ) from exc

from femtows import handshake
from femtows._core.core import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSMsgType,
    WSProtocol,
    WSTransport,
)
from femtows._uvicorn_engine import _CLOSED, _CONNECTING, _OPEN, _RESPONDING, Engine, Listener
from femtows.logs import connection_logger_factory

__all__ = ["FemtowsProtocol"]

Message = dict[str, Any]

# Bytes a client may send between its upgrade request and the application's decision (it
# should send none: frames before the 101 are not allowed; a few are tolerated and replayed).
_MAX_EARLY_DATA = 64 * 1024
# uvicorn's own implementations wait this long for the peer's CLOSE reply.
_CLOSE_TIMEOUT = 10.0

_new_core_logger = connection_logger_factory("uvicorn", "server")
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE


def _feed(protocol: asyncio.BufferedProtocol, data: Union[bytes, bytearray]) -> None:
    """Hand ``data`` to a buffered protocol as if the transport had read it."""
    view = memoryview(data)
    while view:
        buf = memoryview(protocol.get_buffer(len(view)))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _header_str(value: bytes) -> str:
    # ASGI header bytes -> the str femtows's response builder takes; latin-1 is lossless and
    # the builder encodes back with UTF-8 + surrogateescape, so keep ASCII as the common case.
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return value.decode("utf-8", "surrogateescape")


class FemtowsProtocol(Engine, asyncio.Protocol):
    """uvicorn's WebSocket protocol class, on the femtows core.

    Pass the class (not an instance) to uvicorn: ``uvicorn.run(app, ws=FemtowsProtocol)``,
    ``Config(ws=FemtowsProtocol)``, or ``--ws femtows.uvicorn:FemtowsProtocol`` on the command
    line. uvicorn creates one per upgrade request. The uvicorn settings it honours:

    * ``ws_max_size``: largest message (and frame); larger ones close the connection with 1009.
    * ``ws_max_queue``: received messages buffered for the app; when full, reading pauses.
    * ``ws_ping_interval`` / ``ws_ping_timeout``: femtows's auto-ping (a ping when the client
      has been silent for the interval; no pong within the timeout: CLOSE 1001).
    * ``ws_per_message_deflate`` (default True, as uvicorn): permessage-deflate is accepted
      when the client offers it, with the parameters the client asks for (uvicorn's
      websockets implementation's ``ServerPerMessageDeflateFactory()``); False: never.
    * ``root_path``, ``proxy_headers`` / ``forwarded_allow_ips`` (uvicorn's middleware), and
      graceful shutdown (CLOSE 1012 to open connections).

    Args:
        config: uvicorn's Config.
        server_state: uvicorn's shared server state (connections, tasks, default headers).
        app_state: the lifespan state, copied into each scope's ``state``.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.root_path = config.root_path
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        self.max_size = int(config.ws_max_size)
        self.max_queue = max(1, int(config.ws_max_queue))

        self.transport = None  # type: ignore[assignment]
        self.server: Optional[tuple[str, Optional[int]]] = None
        self.client: Optional[tuple[str, int]] = None
        self.scheme = "ws"
        self.scope: dict[str, Any] = {}

        self._state = _CONNECTING
        self._buffer = bytearray()
        self._request: Optional[handshake.WSUpgradeRequest] = None
        self._ws = None
        self._queue = collections.deque([{"type": "websocket.connect"}])
        self._waiter = None
        self._disconnect = None
        self._read_paused = False
        self._writable = None  # set while writing is paused
        self._lost = False
        self._app_closed = False
        self._opened = False  # "connection open" / "rejected" logged, "closed" still due
        self._response: Optional[tuple[int, list[tuple[str, str]], bytearray]] = None
        self._fragments: Optional[bytearray] = None  # a fragmented message being received
        self._fragments_text = False

    # -- asyncio protocol (until the app accepts) ------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """uvicorn hands over the transport of the upgrade request."""
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.connections.add(cast(Any, self))  # uvicorn types the set with its own classes
        self.transport = transport
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "wss" if is_ssl(transport) else "ws"
        if self.logger.isEnabledFor(TRACE_LOG_LEVEL):
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection made", self._log_prefix())

    def data_received(self, data: bytes) -> None:
        """The upgrade request (replayed by uvicorn), or early data before the app accepts."""
        self._buffer += data
        if self._request is None and self._state == _CONNECTING:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > handshake.MAX_HEAD_SIZE:
                    self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                                 "Request header too large")
                return
            self._handle_request(bytes(self._buffer[: end + 4]))
        elif len(self._buffer) > _MAX_EARLY_DATA:
            self.logger.warning("%sWebSocket client sent %d bytes before the handshake was "
                                "answered; closing", self._log_prefix(), len(self._buffer))
            self._buffer.clear()
            self.transport.abort()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        """The connection ended before the app accepted it."""
        self._lost = True
        self._deliver_disconnect(1006, "")
        self._forget()
        self.resume_writing()

    def eof_received(self) -> Optional[bool]:
        """The client half-closed before the app answered: let the transport close."""
        return None

    def shutdown(self) -> None:
        """uvicorn is shutting down: CLOSE 1012 to an open connection, 500 to a pending one."""
        ws = self._ws
        if self._state == _OPEN and ws is not None:
            if not ws.is_close_frame_sent and not ws.is_disconnected:
                self._deliver_disconnect(1012, "")
                ws.send_close(WSCloseCode.SERVICE_RESTART)
            return
        if self._state == _CONNECTING:
            self._write_response(500, [], b"Internal Server Error")
        if not self._lost:
            self.transport.close()

    # -- handshake -------------------------------------------------------------------------

    def _handle_request(self, head: bytes) -> None:
        try:
            request = handshake.parse_request(head)
            handshake.validate_request(request)
        except handshake.HandshakeRejection as exc:
            self._refuse(exc.status, exc.reason, exc.headers)
            return
        self._request = request
        target = request.path.decode("ascii")
        raw_path, _, query = target.partition("?")
        headers = [
            (name.lower().encode("ascii"), value.encode("utf-8", "surrogateescape"))
            for name, value in request.headers.items()
        ]
        subprotocols: list[str] = []
        for value in request.headers.getall("Sec-WebSocket-Protocol", []):
            subprotocols.extend(token.strip() for token in value.split(",") if token.strip())
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": self.root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        task = self.loop.create_task(self._run_asgi())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _refuse(self, status: int, reason: str,
                headers: Optional[list[tuple[str, str]]] = None) -> None:
        self.logger.info("%sWebSocket upgrade refused: %d %s", self._log_prefix(), status, reason)
        self._state = _CLOSED
        self.transport.write(handshake.build_error_response(status, reason.encode(), headers))
        self.transport.close()

    def _write_response(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send a complete HTTP response instead of the upgrade (the connection closes)."""
        names = {name.lower() for name, _ in headers}
        items = [(_header_str(n), _header_str(v)) for n, v in self.default_headers
                 if _header_str(n).lower() not in names] + headers
        wire = handshake.build_error_response(status, body, items)  # checks the headers
        self._state = _CLOSED
        if self._lost or self.transport.is_closing():
            return
        self._opened = True
        self.logger.info("connection rejected (%d %s)", status, _phrase(status))
        self.transport.write(wire)
        self.transport.close()

    def _accept(self, message: Message) -> None:
        if self._lost or self.transport.is_closing():
            self._state = _CLOSED
            return
        self._access('[accepted]')
        headers = [(_header_str(n), _header_str(v))
                   for n, v in list(self.default_headers) + list(message.get("headers") or [])]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        response = handshake.WSUpgradeResponse.create_101_response(headers)
        listener = Listener(self)
        config = self.config
        interval = config.ws_ping_interval
        ping = interval is not None and interval > 0
        timeout = config.ws_ping_timeout
        idle = float(interval) if ping and interval is not None else 20.0
        reply = min(float(timeout), idle) if timeout is not None and timeout > 0 else idle
        core = WSProtocol(
            is_client=False,
            listener_factory=lambda request: handshake.WSUpgradeResponseWithListener(
                response, listener),
            logger=_new_core_logger(),
            read_buffer_init_size=16 * 1024,
            max_frame_size=self.max_size,
            validate_utf8=True,
            allow_rsv_bits=False,
            enable_auto_pong=True,
            disconnect_on_exception=True,
            close_timeout=_CLOSE_TIMEOUT,
            websocket_handshake_timeout=None,
            max_head_size=handshake.MAX_HEAD_SIZE,
            enable_auto_ping=ping,
            auto_ping_idle_timeout=idle,
            auto_ping_reply_timeout=reply,
            auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE,
            compression=(handshake.WSDeflateConfig()
                         if config.ws_per_message_deflate else None),
        )
        self._state = _OPEN
        self._opened = True
        self.logger.info("connection open")
        core.connection_made(self.transport)
        self.transport.set_protocol(core)
        data, self._buffer = self._buffer, bytearray()
        # The core parses the request again (a few microseconds), answers 101 with our
        # headers and calls on_ws_connected; early frames after the head follow.
        _feed(core, data)

    # -- called by the engine (femtows/_uvicorn_engine.pyx) -------------------------------

    def _on_other_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """A frame that is not a whole TEXT/BINARY message: fragments, CLOSE."""
        op = frame.msg_type
        if op == _BINARY or op == _TEXT:  # the first fragment of a message
            self._fragments = bytearray(frame.get_payload_as_memoryview())
            self._fragments_text = op == _TEXT
        elif op == _CONTINUATION:
            self._continue_fragments(transport, frame)
        elif op == _CLOSE:
            code = int(frame.get_close_code()) or 1005
            self._deliver_disconnect(code, frame.get_close_reason() or "")
        # PING is answered by the core; PONGs of our keepalive are consumed by the core.

    def _continue_fragments(self, transport: WSTransport, frame: WSFrame) -> None:
        buf = self._fragments
        if buf is None:  # the core refuses a CONTINUATION without a message; defensive
            return
        if len(buf) + frame.payload_size > self.max_size:
            self._fragments = None
            reason = f"message exceeds {self.max_size} bytes"
            self.logger.info("%s: %s, closing with 1009", self._log_prefix(), reason)
            self._deliver_disconnect(1009, reason)
            transport.send_close(WSCloseCode.MESSAGE_TOO_BIG, reason)
            return
        buf += frame.get_payload_as_memoryview()
        if frame.fin:
            self._fragments = None
            if self._fragments_text:
                # The core has checked the UTF-8 of the whole message already.
                self._deliver({"type": "websocket.receive", "text": buf.decode()})
            else:
                self._deliver({"type": "websocket.receive", "bytes": bytes(buf)})

    def _on_disconnected(self, transport: WSTransport) -> None:
        hs = transport.close_handshake
        if hs is not None and hs.recv is not None:
            code, reason = int(hs.recv.code) or 1005, hs.recv.reason
        elif hs is not None and hs.sent is not None:
            code, reason = int(hs.sent.code) or 1005, hs.sent.reason
        else:
            code, reason = 1006, ""
        self._lost = True
        self._deliver_disconnect(code, reason)
        self._forget()
        self.resume_writing()

    def _deliver_disconnect(self, code: int, reason: str) -> None:
        if self._disconnect is not None:
            return
        message: Message = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._disconnect = message
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(message)
        else:
            self._queue.append(message)
        if self._read_paused and not self._lost:
            # Keep reading: the peer's CLOSE reply must be seen to finish the handshake.
            self._read_paused = False
            self.transport.resume_reading()

    def _forget(self) -> None:
        self.connections.discard(cast(Any, self))  # (typed as at add)
        if self._opened:
            self._opened = False
            self.logger.info("connection closed")
        if self.logger.isEnabledFor(TRACE_LOG_LEVEL):
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection lost", self._log_prefix())

    def _access(self, outcome: Union[str, int]) -> None:
        """uvicorn's access-style line for the outcome of an upgrade request."""
        scope = cast(Any, self.scope)
        self.logger.info('%s - "WebSocket %s" %s', get_client_addr(scope),
                         get_path_with_query_string(scope), outcome)

    def _log_prefix(self) -> str:
        return f"{self.client[0]}:{self.client[1]} - " if self.client else ""

    # -- the ASGI application --------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self._end(WSCloseCode.INTERNAL_ERROR, "Internal Server Error")
        else:
            if self._state == _CONNECTING:
                self.logger.error("ASGI callable returned without completing handshake.")
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.",
                                  result)
            self._end(WSCloseCode.OK, "")

    def _end(self, code: int, reason: str) -> None:
        """The app is done: close what it left open (500 if it never answered)."""
        if self._state in (_CONNECTING, _RESPONDING):
            self._write_response(500, [], b"Internal Server Error")
            return
        ws = self._ws
        if self._state == _OPEN and ws is not None and not ws.is_disconnected:
            # uvicorn's own implementations drop the TCP connection here (the client sees
            # 1006); a WebSocket ends with a closing handshake.
            ws.send_close(code, reason)

    async def _send_slow(self, message: Message) -> None:
        """ASGI ``send`` for everything but the common case the engine handles itself
        (``websocket.send`` on an open connection whose transport is not paused)."""
        if self._writable is not None:
            await asyncio.shield(self._writable)
        kind = message["type"]
        state = self._state
        if state == _OPEN:
            ws = self._ws
            if self._lost or ws is None:
                raise ClientDisconnected()
            if ws.is_close_frame_sent:
                if self._app_closed:
                    raise RuntimeError(
                        f"Unexpected ASGI message '{kind}', after sending 'websocket.close'.")
                raise ClientDisconnected()  # the client closed, or the server shuts down
            if kind == "websocket.send":
                data = message.get("bytes")
                if data is not None:
                    ws.send(_BINARY, data)
                    return
                text = message.get("text")
                if text is None:
                    raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                ws.send(_TEXT, text)
            elif kind == "websocket.close":
                code = message.get("code") or 1000
                reason = message.get("reason") or ""
                ws.send_close(code, reason)
                self._app_closed = True
                self._deliver_disconnect(code, reason)
            else:
                raise RuntimeError("Expected ASGI message 'websocket.send' or "
                                   f"'websocket.close', but got '{kind}'.")
            return
        if self._lost:
            raise ClientDisconnected()
        if state == _CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._access('403')
                self._deliver_disconnect(1006, "")
                self._write_response(403, [], b"")
            elif kind == "websocket.http.response.start":
                status = int(message["status"])
                if not 100 <= status < 600:
                    raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
                self._access(status)
                headers = [(_header_str(n), _header_str(v))
                           for n, v in message.get("headers") or []]
                self._response = (status, headers, bytearray())
                self._state = _RESPONDING
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                    f"'websocket.http.response.start' but got '{kind}'.")
        elif state == _RESPONDING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            assert self._response is not None
            status, headers, body = self._response
            body += message.get("body", b"")
            if len(body) > self.max_size:
                raise RuntimeError(f"response body over {self.max_size} bytes")
            if not message.get("more_body", False):
                self._deliver_disconnect(1006, "")
                self._write_response(status, headers, bytes(body))
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending "
                               "'websocket.close'.")
