"""permessage-deflate negotiation (RFC 7692 §7.1) in femtows.handshake: pure functions, both roles.

Server side: which offer is accepted and what the 101 answers; offers that must be declined
(§5: unknown or duplicate parameters, invalid values, a configuration we cannot honour) are
skipped. Client side: what is offered and which answers are refused (WSInvalidHeaderError).
"""

from __future__ import annotations

from typing import Optional

import pytest
from multidict import CIMultiDict

from femtows import WSInvalidHeaderError
from femtows.handshake import (
    DeflateNegotiationError,
    HandshakeRejection,
    WSDeflateConfig,
    WSDeflateParams,
    WSUpgradeResponse,
    deflate_offer,
    negotiate_deflate_from_response,
    negotiate_deflate_offer,
    negotiate_deflate_request,
    negotiate_deflate_response,
    parse_extensions,
)

# -- header syntax -------------------------------------------------------------------------------


def test_parse_extensions_list_params_and_quotes():
    header = (
        'permessage-deflate; client_max_window_bits; server_max_window_bits="10", '
        "x-webkit-deflate-frame, permessage-deflate ;server_no_context_takeover"
    )
    assert parse_extensions([header, "foo;a=b"]) == [
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        ),
        ("x-webkit-deflate-frame", []),
        ("permessage-deflate", [("server_no_context_takeover", None)]),
        ("foo", [("a", "b")]),
    ]
    assert parse_extensions(["", " , "]) == []


@pytest.mark.parametrize(
    "header",
    [
        "permessage-deflate;",
        "permessage-deflate; =10",
        "permessage-deflate; a=",
        'permessage-deflate; a="1 0"',  # a quoted value must be a token once unquoted
        "permessage-deflate x",
        "permessage deflate",
        '"permessage-deflate"',
        "permessage-deflate; a=b c",
    ],
)
def test_parse_extensions_malformed(header):
    with pytest.raises(ValueError):
        parse_extensions([header])


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": "10"},
        {"client_max_window_bits": False},
        {"require_client_max_window_bits": True},
        {"compress_level": 10},
        {"compress_level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
    ],
)
def test_config_bad_values(kwargs):
    with pytest.raises(ValueError):
        WSDeflateConfig(**kwargs)


def test_config_roles():
    # zlib cannot compress with a 256-byte window: each side refuses 8 for its own window.
    with pytest.raises(ValueError, match="client_max_window_bits"):
        WSDeflateConfig(client_max_window_bits=8).check_role(is_client=True)
    with pytest.raises(ValueError, match="server_max_window_bits"):
        WSDeflateConfig(server_max_window_bits=8).check_role(is_client=False)
    with pytest.raises(ValueError, match="client offer"):
        WSDeflateConfig(client_max_window_bits=True).check_role(is_client=False)
    with pytest.raises(ValueError, match="server option"):
        WSDeflateConfig(
            client_max_window_bits=10, require_client_max_window_bits=True
        ).check_role(is_client=True)
    WSDeflateConfig(server_max_window_bits=8).check_role(is_client=True)  # we only inflate
    WSDeflateConfig(client_max_window_bits=8).check_role(is_client=False)
    assert WSDeflateConfig.client() == WSDeflateConfig(client_max_window_bits=True)
    assert WSDeflateConfig.server() == WSDeflateConfig(
        server_max_window_bits=12, client_max_window_bits=12, mem_level=5)


# -- client offers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, offer",
    [
        (WSDeflateConfig(), "permessage-deflate"),
        (WSDeflateConfig.client(), "permessage-deflate; client_max_window_bits"),
        (
            WSDeflateConfig(True, True, 10, 11),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=11",
        ),
        (WSDeflateConfig(server_max_window_bits=8), "permessage-deflate; server_max_window_bits=8"),
    ],
)
def test_offer(config, offer):
    assert deflate_offer(config) == offer
    # What we offer parses back to what we meant.
    assert parse_extensions([offer])[0][0] == "permessage-deflate"


