"""Property tests of the frame parser (hypothesis), through the real protocol object.

Streams are fed to a real server- or client-side ``WSProtocol`` after a completed upgrade, cut
into reads at arbitrary points, with a fake transport and loop (tests/fuzz/harness.py):

- any sequence of valid frames (every opcode, fragmentation with control frames in between,
  both masking directions, payload sizes around the 125/126 and 65535/65536 length-encoding
  boundaries) is delivered as exactly those frames and payloads, PINGs are answered with the
  same payload, a final CLOSE is echoed;
- any stream with one violation after a valid prefix fails the connection with the close code
  RFC 6455 and docs/strictness.md require, delivers the prefix and nothing after it.

Both are also checked against the reference model the fuzz targets use, and the model's UTF-8
automaton against Python's decoder. Both run again with reads parsed the way
femtows.websockets.sync's thread in recv parses them (``_ext_feed_for_tests``).

Profiles: ``ci`` (default, bounded to well under a minute) and ``long`` (deeper):
``HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import (
    UPGRADE_REQUEST,
    UPGRADE_RESPONSE,
    UTF8_ACCEPT,
    UTF8_REJECT,
    Config,
    compare,
    encode_frame,
    reference,
    run_connection,
    utf8_step,
)

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
BOUNDARY_SIZES = [0, 1, 124, 125, 126, 127, 65535, 65536, 65537]
MAX_FRAME = 1 << 20
TOO_BIG_LIMIT = 65537  # max_frame_size for the 1009 case: every other generated frame fits


@dataclass
class F:
    """A frame to send and how to encode it."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    key: bytes = b"\x37\xfa\x21\x3d"

    def encode(self, masked: bool) -> bytes:
        return encode_frame(self.opcode, self.payload, fin=self.fin, masked=masked,
                            rsv=self.rsv, key=self.key)


keys = st.binary(min_size=4, max_size=4)
sizes = st.one_of(st.sampled_from(BOUNDARY_SIZES), st.integers(0, 300))
pieces = st.lists(st.one_of(st.integers(1, 8), st.integers(1, 80000)), max_size=12)


