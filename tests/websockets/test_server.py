"""femtows.websockets.asyncio.server through its public API, against websockets 17.4 as peer
and as reference: real websockets and femtows.websockets clients, raw HTTP for exact bytes,
and websockets' own server run side by side where the answer must be the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator
from typing import Any, Callable, Optional

import pytest
import websockets
import websockets.asyncio.server as ws_server
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from femtows.websockets.asyncio import client as f_client
from femtows.websockets.asyncio.server import (
    Server,
    ServerConnection,
    broadcast,
    serve,
    unix_serve,
)
from femtows.websockets.datastructures import Headers
from femtows.websockets.exceptions import ConnectionClosedError as FConnectionClosedError
from femtows.websockets.exceptions import NegotiationError
from femtows.websockets.http11 import SERVER, Request, Response
from femtows.websockets.protocol import State
from tests.conftest import TLSConfig
from tests.utils import read_frame, read_until_eof
from tests.websockets.reference import needs_reference
from tests.websockets.server_helpers import port_of, raw_exchange, upgrade

FAILED = "Failed to open a WebSocket connection.\nSee server log for more information.\n"


def client_ssl(tls: Optional[TLSConfig]) -> dict[str, Any]:
    return {"ssl": tls.client} if tls is not None and tls.enabled else {}


def server_ssl(tls: Optional[TLSConfig]) -> dict[str, Any]:
    return {"ssl": tls.server} if tls is not None and tls.enabled else {}


@contextlib.asynccontextmanager
async def running(
    handler: Callable[[Any], Any], tls: Optional[TLSConfig] = None, **kwargs: Any
) -> AsyncIterator[tuple[Server, str]]:
    """A femtows.websockets server on an ephemeral port; yields (server, url)."""
    async with serve(handler, "127.0.0.1", 0, **server_ssl(tls), **kwargs) as server:
        scheme = tls.scheme if tls is not None else "ws"
        yield server, f"{scheme}://127.0.0.1:{port_of(server)}/"


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def wait_forever(ws: ServerConnection) -> None:
    await ws.wait_closed()


# ---------------------------------------------------------------------------------------------
# Messages and the handler's lifecycle


async def test_echo_with_both_clients(tls: TLSConfig) -> None:
    async with running(echo, tls) as (server, url):
        async with websockets.connect(url, **client_ssl(tls)) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            assert ws.response.headers["Server"] == SERVER
            assert ws.response.headers["Sec-WebSocket-Accept"]
            assert ws.subprotocol is None
        async with f_client.connect(url, **client_ssl(tls)) as fws:
            await fws.send("text")
            assert await fws.recv() == "text"
            await fws.send(b"bytes" * 1000)
            assert await fws.recv() == b"bytes" * 1000


async def test_handler_sees_open_connection_with_request_and_response() -> None:
    seen: dict[str, Any] = {}

    async def handler(ws: ServerConnection) -> None:
        seen["state"] = ws.state
        seen["request"] = ws.request
        seen["response"] = ws.response
        seen["in_connections"] = ws in ws.server.connections
        seen["remote"] = ws.remote_address
        seen["local"] = ws.local_address
        seen["server"] = ws.server
        await ws.send("done")

    async with running(handler) as (server, url):
        port = port_of(server)
        async with websockets.connect(url + "path?q=1") as ws:
            assert await ws.recv() == "done"
            local = ws.local_address
    assert seen["state"] is State.OPEN
    assert isinstance(seen["request"], Request) and seen["request"].path == "/path?q=1"
    assert isinstance(seen["request"].headers, Headers)
    assert isinstance(seen["response"], Response) and seen["response"].status_code == 101
    assert seen["in_connections"] is True
    assert seen["remote"] == local
    assert seen["local"][1] == port
    assert seen["server"] is server


async def test_handler_return_closes_1000() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("bye")

    async with running(handler) as (server, url):
        async with websockets.connect(url) as ws:
            assert await ws.recv() == "bye"
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000


async def test_handler_exception_closes_1011_and_logs(
    caplog: pytest.LogCaptureFixture, tls: TLSConfig
) -> None:
    async def handler(ws: ServerConnection) -> None:
        raise ZeroDivisionError("boom")

    with caplog.at_level(logging.ERROR, logger="websockets.server"):
        async with running(handler, tls) as (server, url):
            async with websockets.connect(url, **client_ssl(tls)) as ws:
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    records = [r for r in caplog.records if r.getMessage() == "connection handler failed"]
    assert len(records) == 1
    assert records[0].name == "websockets.server" and records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ZeroDivisionError)


@needs_reference
async def test_logs_like_websockets(caplog: pytest.LogCaptureFixture) -> None:
    """Same scenario on websockets' server and ours: the same INFO/ERROR records, in order."""

    async def handler(ws: Any) -> None:
        if ws.request.path == "/fail":
            raise RuntimeError("handler")
        await ws.send("hi")

    def process_request(connection: Any, request: Any) -> Any:
        if request.path == "/broken":
            raise ValueError("process_request")
        if request.path == "/health":
            return connection.respond(200, "OK\n")
        return None

    async def scenario(serve_function: Any) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="websockets.server"):
            async with serve_function(
                handler, "127.0.0.1", 0, process_request=process_request,
                origins=["https://ok.example", None],
            ) as server:
                url = f"ws://127.0.0.1:{port_of(server)}"
                async with websockets.connect(url + "/") as ws:
                    assert await ws.recv() == "hi"
                    await ws.wait_closed()
                async with websockets.connect(url + "/fail") as ws:
                    await ws.wait_closed()
                for path, origin in (("/broken", None), ("/health", None), ("/", "https://x")):
                    with pytest.raises(InvalidStatus):
                        async with websockets.connect(url + path, origin=origin):
                            pass
        return [
            f"{r.levelname} {r.getMessage()}"
            + (f" [{type(r.exc_info[1]).__name__}]" if r.exc_info else "")
            for r in caplog.records
            if r.name == "websockets.server"
            and not r.getMessage().startswith("server listening on")
        ]

    expected = await scenario(ws_server.serve)
    assert "INFO connection closed" in expected
    assert await scenario(serve) == expected


