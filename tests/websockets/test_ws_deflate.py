"""permessage-deflate in femtows.websockets, checked against websockets 17.4.

Every negotiation runs twice: websockets on both sides (the reference), then femtows on one
side; the 101's ``Sec-WebSocket-Extensions`` and both sides' ``protocol.extensions`` must be
the same, and a compressible message must echo.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import websockets
import websockets.asyncio.client as ws_client
import websockets.asyncio.server as ws_server
import websockets.extensions.permessage_deflate as ws_pmd
from websockets.exceptions import ConnectionClosedError

import femtows.websockets.extensions.permessage_deflate as f_pmd
from femtows.websockets.asyncio import client as f_client
from femtows.websockets.asyncio import server as f_server
from tests.utils import encode_frame, raw_upgrade_request, read_frame

Params = Tuple[bool, bool, int, int]
MESSAGE = '{"symbol": "BTC-USD", "bid": 97000.5, "ask": 97001.0} ' * 200

# Factory keywords: the default (None: compression="deflate") and each parameter.
CLIENT_CASES: List[Optional[Dict[str, Any]]] = [
    None,
    {"server_no_context_takeover": True},
    {"client_no_context_takeover": True},
    {"server_max_window_bits": 10},
    {"client_max_window_bits": 11},
    {"client_max_window_bits": None},
    {"compress_settings": {"memLevel": 5, "level": 1}},
]
SERVER_CASES: List[Optional[Dict[str, Any]]] = [
    None,
    {"server_no_context_takeover": True},
    {"client_no_context_takeover": True},
    {"server_max_window_bits": 10},
    {"client_max_window_bits": 11},
    {"client_max_window_bits": 11, "require_client_max_window_bits": True},
    {"compress_settings": {"memLevel": 5}},
]


def params(connection: Any) -> Optional[Params]:
    """What ``protocol.extensions`` says (None: no extension)."""
    extensions = connection.protocol.extensions
    if not extensions:
        return None
    assert len(extensions) == 1
    ext = extensions[0]
    assert ext.name == "permessage-deflate"
    return (ext.remote_no_context_takeover, ext.local_no_context_takeover,
            ext.remote_max_window_bits, ext.local_max_window_bits)


def options(kwargs: Optional[Dict[str, Any]], factory: Callable[..., Any]) -> Dict[str, Any]:
    return {} if kwargs is None else {"extensions": [factory(**kwargs)]}


async def negotiate(
    serve: Callable[..., Any], server_opts: Dict[str, Any],
    connect: Callable[..., Any], client_opts: Dict[str, Any],
) -> Tuple[Optional[str], Optional[Params], Optional[Params]]:
    """(101 answer, client's params, server's params) after an echo of MESSAGE."""
    seen: List[Optional[Params]] = []

    async def echo(ws: Any) -> None:
        seen.append(params(ws))
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, **server_opts) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", **client_opts) as ws:
            await ws.send(MESSAGE)
            assert await ws.recv() == MESSAGE
            await ws.send(MESSAGE.encode())
            assert await ws.recv() == MESSAGE.encode()
            answer = ws.response.headers.get("Sec-WebSocket-Extensions")
            mine = params(ws)
    return answer, mine, seen[0]


@pytest.mark.parametrize("kwargs", CLIENT_CASES, ids=repr)
async def test_client_negotiates_as_websockets(kwargs: Optional[Dict[str, Any]]) -> None:
    """femtows client against a websockets server: the same answer and parameters as a
    websockets client with the same factory."""
    reference = await negotiate(ws_server.serve, {}, ws_client.connect,
                                options(kwargs, ws_pmd.ClientPerMessageDeflateFactory))
    ours = await negotiate(ws_server.serve, {}, f_client.connect,
                           options(kwargs, f_pmd.ClientPerMessageDeflateFactory))
    assert reference[0] is not None and reference[1] is not None
    assert ours == reference


@pytest.mark.parametrize("kwargs", SERVER_CASES, ids=repr)
async def test_server_negotiates_as_websockets(kwargs: Optional[Dict[str, Any]]) -> None:
    """femtows server against a websockets client: the same answer and parameters as a
    websockets server with the same factory."""
    reference = await negotiate(
        ws_server.serve, options(kwargs, ws_pmd.ServerPerMessageDeflateFactory),
        ws_client.connect, {})
    ours = await negotiate(
        f_server.serve, options(kwargs, f_pmd.ServerPerMessageDeflateFactory),
        ws_client.connect, {})
    assert reference[0] is not None and reference[1] is not None
    assert ours == reference


async def test_extensions_contents_and_repr() -> None:
    """Default on both sides: websockets' server defaults, PerMessageDeflate objects."""
    answer, client_params, server_params = await negotiate(
        f_server.serve, {}, f_client.connect, {})
    assert answer == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    assert client_params == (False, False, 12, 12)
    assert server_params == (False, False, 12, 12)

    async def handler(ws: Any) -> None:
        await ws.wait_closed()

    async with f_server.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with f_client.connect(f"ws://127.0.0.1:{port}/") as ws:
            (ext,) = ws.protocol.extensions
            assert isinstance(ext, f_pmd.PerMessageDeflate)
            assert ext.compress_settings == {"memLevel": 5}
            assert repr(ext) == (
                "PerMessageDeflate(remote_no_context_takeover=False, "
                "local_no_context_takeover=False, remote_max_window_bits=12, "
                "local_max_window_bits=12)"
            )


