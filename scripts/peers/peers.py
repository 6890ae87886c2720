"""Python API over the real WebSocket peers of scripts/peers/run.py (see README.md there).

    node = NodePeer()                         # a Node process with the `ws` package
    result = await node.call("return 1 + 1")  # the body of an async JS function -> 2
    conn = await node.open("ws://127.0.0.1:8000/echo", ["chat"])   # a WebSocket client
    await conn.send("hi"); assert await conn.recv() == "hi"; await conn.close()
    node.close()

    browser = ChromiumPeer()                  # headless Chromium, driven over DevTools
    conn = await browser.open(url)            # the browser's own WebSocket
    browser.close()

A peer is one subprocess and can be used from any event loop (each call is one request/response
over its pipe or DevTools socket), so a test session may start it once and share it. Both stop
when closed, and when the Python process holding their stdin goes away.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Optional, Union

HERE = Path(__file__).resolve().parent
RUN = HERE / "run.py"
WSCLIENT_JS = (HERE / "wsclient.js").read_text()
CALL_TIMEOUT = 20.0  # seconds for one call (connects and receives are bounded inside it)

Data = Union[str, bytes]


class PeerError(Exception):
    """The peer failed: it could not start, a call raised in JavaScript, or it timed out."""


class PeerRejected(Exception):
    """open(): the server answered the upgrade with an HTTP response. A browser cannot see it:
    ``status`` is None then (and headers/body empty)."""

    def __init__(self, status: Optional[int], headers: dict[str, str], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body


class PeerClosed(Exception):
    """recv() on a closed connection: the code and reason of the close event."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class Peer:
    """What NodePeer and ChromiumPeer share: ``call`` and the WebSocket client API."""

    async def call(self, js: str, timeout: float = CALL_TIMEOUT) -> Any:
        """Run ``js`` as the body of an async function in the peer; return its result (JSON)."""
        raise NotImplementedError

    async def open(self, url: str, protocols: Optional[list[str]] = None) -> PeerConnection:
        """Open a WebSocket client connection in the peer."""
        result = await self.call(
            f"return await femtowsPeer.open({json.dumps(url)}, {json.dumps(protocols or [])})")
        if "rejected" in result:
            r = result["rejected"]
            raise PeerRejected(r["status"], {k.lower(): v for k, v in (r["headers"] or {}).items()},
                               base64.b64decode(r["body"] or ""))
        return PeerConnection(self, result["id"], result["protocol"] or None,
                              {k.lower(): v for k, v in (result["headers"] or {}).items()},
                              result.get("extensions") or "")

    def close(self) -> None:
        raise NotImplementedError


class PeerConnection:
    """One WebSocket client connection living in a peer."""

    def __init__(self, peer: Peer, conn_id: int, protocol: Optional[str],
                 headers: dict[str, str], extensions: str = "") -> None:
        self.peer = peer
        self.id = conn_id
        self.protocol = protocol
        self.headers = headers  # the 101 response's headers (Node only; {} in a browser)
        # The negotiated extensions as the peer reports them (WebSocket.extensions, in Node
        # and in a browser): "permessage-deflate" when compression was agreed.
        self.extensions = extensions
        self.close_event: Optional[PeerClosed] = None

    async def send(self, data: Data) -> None:
        if isinstance(data, str):
            await self.peer.call(f"return femtowsPeer.send({self.id}, {json.dumps(data)}, false)")
        else:
            b64 = base64.b64encode(data).decode()
            await self.peer.call(f"return femtowsPeer.send({self.id}, '{b64}', true)")

    async def recv(self, timeout: float = 10.0) -> Data:
        """The next message; PeerClosed once the connection is closed."""
        if self.close_event is not None:
            raise self.close_event
        item = await self.peer.call(
            f"return await femtowsPeer.recv({self.id}, {int(timeout * 1000)})", timeout + 5)
        kind = item["type"]
        if kind == "text":
            return str(item["data"])
        if kind == "bytes":
            return base64.b64decode(item["data"])
        if kind == "close":
            self.close_event = PeerClosed(item["code"], item["reason"])
            raise self.close_event
        raise PeerError(f"no message within {timeout}s")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (returns at once; ``closed()`` waits for the end)."""
        await self.peer.call(f"return femtowsPeer.close({self.id}, {code}, {json.dumps(reason)})")

    async def closed(self, timeout: float = 10.0) -> tuple[int, str]:
        """Wait for the close event: (code, reason) as the peer's WebSocket API reports it."""
        while self.close_event is None:
            try:
                await self.recv(timeout)
            except PeerClosed:
                pass
        return self.close_event.code, self.close_event.reason

    async def send_raw(self, data: bytes) -> None:
        """Node only: write bytes to the TCP socket as they are."""
        b64 = base64.b64encode(data).decode()
        await self.peer.call(f"return femtowsPeer.sendRaw({self.id}, '{b64}')")

    async def abort(self) -> None:
        """Node only: drop the TCP connection without a closing handshake."""
        await self.peer.call(f"return femtowsPeer.abort({self.id})")


