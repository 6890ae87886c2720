"""Fragmented messages: send() of sync and async iterables, recv_streaming() fragment by
fragment, recv() reassembling, and the typing rules of iterables."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def handler(websocket):
    # Stream the first three messages back fragment by fragment, then echo whole messages.
    for _ in range(3):
        fragments = [fragment async for fragment in websocket.recv_streaming()]
        await websocket.send(repr(fragments))
    async for message in websocket:
        await websocket.send(message)


async def agen():
    for part in ["async ", "gen", "erator"]:
        yield part


async def main():
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(["frag", "ment", "ed"])
            print(await ws.recv())
            await ws.send([b"\x01\x02", bytearray(b"\x03"), memoryview(b"\x04")])
            print(await ws.recv())
            await ws.send(agen())
            print(await ws.recv())
            # Whole-message echo of fragmented messages.
            await ws.send(iter(["a", "b", "c"]))
            print(repr(await ws.recv()))
            await ws.send(b"x" * 10 for _ in range(3))
            print(repr(await ws.recv()))
            # Client-side streaming of a message the server sent in one frame.
            await ws.send("single frame")
            print([fragment async for fragment in ws.recv_streaming()])
            await ws.send([])
            print("empty iterable sends nothing; next:", end=" ")
            await ws.send("next")
            print(await ws.recv())
            for bad in (42, None):
                try:
                    await ws.send(bad)
                except TypeError as exc:
                    print("TypeError:", exc, "| state:", ws.state.name)
            # An iterable of the wrong types fails the connection (websockets' rule).
            try:
                await ws.send(["text", b"bytes"])
            except TypeError as exc:
                print("TypeError:", exc)
            await ws.wait_closed()
            print("closed:", ws.close_code, ws.close_reason)


asyncio.run(main())
