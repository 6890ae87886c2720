"""Unix sockets (unix_serve / unix_connect), the ``await connect()`` form, and server shutdown:
open connections get 1001 (going away) and wait_closed() returns."""

import asyncio
import os
import tempfile

from websockets.asyncio.client import connect, unix_connect
from websockets.asyncio.server import serve, unix_serve
from websockets.exceptions import ConnectionClosedOK


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def main():
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ws.sock")
        async with unix_serve(echo, path):
            async with unix_connect(path) as ws:
                await ws.send("over a unix socket")
                print(await ws.recv())
                print("remote address is the path:", ws.remote_address == path)

    server = await serve(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print("serving:", server.is_serving())
    ws = await connect(f"ws://127.0.0.1:{port}/")
    await ws.send("before shutdown")
    print(await ws.recv())
    print("server connections:", len(server.connections))
    server.close()
    try:
        await ws.recv()
    except ConnectionClosedOK as exc:
        print("client:", type(exc).__name__, "|", exc)
    await server.wait_closed()
    print("serving:", server.is_serving(), "| close_code:", ws.close_code)
    try:
        await connect(f"ws://127.0.0.1:{port}/", open_timeout=2)
    except OSError as exc:
        print("after shutdown:", type(exc).__name__)


asyncio.run(main())
