"""Origin checks: allowed origins, a missing Origin (None in the list), a refused origin (403)."""

import asyncio
import re

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import InvalidStatus


async def handler(websocket):
    await websocket.send(f"origin {websocket.request.headers.get('Origin')}")


async def attempt(port, origin):
    try:
        async with connect(f"ws://127.0.0.1:{port}/", origin=origin) as ws:
            print(origin, "->", await ws.recv())
    except InvalidStatus as exc:
        print(origin, "->", exc, "|", exc.response.body.decode().strip())


async def main():
    allowed = ["https://good.example", re.compile(r"https://.*\.trusted\.example"), None]
    async with serve(handler, "127.0.0.1", 0, origins=allowed) as server:
        port = server.sockets[0].getsockname()[1]
        for origin in [
            "https://good.example",
            "https://a.trusted.example",
            None,
            "https://evil.example",
            "https://good.example.evil",
        ]:
            await attempt(port, origin)
    async with serve(handler, "127.0.0.1", 0, origins=["https://only.example"]) as server:
        port = server.sockets[0].getsockname()[1]
        await attempt(port, None)


asyncio.run(main())
