"""ws_connect(proxy=...): real proxies (tinyproxy, stunnel, dante) and fake ones written here.

The real servers come from scripts/proxies/run.py (installed with apt-get when missing), started
once per session. If they cannot be started, the tests that need them FAIL with the script's
message: a missing proxy is a broken test environment, not a reason to skip.

Fake proxies are small asyncio servers that record what the client sent and answer with a
script (a refusal, a huge head, an early EOF, ...) or open a real tunnel to the target.
"""

from __future__ import annotations

import asyncio
import base64
import pickle
import socket
import ssl
import sys
import types
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import pytest

import femtows
import femtows.proxy
from femtows import WSCloseCode, WSInvalidURL, WSMsgType, WSProxyError
from tests.conftest import ProxyServers
from tests.utils import RecordingListener, echo_round_trip, pipe, start_echo_server

REPO = Path(__file__).resolve().parents[1]
CERTS = REPO / "tests" / "certs"


# ------------------------------------------------------------------------------------------------
# Real proxy servers


def real_proxy_url(info: dict[str, Any], kind: str) -> str:
    if kind == "http":
        return f"http://127.0.0.1:{info['http']}"
    if kind == "http_auth":
        return f"http://{info['user']}:{info['password']}@127.0.0.1:{info['http_auth']}"
    if kind == "https":
        return f"https://127.0.0.1:{info['https']}"
    return f"{kind}://127.0.0.1:{info['socks']}"


def proxy_port(info: dict[str, Any], kind: str) -> int:
    key = {"http": "http", "http_auth": "http_auth", "https": "https"}.get(kind, "socks")
    return int(info[key])


def trusting_context() -> ssl.SSLContext:
    """A client context that trusts the test certificate (stunnel's and the test servers')."""
    return ssl.create_default_context(cafile=str(CERTS / "cert.pem"))


@pytest.mark.parametrize("kind", ["http", "http_auth", "https", "socks5", "socks4"])
async def test_real_proxy_echo(proxy_servers: ProxyServers, tls: Any, kind: str) -> None:
    """ws and wss through each real proxy kind: a full echo round trip over the tunnel."""
    info = proxy_servers.get()
    server, url = await start_echo_server(tls)
    kwargs = tls.client_kwargs()
    if kind == "https":
        kwargs["proxy_ssl_context"] = trusting_context()
    async with server:
        if (kind == "https" and tls.enabled and sys.version_info < (3, 11)
                and isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)):
            # TLS inside TLS: asyncio's start_tls over a TLS transport arrived in 3.11.
            with pytest.raises(NotImplementedError, match="TLS inside TLS"):
                await femtows.ws_connect(
                    RecordingListener, url, proxy=real_proxy_url(info, kind), **kwargs)
            return
        peers: list[Any] = []
        transport, client = await femtows.ws_connect(
            RecordingListener, url, proxy=real_proxy_url(info, kind), **kwargs
        )
        assert isinstance(client, RecordingListener)
        peers.append(transport.underlying_transport.get_extra_info("peername"))
        assert transport.is_secure == (tls.enabled or kind == "https")
        transport.send(WSMsgType.TEXT, f"via {kind}")
        assert await client.wait_message(0) == (WSMsgType.TEXT, f"via {kind}".encode())
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()
        # The bytes really went through the proxy: our TCP peer is the proxy's port.
        assert peers[0][1] == proxy_port(info, kind)


async def test_real_socks4_resolves_the_host_at_the_client(proxy_servers: ProxyServers) -> None:
    """SOCKS4 carries only IPv4 addresses: femtows resolves 'localhost' itself."""
    info = proxy_servers.get()
    server, url = await start_echo_server()
    async with server:
        url = url.replace("127.0.0.1", "localhost")
        await echo_round_trip(url, proxy=real_proxy_url(info, "socks4"))


async def test_real_proxy_wrong_password(proxy_servers: ProxyServers) -> None:
    """tinyproxy refuses bad Basic credentials: WSProxyError with its status, no password."""
    info = proxy_servers.get()
    server, url = await start_echo_server()
    async with server:
        proxy = f"http://{info['user']}:wrong-secret@127.0.0.1:{info['http_auth']}"
        with pytest.raises(WSProxyError) as exc_info:
            await femtows.ws_connect(RecordingListener, url, proxy=proxy)
        # RFC 9110 says 407; Debian 12's tinyproxy 1.11.1 answers a CONNECT with 401. Either
        # way the status the proxy sent is the one reported (a fake 407 is tested below).
        assert exc_info.value.status in (401, 407)
        assert exc_info.value.proxy == f"http://{info['user']}:***@127.0.0.1:{info['http_auth']}"
        assert "wrong-secret" not in str(exc_info.value)
        # and without any credentials
        with pytest.raises(WSProxyError) as exc_info:
            await femtows.ws_connect(
                RecordingListener, url, proxy=f"http://127.0.0.1:{info['http_auth']}"
            )
        assert exc_info.value.status in (401, 407)


