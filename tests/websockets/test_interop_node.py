"""Interop of the websockets drop-in with Node's ``ws`` (scripts/peers), in both directions and
on both APIs: femtows.websockets.asyncio / .sync clients against a Node ``ws`` server, and a Node
``ws`` client against femtows.websockets.asyncio / .sync servers.

Every pair runs the same exchange (compression off on both sides, so it holds with and without
permessage-deflate support): text, binary, 1 MiB in one frame and in 16 fragments, fragmented
text both ways, a ping each way with its payload checked, and close codes and reasons in both
directions. The femtows servers and the Node server speak the same small protocol: any message
is echoed, except the text commands ``fragments`` (answer "abcdef" in three fragments),
``server-ping`` (PING "from-server", then send "pong-received:" + the PONG's payload) and
``server-close`` (close with 4002 "server bye").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from femtows.websockets.asyncio.client import connect as aconnect
from femtows.websockets.asyncio.server import ServerConnection as AServerConnection
from femtows.websockets.asyncio.server import serve as aserve
from femtows.websockets.exceptions import ConnectionClosed, ConnectionClosedError
from femtows.websockets.sync.client import connect as sconnect
from femtows.websockets.sync.server import ServerConnection as SServerConnection
from femtows.websockets.sync.server import serve as sserve

MiB = 1024 * 1024
BIG = bytes((i * 7) % 251 for i in range(MiB))  # the same formula as BIG_JS
BIG_SHA = hashlib.sha256(BIG).hexdigest()
SMALL = bytes([0, 1, 2, 255])
TEXT = "hello é ✓"
BIG_JS = ("const big = Buffer.alloc(1 << 20);"
          " for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;")

# ------------------------------------------------------------------------------------------------
# Node's side

NODE_SERVER = """
const { WebSocketServer } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false,
                                  maxPayload: 64 << 20 });
const log = { closes: [], pings: [] };
let twoClosed;
const twoCloses = new Promise((r) => { twoClosed = r; });
wss.on("connection", (ws) => {
  ws.on("ping", (d) => log.pings.push(d.toString()));
  ws.on("pong", (d) => ws.send("pong-received:" + d.toString()));
  ws.on("close", (code, reason) => {
    log.closes.push([code, reason.toString()]);
    if (log.closes.length === 2) twoClosed();
  });
  ws.on("message", (m, isBinary) => {
    if (!isBinary) {
      const t = m.toString();
      if (t === "server-close") { ws.close(4002, "server bye"); return; }
      if (t === "server-ping") { ws.ping("from-server"); return; }
      if (t === "fragments") {
        ws.send("ab", { fin: false }); ws.send("cd", { fin: false }); ws.send("ef", { fin: true });
        return;
      }
    }
    ws.send(m, { binary: isBinary });
  });
});
await new Promise((r) => wss.on("listening", r));
const port = wss.address().port;
globalThis.interopServers = globalThis.interopServers || {};
globalThis.interopServers[port] = { wss, log, twoCloses };
return port;
"""


def node_client_js(url: str, close: str) -> str:
    """One Node ``ws`` client session; returns what it received. ``close``: "client" (close
    with 4001 "client bye") or "server" (ask the server to close)."""
    finish = ('ws.close(4001, "client bye");' if close == "client"
              else 'ws.send("server-close");')
    return f"""
