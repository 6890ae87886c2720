"""ws_connect follows HTTP redirects (picows-reference §2.1): resolution, limits, security.

3xx answers come from a raw asyncio server (exact bytes, including broken ones); successful
upgrades from a femtows server whose listener factory records the request it got, so the tests
can assert what the final server received.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

import pytest

import femtows
from femtows import (
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidStatusError,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from tests.utils import EchoListener, RecordingListener, echo_round_trip, pipe

Responder = Callable[[str], Optional[bytes]]


def redirect(status: int, location: Optional[str], reason: str = "Redirect") -> bytes:
    """A redirect response head; ``location=None`` leaves the Location header out."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    if location is not None:
        lines.append(f"Location: {location}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawServer:
    """Answers each request with ``respond(path)`` (None: stay silent until the client goes)
    and records every request head."""

    def __init__(self, respond: Responder, ssl: Any = None, delay: float = 0.0) -> None:
        self.respond = respond
        self.ssl = ssl
        self.delay = delay
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            path = head.split(b" ", 2)[1].decode()
            answer = self.respond(path)
            if self.delay:
                await asyncio.sleep(self.delay)  # a slow server, not synchronisation
            if answer is None:
                while await reader.read(65536):
                    pass
                return
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class FinalServer:
    """A femtows echo server; ``/final...`` upgrades (recording the request), and
    ``routes[path]`` may answer a path with a redirect instead."""

    def __init__(self, tls: Any = None, routes: Optional[dict[str, tuple[int, str]]] = None):
        self.tls = tls
        self.routes = routes or {}
        self.requests: list[WSUpgradeRequest] = []

    def factory(self, request: WSUpgradeRequest) -> Any:
        self.requests.append(request)
        path = request.path.decode()
        if path in self.routes:
            status, location = self.routes[path]
            response = WSUpgradeResponse.create_redirect_response(status, location)
            return WSUpgradeResponseWithListener(response, None)
        return EchoListener()

    async def __aenter__(self) -> FinalServer:
        kwargs = self.tls.server_kwargs() if self.tls is not None else {}
        self.server = await femtows.ws_create_server(self.factory, "127.0.0.1", 0, **kwargs)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    def url(self, path: str = "/final", scheme: Optional[str] = None) -> str:
        if scheme is None:
            scheme = self.tls.scheme if self.tls is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}{path}"


def header(request: bytes, name: str) -> Optional[str]:
    for line in request.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.lower() == name.lower():
            return value.strip()
    return None


# ------------------------------------------------------------------------------------------------


async def test_chain_of_three_redirects(tls: Any, caplog: pytest.LogCaptureFixture) -> None:
    """relative → other server (absolute) → absolute → the femtows server: success, one INFO
    line per redirect."""
    async with FinalServer(tls) as final:
        hop3_target = final.url("/final?x=1")

        def second(path: str) -> bytes:
            return redirect(307, hop3_target)

        async with RawServer(second, ssl=tls.server) as b:

            def first(path: str) -> bytes:
                if path == "/start":
                    return redirect(302, "/next")  # relative: same server
                return redirect(301, b.url("/b", tls.scheme))

            async with RawServer(first, ssl=tls.server) as a:
                caplog.set_level(logging.INFO, logger="femtows.client")
                await echo_round_trip(a.url("/start", tls.scheme), **tls.client_kwargs())
    assert [r.split(b" ")[1] for r in a.requests] == [b"/start", b"/next"]
    assert [r.split(b" ")[1] for r in b.requests] == [b"/b"]
    assert final.requests[0].path == b"/final?x=1"
    assert final.requests[0].headers["Host"] == f"127.0.0.1:{final.port}"
    messages = [r.getMessage() for r in caplog.records if "redirect" in r.getMessage()]
    assert len(messages) == 3
    assert messages[0].startswith("redirect 1/5: HTTP 302")
    assert messages[2].startswith("redirect 3/5: HTTP 307")


@pytest.mark.parametrize(
    ("start", "location", "expected"),
    [
        ("/dir/start", "/final", "/final"),
        ("/dir/start", "final?q=1", "/dir/final?q=1"),
        ("/dir/sub/start", "../final", "/dir/final"),
        ("/start?old=1", "?new=2", "/start?new=2"),
        ("/start", "/final#fragment", "/final"),
    ],
)
async def test_relative_location(start: str, location: str, expected: str) -> None:
    """Location is resolved against the current URL (RFC 3986 §5); a fragment is dropped."""
    async with FinalServer(routes={start: (302, location)}) as final:
        await echo_round_trip(final.url(start))
    assert [r.path.decode() for r in final.requests] == [start, expected]


async def test_network_path_location() -> None:
    """'//host:port/path' keeps the scheme and switches servers."""
    async with FinalServer() as final:
        async with RawServer(lambda p: redirect(302, f"//127.0.0.1:{final.port}/final")) as a:
            await echo_round_trip(a.url("/"))
    assert final.requests[0].path == b"/final"