@pytest.mark.parametrize("side", ["client", "server"])
async def test_compression_none_negotiates_nothing(side: str) -> None:
    """compression=None on either femtows side: no extension, messages still echo."""
    if side == "client":
        answer, mine, theirs = await negotiate(
            ws_server.serve, {}, f_client.connect, {"compression": None})
    else:
        answer, mine, theirs = await negotiate(
            f_server.serve, {"compression": None}, ws_client.connect, {})
    assert (answer, mine, theirs) == (None, None, None)


async def test_compression_none_rsv1_is_a_protocol_error() -> None:
    """Without permessage-deflate a frame with RSV1 fails the connection with 1002."""
    closed: List[Any] = []

    async def handler(ws: Any) -> None:
        try:
            await ws.recv()
        except Exception as exc:
            closed.append(exc)

    offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    async with f_server.serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw_upgrade_request(extra=offer))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert b"sec-websocket-extensions" not in head.lower()
        deflater = zlib.compressobj(wbits=-15)
        payload = (deflater.compress(b"hello") + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]
        writer.write(encode_frame(0x1, payload, rsv=0x40))
        frame = await read_frame(reader)
        writer.close()
    assert frame.opcode == 0x8 and frame.close_code == 1002
    assert closed and type(closed[0]).__name__ == "ConnectionClosedError"


@pytest.mark.parametrize("fragmented", [False, True])
async def test_compression_bomb_closes_1009_as_websockets(fragmented: bool) -> None:
    """A compressed message that inflates past max_size: 1009 with websockets' text."""
    bomb = "x" * 600 if fragmented else "\0" * (4 * 2**20)  # 4 MiB: ~4 KiB on the wire

    async def run(serve: Callable[..., Any]) -> Tuple[Optional[int], Optional[str]]:
        async def handler(ws: Any) -> None:
            async for _ in ws:
                pass

        async with serve(handler, "127.0.0.1", 0, max_size=1000) as server:
            port = server.sockets[0].getsockname()[1]
            async with ws_client.connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send([bomb, "y" * 600] if fragmented else bomb)
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
        rcvd = info.value.rcvd
        return (None, None) if rcvd is None else (rcvd.code, rcvd.reason)

    reference = await run(ws_server.serve)
    ours = await run(f_server.serve)
    assert reference[0] == 1009
    assert ours == reference


