"""Sans-I/O opening handshake: femtows's ClientProtocol / ServerProtocol against websockets 17.4.

Round trips in both roles (femtows client -> websockets server and back, websockets client ->
femtows server and back), then the same request or response bytes fed to both libraries' objects
of one role, split at every offset, must give the same events, responses, states and exceptions.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, List, Optional, Tuple

import pytest
import websockets
import websockets.client
import websockets.frames
import websockets.protocol
import websockets.server
import websockets.uri

import femtows.websockets as fws
import femtows.websockets._sansio as _sansio
import femtows.websockets.client as fclient
import femtows.websockets.server as fserver
import femtows.websockets.uri as furi
from tests.websockets.reference import needs_reference

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x37\xfa\x21\x3d"


class _SameMaskEngine(_sansio.FrameEngine):
    def on_ws_connected(self, transport: Any) -> None:
        super().on_ws_connected(transport)
        self.set_mask_pool(MASK * 1024)


@pytest.fixture(autouse=True)
def same_mask_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client masking keys: MASK on both sides, so that client bytes can be compared."""
    monkeypatch.setattr(websockets.frames.secrets, "token_bytes", lambda n: (MASK * 8)[:n])
    monkeypatch.setattr(_sansio, "FrameEngine", _SameMaskEngine)


ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _exc(exc: Optional[BaseException]) -> Optional[Tuple[str, str]]:
    return None if exc is None else (type(exc).__name__, str(exc))


def _chain(exc: Optional[BaseException]) -> List[Optional[Tuple[str, str]]]:
    out = [_exc(exc)]
    while exc is not None and exc.__cause__ is not None:
        exc = exc.__cause__
        out.append(_exc(exc))
    return out


def _no_date(data: bytes) -> bytes:
    return re.sub(rb"Date: [^\r]*\r\n", b"Date: -\r\n", data)


def _event(event: Any) -> Any:
    if hasattr(event, "status_code"):
        return (
            "response",
            event.status_code,
            event.reason_phrase,
            list(event.headers.raw_items()),
            bytes(event.body),
        )
    if hasattr(event, "path"):
        return (
            "request",
            event.method,
            event.path,
            event.protocol,
            list(event.headers.raw_items()),
        )
    return ("frame", int(event.opcode), bytes(event.data), event.fin)


def _final(proto: Any) -> Any:
    return (
        int(proto.state),
        _chain(proto.handshake_exc),
        proto.subprotocol,
        proto.close_expected(),
    )


@pytest.mark.parametrize("direction", ["femtows-client", "femtows-server"])
@pytest.mark.parametrize("subprotocol", [None, "chat"])
def test_round_trip(direction: str, subprotocol: Optional[str]) -> None:
    offered = None if subprotocol is None else ["superchat", "chat"]
    supported = None if subprotocol is None else ["chat"]
    if direction == "femtows-client":
        client: Any = fclient.ClientProtocol(
            furi.parse_uri("wss://user:pass@example.com:8443/chat?room=1"),
            origin="https://example.com",
            subprotocols=offered,
        )
        server: Any = websockets.server.ServerProtocol(subprotocols=supported)
    else:
        client = websockets.client.ClientProtocol(
            websockets.uri.parse_uri("wss://user:pass@example.com:8443/chat?room=1"),
            origin="https://example.com",
            subprotocols=offered,
        )
        server = fserver.ServerProtocol(subprotocols=supported)
    request = client.connect()
    client.send_request(request)
    for data in client.data_to_send():
        server.receive_data(data)
    [received] = server.events_received()
    assert received.path == "/chat?room=1"
    assert received.headers["Origin"] == "https://example.com"
    assert received.headers["Authorization"] == "Basic dXNlcjpwYXNz"
    response = server.accept(received)
    assert response.status_code == 101
    server.send_response(response)
    assert server.state == 1 and server.subprotocol == subprotocol
    for data in server.data_to_send():
        client.receive_data(data)
    [answer] = client.events_received()
    assert answer.status_code == 101
    assert client.state == 1 and client.subprotocol == subprotocol
    assert client.handshake_exc is None and server.handshake_exc is None
    # Frames flow both ways after the handshake.
    client.send_text(b"hi")
    for data in client.data_to_send():
        server.receive_data(data)
    assert [bytes(f.data) for f in server.events_received()] == [b"hi"]
    server.send_close(1000, "bye")
    for data in server.data_to_send():
        client.receive_data(data)
    [close] = client.events_received()
    assert bytes(close.data) == b"\x03\xe8bye" and client.state == 2
    for data in client.data_to_send():
        server.receive_data(data)
    assert server.state == 2 and server.events_received()[0].opcode == 8
    assert server.data_to_send() == [b""]
    server.receive_eof()
    client.receive_eof()
    assert client.data_to_send() == [b""]
    assert server.state == client.state == 3
    assert (
        type(client.close_exc).__name__ == type(server.close_exc).__name__ == "ConnectionClosedOK"
    )


