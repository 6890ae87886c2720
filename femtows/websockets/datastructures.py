"""HTTP headers: :class:`Headers`, :class:`MultipleValuesError`, ``HeadersLike``.

Twins of ``websockets.datastructures`` (17.4). :class:`Headers` is a case-insensitive multidict
that keeps the original names and order: ``headers[name]`` returns the single value (KeyError if
none, :exc:`MultipleValuesError` if several), ``headers[name] = value`` *adds* a value,
``get_all`` returns every value and ``raw_items`` every ``(name, value)`` pair as received.
Values must not contain control characters (CR/LF injection is refused with
:exc:`~femtows.websockets.exceptions.InvalidHeaderValue`); non-ASCII values are carried as
ISO-8859-1 text.
"""

from __future__ import annotations

import re
from typing import (
    Any,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Protocol,
    Tuple,
    Union,
    cast,
)

from .exceptions import InvalidHeaderValue

__all__ = ["Headers", "HeadersLike", "MultipleValuesError"]


class MultipleValuesError(LookupError):
    """Raised by ``headers[name]`` when the header has several values; use ``get_all``."""

    def __str__(self) -> str:
        # Like KeyError: a single argument is shown with its repr.
        if len(self.args) == 1:
            return repr(self.args[0])
        return super().__str__()


# HTAB, SP, VCHAR and obs-text: what a header value may contain (RFC 9110 §5.5).
_VALID_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class Headers(MutableMapping[str, str]):
    """Case-insensitive HTTP headers that keep repeated names and the original order.

    Accepts what :class:`dict` accepts (a mapping, an iterable of pairs, another
    :class:`Headers`) plus keyword arguments. Equality ignores the case of names and the order
    of different names. ``str()`` is the serialized header block (``"Name: value\\r\\n"`` lines
    and a final ``"\\r\\n"``).
    """

    __slots__ = ("_by_name", "_pairs")

    def __init__(self, *args: HeadersLike, **kwargs: str) -> None:
        self._by_name: dict[str, list[str]] = {}
        self._pairs: list[tuple[str, str]] = []
        self.update(*args, **kwargs)

    def __str__(self) -> str:
        lines = [f"{name}: {value}\r\n" for name, value in self._pairs]
        lines.append("\r\n")
        return "".join(lines)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs!r})"

    def copy(self) -> Headers:
        """Return a shallow copy."""
        clone = type(self)()
        clone._by_name = {name: list(values) for name, values in self._by_name.items()}
        clone._pairs = list(self._pairs)
        return clone

    def serialize(self) -> bytes:
        """Return the header block as bytes (ISO-8859-1, so parsed values round-trip)."""
        return str(self).encode("iso-8859-1")

    # Mapping protocol

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __getitem__(self, key: str) -> str:
        values = self._by_name[key.lower()]
        if len(values) > 1:
            raise MultipleValuesError(key)
        return values[0]

    def __setitem__(self, key: str, value: str) -> None:
        if not _VALID_VALUE.fullmatch(str(value)):
            raise InvalidHeaderValue(key, value)
        self.set_insecure(key, value)

    def __delitem__(self, key: str) -> None:
        lowered = key.lower()
        del self._by_name[lowered]
        self._pairs = [pair for pair in self._pairs if pair[0].lower() != lowered]

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._by_name == other._by_name

    def clear(self) -> None:
        """Remove every header."""
        self._by_name = {}
        self._pairs = []

    def update(self, *args: HeadersLike, **kwargs: str) -> None:
        """Add headers from a mapping, pairs, another :class:`Headers`, or keywords.

        Values are added, not replaced (``headers[name] = value`` semantics).
        """
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 argument, got {len(args)}")
        for source in args:
            if isinstance(source, Headers):
                pairs: Iterable[tuple[str, str]] = list(source.raw_items())
            elif isinstance(source, Mapping) or hasattr(source, "keys"):
                mapping = cast(SupportsKeysAndGetItem, source)
                pairs = [(name, mapping[name]) for name in mapping.keys()]
            else:
                pairs = source
            for name, value in pairs:
                self[name] = value
        for name, value in kwargs.items():
            self[name] = value

    # Multiple values

    def get_all(self, key: str) -> list[str]:
        """Return every value of header ``key`` (an empty list if absent)."""
        return self._by_name.get(key.lower(), [])

    def raw_items(self) -> Iterator[tuple[str, str]]:
        """Iterate over every ``(name, value)`` pair, with the original names and order."""
        return iter(self._pairs)

    def set_insecure(self, key: str, value: str) -> None:
        """Add a header without checking its value (for values already validated)."""
        self._by_name.setdefault(key.lower(), []).append(value)
        self._pairs.append((key, value))


class SupportsKeysAndGetItem(Protocol):
    """A dict-like object with ``keys()`` and ``__getitem__`` over ``str``."""

    def keys(self) -> Iterable[str]: ...

    def __getitem__(self, key: str) -> str: ...


HeadersLike = Union[Headers, Mapping[str, str], Iterable[Tuple[str, str]], SupportsKeysAndGetItem]
"""What is accepted where :class:`Headers` is expected."""
