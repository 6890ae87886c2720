"""femtows.websockets.exceptions against websockets.exceptions (17.4): names, hierarchy,
constructor arguments, attributes and str() texts, side by side."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import websockets
import websockets.exceptions as ref_exc
from websockets.datastructures import Headers as RefHeaders
from websockets.frames import Close as RefClose
from websockets.http11 import Response as RefResponse

import femtows.websockets.exceptions as exc
from femtows.websockets.datastructures import Headers
from femtows.websockets.frames import Close
from femtows.websockets.http11 import Response
from tests.websockets.reference import needs_reference


@needs_reference  # older websockets export other names
def test_same_public_names() -> None:
    assert exc.__all__ == ref_exc.__all__


def test_public_names_are_exceptions() -> None:
    for name in exc.__all__:
        assert isinstance(getattr(exc, name), type), name


@pytest.mark.parametrize("name", ref_exc.__all__)
def test_same_bases(name: str) -> None:
    ours, theirs = getattr(exc, name), getattr(ref_exc, name)
    # Compare the base class names (ours live in femtows, builtins are shared).
    assert [base.__name__ for base in ours.__mro__] == [base.__name__ for base in theirs.__mro__]


def test_invalid_state_and_concurrency_error_builtin_bases() -> None:
    assert issubclass(exc.InvalidState, AssertionError)
    assert issubclass(exc.ConcurrencyError, RuntimeError)
    with pytest.raises(AssertionError):
        raise exc.InvalidState("not open")


def _close_pairs() -> list[tuple[Any, Any]]:
    return [
        (None, None),
        (Close(1000, ""), None),
        (None, Close(1011, "keepalive ping timeout")),
        (Close(4000, "bye"), Close(4000, "bye")),
        (Close(1001, ""), Close(1000, "")),
        (Close(3001, "x"), Close(1005, "")),
        (Close(2999, ""), Close(1015, "")),
    ]


@pytest.mark.parametrize("rcvd, sent", _close_pairs())
@pytest.mark.parametrize("cls", ["ConnectionClosed", "ConnectionClosedOK", "ConnectionClosedError"])
@pytest.mark.parametrize("order", [True, False])
def test_connection_closed_str(rcvd: Any, sent: Any, cls: str, order: bool) -> None:
    def ref(close: Any) -> Any:
        return None if close is None else RefClose(close.code, close.reason)

    rcvd_then_sent = order if rcvd is not None and sent is not None else None
    ours = getattr(exc, cls)(rcvd, sent, rcvd_then_sent)
    theirs = getattr(ref_exc, cls)(ref(rcvd), ref(sent), rcvd_then_sent)
    assert str(ours) == str(theirs)
    assert ours.rcvd is rcvd and ours.sent is sent and ours.rcvd_then_sent is rcvd_then_sent


def test_connection_closed_exact_texts() -> None:
    ok = exc.ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True)
    assert str(ok) == "received 1000 (OK); then sent 1000 (OK)"
    keepalive = exc.ConnectionClosedError(None, Close(1011, "keepalive ping timeout"), None)
    assert str(keepalive) == (
        "sent 1011 (internal error) keepalive ping timeout; no close frame received"
    )
    assert str(exc.ConnectionClosedError(None, None)) == "no close frame received or sent"


def test_connection_closed_requires_order_iff_both_frames() -> None:
    with pytest.raises(AssertionError):
        exc.ConnectionClosed(Close(1000, ""), Close(1000, ""))
    with pytest.raises(AssertionError):
        exc.ConnectionClosed(Close(1000, ""), None, True)


def test_connection_closed_deprecated_code_and_reason() -> None:
    closed = exc.ConnectionClosed(Close(4001, "gone"), None)
    with pytest.warns(DeprecationWarning, match="ConnectionClosed.code is deprecated"):
        assert closed.code == 4001
    with pytest.warns(DeprecationWarning, match="ConnectionClosed.reason is deprecated"):
        assert closed.reason == "gone"
    nothing = exc.ConnectionClosed(None, None)
    with pytest.warns(DeprecationWarning):
        assert nothing.code == 1006
    with pytest.warns(DeprecationWarning):
        assert nothing.reason == ""


def _both(name: str, *args: Any) -> tuple[Any, Any]:
    return getattr(exc, name)(*args), getattr(ref_exc, name)(*args)


@pytest.mark.parametrize(
    "name, args",
    [  # The needs_reference ones are not in older websockets.
        ("InvalidURI", ("http://x", "scheme isn't ws or wss")),
        ("InvalidProxy", ("ftp://p", "scheme ftp isn't supported")),
        pytest.param("InvalidMethod", ("POST",), marks=needs_reference),
        pytest.param("InvalidProtocol", ("HTTP/1.0",), marks=needs_reference),
        ("InvalidHeader", ("Upgrade",)),
        ("InvalidHeader", ("Upgrade", "")),
        ("InvalidHeader", ("Upgrade", "h2c")),
        ("InvalidHeaderValue", ("Sec-WebSocket-Key", "abc")),
        ("InvalidHeaderFormat", ("Connection", "expected token", ",,x y", 4)),
        ("InvalidOrigin", (None,)),
        ("InvalidOrigin", ("https://evil",)),
        ("InvalidUpgrade", ("Connection", "close")),
        ("DuplicateParameter", ("server_max_window_bits",)),
        ("InvalidParameterName", ("foo",)),
        ("InvalidParameterValue", ("client_max_window_bits", None)),
        ("InvalidParameterValue", ("client_max_window_bits", "")),
        ("InvalidParameterValue", ("client_max_window_bits", "42")),
        pytest.param("TooManyFragments", (4096,), marks=needs_reference),
        ("InvalidMessage", ("did not receive a valid HTTP response",)),
        ("ProtocolError", ("invalid opcode",)),
        ("SecurityError", ("body too large",)),
        pytest.param(
            "TooManyHeaders",
            ("expected no more than 128 headers",),
            marks=needs_reference,
        ),
        ("InvalidState", ("connection is closed",)),
        ("ConcurrencyError", ("cannot call recv while another coroutine is already running",)),
    ],
)
def test_str_and_attributes(name: str, args: tuple[Any, ...]) -> None:
    ours, theirs = _both(name, *args)
    assert str(ours) == str(theirs)
    assert ours.args == theirs.args
    for attr in ("uri", "proxy", "msg", "method", "protocol", "name", "value"):
        assert getattr(ours, attr, None) == getattr(theirs, attr, None), attr


@pytest.mark.parametrize("status", [404, 500, 101])
def test_invalid_status_and_proxy_status(status: int) -> None:
    ours = Response(status, "x", Headers())
    theirs = RefResponse(status, "x", RefHeaders())
    assert str(exc.InvalidStatus(ours)) == str(ref_exc.InvalidStatus(theirs))
    assert str(exc.InvalidStatus(ours)) == f"server rejected WebSocket connection: HTTP {status}"
    assert exc.InvalidStatus(ours).response is ours
    assert str(exc.InvalidProxyStatus(ours)) == str(ref_exc.InvalidProxyStatus(theirs))


@needs_reference  # older websockets have no PayloadTooBig.current_size
@pytest.mark.parametrize(
    "args",
    [(100, 50), (None, 50), (100, 50, 30), (None, 1024, 2048)],
)
def test_payload_too_big(args: tuple[Any, ...]) -> None:
    ours, theirs = _both("PayloadTooBig", *args)
    assert str(ours) == str(theirs)
    assert (ours.size, ours.max_size, ours.current_size) == (
        theirs.size,
        theirs.max_size,
        theirs.current_size,
    )


def test_payload_too_big_set_current_size() -> None:
    ours, theirs = _both("PayloadTooBig", 10, 100)
    ours.set_current_size(5)
    theirs.set_current_size(5)
    assert (
        str(ours)
        == str(theirs)
        == "frame with 10 bytes after reading 5 bytes exceeds limit of 105 bytes"
    )
    with pytest.raises(AssertionError):
        ours.set_current_size(1)


def test_payload_too_big_deprecated_message() -> None:
    with pytest.warns(DeprecationWarning, match=r"PayloadTooBig\(message\) is deprecated"):
        ours = exc.PayloadTooBig("too big")
    assert str(ours) == "too big"


@pytest.mark.parametrize(
    "name", ["AbortHandshake", "InvalidStatusCode", "RedirectHandshake", "WebSocketProtocolError"]
)
def test_deprecated_legacy_names(name: str) -> None:
    with pytest.warns(
        DeprecationWarning, match=rf"femtows\.websockets\.exceptions\.{name} is deprecated"
    ):
        ours = getattr(exc, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = getattr(ref_exc, name)
    assert [b.__name__ for b in ours.__mro__] == [b.__name__ for b in theirs.__mro__]
    assert name in dir(exc)
    with pytest.warns(DeprecationWarning, match=rf"femtows\.websockets\.{name} is deprecated"):
        import femtows.websockets

        assert getattr(femtows.websockets, name) is ours


def test_deprecated_legacy_texts() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        abort = exc.AbortHandshake(403, {"X": "1"}, b"no")  # type: ignore[attr-defined]
        ref_abort = ref_exc.AbortHandshake(403, {"X": "1"}, b"no")
        code = exc.InvalidStatusCode(404, Headers())  # type: ignore[attr-defined]
        ref_code = ref_exc.InvalidStatusCode(404, RefHeaders())
        redirect = exc.RedirectHandshake("ws://x/")  # type: ignore[attr-defined]
        ref_redirect = ref_exc.RedirectHandshake("ws://x/")
    assert str(abort) == str(ref_abort) == "HTTP 403, 1 headers, 2 bytes"
    assert abort.status == 403 and abort.status.phrase == "Forbidden"
    assert str(code) == str(ref_code)
    assert str(redirect) == str(ref_redirect)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        exc.Nope  # type: ignore[attr-defined]  # noqa: B018
    assert websockets.exceptions is ref_exc