@pytest.mark.parametrize("form", ["ws", "http"])
async def test_absolute_location(tls: Any, form: str) -> None:
    """An absolute ws/wss Location, or its http/https spelling (mapped to ws/wss)."""
    async with FinalServer(tls) as final:
        scheme = {"ws": tls.scheme, "http": "https" if tls.enabled else "http"}[form]
        location = final.url("/final", scheme)
        async with RawServer(lambda p: redirect(302, location), ssl=tls.server) as a:
            await echo_round_trip(a.url("/", tls.scheme), **tls.client_kwargs())
    assert final.requests[0].path == b"/final"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_each_redirect_status_is_followed(status: int) -> None:
    async with FinalServer(routes={"/start": (status, "/final")}) as final:
        await echo_round_trip(final.url("/start"))
    assert [r.path for r in final.requests] == [b"/start", b"/final"]


@pytest.mark.parametrize("status", [300, 304, 305])
async def test_other_3xx_are_status_errors(status: int) -> None:
    """Only 301/302/303/307/308 are redirects to follow; other 3xx fail like any status."""
    async with RawServer(lambda p: redirect(status, "/final")) as a:
        with pytest.raises(WSInvalidStatusError) as exc_info:
            await femtows.ws_connect(RecordingListener, a.url("/"))
    assert exc_info.value.response is not None
    assert int(exc_info.value.response.status) == status
    assert len(a.requests) == 1


@pytest.mark.parametrize("max_redirects", [1, 2, 5])
async def test_redirect_loop_hits_max_redirects(max_redirects: int) -> None:
    """A loop is cut after max_redirects followed redirects, with the chain in the message."""
    async with RawServer(lambda p: redirect(302, "/again")) as a:
        with pytest.raises(WSHandshakeError, match="too many redirects") as exc_info:
            await femtows.ws_connect(RecordingListener, a.url("/"), max_redirects=max_redirects)
    error = exc_info.value
    assert not isinstance(error, WSInvalidStatusError)
    assert isinstance(error.__cause__, WSInvalidStatusError)
    assert error.response is not None and int(error.response.status) == 302
    assert len(a.requests) == max_redirects + 1
    assert str(error).count(" -> ") == max_redirects + 1  # every URL, then the refused Location


async def test_max_redirects_zero_disables_redirects() -> None:
    async with RawServer(lambda p: redirect(302, "/elsewhere")) as a:
        with pytest.raises(WSInvalidStatusError) as exc_info:
            await femtows.ws_connect(RecordingListener, a.url("/"), max_redirects=0)
    response = exc_info.value.response
    assert response is not None and int(response.status) == 302
    assert response.headers["Location"] == "/elsewhere"
    assert len(a.requests) == 1


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
async def test_max_redirects_must_be_a_non_negative_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_redirects"):
        await femtows.ws_connect(RecordingListener, "ws://127.0.0.1:9/", max_redirects=bad)


@pytest.mark.parametrize("location_scheme", ["ws", "http"])
async def test_wss_to_ws_downgrade_is_refused(tls_server: Any, location_scheme: str) -> None:
    async with FinalServer() as plain:
        location = plain.url("/final", location_scheme)
        async with RawServer(lambda p: redirect(302, location), ssl=tls_server.server) as a:
            with pytest.raises(WSHandshakeError, match="from wss:// to ws://") as exc_info:
                await femtows.ws_connect(
                    RecordingListener, a.url("/", "wss"), **tls_server.client_kwargs()
                )
    assert type(exc_info.value) is WSHandshakeError
    assert plain.requests == []


async def test_ws_to_wss_upgrade_is_followed(tls_server: Any) -> None:
    async with FinalServer(tls_server) as secure:
        async with RawServer(lambda p: redirect(302, secure.url("/final"))) as a:
            transport = await echo_round_trip(a.url("/"), **tls_server.client_kwargs())
    assert transport.is_secure
    assert secure.requests[0].path == b"/final"


async def test_missing_location() -> None:
    async with RawServer(lambda p: redirect(302, None)) as a:
        with pytest.raises(
            WSInvalidHeaderError, match="received redirect HTTP response without Location header"
        ) as exc_info:
            await femtows.ws_connect(RecordingListener, a.url("/"))
    assert exc_info.value.name == "Location" and exc_info.value.value is None
    assert exc_info.value.response is not None


@pytest.mark.parametrize(
    ("location", "match"),
    [
        ("ftp://127.0.0.1/file", "not ws, wss, http or https"),
        ("mailto:someone@example.com", "not ws, wss, http or https"),
        ("ws://bad host/", "invalid URL"),
        ("ws://127.0.0.1:99999/", "invalid URL"),
    ],
)
async def test_unusable_location(location: str, match: str) -> None:
    async with RawServer(lambda p: redirect(302, location)) as a:
        with pytest.raises(WSInvalidHeaderError, match=match) as exc_info:
            await femtows.ws_connect(RecordingListener, a.url("/"))
    assert exc_info.value.value == location


