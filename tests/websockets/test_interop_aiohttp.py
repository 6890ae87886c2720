"""Interop of the websockets drop-in with aiohttp, both directions: a femtows.websockets.asyncio
server (``serve``) with aiohttp's client (``ClientSession.ws_connect``), and an aiohttp server
(``web.WebSocketResponse``) with femtows.websockets.asyncio's ``connect``.

Each direction covers: TEXT and BINARY echo at every length encoding and its boundaries (0, 125,
126, 127, 65535, 65536, 65537) and 1 MiB, with permessage-deflate negotiated and with
``compression=None`` (over TCP and TLS); PING and PONG both ways (``ping()``'s latency awaitable
resolves on aiohttp's automatic PONG; aiohttp's PING is answered with its payload);
subprotocol negotiation; closing with a custom code and reason from either side, as each side
reports it; and what each side says about the negotiated extension.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable, Optional, Union

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.server import serve as websockets_serve

from femtows.websockets.asyncio.client import connect
from femtows.websockets.asyncio.server import ServerConnection, serve
from femtows.websockets.exceptions import ConnectionClosedError
from femtows.websockets.extensions.permessage_deflate import PerMessageDeflate
from tests.conftest import TLSConfig
from tests.test_interop import aiohttp_echo, websockets_echo

MiB = 1024 * 1024
MAX_SIZE = 4 * MiB
SIZES = [0, 125, 126, 127, 65535, 65536, 65537, MiB]
TIMEOUT = 10.0
BIG = bytes((i * 7) % 251 for i in range(MiB))  # compresses, but not to nothing

Message = Union[str, bytes]


def text_of_size(n: int) -> str:
    """A str of exactly ``n`` UTF-8 bytes, 2- and 3-byte characters included."""
    unit = "héllo wörld ✓ "
    text = (unit * (n // len(unit.encode()) + 1)).encode()[:n].decode("utf-8", "ignore")
    return text + "a" * (n - len(text.encode()))


MESSAGES: list[Message] = [m for n in SIZES for m in (text_of_size(n), BIG[:n])]


# -- servers ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def femtows_server(
    handler: Callable[[ServerConnection], Awaitable[None]], tls: Optional[TLSConfig] = None,
    **kwargs: Any,
) -> AsyncIterator[str]:
    ssl: dict[str, Any] = {"ssl": tls.server} if tls is not None and tls.enabled else {}
    async with serve(handler, "127.0.0.1", 0, max_size=MAX_SIZE, **ssl, **kwargs) as server:
        scheme = tls.scheme if tls is not None else "ws"
        yield f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@contextlib.asynccontextmanager
async def aiohttp_server(
    handler: Callable[[web.WebSocketResponse], Awaitable[None]],
    tls: Optional[TLSConfig] = None,
    **ws_kwargs: Any,
) -> AsyncIterator[str]:
    """An aiohttp app answering ``/`` with a WebSocketResponse(**ws_kwargs) run by handler."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_SIZE, **ws_kwargs)
        await ws.prepare(request)
        await handler(ws)
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    ssl_context = tls.server if tls is not None else None
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        scheme = tls.scheme if tls is not None else "ws"
        yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def aiohttp_client(
    url: str, tls: Optional[TLSConfig] = None, **kwargs: Any
) -> AsyncIterator[Any]:
    """aiohttp's client (``ClientWebSocketResponse``) connected to ``url``."""
    ssl: dict[str, Any] = {"ssl": tls.client} if tls is not None and tls.enabled else {}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=MAX_SIZE, **ssl, **kwargs) as ws:
            yield ws


def femtows_client(url: str, tls: Optional[TLSConfig] = None, **kwargs: Any) -> connect:
    ssl: dict[str, Any] = {"ssl": tls.client} if tls is not None and tls.enabled else {}
    return connect(url, max_size=MAX_SIZE, open_timeout=TIMEOUT, **ssl, **kwargs)


