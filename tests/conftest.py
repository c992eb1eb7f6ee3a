"""Shared fixtures: paths of the committed examples."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "generated_examples"
EXAMPLE_SPECS = sorted(EXAMPLES.glob("*.seq"))


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write spec text to tmp_path/<name> and return its path as a string."""

    def _write(text: str, name: str = "model.seq") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return _write


@pytest.fixture(scope="session", autouse=True)
def _trace_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests (and the seqgen subprocesses they start) keep traces under a temporary folder."""
    import os

    old = os.environ.get("SEQGEN_CACHE_DIR")
    os.environ["SEQGEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("trace-cache"))
    yield
    if old is None:
        os.environ.pop("SEQGEN_CACHE_DIR", None)
    else:
        os.environ["SEQGEN_CACHE_DIR"] = old
