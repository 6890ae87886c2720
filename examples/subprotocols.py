"""Negotiate a subprotocol (Sec-WebSocket-Protocol) with the core API.

    python examples/subprotocols.py

The client offers subprotocols in order of preference; the server picks the first one it
supports and names it in its 101 response, or refuses the upgrade with 400 when there is none
in common (it could also accept without naming any: RFC 6455 allows that, and the client then
decides). The client checks that the server chose one of those it offered.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Optional, Sequence

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

SUPPORTED = ("chat.v2", "chat.v1")  # the server's preference order


def offered(header: Optional[str]) -> list[str]:
    """The subprotocols listed in a Sec-WebSocket-Protocol header (comma separated tokens)."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


class Chat(WSListener):
    def __init__(self, subprotocol: str) -> None:
        self.subprotocol = subprotocol

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        else:
            reply = f"[{self.subprotocol}] {frame.get_payload_as_utf8_text()}"
            transport.send(WSMsgType.TEXT, reply)


def choose(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
    wanted = offered(",".join(request.headers.getall("Sec-WebSocket-Protocol", [])))
    chosen = next((p for p in SUPPORTED if p in wanted), None)
    if chosen is None:
        body = f"supported subprotocols: {', '.join(SUPPORTED)}\n".encode()
        refusal = WSUpgradeResponse.create_error_response(HTTPStatus.BAD_REQUEST, body)
        return WSUpgradeResponseWithListener(refusal, None)
    response = WSUpgradeResponse.create_101_response({"Sec-WebSocket-Protocol": chosen})
    return WSUpgradeResponseWithListener(response, Chat(chosen))


class Client(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, "hi")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            print(f"reply: {frame.get_payload_as_utf8_text()}")
            transport.send_close(WSCloseCode.OK)


async def connect(url: str, subprotocols: Sequence[str]) -> None:
    transport, _ = await ws_connect(
        Client, url, extra_headers={"Sec-WebSocket-Protocol": ", ".join(subprotocols)}
    )
    chosen = transport.response.headers.get("Sec-WebSocket-Protocol")
    if chosen not in subprotocols:  # a server may not pick one we did not offer
        transport.send_close(WSCloseCode.PROTOCOL_ERROR, "unexpected subprotocol")
        await transport.wait_disconnected()
        raise RuntimeError(f"server chose {chosen!r}, not one of {list(subprotocols)}")
    print(f"offered {list(subprotocols)}, server chose {chosen}")
    await transport.wait_disconnected()


async def main() -> None:
    server = await ws_create_server(choose, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    await connect(url, ["chat.v1", "chat.v2"])
    await connect(url, ["chat.v1"])
    try:
        await connect(url, ["chat.v3"])
    except WSInvalidStatusError as exc:
        assert exc.response is not None
        print(f"no common subprotocol: {int(exc.response.status)}, {exc.raw_body!r}")

    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
