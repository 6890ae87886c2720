"""Interop with real peers: websockets and aiohttp, as clients and as servers, over TCP and TLS.

Four directions: femtows client -> websockets/aiohttp server, websockets/aiohttp client ->
femtows server. Small sizes (every length encoding and its boundaries) run in every direction
over TCP and TLS; the big ones (1 MiB, 4 MiB) once per direction and peer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable, Union

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import connect as websockets_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve

import femtows
from femtows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from tests.utils import EchoListener, RecordingListener

MAX_SIZE = 8 * 1024 * 1024
SMALL_SIZES = [0, 1, 125, 126, 65535, 65536]
BIG_SIZES = [1024 * 1024, 4 * 1024 * 1024]
PEERS = ["websockets", "aiohttp"]
TIMEOUT = 10.0

Message = Union[str, bytes]


def text_of_size(n: int) -> str:
    """A str whose UTF-8 encoding is exactly ``n`` bytes, with 2- and 3-byte characters."""
    unit = "héllo wörld ✓ "
    raw = (unit * (n // len(unit.encode()) + 1)).encode()[:n]
    text = raw.decode("utf-8", "ignore")  # drops a code point cut at the end
    return text + "a" * (n - len(text.encode()))


def binary_of_size(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def messages_of_sizes(sizes: list[int]) -> list[Message]:
    messages: list[Message] = []
    for size in sizes:
        messages += [text_of_size(size), binary_of_size(size)]
    return messages


def as_frame(message: Message) -> tuple[WSMsgType, bytes]:
    if isinstance(message, str):
        return WSMsgType.TEXT, message.encode()
    return WSMsgType.BINARY, message


def femtows_client_kwargs(tls: Any) -> dict[str, Any]:
    return {"max_frame_size": MAX_SIZE, **tls.client_kwargs()}


# -- peer servers -------------------------------------------------------------------------------

PeerHandler = Callable[[Any], Awaitable[None]]


@contextlib.asynccontextmanager
async def websockets_server(tls: Any, handler: PeerHandler) -> AsyncIterator[str]:
    async with websockets_serve(
        handler, "127.0.0.1", 0, ssl=tls.server, compression=None, max_size=MAX_SIZE
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"{tls.scheme}://127.0.0.1:{port}/"


@contextlib.asynccontextmanager
async def aiohttp_server(tls: Any, handler: PeerHandler, **ws_kwargs: Any) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_SIZE, compress=False, **ws_kwargs)
        await ws.prepare(request)
        await handler(ws)
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"{tls.scheme}://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def websockets_echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def aiohttp_echo(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)


@contextlib.asynccontextmanager
async def peer_echo_server(peer: str, tls: Any) -> AsyncIterator[str]:
    if peer == "websockets":
        async with websockets_server(tls, websockets_echo) as url:
            yield url
    else:
        async with aiohttp_server(tls, aiohttp_echo) as url:
            yield url


# -- peer clients -------------------------------------------------------------------------------


class PeerClient:
    """The websockets or aiohttp client behind one small common interface."""

    def __init__(self, peer: str, ws: Any) -> None:
        self.peer = peer
        self.ws = ws

    async def send(self, message: Message) -> None:
        if self.peer == "websockets":
            await self.ws.send(message)
        elif isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.ws.send_bytes(message)

    async def recv(self) -> Message:
        if self.peer == "websockets":
            return await asyncio.wait_for(self.ws.recv(), TIMEOUT)  # type: ignore[no-any-return]
        msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
        return msg.data  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def peer_client(peer: str, tls: Any, url: str, **kwargs: Any) -> AsyncIterator[PeerClient]:
    if peer == "websockets":
        ssl_kwargs = {"ssl": tls.client} if tls.enabled else {}
        async with websockets_connect(
            url, compression=None, max_size=MAX_SIZE, **ssl_kwargs, **kwargs
        ) as ws:
            yield PeerClient(peer, ws)
    else:
        ssl_kwargs = {"ssl": tls.client} if tls.enabled else {}
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(
                url, max_msg_size=MAX_SIZE, compress=0, **ssl_kwargs, **kwargs
            ) as ws:
                yield PeerClient(peer, ws)


@contextlib.asynccontextmanager
async def femtows_server(tls: Any, factory: Callable[[Any], WSListener]) -> AsyncIterator[str]:
    server = await femtows.ws_create_server(
        factory, "127.0.0.1", 0, max_frame_size=MAX_SIZE, **tls.server_kwargs()
    )
    async with server:
        yield f"{tls.scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


# -- messages of every size ---------------------------------------------------------------------


async def femtows_client_echo(url: str, tls: Any, messages: list[Message]) -> None:
    """femtows sends ``messages`` to an echo server and gets each back byte for byte."""
    transport, client = await femtows.ws_connect(
        RecordingListener, url, **femtows_client_kwargs(tls)
    )
    for message in messages:
        transport.send(*as_frame(message))
    for index, message in enumerate(messages):
        assert await asyncio.wait_for(client.wait_message(index), TIMEOUT) == as_frame(message)
    assert all(fin for _, _, fin in client.frames)  # the peers send one frame per message
    transport.send_close(WSCloseCode.OK)
    await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
    assert transport.close_handshake.recv.code == WSCloseCode.OK


async def peer_client_echo(peer: str, url: str, tls: Any, messages: list[Message]) -> None:
    """The peer sends ``messages`` to the femtows echo server and gets each back."""
    async with peer_client(peer, tls, url) as client:
        for message in messages:
            await client.send(message)
        for message in messages:
            got = await client.recv()
            assert type(got) is type(message)
            assert got == message


@pytest.mark.parametrize("size", SMALL_SIZES)
@pytest.mark.parametrize("peer", PEERS)
async def test_femtows_client_to_peer_server(tls, peer, size):
    """femtows client -> peer echo server: TEXT and BINARY of every length encoding."""
    async with peer_echo_server(peer, tls) as url:
        await femtows_client_echo(url, tls, messages_of_sizes([size]))


@pytest.mark.parametrize("size", SMALL_SIZES)
@pytest.mark.parametrize("peer", PEERS)
async def test_peer_client_to_femtows_server(tls, peer, size):
    """Peer client -> femtows echo server: TEXT and BINARY of every length encoding."""
    async with femtows_server(tls, lambda request: EchoListener()) as url:
        await peer_client_echo(peer, url, tls, messages_of_sizes([size]))


@pytest.mark.parametrize("peer", PEERS)
async def test_femtows_client_to_peer_server_big(tls, peer):
    """femtows client -> peer echo server: 1 MiB and 4 MiB TEXT and BINARY messages."""
    async with peer_echo_server(peer, tls) as url:
        await femtows_client_echo(url, tls, messages_of_sizes(BIG_SIZES))


@pytest.mark.parametrize("peer", PEERS)
async def test_peer_client_to_femtows_server_big(tls, peer):
    """Peer client -> femtows echo server: 1 MiB and 4 MiB TEXT and BINARY messages."""
    async with femtows_server(tls, lambda request: EchoListener()) as url:
        await peer_client_echo(peer, url, tls, messages_of_sizes(BIG_SIZES))


# -- fragmentation ------------------------------------------------------------------------------


def send_fragmented(transport: WSTransport) -> None:
    transport.send(WSMsgType.TEXT, "frag", fin=False)
    transport.send(WSMsgType.CONTINUATION, b"", fin=False)
    transport.send(WSMsgType.CONTINUATION, "men", fin=False)
    transport.send(WSMsgType.CONTINUATION, "té ✓", fin=True)


@pytest.mark.parametrize("peer", PEERS)
async def test_fragments_from_femtows_client_are_one_message(tls, peer):
    """TEXT fin=0 + CONTINUATIONs from femtows arrive at the peer server as one message."""
    received: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    async def on_websockets(ws: ServerConnection) -> None:
        received.set_result(await ws.recv())
        await ws.wait_closed()

    async def on_aiohttp(ws: web.WebSocketResponse) -> None:
        msg = await ws.receive()
        received.set_result(msg.data)
        await ws.receive()

    handler = on_websockets if peer == "websockets" else on_aiohttp
    server = websockets_server if peer == "websockets" else aiohttp_server
    async with server(tls, handler) as url:
        transport, _ = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        send_fragmented(transport)
        assert await asyncio.wait_for(received, TIMEOUT) == "fragmenté ✓"
        transport.send_close(WSCloseCode.OK)
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


@pytest.mark.parametrize("peer", PEERS)
async def test_fragments_from_femtows_server_are_one_message(tls, peer):
    """TEXT fin=0 + CONTINUATIONs from the femtows server arrive at the peer as one message."""

    class Server(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            send_fragmented(transport)

    async with femtows_server(tls, lambda request: Server()) as url:
        async with peer_client(peer, tls, url) as client:
            assert await client.recv() == "fragmenté ✓"


async def test_fragments_from_websockets_server_reach_femtows_as_frames(tls):
    """websockets sends an iterable as fragments: femtows sees TEXT fin=0, CONTINUATIONs, fin=1."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send(["ab", "cd", "é"])
        await ws.wait_closed()

    async with websockets_server(tls, handler) as url:
        transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        assert await asyncio.wait_for(client.wait_frames(4), TIMEOUT) == [
            (WSMsgType.TEXT, b"ab", False),
            (WSMsgType.CONTINUATION, b"cd", False),
            (WSMsgType.CONTINUATION, "é".encode(), False),
            (WSMsgType.CONTINUATION, b"", True),  # websockets ends with an empty final frame
        ]
        transport.send_close(WSCloseCode.OK)
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