async def test_real_https_proxy_untrusted_certificate(proxy_servers: ProxyServers) -> None:
    """The https proxy's certificate is verified (default context): WSProxyError, SSL cause."""
    info = proxy_servers.get()
    server, url = await start_echo_server()
    async with server:
        with pytest.raises(WSProxyError) as exc_info:
            await femtows.ws_connect(RecordingListener, url, proxy=real_proxy_url(info, "https"))
        assert isinstance(exc_info.value.__cause__, ssl.SSLError)


# ------------------------------------------------------------------------------------------------
# Fake proxies


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeProxy:
    """An asyncio server on 127.0.0.1 that runs ``handler`` for each connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.heads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: Optional[asyncio.Server] = None
        self.port = 0

    async def __aenter__(self) -> FakeProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.writers:
            writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        return head


async def wait_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


def answering(proxy_ref: list[FakeProxy], reply: bytes, then_close: bool = True) -> Handler:
    """Read the CONNECT head, send ``reply``, then close (or wait for the client to go)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await proxy_ref[0].read_head(reader)
        writer.write(reply)
        await writer.drain()
        if not then_close:
            await wait_eof(reader)

    return handler


async def fake_http_proxy(reply: bytes, then_close: bool = True) -> FakeProxy:
    ref: list[FakeProxy] = []
    proxy = FakeProxy(answering(ref, reply, then_close))
    ref.append(proxy)
    return proxy


@pytest.mark.parametrize(
    ("reply", "status", "match"),
    [
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad", 502, "HTTP 502 Bad Gateway"),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", 403, "HTTP 403"),
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n"
         b"Proxy-Authenticate: Basic realm=x\r\n\r\n", 407, "HTTP 407"),
        (b"HTTP/1.1 301 Moved\r\nLocation: http://elsewhere/\r\n\r\n", 301, "HTTP 301"),
    ],
)
async def test_fake_proxy_non_2xx(reply: bytes, status: int, match: str) -> None:
    """Any status outside 2xx refuses the tunnel: WSProxyError carrying the status."""
    async with await fake_http_proxy(reply) as proxy:
        with pytest.raises(WSProxyError, match=match) as exc_info:
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/", proxy=f"http://127.0.0.1:{proxy.port}"
            )
        assert exc_info.value.status == status
        assert isinstance(exc_info.value, ConnectionError)


async def test_fake_proxy_connect_request_and_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CONNECT names host:port (the host unresolved), Host matches, Basic credentials are the
    percent-decoded userinfo; the password stays out of the error and of the logs."""
    caplog.set_level(femtows.FEMTOWS_DEBUG_LL, logger="femtows")
    async with await fake_http_proxy(b"HTTP/1.1 403 Forbidden\r\n\r\n") as proxy:
        with pytest.raises(WSProxyError) as exc_info:
            await femtows.ws_connect(
                RecordingListener, "wss://Example.TEST:8443/chat?x=1",
                proxy=f"http://us%40er:p%3As%20s@127.0.0.1:{proxy.port}",
            )
    head = proxy.heads[0].decode()
    lines = head.split("\r\n")
    assert lines[0] == "CONNECT example.test:8443 HTTP/1.1"
    assert "Host: example.test:8443" in lines
    expected = base64.b64encode(b"us@er:p:s s").decode()
    assert f"Proxy-Authorization: Basic {expected}" in lines
    error = exc_info.value
    assert error.proxy == f"http://us%40er:***@127.0.0.1:{proxy.port}"
    assert "p%3As" not in str(error) and "p:s s" not in str(error)
    assert "through proxy http://us%40er:***@127.0.0.1" in caplog.text
    assert "p%3As" not in caplog.text and "p:s s" not in caplog.text


async def test_fake_proxy_ipv6_target_is_bracketed() -> None:
    async with await fake_http_proxy(b"HTTP/1.1 403 Forbidden\r\n\r\n") as proxy:
        with pytest.raises(WSProxyError):
            await femtows.ws_connect(
                RecordingListener, "ws://[::1]:9000/", proxy=f"http://127.0.0.1:{proxy.port}"
            )
    assert proxy.heads[0].startswith(b"CONNECT [::1]:9000 HTTP/1.1\r\nHost: [::1]:9000\r\n")
    assert b"Proxy-Authorization" not in proxy.heads[0]


async def test_fake_proxy_oversized_head() -> None:
    """A response head over 64 KiB is refused without waiting for its end."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(1000):
            writer.write(b"X-Padding: " + b"a" * 100 + b"\r\n")  # ~110 KB, never terminated
        await writer.drain()
        await wait_eof(reader)

    async with FakeProxy(handler) as proxy:
        with pytest.raises(WSProxyError, match="exceeds 65536 bytes") as exc_info:
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/", proxy=f"http://127.0.0.1:{proxy.port}"
            )
        assert exc_info.value.status is None