# -- server side ---------------------------------------------------------------------------------


def server(config: WSDeflateConfig, header: Optional[str]) -> Optional[WSDeflateParams]:
    headers: CIMultiDict[str] = CIMultiDict()
    if header is not None:
        headers["Sec-WebSocket-Extensions"] = header
    return negotiate_deflate_request(config, headers)


def answer(config: WSDeflateConfig, offer: str) -> Optional[str]:
    params = server(config, offer)
    return params.header if params is not None else None


PMD = "permessage-deflate"


@pytest.mark.parametrize(
    "config, offer, expected",
    [
        # Accepted as offered.
        (WSDeflateConfig(), PMD, PMD),
        (WSDeflateConfig(), f"{PMD}; server_no_context_takeover",
         f"{PMD}; server_no_context_takeover"),
        (WSDeflateConfig(), f"{PMD}; client_no_context_takeover",
         f"{PMD}; client_no_context_takeover"),
        (WSDeflateConfig(), f"{PMD}; server_max_window_bits=10",
         f"{PMD}; server_max_window_bits=10"),
        (WSDeflateConfig(), f"{PMD}; client_max_window_bits=9",
         f"{PMD}; client_max_window_bits=9"),
        # A bare client_max_window_bits only says "you may limit me": no limit, no answer.
        (WSDeflateConfig(), f"{PMD}; client_max_window_bits", PMD),
        (WSDeflateConfig(), f'{PMD}; server_max_window_bits="12"',
         f"{PMD}; server_max_window_bits=12"),
        # Server configuration forces or caps.
        (WSDeflateConfig(server_no_context_takeover=True), PMD,
         f"{PMD}; server_no_context_takeover"),
        (WSDeflateConfig(client_no_context_takeover=True), PMD,
         f"{PMD}; client_no_context_takeover"),
        (WSDeflateConfig(server_max_window_bits=12), PMD, f"{PMD}; server_max_window_bits=12"),
        (WSDeflateConfig(server_max_window_bits=12), f"{PMD}; server_max_window_bits=10",
         f"{PMD}; server_max_window_bits=10"),
        (WSDeflateConfig(server_max_window_bits=12), f"{PMD}; server_max_window_bits=14",
         f"{PMD}; server_max_window_bits=12"),
        (WSDeflateConfig(client_max_window_bits=12), f"{PMD}; client_max_window_bits",
         f"{PMD}; client_max_window_bits=12"),
        (WSDeflateConfig(client_max_window_bits=12), f"{PMD}; client_max_window_bits=10",
         f"{PMD}; client_max_window_bits=10"),
        (WSDeflateConfig(client_max_window_bits=12), f"{PMD}; client_max_window_bits=15",
         f"{PMD}; client_max_window_bits=12"),
        # The server may not limit a client that did not offer client_max_window_bits.
        (WSDeflateConfig(client_max_window_bits=12), PMD, PMD),
        (WSDeflateConfig(client_max_window_bits=12, require_client_max_window_bits=True), PMD,
         None),
        # Declined offers (RFC 7692 §5).
        (WSDeflateConfig(), f"{PMD}; server_max_window_bits=8", None),
        (WSDeflateConfig(), f"{PMD}; server_max_window_bits", None),
        (WSDeflateConfig(), f"{PMD}; server_max_window_bits=16", None),
        (WSDeflateConfig(), f"{PMD}; server_max_window_bits=010", None),
        (WSDeflateConfig(), f"{PMD}; client_max_window_bits=7", None),
        (WSDeflateConfig(), f"{PMD}; client_max_window_bits=abc", None),
        (WSDeflateConfig(), f"{PMD}; server_no_context_takeover=1", None),
        (WSDeflateConfig(), f"{PMD}; client_no_context_takeover=true", None),
        (WSDeflateConfig(), f"{PMD}; server_no_context_takeover; server_no_context_takeover",
         None),
        (WSDeflateConfig(), f"{PMD}; client_max_window_bits; client_max_window_bits=10", None),
        (WSDeflateConfig(), f"{PMD}; server_max_window_bits=9; server_max_window_bits=9", None),
        (WSDeflateConfig(), f"{PMD}; unknown_param", None),
        (WSDeflateConfig(), f"{PMD}; mem_level=5", None),
        # Other extensions are ignored; the token is case-insensitive.
        (WSDeflateConfig(), "x-webkit-deflate-frame", None),
        (WSDeflateConfig(), "PerMessage-Deflate", PMD),
        # The client's 8 is fine for the window *it* compresses with (we only inflate).
        (WSDeflateConfig(), f"{PMD}; client_max_window_bits=8",
         f"{PMD}; client_max_window_bits=8"),
    ],
)
def test_server_negotiation(config, offer, expected):
    assert answer(config, offer) == expected