async def test_fragments_from_websockets_client_reach_femtows_as_frames(tls):
    """A fragmented BINARY message from a websockets client reaches the femtows server as frames."""
    listeners: list[RecordingListener] = []

    def factory(request: Any) -> RecordingListener:
        listeners.append(RecordingListener())
        return listeners[-1]

    async with femtows_server(tls, factory) as url:
        async with peer_client("websockets", tls, url) as client:
            await client.ws.send([b"\x00\x01", b"\xff"])
            assert await asyncio.wait_for(listeners[0].wait_frames(3), TIMEOUT) == [
                (WSMsgType.BINARY, b"\x00\x01", False),
                (WSMsgType.CONTINUATION, b"\xff", False),
                (WSMsgType.CONTINUATION, b"", True),
            ]


# -- ping / pong --------------------------------------------------------------------------------


async def test_websockets_client_ping_is_answered_by_femtows_server(tls):
    """femtows auto-pongs: the websockets client's ping() waiter resolves."""
    async with femtows_server(tls, lambda request: RecordingListener()) as url:
        async with peer_client("websockets", tls, url) as client:
            pong_waiter = await client.ws.ping(b"are you there")
            latency = await asyncio.wait_for(pong_waiter, TIMEOUT)
            assert latency >= 0


async def test_websockets_server_ping_is_answered_by_femtows_client(tls):
    """femtows client auto-pongs the websockets server's ping; the PING is not delivered."""
    latency: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        pong_waiter = await ws.ping(b"are you there")
        latency.set_result(await pong_waiter)
        await ws.wait_closed()

    async with websockets_server(tls, handler) as url:
        transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        assert await asyncio.wait_for(latency, TIMEOUT) >= 0
        assert client.frames == []
        transport.send_close(WSCloseCode.OK)
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