def test_connect_builds_the_same_request() -> None:
    for uri in [
        "ws://example.com/",
        "wss://example.com:443/a?b",
        "ws://[::1]:8080/x",
        "ws://u:p@host:80",
    ]:
        ours = fclient.ClientProtocol(
            furi.parse_uri(uri), origin="http://o", subprotocols=["a", "b"]
        )
        theirs = websockets.client.ClientProtocol(
            websockets.uri.parse_uri(uri), origin="http://o", subprotocols=["a", "b"]
        )
        ours.key = theirs.key
        assert ours.connect().serialize() == theirs.connect().serialize()


def _request(*headers: str, line: str = "GET /path HTTP/1.1") -> bytes:
    base = [
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    names = {h.split(":")[0].lower() for h in headers}
    lines = [h for h in base if h.split(":")[0].lower() not in names] + [
        h for h in headers if not h.endswith(": <drop>")
    ]
    return (line + "\r\n" + "".join(h + "\r\n" for h in lines) + "\r\n").encode()


REQUESTS = {
    "ok": _request(),
    "ok-then-frame": _request() + b"\x81\x82abcd" + bytes([ord("h") ^ 97, ord("i") ^ 98]),
    "close-before-accept": _request() + b"\x88\x80abcd",
    "bad-frame-before-accept": _request() + b"\x81\x00",
    "subprotocol": _request("Sec-WebSocket-Protocol: other, chat"),
    "no-subprotocol-offered": _request(),
    "bad-subprotocol": _request("Sec-WebSocket-Protocol: other"),
    "origin-ok": _request("Origin: https://good.example"),
    "origin-bad": _request("Origin: https://evil.example"),
    "no-origin": _request(),
    "two-origins": _request("Origin: https://good.example", "Origin: https://good.example"),
    "post": _request(line="POST /path HTTP/1.1"),
    "http10": _request(line="GET /path HTTP/1.0"),
    "no-upgrade": _request("Upgrade: <drop>"),
    "upgrade-h2c": _request("Upgrade: h2c"),
    "no-connection": _request("Connection: keep-alive"),
    "no-key": _request("Sec-WebSocket-Key: <drop>"),
    "bad-key": _request("Sec-WebSocket-Key: not base64!"),
    "short-key": _request("Sec-WebSocket-Key: YWJj"),
    "two-keys": _request(f"Sec-WebSocket-Key: {KEY}", f"Sec-WebSocket-Key: {KEY}"),
    "no-version": _request("Sec-WebSocket-Version: <drop>"),
    "version-8": _request("Sec-WebSocket-Version: 8"),
    "extensions-ignored": _request("Sec-WebSocket-Extensions: x-unknown"),
    "garbage": b"hello\r\n\r\n",
    "long-line": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
    "truncated": _request()[:-7],
}


def _server(lib: Any, name: str) -> Any:
    kwargs: dict[str, Any] = {}
    if "subprotocol" in name:
        kwargs["subprotocols"] = ["chat", "superchat"]
    if "origin" in name:
        kwargs["origins"] = ["https://good.example", re.compile(r"https://\w+\.local"), None]
    return lib.ServerProtocol(**kwargs)


def _serve(lib: Any, name: str, chunks: List[bytes]) -> Any:
    proto = _server(lib, name)
    events = []
    for chunk in chunks:
        proto.receive_data(chunk)
        events += [_event(e) for e in proto.events_received()]
    out: List[Any] = [events, [_no_date(d) for d in proto.data_to_send()]]
    requests = [e for e in events if e[0] == "request"]
    if requests:
        request = fws.Request if lib is fserver else websockets.Request
        from femtows.websockets.datastructures import Headers as FHeaders

        headers_cls = FHeaders if lib is fserver else websockets.Headers
        _, method, path, protocol, raw = requests[0]
        response = proto.accept(request(path, headers_cls(raw), method, protocol))
        out.append(
            _event(response)[:-2]
            + (
                [(k, v if k != "Date" else "-") for k, v in response.headers.raw_items()],
                bytes(response.body),
            )
        )
        proto.send_response(response)
        out.append([_no_date(d) for d in proto.data_to_send()])
        out.append([_event(e) for e in proto.events_received()])
    proto.receive_eof()
    out.append(proto.data_to_send())
    out.append(_final(proto))
    return out


@needs_reference  # older websockets: no Request.method/.protocol, other refusals
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_server_handshake_like_websockets(name: str) -> None:
    stream = REQUESTS[name]
    splits = [[stream], [stream[:-1], stream[-1:]]]
    if len(stream) < 400:
        splits += [[stream[:i], stream[i:]] for i in range(1, len(stream))]
    for chunks in splits:
        assert _serve(fserver, name, chunks) == _serve(websockets.server, name, chunks), chunks


def _response(*headers: str, status: str = "101 Switching Protocols", body: bytes = b"") -> bytes:
    base = ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Accept: {ACCEPT}"]
    names = {h.split(":")[0].lower() for h in headers}
    lines = [h for h in base if h.split(":")[0].lower() not in names] + [
        h for h in headers if not h.endswith(": <drop>")
    ]
    return (f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in lines) + "\r\n").encode() + body


