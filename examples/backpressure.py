"""Backpressure: a producer that stops when the peer reads slower than it writes.

    python examples/backpressure.py [--messages 200] [--size 65536]

``WSTransport.send`` never blocks: what the kernel does not take is queued in the transport.
When the queue crosses the transport's high-water mark, femtows calls the listener's
``pause_writing()``; when it drains below the low-water mark, ``resume_writing()``. A producer
coroutine waits on an ``asyncio.Event`` that those two callbacks clear and set.

To make the pause happen, the client here stops reading until the server has been paused once.
"""

from __future__ import annotations

import argparse
import asyncio

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


class Producer(WSListener):
    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.pauses = 0
        self.paused_once = asyncio.Event()
        self.max_buffered = 0

    def pause_writing(self) -> None:
        self.can_write.clear()
        self.pauses += 1
        self.paused_once.set()

    def resume_writing(self) -> None:
        self.can_write.set()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.task = asyncio.get_running_loop().create_task(self.produce(transport))

    async def produce(self, transport: WSTransport) -> None:
        chunk = b"x" * self.size
        for _ in range(self.count):
            await self.can_write.wait()  # returns at once unless the peer is behind
            transport.send(WSMsgType.BINARY, chunk)
            buffered = transport.underlying_transport.get_write_buffer_size()
            self.max_buffered = max(self.max_buffered, buffered)
        transport.send_close(WSCloseCode.OK)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()


class Consumer(WSListener):
    def __init__(self) -> None:
        self.received = 0
        self.bytes = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.underlying_transport.pause_reading()  # a slow reader, for the demonstration

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.BINARY:
            self.received += 1
            self.bytes += frame.payload_size


async def main(count: int, size: int) -> None:
    producers: list[Producer] = []

    def factory(request: WSUpgradeRequest) -> WSListener:
        producers.append(Producer(count, size))
        return producers[-1]

    server = await ws_create_server(factory, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport, consumer = await ws_connect(Consumer, url)

    producer = producers[0]
    await producer.paused_once.wait()  # the server's buffer filled up: start reading
    transport.underlying_transport.resume_reading()
    await transport.wait_disconnected()
    await producer.task

    print(f"received {consumer.received} of {count} messages, {consumer.bytes} bytes")
    print(f"producer paused {producer.pauses} time(s), "
          f"most bytes ever queued: {producer.max_buffered}")
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size", type=int, default=65536)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.size))
