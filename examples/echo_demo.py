"""The README's demo: an echo server and a client in one process, over TCP and TLS-free.

Starts a femtows server on an ephemeral port, connects a femtows client, sends a few
messages of different sizes (one of them fragmented), prints each echo, measures the round
trip time with PING/PONG and closes cleanly.

    python examples/echo_demo.py [--loop uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Optional

from femtows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_connect,
    ws_create_server,
)


class EchoServerListener(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        else:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


class DemoClient(WSListener):
    def __init__(self) -> None:
        self.echoes: asyncio.Queue[tuple[WSMsgType, bytes, bool]] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.PONG:
            self.echoes.put_nowait((frame.msg_type, frame.get_payload_as_bytes(), frame.fin))


async def main() -> None:
    def factory(request: WSUpgradeRequest) -> Optional[WSListener]:
        return EchoServerListener() if request.path == b"/echo" else None

    server = await ws_create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"server listening on ws://127.0.0.1:{port}/echo")
    transport, client = await ws_connect(DemoClient, f"ws://127.0.0.1:{port}/echo")
    for payload in (b"hello", b"x" * 70_000):
        transport.send(WSMsgType.BINARY, payload)
        msg_type, echo, _ = await client.echoes.get()
        print(f"echo: {msg_type.name} {len(echo)} bytes, identical={echo == payload}")
    transport.send(WSMsgType.TEXT, "frag", fin=False)
    transport.send(WSMsgType.CONTINUATION, "mented ✓", fin=True)
    parts = [await client.echoes.get(), await client.echoes.get()]
    text = b"".join(p[1] for p in parts).decode()
    print(f"echo: fragmented TEXT in {len(parts)} frames -> {text!r}")
    rtts = await transport.measure_roundtrip_time(5)
    print(f"round trip (PING/PONG): median {sorted(rtts)[2] * 1e6:.0f} µs")
    transport.send_close(WSCloseCode.OK, "demo done")
    await transport.wait_disconnected()
    hs = transport.close_handshake
    assert hs is not None and hs.recv is not None
    code = hs.recv.code
    print(f"closed cleanly: peer answered {getattr(code, 'name', code)}")
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
