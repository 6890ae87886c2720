"""Authenticate clients in the upgrade request, before any WebSocket frame is exchanged.

    python examples/auth.py

The server's listener factory sees the parsed upgrade request. It accepts a client whose
``Authorization: Bearer <token>`` header names a known token, and answers 401 to anyone else:
the connection never becomes a WebSocket. The client sends the header with ``extra_headers``
and gets ``WSInvalidStatusError`` when it is refused.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Union

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

TOKENS = {"s3cr3t-alice": "alice"}  # token -> user; a real server asks its session store


class Greeter(WSListener):
    def __init__(self, user: str) -> None:
        self.user = user

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, f"hello {self.user}")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def authenticate(request: WSUpgradeRequest) -> Union[WSListener, WSUpgradeResponseWithListener]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    user = TOKENS.get(token) if scheme.lower() == "bearer" else None
    if user is None:
        refusal = WSUpgradeResponse.create_error_response(
            HTTPStatus.UNAUTHORIZED, b"unknown token\n", {"WWW-Authenticate": "Bearer"}
        )
        return WSUpgradeResponseWithListener(refusal, None)
    return Greeter(user)


class Client(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            print(f"server says: {frame.get_payload_as_utf8_text()}")
            transport.send_close(WSCloseCode.OK)


async def main() -> None:
    server = await ws_create_server(authenticate, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    transport, _ = await ws_connect(
        Client, url, extra_headers={"Authorization": "Bearer s3cr3t-alice"}
    )
    await transport.wait_disconnected()

    try:
        await ws_connect(Client, url, extra_headers={"Authorization": "Bearer wrong"})
    except WSInvalidStatusError as exc:
        assert exc.response is not None
        print(f"refused: {int(exc.response.status)} {exc.response.headers['WWW-Authenticate']}")

    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
