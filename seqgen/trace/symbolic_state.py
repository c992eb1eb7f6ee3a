"""Saving and restoring what a ShapeEnv has decided (with symbolic.py, the only user of torch's
private symbolic-shape API): a user's class that fixes a size to its sample value while traced
symbolically is traced again at the sample, and the sizes it fixed must be free again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seqgen.trace.symbolic import Session


def checkpoint(session: Session) -> Callable[[], None]:
    """A function that puts the session's ShapeEnv back as it is now: its replacements,
    guards, ranges and the like (dicts, lists and sets, one level deep)."""
    env = session.env
    saved: dict[str, Any] = {
        key: {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
        if isinstance(value, dict)
        else type(value)(value)
        for key, value in vars(env).items()
        if isinstance(value, (dict, list, set))
    }

    def restore() -> None:
        vars(env).update(saved)
        env._update_version_counter()  # its caches answered from the state being undone

    return restore