async def test_aiohttp_client_ping_is_answered_by_femtows_server(tls):
    """femtows server answers an aiohttp PING with a PONG carrying the same payload."""
    async with femtows_server(tls, lambda request: RecordingListener()) as url:
        async with peer_client("aiohttp", tls, url, autoping=False) as client:
            await client.ws.ping(b"are you there")
            msg = await asyncio.wait_for(client.ws.receive(), TIMEOUT)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"are you there")


async def test_aiohttp_server_ping_is_answered_by_femtows_client(tls):
    """femtows client answers an aiohttp server's PING with a PONG carrying the same payload."""
    pong: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(ws: web.WebSocketResponse) -> None:
        await ws.ping(b"are you there")
        msg = await ws.receive()
        pong.set_result((msg.type, msg.data))
        await ws.receive()

    async with aiohttp_server(tls, handler, autoping=False) as url:
        transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        assert await asyncio.wait_for(pong, TIMEOUT) == (aiohttp.WSMsgType.PONG, b"are you there")
        assert client.frames == []
        transport.send_close(WSCloseCode.OK)
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


@pytest.mark.parametrize("peer", PEERS)
async def test_femtows_client_ping_is_answered_by_peer_server(tls, peer):
    """femtows client send_ping -> the peer server auto-pongs -> the listener gets the PONG."""
    async with peer_echo_server(peer, tls) as url:
        transport, client = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        transport.send_ping(b"ping payload")
        assert await asyncio.wait_for(client.wait_frames(1), TIMEOUT) == [
            (WSMsgType.PONG, b"ping payload", True)
        ]
        transport.send_close(WSCloseCode.OK)
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)


