"""The seed's asyncio echo server (websockets introduction), with an asyncio client.

The server code is the introduction's; it listens on a free port instead of 8765 so tests can
run in parallel, and the client is the introduction's "Hello world!" client on the asyncio API.
"""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def hello(port):
    async with connect(f"ws://localhost:{port}") as websocket:
        await websocket.send("Hello world!")
        message = await websocket.recv()
        print(f"Received: {message}")


async def main():
    async with serve(echo, "localhost", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await hello(port)


asyncio.run(main())
