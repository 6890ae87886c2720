"""Invalid UTF-8 in a text message closes the connection with 1007 (invalid frame payload
data); a raw client (asyncio streams) sends the bad frame and reads the close frame."""

import asyncio
import base64
import os
import struct

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError

results = []


async def handler(websocket):
    try:
        async for message in websocket:
            results.append(f"server got {message!r}")
    except ConnectionClosedError as exc:
        results.append(f"server: {type(exc).__name__} | {exc}")


def masked_frame(opcode, payload, fin=True):
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + mask + masked


async def raw_client(port, frames):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0]
    for frame in frames:
        writer.write(frame)
    head = await reader.readexactly(2)
    payload = await reader.readexactly(head[1] & 0x7F)
    code = struct.unpack("!H", payload[:2])[0]
    print(status.decode(), "| opcode", head[0] & 0x0F, "| close", code, payload[2:].decode())
    writer.close()


async def main():
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await raw_client(port, [masked_frame(0x1, "ok ✓".encode()), masked_frame(0x1, b"\xff")])
        # Invalid UTF-8 split across fragments.
        await raw_client(port, [masked_frame(0x1, b"ab\xe2\x82", False), masked_frame(0x0, b"A")])
        # A binary message may carry anything.
        await raw_client(port, [masked_frame(0x2, b"\xff"), masked_frame(0x8, b"\x03\xe8")])
    print("\n".join(results))


asyncio.run(main())
