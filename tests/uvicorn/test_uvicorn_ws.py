"""femtows.uvicorn.FemtowsProtocol against uvicorn's built-in WebSocket implementations.

Every test runs the same steps on uvicorn with femtows, ``websockets-sansio`` and ``wsproto``,
for a FastAPI app and a Starlette app (tests/uvicorn/apps.py), with real clients: websockets,
femtows, Node ``ws`` and headless Chromium (the last two through scripts/peers). Where femtows
differs, the test says so and why (docs/uvicorn.md lists the differences):

* the app raises after accepting: femtows sends CLOSE 1011; the built-ins drop the TCP
  connection (the client sees 1006);
* invalid UTF-8 from the client: femtows sends CLOSE 1007; wsproto sends nothing;
* the app returns without closing: femtows sends CLOSE 1000; the built-ins drop TCP (1006);
* the connection drops without a CLOSE: the app gets code 1006; the built-ins say 1005.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from apps import APPS, expect_disconnect  # noqa: E402
from clients import BROWSERS, CLIENTS, PEER_CLIENTS, Connect, Rejected  # noqa: E402
from serve import WS_IMPLS, serve_uvicorn  # noqa: E402

from tests.utils import encode_frame  # noqa: E402
from tests.websockets.reference import needs_reference  # noqa: E402

# uvicorn's own implementations are the reference these tests hold femtows to, as they behave
# with the stack the suite targets (websockets 17.4, Python 3.11+, the newest uvicorn). Older
# Pythons get older uvicorn/websockets/wsproto releases that differ in details (subprotocol
# lists, size limits, keepalive): there only femtows's implementation runs.
IMPLS = [impl if impl == "femtows" else pytest.param(impl, marks=needs_reference)
         for impl in WS_IMPLS]
APP_NAMES = list(APPS)
CLIENT_NAMES = [*CLIENTS, *PEER_CLIENTS]
# Clients that can write arbitrary bytes and drop TCP (not a browser).
RAW_CLIENTS = [c for c in CLIENT_NAMES if c not in BROWSERS]

impl_param = pytest.mark.parametrize("impl", IMPLS)
app_param = pytest.mark.parametrize("app_name", APP_NAMES)
client_param = pytest.mark.parametrize("client", CLIENT_NAMES)


def serve(impl: str, app_name: str, **config: Any) -> Any:
    return serve_uvicorn(APPS[app_name](), WS_IMPLS[impl], **config)


@impl_param
@app_param
@client_param
async def test_echo_text_and_bytes(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        conn = await connect(srv.url("/echo"))
        for message in ["hello", b"\x00\x01binary", "é ✓ 😀", b"", "x" * 70_000,
                        bytes(range(256)) * 400]:
            await conn.send(message)
            assert await conn.recv() == message
        await conn.close()


@impl_param
@app_param
@client_param
async def test_echo_burst_with_small_queue(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    # 200 messages sent at once through a 2-message queue: reading pauses and resumes, nothing
    # is lost or reordered.
    async with serve(impl, app_name, ws_max_queue=2) as srv:
        conn = await connect(srv.url("/echo"))
        for i in range(200):
            await conn.send(f"m{i}")
        assert [await conn.recv() for _ in range(200)] == [f"m{i}" for i in range(200)]
        await conn.close()


@impl_param
@app_param
@pytest.mark.parametrize("client", list(CLIENTS))
async def test_cancelled_receive_loses_nothing(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    # The app cancels a receive() while it waits: the next receive() gets the next message.
    async with serve(impl, app_name) as srv:
        conn = await connect(srv.url("/cancel"))
        assert await conn.recv() == "ready"
        await conn.send("after the cancel")
        assert await conn.recv() == "after the cancel"
        await conn.close()


@impl_param
@app_param
@client_param
async def test_json(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        conn = await connect(srv.url("/json"))
        for n, obj in enumerate([{"a": 1}, [1, 2, "three"], {"nested": {"x": None}}], 1):
            await conn.send(json.dumps(obj))
            assert json.loads(await conn.recv()) == {"got": obj, "n": n}
        await conn.close()


@impl_param
@app_param
@client_param
async def test_subprotocol(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        conn = await connect(srv.url("/subprotocol"), subprotocols=["nope", "chat.v1"])
        assert conn.subprotocol == "chat.v1"
        assert await conn.recv() == "chat.v1"
        await conn.close()
        if client in PEER_CLIENTS:
            # Node's ws and Chromium fail a handshake whose 101 selects none of the offered
            # subprotocols (RFC 6455 allows it; the WHATWG WebSocket spec does not).
            with pytest.raises(Rejected):
                await connect(srv.url("/subprotocol"), subprotocols=["nope"])
            return
        conn = await connect(srv.url("/subprotocol"), subprotocols=["nope"])
        assert conn.subprotocol is None
        assert await conn.recv() == ""
        await conn.close()


@impl_param
@app_param
@client_param
async def test_scope(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name, root_path="/api") as srv:
        conn = await connect(srv.url("/scope?a=1&b=%20x"), subprotocols=["p1", "p2"])
        assert conn.subprotocol == "p1"
        if client not in BROWSERS:
            assert conn.headers.get("x-extra") == "yes"
        scope = json.loads(await conn.recv())
        await conn.close()
    client_host, client_port = scope.pop("client")
    assert client_host == "127.0.0.1" and isinstance(client_port, int)
    headers = scope.pop("headers")
    assert scope == {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ["127.0.0.1", srv.port],
        "root_path": "/api",
        "path": "/api/scope",
        "raw_path": "/api/scope",
        "query_string": "a=1&b=%20x",
        "subprotocols": ["p1", "p2"],
        "extensions": ["websocket.http.response"],
        "state": {},
    }
    names = [name for name, _ in headers]
    assert all(name == name.lower() for name in names)
    assert dict(headers)["host"] == f"127.0.0.1:{srv.port}"
    assert dict(headers)["sec-websocket-version"] == "13"
    if impl != "wsproto":  # wsproto's impl leaves Sec-WebSocket-* handshake headers out
        assert dict(headers)["sec-websocket-protocol"].replace(" ", "") == "p1,p2"


@impl_param
@app_param
async def test_proxy_headers(impl: str, app_name: str) -> None:
    # uvicorn's proxy-headers middleware applies to WebSocket scopes: client and scheme.
    from websockets.asyncio.client import connect

    async with serve(impl, app_name, proxy_headers=True, forwarded_allow_ips="*") as srv:
        async with connect(srv.url("/scope"), additional_headers={
                "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}) as ws:
            scope = json.loads(await ws.recv())
    assert scope["client"][0] == "203.0.113.7"
    assert scope["scheme"] == "wss"


@impl_param
@app_param
@client_param
async def test_deny_with_http_response(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        with pytest.raises(Rejected) as info:
            await connect(srv.url("/deny"))
    if client in BROWSERS:  # a browser only learns that the upgrade failed
        assert info.value.status is None
        return
    assert info.value.status == 403
    assert info.value.body == b"denied"
    assert info.value.headers["x-why"] == "test"
    assert info.value.headers["content-length"] == "6"


@impl_param
@app_param
@client_param
async def test_close_before_accept_is_403(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        with pytest.raises(Rejected) as info:
            await connect(srv.url("/forbidden"))
    assert info.value.status == (None if client in BROWSERS else 403)
    assert info.value.body == b""


@impl_param
@app_param
@client_param
async def test_close_with_custom_code(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        conn = await connect(srv.url("/close"))
        assert await conn.closed() == (4001, "custom")


@impl_param
@app_param
@client_param
async def test_client_close_code_reaches_app(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        result = expect_disconnect("t1")
        conn = await connect(srv.url("/disconnect?token=t1"))
        assert await conn.recv() == "ready"
        await conn.close(4002, "bye")
        assert await asyncio.wait_for(result, 10) == (4002, "bye")


@impl_param
@app_param
@client_param
async def test_broadcast(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        conns = [await connect(srv.url("/broadcast")) for _ in range(3)]
        # One message at a time: two connections' messages reach the server in either order.
        for sender, message in ((2, "from-2"), (0, "from-0")):
            await conns[sender].send(message)
            for conn in conns:
                assert await conn.recv() == message
        for conn in conns:
            await conn.close()


@impl_param
@app_param
@client_param
async def test_graceful_shutdown_sends_1012(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        conn = await connect(srv.url("/echo"))
        await conn.send("x")
        assert await conn.recv() == "x"
        stop = asyncio.ensure_future(srv.stop())
        code, _ = await conn.closed()
        await stop
    assert code == 1012


@impl_param
@app_param
@client_param
async def test_message_too_big(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name, ws_max_size=1000) as srv:
        conn = await connect(srv.url("/echo"))
        await conn.send("a" * 1000)
        assert await conn.recv() == "a" * 1000
        await conn.send("a" * 1001)
        code, _ = await conn.closed()
    assert code == 1009


@impl_param
@app_param
@client_param
async def test_app_raises_after_accept(impl: str, app_name: str, client: str,
                                       connect: Connect, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "uvicorn.error"):
        async with serve(impl, app_name) as srv:
            conn = await connect(srv.url("/raise"))
            assert await conn.recv() == "ready"
            code, _ = await conn.closed()
    assert "Exception in ASGI application" in caplog.text
    # femtows closes with 1011 (RFC 6455 §7.4.1); the built-ins drop the TCP connection.
    assert code == (1011 if impl == "femtows" else 1006)


@impl_param
@app_param
@pytest.mark.parametrize("client", RAW_CLIENTS)
async def test_invalid_utf8_from_client(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        result = expect_disconnect("u1")
        conn = await connect(srv.url("/disconnect?token=u1"))
        assert await conn.recv() == "ready"
        await conn.send_raw(encode_frame(0x1, b"ok \xff\xfe"))
        code, _ = await conn.closed()
        app_code, _ = await asyncio.wait_for(result, 10)
    # femtows and websockets-sansio close with 1007; wsproto drops the connection silently.
    assert code == (1006 if impl == "wsproto" else 1007)
    assert app_code == 1007


@impl_param
@app_param
@client_param
async def test_app_returns_without_closing(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        conn = await connect(srv.url("/return"))
        assert await conn.recv() == "ready"
        code, _ = await conn.closed()
    # femtows ends the connection with a closing handshake (1000); the built-ins drop TCP.
    assert code == (1000 if impl == "femtows" else 1006)


@impl_param
@app_param
@pytest.mark.parametrize("client", RAW_CLIENTS)
async def test_connection_dropped(impl: str, app_name: str, client: str,
        connect: Connect) -> None:
    async with serve(impl, app_name) as srv:
        result = expect_disconnect("d1")
        conn = await connect(srv.url("/disconnect?token=d1"))
        assert await conn.recv() == "ready"
        await conn.abort_async()
        code, _ = await asyncio.wait_for(result, 10)
    # No CLOSE frame arrived: RFC 6455 §7.1.5 says 1006 (abnormal closure); the built-ins
    # report 1005 (no status code in a CLOSE that was received), which did not happen.
    assert code == (1006 if impl == "femtows" else 1005)


@impl_param
async def test_tls_scheme_wss(impl: str) -> None:
    # uvicorn serving TLS: the scope says wss and femtows's core runs over the TLS transport.
    import ssl

    from websockets.asyncio.client import connect

    certs = Path(__file__).resolve().parents[1] / "certs"
    client_ctx = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    async with serve(impl, "starlette", ssl_certfile=str(certs / "cert.pem"),
                     ssl_keyfile=str(certs / "key.pem")) as srv:
        assert srv.url().startswith("wss://")
        async with connect(srv.url("/scope"), ssl=client_ctx) as ws:
            scope = json.loads(await ws.recv())
            assert scope["scheme"] == "wss"
        big = bytes(range(256)) * 1000
        async with connect(srv.url("/echo"), ssl=client_ctx) as ws:
            for message in ("tls", big, "x" * 100_000):
                await ws.send(message)
                assert await ws.recv() == message


@impl_param
async def test_keepalive_closes_unresponsive_client(impl: str) -> None:
    # A client that never answers PING is closed after ws_ping_interval + ws_ping_timeout:
    # femtows with 1001 (going away, its auto-ping's code), the built-ins with 1011.
    from clients import FemtowsConn, _Queue

    from femtows import ws_connect

    async with serve(impl, "starlette", ws_ping_interval=0.2, ws_ping_timeout=0.2) as srv:
        transport, listener = await ws_connect(_Queue, srv.url("/echo"),
                                               enable_auto_pong=False)
        assert isinstance(listener, _Queue)
        code, _ = await FemtowsConn(transport, listener).closed()
    assert code == (1001 if impl == "femtows" else 1011)


@impl_param
async def test_invalid_upgrade_request_refused_before_the_app(impl: str) -> None:
    # A Sec-WebSocket-Key that is not base64 of 16 bytes: femtows and websockets-sansio refuse
    # it with 400 before the app runs; wsproto's implementation accepts it (101).
    from tests.utils import raw_upgrade_request

    async with serve(impl, "starlette") as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(raw_upgrade_request("/echo", key="not-a-key",
                                         host=f"127.0.0.1:{srv.port}"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
        writer.close()
    assert head.startswith(b"HTTP/1.1 101 " if impl == "wsproto" else b"HTTP/1.1 400 ")


@impl_param
async def test_access_log_lines(impl: str, caplog: pytest.LogCaptureFixture) -> None:
    # uvicorn's access-style lines on uvicorn.error; femtows also logs the "connection open /
    # rejected / closed" lines of uvicorn's default (websockets) implementation.
    from websockets.asyncio.client import connect

    with caplog.at_level(logging.INFO, "uvicorn.error"):
        async with serve(impl, "starlette", log_level="info") as srv:
            async with connect(srv.url("/echo?x=1")) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
            with pytest.raises(Exception, match="403"):
                async with connect(srv.url("/forbidden")):
                    pass
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"]
    assert any(line.endswith(' - "WebSocket /echo?x=1" [accepted]') for line in lines), lines
    assert any(line.endswith(' - "WebSocket /forbidden" 403') for line in lines), lines
    if impl == "femtows":
        assert lines.count("connection open") == 1
        assert "connection rejected (403 Forbidden)" in lines
        assert lines.count("connection closed") == 2


@impl_param
@app_param
@pytest.mark.parametrize("client", ["websockets", "femtows"])
async def test_server_sends_faster_than_client_reads(impl: str, app_name: str, client: str,
                                                    connect: Connect) -> None:
    # 300 x 64 KiB from the app: send() waits while the transport's buffer is full; every
    # message arrives, in order, then the CLOSE.
    async with serve(impl, app_name) as srv:
        conn = await connect(srv.url("/flood?n=300&size=65536"))
        for i in range(300):
            assert await conn.recv() == i.to_bytes(4, "big") * 16384
        assert await conn.closed() == (1000, "")


@pytest.mark.parametrize("per_message_deflate", [True, False])
async def test_per_message_deflate(per_message_deflate: bool) -> None:
    # ws_per_message_deflate (uvicorn's default True): the answer websockets' default
    # ServerPerMessageDeflateFactory() gives (uvicorn's websockets implementation), compressed
    # messages echo; False: no extension.
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve as ws_serve
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    async def handler(ws: Any) -> None:
        await ws.wait_closed()

    extensions = [ServerPerMessageDeflateFactory()] if per_message_deflate else []
    async with ws_serve(handler, "127.0.0.1", 0, compression=None,
                        extensions=extensions) as reference:
        port = reference.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            expected = ws.response.headers.get("Sec-WebSocket-Extensions")
    assert (expected is not None) == per_message_deflate
    async with serve("femtows", "starlette", ws_per_message_deflate=per_message_deflate) as srv:
        async with connect(srv.url("/echo")) as ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions") == expected
            assert bool(ws.protocol.extensions) == per_message_deflate
            for message in ("x" * 100_000, bytes(range(256)) * 400):
                await ws.send(message)
                assert await ws.recv() == message
