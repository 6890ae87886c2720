"""Route connections by path, and answer plain HTTP (a health check) on the same port.

    python examples/routing.py

The server's listener factory gets every request before it is upgraded, so it is the router:
``/echo`` and ``/upper`` get different listeners, ``/rooms/<name>`` carries a parameter,
``/healthz`` is answered with 200 OK and a body, and anything else with 404.
"""

from __future__ import annotations

import asyncio
import re
from typing import Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

from femtows import (
    WSCloseCode,
    WSFrame,
    WSInvalidStatusError,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_connect,
    ws_create_server,
)

Route = Union[WSListener, WSUpgradeResponseWithListener, None]


class Reply(WSListener):
    """Answers every TEXT message with ``transform(text)``."""

    def __init__(self, transform: Callable[[str], str]) -> None:
        self.transform = transform

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            transport.send(WSMsgType.TEXT, self.transform(frame.get_payload_as_utf8_text()))


ROOM = re.compile(r"/rooms/(?P<name>[a-z0-9-]+)")


def router(request: WSUpgradeRequest) -> Route:
    url = urlsplit(request.path.decode("ascii", "replace"))
    if url.path == "/healthz":  # plain HTTP: a load balancer's probe
        ok = WSUpgradeResponse.create_ok_response(b"ok\n")
        return WSUpgradeResponseWithListener(ok, None)
    if url.path == "/echo":
        return Reply(lambda text: text)
    if url.path == "/upper":
        return Reply(str.upper)
    room = ROOM.fullmatch(url.path)
    if room is not None:
        user = parse_qs(url.query).get("user", ["anonymous"])[0]
        name = room["name"]
        return Reply(lambda text: f"{user}@{name}: {text}")
    return None  # 404 Not Found


class Client(WSListener):
    def __init__(self) -> None:
        self.reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, "hello")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and not self.reply.done():
            self.reply.set_result(frame.get_payload_as_utf8_text())
            transport.send_close(WSCloseCode.OK)


async def ask(base: str, path: str) -> Optional[str]:
    try:
        transport, client = await ws_connect(Client, base + path)
    except WSInvalidStatusError as exc:
        assert exc.response is not None
        print(f"{path}: HTTP {int(exc.response.status)} {exc.raw_body!r}")
        return None
    assert isinstance(client, Client)
    reply = await client.reply
    await transport.wait_disconnected()
    print(f"{path}: {reply}")
    return reply


async def http_get(port: int, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = await reader.read()  # the server closes after a non-101 answer
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].decode()
    print(f"GET {path}: {status_line}, body {body!r}")


async def main() -> None:
    server = await ws_create_server(router, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = f"ws://127.0.0.1:{port}"
    await ask(base, "/echo")
    await ask(base, "/upper")
    await ask(base, "/rooms/lobby?user=ada")
    await ask(base, "/nowhere")
    await http_get(port, "/healthz")
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
