"""Optional packages that libraries look for at import, kept out where they go unused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def not_importable(*names: str) -> Iterator[None]:
    """Within the block, importing ``names`` fails as if they were not installed (unless
    something already imported them); afterwards they import as usual."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
