"""permessage-deflate interop with websockets (17.x) and aiohttp, both directions, over the
parameter combinations each peer can express. Every test asserts that compression was actually
negotiated on both ends, then echoes text and binary messages (empty to 1 MiB, and one
fragmented message) through the peer.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Optional

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import connect as websockets_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

import femtows
from femtows import WSDeflateConfig, WSMsgType
from tests.utils import EchoListener, RecordingListener

MAX_SIZE = 4 * 1024 * 1024
TEXT = "héllo wörld ✓ {\"bid\": 1.0842} " * 40
MESSAGES: list[Any] = [
    "", b"", "a", TEXT, TEXT.encode() * 3, bytes(range(256)) * 300,
    (TEXT * 900)[:1 << 20], bytes(1 << 20),
]


def as_frame(message: Any) -> tuple[WSMsgType, bytes]:
    if isinstance(message, str):
        return WSMsgType.TEXT, message.encode()
    return WSMsgType.BINARY, message


async def femtows_client_echo(url: str, compression: Any) -> femtows.WSDeflateParams:
    transport, client = await femtows.ws_connect(
        RecordingListener, url, compression=compression, max_frame_size=MAX_SIZE
    )
    assert isinstance(client, RecordingListener)
    params = transport.compression
    assert params is not None, "permessage-deflate was not negotiated"
    for i, message in enumerate(MESSAGES):
        transport.send(*as_frame(message))
        assert await client.wait_message(i) == as_frame(message)
    # One fragmented message, compressed frame by frame.
    transport.send(WSMsgType.TEXT, TEXT, fin=False)
    transport.send(WSMsgType.CONTINUATION, TEXT.encode(), fin=False)
    transport.send(WSMsgType.CONTINUATION, b"!", fin=True)
    assert await client.wait_message(len(MESSAGES)) == (
        WSMsgType.TEXT, (TEXT * 2 + "!").encode())
    transport.send_close(femtows.WSCloseCode.OK)
    await transport.wait_disconnected()
    return params


@contextlib.asynccontextmanager
async def femtows_echo_server(compression: Any) -> AsyncIterator[tuple[str, list[Any]]]:
    transports: list[Any] = []

    class Echo(EchoListener):
        def on_ws_connected(self, transport: femtows.WSTransport) -> None:
            transports.append(transport)

    server = await femtows.ws_create_server(
        lambda request: Echo(), "127.0.0.1", 0, compression=compression, max_frame_size=MAX_SIZE
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", transports


# -- websockets ----------------------------------------------------------------------------------

CLIENT_FACTORIES = {
    "default": dict(compress_settings={"memLevel": 5}),
    "snct": dict(server_no_context_takeover=True),
    "cnct": dict(client_no_context_takeover=True),
    "smwb10": dict(server_max_window_bits=10),
    "cmwb9": dict(client_max_window_bits=9),
    "no-cmwb": dict(client_max_window_bits=None),
    "all": dict(server_no_context_takeover=True, client_no_context_takeover=True,
                server_max_window_bits=9, client_max_window_bits=11),
}

FEMTOWS_SERVER_CONFIGS = {
    "deflate": "deflate",
    "websockets-defaults": WSDeflateConfig(server_max_window_bits=12, client_max_window_bits=12,
                                           mem_level=5),
    "forced": WSDeflateConfig(server_no_context_takeover=True, client_no_context_takeover=True),
}


def local_remote(ext: PerMessageDeflate) -> tuple[bool, bool, int, int]:
    return (ext.local_no_context_takeover, ext.remote_no_context_takeover,
            ext.local_max_window_bits, ext.remote_max_window_bits)


def mirrored(params: femtows.WSDeflateParams) -> tuple[bool, bool, int, int]:
    """femtows's params seen from the peer (local and remote swapped)."""
    return (params.remote_no_context_takeover, params.local_no_context_takeover,
            params.remote_max_window_bits, params.local_max_window_bits)


