"""femtows.websockets.asyncio.client.connect through the public API, against websockets 17.4's
server; argument and handshake errors compared with websockets' own client side by side."""

from __future__ import annotations

import asyncio
import base64
import http
import logging
import os
import socket
import tempfile
from typing import Any, List, Optional

import pytest
import websockets
import websockets.asyncio.client
import websockets.asyncio.server
from websockets.datastructures import Headers as WSHeaders
from websockets.http11 import Response as WSResponse

import femtows.websockets.asyncio.client as fclient
from femtows.websockets.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
    SecurityError,
)
from femtows.websockets.protocol import State
from tests.conftest import TLSConfig
from tests.utils import pipe
from tests.websockets.test_connection import LIBS_17_4, client_kwargs, echo, ws_server

LIBS = {"femtows": fclient, "websockets": websockets.asyncio.client}


def no_delays() -> Any:
    while True:
        yield 0.0


# -- the three forms -----------------------------------------------------------------------------

async def test_await_and_async_with(tls: Any) -> None:
    server, uri = await ws_server(echo, tls)
    async with server:
        ws = await fclient.connect(uri, **client_kwargs(tls))
        assert isinstance(ws, fclient.ClientConnection)
        await ws.send("a")
        assert await ws.recv() == "a"
        await ws.close()
        connect = fclient.connect(uri, **client_kwargs(tls))
        async with connect as ws:
            assert ws.state is State.OPEN
            with pytest.raises(RuntimeError, match="^connect\\(\\) isn't reentrant$"):
                async with connect:
                    pass
        assert ws.state is State.CLOSED and ws.close_code == 1000


async def test_async_for_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    attempts: List[int] = []

    def process_request(connection: Any, request: Any) -> Optional[WSResponse]:
        attempts.append(1)
        if len(attempts) <= 2:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        return None

    server, uri = await ws_server(echo, process_request=process_request)
    async with server:
        seen = 0
        with caplog.at_level(logging.INFO, "websockets.client"):
            async for ws in fclient.connect(uri, reconnect_delays=no_delays):
                seen += 1
                await ws.send("hi")
                assert await ws.recv() == "hi"
                if seen == 2:
                    break
                await ws.close(1001)  # a closed connection: the next iteration reconnects
        assert len(attempts) == 4
        messages = [r.getMessage() for r in caplog.records if r.name == "websockets.client"]
        assert messages == [
            "connect failed; reconnecting in 0.0 seconds: "
            "femtows.websockets.exceptions.InvalidStatus: "
            "server rejected WebSocket connection: HTTP 503",
        ] * 2


async def test_async_for_fatal_error() -> None:
    def process_request(connection: Any, request: Any) -> WSResponse:
        return connection.respond(http.HTTPStatus.NOT_FOUND, "no\n")

    server, uri = await ws_server(echo, process_request=process_request)
    async with server:
        with pytest.raises(InvalidStatus) as info:
            async for _ in fclient.connect(uri, reconnect_delays=no_delays):
                pass
        assert str(info.value) == "server rejected WebSocket connection: HTTP 404"
        assert info.value.response.status_code == 404
        assert info.value.response.body == b"no\n"

        def process_exception(exc: Exception) -> Optional[Exception]:
            return ValueError("custom")

        with pytest.raises(ValueError, match="^custom$") as vinfo:
            async for _ in fclient.connect(uri, process_exception=process_exception):
                pass
        assert isinstance(vinfo.value.__cause__, InvalidStatus)


# -- arguments checked by connect() --------------------------------------------------------------

@pytest.mark.parametrize("lib", LIBS_17_4)  # older websockets check these when awaited
def test_argument_errors(lib: str) -> None:
    connect = LIBS[lib].connect
    with pytest.raises(Exception) as info:
        connect("http://localhost/")
    assert type(info.value).__name__ == "InvalidURI"
    assert str(info.value) == "http://localhost/ isn't a valid URI: scheme isn't ws or wss"
    with pytest.raises(ValueError, match="^ssl argument is incompatible with a ws:// URI$"):
        connect("ws://localhost/", ssl=True)
    with pytest.raises(ValueError, match="^unsupported compression: gzip$"):
        connect("ws://localhost/", compression="gzip")
    with pytest.raises(ValueError, match="^invalid subprotocol: a b$"):
        connect("ws://localhost/", subprotocols=["a b"])
    with pytest.raises(TypeError, match="^subprotocols must be a list"):
        connect("ws://localhost/", subprotocols="chat")


@pytest.mark.parametrize("lib", LIBS)
async def test_invalid_proxy(lib: str) -> None:
    with pytest.raises(Exception) as info:
        await LIBS[lib].connect("ws://127.0.0.1:1/", proxy="ftp://proxy")
    assert type(info.value).__name__ == "InvalidProxy"
    assert str(info.value) == "ftp://proxy isn't a valid proxy: scheme ftp isn't supported"


