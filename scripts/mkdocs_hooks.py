"""MkDocs hooks for the femtows site (mkdocs.yml: ``hooks:``).

The compiled core is built with Cython's ``embedsignature``, so each of its docstrings starts
with a Cython signature line (``WSTransport.send(self, WSMsgType msg_type, ...)``) for
``help()``; the reference shows the typed signature from ``core.pyi`` already, so the hook
drops that first line from the generated pages.

The benchmark charts are written by ``bench/`` into ``bench/results/``; rather than keep copies
in ``docs/`` that would go stale, the site takes them from there at build time, under
``assets/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parent.parent

# A paragraph that is only "Class.method(self, ...)" or "Class.method(self, ...) -> type".
_CYTHON_SIGNATURE = re.compile(r"<p>[A-Z]\w*\.\w+\(self\b[^<]*</p>\s*")

#: site path -> file in the repository
EXTERNAL_FILES = {
    "assets/bench-full.png": REPO / "bench" / "results" / "full.png",
    "assets/bench-transport.png": REPO / "bench" / "results" / "transport.png",
}


def on_files(files: Files, config: Any) -> Files:
    for src_uri, path in EXTERNAL_FILES.items():
        files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    if "doc-object" not in html:  # not a page with mkdocstrings output
        return html
    return _CYTHON_SIGNATURE.sub("", html)