RESPONSES = {
    "ok": _response(),
    "ok-then-frames": _response() + b"\x81\x02hi\x88\x02\x03\xe8",
    "subprotocol": _response("Sec-WebSocket-Protocol: chat"),
    "unknown-subprotocol": _response("Sec-WebSocket-Protocol: other"),
    "two-subprotocols": _response("Sec-WebSocket-Protocol: chat, other"),
    "extension-not-offered": _response("Sec-WebSocket-Extensions: permessage-deflate"),
    "bad-accept": _response("Sec-WebSocket-Accept: AAAA"),
    "no-accept": _response("Sec-WebSocket-Accept: <drop>"),
    "no-upgrade": _response("Upgrade: <drop>"),
    "connection-close": _response("Connection: close"),
    "404": _response("Content-Length: 9", status="404 Not Found", body=b"not found"),
    "500-to-eof": _response("Upgrade: <drop>", status="500 Internal Server Error", body=b"oops"),
    "garbage": b"SSH-2.0-OpenSSH\r\n\r\n",
    "truncated": _response()[:-3],
}


def _client(lib: Any, name: str, chunks: List[bytes]) -> Any:
    uri = (furi if lib is fclient else websockets.uri).parse_uri("ws://example.com/")
    subprotocols = ["chat"] if "subprotocol" in name else None
    proto = lib.ClientProtocol(uri, subprotocols=subprotocols)
    proto.key = KEY
    proto.send_request(proto.connect())
    out: List[Any] = [proto.data_to_send()]
    for chunk in chunks:
        proto.receive_data(chunk)
        out.append(
            ([_event(e) for e in proto.events_received()], proto.data_to_send(), int(proto.state))
        )
    proto.receive_eof()
    out.append(([_event(e) for e in proto.events_received()], proto.data_to_send()))
    out.append(_final(proto))
    if proto.state == 3 and proto.handshake_exc is None:
        out.append((proto.close_code, proto.close_reason, _chain(proto.close_exc)))
    return out


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_client_handshake_like_websockets(name: str) -> None:
    stream = RESPONSES[name]
    splits = [[stream]] + [[stream[:i], stream[i:]] for i in range(1, len(stream))]
    for chunks in splits:
        ours = _client(fclient, name, chunks)
        theirs = _client(websockets.client, name, chunks)
        assert ours == theirs, chunks


def test_select_subprotocol_hook_and_errors() -> None:
    def pick(protocol: Any, offered: Any) -> Any:
        assert isinstance(protocol, fserver.ServerProtocol)
        return offered[-1]

    proto = fserver.ServerProtocol(select_subprotocol=pick)
    proto.receive_data(_request("Sec-WebSocket-Protocol: a, b"))
    [request] = proto.events_received()
    response = proto.accept(request)
    assert response.headers["Sec-WebSocket-Protocol"] == "b" and proto.subprotocol == "b"

    def boom(protocol: Any, offered: Any) -> Any:
        raise RuntimeError("boom")

    proto = fserver.ServerProtocol(select_subprotocol=boom)
    proto.receive_data(_request())
    [request] = proto.events_received()
    response = proto.accept(request)
    assert response.status_code == 500 and isinstance(proto.handshake_exc, RuntimeError)
    proto.send_response(response)
    assert proto.data_to_send()[-1] == b"" and proto.close_expected()


