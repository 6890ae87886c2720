"""Fuzz targets: each is ``target(data: bytes) -> None`` and raises only on a bug.

Every target decodes its input deterministically without atheris (the corpus replay in
tests/test_fuzz_corpus.py calls the functions directly), and asserts invariants beyond "does
not crash" (see each docstring). An exception escaping a target is a finding:
:class:`~tests.fuzz.harness.InvariantError` for a broken invariant, anything else for an
undocumented exception.

Targets: ``frames`` (frame parser, server and client), ``request`` (HTTP upgrade request),
``response`` (HTTP upgrade response), ``url`` (URL parser), ``connect`` (HTTP proxy CONNECT
reply), ``socks`` (SOCKS4/5 replies through femtows's SOCKS path on a socketpair).
"""

from __future__ import annotations

import asyncio
import atexit
import re
import socket
from typing import Any, Callable, Dict, List, Optional

# Imported here, not lazily by femtows.proxy, so that run.py instruments python-socks's reply
# parsers for coverage along with femtows.
import python_socks.async_.asyncio  # noqa: F401

from femtows import handshake
from femtows.errors import (
    WSHandshakeError,
    WSInvalidMessageError,
    WSInvalidURL,
    WSProxyError,
)
from femtows.proxy import MAX_PROXY_HEAD_SIZE, _connect_via_socks_proxy, _ConnectTunnel
from femtows.url import WSParsedURL, parse_url
from tests.fuzz.harness import (
    KEY,
    QUIET,
    Config,
    FakeLoop,
    FakeTransport,
    Recorder,
    check,
    chunked,
    compare,
    feed,
    make_protocol,
    reference,
    run_connection,
    running,
)


