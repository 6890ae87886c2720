"""Versions: femtows's own, and the websockets release whose API :mod:`femtows.websockets` mirrors.

``version`` / ``__version__`` / ``tag`` / ``commit`` are femtows's version (the package that is
actually running); ``websockets_api_version`` names the websockets release the API follows.
"""

from __future__ import annotations

from ..version import __version__ as _femtows_version

__all__ = ["tag", "version", "commit", "websockets_api_version"]

version = _femtows_version
"""femtows's version string."""

tag = version
"""Same as :data:`version` (websockets distinguishes release tags from dev builds)."""

commit = version
"""Same as :data:`version`."""

websockets_api_version = "17.4"
"""The websockets release whose asyncio API this package mirrors."""