def test_reject_and_top_level_names() -> None:
    proto = fws.ServerProtocol()
    response = proto.reject(403, "go away\n")
    assert (response.status_code, response.reason_phrase, bytes(response.body)) == (
        403,
        "Forbidden",
        b"go away\n",
    )
    assert response.headers["Content-Length"] == "8"
    assert fws.ClientProtocol is fclient.ClientProtocol and fws.Protocol.__name__ == "Protocol"


class _Xor:
    name = "x-xor"

    def decode(self, frame: Any, *, max_size: Optional[int] = None) -> Any:
        if frame.opcode >= 8 or not frame.rsv2:
            return frame
        return dataclasses.replace(frame, data=bytes(b ^ 0x55 for b in frame.data), rsv2=False)

    def encode(self, frame: Any) -> Any:
        if frame.opcode >= 8:
            return frame
        return dataclasses.replace(frame, data=bytes(b ^ 0x55 for b in frame.data), rsv2=True)


class _XorClientFactory:
    name = "x-xor"

    def get_request_params(self) -> List[Tuple[str, Optional[str]]]:
        return [("level", "1")]

    def process_response_params(self, params: Any, accepted: Any) -> _Xor:
        assert list(params) == [("level", "1")]
        return _Xor()


class _XorServerFactory:
    name = "x-xor"

    def process_request_params(self, params: Any, accepted: Any) -> Tuple[Any, _Xor]:
        return list(params), _Xor()


@pytest.mark.parametrize("direction", ["femtows-client", "femtows-server"])
def test_extension_negotiated_and_applied(direction: str) -> None:
    uri = "ws://example.com/"
    if direction == "femtows-client":
        client: Any = fclient.ClientProtocol(furi.parse_uri(uri), extensions=[_XorClientFactory()])
        server: Any = websockets.server.ServerProtocol(extensions=[_XorServerFactory()])
    else:
        client = websockets.client.ClientProtocol(
            websockets.uri.parse_uri(uri), extensions=[_XorClientFactory()]
        )
        server = fserver.ServerProtocol(extensions=[_XorServerFactory()])
    client.send_request(client.connect())
    [request] = client.data_to_send()
    assert b"Sec-WebSocket-Extensions: x-xor; level=1\r\n" in request
    server.receive_data(request)
    [received] = server.events_received()
    response = server.accept(received)
    assert response.headers["Sec-WebSocket-Extensions"] == "x-xor; level=1"
    server.send_response(response)
    for data in server.data_to_send():
        client.receive_data(data)
    assert client.state == server.state == 1
    assert [type(e).__name__ for e in client.extensions] == ["_Xor"]
    client.send_text(b"hello")
    [wire] = client.data_to_send()
    assert wire[0] == 0xA1  # FIN + RSV2 + TEXT
    server.receive_data(wire)
    [message] = server.events_received()
    assert (bytes(message.data), message.rsv2) == (b"hello", False)


@pytest.mark.parametrize("direction", ["femtows-client", "femtows-server"])
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_permessage_deflate_like_websockets(direction: str, no_context_takeover: bool) -> None:
    """Negotiated with the factories of each library; the compressed bytes are websockets'."""
    from websockets.extensions import permessage_deflate as wpmd

    from femtows.websockets.extensions import permessage_deflate as fpmd

    options = {"client_no_context_takeover": no_context_takeover}
    ours_client = direction == "femtows-client"
    uri = "ws://example.com/"
    if ours_client:
        client: Any = fclient.ClientProtocol(
            furi.parse_uri(uri), extensions=[fpmd.ClientPerMessageDeflateFactory(**options)]
        )
        server: Any = websockets.server.ServerProtocol(
            extensions=[wpmd.ServerPerMessageDeflateFactory()]
        )
        ref_client: Any = websockets.client.ClientProtocol(
            websockets.uri.parse_uri(uri),
            extensions=[wpmd.ClientPerMessageDeflateFactory(**options)],
        )
        ref_server: Any = websockets.server.ServerProtocol(
            extensions=[wpmd.ServerPerMessageDeflateFactory()]
        )
    else:
        client = websockets.client.ClientProtocol(
            websockets.uri.parse_uri(uri),
            extensions=[wpmd.ClientPerMessageDeflateFactory(**options)],
        )
        server = fserver.ServerProtocol(extensions=[fpmd.ServerPerMessageDeflateFactory()])
        ref_client = websockets.client.ClientProtocol(
            websockets.uri.parse_uri(uri),
            extensions=[wpmd.ClientPerMessageDeflateFactory(**options)],
        )
        ref_server = websockets.server.ServerProtocol(
            extensions=[wpmd.ServerPerMessageDeflateFactory()]
        )
    wires = []
    for c, s in ((client, server), (ref_client, ref_server)):
        c.key = KEY
        c.send_request(c.connect())
        for data in c.data_to_send():
            s.receive_data(data)
        [request] = s.events_received()
        response = s.accept(request)
        s.send_response(response)
        for data in s.data_to_send():
            c.receive_data(data)
        assert c.state == s.state == 1
        c.events_received()  # the 101 response
        assert (
            [e.name for e in c.extensions]
            == [e.name for e in s.extensions]
            == ["permessage-deflate"]
        )
        wire = []
        for text in (b"hello hello hello", b"hello hello hello", b"x" * 5000):
            c.send_text(text, fin=False)
            c.send_continuation(b" end", fin=True)
            out = c.data_to_send()
            wire.append(out)
            for data in out:
                s.receive_data(data)
            events = s.events_received()
            assert b"".join(bytes(e.data) for e in events) == text + b" end"
            s.send_binary(text)
            out = s.data_to_send()
            wire.append(out)
            for data in out:
                c.receive_data(data)
            assert [bytes(e.data) for e in c.events_received()] == [text]
        wires.append(wire)
    assert wires[0] == wires[1]