@pytest.mark.parametrize("peer", PEERS)
async def test_femtows_server_ping_is_answered_by_peer_client(tls, peer):
    """femtows server send_ping -> the peer client auto-pongs -> the listener gets the PONG."""
    listeners: list[RecordingListener] = []

    class Pinger(RecordingListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            super().on_ws_connected(transport)
            transport.send_ping(b"ping payload")

    def factory(request: Any) -> RecordingListener:
        listeners.append(Pinger())
        return listeners[-1]

    async with femtows_server(tls, factory) as url:
        async with peer_client(peer, tls, url) as client:
            if peer == "aiohttp":
                # aiohttp answers PINGs while something reads the connection.
                receiving = asyncio.ensure_future(client.ws.receive())
            assert await asyncio.wait_for(listeners[0].wait_frames(1), TIMEOUT) == [
                (WSMsgType.PONG, b"ping payload", True)
            ]
            if peer == "aiohttp":
                receiving.cancel()


# -- close codes --------------------------------------------------------------------------------


async def test_femtows_client_close_code_seen_by_websockets_server(tls):
    """send_close(GOING_AWAY, "bye") -> websockets sees 1001 "bye"; the echo reaches femtows."""
    seen: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        seen.set_result((ws.close_code, ws.close_reason))

    async with websockets_server(tls, handler) as url:
        transport, _ = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        transport.send_close(WSCloseCode.GOING_AWAY, "bye")
        assert await asyncio.wait_for(seen, TIMEOUT) == (1001, "bye")
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        hs = transport.close_handshake
        assert (hs.sent.code, hs.sent.reason) == (WSCloseCode.GOING_AWAY, "bye")
        assert (hs.recv.code, hs.recv.reason) == (WSCloseCode.GOING_AWAY, "bye")
        assert hs.recv_then_sent is False


async def test_femtows_client_close_code_seen_by_aiohttp_server(tls):
    """send_close(GOING_AWAY, "bye") -> aiohttp receives CLOSE 1001 "bye"."""
    seen: asyncio.Future[tuple[Any, Any, Any]] = asyncio.get_running_loop().create_future()

    async def handler(ws: web.WebSocketResponse) -> None:
        msg = await ws.receive()
        seen.set_result((msg.type, msg.data, msg.extra))

    async with aiohttp_server(tls, handler) as url:
        transport, _ = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        transport.send_close(WSCloseCode.GOING_AWAY, "bye")
        assert await asyncio.wait_for(seen, TIMEOUT) == (aiohttp.WSMsgType.CLOSE, 1001, "bye")
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert transport.close_handshake.recv is not None


async def test_femtows_server_close_code_seen_by_peer_clients(tls):
    """The femtows server's send_close(GOING_AWAY, "bye") reaches websockets and aiohttp."""
    listeners: list[RecordingListener] = []

    class Closer(RecordingListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            super().on_ws_connected(transport)
            transport.send_close(WSCloseCode.GOING_AWAY, "bye")

    def factory(request: Any) -> RecordingListener:
        listeners.append(Closer())
        return listeners[-1]

    async with femtows_server(tls, factory) as url:
        async with peer_client("websockets", tls, url) as client:
            await asyncio.wait_for(client.ws.wait_closed(), TIMEOUT)
            assert (client.ws.close_code, client.ws.close_reason) == (1001, "bye")
        async with peer_client("aiohttp", tls, url) as client:
            msg = await asyncio.wait_for(client.ws.receive(), TIMEOUT)
            assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1001, "bye")
        for listener in listeners:
            await asyncio.wait_for(listener.disconnected.wait(), TIMEOUT)
            assert listener.transport.close_handshake.recv_then_sent is False


async def test_websockets_client_custom_close_code_is_echoed_by_femtows_server(tls):
    """websockets close(4000, "custom") -> femtows records it and echoes 4000: a clean close."""
    listeners: list[RecordingListener] = []

    def factory(request: Any) -> RecordingListener:
        listeners.append(RecordingListener())
        return listeners[-1]

    async with femtows_server(tls, factory) as url:
        async with peer_client("websockets", tls, url) as client:
            await asyncio.wait_for(client.ws.close(4000, "custom"), TIMEOUT)
            assert client.ws.close_code == 4000
            assert client.ws.protocol.close_sent.code == 4000
            assert client.ws.protocol.close_rcvd_then_sent is False
        await asyncio.wait_for(listeners[0].disconnected.wait(), TIMEOUT)
        hs = listeners[0].transport.close_handshake
        assert (hs.recv.code, hs.recv.reason) == (4000, "custom")
        assert hs.sent.code == 4000
        assert hs.recv_then_sent is True
        assert listeners[0].frames == [(WSMsgType.CLOSE, b"\x0f\xa0custom", True)]


async def test_websockets_server_custom_close_code_is_echoed_by_femtows_client(tls):
    """websockets server close(4000, "custom") -> femtows client echoes 4000: a clean close."""
    result: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        await ws.close(4000, "custom")
        result.set_result((ws.close_code, ws.protocol.close_rcvd_then_sent))

    async with websockets_server(tls, handler) as url:
        transport, _ = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert await asyncio.wait_for(result, TIMEOUT) == (4000, False)
        hs = transport.close_handshake
        assert (hs.recv.code, hs.recv.reason) == (4000, "custom")
        assert hs.sent.code == 4000
        assert hs.recv_then_sent is True


async def test_aiohttp_client_custom_close_code_is_echoed_by_femtows_server(tls):
    """aiohttp close(code=4000, message=b"custom") -> femtows records and echoes 4000."""
    listeners: list[RecordingListener] = []

    def factory(request: Any) -> RecordingListener:
        listeners.append(RecordingListener())
        return listeners[-1]

    async with femtows_server(tls, factory) as url:
        async with peer_client("aiohttp", tls, url) as client:
            assert (
                await asyncio.wait_for(client.ws.close(code=4000, message=b"custom"), TIMEOUT)
                is True
            )
            assert client.ws.close_code == 4000
        await asyncio.wait_for(listeners[0].disconnected.wait(), TIMEOUT)
        hs = listeners[0].transport.close_handshake
        assert (hs.recv.code, hs.recv.reason) == (4000, "custom")
        assert hs.sent.code == 4000


async def test_aiohttp_server_custom_close_code_is_echoed_by_femtows_client(tls):
    """aiohttp server close(code=4000, message=b"custom") -> femtows client echoes 4000."""
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(ws: web.WebSocketResponse) -> None:
        await ws.close(code=4000, message=b"custom")
        result.set_result(ws.close_code)

    async with aiohttp_server(tls, handler) as url:
        transport, _ = await femtows.ws_connect(RecordingListener, url, **tls.client_kwargs())
        await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
        assert await asyncio.wait_for(result, TIMEOUT) == 4000
        hs = transport.close_handshake
        assert (hs.recv.code, hs.recv.reason) == (4000, "custom")
        assert hs.sent.code == 4000


async def test_femtows_listener_may_answer_close_itself(tls):
    """A listener that answers CLOSE with its own code is not overridden by the automatic echo."""

    class Answerer(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(WSCloseCode.OK, "as you wish")

    async with femtows_server(tls, lambda request: Answerer()) as url:
        async with peer_client("websockets", tls, url) as client:
            await asyncio.wait_for(client.ws.close(4000, "custom"), TIMEOUT)
            assert (client.ws.close_code, client.ws.close_reason) == (1000, "as you wish")
