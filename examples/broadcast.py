"""Broadcast: every message a client sends goes to every connected client.

    python examples/broadcast.py [--clients 3]

The server keeps the set of open transports; ``on_ws_connected`` and ``on_ws_disconnected``
maintain it. Sending is synchronous and does not wait for a slow client, so a broadcast to
thousands of connections is one loop of ``send`` calls. A client that does not read would make
its write buffer grow without bound; this server skips (and closes) a client whose buffer is
over a limit instead.
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

MAX_BUFFERED = 1024 * 1024  # bytes queued for one client before it is dropped as too slow


class Room:
    def __init__(self) -> None:
        self.members: set[WSTransport] = set()

    def broadcast(self, msg_type: WSMsgType, payload: bytes) -> None:
        for member in list(self.members):  # a send may end up removing a member
            if member.underlying_transport.get_write_buffer_size() > MAX_BUFFERED:
                member.send_close(WSCloseCode.TRY_AGAIN_LATER, "too slow")
                member.disconnect()
            else:
                member.send(msg_type, payload)


class Member(WSListener):
    def __init__(self, room: Room) -> None:
        self.room = room

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.room.members.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.room.members.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            # The payload lives in the read buffer: copy it once, before sending it many times.
            self.room.broadcast(frame.msg_type, frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class Client(WSListener):
    def __init__(self, name: str) -> None:
        self.name = name
        self.received: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and not self.received.done():
            self.received.set_result(frame.get_payload_as_utf8_text())


async def main(n_clients: int) -> None:
    room = Room()

    def factory(request: WSUpgradeRequest) -> WSListener:
        return Member(room)

    server = await ws_create_server(factory, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    clients = [await ws_connect(lambda i=i: Client(f"client {i}"), url) for i in range(n_clients)]
    print(f"{len(room.members)} members in the room")

    sender, _ = clients[0]
    sender.send(WSMsgType.TEXT, "hello everyone")
    for _transport, listener in clients:
        print(f"{listener.name} got {await listener.received!r}")

    for transport, _ in clients:
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=3)
    asyncio.run(main(parser.parse_args().clients))
