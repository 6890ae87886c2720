"""femtows.uvicorn without uvicorn installed: a clear ImportError naming the extra."""

from __future__ import annotations

import subprocess
import sys


def test_import_without_uvicorn_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"  # as if uvicorn were not installed
        "try:\n"
        "    import femtows.uvicorn\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout == "femtows.uvicorn needs uvicorn: pip install 'femtows[uvicorn]'\n"
