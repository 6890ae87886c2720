"""Helpers for the femtows.websockets server tests: raw HTTP requests and responses."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from tests.utils import RAW_KEY, read_until_eof


def port_of(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


class RawResponse:
    def __init__(self, raw: bytes) -> None:
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, raw
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.headers = [tuple(line.split(": ", 1)) for line in lines[1:]]

    def header(self, name: str) -> Optional[str]:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, values
        return values[0] if values else None

    def comparable(self) -> tuple[str, bytes, list[tuple[str, str]]]:
        """Status line, body and headers but the ones naming the library or the time."""
        names = {"date", "server"}
        return self.status_line, self.body, sorted(
            (k.lower(), v) for k, v in self.headers if k.lower() not in names
        )


async def raw_exchange(port: int, request: bytes, ssl: Any = None) -> RawResponse:
    """Send ``request`` (over TLS with the client context ``ssl``); read the answer until the
    server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl)
    try:
        writer.write(request)
        return RawResponse(await read_until_eof(reader))
    finally:
        writer.close()


def upgrade(
    path: str = "/", method: str = "GET", version: str = "HTTP/1.1", extra: str = "",
    key: str = RAW_KEY, connection: str = "Upgrade", ws_version: str = "13",
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    if connection:
        lines.append(f"Connection: {connection}")
    lines.append("Upgrade: websocket")
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if ws_version:
        lines.append(f"Sec-WebSocket-Version: {ws_version}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()
