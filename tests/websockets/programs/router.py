"""route() with a werkzeug Map: URL parameters as handler arguments, redirects, 404."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.router import route
from websockets.exceptions import InvalidStatus
from werkzeug.routing import Map, Rule


async def hello(websocket):
    await websocket.send("hello from " + websocket.request.path)


async def channel(websocket, channel_id, page):
    await websocket.send(f"channel {channel_id!r} page {page!r}")


url_map = Map(
    [
        Rule("/hello", endpoint=hello),
        Rule("/channel/<int:channel_id>", endpoint=channel, defaults={"page": 1}),
        Rule("/channel/<int:channel_id>/<int:page>", endpoint=channel),
        Rule("/old", redirect_to="/hello"),
    ]
)


async def main():
    async with route(url_map, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        base = f"ws://127.0.0.1:{port}"
        for path in ["/hello", "/channel/7", "/channel/7/3", "/old", "/nowhere", "/channel/x"]:
            try:
                async with connect(base + path) as ws:
                    print(path, "->", await ws.recv())
            except InvalidStatus as exc:
                response = exc.response
                print(path, "->", exc, "|", response.body.decode().strip())


asyncio.run(main())