async def test_listening_log_names_the_socket(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="websockets.server"):
        async with serve(echo, "127.0.0.1", 0) as server:
            port = port_of(server)
    messages = [r.getMessage() for r in caplog.records if r.name == "websockets.server"]
    assert messages == [f"server listening on 127.0.0.1:{port}", "server closing",
                        "server closed"]


async def test_custom_logger_and_create_connection() -> None:
    logger = logging.getLogger("test.femtows.server")
    created: list[ServerConnection] = []

    class MyConnection(ServerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    async def handler(ws: ServerConnection) -> None:
        ws.custom = "attribute"  # type: ignore[attr-defined]
        await ws.send(type(ws).__name__)

    async with running(handler, logger=logger, create_connection=MyConnection) as (_, url):
        async with websockets.connect(url) as ws:
            assert await ws.recv() == "MyConnection"
    assert len(created) == 1
    assert created[0].logger.logger is logger  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# process_request / process_response


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_process_request_response_short_circuits(kind: str, tls: TLSConfig) -> None:
    seen: list[Any] = []

    def sync_hook(connection: ServerConnection, request: Request) -> Optional[Response]:
        seen.append((connection.state, connection.remote_address is not None, request.path))
        if request.path == "/health":
            response = connection.respond(200, "OK\n")
            response.headers["X-Health"] = "good"
            return response
        return None

    async def async_hook(connection: ServerConnection, request: Request) -> Optional[Response]:
        await asyncio.sleep(0)
        return sync_hook(connection, request)

    hook = sync_hook if kind == "sync" else async_hook
    async with running(echo, tls, process_request=hook) as (server, url):
        raw = await raw_exchange(port_of(server), upgrade("/health"), tls.client)
        assert raw.status_line == "HTTP/1.1 200 OK"
        assert raw.body == b"OK\n"
        assert raw.header("X-Health") == "good"
        assert raw.header("Content-Type") == "text/plain; charset=utf-8"
        assert raw.header("Content-Length") == "3"
        assert raw.header("Connection") == "close"
        assert raw.header("Server") == SERVER
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(url + "health", **client_ssl(tls)):
                pass
        assert info.value.response.status_code == 200
        async with websockets.connect(url + "ws", **client_ssl(tls)) as ws:
            await ws.send("through")
            assert await ws.recv() == "through"
    assert seen[0] == (State.CONNECTING, True, "/health")
    assert seen[-1] == (State.CONNECTING, True, "/ws")


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("hook", ["process_request", "process_response"])
async def test_hook_exception_500_and_log(
    kind: str, hook: str, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(*args: Any) -> None:
        raise RuntimeError("secret")

    async def async_failing(*args: Any) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("secret")

    with caplog.at_level(logging.ERROR, logger="websockets.server"):
        async with running(echo, **{hook: failing if kind == "sync" else async_failing}) as (
            server, url
        ):
            raw = await raw_exchange(port_of(server), upgrade())
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(url):
                    pass
    assert raw.status_line == "HTTP/1.1 500 Internal Server Error"
    assert raw.body == FAILED.encode()
    assert info.value.response.status_code == 500
    records = [r for r in caplog.records if r.getMessage() == f"{hook} failed"]
    assert len(records) == 2
    assert all(r.levelno == logging.ERROR and r.exc_info is not None for r in records)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_process_response_modifies_or_replaces(kind: str, tls: TLSConfig) -> None:
    def sync_hook(
        connection: ServerConnection, request: Request, response: Response
    ) -> Optional[Response]:
        assert connection.response is response
        if request.path == "/replace":
            return connection.respond(403, "Forbidden by process_response\n")
        response.headers["Set-Cookie"] = "session=1"
        return None

    async def async_hook(
        connection: ServerConnection, request: Request, response: Response
    ) -> Optional[Response]:
        await asyncio.sleep(0)
        return sync_hook(connection, request, response)

    hook = sync_hook if kind == "sync" else async_hook
    async with running(echo, tls, process_response=hook) as (server, url):
        async with websockets.connect(url, **client_ssl(tls)) as ws:
            assert ws.response.headers["Set-Cookie"] == "session=1"
        async with f_client.connect(url, **client_ssl(tls)) as fws:
            assert fws.response is not None
            assert fws.response.headers["Set-Cookie"] == "session=1"
        raw = await raw_exchange(port_of(server), upgrade("/replace"), tls.client)
        assert raw.status_line == "HTTP/1.1 403 Forbidden"
        assert raw.body == b"Forbidden by process_response\n"


async def test_process_request_forced_101_and_server_header() -> None:
    async def hook(connection: ServerConnection, request: Request) -> None:
        connection.marker = request.headers.get("X-Marker")  # type: ignore[attr-defined]

    async def handler(ws: ServerConnection) -> None:
        await ws.send(str(ws.marker))  # type: ignore[attr-defined]

    async with running(handler, process_request=hook, server_header=None) as (_, url):
        async with websockets.connect(url, additional_headers={"X-Marker": "m"}) as ws:
            assert await ws.recv() == "m"
            assert "Server" not in ws.response.headers
    async with running(echo, server_header="custom/1.0") as (_, url):
        async with websockets.connect(url) as ws:
            assert ws.response.headers["Server"] == "custom/1.0"


# ---------------------------------------------------------------------------------------------
# Refusals: compared with websockets' own server, byte for byte (but Date and Server)


REFUSALS = [
    pytest.param(upgrade(method="POST"), id="post-405"),
    pytest.param(upgrade(version="HTTP/1.0"), id="http10-505"),
    pytest.param(upgrade(connection=""), id="no-connection-426"),
    pytest.param(upgrade(connection="keep-alive"), id="connection-keepalive-426"),
    pytest.param(upgrade(key=""), id="no-key-400"),
    pytest.param(upgrade(key="not base64!"), id="bad-key-400"),
    pytest.param(upgrade(key="AAAA"), id="short-key-400"),
    pytest.param(upgrade(ws_version=""), id="no-version-400"),
    pytest.param(upgrade(ws_version="8"), id="version-8-400"),
    pytest.param(upgrade(extra="Origin: https://evil.example\r\n"), id="origin-403"),
    pytest.param(upgrade(), id="no-origin-403"),
    pytest.param(
        upgrade(extra="Origin: https://a.example\r\nOrigin: https://b.example\r\n"),
        id="two-origins-400",
    ),
    pytest.param(
        upgrade(extra="Origin: https://good.example\r\nSec-WebSocket-Protocol: other\r\n"),
        id="subprotocol-400",
    ),
    pytest.param(upgrade(extra="Origin: https://good.example\r\n"), id="no-subprotocol-400"),
]


@needs_reference
@pytest.mark.parametrize("request_bytes", REFUSALS)
async def test_refusals_match_websockets(request_bytes: bytes) -> None:
    kwargs: dict[str, Any] = {
        "origins": ["https://good.example", re.compile(r"https://[a-z]+\.good\.example")],
        "subprotocols": ["chat", "superchat"],
    }
    async with ws_server.serve(wait_forever, "127.0.0.1", 0, **kwargs) as reference:
        expected = await raw_exchange(port_of(reference), request_bytes)
    async with serve(wait_forever, "127.0.0.1", 0, **kwargs) as server:
        actual = await raw_exchange(port_of(server), request_bytes)
    assert expected.status_line.split()[1] >= "400"
    assert actual.comparable() == expected.comparable()
    assert actual.header("Server") == SERVER


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("https://good.example", True),
        ("https://sub.good.example", True),
        ("https://sub.good.example.evil", False),
        ("https://GOOD.example", False),
        (None, True),
    ],
)
async def test_origins(origin: Optional[str], accepted: bool) -> None:
    origins = ["https://good.example", re.compile(r"https://[a-z]+\.good\.example"), None]
    async with running(echo, origins=origins) as (_, url):
        if accepted:
            async with websockets.connect(url, origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send("ok")
                assert await ws.recv() == "ok"
        else:
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(url, origin=origin):  # type: ignore[arg-type]
                    pass
            assert info.value.response.status_code == 403
            assert info.value.response.body == (
                f"Failed to open a WebSocket connection: invalid Origin header: {origin}.\n"
            ).encode()


# ---------------------------------------------------------------------------------------------
# Subprotocols


async def test_subprotocols_negotiated_in_server_order() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(str(ws.subprotocol))

    async with running(handler, subprotocols=["superchat", "chat"]) as (_, url):
        async with websockets.connect(url, subprotocols=["chat", "superchat"]) as ws:
            assert ws.subprotocol == "superchat"
            assert await ws.recv() == "superchat"
        async with f_client.connect(url, subprotocols=["chat"]) as fws:
            assert fws.subprotocol == "chat"
            assert await fws.recv() == "chat"


async def test_select_subprotocol(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[Any, list[str]]] = []

    def select(connection: ServerConnection, offered: Any) -> Optional[str]:
        calls.append((connection, list(offered)))
        if "refuse" in offered:
            raise NegotiationError("refused by select_subprotocol")
        if "crash" in offered:
            raise KeyError("crash")
        return offered[-1] if offered else None

    async def handler(ws: ServerConnection) -> None:
        await ws.send(str(ws.subprotocol))

    with caplog.at_level(logging.ERROR, logger="websockets.server"):
        async with running(handler, select_subprotocol=select) as (_, url):
            async with websockets.connect(url, subprotocols=["a", "b"]) as ws:
                assert ws.subprotocol == "b"
                assert await ws.recv() == "b"
            async with websockets.connect(url) as ws:
                assert ws.subprotocol is None
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(url, subprotocols=["refuse"]):
                    pass
            assert info.value.response.status_code == 400
            assert info.value.response.body == (
                b"Failed to open a WebSocket connection: refused by select_subprotocol.\n"
            )
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(url, subprotocols=["crash"]):
                    pass
            assert info.value.response.status_code == 500
            assert info.value.response.body == FAILED.encode()
    assert isinstance(calls[0][0], ServerConnection)
    assert [offered for _, offered in calls] == [["a", "b"], [], ["refuse"], ["crash"]]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "opening handshake failed"
    ]


