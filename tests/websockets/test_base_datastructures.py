"""femtows.websockets.datastructures.Headers against websockets' Headers (17.4), side by side."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import websockets.datastructures as ref
import websockets.exceptions as ref_exc

from femtows.websockets import datastructures as ds
from femtows.websockets import exceptions as exc
from tests.websockets.reference import needs_reference


def _scenarios() -> list[Callable[[Any], Any]]:
    def build(mod: Any) -> Any:
        h = mod.Headers({"Host": "example.com"}, Upgrade="websocket")
        h["Set-Cookie"] = "a=1"
        h["set-cookie"] = "b=2"
        h.update([("X-A", "1")], X_B="2")
        return h

    return [
        lambda m: repr(build(m)),
        lambda m: str(build(m)),
        lambda m: build(m).serialize(),
        lambda m: list(build(m)),
        lambda m: len(build(m)),
        lambda m: build(m)["HOST"],
        lambda m: build(m).get("missing"),
        lambda m: build(m).get_all("SET-COOKIE"),
        lambda m: build(m).get_all("nope"),
        lambda m: list(build(m).raw_items()),
        lambda m: "upgrade" in build(m),
        lambda m: 1 in build(m),
        lambda m: repr(build(m).copy()),
        lambda m: build(m) == build(m),
        lambda m: build(m) == {"host": "example.com"},
        lambda m: m.Headers(a="1", b="2") == m.Headers(B="2", A="1"),
        lambda m: repr(m.Headers(m.Headers([("A", "1"), ("a", "2")]))),
        lambda m: sorted(build(m).keys()),
    ]


@pytest.mark.parametrize("scenario", _scenarios())
def test_same_results(scenario: Callable[[Any], Any]) -> None:
    assert scenario(ds) == scenario(ref)


def test_delete_and_clear() -> None:
    for mod in (ds, ref):
        h = mod.Headers([("A", "1"), ("b", "2"), ("a", "3")])
        del h["a"]
        assert list(h.raw_items()) == [("b", "2")]
        with pytest.raises(KeyError):
            del h["a"]
        h.clear()
        assert len(h) == 0 and str(h) == "\r\n"


def test_multiple_values_error() -> None:
    h = ds.Headers([("Cookie", "a"), ("cookie", "b")])
    with pytest.raises(ds.MultipleValuesError) as ours:
        h["COOKIE"]
    with pytest.raises(ref.MultipleValuesError) as theirs:
        ref.Headers([("Cookie", "a"), ("cookie", "b")])["COOKIE"]
    assert str(ours.value) == str(theirs.value) == "'COOKIE'"
    assert isinstance(ours.value, LookupError)
    assert str(ds.MultipleValuesError("a", "b")) == str(ref.MultipleValuesError("a", "b"))
    with pytest.raises(KeyError):
        h["missing"]


@needs_reference  # older websockets accept any header value
@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "\x00", "\x7f"])
def test_unsafe_values_refused(value: str) -> None:
    with pytest.raises(exc.InvalidHeaderValue) as ours:
        ds.Headers()["X"] = value
    with pytest.raises(ref_exc.InvalidHeaderValue) as theirs:
        ref.Headers()["X"] = value
    assert str(ours.value) == str(theirs.value)


def test_non_ascii_values_round_trip_as_latin1() -> None:
    h = ds.Headers(X="café")
    assert h.serialize() == b"X: caf\xe9\r\n\r\n"
    h.set_insecure("Y", "a\nb")  # not validated on purpose
    assert h.get_all("y") == ["a\nb"]


def test_unhashable_and_too_many_arguments() -> None:
    with pytest.raises(TypeError):
        hash(ds.Headers())
    with pytest.raises(TypeError):
        ds.Headers({}, {})  # type: ignore[call-arg]