def _deflate_server(lib: Any, max_size: Any) -> Any:
    """A server protocol that accepted permessage-deflate (run by the core on femtows)."""
    if lib is fserver:
        from femtows.websockets.extensions import permessage_deflate as pmd
    else:
        from websockets.extensions import permessage_deflate as pmd  # type: ignore[no-redef]
    proto = lib.ServerProtocol(extensions=[pmd.ServerPerMessageDeflateFactory()], max_size=max_size)
    proto.receive_data(_request("Sec-WebSocket-Extensions: permessage-deflate"))
    [request] = proto.events_received()
    proto.send_response(proto.accept(request))
    proto.data_to_send()
    if lib is fserver:
        assert proto._core_extension is proto.extensions[-1]  # zlib from the core
    return proto


def _compressed_stream() -> bytes:
    from websockets.extensions import permessage_deflate as wpmd

    client = websockets.client.ClientProtocol(
        websockets.uri.parse_uri("ws://example.com/"), state=websockets.protocol.State.OPEN
    )
    client.extensions = [wpmd.PerMessageDeflate(False, False, 15, 15)]
    client.send_text(b"hello " * 50, fin=False)
    client.send_ping(b"in between")
    client.send_continuation(b"world " * 50, fin=True)
    client.send_binary(bytes(range(256)) * 4)
    client.send_close(1000, "done")
    return b"".join(client.data_to_send())


def _mask(payload: bytes) -> bytes:
    return MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


DEFLATE_STREAMS = {
    "valid": (_compressed_stream(), 2**20),
    "too-big-after-inflate": (_compressed_stream(), 200),
    "garbage": (b"\xc1\x84" + _mask(b"\xff\xff\xff\xff"), 2**20),
    "rsv1-on-continuation": (_compressed_stream()[:40] + b"\x40\x82" + _mask(b"ab"), 2**20),
    "rsv1-on-ping": (b"\xc9\x80" + MASK, 2**20),
}


@pytest.mark.parametrize("name", sorted(DEFLATE_STREAMS))
def test_permessage_deflate_frames_like_websockets(name: str) -> None:
    stream, max_size = DEFLATE_STREAMS[name]
    splits = [[stream], [stream[i : i + 7] for i in range(0, len(stream), 7)]]
    splits += [[stream[:i], stream[i:]] for i in range(1, len(stream), 5)]
    for chunks in splits:
        results = []
        for lib in (fserver, websockets.server):
            proto = _deflate_server(lib, max_size)
            events = []
            writes: List[bytes] = []
            for chunk in chunks:
                proto.receive_data(chunk)
                events += [(int(e.opcode), bytes(e.data), e.fin) for e in proto.events_received()]
                writes += proto.data_to_send()
            proto.receive_eof()
            writes += proto.data_to_send()
            results.append(
                (
                    events,
                    b"|".join(writes),
                    int(proto.state),
                    _exc(proto.parser_exc),
                    proto.close_code,
                    proto.close_reason,
                )
            )
        assert results[0] == results[1], chunks
