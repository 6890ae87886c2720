"""Minimal echo client with the femtows core API: send one message, print the echo, close.

    python examples/echo_client.py [--url ws://127.0.0.1:9001]
"""

from __future__ import annotations

import argparse
import asyncio

from femtows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect


class ClientListener(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, b"Hello world")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            print(f"Echo reply: {frame.get_payload_as_utf8_text()}", flush=True)
            transport.send_close(WSCloseCode.OK)


async def main(url: str) -> None:
    transport, _ = await ws_connect(ClientListener, url)
    await transport.wait_disconnected()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="ws://127.0.0.1:9001")
    asyncio.run(main(parser.parse_args().url))