async def femtows_echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def aiohttp_recv(ws: aiohttp.ClientWebSocketResponse) -> Message:
    msg = await ws.receive(timeout=TIMEOUT)
    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
    return msg.data  # type: ignore[no-any-return]


def deflate_of(ws: Any) -> list[Any]:
    """The extensions femtows negotiated on this connection."""
    return list(ws.protocol.extensions)


# -- messages of every size, with and without permessage-deflate -------------------------------

COMPRESSION = ["deflate", None]


@pytest.mark.parametrize("compression", COMPRESSION, ids=["deflate", "no-compression"])
async def test_aiohttp_client_echo(tls: TLSConfig, compression: Optional[str]) -> None:
    """aiohttp client -> femtows.websockets server: every size comes back, same type."""
    async with femtows_server(femtows_echo, tls, compression=compression) as url:
        async with aiohttp_client(url, tls, compress=15) as ws:
            # websockets' server answers server_max_window_bits=12 (its default), femtows too
            assert ws.compress == (12 if compression else 0)
            for message in MESSAGES:
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)
            for message in MESSAGES:
                got = await aiohttp_recv(ws)
                assert type(got) is type(message) and got == message, len(message)


@pytest.mark.parametrize("compression", COMPRESSION, ids=["deflate", "no-compression"])
async def test_femtows_client_echo(tls: TLSConfig, compression: Optional[str]) -> None:
    """femtows.websockets client -> aiohttp server: every size comes back, same type."""
    async with aiohttp_server(aiohttp_echo, tls, compress=True) as url:
        async with femtows_client(url, tls, compression=compression) as ws:
            assert len(deflate_of(ws)) == (1 if compression else 0)
            for message in MESSAGES:
                await ws.send(message)
            for message in MESSAGES:
                got = await asyncio.wait_for(ws.recv(), TIMEOUT)
                assert type(got) is type(message) and got == message, len(message)


# -- permessage-deflate: what each side says was agreed -----------------------------------------


async def test_deflate_agreed_with_aiohttp_client() -> None:
    """websockets' default compression="deflate" and aiohttp's compress=15 agree; each side
    reports it: femtows's ``protocol.extensions``, aiohttp's ``compress`` and the 101's
    header, which is the one websockets 17.4's server sends to the same offer."""
    seen: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        seen.append(deflate_of(ws))
        await femtows_echo(ws)

    async with femtows_server(handler) as url:
        async with aiohttp_client(url, compress=15) as ws:
            await ws.send_str("x" * 10000)
            assert await aiohttp_recv(ws) == "x" * 10000
            assert ws.compress == 12
            header = ws._response.headers["Sec-WebSocket-Extensions"]
    async with websockets_serve(websockets_echo, "127.0.0.1", 0) as reference:
        url = f"ws://127.0.0.1:{reference.sockets[0].getsockname()[1]}/"
        async with aiohttp_client(url, compress=15) as ws:
            expected = ws._response.headers["Sec-WebSocket-Extensions"]
    assert header == expected
    assert header.startswith("permessage-deflate")
    (extensions,) = seen
    assert len(extensions) == 1 and isinstance(extensions[0], PerMessageDeflate)
    assert extensions[0].name == "permessage-deflate"


async def test_deflate_agreed_with_aiohttp_server() -> None:
    """femtows's default offer and aiohttp's compress=True agree; aiohttp's 101 carries the
    extension and its ``compress`` says so."""
    server_compress: list[Any] = []

    async def handler(ws: web.WebSocketResponse) -> None:
        server_compress.append(ws.compress)
        await aiohttp_echo(ws)

    async with aiohttp_server(handler, compress=True) as url:
        async with femtows_client(url) as ws:
            await ws.send(b"y" * 10000)
            assert await ws.recv() == b"y" * 10000
            assert ws.response is not None
            header = ws.response.headers["Sec-WebSocket-Extensions"]
            extensions = deflate_of(ws)
    assert header.startswith("permessage-deflate")
    assert len(extensions) == 1 and isinstance(extensions[0], PerMessageDeflate)
    assert server_compress == [15]


