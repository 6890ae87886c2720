"""CPU per message of the uvicorn rows' FastAPI endpoint itself, with no WebSocket layer.

    .venv/bin/python -m bench.fastapi_cost [--messages 200000] [--runs 3]

Runs ``bench/uvicorn_app.py``'s echo endpoint directly as an ASGI app on uvloop, with a
``receive`` that returns a 256-byte message at once (never waits) and a ``send`` that does
nothing: what is left is FastAPI's and Starlette's own per-message code (``receive_bytes``,
``send_bytes``, their wrappers), the part of a uvicorn row no WebSocket implementation can
remove. Prints microseconds of CPU (process time) per echoed message for each run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any, Dict, List, Optional

from bench.uvicorn_app import app


async def echo_cost(messages: int) -> float:
    """CPU seconds per message for ``messages`` echoes through the endpoint."""
    message = {"type": "websocket.receive", "bytes": b"x" * 256}
    count = 0

    async def receive() -> Dict[str, Any]:
        nonlocal count
        count += 1
        if count == 1:
            return {"type": "websocket.connect"}
        if count > messages + 1:
            return {"type": "websocket.disconnect", "code": 1000}
        return message

    async def send(event: Dict[str, Any]) -> None:
        pass

    scope = {
        "type": "websocket", "path": "/", "raw_path": b"/", "root_path": "",
        "query_string": b"", "headers": [], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2), "scheme": "ws", "subprotocols": [],
        "asgi": {"version": "3.0", "spec_version": "2.4"}, "state": {}, "extensions": {},
    }
    start = time.process_time()
    await app(scope, receive, send)
    return (time.process_time() - start) / messages


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a bench requirement
        run = asyncio.run
    for _ in range(args.runs):
        cost = run(echo_cost(args.messages))
        print(f"{cost * 1e6:.2f} us CPU per echoed message (FastAPI + Starlette only)")


if __name__ == "__main__":
    main()
