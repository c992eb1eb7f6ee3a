"""The torch versions seqgen is verified on, checked before the first trace imports torch.

seqgen drives torch's private symbolic-shape API, which changes between minor releases, so
only the minors that `scripts/torch_versions.sh` verified are accepted (README: "Supported torch
versions"). The installed version is read from package metadata: importing torch takes seconds.
"""

from __future__ import annotations

import os
import re
from importlib import metadata

from seqgen.errors import TorchVersionError

MIN_TORCH = (2, 9)  # 2.8's torch.fx cannot import DenseNet (README: Supported torch versions)
MAX_TORCH = (2, 15)  # the newest minor verified; pyproject.toml pins torch below the next one
ALLOW_NEWER = "SEQGEN_ALLOW_NEWER_TORCH"


def _installed_torch() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def _minor(version: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def installed_minor() -> tuple[int, int] | None:
    """The installed torch's (major, minor), read from package metadata (no torch import);
    None when torch is not installed. Tests that hold only from some torch on ask it."""
    found = _installed_torch()
    return _minor(found) if found is not None else None


def _text(minor: tuple[int, int]) -> str:
    return f"{minor[0]}.{minor[1]}"


def check_torch() -> None:
    """Raise TorchVersionError unless the installed torch is a verified minor.

    A newer minor than verified is refused too, unless SEQGEN_ALLOW_NEWER_TORCH=1: torch's
    private API may have changed in a way that breaks the trace, or changes its output silently.
    """
    lo, hi = _text(MIN_TORCH), _text(MAX_TORCH)
    fix = f"pip install 'torch>={lo},<{MAX_TORCH[0]}.{MAX_TORCH[1] + 1}'"
    found = _installed_torch()
    if found is None:
        raise TorchVersionError(f"seqgen needs torch {lo} or newer (torch is not installed); {fix}")
    minor = _minor(found)
    if minor is None or minor < MIN_TORCH:
        raise TorchVersionError(f"seqgen needs torch {lo} or newer (found {found}); {fix}")
    if minor > MAX_TORCH and not os.environ.get(ALLOW_NEWER):
        raise TorchVersionError(
            f"seqgen is verified on torch {lo} to {hi} (found {found}); {fix}, "
            f"or set {ALLOW_NEWER}=1 to try it anyway"
        )
