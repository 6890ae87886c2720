"""femtows.errors: the exception hierarchy, its attributes, str() and pickling."""

from __future__ import annotations

import pickle
from http import HTTPStatus

import pytest

from femtows.errors import (
    WSError,
    WSHandshakeError,
    WSInvalidHeaderError,
    WSInvalidMessageError,
    WSInvalidStatusError,
    WSInvalidUpgradeError,
    WSInvalidURL,
    WSProtocolError,
)
from femtows.handshake import WSUpgradeResponse


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (WSError, Exception),
        (WSHandshakeError, WSError),
        (WSInvalidMessageError, WSHandshakeError),
        (WSInvalidStatusError, WSHandshakeError),
        (WSInvalidHeaderError, WSHandshakeError),
        (WSInvalidUpgradeError, WSInvalidHeaderError),
        (WSProtocolError, WSError),
        (WSInvalidURL, WSError),
    ],
)
def test_hierarchy(cls: type, base: type) -> None:
    """Each exception derives from the same parent as in picows."""
    assert issubclass(cls, base)


def test_handshake_error_defaults() -> None:
    """Only the description is required; the rest defaults to None."""
    exc = WSHandshakeError("boom")
    assert str(exc) == "boom"
    assert exc.description == "boom"
    assert exc.raw_header is None
    assert exc.raw_body is None
    assert exc.response is None


def test_handshake_error_attributes() -> None:
    """raw_header, raw_body and response are kept as given (positional order as in picows)."""
    response = WSUpgradeResponse(b"HTTP/1.1", HTTPStatus.FORBIDDEN)
    exc = WSInvalidStatusError("rejected", b"HTTP/1.1 403 Forbidden\r\n\r\n", b"go away", response)
    assert str(exc) == "rejected"
    assert exc.raw_header == b"HTTP/1.1 403 Forbidden\r\n\r\n"
    assert exc.raw_body == b"go away"
    assert exc.response is response


def test_invalid_header_error_attributes() -> None:
    """name and value come right after the description."""
    exc = WSInvalidHeaderError("bad accept", "Sec-WebSocket-Accept", "xyz", raw_header=b"h")
    assert str(exc) == "bad accept"
    assert exc.name == "Sec-WebSocket-Accept"
    assert exc.value == "xyz"
    assert exc.raw_header == b"h"
    assert exc.raw_body is None
    assert exc.response is None


def test_invalid_upgrade_error_value_defaults_to_none() -> None:
    """A missing header is reported with value None."""
    exc = WSInvalidUpgradeError("missing Upgrade header", "Upgrade")
    assert exc.name == "Upgrade"
    assert exc.value is None
    assert isinstance(exc, WSInvalidHeaderError)


def test_protocol_error() -> None:
    """code and message are attributes; str() is the message only; args as in picows."""
    exc = WSProtocolError(1008, "policy says no")
    assert exc.code == 1008
    assert exc.message == "policy says no"
    assert str(exc) == "policy says no"
    assert exc.args == (1008, "policy says no")


def test_invalid_url() -> None:
    """url and msg are attributes; str() mentions both."""
    exc = WSInvalidURL("http://example.com/", "scheme 'http' is not one of: ws, wss")
    assert exc.url == "http://example.com/"
    assert exc.msg == "scheme 'http' is not one of: ws, wss"
    assert str(exc) == ("invalid URL 'http://example.com/': scheme 'http' is not one of: ws, wss")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://alice:s3cret@host/p?q", "ws://alice:***@host/p?q"),
        ("socks5://u:p@w@proxy:1080", "socks5://u:***@proxy:1080"),
        ("ws://alice@host/", "ws://alice@host/"),
        ("ws://host/a:b@c", "ws://host/a:b@c"),
        ("not a url", "not a url"),
    ],
)
def test_invalid_url_masks_password(url: str, shown: str) -> None:
    """A password never reaches str(exc) (it ends up in logs), but .url keeps it."""
    exc = WSInvalidURL(url, "whatever")
    assert str(exc) == f"invalid URL {shown!r}: whatever"
    assert exc.url == url


def test_pickle_round_trip() -> None:
    """Every exception survives pickling with its attributes (multiprocessing, logging)."""
    header_error = pickle.loads(
        pickle.dumps(WSInvalidUpgradeError("bad", "Connection", "close", b"raw", b"body"))
    )
    assert type(header_error) is WSInvalidUpgradeError
    assert (header_error.description, header_error.name, header_error.value) == (
        "bad",
        "Connection",
        "close",
    )
    assert (header_error.raw_header, header_error.raw_body) == (b"raw", b"body")

    message_error = pickle.loads(pickle.dumps(WSInvalidMessageError("short", raw_header=b"x")))
    assert type(message_error) is WSInvalidMessageError
    assert str(message_error) == "short"
    assert message_error.raw_header == b"x"

    response = WSUpgradeResponse(b"HTTP/1.1", HTTPStatus.FORBIDDEN, None, b"no")
    status_error = pickle.loads(pickle.dumps(WSInvalidStatusError("403", b"h", b"b", response)))
    assert status_error.response is not None
    assert status_error.response.status is HTTPStatus.FORBIDDEN
    assert status_error.response.body == b"no"

    protocol_error = pickle.loads(pickle.dumps(WSProtocolError(1002, "bad frame")))
    assert (protocol_error.code, protocol_error.message) == (1002, "bad frame")

    url_error = pickle.loads(pickle.dumps(WSInvalidURL("ws://", "URL has no host")))
    assert (url_error.url, url_error.msg) == ("ws://", "URL has no host")