async def test_fake_proxy_eof_mid_head() -> None:
    async with await fake_http_proxy(b"HTTP/1.1 200 Connection established\r\nVia: x\r\n") as p:
        with pytest.raises(WSProxyError, match="closed the connection"):
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/", proxy=f"http://127.0.0.1:{p.port}"
            )


async def test_fake_proxy_eof_before_answer() -> None:
    async with await fake_http_proxy(b"") as proxy:
        with pytest.raises(WSProxyError, match="closed the connection"):
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/", proxy=f"http://127.0.0.1:{proxy.port}"
            )


async def test_fake_proxy_bytes_after_head() -> None:
    """Data right after a 2xx head cannot be the server's (it has not been spoken to)."""
    reply = b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"
    async with await fake_http_proxy(reply, then_close=False) as proxy:
        with pytest.raises(WSProxyError, match="unexpected data after"):
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/", proxy=f"http://127.0.0.1:{proxy.port}"
            )


async def test_fake_proxy_invalid_status_line() -> None:
    async with await fake_http_proxy(b"SSH-2.0-OpenSSH\r\n\r\n", then_close=False) as proxy:
        with pytest.raises(WSProxyError, match="invalid response status line"):
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/", proxy=f"http://127.0.0.1:{proxy.port}"
            )


async def test_fake_proxy_never_answers_times_out() -> None:
    """A silent proxy is bounded by websocket_handshake_timeout like the rest of the connect."""
    async with await fake_http_proxy(b"", then_close=False) as proxy:
        with pytest.raises(asyncio.TimeoutError, match="websocket handshake timeout"):
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/", proxy=f"http://127.0.0.1:{proxy.port}",
                websocket_handshake_timeout=0.2,
            )


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.0 200 Connection established\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nProxy-Agent: fake\r\n\r\n",
    ],
)
async def test_fake_proxy_any_2xx_opens_the_tunnel(tls: Any, reply: bytes) -> None:
    """HTTP/1.0 or 1.1, any 2xx, the head split across writes: then the tunnel carries ws/wss."""
    server, url = await start_echo_server(tls)
    target_port = int(url.rsplit(":", 1)[1].strip("/"))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for i in range(len(reply)):  # one byte per write: exercises the incremental search
            writer.write(reply[i : i + 1])
            await writer.drain()
        await pipe(reader, writer, target_port)

    async with server, FakeProxy(handler) as proxy:
        await echo_round_trip(url, proxy=f"http://127.0.0.1:{proxy.port}", **tls.client_kwargs())


