"""femtows.websockets.uri against websockets.uri / websockets.proxy (17.4): parse_uri,
parse_proxy and get_proxy reading the environment, side by side."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import pytest

from tests.websockets.reference import IS_REFERENCE

if not IS_REFERENCE:
    pytest.skip("compares with websockets 17.4's uri/proxy modules (Python 3.11+)",
                allow_module_level=True)

import websockets.proxy as ref_proxy  # noqa: E402
import websockets.uri as ref_uri  # noqa: E402

from femtows.websockets import proxy as proxy_module
from femtows.websockets import uri


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        value = call()
    except Exception as error:  # noqa: BLE001 - compared by type name and text
        return ("error", type(error).__name__, str(error))
    extra = {}
    for prop in ("resource_name", "user_info"):
        if hasattr(value, prop):
            extra[prop] = getattr(value, prop)
    return ("ok", dataclasses.astuple(value), extra)


URIS = [
    "ws://localhost",
    "ws://localhost/",
    "wss://Example.COM:8443/path?q=1&r=2",
    "ws://[::1]:9000/x",
    "ws://user:pa%3Ass@host/",
    "ws://user@host/",
    "ws://:@host/",
    "wss://host/p#frag",
    "http://host/",
    "ws:///path",
    "ws://host:99999/",
    "ws://host:abc/",
    "ws://host:0/",
    "ws://héllo.example/chemin/é?q=ü",
    "ws://host/a b",
    "ws://user:p%ffx@host/",
    "",
]


@pytest.mark.parametrize("text", URIS)
def test_parse_uri(text: str) -> None:
    assert _outcome(lambda: uri.parse_uri(text)) == _outcome(lambda: ref_uri.parse_uri(text))


def test_parse_uri_messages() -> None:
    with pytest.raises(Exception) as info:
        uri.parse_uri("http://x/")
    assert str(info.value) == "http://x/ isn't a valid URI: scheme isn't ws or wss"
    parsed = uri.parse_uri("wss://u:p@h")
    assert parsed.user_info == ("u", "p") and parsed.resource_name == "/" and parsed.port == 443


PROXIES = [
    "http://proxy:3128",
    "http://proxy:3128/",
    "https://proxy",
    "socks5h://u:p@proxy:1080",
    "socks5://proxy",
    "socks4a://proxy",
    "socks4://proxy",
    "ftp://proxy",
    "http://",
    "http://proxy/path",
    "http://proxy/?q",
    "http://proxy/#f",
    "http://user@proxy",
    "http://us%40er:p%3Ass@proxy",
    "http://prøxy.example",
]


@pytest.mark.parametrize("text", PROXIES)
def test_parse_proxy(text: str) -> None:
    assert _outcome(lambda: uri.parse_proxy(text)) == _outcome(lambda: ref_proxy.parse_proxy(text))
    assert proxy_module.parse_proxy is uri.parse_proxy


ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"http_proxy": "http://h:1"},
    {"https_proxy": "http://s:2", "http_proxy": "http://h:1"},
    {"all_proxy": "http://all:6", "https_proxy": "http://s:2"},
    {"socks_proxy": "http://socks:3", "https_proxy": "http://s:2"},
    {"socks_proxy": "socks5://socks:3"},
    {"ws_proxy": "http://w:4", "wss_proxy": "http://ws:5", "https_proxy": "http://s:2"},
    {"http_proxy": "http://h:1", "no_proxy": "example.com"},
    {"https_proxy": "http://s:2", "no_proxy": "*"},
    {"HTTPS_PROXY": "http://S:2"},
]

_PROXY_VARS = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "socks_proxy",
    "ws_proxy",
    "wss_proxy",
    "no_proxy",
)


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize(
    "target", ["ws://example.com/", "wss://example.com/", "ws://other.org:81/"]
)
def test_get_proxy(env: dict[str, str], target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ours = uri.get_proxy(uri.parse_uri(target))
    theirs = ref_proxy.get_proxy(ref_uri.parse_uri(target))
    assert ours == theirs


def test_get_proxy_priorities(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("http_proxy", "http://h:1")
    secure, plain = uri.parse_uri("wss://x/"), uri.parse_uri("ws://x/")
    assert uri.get_proxy(plain) == "http://h:1"
    assert uri.get_proxy(secure) is None  # http_proxy is not used for wss
    monkeypatch.setenv("socks_proxy", "http://socks:3")
    assert uri.get_proxy(secure) == uri.get_proxy(plain) == "socks5h://socks:3"
    monkeypatch.setenv("wss_proxy", "http://w:5")
    assert uri.get_proxy(secure) == "http://w:5"