@st.composite
def binary_payloads(draw: st.DrawFn) -> bytes:
    size = draw(sizes)
    unit = draw(st.binary(min_size=1, max_size=16))
    return (unit * (size // len(unit) + 1))[:size]


@st.composite
def text_payloads(draw: st.DrawFn) -> bytes:
    """Valid UTF-8 of about a boundary size (multi-byte characters included)."""
    size = draw(sizes)
    unit = draw(st.text(min_size=1, max_size=8)).encode("utf-8", "surrogatepass")
    try:
        unit.decode("utf-8")
    except UnicodeDecodeError:  # lone surrogates are not UTF-8
        unit = b"x"
    body = unit * (size // len(unit))
    return body + b"a" * (size - len(body))


@st.composite
def control_frames(draw: st.DrawFn) -> F:
    op = draw(st.sampled_from([PING, PONG]))
    size = draw(st.sampled_from([0, 1, 124, 125]) | st.integers(0, 125))
    return F(op, draw(st.binary(min_size=size, max_size=size)), key=draw(keys))


@st.composite
def messages(draw: st.DrawFn) -> List[F]:
    """One data message, maybe fragmented (cut anywhere, even inside a UTF-8 character), with
    control frames between its fragments."""
    op = draw(st.sampled_from([TEXT, BINARY]))
    payload = draw(text_payloads() if op == TEXT else binary_payloads())
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
    frames: List[F] = []
    for i, part in enumerate(parts):
        if i and draw(st.booleans()):
            frames.append(draw(control_frames()))
        frames.append(F(op if i == 0 else CONT, part, fin=i == len(parts) - 1, key=draw(keys)))
    return frames


@st.composite
def valid_streams(draw: st.DrawFn) -> List[F]:
    frames: List[F] = []
    for item in draw(st.lists(st.one_of(messages(), control_frames().map(lambda f: [f])),
                              max_size=5)):
        frames.extend(item)
    if draw(st.booleans()):
        code = draw(st.sampled_from([1000, 1001, 1003, 1011, 3000, 4999]))
        reason = draw(st.text(max_size=20)).encode("utf-8", "surrogatepass")
        try:
            reason.decode("utf-8")
        except UnicodeDecodeError:
            reason = b""
        frames.append(F(CLOSE, code.to_bytes(2, "big") + reason[:123], key=draw(keys)))
    return frames


def expected_delivery(frames: List[F], auto_pong: bool) -> Tuple[list, List[bytes]]:
    delivered = []
    pongs = []
    for f in frames:
        if f.opcode == PING and auto_pong:
            pongs.append(f.payload)
            continue
        delivered.append((f.opcode, f.payload, f.fin, f.rsv))
        if f.opcode == CLOSE:
            break
    return delivered, pongs


@given(valid_streams(), pieces, st.booleans(), st.booleans())
def test_valid_frames_round_trip(frames, cut, is_client, auto_pong):
    """Valid frames cut at any points come out as the same frames, payloads and fin bits;
    PINGs are answered with their payload; a CLOSE is echoed with its code."""
    cfg = Config(is_client=is_client, auto_pong=auto_pong, max_frame_size=MAX_FRAME)
    stream = b"".join(f.encode(masked=not is_client) for f in frames)
    outcome = run_connection(cfg, stream, cut)
    want, pongs = expected_delivery(frames, auto_pong)
    assert outcome.listener.frames == want
    assert [f.payload for f in outcome.sent if f.opcode == PONG] == pongs
    closes = [f for f in outcome.sent if f.opcode == CLOSE]
    if frames and frames[-1].opcode == CLOSE:
        assert [c.payload for c in closes] == [frames[-1].payload[:2]]
    else:
        assert closes == []
    compare(outcome, reference(stream, cfg), cfg)
    # Messages reassemble to what was sent.
    data = [f for f in outcome.listener.frames if f[0] in (TEXT, BINARY, CONT)]
    assert b"".join(f[1] for f in data) == b"".join(
        f.payload for f in frames if f.opcode in (TEXT, BINARY, CONT))


@given(st.lists(st.one_of(control_frames(),
                         st.binary(max_size=200).map(lambda b: F(BINARY, b))),
                min_size=8, max_size=60),
       st.lists(st.tuples(st.integers(0, 59), st.integers(1, 13)), min_size=1, max_size=6),
       st.booleans())
def test_reads_ending_inside_a_header(frames, cuts, is_client):
    """Many small frames in reads that end inside a frame header: once the read buffer is
    three quarters full with only a partial header pending, get_buffer compacts it; every
    frame still comes out intact."""
    cfg = Config(is_client=is_client, max_frame_size=MAX_FRAME)
    encoded = [f.encode(masked=not is_client) for f in frames]
    starts = [sum(len(e) for e in encoded[:i]) for i in range(len(encoded))]
    head = len(UPGRADE_RESPONSE if is_client else UPGRADE_REQUEST)
    # Cut points inside headers (a header is 2-14 bytes; past its end is inside the payload).
    points = sorted({head + starts[i % len(starts)] + min(off, len(encoded[i % len(starts)]) - 1)
                     for i, off in cuts} - {head})
    sizes = [b - a for a, b in zip([0, *points], points)]
    outcome = run_connection(cfg, b"".join(encoded), sizes)
    want, pongs = expected_delivery(frames, cfg.auto_pong)
    assert outcome.listener.frames == want
    assert [f.payload for f in outcome.sent if f.opcode == PONG] == pongs


# ---------------------------------------------------------------------------------------------
# Invalid streams

BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x28\xa1",
            b"\x80", b"\xf8\x88\x80\x80\x80"]
BAD_CLOSE_CODES = st.one_of(st.integers(0, 999), st.sampled_from([1004, 1005, 1006]),
                            st.integers(1015, 2999), st.integers(5000, 65535))


@dataclass
class Violation:
    name: str
    data: bytes  # raw bytes of the offending frame(s)
    code: int
    needs_open: Optional[bool]  # the prefix must leave a message open (True) / closed (False)
    prefix_tail: List[F]  # frames that belong to the prefix (delivered before the violation)


VIOLATIONS = [
    "opcode", "rsv", "fragmented_control", "big_control", "close_code", "close_1byte",
    "close_reason", "text_utf8", "fragment_utf8", "truncated_utf8", "nonminimal16",
    "nonminimal64", "top_bit", "mask_direction", "orphan_continuation", "nested_message",
    "too_big",
]
# Examples per violation kind (the test runs once per kind).
PER_KIND = {"ci": 12, "long": 400}.get(os.environ.get("HYPOTHESIS_PROFILE", "ci"), 12)


@st.composite
def violations(draw: st.DrawFn, is_client: bool, kind: str) -> Violation:
    m = not is_client  # the right masking direction
    key = draw(keys)
    if kind == "opcode":
        op = draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]))
        return Violation(kind, encode_frame(op, b"x", masked=m, key=key), 1002, None, [])
    if kind == "rsv":
        op = draw(st.sampled_from([TEXT, BINARY, PING, PONG, CLOSE]))
        return Violation(kind, encode_frame(op, b"", masked=m, rsv=draw(st.integers(1, 7)),
                                            key=key), 1002, False, [])
    if kind == "fragmented_control":
        op = draw(st.sampled_from([PING, PONG, CLOSE]))
        return Violation(kind, encode_frame(op, b"", fin=False, masked=m, key=key), 1002, None,
                         [])
    if kind == "big_control":
        op = draw(st.sampled_from([PING, PONG, CLOSE]))
        size = draw(st.sampled_from([126, 127, 1000, 65536]))
        payload = (1000).to_bytes(2, "big") + b"r" * (size - 2)
        return Violation(kind, encode_frame(op, payload, masked=m, key=key), 1002, None, [])
    if kind == "close_code":
        code = draw(BAD_CLOSE_CODES)
        return Violation(kind, encode_frame(CLOSE, code.to_bytes(2, "big"), masked=m, key=key),
                         1002, None, [])
    if kind == "close_1byte":
        return Violation(kind, encode_frame(CLOSE, b"\x03", masked=m, key=key), 1002, None, [])
    if kind == "close_reason":
        bad = draw(st.sampled_from(BAD_UTF8))
        return Violation(kind, encode_frame(CLOSE, b"\x03\xe8ok" + bad, masked=m, key=key),
                         1007, None, [])
    if kind in ("text_utf8", "fragment_utf8", "truncated_utf8"):
        good = draw(st.text(max_size=10)).encode("utf-8", "surrogatepass")
        try:
            good.decode("utf-8")
        except UnicodeDecodeError:
            good = b"ok"
        if kind == "text_utf8":
            bad = good + draw(st.sampled_from(BAD_UTF8)) + good
            return Violation(kind, encode_frame(TEXT, bad, masked=m, key=key), 1007, False, [])
        if kind == "truncated_utf8":
            # The message ends inside a character.
            tail = draw(st.sampled_from([b"\xe2\x82", b"\xc3", b"\xf0\x9f\x98"]))
            return Violation(kind, encode_frame(TEXT, good + tail, masked=m, key=key), 1007,
                             False, [])
        # A character split over two fragments is valid; the bad byte is in the second one.
        first = F(TEXT, good + b"\xe2\x82", fin=False, key=key)
        bad = encode_frame(CONT, b"\xac" + draw(st.sampled_from(BAD_UTF8)), masked=m, key=key)
        return Violation(kind, bad, 1007, False, [first])
    if kind == "nonminimal16":
        n = draw(st.integers(0, 125))
        return Violation(kind, encode_frame(BINARY, b"n" * n, masked=m, key=key,
                                            length_bytes=2), 1002, False, [])
    if kind == "nonminimal64":
        n = draw(st.sampled_from([0, 1, 125, 126, 65535]))
        return Violation(kind, encode_frame(BINARY, b"n" * n, masked=m, key=key,
                                            length_bytes=8), 1002, False, [])
    if kind == "top_bit":
        length = draw(st.integers(1 << 63, (1 << 64) - 1))
        head = bytes([0x82, (0x80 if m else 0) | 127]) + length.to_bytes(8, "big")
        return Violation(kind, head + (key if m else b"") + b"x" * 10, 1002, False, [])
    if kind == "mask_direction":
        op = draw(st.sampled_from([TEXT, BINARY, PING, PONG, CLOSE]))
        return Violation(kind, encode_frame(op, b"", masked=not m, key=key), 1002, False, [])
    if kind == "orphan_continuation":
        return Violation(kind, encode_frame(CONT, b"c", masked=m, key=key), 1002, False, [])
    if kind == "nested_message":
        op = draw(st.sampled_from([TEXT, BINARY]))
        opener = F(BINARY, b"start", fin=False, key=key)
        return Violation(kind, encode_frame(op, b"again", masked=m, key=key), 1002, False,
                         [opener])
    assert kind == "too_big"
    size = TOO_BIG_LIMIT + draw(st.sampled_from([1, 2, 1000]))
    return Violation(kind, encode_frame(BINARY, b"b" * size, masked=m, key=key), 1009, False,
                     [])