def test_server_several_offers_first_acceptable_wins():
    config = WSDeflateConfig()
    offers = (
        f"{PMD}; server_max_window_bits=8; client_max_window_bits, "  # declined: 8
        f"{PMD}; foo, "  # declined: unknown parameter
        f"{PMD}; server_max_window_bits=10; client_no_context_takeover, "  # accepted
        f"{PMD}"
    )
    assert answer(config, offers) == (
        f"{PMD}; client_no_context_takeover; server_max_window_bits=10"
    )
    # Repeated headers form one list.
    headers: CIMultiDict[str] = CIMultiDict(
        [("Sec-WebSocket-Extensions", f"{PMD}; bogus"), ("Sec-WebSocket-Extensions", PMD)]
    )
    params = negotiate_deflate_request(config, headers)
    assert params is not None and params.header == PMD


def test_server_params_seen_from_the_server():
    params = server(
        WSDeflateConfig(),
        f"{PMD}; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9",
    )
    assert params == WSDeflateParams(
        remote_no_context_takeover=False,
        local_no_context_takeover=True,
        remote_max_window_bits=9,
        local_max_window_bits=10,
        header=f"{PMD}; server_no_context_takeover; server_max_window_bits=10; "
        "client_max_window_bits=9",
    )
    params = server(
        WSDeflateConfig(compress_level=1, mem_level=5), f"{PMD}; client_no_context_takeover"
    )
    assert params is not None
    assert (params.remote_no_context_takeover, params.local_no_context_takeover) == (True, False)
    assert (params.remote_max_window_bits, params.local_max_window_bits) == (15, 15)
    assert (params.compress_level, params.mem_level) == (1, 5)


def test_server_no_offer_and_malformed_header():
    assert server(WSDeflateConfig(), None) is None
    with pytest.raises(HandshakeRejection) as info:
        server(WSDeflateConfig(), "permessage-deflate; ;")
    assert info.value.status == 400


# -- client side ---------------------------------------------------------------------------------


def client(config: WSDeflateConfig, answer_header: Optional[str]) -> Optional[WSDeflateParams]:
    response = WSUpgradeResponse(status=101)
    if answer_header is not None:
        response.headers["Sec-WebSocket-Extensions"] = answer_header
    return negotiate_deflate_from_response(config, response, b"HTTP/1.1 101\r\n\r\n")


