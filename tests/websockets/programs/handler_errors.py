"""A handler that raises closes the connection with 1011 and logs "connection handler failed"
on the websockets.server logger; a process_request that raises answers 500; loggers keep
websockets' names so existing logging configuration keeps working."""

import asyncio
import logging

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError, InvalidStatus

records = []


class Collect(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if message.startswith("server listening on"):
            message = "server listening on <address>"
        exc = f" [{type(record.exc_info[1]).__name__}]" if record.exc_info else ""
        records.append(f"{record.name} {record.levelname} {message}{exc}")


for name in ("websockets.server", "websockets.client"):
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.addHandler(Collect())
    logger.propagate = False


async def handler(websocket):
    message = await websocket.recv()
    raise RuntimeError(f"cannot handle {message}")


def process_request(connection, request):
    if request.path == "/broken":
        raise ValueError("broken process_request")
    return None


async def main():
    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("this")
            try:
                await ws.recv()
            except ConnectionClosedError as exc:
                print("client:", exc)
        try:
            async with connect(f"ws://127.0.0.1:{port}/broken"):
                pass
        except InvalidStatus as exc:
            print("client:", exc, "|", exc.response.body.decode().strip())
    print("\n".join(records))


asyncio.run(main())