# ---------------------------------------------------------------------------------------------
# Server object


async def test_server_close_codes_and_connections(tls: TLSConfig) -> None:
    opened = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        opened.set()
        await ws.wait_closed()

    server = await serve(handler, "127.0.0.1", 0, **server_ssl(tls))
    assert server.is_serving()
    assert server.get_loop() is asyncio.get_running_loop()
    url = f"{tls.scheme}://127.0.0.1:{port_of(server)}/"
    async with websockets.connect(url, **client_ssl(tls)) as ws:
        await opened.wait()
        assert len(server.connections) == 1
        server.close(code=1012, reason="restarting")
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1012, "restarting")
    await server.wait_closed()
    assert not server.is_serving()
    assert server.connections == set()
    server.close()  # idempotent
    await server.wait_closed()


async def test_close_without_closing_connections() -> None:
    async with running(echo) as (server, url):
        async with websockets.connect(url) as ws:
            server.close(close_connections=False)
            waiter = asyncio.ensure_future(server.wait_closed())
            await ws.send("still open")
            assert await ws.recv() == "still open"
            assert not waiter.done()
        await asyncio.wait_for(waiter, 5)


async def test_default_close_is_1001() -> None:
    async with running(wait_forever) as (server, url):
        async with websockets.connect(url) as ws:
            server.close()
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001


