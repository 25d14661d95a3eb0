"""Small value classes for the per-line path: equality and a readable repr, no dataclass.

A dataclass's ``__init__`` is Python code that the ``dataclasses`` module writes at import
time, and it stays Python code when its module is compiled: about 0.3 µs for every object
made, and the per-line path makes several for every event (the line, its place in the chain,
the chain head, the encoded parcel, the hand-over item, the normalized result and its
source). A plain class's own ``__init__`` compiles like the rest of its module (0.08 µs).
Subclasses write that ``__init__`` and list their attributes twice, in ``__slots__`` (no
per-object dict in the source build) and in ``FIELDS`` (what equality and ``repr`` compare
and show; the compiled build keeps no ``__slots__`` in the class namespace).

Values compare equal when they are of the same class with equal fields, and are unhashable,
like the non-frozen dataclasses they replace.
"""

from __future__ import annotations

from typing import Any, ClassVar


class Value:  # noqa: PLW1641 (unhashable on purpose, as the comment below says)
    """Base of the per-line value classes: ``==`` and ``repr`` over ``FIELDS``."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.FIELDS])

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Value):
            return NotImplemented
        return self.values() == other.values()

    # Defining __eq__ leaves __hash__ None: unhashable unless a subclass defines its own.

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({shown})"
