"""Write the seed corpora in tests/fuzz/corpus/ (deterministic; re-run after changing it).

    python tests/fuzz/make_seeds.py

Seeds are small valid and near-valid inputs for each target, laid out as the target decodes
them (see targets.py): they give the fuzzer the structure it cannot guess (a correct
Sec-WebSocket-Accept, frame headers, SOCKS replies).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.fuzz.harness import (  # noqa: E402
    ACCEPT,
    UPGRADE_REQUEST,
    UPGRADE_RESPONSE,
    encode_frame,
)


def frame_seeds() -> List[bytes]:
    def both(frames: List[Tuple[int, bytes, bool, int]], flags: int = 0, param: int = 0,
             seed: int = 0, rep: int = 0) -> List[bytes]:
        out = []
        for client in (0, 1):
            stream = b"".join(
                encode_frame(op, payload, fin=fin, masked=not client, rsv=rsv)
                for op, payload, fin, rsv in frames)
            out.append(bytes([flags | client, param]) + seed.to_bytes(2, "big") + bytes([rep])
                       + stream)
        return out

    close = (1000).to_bytes(2, "big") + b"bye"
    seeds = []
    seeds += both([(1, b"hello", True, 0), (2, b"\x00\x01", True, 0), (8, close, True, 0)])
    seeds += both([(1, "héllo ✓".encode(), False, 0), (9, b"ping", True, 0),
                   (0, " wörld".encode(), True, 0), (10, b"pong", True, 0)], seed=7)
    seeds += both([(2, bytes(range(256)) * 3, True, 0)], seed=3)  # 16-bit length
    seeds += both([(2, b"a" * 126, False, 0), (0, b"b" * 125, True, 0)], seed=11)
    seeds += both([(1, b"x", True, 4)], flags=4)  # RSV1 allowed
    seeds += both([(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", True, 0)])
    seeds += both([(9, b"p" * 125, True, 0), (8, b"", True, 0)], flags=8)
    seeds += both([(2, b"z" * 300, True, 0)], flags=0xC0, param=200)  # over max_frame_size
    seeds += both([(2, b"m", True, 0), (2, b"n", True, 0), (2, b"o", True, 0)], flags=16,
                  param=1)  # the listener raises on frame 1
    seeds += both([(8, (1002).to_bytes(2, "big"), True, 0)])
    seeds += both([(8, b"\x03", True, 0)])
    # Repeated: many frames, buffer compaction; a 16-bit length filled by the repetitions.
    seeds += both([(2, b"r" * 700, True, 0), (9, b"", True, 0)], seed=5, rep=7)
    seeds.append(b"\0\0\0\3\7" + encode_frame(2, b"L" * 600)[:8] + b"L" * 500)
    seeds.append(b"\x40\0\0\3\5" + encode_frame(2, b"S" * 600)[:8] + b"S" * 500)  # 1009, skip
    # Non-minimal 16- and 64-bit lengths, a 64-bit length with the top bit set.
    seeds.append(b"\0\0\0\0\0" + encode_frame(2, b"abc", length_bytes=2))
    seeds.append(b"\0\0\0\0\0" + encode_frame(2, b"abc", length_bytes=8))
    seeds.append(b"\0\0\0\1\0" + bytes([0x82, 0xFF]) + b"\x80" + b"\0" * 7 + b"\x01\x02\x03\x04")
    seeds.append(b"\0\0\0\2\0" + encode_frame(2, b"q" * 70000)[:6000])  # 64-bit, incomplete
    return seeds


def request_seeds() -> List[bytes]:
    r = UPGRADE_REQUEST
    return [
        b"\0\0" + r,
        b"\5\0" + r,
        b"\0\1" + r.replace(b"Host: example.com", b"Host: " + b"h" * 600),
        b"\0\0" + r.replace(b"GET", b"POST"),
        b"\0\0" + r.replace(b"Version: 13", b"Version: 8"),
        b"\0\0" + r.replace(b"HTTP/1.1", b"HTTP/1.0"),
        b"\0\0" + r.replace(b"HTTP/1.1", b"HTTP/2.0"),
        b"\0\0" + r.replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade"),
        b"\0\0" + r.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
        b"\0\0" + r.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n"),
        b"\0\0" + r.replace(b"\r\nHost", b"\r\n Host"),
        b"\0\0" + r.replace(b"dGhl", b"dGh!"),
        b"\0\0" + r.replace(b"\r\n\r\n", b"\r\nX-Caf\xc3\xa9: \xff\xfe\r\n\r\n"),
        b"\0\0" + r + encode_frame(1, b"hello"),
        b"\3\0" + r[:40],
    ]


def response_seeds() -> List[bytes]:
    r = UPGRADE_RESPONSE
    return [
        b"\0" + r,
        b"\7" + r,
        b"\0" + r + encode_frame(1, b"hi", masked=False),
        b"\0" + r.replace(b"101 Switching Protocols", b"101"),
        b"\0" + r.replace(ACCEPT.encode(), b"x" * 28),
        b"\0" + r.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        b"\0" + r.replace(b"Connection: Upgrade", b"Connection: keep-alive, upgrade"),
        b"\0" + r.replace(b"\r\n\r\n", b"\r\nContent-Length: 5\r\n\r\n"),
        b"\0" + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        b"\0" + b"HTTP/1.1 302 Found\r\nLocation: ws://other/\r\n\r\n",
        b"\0" + b"HTTP/1.0 101 OK\r\n\r\n",
        b"\4" + r[:50],
    ]


def url_seeds() -> List[bytes]:
    urls = [
        "ws://example.com/", "wss://example.com:8443/chat?room=1", "ws://user:pa%40ss@host:80/",
        "ws://[::1]:9000/x", "ws://[fe80::1%25eth0]/", "ws://héllo.example/päth?q=ü",
        "ws://127.0.0.1:65535", "ws://h:0/", "ws://h:/", "WS://Example.COM/A", "ws:/x",
        "ws://xn--bcher-kva.example/", "ws://a@b@c/", "ws://h/#frag", "ws://h/\t",
    ]
    proxies = ["http://proxy:3128", "https://u:p@proxy", "socks5://[::1]:1080",
               "socks4a://u@p", "socks5h://p:1080/x"]
    return [b"\0" + u.encode() for u in urls] + [b"\1" + u.encode() for u in proxies]


def connect_seeds() -> List[bytes]:
    return [
        b"\0\0HTTP/1.1 200 Connection established\r\n\r\n",
        b"\3\0HTTP/1.0 200 OK\r\nProxy-Agent: x\r\n\r\n",
        b"\0\0HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
        b"\0\0HTTP/1.1 200 OK\r\n\r\nextra",
        b"\0\1HTTP/1.1 200 OK\r\n",
        b"\5\0HTTP/1.1 502\r\n\r\n",
        b"\0\0SSH-2.0-OpenSSH\r\n\r\n",
    ]


def socks_seeds() -> List[bytes]:
    ok4 = b"\x7f\0\0\x01\x00\x50"
    return [
        b"\x00\x05\x00\x05\x00\x00\x01" + ok4,  # SOCKS5, no auth, IPv4 bound address
        b"\x04\x05\x00\x05\x00\x00\x03\x03abc\x00\x50",  # name target, name bound address
        b"\x08\x05\x00\x05\x00\x00\x04" + b"\0" * 15 + b"\x01\x00\x50",  # IPv6 bound address
        b"\x01\x05\x02\x01\x00\x05\x00\x00\x01" + ok4,  # username/password accepted
        b"\x01\x05\x02\x01\x01",  # username/password refused
        b"\x00\x05\xff",  # no acceptable method
        b"\x00\x05\x00\x05\x05\x00\x01" + ok4,  # connection refused
        b"\x02\x00\x5a\x00\x50\x7f\x00\x00\x01",  # SOCKS4 granted
        b"\x02\x00\x5b\x00\x00\x00\x00\x00\x00",  # SOCKS4 rejected
        b"\x07\x00\x5a\x00\x50\x00\x00\x00\x01",  # SOCKS4a granted
        b"\x00",
    ]


def main() -> None:
    seeds: Dict[str, List[bytes]] = {
        "frames": frame_seeds(),
        "request": request_seeds(),
        "response": response_seeds(),
        "url": url_seeds(),
        "connect": connect_seeds(),
        "socks": socks_seeds(),
    }
    for name, items in seeds.items():
        d = HERE / "corpus" / name
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            if not old.name.startswith("regress-"):  # inputs of fixed bugs stay
                old.unlink()
        for data in items:
            (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
        print(f"{name}: {len(items)} seeds")


if __name__ == "__main__":
    main()
