"""One small client interface over several real WebSocket clients, so that every uvicorn test
runs the same steps with each of them.

    conn = await CLIENTS["websockets"](url, subprotocols=["chat.v1"])
    await conn.send("hi"); assert await conn.recv() == "hi"
    await conn.close()
    code, reason = await conn.closed()      # the CLOSE the server sent (1006: none)

``connect`` raises :class:`Rejected` (status, headers, body) when the server answers the
upgrade with an HTTP response.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Optional, Union

import websockets
from websockets.asyncio.client import connect as websockets_connect

from femtows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from femtows.errors import WSInvalidStatusError

Data = Union[str, bytes]
TIMEOUT = 10.0


class Rejected(Exception):
    """The server refused the upgrade with an HTTP response (status None: a browser, which
    cannot see it)."""

    def __init__(self, status: Optional[int], headers: dict[str, str], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body


class Closed(Exception):
    """recv() on a closed connection: the server's close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class Conn:
    """The interface every client implements."""

    subprotocol: Optional[str] = None
    headers: dict[str, str]  # the 101 response's headers, lower-case names

    async def send(self, data: Data) -> None:
        raise NotImplementedError

    async def recv(self) -> Data:
        raise NotImplementedError

    async def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError

    async def closed(self) -> tuple[int, str]:
        """Wait for the end of the connection: (code, reason) of the server's CLOSE, or
        (1006, "") when the TCP connection ended without one."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        raise NotImplementedError

    async def abort_async(self) -> None:
        self.abort()

    async def send_raw(self, data: bytes) -> None:
        """Write bytes to the socket as they are (frames the client would never send)."""
        raise NotImplementedError


# -- websockets ---------------------------------------------------------------------------------

class WebsocketsConn(Conn):
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.subprotocol = ws.subprotocol
        self.headers = {k.lower(): v for k, v in ws.response.headers.raw_items()}

    async def send(self, data: Data) -> None:
        await self.ws.send(data)

    async def recv(self) -> Data:
        try:
            data: Data = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
            return data
        except websockets.ConnectionClosed as exc:
            raise Closed(*self._code(exc)) from None

    @staticmethod
    def _code(exc: websockets.ConnectionClosed) -> tuple[int, str]:
        if exc.rcvd is None:
            return 1006, ""
        return exc.rcvd.code, exc.rcvd.reason

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await asyncio.wait_for(self.ws.close(code, reason), TIMEOUT)

    async def closed(self) -> tuple[int, str]:
        await asyncio.wait_for(self.ws.wait_closed(), TIMEOUT)
        rcvd = self.ws.protocol.close_rcvd
        return (1006, "") if rcvd is None else (rcvd.code, rcvd.reason)

    async def send_raw(self, data: bytes) -> None:
        self.ws.transport.write(data)

    def abort(self) -> None:
        self.ws.transport.abort()


async def connect_websockets(url: str, subprotocols: Optional[list[str]] = None) -> Conn:
    try:
        ws = await asyncio.wait_for(
            websockets_connect(url, subprotocols=subprotocols,  # type: ignore[arg-type]
                               ping_interval=None, max_size=None), TIMEOUT)
    except websockets.InvalidStatus as exc:
        response = exc.response
        raise Rejected(response.status_code,
                       {k.lower(): v for k, v in response.headers.raw_items()},
                       bytes(response.body or b"")) from None
    return WebsocketsConn(ws)


# -- femtows ------------------------------------------------------------------------------------

class _Queue(WSListener):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Union[Data, Closed]] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.queue.put_nowait(frame.get_payload_as_utf8_text())
        elif frame.msg_type == WSMsgType.BINARY:
            self.queue.put_nowait(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            self.queue.put_nowait(Closed(int(frame.get_close_code()) or 1005,
                                         frame.get_close_reason() or ""))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.queue.put_nowait(Closed(1006, ""))


class FemtowsConn(Conn):
    def __init__(self, transport: WSTransport, listener: _Queue) -> None:
        self.t = transport
        self.listener = listener
        self.headers = {k.lower(): v for k, v in transport.response.headers.items()}
        self.subprotocol = self.headers.get("sec-websocket-protocol")
        self.close_info: Optional[Closed] = None

    async def send(self, data: Data) -> None:
        self.t.send(WSMsgType.TEXT if isinstance(data, str) else WSMsgType.BINARY, data)

    async def recv(self) -> Data:
        if self.close_info is not None:
            raise self.close_info
        item = await asyncio.wait_for(self.listener.queue.get(), TIMEOUT)
        if isinstance(item, Closed):
            self.close_info = item
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.t.send_close(WSCloseCode(code) if code < 3000 else code, reason)
        await asyncio.wait_for(self.t.wait_disconnected(), TIMEOUT)

    async def closed(self) -> tuple[int, str]:
        while self.close_info is None:
            try:
                await self.recv()
            except Closed:
                pass
        await asyncio.wait_for(self.t.wait_disconnected(), TIMEOUT)
        return self.close_info.code, self.close_info.reason

    async def send_raw(self, data: bytes) -> None:
        self.t.underlying_transport.write(data)

    def abort(self) -> None:
        self.t.disconnect(graceful=False)


async def connect_femtows(url: str, subprotocols: Optional[list[str]] = None) -> Conn:
    headers = {"Sec-WebSocket-Protocol": ", ".join(subprotocols)} if subprotocols else None
    try:
        transport, listener = await ws_connect(_Queue, url, extra_headers=headers)
    except WSInvalidStatusError as exc:
        response = exc.response
        raise Rejected(int(response.status),
                       {k.lower(): v for k, v in response.headers.items()},
                       bytes(exc.raw_body or b"")) from None
    assert isinstance(listener, _Queue)
    return FemtowsConn(transport, listener)


# -- Node ws and headless Chromium (scripts/peers) -------------------------------------------

class PeerConn(Conn):
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.subprotocol = conn.protocol
        self.headers = conn.headers  # empty in a browser: it cannot read response headers

    async def send(self, data: Data) -> None:
        await self.conn.send(data)

    async def recv(self) -> Data:
        from peers import PeerClosed

        try:
            data: Data = await self.conn.recv(TIMEOUT)
            return data
        except PeerClosed as exc:
            raise Closed(exc.code, exc.reason) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.conn.close(code, reason)
        await self.conn.closed(TIMEOUT)

    async def closed(self) -> tuple[int, str]:
        result: tuple[int, str] = await self.conn.closed(TIMEOUT)
        return result

    async def send_raw(self, data: bytes) -> None:
        await self.conn.send_raw(data)

    def abort(self) -> None:
        raise NotImplementedError("use abort_async() with a peer")

    async def abort_async(self) -> None:
        await self.conn.abort()


def peer_connector(peer: Any) -> Connect:
    """A connect function opening WebSockets in a NodePeer or ChromiumPeer."""

    async def connect(url: str, subprotocols: Optional[list[str]] = None) -> Conn:
        from peers import PeerRejected

        try:
            return PeerConn(await peer.open(url, subprotocols))
        except PeerRejected as exc:
            raise Rejected(exc.status, exc.headers, exc.body) from None

    return connect


Connect = Callable[..., Awaitable[Conn]]
CLIENTS: dict[str, Connect] = {"websockets": connect_websockets, "femtows": connect_femtows}
# Clients run in scripts/peers processes; their connect functions come from peer_connector().
PEER_CLIENTS = ("node", "chromium")
# What a browser's WebSocket API cannot do: see a refused upgrade's status and headers, read
# the 101's headers, write arbitrary bytes, drop TCP.
BROWSERS = ("chromium",)