async def test_503_while_shutting_down() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hook(connection: ServerConnection, request: Request) -> None:
        entered.set()
        await release.wait()

    async with running(echo, process_request=hook) as (server, url):
        task = asyncio.ensure_future(raw_exchange(port_of(server), upgrade()))
        await entered.wait()
        server.close()
        release.set()
        raw = await task
    assert raw.status_line == "HTTP/1.1 503 Service Unavailable"
    assert raw.body == b"Server is shutting down.\n"


async def test_serve_forever_cancelled_closes_gracefully() -> None:
    server = await serve(wait_forever, "127.0.0.1", 0, start_serving=False)
    assert not server.is_serving()
    forever = asyncio.ensure_future(server.serve_forever())
    await server.start_serving()  # idempotent with serve_forever's own
    async with websockets.connect(f"ws://127.0.0.1:{port_of(server)}/") as ws:
        forever.cancel()
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    with pytest.raises(asyncio.CancelledError):
        await forever
    assert not server.is_serving()


async def test_start_serving_false() -> None:
    server = await serve(echo, "127.0.0.1", 0, start_serving=False)
    assert not server.is_serving()
    await server.start_serving()
    async with server:
        async with websockets.connect(f"ws://127.0.0.1:{port_of(server)}/") as ws:
            await ws.send("x")
            assert await ws.recv() == "x"