def split_sizes(seed: int, total: int) -> List[int]:
    """Piece sizes for ``total`` bytes from ``seed``: seed 0 is one read, others mix 1-byte,
    small and large reads (a xorshift generator: cheaper than random.Random per input)."""
    if seed == 0:
        return [total]
    x = (seed * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF or 1
    sizes = []
    left = total
    while left > 0:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        kind = x & 7
        if kind < 2:
            n = 1
        elif kind < 6:
            n = 1 + (x >> 8) % 16
        else:
            n = 1 + (x >> 8) % left
        sizes.append(n)
        left -= n
    return sizes


# ---------------------------------------------------------------------------------------------
# (a) frames


MAX_FRAME_SIZES = (1 << 20, 125, 126, 0)  # 0: taken from the second byte (small sizes)


def frames(data: bytes) -> None:
    """Bytes after a completed handshake into a real server or client WSProtocol.

    Input: byte 0 = flags (client side, UTF-8 validation off, RSV allowed, auto-pong off,
    listener raises, no disconnect on exception, max_frame_size choice), byte 1 = frame index
    the listener raises on / small max_frame_size, bytes 2-3 = how the stream is cut into reads,
    byte 4 = how many times the rest is repeated (bits 0-2: 0-7 more: long streams and large
    frames, which make the read buffer compact and grow, from short inputs; bits 3-7, with a
    listener that does not raise: which reads are parsed the way
    femtows.websockets.sync's thread in recv parses them, see harness.feed_mixed), rest = the
    stream.
    Invariants: the frames delivered, the auto-PONGs and the CLOSE (code,
    echo payload) are exactly those of the reference model (tests/fuzz/harness.py), nothing is
    delivered after a failure or a CLOSE, close codes only from the allowed set, only one CLOSE
    and nothing after it, no write after close(), the read buffer stays within twice the
    largest allowed frame, on_ws_disconnected exactly once, no exception escapes the protocol.
    """
    if len(data) < 5:
        return
    flags, param = data[0], data[1]
    seed = int.from_bytes(data[2:4], "big")
    stream = data[5:] * (1 + data[4] % 8)
    mfs = MAX_FRAME_SIZES[(flags >> 6) & 3] or param
    cfg = Config(
        is_client=bool(flags & 1),
        validate_utf8=not flags & 2,
        allow_rsv=bool(flags & 4),
        auto_pong=not flags & 8,
        raise_at=param % 16 if flags & 16 else -1,
        disconnect_on_exception=not flags & 32,
        max_frame_size=max(mfs, 1),
    )
    head_len = 129 if cfg.is_client else 167  # about; only used to size the pieces
    ext_bits = data[4] >> 3
    ext = ([bool(ext_bits >> i & 1) for i in range(5)]
           if ext_bits and cfg.raise_at < 0 else None)
    outcome = run_connection(cfg, stream, split_sizes(seed, head_len + len(stream)), ext=ext)
    compare(outcome, reference(stream, cfg), cfg)


# ---------------------------------------------------------------------------------------------
# (b) upgrade request


REQUEST_STATUSES = {400, 431, 505}
VALIDATE_STATUSES = {400, 405, 426}
SMALL_HEAD = 512


def request(data: bytes) -> None:
    """An HTTP upgrade request: parse_request/validate_request directly, and the same bytes
    through a real server WSProtocol (byte 0 = how they are cut, byte 1 bit 0 = a small
    max_head_size of 512 bytes, rest = the request).

    Invariants: parse_request raises only HandshakeRejection 400/431/505, validate_request only
    400/405/426; an accepted request serialises back to a request that parses to the same
    fields; its 101 response passes the client's parse_response + validate_response. The
    protocol answers exactly what the functions decided: 101 (listener connected) or the same
    error status, closing the connection; never 500; nothing written while the head is
    incomplete and within the limit.
    """
    if len(data) < 2:
        return
    seed, opts = data[0], data[1]
    wire = data[2:]
    max_head = SMALL_HEAD if opts & 1 else handshake.MAX_HEAD_SIZE
    end = wire.find(b"\r\n\r\n")
    head = wire[: end + 4] if end >= 0 else None

    # The functions.
    expected: Optional[int] = None  # None: still waiting for the head
    if head is None:
        if len(wire) > max_head:
            expected = 431
    elif len(head) > max_head:
        expected = 431
    else:
        try:
            req = handshake.parse_request(head)
        except handshake.HandshakeRejection as e:
            check(e.status in REQUEST_STATUSES, "parse_request answered %d", e.status)
            expected = int(e.status)
        else:
            _check_request_round_trip(req)
            try:
                key = handshake.validate_request(req)
            except handshake.HandshakeRejection as e:
                check(e.status in VALIDATE_STATUSES, "validate_request answered %d", e.status)
                expected = int(e.status)
            else:
                expected = 101
                resp, resp_wire = handshake.build_101_response(key)
                parsed = handshake.parse_response(resp_wire)
                handshake.validate_response(parsed, key, resp_wire)

    # The protocol.
    loop = FakeLoop()
    listener = Recorder()
    transport = FakeTransport()
    with running(loop):
        proto, _ = make_protocol(Config(), listener, max_head_size=max_head)
        proto.connection_made(transport)
        feed(proto, transport, chunked(wire, split_sizes(seed, len(wire))))
        out = bytes(transport.out)
        if expected is None:
            check(out == b"" and not transport.closing, "answered an incomplete head")
        else:
            check(out.startswith(b"HTTP/1.1 "), "no HTTP response: %r", out[:40])
            status = int(out[9:12])
            check(status == expected, "protocol answered %d, functions %d", status, expected)
            if status == 101:
                check(listener.connected == 1, "101 without on_ws_connected")
            else:
                check(transport.closing, "error response without closing")
                check(listener.connected == 0, "listener connected on %d", status)
        loop.fire_timers()
        proto.connection_lost(None)
    check(transport.writes_after_close == 0, "write after close()")


def _check_request_round_trip(req: handshake.WSUpgradeRequest) -> None:
    lines = [req.method + b" " + req.path + b" " + req.version]
    for name, value in req.headers.items():
        lines.append(name.encode() + b": " + value.encode("utf-8", "surrogateescape"))
    again = handshake.parse_request(b"\r\n".join(lines) + b"\r\n\r\n")
    check((again.method, again.path, again.version) == (req.method, req.path, req.version),
          "request line does not round-trip")
    check(list(again.headers.items()) == list(req.headers.items()),
          "headers do not round-trip")


# ---------------------------------------------------------------------------------------------
# (c) upgrade response


def response(data: bytes) -> None:
    """The server's answer to our upgrade request (key RFC 6455 §1.3's): parse_response +
    validate_response directly, and the same bytes through a real client WSProtocol (byte 0 =
    how they are cut, rest = the response).

    Invariants: parse_response raises only WSInvalidMessageError and validate_response only
    WSHandshakeError subclasses; an accepted response re-serialises to one that parses to the
    same status and headers. The client protocol's handshake future ends exactly as the
    functions decided (success: the listener connected; failure: a WSHandshakeError, never
    another exception, the transport closed); nothing is decided while the head is incomplete.
    """
    if len(data) < 1:
        return
    seed = data[0]
    wire = data[1:]
    end = wire.find(b"\r\n\r\n")
    head = wire[: end + 4] if end >= 0 else None
    ok: Optional[bool] = None
    if head is None:
        if len(wire) > handshake.MAX_HEAD_SIZE:
            ok = False
    else:
        try:
            resp = handshake.parse_response(head)
        except WSInvalidMessageError:
            ok = False
        else:
            _check_response_round_trip(resp)
            try:
                handshake.validate_response(resp, KEY, head)
                ok = True
            except WSHandshakeError:
                ok = False

    loop = FakeLoop()
    listener = Recorder()
    transport = FakeTransport()
    with running(loop):
        proto, future = make_protocol(Config(is_client=True), listener)
        assert future is not None
        proto.connection_made(transport)
        feed(proto, transport, chunked(wire, split_sizes(seed, len(wire))))
        if ok is None:
            check(not future.done(), "handshake decided on an incomplete head")
        elif ok:
            check(future.done() and future.exception() is None, "valid 101 refused: %r",
                  future.exception())
            check(listener.connected == 1, "not connected after a valid 101")
        else:
            exc = future.exception()
            check(isinstance(exc, WSHandshakeError), "handshake failed with %r", exc)
            check(transport.closing, "transport left open after a refused handshake")
            check(listener.connected == 0, "listener connected on a refused handshake")
        loop.fire_timers()
        proto.connection_lost(None)
        check(future.done(), "handshake future left pending after connection_lost")
        exc = future.exception()
        check(exc is None or isinstance(exc, WSHandshakeError), "handshake failed with %r", exc)


def _check_response_round_trip(resp: handshake.WSUpgradeResponse) -> None:
    lines = [b"HTTP/1.1 %03d X" % int(resp.status)]
    for name, value in resp.headers.items():
        lines.append(name.encode() + b": " + value.encode("utf-8", "surrogateescape"))
    again = handshake.parse_response(b"\r\n".join(lines) + b"\r\n\r\n")
    check(int(again.status) == int(resp.status), "status does not round-trip")
    check(list(again.headers.items()) == list(resp.headers.items()), "headers do not round-trip")


# ---------------------------------------------------------------------------------------------
# (d) URLs


def url(data: bytes) -> None:
    """parse_url / parse_proxy_url on arbitrary text (byte 0 bit 0: proxy URL; the rest is
    UTF-8 with undecodable bytes as lone surrogates).

    Invariants: only WSInvalidURL is raised; a parsed URL has ASCII host/path/query/netloc, a
    path starting with "/", a port in 1-65535, no whitespace or control characters; rebuilt
    from its parts it parses to the same URL; the client's upgrade request for it is accepted
    by the server's parser and validator, with the same request target and Host.
    """
    if not data:
        return
    proxy = bool(data[0] & 1)
    text = data[1:].decode("utf-8", "surrogateescape")
    try:
        if proxy:
            from femtows.proxy import parse_proxy_url

            parsed = parse_proxy_url(text)
        else:
            parsed = parse_url(text)
    except WSInvalidURL as e:
        check(e.url == text, "WSInvalidURL.url is not the input")
        str(e)  # redacts the password; must not fail
        return
    _check_parsed_url(parsed, proxy)


def _check_parsed_url(p: WSParsedURL, proxy: bool) -> None:
    for name in ("scheme", "netloc", "host", "path", "query"):
        value = getattr(p, name)
        check(value.isascii(), "%s is not ASCII: %r", name, value)
        check(all(" " < c < "\x7f" for c in value), "%s has a space or control: %r", name, value)
    check(p.path.startswith("/"), "path %r does not start with /", p.path)
    check(1 <= p.port <= 65535, "port %r", p.port)
    check(bool(p.host), "empty host")
    rebuilt = f"{p.scheme}://{p.netloc}{p.resource_name}"
    schemes = ("http", "https", "socks4", "socks4a", "socks5", "socks5h") if proxy else (
        "ws", "wss")
    again = parse_url(rebuilt, allowed_schemes=schemes)
    for name in ("scheme", "is_secure", "netloc", "host", "port", "path", "query", "username",
                 "password"):
        check(getattr(again, name) == getattr(p, name), "%s changes when %r is re-parsed",
              name, rebuilt)
    if proxy:
        return
    req, wire = handshake.build_request(p, KEY, None)
    parsed_req = handshake.parse_request(wire)
    check(handshake.validate_request(parsed_req) == KEY, "own request not valid")
    check(parsed_req.path == p.resource_name.encode(), "request target changed")
    check(parsed_req.headers["Host"] == p.host_header, "Host header changed")


# ---------------------------------------------------------------------------------------------
# (e) proxy replies: HTTP CONNECT


def connect(data: bytes) -> None:
    """An HTTP proxy's answer to CONNECT, fed to femtows's CONNECT client (byte 0 = how it is
    cut, byte 1 bit 0 = the proxy closes after sending it, rest = the answer).

    Invariants: no exception escapes data_received/eof_received/connection_lost; the outcome is
    decided once; success (done result None, reading paused) exactly when the answer is a
    complete head of at most 64 KiB whose status line is HTTP/1.0 or 1.1 with a 2xx status,
    with nothing after it; otherwise a WSProxyError (with the status for a non-2xx answer) and
    the transport aborted; the buffered head never exceeds the 64 KiB limit plus one read.
    """
    if len(data) < 2:
        return
    seed, opts = data[0], data[1]
    wire = data[2:]
    loop = FakeLoop()
    transport = FakeTransport()
    fed = 0
    with running(loop):
        tunnel = _ConnectTunnel(b"CONNECT example.com:80 HTTP/1.1\r\n\r\n", "http://proxy:3128",
                                "example.com:80")
        tunnel.connection_made(transport)  # type: ignore[arg-type]
        for piece in chunked(wire, split_sizes(seed, len(wire))):
            if tunnel.done.done():
                break  # reading is paused (success) or the transport aborted (failure)
            tunnel.data_received(piece)
            fed += len(piece)
            check(len(tunnel._buffer) <= MAX_PROXY_HEAD_SIZE + len(piece),
                  "CONNECT buffer over its limit")
        decided_by_data = tunnel.done.done()
        if opts & 1 and not decided_by_data:
            # After success reading is paused (no EOF reaches the tunnel); after a failure
            # the transport is aborted.
            tunnel.eof_received()
        tunnel.connection_lost(None)
    done: Any = tunnel.done
    check(done.done(), "CONNECT outcome left pending after connection_lost")

    # The model: the head must end exactly where the read that completed it ended (bytes after
    # it in that read would be the tunnel's, which the proxy may not send yet).
    end = wire.find(b"\r\n\r\n")
    status = None
    success = False
    if 0 <= end and end + 4 <= MAX_PROXY_HEAD_SIZE:
        line = wire[: wire.find(b"\r\n")]
        m = _PROXY_STATUS_RE.fullmatch(line)
        if m is not None:
            status = int(m.group(1))
            success = 200 <= status <= 299 and fed == end + 4
    exc = done.exception()
    if success:
        check(exc is None, "valid CONNECT answer refused: %r", exc)
        check(transport.paused and not transport.aborted, "tunnel not paused / aborted")
    else:
        check(isinstance(exc, WSProxyError), "CONNECT failed with %r", exc)
        if status is not None and not 200 <= status <= 299 and end + 4 <= fed:
            check(exc.status == status, "WSProxyError.status %r, want %r", exc.status, status)
        if decided_by_data:
            check(transport.aborted, "failed tunnel not aborted")


_PROXY_STATUS_RE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?")


# ---------------------------------------------------------------------------------------------
# (e) proxy replies: SOCKS


_socks_loop: Optional[asyncio.AbstractEventLoop] = None


def _loop() -> asyncio.AbstractEventLoop:
    global _socks_loop
    if _socks_loop is None:
        _socks_loop = asyncio.new_event_loop()
        atexit.register(_socks_loop.close)
    return _socks_loop


SOCKS_PROXIES = ("socks5://p:1080", "socks5://user:pw@p:1080", "socks4://p:1080",
                 "socks4a://u@p:1080")
SOCKS_TARGETS = ("ws://127.0.0.1:8080/", "ws://example.com:8080/", "ws://[::1]:8080/")


def socks(data: bytes) -> None:
    """A SOCKS proxy's replies, through femtows's SOCKS path (python-socks on the socket of a
    socket_factory), on a socketpair: no network. Byte 0 picks the proxy URL (SOCKS5 with and
    without credentials, SOCKS4, SOCKS4a) and the target (name, IPv4, IPv6); the rest is what
    the proxy sends, then it closes.

    Invariants: the outcome is the factory's own socket, still open, or a WSProxyError (never
    another exception) with that socket closed (no descriptor leak); the request written to the
    proxy starts with the right version byte; success needs a reply with the right version and
    a success code.
    """
    if not data:
        return
    from femtows.proxy import parse_proxy_url

    proxy = parse_proxy_url(SOCKS_PROXIES[data[0] & 3])
    # SOCKS4 carries IPv4 addresses only (and socks4:// resolves names itself): IPv4 for it,
    # IPv4 or a name for SOCKS4a.
    kinds = {"socks4": 1, "socks4a": 2}.get(proxy.scheme, 3)
    target = parse_url(SOCKS_TARGETS[(data[0] >> 2) % kinds])
    reply = data[1:]
    a, b = socket.socketpair()
    try:
        b.sendall(reply)
        b.shutdown(socket.SHUT_WR)
        loop = _loop()
        error: Optional[BaseException] = None
        result = None
        try:
            result = loop.run_until_complete(_connect_via_socks_proxy(
                loop, target, proxy, lambda u: a, {}, QUIET))
        except WSProxyError as e:
            error = e
        b.setblocking(False)
        try:
            sent = b.recv(65536)
        except BlockingIOError:
            sent = b""
        check(bool(sent), "nothing sent to the proxy")
        v5 = proxy.scheme.startswith("socks5")
        check(sent[0] == (5 if v5 else 4), "wrong SOCKS version byte %r", sent[:1])
        if error is None:
            check(result is a, "the result is not the factory's socket")
            check(a.fileno() >= 0, "the tunnel socket is closed")
            if v5:
                check(reply[:2] in (b"\x05\x00", b"\x05\x02"), "SOCKS5 success on a bad reply")
            else:
                check(len(reply) >= 8 and reply[1] == 0x5A, "SOCKS4 success on a bad reply")
        else:
            check(a.fileno() == -1, "socket left open after %r", error)
    finally:
        a.close()
        b.close()


TARGETS: Dict[str, Callable[[bytes], None]] = {
    "frames": frames,
    "request": request,
    "response": response,
    "url": url,
    "connect": connect,
    "socks": socks,
}