@pytest.mark.parametrize("kind", VIOLATIONS)
@settings(max_examples=PER_KIND)
@given(data=st.data(), is_client=st.booleans(), cut=pieces, trailer_pong=st.booleans())
def test_invalid_stream_fails_with_the_required_code(kind, data, is_client, cut, trailer_pong):
    """A valid prefix, then one violation, then more valid frames: femtows delivers the
    prefix, sends CLOSE with the code RFC 6455 requires, and delivers nothing more."""
    v = data.draw(violations(is_client, kind))
    prefix: List[F] = []
    for item in data.draw(st.lists(messages(), max_size=3)):
        prefix.extend(item)
    if v.needs_open is None and data.draw(st.booleans()):
        # Control-frame violations are also checked in the middle of a fragmented message.
        prefix.append(F(TEXT, b"open", fin=False))
    prefix.extend(v.prefix_tail)
    trailer = [F(PONG, b"after")] if trailer_pong else [F(TEXT, b"after"), F(CLOSE, b"\x03\xe8")]
    m = not is_client
    stream = (b"".join(f.encode(masked=m) for f in prefix) + v.data
              + b"".join(f.encode(masked=m) for f in trailer))
    cfg = Config(is_client=is_client, max_frame_size=TOO_BIG_LIMIT if v.code == 1009
                 else MAX_FRAME)
    outcome = run_connection(cfg, stream, cut)
    want, pongs = expected_delivery(prefix, cfg.auto_pong)
    assert outcome.listener.frames == want, v.name
    closes = [f for f in outcome.sent if f.opcode == CLOSE]
    assert len(closes) == 1, v.name
    assert int.from_bytes(closes[0].payload[:2], "big") == v.code, v.name
    assert outcome.sent[-1].opcode == CLOSE  # nothing after it
    compare(outcome, reference(stream, cfg), cfg)