@pytest.mark.parametrize("server_cfg", list(FEMTOWS_SERVER_CONFIGS))
@pytest.mark.parametrize("client_factory", list(CLIENT_FACTORIES))
async def test_websockets_client_to_femtows_server(client_factory, server_cfg):
    factory = ClientPerMessageDeflateFactory(**CLIENT_FACTORIES[client_factory])
    async with femtows_echo_server(FEMTOWS_SERVER_CONFIGS[server_cfg]) as (url, transports):
        async with websockets_connect(url, extensions=[factory], compression=None,
                                      max_size=MAX_SIZE) as ws:
            assert len(ws.protocol.extensions) == 1, "permessage-deflate was not negotiated"
            ext = ws.protocol.extensions[0]
            assert isinstance(ext, PerMessageDeflate)
            for message in MESSAGES:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.send([TEXT, TEXT, "!"])
            assert await ws.recv() == TEXT * 2 + "!"
        params = transports[0].compression
        assert params is not None
        assert local_remote(ext) == mirrored(params)


SERVER_FACTORIES = {
    "default": dict(server_max_window_bits=12, client_max_window_bits=12,
                    compress_settings={"memLevel": 5}),
    "plain": dict(),
    "snct": dict(server_no_context_takeover=True),
    "cnct": dict(client_no_context_takeover=True),
    "smwb9": dict(server_max_window_bits=9),
    "cmwb10-required": dict(client_max_window_bits=10, require_client_max_window_bits=True),
}

FEMTOWS_CLIENT_CONFIGS = {
    "deflate": "deflate",
    "all": WSDeflateConfig(True, True, 10, 9),
    "cmwb-bare": WSDeflateConfig(client_max_window_bits=True, mem_level=5, compress_level=1),
}


@pytest.mark.parametrize("client_cfg", list(FEMTOWS_CLIENT_CONFIGS))
@pytest.mark.parametrize("server_factory", list(SERVER_FACTORIES))
async def test_femtows_client_to_websockets_server(server_factory, client_cfg):
    extensions: list[PerMessageDeflate] = []

    async def echo(ws: ServerConnection) -> None:
        extensions.extend(ws.protocol.extensions)  # type: ignore[arg-type]
        async for message in ws:
            await ws.send(message)

    factory = ServerPerMessageDeflateFactory(**SERVER_FACTORIES[server_factory])
    async with websockets_serve(echo, "127.0.0.1", 0, extensions=[factory], compression=None,
                                max_size=MAX_SIZE) as server:
        port = server.sockets[0].getsockname()[1]
        params = await femtows_client_echo(f"ws://127.0.0.1:{port}/",
                                           FEMTOWS_CLIENT_CONFIGS[client_cfg])
    assert len(extensions) == 1
    assert local_remote(extensions[0]) == mirrored(params)


# -- aiohttp -------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [15, 12, 9])
@pytest.mark.parametrize("server_cfg", list(FEMTOWS_SERVER_CONFIGS))
async def test_aiohttp_client_to_femtows_server(server_cfg, compress):
    async with femtows_echo_server(FEMTOWS_SERVER_CONFIGS[server_cfg]) as (url, transports):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, compress=compress, max_msg_size=MAX_SIZE) as ws:
                assert ws.compress, "permessage-deflate was not negotiated"
                for message in MESSAGES:
                    if isinstance(message, str):
                        await ws.send_str(message)
                        assert (await ws.receive()).data == message
                    else:
                        await ws.send_bytes(message)
                        assert (await ws.receive()).data == message
        params = transports[0].compression
        assert params is not None
        assert params.local_max_window_bits <= 15


@pytest.mark.parametrize(
    "client_cfg",
    [
        "deflate",
        WSDeflateConfig(server_no_context_takeover=True),
        WSDeflateConfig(server_max_window_bits=10),
        WSDeflateConfig(client_no_context_takeover=True, client_max_window_bits=True),
    ],
    ids=["deflate", "snct", "smwb10", "cnct"],
)
@pytest.mark.parametrize("server_compress", [True])
async def test_femtows_client_to_aiohttp_server(client_cfg, server_compress):
    seen: dict[str, Optional[int]] = {}

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=server_compress, max_msg_size=MAX_SIZE)
        await ws.prepare(request)
        seen["compress"] = ws.compress
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        params = await femtows_client_echo(f"ws://127.0.0.1:{port}/", client_cfg)
    finally:
        await runner.cleanup()
    assert seen["compress"]
    if isinstance(client_cfg, WSDeflateConfig) and client_cfg.server_max_window_bits:
        assert params.remote_max_window_bits <= client_cfg.server_max_window_bits
