"""femtows.websockets.headers against websockets.headers (17.4): parsers, builders and their
error texts, side by side."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import websockets.headers as ref

from femtows.websockets import exceptions as exc
from femtows.websockets import headers
from tests.websockets.reference import needs_reference


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except Exception as error:  # noqa: BLE001 - compared by type name and text
        return ("error", type(error).__name__, str(error))


def test_same_public_names() -> None:
    assert headers.__all__ == ref.__all__


CONNECTION = ["Upgrade", "keep-alive, Upgrade", ",, Upgrade ,,", "Upgrade x", "", ",", "a,,b", "é"]
UPGRADE = ["websocket", "WebSocket, h2c/2", "websocket/", "web socket", ",websocket", "a/b/c"]
EXTENSIONS = [
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_max_window_bits=10; server_no_context_takeover, x-foo",
    'permessage-deflate; client_max_window_bits="10"',
    'permessage-deflate; client_max_window_bits="1 0"',
    'permessage-deflate; client_max_window_bits="10',
    "permessage-deflate;;",
    "permessage-deflate; a=",
    "a ;b = c ; d",
    "",
]
SUBPROTOCOLS = ["chat", "chat, superchat", "chat superchat", "chat,", "", "a/b"]


@pytest.mark.parametrize("value", CONNECTION)
def test_parse_connection(value: str) -> None:
    assert _outcome(lambda: headers.parse_connection(value)) == _outcome(
        lambda: ref.parse_connection(value)
    )


@pytest.mark.parametrize("value", UPGRADE)
def test_parse_upgrade(value: str) -> None:
    assert _outcome(lambda: headers.parse_upgrade(value)) == _outcome(
        lambda: ref.parse_upgrade(value)
    )


@pytest.mark.parametrize("value", EXTENSIONS)
def test_parse_and_build_extension(value: str) -> None:
    ours = _outcome(lambda: headers.parse_extension(value))
    assert ours == _outcome(lambda: ref.parse_extension(value))
    if ours[0] == "ok":
        assert headers.build_extension(ours[1]) == ref.build_extension(ours[1])
    assert headers.parse_extension_list is headers.parse_extension
    assert headers.build_extension_list is headers.build_extension


@pytest.mark.parametrize("value", SUBPROTOCOLS)
def test_parse_and_build_subprotocol(value: str) -> None:
    ours = _outcome(lambda: headers.parse_subprotocol(value))
    assert ours == _outcome(lambda: ref.parse_subprotocol(value))
    if ours[0] == "ok":
        assert headers.build_subprotocol(ours[1]) == ref.build_subprotocol(ours[1])


def test_parse_error_text() -> None:
    with pytest.raises(exc.InvalidHeaderFormat) as info:
        headers.parse_connection("Upgrade x")
    assert str(info.value) == "invalid Connection header: expected comma at 8 in Upgrade x"


@pytest.mark.parametrize(
    "value", [["chat"], ["chat", "v2.chat"], [], "chat", ("a",), ["bad value"], ["é"], 42, [""]]
)
def test_validate_subprotocols(value: Any) -> None:
    assert _outcome(lambda: headers.validate_subprotocols(value)) == _outcome(
        lambda: ref.validate_subprotocols(value)
    )


@pytest.mark.parametrize(
    "args",
    [
        ("example.com", 80, False),
        ("example.com", 443, False),
        ("example.com", 443, True),
        ("::1", 8080, False),
        ("::1", 80, False),
        ("127.0.0.1", 443, True),
        ("h", 9, True),
    ],
)
@pytest.mark.parametrize("always", [False, True])
def test_build_host(args: tuple[str, int, bool], always: bool) -> None:
    assert headers.build_host(*args, always_include_port=always) == ref.build_host(
        *args, always_include_port=always
    )


@pytest.mark.parametrize("realm", ["", "my realm", 'quote " and \\ back', "é", "\x00"])
def test_build_www_authenticate_basic(realm: str) -> None:
    assert _outcome(lambda: headers.build_www_authenticate_basic(realm)) == _outcome(
        lambda: ref.build_www_authenticate_basic(realm)
    )


AUTHORIZATIONS = [
    "Basic dXNlcjpwYXNz",
    "basic dXNlcjpwYXNz",
    "Basic dXNlcjpwYXNzOmV4dHJh",
    "Bearer xyz",
    "Basic",
    "Basic  dXNlcjpwYXNz",
    "Basic dXNlcjpwYXNz extra",
    "Basic dXNlcg==",
    "Basic ===",
    # Older websockets refuse non-UTF-8 credentials instead of surrogate-escaping them.
    pytest.param("Basic dXNlcjpw/w==", marks=needs_reference),
    "Basic !",
    "",
]


@pytest.mark.parametrize("value", AUTHORIZATIONS)
def test_parse_authorization_basic(value: str) -> None:
    assert _outcome(lambda: headers.parse_authorization_basic(value)) == _outcome(
        lambda: ref.parse_authorization_basic(value)
    )


@pytest.mark.parametrize(
    "user, password", [
        ("user", "pass"),
        ("ü", "p:w"),
        ("", ""),
        # Older websockets can't encode surrogates.
        pytest.param("a", "\udcff", marks=needs_reference),
    ],
)
def test_build_authorization_basic_round_trip(user: str, password: str) -> None:
    built = headers.build_authorization_basic(user, password)
    assert built == ref.build_authorization_basic(user, password)
    assert headers.parse_authorization_basic(built) == (user, password)


def test_build_authorization_basic_refuses_colon_in_username() -> None:
    with pytest.raises(ValueError, match="username must not contain a colon"):
        headers.build_authorization_basic("a:b", "c")


def test_quoted_string_helpers() -> None:
    assert headers.build_quoted_string('a"b\\c') == '"a\\"b\\\\c"'
    value = '"a\\"b\\\\c" rest'
    assert headers.parse_quoted_string(value, 0, "X") == ref.parse_quoted_string(value, 0, "X")
    assert headers.parse_quoted_string(value, 0, "X") == ('a"b\\c', 9)
    with pytest.raises(ValueError, match="invalid characters for quoted-string encoding"):
        headers.build_quoted_string("\n")
    with pytest.raises(exc.InvalidHeaderFormat, match="expected quoted string at 0 in x"):
        headers.parse_quoted_string("x", 0, "X")
