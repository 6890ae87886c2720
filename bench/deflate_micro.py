"""Micro-benchmark of the permessage-deflate codecs, per message, with context takeover:

- femtows: the core's zlib z_streams driven from Cython (femtows/_core/pmd.pyx);
- zlib: Python's zlib module as websockets uses it (compressobj / decompressobj per connection,
  compress + flush(Z_SYNC_FLUSH), the 4-byte tail removed / re-added);
- zlib-ng / isal: the PyPI drop-ins for the zlib module (if installed).

Messages come from a seeded generator of market-data-like JSON (ticks and order-book snapshots,
256 B to 100 KiB). Every codec compresses the same messages and inflates its own output
(checked). Rounds are interleaved (A B C D A B C D ...) and the median per message is reported,
with the compressed size as a fraction of the original.

    python -m bench.deflate_micro [--rounds 7] [--seconds 0.3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import zlib
from typing import Any, Callable, Dict, List, Tuple

from femtows._core.pmd import PerMessageDeflate, zlib_version
from femtows.handshake import WSDeflateParams

SIZES = [256, 1024, 8192, 102400]
TAIL = b"\x00\x00\xff\xff"


def market_messages(target: int, count: int, seed: int = 7) -> List[bytes]:
    """``count`` JSON messages of about ``target`` bytes: ticks or order-book levels."""
    rng = random.Random(seed)
    symbols = ["EURUSD", "GBPUSD", "USDJPY", "BTCUSD", "ETHUSD", "AAPL", "MSFT", "ES_F"]
    out = []
    for i in range(count):
        msg: Dict[str, Any] = {"type": "book", "seq": 1_000_000 + i,
                               "sym": rng.choice(symbols), "ts": 1_700_000_000_000 + i * 37}
        levels: List[List[float]] = []
        size = len(json.dumps(msg)) + 12
        while size < target:
            price = round(rng.uniform(1.0, 200.0), rng.choice([2, 4, 5]))
            levels.append([price, round(rng.expovariate(0.01), 2), rng.randint(1, 40)])
            size += len(json.dumps(levels[-1], separators=(",", ":"))) + 1
        msg["levels"] = levels
        out.append(json.dumps(msg, separators=(",", ":")).encode()[:max(target, 64)])
    return out


Codec = Tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


def femtows_codec(bits: int, mem_level: int) -> Codec:
    params = WSDeflateParams(False, False, bits, bits, -1, mem_level)
    enc, dec = PerMessageDeflate(params), PerMessageDeflate(params)
    return enc.compress, dec.decompress


def module_codec(mod: Any, bits: int, mem_level: int, level: int = -1) -> Codec:
    comp = mod.compressobj(level, mod.DEFLATED, -bits, mem_level)
    decomp = mod.decompressobj(-bits)

    def compress(data: bytes) -> bytes:
        return (comp.compress(data) + comp.flush(mod.Z_SYNC_FLUSH))[:-4]

    def decompress(data: bytes) -> bytes:
        return decomp.decompress(data + TAIL, 0)

    return compress, decompress


def codecs(bits: int, mem_level: int) -> Dict[str, Callable[[], Codec]]:
    found: Dict[str, Callable[[], Codec]] = {
        "femtows": lambda: femtows_codec(bits, mem_level),
        "zlib": lambda: module_codec(zlib, bits, mem_level),
    }
    try:
        from zlib_ng import zlib_ng

        found["zlib-ng"] = lambda: module_codec(zlib_ng, bits, mem_level)
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        # ISA-L has levels 0-3 only (2 is its default): a faster, weaker compressor.
        found["isal"] = lambda: module_codec(isal_zlib, bits, mem_level, 2)
    except ImportError:
        pass
    return found


def run_round(make: Callable[[], Codec], messages: List[bytes], seconds: float
              ) -> Tuple[float, float, float]:
    """(compress us/msg, decompress us/msg, compressed/original) over ``seconds`` each."""
    compress, decompress = make()
    wire: List[bytes] = []
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or n < len(messages):
        wire.append(compress(messages[n % len(messages)]))
        n += 1
    c_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for i, data in enumerate(wire):
        out = decompress(data)
        if i < len(messages):
            assert out == messages[i], "round trip mismatch"
    d_us = (time.perf_counter() - start) / n * 1e6
    ratio = sum(map(len, wire[:len(messages)])) / sum(map(len, messages))
    return c_us, d_us, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--bits", type=int, default=12, help="window bits (websockets: 12)")
    parser.add_argument("--mem-level", type=int, default=5, help="memLevel (websockets: 5)")
    args = parser.parse_args()
    found = codecs(args.bits, args.mem_level)
    print(f"zlib linked by femtows: {zlib_version()}; zlib module: {zlib.ZLIB_RUNTIME_VERSION}; "
          f"window {args.bits} bits, memLevel {args.mem_level}, {args.rounds} interleaved "
          f"rounds")
    print(f"{'size':>7} {'codec':>8} {'compress us':>12} {'inflate us':>11} {'ratio':>6} "
          f"{'vs zlib (c/d)':>14}")
    for size in SIZES:
        messages = market_messages(size, 64 if size <= 8192 else 16)
        results: Dict[str, List[Tuple[float, float, float]]] = {name: [] for name in found}
        for _ in range(args.rounds):
            for name, make in found.items():
                results[name].append(run_round(make, messages, args.seconds))
        med = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                      rs[0][2]) for name, rs in results.items()}
        for name, (c, d, ratio) in med.items():
            zc, zd, _ = med["zlib"]
            print(f"{size:>7} {name:>8} {c:>12.2f} {d:>11.2f} {ratio:>6.3f} "
                  f"{zc / c:>6.2f}x/{zd / d:.2f}x")


if __name__ == "__main__":
    main()
