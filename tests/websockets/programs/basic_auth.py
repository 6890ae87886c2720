"""basic_auth on the server (static credentials and a check function), user info in the URI."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import basic_auth, serve
from websockets.exceptions import InvalidStatus


async def whoami(websocket):
    await websocket.send(f"you are {websocket.username}")


async def check(username, password):
    return username == "carol" and password == "s3cret"


async def attempt(uri, **kwargs):
    try:
        async with connect(uri, **kwargs) as ws:
            print("ok:", await ws.recv())
    except InvalidStatus as exc:
        headers = exc.response.headers
        body = exc.response.body.decode().strip()
        print("refused:", exc, "|", headers.get("WWW-Authenticate"), "|", body)


async def main():
    credentials = [("alice", "wonderland"), ("bob", "p@ss:word")]
    auth = basic_auth(realm="demo", credentials=credentials)
    async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
        port = server.sockets[0].getsockname()[1]
        await attempt(f"ws://alice:wonderland@127.0.0.1:{port}/")
        await attempt(f"ws://bob:p%40ss%3Aword@127.0.0.1:{port}/")
        await attempt(f"ws://alice:wrong@127.0.0.1:{port}/")
        await attempt(f"ws://127.0.0.1:{port}/")
        await attempt(
            f"ws://127.0.0.1:{port}/",
            additional_headers={"Authorization": "Basic !!!"},
        )
    auth = basic_auth(check_credentials=check)
    async with serve(whoami, "127.0.0.1", 0, process_request=auth) as server:
        port = server.sockets[0].getsockname()[1]
        await attempt(f"ws://carol:s3cret@127.0.0.1:{port}/")
        await attempt(f"ws://carol:nope@127.0.0.1:{port}/")


asyncio.run(main())
