"""max_size: a message over the limit closes the connection with 1009 (message too big), on
either side; max_size=None lifts the limit; (message, fragment) pairs limit frames."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError

results = []


async def handler(websocket):
    try:
        async for message in websocket:
            await websocket.send(f"got {len(message)} bytes")
    except ConnectionClosedError as exc:
        results.append(f"server: {type(exc).__name__} | {exc}")


async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=1000) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(b"x" * 1000)
            print(await ws.recv())
            await ws.send(b"x" * 1001)
            try:
                await ws.recv()
            except ConnectionClosedError as exc:
                print("client:", type(exc).__name__, "|", exc)
            # The limit applies to messages, fragmented or not.
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(["x" * 600, "y" * 600])
            try:
                await ws.recv()
            except ConnectionClosedError as exc:
                print("client (fragmented):", exc)
    print("\n".join(results))

    async def big(websocket):
        await websocket.send("z" * 5000)
        await websocket.wait_closed()

    async with serve(big, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", max_size=4096) as ws:
            try:
                await ws.recv()
            except ConnectionClosedError as exc:
                print("client limit:", exc, "| close_code:", ws.close_code)
        async with connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
            print("no limit:", len(await ws.recv()))


asyncio.run(main())
