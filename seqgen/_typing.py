"""`functools.cache` for a function of one class, typed as the function it wraps.

mypy does not see that a `type[X]` is Hashable (python/mypy#11470), so it rejects every call
of a `functools.cache`-wrapped function with a class held in a variable. The cast below is the
only difference: at run time this is `functools.cache` itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar, cast

C = TypeVar("C", bound=type)
R = TypeVar("R")


def class_cache(fn: Callable[[C], R]) -> Callable[[C], R]:
    """Cache `fn` by its class argument (for as long as the process lives)."""
    return cast("Callable[[C], R]", functools.cache(fn))
