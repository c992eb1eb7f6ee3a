#!/usr/bin/env python3
"""The pre-commit hook `seqgen` (.pre-commit-hooks.yaml): `seqgen new --check FILES` with the
project's own environment, whether or not it is active.

A commit from an IDE or a GUI runs hooks without the project's virtualenv on PATH, where a
`language: system` hook's `seqgen` is "not found". This script (standard library only, any
Python 3) finds a Python that has seqgen, first match wins:

1. `$SEQGEN_PYTHON` (a path to a python executable);
2. the active virtualenv, `$VIRTUAL_ENV`;
3. a virtualenv in the repository root: `.venv`, `venv` or `env`;
4. the Python running this script, if it has seqgen;
5. a `seqgen` executable on PATH.

and runs `python -m seqgen new --check FILES` there (the hook's exit code is seqgen's). It never
installs anything: the environment keeps its own torch (pre-commit would otherwise install a
multi-GB CUDA build for the hook).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

VENVS = (".venv", "venv", "env")
HAS_SEQGEN = "import importlib.util, sys; sys.exit(importlib.util.find_spec('seqgen') is None)"


def _python_in(venv: Path) -> Path | None:
    """The python executable of a virtualenv folder, if it has one."""
    for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
        if candidate.is_file():
            return candidate
    return None


def _candidates() -> list[str]:
    """Python executables to try, in order."""
    found: list[str] = []
    if os.environ.get("SEQGEN_PYTHON"):
        found.append(os.environ["SEQGEN_PYTHON"])
    venvs = [Path(os.environ["VIRTUAL_ENV"])] if os.environ.get("VIRTUAL_ENV") else []
    venvs += [Path.cwd() / name for name in VENVS]
    found += [str(p) for p in map(_python_in, venvs) if p is not None]
    found.append(sys.executable)
    return found


def _has_seqgen(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", HAS_SEQGEN], capture_output=True).returncode == 0
    except OSError:
        return False


def command(files: list[str]) -> list[str] | None:
    """The command that checks `files`, or None when no environment has seqgen."""
    args = ["new", "--check", *files]
    for python in _candidates():
        if _has_seqgen(python):
            return [python, "-m", "seqgen", *args]
    executable = shutil.which("seqgen")
    return [executable, *args] if executable is not None else None


def main(files: list[str]) -> int:
    """Run the check; say how to set the hook up when no environment has seqgen."""
    cmd = command(files)
    if cmd is None:
        print(
            "seqgen pre-commit hook: found no Python with seqgen installed (looked at "
            "$SEQGEN_PYTHON, $VIRTUAL_ENV, .venv, venv, env in the repository root, "
            f"{sys.executable} and PATH).\n"
            "  fix: install seqgen in the project's virtualenv (`.venv`: "
            "python -m pip install seqgen), or set SEQGEN_PYTHON to the python that has it",
            file=sys.stderr,
        )
        return 1
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