async def test_sock_and_reuse_port() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with serve(echo, sock=sock) as server:
        assert port_of(server) == port
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("sock")
            assert await ws.recv() == "sock"
    async with serve(echo, "127.0.0.1", 0, reuse_port=True) as server:
        s = server.sockets[0]
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0


async def test_unix_serve(tmp_path: Any) -> None:
    path = str(tmp_path / "ws.sock")
    async with unix_serve(echo, path) as server:
        assert server.sockets[0].family == socket.AF_UNIX
        async with websockets.unix_connect(path) as ws:
            await ws.send("unix")
            assert await ws.recv() == "unix"


async def test_open_timeout_drops_silent_clients() -> None:
    async with running(echo, open_timeout=0.2) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        assert await read_until_eof(reader) == b""
        writer.close()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="^unsupported compression: gzip$"):
        serve(echo, compression="gzip")


async def test_broadcast_reexported() -> None:
    from femtows.websockets.asyncio.connection import broadcast as original

    assert broadcast is original
    received: list[Any] = []
    both = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        if len(ws.server.connections) == 2:
            both.set()
        await ws.wait_closed()

    async with running(handler) as (server, url):
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            await both.wait()
            broadcast(server.connections, "all")
            received = [await a.recv(), await b.recv()]
    assert received == ["all", "all"]


async def test_tls_handshake_timeout_defaults_to_open_timeout() -> None:
    """A client that never starts TLS is dropped after open_timeout (asyncio's default would
    be 60 s)."""
    tls = TLSConfig(True)
    async with running(echo, tls, open_timeout=0.3) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        assert await read_until_eof(reader) == b""
        writer.close()


async def test_tls_shutdown_timeout_is_close_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """With TLS, close_timeout also bounds the TLS shutdown where the server call takes
    ssl_shutdown_timeout; where it does not (asyncio's own transports before Python 3.11) the
    server still starts, keeping asyncio's own."""
    from femtows import _net

    seen: list[dict[str, Any]] = []
    real = _net.create_server

    async def recording(use: Optional[bool], factory: Any, **kw: Any) -> asyncio.Server:
        seen.append(kw)
        return await real(use, factory, **kw)

    monkeypatch.setattr(_net, "create_server", recording)
    takes = _net.tls_server_takes_shutdown_timeout(asyncio.get_running_loop(), False)
    async with running(echo, TLSConfig(True), close_timeout=1.5):
        pass
    assert seen[0].get("ssl_shutdown_timeout") == (1.5 if takes else None)
    monkeypatch.setattr(_net, "tls_server_takes_shutdown_timeout", lambda loop, unix: False)
    async with running(echo, TLSConfig(True), close_timeout=1.5):
        pass
    assert "ssl_shutdown_timeout" not in seen[1]