class NodePeer(Peer):
    """A Node process (``run.py node``) evaluating JavaScript, with ``require("ws")``."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(RUN), "node"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def call_sync(self, js: str, timeout: float = CALL_TIMEOUT) -> Any:
        """``call`` for synchronous code (blocks the calling thread)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            call_id = next(self._ids)
            try:
                self.proc.stdin.write(json.dumps({"id": call_id, "js": js}) + "\n")
                self.proc.stdin.flush()
            except OSError as exc:
                raise PeerError(f"the Node peer is gone: {self._stderr()}") from exc
            timer = threading.Timer(timeout, self.proc.kill)  # a hung call kills the peer
            timer.start()
            try:
                line = self.proc.stdout.readline()
            finally:
                timer.cancel()
        if not line:
            raise PeerError(f"the Node peer exited: {self._stderr()}")
        reply = json.loads(line)
        if "error" in reply:
            raise PeerError(reply["error"])
        return reply.get("ok")

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()[-2000:]

    async def call(self, js: str, timeout: float = CALL_TIMEOUT) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self.call_sync, js,
                                                                timeout)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the driver exits at EOF
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class ChromiumPeer(Peer):
    """Headless Chromium (``run.py chromium``); calls run in one about:blank page through the
    DevTools protocol (Runtime.evaluate), where wsclient.js is loaded. One DevTools connection
    per event loop, calls serialized on it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(RUN), "chromium"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # run.py bounds the start (READY_TIMEOUT)
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise PeerError(f"chromium did not start: {err[-2000:]}")
        info = json.loads(line)
        self.port = int(info["port"])
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise PeerError("chromium has no page target")
        self.page_url: str = pages[0]["webSocketDebuggerUrl"]
        self._ids = itertools.count(1)
        self._loaded = False
        self._cdp: Optional[tuple[asyncio.AbstractEventLoop, Any, asyncio.Lock]] = None

    async def call(self, js: str, timeout: float = CALL_TIMEOUT) -> Any:
        # wait_for, not asyncio.timeout: the peers run on every Python we claim (3.9+).
        return await asyncio.wait_for(self._call(js), timeout)

    async def _call(self, js: str) -> Any:
        cdp, lock = await self._devtools()
        async with lock:
            if not self._loaded:
                await self._evaluate(cdp, WSCLIENT_JS)
                self._loaded = True
            return await self._evaluate(cdp, f"(async () => {{ {js} }})()")

    async def _devtools(self) -> tuple[Any, asyncio.Lock]:
        """The DevTools connection of the running event loop (one per loop: a test session
        runs each test on a fresh loop), and the lock that serializes calls on it."""
        from websockets.asyncio.client import connect

        loop = asyncio.get_running_loop()
        if self._cdp is None or self._cdp[0] is not loop or self._cdp[1].close_code is not None:
            ws = await connect(self.page_url, max_size=None, ping_interval=None)
            self._cdp = (loop, ws, asyncio.Lock())
        return self._cdp[1], self._cdp[2]

    async def _evaluate(self, cdp: Any, expression: str) -> Any:
        call_id = next(self._ids)
        await cdp.send(json.dumps({"id": call_id, "method": "Runtime.evaluate", "params": {
            "expression": expression, "awaitPromise": True, "returnByValue": True}}))
        while True:
            reply = json.loads(await cdp.recv())
            if reply.get("id") == call_id:
                break
        if "error" in reply:
            raise PeerError(str(reply["error"]))
        result = reply["result"]
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise PeerError(str(details.get("exception", {}).get("description") or details))
        return result["result"].get("value")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # run.py stops Chromium at EOF
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
