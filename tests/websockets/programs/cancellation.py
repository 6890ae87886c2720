"""recv() is cancel-safe: a timed-out recv() loses nothing; a second concurrent recv() raises
ConcurrencyError; the connection stays usable after a cancelled recv(); recv_streaming in a loop."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConcurrencyError


async def handler(websocket):
    async for message in websocket:
        if message == "go":
            await websocket.send("first")
            await websocket.send(["sec", "ond"])
        # Anything else gets no answer.


async def main():
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            try:
                await asyncio.wait_for(ws.recv(), 0.05)
            except asyncio.TimeoutError:
                print("recv timed out, connection", ws.state.name)
            waiter = asyncio.create_task(ws.recv())
            await asyncio.sleep(0)
            try:
                await ws.recv()
            except ConcurrencyError as exc:
                print("ConcurrencyError:", exc)
            await ws.send("go")
            print("waiter got:", await waiter)
            print("then:", await ws.recv())
            task = asyncio.create_task(ws.recv())
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                print("cancelled recv, connection", ws.state.name)
            await ws.send("go")
            print("after cancel:", await ws.recv(), "|", await ws.recv())
            await ws.send("no answer to this")
        print("closed:", ws.close_code, repr(ws.close_reason))


asyncio.run(main())
