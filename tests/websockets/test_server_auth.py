"""basic_auth: websockets 17.4's HTTP Basic authentication, compared with websockets' own."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any, Callable, Optional

import pytest
import websockets
import websockets.asyncio.server as ws_server
from websockets.exceptions import InvalidStatus

from femtows.websockets.asyncio import client as f_client
from femtows.websockets.asyncio.server import ServerConnection, basic_auth, serve
from tests.websockets.reference import needs_reference
from tests.websockets.server_helpers import RawResponse, port_of, raw_exchange, upgrade


async def tell_username(ws: ServerConnection) -> None:
    await ws.send(ws.username)


def authorization(value: str) -> str:
    return f"Authorization: {value}\r\n"


def basic(user: bytes, password: bytes) -> str:
    return "Basic " + base64.b64encode(user + b":" + password).decode()


CASES = [
    pytest.param("", id="missing"),
    pytest.param(authorization("Bearer abc"), id="not-basic"),
    pytest.param(authorization("Basic !!!"), id="not-base64"),
    pytest.param(authorization(basic(b"hello", b"wrong")), id="wrong-password"),
    pytest.param(authorization(basic(b"nobody", b"iloveyou")), id="unknown-user"),
    pytest.param(authorization(basic(b"h\xe9llo", b"iloveyou")), id="latin1-user"),
]


@needs_reference
@pytest.mark.parametrize("extra", CASES)
async def test_refusals_match_websockets(extra: str) -> None:
    def make() -> Any:
        return basic_auth(realm="my realm", credentials=[("hello", "iloveyou"), ("b", "c")])

    async with ws_server.serve(
        tell_username, "127.0.0.1", 0,
        process_request=ws_server.basic_auth(
            realm="my realm", credentials=[("hello", "iloveyou"), ("b", "c")]
        ),
    ) as reference:
        expected = await raw_exchange(port_of(reference), upgrade(extra=extra))
    async with serve(tell_username, "127.0.0.1", 0, process_request=make()) as server:
        actual = await raw_exchange(port_of(server), upgrade(extra=extra))
    assert expected.status_line == "HTTP/1.1 401 Unauthorized"
    assert actual.comparable() == expected.comparable()
    assert actual.header("WWW-Authenticate") == 'Basic realm="my realm", charset="UTF-8"'


async def test_texts() -> None:
    async with serve(
        tell_username, "127.0.0.1", 0, process_request=basic_auth(credentials=("u", "p"))
    ) as server:
        port = port_of(server)
        bodies = [
            (await raw_exchange(port, upgrade(extra=extra))).body
            for extra in ("", authorization("Digest x"), authorization(basic(b"u", b"x")))
        ]
    assert bodies == [b"Missing credentials\n", b"Unsupported credentials\n",
                      b"Invalid credentials\n"]


@pytest.mark.parametrize("kind", ["pair", "list", "sync", "async"])
async def test_success_sets_username(kind: str) -> None:
    checked: list[tuple[str, str]] = []

    def check(username: str, password: str) -> bool:
        checked.append((username, password))
        return password == "secret"

    async def async_check(username: str, password: str) -> bool:
        await asyncio.sleep(0)
        return check(username, password)

    auth: dict[str, Any] = {
        "pair": {"credentials": ("alice", "secret")},
        "list": {"credentials": [("bob", "x"), ("alice", "secret")]},
        "sync": {"check_credentials": check},
        "async": {"check_credentials": async_check},
    }[kind]
    async with serve(
        tell_username, "127.0.0.1", 0, process_request=basic_auth(realm="r", **auth)
    ) as server:
        url = f"ws://alice:secret@127.0.0.1:{port_of(server)}/"
        async with websockets.connect(url) as ws:
            assert await ws.recv() == "alice"
        async with f_client.connect(url) as fws:
            assert await fws.recv() == "alice"
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(f"ws://alice:nope@127.0.0.1:{port_of(server)}/"):
                pass
        assert info.value.response.status_code == 401
        assert info.value.response.body == b"Invalid credentials\n"
    if kind in ("sync", "async"):
        assert checked == [("alice", "secret"), ("alice", "secret"), ("alice", "nope")]


async def test_non_utf8_credentials_surrogateescape() -> None:
    """Credentials that are not UTF-8 compare with surrogateescape, as in websockets 17.4."""
    user = b"\xe9t\xe9".decode("utf-8", "surrogateescape")
    password = b"p\xe0ss".decode("utf-8", "surrogateescape")
    async with serve(
        tell_username, "127.0.0.1", 0,
        process_request=basic_auth(credentials=(user, password)),
    ) as server:
        port = port_of(server)
        ok = await _raw_open(port, authorization(basic(b"\xe9t\xe9", b"p\xe0ss")))
        refused = await raw_exchange(port, upgrade(extra=authorization(basic(b"\xe9t\xe9",
                                                                             b"pass"))))
    assert ok.status_line == "HTTP/1.1 101 Switching Protocols"
    assert refused.status_line == "HTTP/1.1 401 Unauthorized"


async def _raw_open(port: int, extra: str) -> RawResponse:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade(extra=extra))
        return RawResponse(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
    finally:
        writer.close()


async def test_repeated_authorization_is_500(caplog: pytest.LogCaptureFixture) -> None:
    """As websockets: two Authorization headers make the Headers lookup fail."""
    two = authorization(basic(b"u", b"p")) * 2
    with caplog.at_level(logging.ERROR, logger="websockets.server"):
        async with serve(
            tell_username, "127.0.0.1", 0, process_request=basic_auth(credentials=("u", "p"))
        ) as server:
            raw = await raw_exchange(port_of(server), upgrade(extra=two))
    assert raw.status_line == "HTTP/1.1 500 Internal Server Error"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "process_request failed"
    ]


@pytest.mark.parametrize(
    ("kwargs", "exc_type", "message"),
    [
        ({}, ValueError, "provide either credentials or check_credentials"),
        (
            {"credentials": ("a", "b"), "check_credentials": lambda u, p: True},
            ValueError,
            "provide either credentials or check_credentials",
        ),
        ({"credentials": 42}, TypeError, "invalid credentials argument: 42"),
        ({"credentials": [("a", "b"), ("c",)]}, TypeError,
         "invalid credentials argument: [('a', 'b'), ('c',)]"),
        ({"credentials": [("a", 1)]}, TypeError, "invalid credentials argument: [('a', 1)]"),
    ],
)
def test_bad_arguments_like_websockets(
    kwargs: dict[str, Any], exc_type: type, message: str
) -> None:
    for implementation in (basic_auth, ws_server.basic_auth):
        factory: Callable[..., Optional[Any]] = implementation
        with pytest.raises(exc_type) as info:
            factory(**kwargs)
        assert str(info.value) == message