@pytest.mark.parametrize(
    "config, answer_header, expected",
    [
        # (remote_nct, local_nct, remote_bits, local_bits)
        (WSDeflateConfig.client(), PMD, (False, False, 15, 15)),
        (WSDeflateConfig.client(), f"{PMD}; client_max_window_bits=10", (False, False, 15, 10)),
        (WSDeflateConfig.client(), f"{PMD}; server_max_window_bits=8", (False, False, 8, 15)),
        (WSDeflateConfig.client(), f"{PMD}; server_no_context_takeover", (True, False, 15, 15)),
        (WSDeflateConfig.client(), f"{PMD}; client_no_context_takeover", (False, True, 15, 15)),
        # We asked for client_no_context_takeover: we honour it even if the answer omits it.
        (WSDeflateConfig(client_no_context_takeover=True), PMD, (False, True, 15, 15)),
        (WSDeflateConfig(server_no_context_takeover=True), f"{PMD}; server_no_context_takeover",
         (True, False, 15, 15)),
        (WSDeflateConfig(server_max_window_bits=12), f"{PMD}; server_max_window_bits=12",
         (False, False, 12, 15)),
        (WSDeflateConfig(server_max_window_bits=12), f"{PMD}; server_max_window_bits=9",
         (False, False, 9, 15)),
        # We offered a limit for our own window: it applies even if the answer omits it.
        (WSDeflateConfig(client_max_window_bits=11), PMD, (False, False, 15, 11)),
        (WSDeflateConfig(client_max_window_bits=11), f"{PMD}; client_max_window_bits=9",
         (False, False, 15, 9)),
        (WSDeflateConfig(), None, None),
    ],
)
def test_client_accepts(config, answer_header, expected):
    params = client(config, answer_header)
    if expected is None:
        assert params is None
        return
    assert params is not None
    assert (
        params.remote_no_context_takeover,
        params.local_no_context_takeover,
        params.remote_max_window_bits,
        params.local_max_window_bits,
    ) == expected


@pytest.mark.parametrize(
    "config, answer_header, match",
    [
        (WSDeflateConfig(), f"{PMD}; client_max_window_bits=10", "not in the offer"),
        (WSDeflateConfig(), f"{PMD}; client_max_window_bits", "invalid value"),
        (WSDeflateConfig.client(), f"{PMD}; client_max_window_bits=8", "not supported"),
        (WSDeflateConfig(client_max_window_bits=10), f"{PMD}; client_max_window_bits=12",
         "exceeds"),
        (WSDeflateConfig(server_no_context_takeover=True), PMD,
         "expected server_no_context_takeover"),
        (WSDeflateConfig(server_max_window_bits=10), PMD, "expected server_max_window_bits"),
        (WSDeflateConfig(server_max_window_bits=10), f"{PMD}; server_max_window_bits=11",
         "exceeds"),
        (WSDeflateConfig.client(), f"{PMD}; server_max_window_bits=7", "invalid value"),
        (WSDeflateConfig.client(), f"{PMD}; server_no_context_takeover=1", "takes no value"),
        (WSDeflateConfig.client(),
         f"{PMD}; server_no_context_takeover; server_no_context_takeover", "duplicate"),
        (WSDeflateConfig.client(), f"{PMD}; window=10", "unknown parameter"),
        (WSDeflateConfig.client(), f"{PMD}, {PMD}", "twice"),
        (WSDeflateConfig.client(), "x-webkit-deflate-frame", "not offered"),
        (WSDeflateConfig.client(), f"{PMD};;", "invalid Sec-WebSocket-Extensions"),
    ],
)
def test_client_refuses(config, answer_header, match):
    with pytest.raises(WSInvalidHeaderError, match=match) as info:
        client(config, answer_header)
    assert info.value.name == "Sec-WebSocket-Extensions"
    assert info.value.value == answer_header


@pytest.mark.parametrize(
    "params, kind",
    [
        ([("x", None)], "name"),
        ([("server_no_context_takeover", None)] * 2, "duplicate"),
        ([("server_max_window_bits", "16")], "value"),
        ([("client_max_window_bits", "10")], "negotiation"),
    ],
)
def test_negotiation_error_kinds(params, kind):
    """The drop-in maps ``kind`` onto websockets' exception types."""
    with pytest.raises(DeflateNegotiationError) as info:
        negotiate_deflate_response(WSDeflateConfig(), params)
    assert info.value.kind == kind
    assert info.value.name == params[0][0]


def test_offer_and_decline_are_the_same_rules():
    with pytest.raises(DeflateNegotiationError) as info:
        negotiate_deflate_offer(WSDeflateConfig(), [("server_max_window_bits", "8")])
    assert info.value.kind == "negotiation"
