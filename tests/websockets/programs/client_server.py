"""Client and server basics: text and binary messages, decode=, attributes, close codes."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.protocol import State

server_log = []


async def handler(websocket):
    server_log.append(f"server path: {websocket.request.path}")
    server_log.append(f"server sees header: {websocket.request.headers['X-Client']}")
    async for message in websocket:
        if message == "bye":
            await websocket.close(4000, "see you")
            break
        kind = type(message).__name__
        await websocket.send(f"{kind}:{len(message)}")
        await websocket.send(message)
    server_log.append(f"server state after close: {websocket.state.name}")


async def main():
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        uri = f"ws://127.0.0.1:{port}/chat?room=1"
        async with connect(uri, additional_headers={"X-Client": "demo"}) as ws:
            print("client state:", ws.state.name, ws.state is State.OPEN)
            print("response status:", ws.response.status_code, ws.response.reason_phrase)
            print("upgrade header:", ws.response.headers["Upgrade"])
            print("subprotocol:", ws.subprotocol)
            await ws.send("héllo")
            print(await ws.recv(), repr(await ws.recv()))
            await ws.send(b"\x00\x01\x02")
            print(await ws.recv(), repr(await ws.recv()))
            await ws.send(bytearray(b"abc"))
            print(await ws.recv(), repr(await ws.recv(decode=True)))
            await ws.send(memoryview(b"xyz"))
            print(await ws.recv(decode=False), repr(await ws.recv()))
            await ws.send("bye")
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                print("client got:", type(exc).__name__, "|", exc)
                print("rcvd:", exc.rcvd.code, exc.rcvd.reason, "sent:", exc.sent.code)
                print("isinstance OK:", isinstance(exc, ConnectionClosedOK))
            print("close code/reason:", ws.close_code, repr(ws.close_reason))
            print("client state:", ws.state.name)
        try:
            await ws.send("late")
        except ConnectionClosed as exc:
            print("send after close:", type(exc).__name__, "|", exc)
    print("\n".join(server_log))


asyncio.run(main())
