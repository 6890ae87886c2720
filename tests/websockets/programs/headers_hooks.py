"""Headers both ways: additional_headers, user_agent_header, server_header, process_response
editing the 101, Headers multi-values, and request/response objects on both sides."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.datastructures import Headers, MultipleValuesError

HIDDEN = {"sec-websocket-key", "sec-websocket-accept", "date", "host"}
seen = []


def process_response(connection, request, response):
    response.headers["X-Served-By"] = "hooks demo"
    response.headers["Set-Cookie"] = "a=1"
    response.headers["Set-Cookie"] = "b=2"
    return None


async def handler(websocket):
    request = websocket.request
    seen.append(f"server: {request.method} {request.path} {request.protocol}")
    for name, value in request.headers.raw_items():
        if name.lower() not in HIDDEN:
            seen.append(f"  {name}: {value}")
    await websocket.send("hi")


async def main():
    async with serve(
        handler,
        "127.0.0.1",
        0,
        server_header="demo-server/1.0",
        process_response=process_response,
        compression=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        headers = Headers([("X-Trace", "1"), ("X-Trace", "2")])
        async with connect(
            f"ws://127.0.0.1:{port}/path?q=%20",
            additional_headers=headers,
            user_agent_header="demo-agent/2.0",
            origin="https://demo.example",
            compression=None,
        ) as ws:
            print(await ws.recv())
            response = ws.response
            print("client:", response.status_code, response.reason_phrase)
            for name, value in response.headers.raw_items():
                if name.lower() not in HIDDEN:
                    print(f"  {name}: {value}")
            print("cookies:", response.headers.get_all("set-cookie"))
            try:
                response.headers["Set-Cookie"]
            except MultipleValuesError as exc:
                print("MultipleValuesError:", exc)
            print("request seen by client:", ws.request.path, ws.request.headers["User-Agent"])
        no_agent = connect(f"ws://127.0.0.1:{port}/", user_agent_header=None, compression=None)
        async with no_agent as ws:
            await ws.recv()
    print("\n".join(seen))


asyncio.run(main())
