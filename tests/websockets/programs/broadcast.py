"""broadcast() to every open connection; connections that closed are skipped."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve

CLIENTS = set()
changed = None  # asyncio.Condition, created in main()


async def handler(websocket):
    async with changed:
        CLIENTS.add(websocket)
        changed.notify_all()
    try:
        await websocket.wait_closed()
    finally:
        async with changed:
            CLIENTS.discard(websocket)
            changed.notify_all()


async def main():
    global changed
    changed = asyncio.Condition()
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        clients = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(4)]
        async with changed:
            await changed.wait_for(lambda: len(CLIENTS) == 4)
        broadcast(CLIENTS, "first news")
        broadcast(CLIENTS, b"binary news")
        for index, ws in enumerate(clients):
            print(index, await ws.recv(), await ws.recv())
        await clients[0].close()
        async with changed:
            await changed.wait_for(lambda: len(CLIENTS) == 3)
        broadcast(server.connections, "second news")
        for index, ws in enumerate(clients[1:], 1):
            print(index, await ws.recv())
        print("connections:", len(server.connections))
        for ws in clients[1:]:
            await ws.close()


asyncio.run(main())