const WebSocket = require("ws");
const crypto = require("crypto");
{BIG_JS}
const sha = (b) => crypto.createHash("sha256").update(b).digest("hex");
const ws = new WebSocket({json.dumps(url)}, {{ perMessageDeflate: false, maxPayload: 64 << 20 }});
const q = [], waiters = [];
ws.on("message", (m, isBinary) => {{
  const item = isBinary ? m : m.toString();
  const w = waiters.shift(); if (w) w(item); else q.push(item);
}});
const recv = () => q.length ? Promise.resolve(q.shift()) : new Promise((r) => waiters.push(r));
const closed = new Promise((r) => ws.on("close", (code, reason) => r([code, reason.toString()])));
const serverPings = [];
ws.on("ping", (d) => serverPings.push(d.toString()));
await new Promise((res, rej) => {{ ws.on("open", res); ws.on("error", rej); }});
const out = {{}};
if ({json.dumps(close)} === "client") {{
  ws.send({json.dumps(TEXT)}); out.text = await recv();
  ws.send(Buffer.from([0, 1, 2, 255])); const b = await recv();
  out.binary = [Buffer.isBuffer(b), b.toString("hex")];
  ws.send(big); const e1 = await recv(); out.big = [Buffer.isBuffer(e1), e1.length, sha(e1)];
  for (let k = 0; k < 16; k++)
    ws.send(big.subarray(k << 16, (k + 1) << 16), {{ binary: true, fin: k === 15 }});
  const e2 = await recv(); out.bigFragmented = [e2.length, sha(e2)];
  ws.send("héllo ", {{ fin: false }}); ws.send("wörld", {{ fin: true }});
  out.textFragmented = await recv();
  ws.send("fragments"); out.fragments = await recv();
  const pong = new Promise((r) => ws.once("pong", (d) => r(d.toString())));
  ws.ping("client-ping"); out.pong = await pong;
  ws.send("server-ping"); out.serverPong = await recv(); out.serverPings = serverPings;
}}
{finish}
out.closed = await closed;
return out;
"""


EXPECTED_NODE_CLIENT = {
    "text": TEXT,
    "binary": [True, SMALL.hex()],
    "big": [True, MiB, BIG_SHA],
    "bigFragmented": [MiB, BIG_SHA],
    "textFragmented": "héllo wörld",
    "fragments": "abcdef",
    "pong": "client-ping",
    "serverPong": "pong-received:from-server",
    "serverPings": ["from-server"],
    "closed": [4001, "client bye"],
}


async def node_server(node: Any) -> tuple[str, int]:
    port: int = await node.call(NODE_SERVER)
    return f"ws://127.0.0.1:{port}/", port


async def node_server_log(node: Any, port: int) -> dict[str, Any]:
    """The Node server's log once it has seen both sessions close (or after 5 s), then the
    server is stopped."""
    log: dict[str, Any] = await node.call(f"""
const s = globalThis.interopServers[{port}];
await Promise.race([s.twoCloses, new Promise((r) => setTimeout(r, 5000))]);
s.wss.close(); delete globalThis.interopServers[{port}];
return s.log;
""")
    return log


# ------------------------------------------------------------------------------------------------
# femtows's side


def chunks(data: bytes, n: int = 16) -> Iterator[bytes]:
    step = len(data) // n
    return (data[i:i + step] for i in range(0, len(data), step))


async def async_client_session(url: str) -> None:
    """The femtows.websockets.asyncio client's exchange; ends with its own close."""
    async with aconnect(url, compression=None) as ws:
        await ws.send(TEXT)
        assert await ws.recv() == TEXT
        await ws.send(SMALL)
        assert await ws.recv() == SMALL
        await ws.send(BIG)
        assert await ws.recv() == BIG
        await ws.send(chunks(BIG))
        assert await ws.recv() == BIG
        await ws.send(["héllo ", "wörld"])
        assert await ws.recv() == "héllo wörld"
        await ws.send("fragments")
        assert await ws.recv() == "abcdef"
        latency = await asyncio.wait_for(await ws.ping(b"client-ping"), 10)
        assert latency >= 0
        await ws.send("server-ping")
        assert await ws.recv() == "pong-received:from-server"
        await ws.close(4001, "client bye")
        assert (ws.close_code, ws.close_reason) == (4001, "client bye")
    async with aconnect(url, compression=None) as ws:
        await ws.send("server-close")
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.sent is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "server bye")
        assert (info.value.sent.code, info.value.sent.reason) == (4002, "server bye")
        assert (ws.close_code, ws.close_reason) == (4002, "server bye")