# ---------------------------------------------------------------------------------------------
# Reads by the threading API's thread in recv (client side)

ext_flags = st.lists(st.booleans(), min_size=1, max_size=6)


@given(valid_streams(), pieces, ext_flags, st.booleans(), st.booleans())
def test_valid_frames_through_the_reading_thread(frames, cut, ext, is_client, auto_pong):
    """As test_valid_frames_round_trip, with some reads parsed the way
    femtows.websockets.sync's thread in recv parses them (whole data frames only, everything
    else left for the loop): the same frames, PONGs and CLOSE."""
    cfg = Config(is_client=is_client, auto_pong=auto_pong, max_frame_size=MAX_FRAME)
    stream = b"".join(f.encode(masked=not is_client) for f in frames)
    outcome = run_connection(cfg, stream, cut, ext=ext)
    want, pongs = expected_delivery(frames, auto_pong)
    assert outcome.listener.frames == want
    assert [f.payload for f in outcome.sent if f.opcode == PONG] == pongs
    compare(outcome, reference(stream, cfg), cfg)


@pytest.mark.parametrize("kind", VIOLATIONS)
@settings(max_examples=PER_KIND)
@given(data=st.data(), cut=pieces, ext=ext_flags, is_client=st.booleans(),
       validate_utf8=st.booleans())
def test_invalid_stream_through_the_reading_thread(kind, data, cut, ext, is_client,
                                                   validate_utf8):
    """As test_invalid_stream_fails_with_the_required_code, with reads parsed by the thread
    in recv: the prefix, then the CLOSE code RFC 6455 requires (sent by the loop, which the
    thread leaves every failure to), then nothing. Without the core's UTF-8 validation (the
    websockets layers validate TEXT themselves) invalid TEXT is delivered, by the loop."""
    v = data.draw(violations(is_client, kind))
    prefix: List[F] = []
    for item in data.draw(st.lists(messages(), max_size=3)):
        prefix.extend(item)
    prefix.extend(v.prefix_tail)
    trailer = [F(TEXT, b"after"), F(CLOSE, b"\x03\xe8")]
    m = not is_client
    stream = (b"".join(f.encode(masked=m) for f in prefix) + v.data
              + b"".join(f.encode(masked=m) for f in trailer))
    cfg = Config(is_client=is_client, validate_utf8=validate_utf8,
                 max_frame_size=TOO_BIG_LIMIT if v.code == 1009 else MAX_FRAME)
    if not validate_utf8 and v.code == 1007 and kind != "close_reason":
        outcome = run_connection(cfg, stream, cut, ext=ext)
        compare(outcome, reference(stream, cfg), cfg)
        return
    outcome = run_connection(cfg, stream, cut, ext=ext)
    want, _ = expected_delivery(prefix, cfg.auto_pong)
    assert outcome.listener.frames == want, v.name
    closes = [f for f in outcome.sent if f.opcode == CLOSE]
    assert len(closes) == 1, v.name
    assert int.from_bytes(closes[0].payload[:2], "big") == v.code, v.name
    compare(outcome, reference(stream, cfg), cfg)


# ---------------------------------------------------------------------------------------------
# The model's UTF-8 automaton


@given(st.binary(max_size=40) | st.text(max_size=20).map(
    lambda s: s.encode("utf-8", "surrogatepass")), st.integers(0, 40))
def test_reference_utf8_matches_python(data, cut):
    """utf8_step accepts exactly what Python decodes, whatever the split, and rejects a prefix
    as soon as no continuation can make it valid."""
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    state = utf8_step(utf8_step(UTF8_ACCEPT, data[:cut]), data[cut:])
    assert (state == UTF8_ACCEPT) == valid
    if state == UTF8_REJECT:
        # No byte sequence completes it.
        assert all(not _completes(data, tail) for tail in (b"\x80", b"\x80\x80", b"\x80\x80\x80",
                                                           b"\xbf", b"\xa0\x80", b"\x90\x80\x80"))


def _completes(prefix: bytes, tail: bytes) -> bool:
    try:
        (prefix + tail).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