async def test_client_refuses_a_bomb_with_1009() -> None:
    """The drop-in client's max_size caps inflation of what a websockets server sends."""

    async def bomb(ws: Any) -> None:
        await ws.send(b"\0" * (8 * 2**20))
        await ws.wait_closed()

    async with ws_server.serve(bomb, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with f_client.connect(f"ws://127.0.0.1:{port}/", max_size=2**16) as ws:
            assert params(ws) is not None
            with pytest.raises(Exception) as info:
                await ws.recv()
    assert type(info.value).__name__ == "ConnectionClosedError"
    assert ws.close_code == 1009 or info.value.sent.code == 1009  # type: ignore[attr-defined]
    assert str(info.value).startswith(
        "sent 1009 (message too big) frame exceeds limit of 65536 bytes")


def test_non_deflate_extension_factories_are_not_implemented() -> None:
    class Other(websockets.extensions.ClientExtensionFactory):
        name = "x-other"  # type: ignore[assignment]

    with pytest.raises(NotImplementedError):
        f_client.connect("ws://127.0.0.1:1/", extensions=[Other()])
    with pytest.raises(NotImplementedError):
        f_client.connect("ws://127.0.0.1:1/", extensions=[
            f_pmd.ClientPerMessageDeflateFactory(), f_pmd.ClientPerMessageDeflateFactory()])


def test_sync_api_negotiates_as_websockets() -> None:
    """The threading API runs on the same engine: the same answers as websockets.sync."""
    import threading

    import websockets.sync.client as ws_sync_client
    import websockets.sync.server as ws_sync_server

    import femtows.websockets.sync.client as f_sync_client
    import femtows.websockets.sync.server as f_sync_server

    def run(serve: Any, connect: Any) -> Tuple[Optional[str], Optional[Params], Optional[Params]]:
        seen: List[Optional[Params]] = []

        def echo(ws: Any) -> None:
            seen.append(params(ws))
            for message in ws:
                ws.send(message)

        with serve(echo, "127.0.0.1", 0) as server:
            thread = threading.Thread(target=server.serve_forever)
            thread.start()
            try:
                port = server.socket.getsockname()[1]
                with connect(f"ws://127.0.0.1:{port}/") as ws:
                    ws.send(MESSAGE)
                    assert ws.recv() == MESSAGE
                    answer = ws.response.headers.get("Sec-WebSocket-Extensions")
                    mine = params(ws)
            finally:
                server.shutdown()
                thread.join()
        return answer, mine, seen[0]

    reference = run(ws_sync_server.serve, ws_sync_client.connect)
    assert reference[1] is not None
    assert run(f_sync_server.serve, ws_sync_client.connect) == reference
    assert run(ws_sync_server.serve, f_sync_client.connect)[1:] == (
        (False, False, 12, 12), (False, False, 12, 12))


async def server_frames(serve: Callable[..., Any], server_opts: Dict[str, Any]) -> List[bytes]:
    """Payloads of the first two frames a server sends (MESSAGE twice, same context) to a raw
    client that offered plain permessage-deflate."""

    async def handler(ws: Any) -> None:
        await ws.send(MESSAGE)
        await ws.send(MESSAGE)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, **server_opts) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(raw_upgrade_request(
                extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 101 ")
            frames = [await read_frame(reader), await read_frame(reader)]
        finally:
            writer.close()
    assert all(f.rsv == 0x40 for f in frames)
    return [f.payload for f in frames]


async def test_default_level_is_1_and_a_named_level_gives_websockets_bytes() -> None:
    """Without a level in compress_settings the drop-in compresses at zlib level 1 (a
    deliberate difference: docs/websockets.md); with memLevel 5 and level 6 named, its frames
    are byte for byte those of a websockets server."""
    comp = zlib.compressobj(1, zlib.DEFLATED, -12, 5)
    expected = [(comp.compress(MESSAGE.encode()) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
                for _ in range(2)]
    assert await server_frames(f_server.serve, {}) == expected

    settings = {"memLevel": 5, "level": 6}
    ours = await server_frames(f_server.serve, options(
        {"server_max_window_bits": 12, "client_max_window_bits": 12,
         "compress_settings": settings}, f_pmd.ServerPerMessageDeflateFactory))
    reference = await server_frames(ws_server.serve, {})
    assert ours == reference
    assert ours != expected
