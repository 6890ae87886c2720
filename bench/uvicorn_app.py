"""The FastAPI echo endpoint of the uvicorn rows (bench/uvicorn_bench.py, bench/pyside.py).

No ``from __future__ import annotations`` here: FastAPI reads the ``WebSocket`` annotation at
run time to inject the connection.
"""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.websocket("/")
async def echo(websocket: WebSocket) -> None:
    """Echo every binary message until the client goes."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_bytes(await websocket.receive_bytes())
    except WebSocketDisconnect:
        pass
