"""The websockets package the side-by-side tests compare with.

femtows.websockets mirrors websockets 17.4, which needs Python 3.11+; older Pythons get an
older websockets (pyproject's test extra) for the interop tests, and the tests that compare
behaviour detail for detail (texts, status lines, log records) with the reference need 17.4
itself: ``needs_reference`` marks them.
"""

from __future__ import annotations

import pytest
import websockets.version

#: (major, minor) of the installed websockets.
REFERENCE = tuple(int(part) for part in websockets.version.version.split(".")[:2])

#: Whether the installed websockets is the one femtows.websockets mirrors.
IS_REFERENCE = REFERENCE >= (17, 4)

REASON = f"compares with websockets 17.4 (Python 3.11+); installed: {websockets.version.version}"

needs_reference = pytest.mark.skipif(not IS_REFERENCE, reason=REASON)


def require_reference() -> None:
    """``needs_reference`` for one combination of stacked parameters, where no mark reaches."""
    if not IS_REFERENCE:
        pytest.skip(REASON)
