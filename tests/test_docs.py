"""The documentation cannot rot: every code block in docs/ and README.md is checked.

- A complete program (one that calls ``asyncio.run`` or has a ``__main__`` guard) is never
  written inline in a page: pages include it from examples/ with ``--8<-- "examples/..."``
  (pymdownx.snippets), and tests/test_examples.py runs every example. The exception is a block
  marked ``<!-- docs-test: echo-client -->`` or ``<!-- docs-test: echo-server -->`` (README.md's
  examples), which is extracted here and run against an echo server, or as an echo server that
  a client talks to.
- Every other Python block must at least compile (top-level ``await`` allowed: they are
  fragments of coroutines).
- Every included file exists, and an included example is one that tests/test_examples.py runs.
- Every public name of ``femtows`` has an API reference entry (``::: femtows.NAME``).
- docs/nginx.md shows exactly the nginx configuration that tests/test_nginx.py runs.

``mkdocs build --strict`` (scripts/test) checks the links, anchors, nav and references.
"""

from __future__ import annotations

import ast
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import femtows

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("**/*.md")) + [REPO / "README.md"]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```",
                   re.M | re.S)
INCLUDE = re.compile(r'^ *--8<-- "(?P<path>[^":]+)(?::[^"]*)?"', re.M)
MARK = re.compile(r"<!-- docs-test: (?P<kind>echo-client|echo-server) -->\s*$")


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, body, line) of every fenced block of a page."""
    text = page.read_text()
    return [(m["lang"], m["body"], text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text)]


def is_program(body: str) -> bool:
    return "asyncio.run(" in body or "__name__ == \"__main__\"" in body


def marked_programs(page: Path, kind: str = "") -> list[str]:
    """The blocks preceded by a docs-test marker (of ``kind``, when given)."""
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        mark = MARK.search(text[:m.start()].rstrip() + "\n")
        if mark is not None and kind in ("", mark["kind"]):
            found.append(m["body"])
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_compile_and_programs_are_included(page: Path) -> None:
    marked = marked_programs(page)
    for lang, body, line in blocks(page):
        if lang not in ("python", "py", "pycon"):
            continue
        if INCLUDE.search(body):
            continue  # checked by test_includes
        where = f"{page.relative_to(REPO)}:{line}"
        if is_program(body):
            assert body in marked, (
                f"{where}: a complete program written inline; put it in examples/ (tested by "
                "tests/test_examples.py) and include it with --8<--"
            )
        compile(body, where, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_includes_exist_and_examples_are_run() -> None:
    tested = (REPO / "tests" / "test_examples.py").read_text()
    included = set()
    for page in PAGES:
        for match in INCLUDE.finditer(page.read_text()):
            path = match["path"]
            included.add(path)
            assert (REPO / path).is_file(), f"{page.relative_to(REPO)} includes missing {path}"
            if path.startswith("examples/") and path.endswith(".py"):
                assert Path(path).name in tested, f"{path} is shown in the docs but never run"
    assert included, "no page includes anything: the pattern is wrong"


def test_readme_example_runs_against_an_echo_server() -> None:
    programs = marked_programs(REPO / "README.md", "echo-client")
    assert len(programs) == 1
    server = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "echo_server.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("LISTENING "), line
        port = int(line.split()[1])
        program = programs[0]
        assert "ws://127.0.0.1:9001" in program
        program = program.replace("ws://127.0.0.1:9001", f"ws://127.0.0.1:{port}")
        proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "Echo reply: Hello world"
    finally:
        server.kill()
        server.wait(60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_readme_server_example_echoes() -> None:
    programs = marked_programs(REPO / "README.md", "echo-server")
    assert len(programs) == 1
    program = programs[0]
    assert '"localhost", 8765' in program
    port = free_port()
    program = program.replace('"localhost", 8765', f'"127.0.0.1", {port}')
    server = subprocess.Popen([sys.executable, "-c", program], stderr=subprocess.PIPE, text=True)
    try:
        client = textwrap.dedent(f"""
            import time
            from femtows.websockets.sync.client import connect
            deadline = time.monotonic() + 30
            while True:  # until the server listens (bounded); connect() fails fast until then
                try:
                    websocket = connect("ws://127.0.0.1:{port}", open_timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            with websocket:
                websocket.send("hello")
                print(websocket.recv(timeout=10))
        """)
        proc = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "hello"
    finally:
        server.kill()
        server.wait(60)
        assert server.stderr is not None
        server.stderr.close()


def test_every_public_name_has_a_reference_entry() -> None:
    text = "\n".join(page.read_text() for page in DOCS.glob("**/*.md"))
    documented = set(re.findall(r"^::: femtows\.(\w+)", text, re.M))
    missing = sorted(set(femtows.__all__) - documented)
    assert not missing, f"no '::: femtows.NAME' entry in docs/ for {missing}"


def test_nginx_page_shows_the_tested_config() -> None:
    page = (DOCS / "nginx.md").read_text()
    assert '--8<-- "scripts/nginx/femtows.conf"' in page
    run = (REPO / "scripts" / "nginx" / "run.py").read_text()
    assert 'SITE_CONF = HERE / "femtows.conf"' in run
