"""Minimal echo server with the femtows core API.

    python examples/echo_server.py [--port 9001]
"""

from __future__ import annotations

import argparse
import asyncio

from femtows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server


class ServerClientListener(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        print("client connected", flush=True)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


def listener_factory(request: WSUpgradeRequest) -> WSListener:
    # Routing goes here: request.path, request.headers...
    return ServerClientListener()


async def main(host: str, port: int) -> None:
    server = await ws_create_server(listener_factory, host, port)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
