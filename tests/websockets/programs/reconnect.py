"""Reconnecting with ``async for websocket in connect(...)``: retries on 503 and on a lost
connection with websockets' backoff (shortened through its environment variables), logs
"connect failed; reconnecting ..." on websockets.client, stops on a fatal 403."""

import os

os.environ["WEBSOCKETS_BACKOFF_INITIAL_DELAY"] = "0"
os.environ["WEBSOCKETS_BACKOFF_MIN_DELAY"] = "0.01"
os.environ["WEBSOCKETS_BACKOFF_MAX_DELAY"] = "0.02"

import asyncio  # noqa: E402
import http  # noqa: E402
import logging  # noqa: E402

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

records = []


class Collect(logging.Handler):
    def emit(self, record):
        records.append(f"{record.name} {record.levelname} {record.getMessage()}")


logger = logging.getLogger("websockets.client")
logger.setLevel(logging.INFO)
logger.addHandler(Collect())

attempts = 0


def process_request(connection, request):
    global attempts
    attempts += 1
    if request.path == "/forbidden":
        return connection.respond(http.HTTPStatus.FORBIDDEN, "Forbidden\n")
    if attempts <= 2:
        return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "Busy\n")
    return None


async def handler(websocket):
    if attempts == 3:
        await websocket.close(1012, "restarting")
    else:
        await websocket.send(f"welcome after {attempts} attempts")


async def main():
    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        sessions = 0
        async for websocket in connect(f"ws://127.0.0.1:{port}/"):
            sessions += 1
            try:
                print("session", sessions, "got:", await websocket.recv())
                await websocket.close()
                break
            except ConnectionClosed as exc:
                print("session", sessions, "lost:", exc)
                continue
        try:
            async for _websocket in connect(f"ws://127.0.0.1:{port}/forbidden"):
                print("unexpected")
        except InvalidStatus as exc:
            print("fatal:", exc)
    print("\n".join(records))


asyncio.run(main())
