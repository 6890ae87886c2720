"""Keepalive: a peer that never answers pings fails the connection with 1011
"keepalive ping timeout"; latency is measured when the peer does answer."""

import asyncio
import base64
import hashlib

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def mute_server(reader, writer):
    """Completes the opening handshake, then reads and ignores everything (no pongs)."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    while await reader.read(65536):
        pass
    writer.close()


async def quiet(websocket):
    await websocket.wait_closed()


async def main():
    server = await asyncio.start_server(mute_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with connect(f"ws://127.0.0.1:{port}/", ping_interval=0.05, ping_timeout=0.1) as ws:
        try:
            await ws.recv()
        except ConnectionClosedError as exc:
            print("recv raised:", type(exc).__name__, "|", exc)
            print("sent:", exc.sent, "| rcvd:", exc.rcvd)
    print("close_code:", ws.close_code, "| state:", ws.state.name)
    server.close()
    await server.wait_closed()

    # A live peer answers: keepalive keeps the connection open and measures latency.
    async with serve(quiet, "127.0.0.1", 0, ping_interval=None) as live:
        port = live.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", ping_interval=0.02) as ws:
            pong_waiter = await ws.ping(b"x")
            latency = await pong_waiter
            print("ping answered:", latency >= 0, "| latency attribute:", ws.latency >= 0)
            print("still open:", ws.state.name)


asyncio.run(main())