def sync_client_session(url: str) -> None:
    """The femtows.websockets.sync client's exchange, the same as the asyncio one."""
    with sconnect(url, compression=None) as ws:
        ws.send(TEXT)
        assert ws.recv(timeout=10) == TEXT
        ws.send(SMALL)
        assert ws.recv(timeout=10) == SMALL
        ws.send(BIG)
        assert ws.recv(timeout=10) == BIG
        ws.send(chunks(BIG))
        assert ws.recv(timeout=10) == BIG
        ws.send(["héllo ", "wörld"])
        assert ws.recv(timeout=10) == "héllo wörld"
        ws.send("fragments")
        assert ws.recv(timeout=10) == "abcdef"
        assert ws.ping(b"client-ping").wait(10)
        ws.send("server-ping")
        assert ws.recv(timeout=10) == "pong-received:from-server"
        ws.close(4001, "client bye")
        assert (ws.close_code, ws.close_reason) == (4001, "client bye")
    with sconnect(url, compression=None) as ws:
        ws.send("server-close")
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "server bye")
        assert (ws.close_code, ws.close_reason) == (4002, "server bye")


EXPECTED_NODE_SERVER_LOG = {"pings": ["client-ping"],
                            "closes": [[4001, "client bye"], [4002, "server bye"]]}


async def test_asyncio_client_to_node_server(node_peer: Any) -> None:
    url, port = await node_server(node_peer)
    try:
        await async_client_session(url)
    finally:
        log = await node_server_log(node_peer, port)
    assert log == EXPECTED_NODE_SERVER_LOG


def test_sync_client_to_node_server(node_peer: Any) -> None:
    url, port = asyncio.run(node_server(node_peer))
    try:
        sync_client_session(url)
    finally:
        log = asyncio.run(node_server_log(node_peer, port))
    assert log == EXPECTED_NODE_SERVER_LOG


async def async_handler(ws: AServerConnection, closes: asyncio.Queue[tuple[Any, Any]]) -> None:
    try:
        async for message in ws:
            if message == "server-close":
                await ws.close(4002, "server bye")
            elif message == "server-ping":
                await asyncio.wait_for(await ws.ping(b"from-server"), 10)
                await ws.send("pong-received:from-server")
            elif message == "fragments":
                await ws.send(["ab", "cd", "ef"])
            else:
                await ws.send(message)
    except ConnectionClosed:
        pass
    closes.put_nowait((ws.close_code, ws.close_reason))


def sync_handler(ws: SServerConnection, closes: queue.Queue[tuple[Any, Any]]) -> None:
    try:
        for message in ws:
            if message == "server-close":
                ws.close(4002, "server bye")
            elif message == "server-ping":
                assert ws.ping(b"from-server").wait(10)
                ws.send("pong-received:from-server")
            elif message == "fragments":
                ws.send(["ab", "cd", "ef"])
            else:
                ws.send(message)
    except ConnectionClosed:
        pass
    closes.put((ws.close_code, ws.close_reason))


async def node_client_sessions(node: Any, url: str) -> list[dict[str, Any]]:
    results = []
    for close in ("client", "server"):
        results.append(await node.call(node_client_js(url, close), timeout=30))
    return results


def check_node_client(results: list[dict[str, Any]]) -> None:
    assert results[0] == EXPECTED_NODE_CLIENT
    assert results[1] == {"closed": [4002, "server bye"]}


async def test_node_client_to_asyncio_server(node_peer: Any) -> None:
    closes: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
    async with aserve(lambda ws: async_handler(ws, closes), "127.0.0.1", 0,
                      compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        results = await node_client_sessions(node_peer, f"ws://127.0.0.1:{port}/")
        seen = [await asyncio.wait_for(closes.get(), 10) for _ in range(2)]
    check_node_client(results)
    assert seen == [(4001, "client bye"), (4002, "server bye")]


def test_node_client_to_sync_server(node_peer: Any) -> None:
    closes: queue.Queue[tuple[Any, Any]] = queue.Queue()
    server = sserve(lambda ws: sync_handler(ws, closes), "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    error: Optional[BaseException] = None
    try:
        port = server.socket.getsockname()[1]
        results = asyncio.run(node_client_sessions(node_peer, f"ws://127.0.0.1:{port}/"))
        seen = [closes.get(timeout=10) for _ in range(2)]
    except BaseException as exc:  # pragma: no cover - re-raised after the shutdown
        error = exc
    finally:
        server.shutdown()
        thread.join(10)
    if error is not None:
        raise error
    assert not thread.is_alive()
    check_node_client(results)
    assert seen == [(4001, "client bye"), (4002, "server bye")]
