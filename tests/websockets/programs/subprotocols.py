"""Subprotocol negotiation: server preference order, no common subprotocol, and a custom
select_subprotocol."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import InvalidHandshake, InvalidStatus


async def handler(websocket):
    await websocket.send(f"server chose {websocket.subprotocol}")


def pick_last(connection, subprotocols):
    if "v3" in subprotocols:
        raise ValueError("v3 is retired")
    return subprotocols[-1] if subprotocols else None


async def attempt(port, subprotocols):
    try:
        async with connect(f"ws://127.0.0.1:{port}/", subprotocols=subprotocols) as ws:
            print(subprotocols, "->", ws.subprotocol, "|", await ws.recv())
    except InvalidStatus as exc:
        print(subprotocols, "->", "InvalidStatus:", exc)
    except InvalidHandshake as exc:
        print(subprotocols, "->", type(exc).__name__ + ":", exc)


async def main():
    async with serve(handler, "127.0.0.1", 0, subprotocols=["chat", "superchat"]) as server:
        port = server.sockets[0].getsockname()[1]
        await attempt(port, ["superchat", "chat"])
        await attempt(port, ["superchat"])
        await attempt(port, ["other"])
        await attempt(port, None)
    async with serve(handler, "127.0.0.1", 0, select_subprotocol=pick_last) as server:
        port = server.sockets[0].getsockname()[1]
        await attempt(port, ["v1", "v2"])
        await attempt(port, ["v1", "v3"])
    try:
        connect("ws://127.0.0.1:1/", subprotocols=["bad value"])
    except ValueError as exc:
        print("client refuses:", exc)


asyncio.run(main())
