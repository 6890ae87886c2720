"""process_request as a health check: plain HTTP GET /healthz answered by the WebSocket server,
other paths go on to the WebSocket handshake; a non-WebSocket request elsewhere gets 426."""

import asyncio
import http

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


def health_check(connection, request):
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def http_get(port, path):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    body = await reader.readexactly(int(headers["Content-Length"]))
    writer.close()
    return lines[0], headers["Content-Type"], headers.get("Connection"), body


async def main():
    async with serve(echo, "127.0.0.1", 0, process_request=health_check) as server:
        port = server.sockets[0].getsockname()[1]
        print(await http_get(port, "/healthz"))
        print(await http_get(port, "/"))
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("still a WebSocket server")
            print(await ws.recv())


asyncio.run(main())
