"""The femtows version, read by the build (pyproject: dynamic version)."""

__version__ = "0.1.0"