async def test_no_deflate_when_either_side_declines() -> None:
    """compression=None on femtows, or compress off on aiohttp: no extension, plain frames."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send(str(deflate_of(ws)))

    async with femtows_server(handler, compression=None) as url:
        async with aiohttp_client(url, compress=15) as ws:
            assert ws.compress == 0
            assert "Sec-WebSocket-Extensions" not in ws._response.headers
            assert await aiohttp_recv(ws) == "[]"
    async with femtows_server(handler) as url:
        async with aiohttp_client(url, compress=0) as ws:
            assert await aiohttp_recv(ws) == "[]"
    async with aiohttp_server(aiohttp_echo, compress=False) as url:
        async with femtows_client(url) as fws:
            assert fws.response is not None
            assert "Sec-WebSocket-Extensions" not in fws.response.headers
            assert deflate_of(fws) == []
    async with aiohttp_server(aiohttp_echo, compress=True) as url:
        async with femtows_client(url, compression=None) as fws:
            assert fws.response is not None
            assert "Sec-WebSocket-Extensions" not in fws.response.headers


# -- ping / pong --------------------------------------------------------------------------------


async def test_ping_pong_with_aiohttp_client() -> None:
    """The server's ping() resolves to a latency on aiohttp's automatic PONG; aiohttp's PING
    (autoping off, so it sees the PONG) comes back with its payload."""
    latencies: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        assert await ws.recv() == "ping me"
        waiter = await ws.ping(b"from-femtows")
        latencies.append(await asyncio.wait_for(waiter, TIMEOUT))
        await ws.send("pinged")
        await ws.wait_closed()

    async with femtows_server(handler) as url:
        async with aiohttp_client(url) as ws:  # autoping: answers the server's PING
            await ws.send_str("ping me")
            assert await aiohttp_recv(ws) == "pinged"
        async with aiohttp_client(url, autoping=False) as ws:
            await ws.ping(b"from-aiohttp")
            msg = await ws.receive(timeout=TIMEOUT)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"from-aiohttp")
            await ws.send_str("ping me")
            msg = await ws.receive(timeout=TIMEOUT)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.PING, b"from-femtows")
            await ws.pong(msg.data)
            assert await aiohttp_recv(ws) == "pinged"
    assert len(latencies) == 2 and all(latency >= 0 for latency in latencies)


async def test_ping_pong_with_aiohttp_server() -> None:
    """aiohttp's server (autoping off, so it sees the frames) gets femtows's PING with its
    payload and answers it, which resolves ping()'s latency; its own PING is answered by
    femtows with the same payload."""
    pings: list[bytes] = []
    pongs: list[bytes] = []

    async def handler(ws: web.WebSocketResponse) -> None:
        while True:
            msg = await ws.receive(timeout=TIMEOUT)
            if msg.type == aiohttp.WSMsgType.PING:
                pings.append(bytes(msg.data))
                await ws.pong(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                assert msg.data == "ping me"
                await ws.ping(b"from-aiohttp")
            elif msg.type == aiohttp.WSMsgType.PONG:
                pongs.append(bytes(msg.data))
                await ws.send_str("pong seen")
            else:
                break

    async with aiohttp_server(handler, autoping=False) as url:
        async with femtows_client(url) as ws:
            latency = await asyncio.wait_for(await ws.ping(b"from-femtows"), TIMEOUT)
            assert latency >= 0
            await ws.send("ping me")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "pong seen"
    assert pings == [b"from-femtows"]
    assert pongs == [b"from-aiohttp"]


async def test_latency_awaitable_against_aiohttp_autoping() -> None:
    """aiohttp's server with its default autoping answers femtows's PING."""
    async with aiohttp_server(aiohttp_echo) as url:
        async with femtows_client(url) as ws:
            for payload in (b"", b"abc", None):
                waiter = await ws.ping(payload)
                assert await asyncio.wait_for(waiter, TIMEOUT) >= 0
            assert ws.latency > 0


# -- subprotocols -------------------------------------------------------------------------------


async def test_subprotocol_with_aiohttp_client() -> None:
    """The server picks from its own list in its order; aiohttp sees the choice."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send(str(ws.subprotocol))

    async with femtows_server(handler, subprotocols=["chat.v2", "chat.v1"]) as url:
        async with aiohttp_client(url, protocols=("chat.v1", "chat.v2")) as ws:
            assert ws.protocol == "chat.v2"
            assert await aiohttp_recv(ws) == "chat.v2"
        async with aiohttp_client(url, protocols=("chat.v1",)) as ws:
            assert ws.protocol == "chat.v1"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            async with aiohttp_client(url, protocols=("other",)):
                pass
        assert info.value.status == 400