async def test_several_locations_are_refused() -> None:
    answer = b"HTTP/1.1 302 Found\r\nLocation: /a\r\nLocation: /b\r\n\r\n"
    async with RawServer(lambda p: answer) as a:
        with pytest.raises(WSInvalidHeaderError, match="several Locations"):
            await femtows.ws_connect(RecordingListener, a.url("/"))


CREDENTIALS = [
    ("Authorization", "Bearer secret-token"),
    ("Cookie", "session=secret"),
    ("X-Trace", "kept"),
]


async def test_credentials_dropped_on_cross_origin_redirect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another port is another origin: Authorization and Cookie are not sent there, other
    headers are; userinfo in the Location does not reach logs."""
    async with FinalServer() as final:
        location = f"ws://user:hunter2@127.0.0.1:{final.port}/final"
        async with RawServer(lambda p: redirect(302, location)) as a:
            caplog.set_level(logging.INFO, logger="femtows.client")
            await echo_round_trip(a.url("/"), extra_headers=CREDENTIALS)
    assert header(a.requests[0], "Authorization") == "Bearer secret-token"  # first hop had them
    assert header(a.requests[0], "Cookie") == "session=secret"
    received = final.requests[0].headers
    assert "Authorization" not in received and "Cookie" not in received
    assert received["X-Trace"] == "kept"
    assert "hunter2" not in caplog.text


async def test_credentials_kept_on_same_origin_redirect() -> None:
    async with FinalServer(routes={"/start": (302, "/final")}) as final:
        await echo_round_trip(final.url("/start"), extra_headers=dict(CREDENTIALS))
    received = final.requests[1].headers
    assert received["Authorization"] == "Bearer secret-token"
    assert received["Cookie"] == "session=secret"
    assert received["X-Trace"] == "kept"


async def test_host_override_dropped_cross_origin() -> None:
    """A Host override names the original server: kept same-origin, dropped cross-origin."""
    async with FinalServer(routes={"/start": (302, "/hop")}) as final:
        async with RawServer(lambda p: redirect(302, final.url("/start"))) as a:
            await echo_round_trip(a.url("/"), extra_headers=[("Host", "virtual.example")])
    assert header(a.requests[0], "Host") == "virtual.example"
    assert [r.headers["Host"] for r in final.requests] == [f"127.0.0.1:{final.port}"] * 2


async def test_header_generator_survives_redirects() -> None:
    headers = (pair for pair in [("X-Once", "1")])
    async with FinalServer(routes={"/start": (302, "/final")}) as final:
        await echo_round_trip(final.url("/start"), extra_headers=headers)
    assert [r.headers.get("X-Once") for r in final.requests] == ["1", "1"]


async def test_timeout_bounds_the_whole_chain() -> None:
    """Each hop answers in 0.1 s; five hops cannot fit a 0.3 s budget even though each one
    alone would."""
    async with FinalServer() as final:
        hops = iter(range(10))

        def slow(path: str) -> bytes:
            n = next(hops)
            return redirect(302, f"/hop{n}" if n < 4 else final.url("/final"))

        async with RawServer(slow, delay=0.1) as a:
            with pytest.raises(asyncio.TimeoutError, match="websocket handshake timeout"):
                await femtows.ws_connect(
                    RecordingListener, a.url("/"), websocket_handshake_timeout=0.3
                )
            assert 2 <= len(a.requests) <= 4
    assert final.requests == []


async def test_redirect_to_silent_server_times_out() -> None:
    async with RawServer(lambda p: None) as silent:
        async with RawServer(lambda p: redirect(302, silent.url("/"))) as a:
            with pytest.raises(asyncio.TimeoutError, match="websocket handshake timeout"):
                await femtows.ws_connect(
                    RecordingListener, a.url("/"), websocket_handshake_timeout=0.2
                )
    assert len(silent.requests) == 1


async def test_each_redirect_goes_through_the_proxy() -> None:
    """With a proxy, every attempt of the chain opens its own tunnel."""
    connects: list[bytes] = []

    async def proxy_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        connects.append(head.split(b"\r\n")[0])
        port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        await pipe(reader, writer, port)

    proxy = await asyncio.start_server(proxy_handler, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]
    async with proxy, FinalServer() as final:
        async with RawServer(lambda p: redirect(308, final.url("/final"))) as a:
            await echo_round_trip(a.url("/"), proxy=f"http://127.0.0.1:{proxy_port}")
    assert connects == [
        f"CONNECT 127.0.0.1:{a.port} HTTP/1.1".encode(),
        f"CONNECT 127.0.0.1:{final.port} HTTP/1.1".encode(),
    ]


@pytest.fixture
def tls_server() -> Any:
    """The TLS half of conftest's ``tls`` fixture, for tests that need TLS only."""
    from tests.conftest import TLSConfig

    return TLSConfig(True)
