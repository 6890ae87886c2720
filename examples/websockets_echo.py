"""Echo server and client with femtows.websockets, the websockets-style asyncio API.

    python examples/websockets_echo.py

The same program as websockets' introduction, on femtows: only the imports differ. The server
and the client run in one process here.
"""

from __future__ import annotations

import asyncio

from femtows.websockets.asyncio.client import connect
from femtows.websockets.asyncio.server import ServerConnection, serve
from femtows.websockets.exceptions import ConnectionClosedOK


async def echo(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def main() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as websocket:
            await websocket.send("Hello world!")
            print(f"received: {await websocket.recv()}")
            await websocket.send(b"\x00\x01binary")
            print(f"received: {await websocket.recv()!r}")
        try:
            await websocket.recv()
        except ConnectionClosedOK as exc:
            print(f"closed: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
