"""femtows.websockets.asyncio.router against websockets.asyncio.router (17.4): the same URL
map served by both, probed by the same clients, gives the same answers."""

from __future__ import annotations

import asyncio
import http
import os
import subprocess
import sys
import tempfile
import urllib.parse
from typing import Any, Callable

import pytest
import websockets.asyncio.client as ref_client
import websockets.asyncio.router as ref_router
from utils import parse_http_head, raw_upgrade_request, read_frame
from werkzeug.routing import Map, Rule

from femtows.websockets.asyncio import router
from femtows.websockets.datastructures import Headers
from femtows.websockets.http11 import Request, Response


def _url_map() -> Map:
    async def hello(websocket: Any) -> None:
        await websocket.send(f"hello {websocket.request.path}")

    async def item(websocket: Any, item_id: int, kind: str) -> None:
        await websocket.send(f"{kind} {item_id!r}")

    return Map(
        [
            Rule("/hello", endpoint=hello),
            Rule("/item/<int:item_id>", endpoint=item, defaults={"kind": "item"}),
            Rule("/item/<int:item_id>/<kind>", endpoint=item),
            Rule("/old", redirect_to="/hello"),
            Rule("/slash/", endpoint=hello),
        ]
    )


PATHS = ["/hello", "/hello?x=1", "/item/3", "/item/3/box", "/item/x", "/old", "/slash", "/nope"]


async def _probe(uri: str) -> tuple[str, ...]:
    """What a raw client sees at ``uri``: the first message, or the refusal (no redirects
    followed, so 302 answers stay visible)."""
    parsed = urllib.parse.urlparse(uri)
    assert parsed.hostname is not None and parsed.port is not None
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    try:
        target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        writer.write(raw_upgrade_request(target, host=f"{parsed.hostname}:{parsed.port}"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status, headers = parse_http_head(head)
        code = status.split(" ")[1]
        if code == "101":
            frame = await read_frame(reader)
            return ("open", frame.payload.decode())
        fields = {name.lower(): value for name, value in headers}
        body = await reader.readexactly(int(fields["content-length"]))
        return ("status", code, fields.get("location", ""), body.decode())
    finally:
        writer.close()


async def _answers(route: Callable[..., Any], **kwargs: Any) -> list[tuple[str, ...]]:
    async with route(_url_map(), "127.0.0.1", 0, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        answers = []
        for path in PATHS:
            answer = await _probe(f"ws://127.0.0.1:{port}{path}")
            answers.append(tuple(part.replace(str(port), "PORT") for part in answer))
        return answers


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"server_name": "example.com"}, {"ssl": True}, {"server_name": "a.b:81", "ssl": True}],
)
async def test_same_answers_as_websockets(kwargs: dict[str, Any]) -> None:
    ours = await _answers(router.route, **kwargs)
    theirs = await _answers(ref_router.route, **kwargs)
    assert ours == theirs
    assert ("open", "hello /hello") in ours
    assert any(answer[:2] == ("status", "302") for answer in ours)
    assert ("status", "404", "", "Not Found") in ours


async def test_user_process_request_runs_first() -> None:
    seen: list[str] = []

    async def process_request(connection: Any, request: Request) -> Any:
        seen.append(request.path)
        if request.path == "/item/13":
            return connection.respond(http.HTTPStatus.FORBIDDEN, "unlucky\n")
        return None

    async with router.route(_url_map(), "127.0.0.1", 0, process_request=process_request) as srv:
        port = srv.sockets[0].getsockname()[1]
        assert await _probe(f"ws://127.0.0.1:{port}/item/13") == ("status", "403", "", "unlucky\n")
        assert await _probe(f"ws://127.0.0.1:{port}/item/12") == ("open", "item 12")
        assert await _probe(f"ws://127.0.0.1:{port}/nope") == ("status", "404", "", "Not Found")
    assert seen == ["/item/13", "/item/12", "/nope"]


async def test_sync_process_request_and_create_router() -> None:
    class Shouting(router.Router):
        def not_found(self, connection: Any) -> Response:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "NOTHING HERE\n")

    def process_request(connection: Any, request: Request) -> None:
        return None

    async with router.route(
        _url_map(), "127.0.0.1", 0, process_request=process_request, create_router=Shouting
    ) as server:
        port = server.sockets[0].getsockname()[1]
        assert await _probe(f"ws://127.0.0.1:{port}/x") == ("status", "404", "", "NOTHING HERE\n")
        assert await _probe(f"ws://127.0.0.1:{port}/hello") == ("open", "hello /hello")


async def test_unix_route() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "router.sock")
        async with router.unix_route(_url_map(), path):
            async with ref_client.unix_connect(path, "ws://localhost/item/5") as ws:
                assert await ws.recv() == "item 5"


def test_router_marks_rules_websocket() -> None:
    url_map = _url_map()
    router.Router(url_map)
    assert all(rule.websocket for rule in url_map.iter_rules())


class _Connection:
    """Stands in for a ServerConnection: route_request only needs respond()."""

    def respond(self, status: http.HTTPStatus, text: str) -> Response:
        body = text.encode()
        headers = Headers([("Content-Type", "text/plain; charset=utf-8")])
        return Response(status.value, status.phrase, headers, body)


def test_route_request_results() -> None:
    routing = router.Router(_url_map(), url_scheme="wss")
    connection = _Connection()
    request = Request("/item/9/box?q=1", Headers(Host="example.com:8443"))
    assert routing.route_request(connection, request) is None  # type: ignore[arg-type]
    assert connection.handler_kwargs == {"item_id": 9, "kind": "box"}  # type: ignore[attr-defined]
    redirect = routing.route_request(connection, Request("/old", Headers(Host="h")))  # type: ignore[arg-type]
    assert redirect is not None and redirect.status_code == 302
    assert redirect.headers["Location"] == "wss://h/hello"
    assert redirect.body == b"Found at wss://h/hello"
    missing = routing.route_request(connection, Request("/zzz", Headers(Host="h")))  # type: ignore[arg-type]
    assert missing is not None and (missing.status_code, missing.body) == (404, b"Not Found")


def test_without_werkzeug_route_raises_import_error() -> None:
    code = (
        "import sys; sys.modules['werkzeug'] = None\n"
        "from femtows.websockets.asyncio import router\n"
        "calls = (lambda: router.route(None, 'localhost', 0), lambda: router.unix_route(None))\n"
        "for call in calls:\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "route() requires werkzeug: pip install werkzeug (or femtows[router])",
        "unix_route() requires werkzeug: pip install werkzeug (or femtows[router])",
    ]


def test_top_level_names() -> None:
    import femtows.websockets as fws

    assert fws.route is router.route
    assert fws.unix_route is router.unix_route
    assert fws.Router is router.Router
