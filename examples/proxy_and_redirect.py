"""Connect through an HTTP CONNECT proxy, follow a redirect, and tune the socket first.

    python examples/proxy_and_redirect.py                      # everything local
    python examples/proxy_and_redirect.py --proxy http://user:pass@127.0.0.1:8888

By default the example starts, in this process, a WebSocket server that answers ``/old`` with
``301 Location: /echo`` and echoes on ``/echo``, and a minimal CONNECT proxy (no
authentication). ``--proxy`` uses a real proxy instead (``http://``, ``https://``,
``socks4://`` or ``socks5://``; the local server must be reachable from it). The client:

- connects to ``ws://127.0.0.1:PORT/old`` through the proxy;
- follows the redirect to ``/echo`` (``max_redirects=5`` is the default), again through it;
- gets its sockets from ``socket_factory(host, port)``, which sets SO_RCVBUF before connect();
- sends one message, prints the echo, and closes.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Optional

import femtows
from femtows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport


class EchoServer(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_bytes())


def route(request: femtows.WSUpgradeRequest) -> object:
    if request.path == b"/old":
        response = femtows.WSUpgradeResponse.create_redirect_response(301, "/echo")
        return femtows.WSUpgradeResponseWithListener(response, None)
    return EchoServer()


class Client(WSListener):
    def __init__(self) -> None:
        self.echo: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and not self.echo.done():
            self.echo.set_result(frame.get_payload_as_bytes())


async def start_connect_proxy() -> tuple[asyncio.Server, list[str]]:
    """A minimal HTTP CONNECT proxy for the demo; returns the server and a log of tunnels."""
    tunnels: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ")[1].decode()
        tunnels.append(target)
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, tunnels


def socket_factory(host: str, port: int) -> socket.socket:
    """Called for every TCP connection (here: to the proxy) before it is connected."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    print(f"socket_factory({host!r}, {port}): SO_RCVBUF set before connect()")
    return sock  # unconnected: femtows connects it


async def main(proxy: Optional[str]) -> None:
    server = await femtows.ws_create_server(route, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy_server = None
    tunnels: list[str] = []
    if proxy is None:
        proxy_server, tunnels = await start_connect_proxy()
        proxy = f"http://127.0.0.1:{proxy_server.sockets[0].getsockname()[1]}"
    try:
        transport, client = await femtows.ws_connect(
            Client, f"ws://127.0.0.1:{port}/old", proxy=proxy, socket_factory=socket_factory
        )
        assert isinstance(client, Client)
        transport.send(WSMsgType.TEXT, "hello through the proxy")
        path = transport.request.path.decode()
        print(f"echo from {path}: {(await client.echo).decode()}")
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()
        if tunnels:
            print(f"proxy tunnels opened: {len(tunnels)} ({', '.join(tunnels)})")
    finally:
        server.close()
        if proxy_server is not None:
            proxy_server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", help="proxy URL (default: a CONNECT proxy started here)")
    asyncio.run(main(parser.parse_args().proxy))
