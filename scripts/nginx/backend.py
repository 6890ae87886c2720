"""The femtows server behind nginx in tests/test_nginx.py: an echo server that first tells
the client what it saw of the upgrade request (path and the headers nginx sets).

    python scripts/nginx/backend.py [--port 0]      # prints "LISTENING <port>"
"""

from __future__ import annotations

import argparse
import asyncio
import json

from femtows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

FORWARDED = ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "Connection", "Upgrade")


class Echo(WSListener):
    def __init__(self, request: WSUpgradeRequest) -> None:
        seen = {name: request.headers.get(name) for name in FORWARDED}
        self.hello = json.dumps({"path": request.path.decode(), "headers": seen})

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, self.hello)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


async def main(port: int) -> None:
    server = await ws_create_server(Echo, "127.0.0.1", port)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