@pytest.mark.parametrize("lib", LIBS)
async def test_ssl_none_with_wss(lib: str) -> None:
    with pytest.raises(ValueError, match="^ssl=None is incompatible with a wss:// URI$"):
        await LIBS[lib].connect("wss://127.0.0.1:1/", ssl=None)


# -- request headers -----------------------------------------------------------------------------

async def test_request_headers_and_subprotocol() -> None:
    seen: List[Any] = []

    async def handler(ws: Any) -> None:
        seen.append(ws.request.headers)
        seen.append(ws.subprotocol)
        await ws.wait_closed()

    server, uri = await ws_server(handler, subprotocols=["chat", "superchat"])
    async with server:
        user_uri = uri.replace("ws://", "ws://alice:s%C3%A9same@")
        async with fclient.connect(
            user_uri, origin="https://example.com", subprotocols=["superchat"],
            additional_headers={"X-Test": "1"}, user_agent_header="agent/1",
        ) as ws:
            assert ws.subprotocol == "superchat"
            assert ws.request.headers["Sec-WebSocket-Protocol"] == "superchat"
        async with fclient.connect(uri, user_agent_header=None, subprotocols=["chat"]):
            pass
    headers = seen[0]
    assert headers["Origin"] == "https://example.com"
    assert headers["X-Test"] == "1"
    assert headers["User-Agent"] == "agent/1"
    assert headers["Authorization"] == "Basic " + base64.b64encode(
        "alice:sésame".encode()).decode()
    assert headers["Host"] == uri.split("/")[2]
    assert headers["Sec-WebSocket-Extensions"] == "permessage-deflate; client_max_window_bits"
    assert seen[1] == "superchat"
    assert "User-Agent" not in seen[2]


async def test_subprotocol_negotiation_errors() -> None:
    def select(connection: Any, subprotocols: Any) -> str:
        return "other"

    server, uri = await ws_server(echo, subprotocols=["other"], select_subprotocol=select)
    async with server:
        with pytest.raises(NegotiationError, match="^unsupported subprotocol: other$"):
            await fclient.connect(uri, subprotocols=["chat"])


# -- handshake failures --------------------------------------------------------------------------

async def start_raw_http(answer: bytes) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if answer:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("answer,exc_name,text", [
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "InvalidStatus",
     "server rejected WebSocket connection: HTTP 404"),
    (b"", "InvalidMessage", "did not receive a valid HTTP response"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "InvalidUpgrade",
     "missing Connection header"),
])
async def test_handshake_errors(lib: str, answer: bytes, exc_name: str, text: str) -> None:
    server, uri = await start_raw_http(answer)
    async with server:
        with pytest.raises(Exception) as info:
            await LIBS[lib].connect(uri)
    assert type(info.value).__name__ == exc_name
    assert str(info.value) == text
    assert isinstance(info.value, InvalidHandshake if lib == "femtows"
                      else websockets.exceptions.InvalidHandshake)
    if exc_name == "InvalidMessage":
        assert isinstance(info.value.__cause__, EOFError)


async def test_connection_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(OSError):
        await fclient.connect(f"ws://127.0.0.1:{port}/")


