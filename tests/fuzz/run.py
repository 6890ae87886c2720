"""Run one fuzz target under atheris (libFuzzer), or replay inputs without it.

    python tests/fuzz/run.py TARGET [libFuzzer options...]
    python tests/fuzz/run.py frames -runs=1000000            # N executions
    python tests/fuzz/run.py url -max_total_time=60          # S seconds
    python tests/fuzz/run.py frames --replay FILE_OR_DIR...  # no atheris needed

The seed corpus tests/fuzz/corpus/TARGET is read-only: new inputs go to a work corpus,
tests/fuzz/work/TARGET (git-ignored), and crashes to tests/fuzz/crashes/ unless -artifact_prefix
is given. Targets: frames, request, response, url, connect, socks (see targets.py).
``-runs N`` / ``-max_total_time S`` (with a space) are accepted as well as libFuzzer's ``=``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

# Inputs longer than this are truncated by libFuzzer; frames needs room for frames over the
# 2 KiB initial read buffer and 16-bit lengths.
MAX_LEN = {"frames": 4096, "request": 2048, "response": 2048, "url": 512, "connect": 1024,
           "socks": 512}


def _normalise(args: List[str]) -> List[str]:
    """Accept ``-runs N`` as well as ``-runs=N``."""
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and "=" not in a and a.lstrip("-") in (
                "runs", "max_total_time", "rss_limit_mb", "timeout", "max_len", "jobs",
                "workers", "seed", "print_final_stats") and i + 1 < len(args):
            out.append(f"-{a.lstrip('-')}={args[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(2)
    name = sys.argv[1]
    rest = sys.argv[2:]
    if rest[:1] == ["--replay"]:
        from tests.fuzz.targets import TARGETS

        target = TARGETS[name]
        files = []
        for arg in rest[1:]:
            p = Path(arg)
            files.extend(sorted(p.iterdir()) if p.is_dir() else [p])
        for f in files:
            target(f.read_bytes())
        print(f"{name}: {len(files)} inputs replayed, no failure")
        return

    import atheris  # type: ignore[import-untyped]

    # Coverage feedback comes from femtows's Python modules, python-socks, the targets and the
    # reference model; the harness's plumbing (fake transport, feeding, wire parsing) is left
    # uninstrumented: it would only slow every execution down. (The Cython core itself is not
    # instrumented: that needs clang's -fsanitize=fuzzer-no-link; the model mirrors its
    # branches, which gives the fuzzer the same signal.)
    # femtows must not be imported before this block, or it would not be instrumented.
    with atheris.instrument_imports(include=["femtows", "python_socks", "tests.fuzz.targets"]):
        from tests.fuzz.targets import TARGETS
    from tests.fuzz import harness

    for func in (harness.reference, harness.utf8_step, harness.compare):
        atheris.instrument_func(func)
    target = TARGETS[name]
    corpus = HERE / "corpus" / name
    work = HERE / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    opts = _normalise(rest)
    if not any(o.startswith("-max_len=") for o in opts):
        opts.append(f"-max_len={MAX_LEN.get(name, 4096)}")
    if not any(o.startswith("-artifact_prefix=") for o in opts):
        opts.append(f"-artifact_prefix={crashes}/{name}-")
    if not any(o.startswith("-rss_limit_mb=") for o in opts):
        opts.append("-rss_limit_mb=1024")
    if not any(o.startswith("-timeout=") for o in opts):
        opts.append("-timeout=10")  # seconds per input: a hang is reported as a crash
    dirs = [a for a in opts if not a.startswith("-")]
    opts = [a for a in opts if a.startswith("-")]
    if not dirs:
        dirs = [str(work), str(corpus)]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    # libFuzzer re-runs argv[0] through the shell for -merge=1 and -fork: make it a command
    # line that names the interpreter and the target.
    argv0 = f"{sys.executable} {Path(__file__).resolve()} {name}"
    atheris.Setup([argv0, *opts, *dirs], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