async def test_subprotocol_with_aiohttp_server() -> None:
    """aiohttp's server picks the first of its protocols the client offered."""
    chosen: list[Optional[str]] = []

    async def handler(ws: web.WebSocketResponse) -> None:
        chosen.append(ws.ws_protocol)
        await aiohttp_echo(ws)

    async with aiohttp_server(handler, protocols=("chat.v1", "chat.v2")) as url:
        async with femtows_client(url, subprotocols=["chat.v2", "x"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.response is not None
            assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat.v2"
        async with femtows_client(url) as ws:
            assert ws.subprotocol is None
    assert chosen == ["chat.v2", None]


# -- closing with a custom code and reason ------------------------------------------------------


async def test_close_codes_with_aiohttp_client() -> None:
    """Server-initiated 4001 "server bye" and client-initiated 4002 "client bye": each side
    reports the code and reason it received."""
    closes: asyncio.Queue[tuple[Optional[int], Optional[str]]] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        if await ws.recv() == "close yourself":
            await ws.close(4001, "server bye")
        else:
            await ws.wait_closed()
        closes.put_nowait((ws.close_code, ws.close_reason))

    async with femtows_server(handler) as url:
        async with aiohttp_client(url, autoclose=False) as ws:
            await ws.send_str("close yourself")
            msg = await ws.receive(timeout=TIMEOUT)
            assert (msg.type, msg.data, msg.extra) == (
                aiohttp.WSMsgType.CLOSE, 4001, "server bye"
            )
            assert ws.close_code == 4001
            await ws.close(code=4001)
        async with aiohttp_client(url) as ws:
            await ws.send_str("stay")
            await ws.close(code=4002, message=b"client bye")
            assert ws.close_code == 4002  # femtows echoed the code
        got = [await asyncio.wait_for(closes.get(), TIMEOUT) for _ in range(2)]
    assert got == [(4001, ""), (4002, "client bye")]


async def test_close_codes_with_aiohttp_server() -> None:
    """aiohttp's server closes with 4003 "server bye"; femtows's client closes with 4004
    "client bye"; each side reports what it received."""
    server_codes: list[Optional[int]] = []

    async def handler(ws: web.WebSocketResponse) -> None:
        msg = await ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "close yourself":
            await ws.close(code=4003, message=b"server bye")
        else:
            assert (msg.type, msg.data, msg.extra) == (
                aiohttp.WSMsgType.CLOSE, 4004, "client bye"
            )
        server_codes.append(ws.close_code)

    async with aiohttp_server(handler) as url:
        async with femtows_client(url) as ws:
            await ws.send("close yourself")
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4003, "server bye")
            assert (ws.close_code, ws.close_reason) == (4003, "server bye")
        async with femtows_client(url) as ws:
            await ws.close(4004, "client bye")
            # aiohttp answers 1000 rather than echoing; reported as websockets 17.4 does
            assert (ws.close_code, ws.close_reason) == (1000, "")
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert str(info.value) == "sent 4004 (private use) client bye; then received 1000 (OK)"
    assert server_codes == [4003, 4004]