@pytest.mark.parametrize("lib", LIBS_17_4)  # older: asyncio.TimeoutError on Python 3.9
async def test_open_timeout(lib: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    async with server:
        with pytest.raises(TimeoutError, match="^timed out during opening handshake$"):
            await LIBS[lib].connect(uri, open_timeout=0.1)


# -- redirects -----------------------------------------------------------------------------------

async def test_redirects() -> None:
    seen: List[Any] = []

    async def handler(ws: Any) -> None:
        seen.append((ws.request.path, ws.request.headers.get("Authorization"),
                     ws.request.headers.get("Cookie")))
        await ws.wait_closed()

    target, target_uri = await ws_server(handler)

    def redirect(connection: Any, request: Any) -> Optional[WSResponse]:
        if request.path == "/same":
            return WSResponse(302, "Found", WSHeaders({"Location": "/final"}), b"")
        if request.path == "/cross":
            return WSResponse(301, "Moved", WSHeaders({"Location": target_uri + "x"}), b"")
        if request.path == "/loop":
            return WSResponse(302, "Found", WSHeaders({"Location": "/loop"}), b"")
        return None

    server, uri = await ws_server(handler, process_request=redirect)
    async with server, target:
        headers = {"Authorization": "Bearer t", "Cookie": "c=1", "X-Keep": "1"}
        async with fclient.connect(uri + "same", additional_headers=headers) as ws:
            assert ws.request.path == "/final"
        async with fclient.connect(uri + "cross", additional_headers=headers):
            pass
        with pytest.raises(SecurityError, match="^more than 10 redirects$"):
            await fclient.connect(uri + "loop")
    assert seen == [("/final", "Bearer t", "c=1"), ("/x", None, None)]


async def test_redirect_downgrade_refused() -> None:
    tls = TLSConfig(True)
    plain, plain_uri = await ws_server(echo)

    def redirect(connection: Any, request: Any) -> WSResponse:
        return WSResponse(302, "Found", WSHeaders({"Location": plain_uri}), b"")

    server, uri = await ws_server(echo, tls, process_request=redirect)
    async with server, plain:
        with pytest.raises(SecurityError) as info:
            await fclient.connect(uri, ssl=tls.client)
    assert str(info.value) == f"cannot follow redirect to non-secure URI {plain_uri}"


# -- transports ----------------------------------------------------------------------------------

async def test_unix_connect(tls: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ws.sock")
        server = await websockets.asyncio.server.unix_serve(echo, path, ssl=tls.server)
        async with server:
            kwargs: dict[str, Any] = {"ssl": tls.client, "server_hostname": "localhost"} \
                if tls.enabled else {}
            async with fclient.unix_connect(path, **kwargs) as ws:
                assert ws.request.headers["Host"] == "localhost"
                await ws.send("unix")
                assert await ws.recv() == "unix"


async def test_sock_host_port_and_create_connection() -> None:
    class Custom(fclient.ClientConnection):
        pass

    server, uri = await ws_server(echo)
    port = int(uri.rsplit(":", 1)[1].strip("/"))
    async with server:
        sock = socket.create_connection(("127.0.0.1", port))
        async with fclient.connect("ws://example.invalid/", sock=sock) as ws:
            await ws.send("sock")
            assert await ws.recv() == "sock"
        async with fclient.connect("ws://example.invalid/", host="127.0.0.1", port=port,
                                   create_connection=Custom) as ws:
            assert type(ws) is Custom
            assert ws.request.headers["Host"] == "example.invalid"


async def test_logger_argument(caplog: pytest.LogCaptureFixture) -> None:
    server, uri = await ws_server(echo)
    async with server:
        logger = logging.getLogger("mine")
        async with fclient.connect(uri, logger=logger) as ws:
            assert ws.logger.logger is logger


async def test_max_size_none_and_big_message() -> None:
    server, uri = await ws_server(echo, max_size=None)
    async with server, fclient.connect(uri, max_size=None) as ws:
        big = b"y" * (3 * 2**20)
        await ws.send(big)
        assert await ws.recv() == big


_ = (InvalidHeader, InvalidMessage, InvalidURI)


# -- proxies -------------------------------------------------------------------------------------

async def start_connect_proxy(reply: Optional[bytes] = None) -> tuple[asyncio.Server, List[bytes]]:
    """An HTTP CONNECT proxy: answers 200 and pipes to the requested port, or sends ``reply``."""
    heads: List[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        if reply is not None:
            writer.write(reply)
            await writer.drain()
            writer.close()
            return
        port = int(head.split(b" ", 2)[1].rsplit(b":", 1)[1])
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await pipe(reader, writer, port)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, heads


async def test_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    server, uri = await ws_server(echo)
    proxy, heads = await start_connect_proxy()
    proxy_uri = f"http://user:pass@127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    async with server, proxy:
        async with fclient.connect(uri, proxy=proxy_uri) as ws:
            await ws.send("via proxy")
            assert await ws.recv() == "via proxy"
        assert heads[0].startswith(f"CONNECT {uri.split('/')[2]} HTTP/1.1\r\n".encode())
        assert b"Proxy-Authorization: Basic dXNlcjpwYXNz" in heads[0]
        # proxy=True (the default) reads the environment; proxy=None ignores it.
        monkeypatch.setenv("ws_proxy", proxy_uri)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        async with fclient.connect(uri) as ws:
            await ws.send("env")
            assert await ws.recv() == "env"
        assert len(heads) == 2
        async with fclient.connect(uri, proxy=None):
            pass
        assert len(heads) == 2


async def test_http_proxy_refuses() -> None:
    proxy, _ = await start_connect_proxy(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    async with proxy:
        with pytest.raises(InvalidProxyStatus) as info:
            await fclient.connect(
                "ws://127.0.0.1:1/", proxy=f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
            )
    assert str(info.value) == "proxy rejected connection: HTTP 403"


async def test_default_user_agent_and_server_hostname() -> None:
    from femtows.websockets.http11 import USER_AGENT

    seen: List[Any] = []

    async def handler(ws: Any) -> None:
        seen.append(ws.request.headers)

    tls = TLSConfig(True)
    server, uri = await ws_server(handler, tls)
    port = uri.rsplit(":", 1)[1].strip("/")
    async with server:
        # The URI names 127.0.0.1; the certificate is checked against server_hostname.
        async with fclient.connect(uri, ssl=tls.client, server_hostname="localhost"):
            pass
        async with fclient.connect(f"wss://localhost:{port}/", ssl=tls.client,
                                   host="127.0.0.1"):
            pass
    assert seen[0]["User-Agent"] == USER_AGENT
    assert seen[1]["Host"] == f"localhost:{port}"
