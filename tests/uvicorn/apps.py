"""The same WebSocket endpoints as a FastAPI app and as a Starlette app, for the uvicorn tests.

Endpoints (identical behaviour in both apps):

* ``/echo``: echoes every message with its type (text or bytes) until the client closes.
* ``/json``: receives JSON objects and answers ``{"got": <object>, "n": <count>}``.
* ``/subprotocol``: accepts with the first offered subprotocol among ``chat.v2``, ``chat.v1``
  (none if neither is offered) and sends the chosen one as text (``""`` for none), then echoes.
* ``/scope``: accepts (with the first offered subprotocol and header ``x-extra: yes``) and
  sends the ASGI scope as JSON.
* ``/deny``: refuses with an HTTP 403 response through the denial extension (body ``denied``).
* ``/forbidden``: ``websocket.close`` before accepting (a plain 403).
* ``/close``: accepts, then closes with code 4001 and reason ``custom``.
* ``/broadcast``: every text message received is sent to every connected client.
* ``/raise``: accepts, sends ``ready``, then raises.
* ``/flood?n=N&size=S``: sends N binary messages of S bytes (the index repeated), then closes
  with 1000 (faster than the client reads: the send side's flow control).
* ``/return``: accepts, sends ``ready`` and returns without closing.
* ``/cancel``: accepts, cancels a ``receive()`` that is waiting, sends ``ready``, then echoes
  one text message and closes with 1000 (a cancelled receive loses nothing).
* ``/disconnect``: accepts, waits for the client to go, and records the disconnect code in
  ``DISCONNECTS`` (see :func:`expect_disconnect`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

# /disconnect?token=T reports the disconnect event it got to DISCONNECTS[T] (a future the test
# created with expect_disconnect(T)).
DISCONNECTS: dict[str, asyncio.Future[tuple[int, Optional[str]]]] = {}


def expect_disconnect(token: str) -> asyncio.Future[tuple[int, Optional[str]]]:
    fut: asyncio.Future[tuple[int, Optional[str]]] = asyncio.get_running_loop().create_future()
    DISCONNECTS[token] = fut
    return fut
SUBPROTOCOLS = ("chat.v2", "chat.v1")
# The scope fields a server fills (ASGI 3 WebSocket scope); /scope sends them back.
SCOPE_KEYS = ("type", "asgi", "http_version", "scheme", "server", "client", "root_path", "path",
              "raw_path", "query_string", "headers", "subprotocols")


class Broadcast:
    """The connected clients of ``/broadcast``."""

    def __init__(self) -> None:
        self.members: set[WebSocket] = set()

    async def run(self, ws: WebSocket) -> None:
        await ws.accept()
        self.members.add(ws)
        try:
            while True:
                text = await ws.receive_text()
                for member in list(self.members):
                    try:
                        await member.send_text(text)
                    except (WebSocketDisconnect, RuntimeError):
                        self.members.discard(member)
        except WebSocketDisconnect:
            pass
        finally:
            self.members.discard(ws)


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await ws.send_text(message["text"])
            else:
                await ws.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


async def json_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    n = 0
    try:
        while True:
            obj = await ws.receive_json()
            n += 1
            await ws.send_json({"got": obj, "n": n})
    except WebSocketDisconnect:
        pass


async def subprotocol(ws: WebSocket) -> None:
    offered = ws.scope["subprotocols"]
    chosen = next((p for p in offered if p in SUBPROTOCOLS), None)
    await ws.accept(subprotocol=chosen)
    await ws.send_text(chosen or "")
    await echo_loop(ws)


async def echo_loop(ws: WebSocket) -> None:
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


async def scope(ws: WebSocket) -> None:
    offered = ws.scope["subprotocols"]
    await ws.accept(subprotocol=offered[0] if offered else None, headers=[(b"x-extra", b"yes")])
    fields = {k: ws.scope.get(k) for k in SCOPE_KEYS}
    fields["extensions"] = sorted(ws.scope.get("extensions") or {})
    fields["state"] = dict(ws.scope.get("state") or {})
    await ws.send_text(json.dumps(_jsonable(fields)))
    await echo_loop(ws)


async def deny(ws: WebSocket) -> None:
    await ws.send_denial_response(PlainTextResponse("denied", status_code=403,
                                                    headers={"x-why": "test"}))


async def forbidden(ws: WebSocket) -> None:
    await ws.close()


async def close(ws: WebSocket) -> None:
    await ws.accept()
    await ws.close(code=4001, reason="custom")


async def raise_(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("ready")
    raise RuntimeError("the application failed on purpose")


async def flood(ws: WebSocket) -> None:
    await ws.accept()
    n, size = int(ws.query_params["n"]), int(ws.query_params["size"])
    for i in range(n):
        await ws.send_bytes(i.to_bytes(4, "big") * (size // 4))
    await ws.close()


async def return_(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("ready")


async def cancel(ws: WebSocket) -> None:
    await ws.accept()
    waiting = asyncio.ensure_future(ws.receive_text())
    await asyncio.sleep(0)  # one loop turn: the task is now waiting in receive()
    waiting.cancel()
    try:
        await waiting
    except asyncio.CancelledError:
        pass
    await ws.send_text("ready")
    await ws.send_text(await ws.receive_text())
    await ws.close()


async def disconnect(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("ready")
    message = await ws.receive()
    while message["type"] != "websocket.disconnect":
        message = await ws.receive()
    fut = DISCONNECTS.pop(ws.query_params["token"])
    fut.set_result((message["code"], message.get("reason")))


def starlette_app() -> Starlette:
    broadcast = Broadcast()
    return Starlette(routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/json", json_endpoint),
        WebSocketRoute("/subprotocol", subprotocol),
        WebSocketRoute("/scope", scope),
        WebSocketRoute("/deny", deny),
        WebSocketRoute("/forbidden", forbidden),
        WebSocketRoute("/close", close),
        WebSocketRoute("/broadcast", broadcast.run),
        WebSocketRoute("/raise", raise_),
        WebSocketRoute("/disconnect", disconnect),
        WebSocketRoute("/return", return_),
        WebSocketRoute("/flood", flood),
        WebSocketRoute("/cancel", cancel),
    ])


def fastapi_app() -> FastAPI:
    app = FastAPI()
    broadcast = Broadcast()

    # FastAPI's own decorators and WebSocket type (the same class as Starlette's).
    @app.websocket("/echo")
    async def _echo(ws: FastAPIWebSocket) -> None:
        await echo(ws)

    @app.websocket("/json")
    async def _json(ws: FastAPIWebSocket) -> None:
        await json_endpoint(ws)

    @app.websocket("/subprotocol")
    async def _subprotocol(ws: FastAPIWebSocket) -> None:
        await subprotocol(ws)

    @app.websocket("/scope")
    async def _scope(ws: FastAPIWebSocket) -> None:
        await scope(ws)

    @app.websocket("/deny")
    async def _deny(ws: FastAPIWebSocket) -> None:
        await deny(ws)

    @app.websocket("/forbidden")
    async def _forbidden(ws: FastAPIWebSocket) -> None:
        await forbidden(ws)

    @app.websocket("/close")
    async def _close(ws: FastAPIWebSocket) -> None:
        await close(ws)

    @app.websocket("/broadcast")
    async def _broadcast(ws: FastAPIWebSocket) -> None:
        await broadcast.run(ws)

    @app.websocket("/raise")
    async def _raise(ws: FastAPIWebSocket) -> None:
        await raise_(ws)

    @app.websocket("/disconnect")
    async def _disconnect(ws: FastAPIWebSocket) -> None:
        await disconnect(ws)

    @app.websocket("/flood")
    async def _flood(ws: FastAPIWebSocket) -> None:
        await flood(ws)

    @app.websocket("/cancel")
    async def _cancel(ws: FastAPIWebSocket) -> None:
        await cancel(ws)

    @app.websocket("/return")
    async def _return(ws: FastAPIWebSocket) -> None:
        await return_(ws)

    return app


APPS = {"starlette": starlette_app, "fastapi": fastapi_app}