async def test_proxy_unreachable_is_proxy_error() -> None:
    """Connection refused by the proxy's address: WSProxyError, OSError as the cause."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        for scheme in ("http", "socks5"):
            with pytest.raises(WSProxyError, match="cannot connect to proxy") as exc_info:
                await femtows.ws_connect(
                    RecordingListener, "ws://example.test/", proxy=f"{scheme}://127.0.0.1:{port}"
                )
            assert isinstance(exc_info.value.__cause__, OSError)


async def test_proxy_ssl_context_needs_https_proxy() -> None:
    context = trusting_context()
    for proxy in ("http://127.0.0.1:9", "socks5://127.0.0.1:9", None):
        with pytest.raises(ValueError, match="https:// proxy"):
            await femtows.ws_connect(
                RecordingListener, "ws://127.0.0.1:9/", proxy=proxy, proxy_ssl_context=context
            )


@pytest.mark.parametrize(
    "proxy",
    ["ftp://127.0.0.1:21", "127.0.0.1:3128", "http://", "http://proxy:99999",
     "http://proxy:3128/path", "http://proxy:3128/?q=1", "socks6://proxy"],
)
async def test_invalid_proxy_url(proxy: str) -> None:
    with pytest.raises(WSInvalidURL):
        await femtows.ws_connect(RecordingListener, "ws://127.0.0.1:9/", proxy=proxy)


async def test_tls_in_tls_refused_on_old_asyncio(
    monkeypatch: pytest.MonkeyPatch, loop_kind: str
) -> None:
    """Before Python 3.11 the asyncio loop cannot start_tls over TLS: a clear error, no hang.

    (Simulated by pretending to be 3.10; uvloop supports TLS in TLS on every version.)
    """
    if loop_kind != "asyncio":
        pytest.skip("the restriction is the asyncio loop's")
    monkeypatch.setattr(femtows.proxy, "sys", types.SimpleNamespace(version_info=(3, 10, 14)))
    with pytest.raises(NotImplementedError, match="Python 3.11"):
        await femtows.ws_connect(
            RecordingListener, "wss://127.0.0.1:9/", proxy="https://127.0.0.1:9"
        )


# -- SOCKS fakes: username/password auth (dante would need system accounts), DNS at the proxy,
#    error replies


def socks5_handler(
    records: list[tuple[int, str, int]],
    target_port: int,
    credentials: Optional[tuple[str, str]] = None,
    reply_code: int = 0,
) -> Handler:
    """A SOCKS5 server (RFC 1928/1929) that records the requested address and pipes to
    127.0.0.1:target_port whatever was asked."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        method = 0x02 if credentials is not None else 0x00
        if method not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, method]))
        if credentials is not None:
            _auth_version, ulen = await reader.readexactly(2)
            user = (await reader.readexactly(ulen)).decode()
            plen = (await reader.readexactly(1))[0]
            password = (await reader.readexactly(plen)).decode()
            ok = (user, password) == credentials
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return
        _v, _cmd, _rsv, atyp = await reader.readexactly(4)
        if atyp == 0x03:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        elif atyp == 0x01:
            host = socket.inet_ntoa(await reader.readexactly(4))
        else:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        port = int.from_bytes(await reader.readexactly(2), "big")
        records.append((atyp, host, port))
        writer.write(bytes([5, reply_code, 0, 1]) + bytes(6))
        await writer.drain()
        if reply_code == 0:
            await pipe(reader, writer, target_port)

    return handler


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_fake_socks5_with_password_resolves_at_proxy(
    tls: Any, scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    """user:password (percent-decoded) authenticates; the host name goes to the proxy as a
    domain name (DNS at the proxy), for wss too. The password is never logged."""
    caplog.set_level(femtows.FEMTOWS_DEBUG_LL, logger="femtows")
    server, url = await start_echo_server(tls)
    target_port = int(url.rsplit(":", 1)[1].strip("/"))
    records: list[tuple[int, str, int]] = []
    handler = socks5_handler(records, target_port, credentials=("al ice", "s3:cret"))
    async with server, FakeProxy(handler) as proxy:
        await echo_round_trip(
            url.replace("127.0.0.1", "localhost"),
            proxy=f"{scheme}://al%20ice:s3%3Acret@127.0.0.1:{proxy.port}",
            **tls.client_kwargs(),
        )
    assert records == [(0x03, "localhost", target_port)]
    assert "SOCKS tunnel" in caplog.text
    assert "s3%3Acret" not in caplog.text and "s3:cret" not in caplog.text


async def test_fake_socks5_wrong_password() -> None:
    records: list[tuple[int, str, int]] = []
    handler = socks5_handler(records, 9, credentials=("alice", "secret"))
    async with FakeProxy(handler) as proxy:
        with pytest.raises(WSProxyError) as exc_info:
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/",
                proxy=f"socks5://alice:guess@127.0.0.1:{proxy.port}",
            )
    assert exc_info.value.status is None
    assert exc_info.value.proxy == f"socks5://alice:***@127.0.0.1:{proxy.port}"
    assert "guess" not in str(exc_info.value)
    assert records == []


async def test_fake_socks5_error_reply() -> None:
    """A SOCKS5 failure reply (5 = connection refused) is a WSProxyError chained to
    python-socks's ProxyError."""
    from python_socks import ProxyError

    records: list[tuple[int, str, int]] = []
    async with FakeProxy(socks5_handler(records, 9, reply_code=5)) as proxy:
        with pytest.raises(WSProxyError, match="refused the connection to example.test:80") as ei:
            await femtows.ws_connect(
                RecordingListener, "ws://example.test/", proxy=f"socks5://127.0.0.1:{proxy.port}"
            )
    assert isinstance(ei.value.__cause__, ProxyError)
    assert records == [(0x03, "example.test", 80)]


# ------------------------------------------------------------------------------------------------
# WSProxyError itself


def test_proxy_error_type() -> None:
    error = WSProxyError("refused", "http://u:***@proxy:3128", 407)
    assert isinstance(error, femtows.WSError)
    assert isinstance(error, ConnectionError) and isinstance(error, OSError)
    assert str(error) == "refused"
    assert (error.proxy, error.status) == ("http://u:***@proxy:3128", 407)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is WSProxyError
    assert (str(copy), copy.proxy, copy.status) == ("refused", "http://u:***@proxy:3128", 407)
    assert WSProxyError("x").proxy is None and WSProxyError("x").status is None
    assert "WSProxyError" in femtows.__all__
