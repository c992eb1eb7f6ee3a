"""The start-up torch check: one line instead of a traceback, torch never imported to decide."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from seqgen import torch_version as compat
from seqgen.cli import main
from seqgen.errors import TorchVersionError
from seqgen.torch_version import check_torch


@pytest.fixture
def torch_version(monkeypatch: pytest.MonkeyPatch):
    """Pretend the installed torch is a given version (None: not installed)."""
    monkeypatch.delenv(compat.ALLOW_NEWER, raising=False)

    def _set(version: str | None) -> None:
        monkeypatch.setattr(compat, "_installed_torch", lambda: version)

    return _set


def _message() -> str:
    with pytest.raises(TorchVersionError) as e:
        check_torch()
    return e.value.render()


@pytest.mark.parametrize(
    "version",
    [
        f"{compat.MIN_TORCH[0]}.{compat.MIN_TORCH[1]}.0",
        f"{compat.MAX_TORCH[0]}.{compat.MAX_TORCH[1]}.3+cu128",
        "2.13.0+cpu",
    ],
)
def test_verified_versions_pass(torch_version, version: str) -> None:
    torch_version(version)
    check_torch()


@pytest.mark.parametrize("version", ["2.4.1", "2.5.1+cu124", "1.13.1", "garbage"])
def test_older_torch_is_refused_in_one_line(torch_version, version: str) -> None:
    torch_version(version)
    lo = f"{compat.MIN_TORCH[0]}.{compat.MIN_TORCH[1]}"
    message = _message()
    assert message.startswith(
        f"error: seqgen needs torch {lo} or newer (found {version}); pip install 'torch>={lo},<"
    )
    assert "\n" not in message


def test_missing_torch_is_refused(torch_version) -> None:
    torch_version(None)
    assert "torch is not installed" in _message()


def test_newer_torch_is_refused_unless_allowed(torch_version, monkeypatch) -> None:
    newer = f"{compat.MAX_TORCH[0]}.{compat.MAX_TORCH[1] + 1}.0"
    torch_version(newer)
    message = _message()
    assert f"(found {newer})" in message and compat.ALLOW_NEWER in message
    assert "\n" not in message
    monkeypatch.setenv(compat.ALLOW_NEWER, "1")
    check_torch()


def test_cli_prints_the_line_once_and_exits_1(torch_version, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SEQGEN_NO_CACHE", "1")
    torch_version("2.4.1")
    specs = [str(p) for p in sorted(EXAMPLES.glob("*.seq"))]
    for command in (
        ["new", "--force", "-o", str(tmp_path), *specs],
        ["check", *specs],
        ["summary", specs[0]],
    ):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, result.output
        assert result.output.count("error: seqgen needs torch") == 1, result.output
        assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())
