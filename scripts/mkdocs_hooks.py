"""MkDocs hooks for the femtows site (mkdocs.yml: ``hooks:``).

The benchmark charts are written by ``bench/`` into ``bench/results/``; rather than keep copies
in ``docs/`` that would go stale, the site takes them from there at build time, under
``assets/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parent.parent

#: site path -> file in the repository
EXTERNAL_FILES = {
    "assets/bench-full.png": REPO / "bench" / "results" / "full.png",
    "assets/bench-transport.png": REPO / "bench" / "results" / "transport.png",
}


def on_files(files: Files, config: Any) -> Files:
    for src_uri, path in EXTERNAL_FILES.items():
        files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files
