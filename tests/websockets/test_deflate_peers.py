"""permessage-deflate with real peers (scripts/peers): Node's ``ws`` with perMessageDeflate on,
both directions, and headless Chromium connecting to femtows servers (core with
``compression="deflate"`` and the websockets drop-in). Text and binary up to 1 MiB; every test
asserts that permessage-deflate was negotiated on both ends."""

from __future__ import annotations

import os
import random
from typing import Any, List, Optional

import pytest

import femtows
from femtows import WSTransport
from femtows.websockets.asyncio import client as f_client
from femtows.websockets.asyncio import server as f_server
from tests.utils import EchoListener, RecordingListener

SIZES = [100, 64 * 1024, 2**20]


def payloads(size: int) -> List[Any]:
    """A compressible text and a half-random binary message of ``size`` bytes."""
    rng = random.Random(size)
    words = ["bid", "ask", "BTC-USD", "97001.5", "qty", "0.25", "{", "}", ","]
    text = " ".join(rng.choice(words) for _ in range(size // 3))[:size]
    binary = os.urandom(size // 2) + bytes(size - size // 2)
    return [text, binary]


class CoreEcho(EchoListener):
    """The core echo, remembering what was negotiated."""

    negotiated: List[Optional[femtows.WSDeflateParams]] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        CoreEcho.negotiated.append(transport.compression)


async def drop_in_echo(ws: Any) -> None:
    assert ws.protocol.extensions, "permessage-deflate was not negotiated"
    async for message in ws:
        await ws.send(message)


async def exchange(conn: Any) -> None:
    for size in SIZES:
        for message in payloads(size):
            await conn.send(message)
            assert await conn.recv(timeout=30.0) == message


NODE_SERVER = """
  const { WebSocketServer } = require("ws");
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: true,
                                    maxPayload: 4 * 1024 * 1024 });
  globalThis.deflateHeaders = [];
  wss.on("headers", (headers, req) => {
    globalThis.deflateHeaders.push(req.headers["sec-websocket-extensions"] || null);
  });
  wss.on("connection", (ws) => ws.on("message", (m, bin) => ws.send(m, { binary: bin })));
  await new Promise((r) => wss.on("listening", r));
  globalThis.deflateServer = wss;
  return wss.address().port;
"""


async def test_node_client_to_drop_in_server(node_peer: Any) -> None:
    async with f_server.serve(drop_in_echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await node_peer.open(f"ws://127.0.0.1:{port}/")
        assert conn.extensions.startswith("permessage-deflate")
        assert conn.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        await exchange(conn)
        await conn.close(1000, "")
        assert (await conn.closed())[0] == 1000


async def test_node_client_to_core_server(node_peer: Any) -> None:
    CoreEcho.negotiated = []
    server = await femtows.ws_create_server(
        lambda request: CoreEcho(), "127.0.0.1", 0, compression="deflate",
        max_frame_size=4 * 2**20)
    async with server:
        port = server.sockets[0].getsockname()[1]
        conn = await node_peer.open(f"ws://127.0.0.1:{port}/")
        assert conn.extensions.startswith("permessage-deflate")
        await exchange(conn)
        await conn.close(1000, "")
        await conn.closed()
    assert CoreEcho.negotiated and CoreEcho.negotiated[0] is not None


async def test_drop_in_client_to_node_server(node_peer: Any) -> None:
    port = await node_peer.call(NODE_SERVER)
    try:
        async with f_client.connect(f"ws://127.0.0.1:{port}/", max_size=4 * 2**20) as ws:
            (ext,) = ws.protocol.extensions
            assert ext.name == "permessage-deflate"
            assert ws.response.headers["Sec-WebSocket-Extensions"].startswith(
                "permessage-deflate")
            for size in SIZES:
                for message in payloads(size):
                    await ws.send(message)
                    assert await ws.recv() == message
        offers = await node_peer.call("return globalThis.deflateHeaders;")
        assert offers == ["permessage-deflate; client_max_window_bits"]
    finally:
        await node_peer.call("globalThis.deflateServer.close(); return true;")


async def test_core_client_to_node_server(node_peer: Any) -> None:
    port = await node_peer.call(NODE_SERVER)
    try:
        transport, client = await femtows.ws_connect(
            RecordingListener, f"ws://127.0.0.1:{port}/", compression="deflate",
            max_frame_size=4 * 2**20)
        assert isinstance(client, RecordingListener)
        assert transport.compression is not None
        index = 0
        for size in SIZES:
            for message in payloads(size):
                kind = femtows.WSMsgType.TEXT if isinstance(message, str) else (
                    femtows.WSMsgType.BINARY)
                data = message.encode() if isinstance(message, str) else message
                transport.send(kind, data)
                assert await client.wait_message(index) == (kind, data)
                index += 1
        transport.send_close(femtows.WSCloseCode.OK)
        await transport.wait_disconnected()
    finally:
        await node_peer.call("globalThis.deflateServer.close(); return true;")


@pytest.mark.parametrize("api", ["core", "drop-in"])
async def test_chromium_to_femtows_server(chromium_peer: Any, api: str) -> None:
    CoreEcho.negotiated = []
    if api == "core":
        server: Any = await femtows.ws_create_server(
            lambda request: CoreEcho(), "127.0.0.1", 0, compression="deflate",
            max_frame_size=4 * 2**20)
    else:
        server = await f_server.serve(drop_in_echo, "127.0.0.1", 0, max_size=4 * 2**20)
    async with server:
        port = server.sockets[0].getsockname()[1]
        conn = await chromium_peer.open(f"ws://127.0.0.1:{port}/")
        assert conn.extensions.startswith("permessage-deflate")
        await exchange(conn)
        await conn.close(1000, "")
        assert (await conn.closed())[0] == 1000
    if api == "core":
        assert CoreEcho.negotiated and CoreEcho.negotiated[0] is not None