async def test_keepalive_timeout_fails_with_1011() -> None:
    """A client that never answers pings: PING, then CLOSE 1011 "keepalive ping timeout"."""
    closed: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()
        except FConnectionClosedError as exc:
            closed.append(exc)

    async with running(handler, ping_interval=0.05, ping_timeout=0.05) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(upgrade())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        ping = await read_frame(reader)
        assert ping.opcode == 0x9 and len(ping.payload) == 4
        close = await read_frame(reader)
        assert close.close_code == 1011
        assert close.payload[2:] == b"keepalive ping timeout"
        writer.close()
    assert len(closed) == 1
    assert str(closed[0]) == (
        "sent 1011 (internal error) keepalive ping timeout; no close frame received"
    )


async def test_max_size_1009(tls: TLSConfig) -> None:
    async with running(echo, tls, max_size=10) as (_, url):
        # Uncompressed: compressed, "0123456789" takes 12 bytes on the wire (over the limit
        # for websockets too).
        async with websockets.connect(url, compression=None, **client_ssl(tls)) as ws:
            await ws.send("0123456789")
            assert await ws.recv() == "0123456789"
            await ws.send("0123456789A")
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009


@pytest.mark.parametrize("status", [101, 403])
async def test_header_injection_in_a_hook_answers_500(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A header value with CR LF (set by process_response) is never sent: 500 instead."""

    def process_response(
        connection: ServerConnection, request: Request, response: Response
    ) -> Optional[Response]:
        if status != 101:
            response = connection.respond(status, "no\n")
        response.headers["X-Evil"] = "a\r\nSet-Cookie: injected=1"
        return response

    with caplog.at_level(logging.ERROR):
        async with running(echo, process_response=process_response) as (server, _):
            raw = await raw_exchange(port_of(server), upgrade())
    assert raw.status_line == "HTTP/1.1 500 Internal Server Error"
    assert b"injected" not in raw.body
    assert all("injected" not in v for _, v in raw.headers)


async def test_process_request_runs_for_http_1_0_and_post() -> None:
    """As websockets 17.x: process_request sees any method and HTTP/1.0, so it can serve them."""

    def health(connection: ServerConnection, request: Request) -> Optional[Response]:
        if request.path == "/health":
            return connection.respond(200, f"{request.method} {request.protocol}\n")
        return None

    async with running(echo, process_request=health) as (server, _):
        port = port_of(server)
        get10 = await raw_exchange(port, b"GET /health HTTP/1.0\r\n\r\n")
        post = await raw_exchange(port, upgrade("/health", method="POST"))
        refused = await raw_exchange(port, upgrade(version="HTTP/1.0"))
    assert (get10.status_line, get10.body) == ("HTTP/1.1 200 OK", b"GET HTTP/1.0\n")
    assert (post.status_line, post.body) == ("HTTP/1.1 200 OK", b"POST HTTP/1.1\n")
    assert refused.status_line == "HTTP/1.1 505 HTTP Version Not Supported"
    assert refused.body == (
        b"Failed to open a WebSocket connection: unsupported HTTP version: HTTP/1.0.\n"
    )


@pytest.mark.parametrize("how", ["client-leaves", "open-timeout"])
async def test_pending_async_hook_is_cancelled(how: str) -> None:
    entered = asyncio.Event()
    cancelled = asyncio.Event()
    connections: list[ServerConnection] = []

    async def hook(connection: ServerConnection, request: Request) -> None:
        connections.append(connection)
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    timeout = 0.2 if how == "open-timeout" else 10
    async with running(echo, process_request=hook, open_timeout=timeout) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(upgrade())
        await entered.wait()
        if how == "client-leaves":
            writer.transport.abort()
        else:
            assert await read_until_eof(reader) == b""  # dropped without an answer
            writer.close()
        await asyncio.wait_for(cancelled.wait(), 5)
        await asyncio.wait_for(connections[0].wait_closed(), 5)
        assert connections[0].state is State.CLOSED
        assert server.connections == set()
