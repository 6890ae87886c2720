"""Drop-in proof: every program in programs/ is written against websockets 17.4. Each runs
twice in a subprocess: as written (real websockets), and with its imports rewritten
``websockets`` → ``femtows.websockets`` and nothing else. The two runs must print the same
stdout and both exit with status 0.

In the femtows run ``sys.modules["websockets"]`` is poisoned, so nothing (the program or
femtows) can quietly use the real websockets. One normalisation is applied to the femtows
output: the module prefix ``femtows.websockets.`` becomes ``websockets.``, because tracebacks
and some log lines name exception classes with their module (``websockets.exceptions.
InvalidStatus`` there is ``femtows.websockets.exceptions.InvalidStatus`` here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.websockets.reference import require_reference

PROGRAMS = Path(__file__).parent / "programs"
# Programs that need the test certificate find it here (the rewritten copies run elsewhere).
ENV = dict(os.environ, WS_PROGRAM_CERTS=str(Path(__file__).parent.parent / "certs"))
TIMEOUT = 120
# Programs older websockets run otherwise (or not at all): compared with 17.4 only, femtows'
# run must still succeed.
NEEDS_REFERENCE = {
    "basic_auth",
    "handler_errors",
    "headers_hooks",
    "sync_handler_threads",
    "sync_legacy",
    "sync_reconnect",
    "sync_recv_timeout",
    "sync_route",
    "tls",
}

_FROM = re.compile(r"^(\s*)from websockets(?=[.\s])", re.MULTILINE)
_IMPORT_PLAIN = re.compile(r"^(\s*)import websockets(\s*(?:#.*)?)$", re.MULTILINE)
_IMPORT_DOTTED = re.compile(r"^(\s*)import websockets\.", re.MULTILINE)

# Runs a program with the real websockets made unimportable.
_POISONED_RUNNER = (
    "import runpy, sys; sys.modules['websockets'] = None; "
    "sys.argv = [sys.argv[1]]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def rewrite_imports(source: str) -> str:
    """Return ``source`` with its websockets imports pointing at femtows.websockets."""
    source = _FROM.sub(r"\1from femtows.websockets", source)
    source = _IMPORT_PLAIN.sub(r"\1import femtows.websockets as websockets\2", source)
    return _IMPORT_DOTTED.sub(r"\1import femtows.websockets.", source)


def test_rewrite_imports() -> None:
    source = (
        "import websockets\n"
        "import websockets.exceptions as wse\n"
        "from websockets.asyncio.server import serve\n"
        "    from websockets import connect  # indented\n"
        "import websocketsx\n"
        "x = 'websockets.server'\n"
    )
    assert rewrite_imports(source) == (
        "import femtows.websockets as websockets\n"
        "import femtows.websockets.exceptions as wse\n"
        "from femtows.websockets.asyncio.server import serve\n"
        "    from femtows.websockets import connect  # indented\n"
        "import websocketsx\n"
        "x = 'websockets.server'\n"
    )


def _programs() -> list[Path]:
    return sorted(PROGRAMS.glob("*.py"))


def test_there_are_enough_programs() -> None:
    names = {path.stem for path in _programs()}
    assert "seed_echo" in names
    assert len(names - {"seed_echo"}) >= 10


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT
    )


@pytest.mark.parametrize("program", _programs(), ids=lambda path: path.stem)
def test_program_prints_the_same_on_both(program: Path, tmp_path: Path) -> None:
    rewritten = tmp_path / program.name
    rewritten.write_text(rewrite_imports(program.read_text()))
    assert "from websockets" not in rewritten.read_text()
    ours = _run(["-c", _POISONED_RUNNER, str(rewritten)], tmp_path)
    assert ours.returncode == 0, f"femtows run failed:\n{ours.stdout}\n{ours.stderr}"
    if program.stem in NEEDS_REFERENCE:
        require_reference()  # femtows' run is checked; the comparison needs 17.4

    reference = _run([str(program)], tmp_path)
    assert reference.returncode == 0, f"reference run failed:\n{reference.stderr}"
    assert reference.stdout, "the program prints nothing: nothing to compare"
    assert ours.stdout.replace("femtows.websockets.", "websockets.") == reference.stdout
