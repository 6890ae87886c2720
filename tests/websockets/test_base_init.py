"""The top level of femtows.websockets exports what websockets/__init__.py (17.4) exports."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import websockets

import femtows.websockets as fws
from tests.websockets.reference import needs_reference

# websockets' Sans-I/O classes: not provided yet (a later issue).
SANS_IO: set[str] = set()  # the Sans-I/O names are provided (issue 12)
ASYNCIO = {
    "connect",
    "unix_connect",
    "ClientConnection",
    "route",
    "unix_route",
    "Router",
    "basic_auth",
    "broadcast",
    "serve",
    "unix_serve",
    "ServerConnection",
    "Server",
}


@needs_reference  # older websockets export other names
def test_all_matches_websockets_minus_sans_io() -> None:
    assert fws.__all__ == [name for name in websockets.__all__ if name not in SANS_IO]


@pytest.mark.parametrize("name", [n for n in websockets.__all__ if n not in SANS_IO | ASYNCIO])
def test_name_resolves_to_its_module(name: str) -> None:
    value = getattr(fws, name)
    reference = getattr(websockets, name)
    module = reference.__module__ if hasattr(reference, "__module__") else None
    if isinstance(reference, type) and module and module.startswith("websockets."):
        # Same class name, defined in the twin module.
        assert value.__name__ == reference.__name__
        assert value.__module__ == "femtows." + module
    assert name in dir(fws)


def test_names_import_lazily() -> None:
    code = (
        "import sys, femtows.websockets as w; "
        "print(sorted(m for m in sys.modules if m.startswith('femtows.websockets')));"
        "w.ConnectionClosed; print('femtows.websockets.exceptions' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    assert first == "['femtows.websockets', 'femtows.websockets.version']"
    assert second == "True"


def test_from_import() -> None:
    from femtows.websockets import CloseCode, ConnectionClosedOK, Headers, State

    assert CloseCode.NORMAL_CLOSURE == 1000 and State.OPEN == 1
    assert issubclass(ConnectionClosedOK, fws.ConnectionClosed)
    assert Headers(a="1")["A"] == "1"
    assert fws.__version__


@pytest.mark.parametrize("name", ["Protocol", "ClientProtocol", "ServerProtocol"])
def test_sans_io_names(name: str) -> None:
    module = {"Protocol": "protocol", "ClientProtocol": "client", "ServerProtocol": "server"}
    assert getattr(fws, name).__module__ == f"femtows.websockets.{module[name]}"


@pytest.mark.parametrize(
    "name",
    [
        "WebSocketClientProtocol",
        "WebSocketServerProtocol",
        "WebSocketServer",
        "basic_auth_protocol_factory",
    ],
)
def test_legacy_api_names_say_they_are_missing(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert getattr(websockets, name) is not None
    with pytest.raises(AttributeError, match="legacy API"):
        getattr(fws, name)


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="module 'femtows.websockets' has no attribute 'nope'"):
        fws.nope  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("name", sorted(ASYNCIO))
def test_asyncio_names_resolve(name: str) -> None:
    import importlib

    ours = getattr(fws, name)
    module = getattr(websockets, name).__module__.replace("websockets.", "femtows.websockets.", 1)
    assert ours is getattr(importlib.import_module(module), name)
