"""Generated code is typed and lint-clean as written: mypy --strict, pyright strict and ruff.

Every generated example and golden case (model modules and test files), and the runtime helpers
copied into them (seqgen/runtime), are copied to a temporary folder, one root per case, and
checked there with no configuration but the one the README states: strict mode, and for a test
in another folder than its model, that folder on the checker's search path (the `sys.path` line
a loose test file runs is invisible to static tools). The tools come with the `[dev]` extra.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT
from golden_cases import LAYOUTS, PACKAGES, cases

from seqgen.ir import MERGE_CLASSES
from seqgen.render.imports import member_order
from seqgen.torch_version import installed_minor

# README "Typed, lint-clean output": ruff's default rules (0.17's, with RUF100) plus these; and
# the classic default set plus the same, which holds on any ruff
RUFF_RULES = "E4,E7,E9,F,I,B,UP"
RUFF_SELECTIONS = (["--extend-select", RUFF_RULES], ["--select", RUFF_RULES])
MERGES = set(MERGE_CLASSES.values())  # their shape comment follows their `)`


def _stage(root: Path) -> dict[str, list[str]]:
    """Copy every checked file under `root`, one folder per case; return each case's folders
    that its tests import models from (besides their own), relative to the case."""
    search: dict[str, list[str]] = {}
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("*.seq"))
    shutil.copytree(
        ROOT / "seqgen" / "runtime",
        root / "runtime",
        ignore=shutil.ignore_patterns("__init__.py", "__pycache__"),
    )
    for case in cases():
        folder = root / f"golden_{case.name}"
        shutil.copytree(case / "expected", folder)
        model_dir, tests_dir = LAYOUTS.get(case.name, (".", "."))
        if case.name in PACKAGES:  # as golden_cases.render_case makes them
            package = folder
            for part in Path(model_dir).parts:
                package = package / part
                (package / "__init__.py").touch()
        elif model_dir != tests_dir:
            search[folder.name] = [model_dir]
    return search


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("generated-lint")
    return root, _stage(root)


def _python_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}  # no "newer pyright" lookup
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_every_case_and_the_runtime_are_staged(staged: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = staged
    names = {p.name for p in root.iterdir()}
    assert names == {"examples", "runtime", *(f"golden_{c.name}" for c in cases())}
    assert len(list((root / "examples").glob("test_*.py"))) == len(list(EXAMPLES.glob("*.seq")))


@pytest.mark.slow
def test_generated_code_passes_mypy_strict(staged: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = staged
    # one run over every case (their module names differ), so torch's stubs are read once;
    # mypy puts the folder of each file it is given on its search path (a loose test finds its
    # model), `--config-file=` keeps it from reading any configuration
    out = _run(
        [
            "mypy",
            "--strict",
            "--config-file=",
            f"--cache-dir={root / '.mypy_cache'}",
            *_python_files(root),
        ],
        root,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    (installed_minor() or (0, 0)) < (2, 10),
    reason="torch 2.9's own nn.Module.__init__ is unannotated: pyright strict calls every "
    "super().__init__() partially unknown (README: Supported torch versions)",
)
def test_generated_code_passes_pyright_strict(staged: tuple[Path, dict[str, list[str]]]) -> None:
    root, search = staged
    config = {
        "typeCheckingMode": "strict",
        "executionEnvironments": [
            {"root": case, "extraPaths": [f"{case}/{d}" for d in dirs]}
            for case, dirs in search.items()
        ]
        + [{"root": p.name} for p in sorted(root.iterdir()) if p.is_dir() and p.name not in search],
    }
    (root / "pyrightconfig.json").write_text(json.dumps(config), encoding="utf-8")
    out = _run(
        ["pyright", "--outputjson", "--pythonpath", sys.executable, *_python_files(root)], root
    )
    report = json.loads(out.stdout)
    found = [
        f"{d['file']}:{d['range']['start']['line'] + 1}: {d['severity']}: {d['message']}"
        for d in report["generalDiagnostics"]
    ]
    assert found == [], "\n".join(found)
    assert report["summary"]["filesAnalyzed"] == len(_python_files(root))


@pytest.mark.parametrize("selection", RUFF_SELECTIONS, ids=lambda s: " ".join(s))
def test_generated_code_passes_ruff(
    staged: tuple[Path, dict[str, list[str]]], selection: list[str]
) -> None:
    root, _ = staged
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        # from the case's folder, as from a project root: isort sees a test's model package
        # (mypkg) as first-party there; --isolated reads no configuration
        out = _run(["ruff", "check", "--isolated", "--no-cache", *selection, "."], case)
        assert out.returncode == 0, f"{case.name}:\n{out.stdout}{out.stderr}"


def _split_for_comment(source: str) -> list[int]:
    """Lines with a trailing comment after a bracket that opened on an earlier line and holds
    no merge (a merge's shape comment goes after its `)`): there black split a call or a tuple
    only to make room for the comment."""
    opened: list[list[int]] = []  # [the line it opened on, whether a merge is inside]
    closed_here: list[list[int]] = []
    previous = ""
    bad = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NL, tokenize.NEWLINE):
            closed_here = []
        elif tok.type == tokenize.OP and tok.string in "([{":
            opened.append([tok.start[0], 0])
            if previous in MERGES:
                for bracket in opened:
                    bracket[1] = 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            closed_here.append(opened.pop())
        elif (
            tok.type == tokenize.COMMENT
            and tok.line[: tok.start[1]].strip()  # after code on its line
            and any(line < tok.start[0] and not merge for line, merge in closed_here)
        ):
            bad.append(tok.start[0])
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            previous = tok.string
    return bad


def test_no_call_is_split_for_its_comment(staged: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = staged
    found = {
        path: lines
        for path in _python_files(root)
        if (lines := _split_for_comment((root / path).read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_comment_check_sees_a_split() -> None:
    split = """
x = [
    nn.BatchNorm2d(
        out
    ),  # (N, out, H, W)
]
"""
    merges = """
x = [
    Concat(
        a,
        b,
    ),  # (N, 4)
    (
        "3",
        Multiply(
            a,
        ),
    ),  # (N, 4)
    (batch, 4),  # line 3: nn.Linear(2, 4)
]
"""
    assert _split_for_comment(split) == [5]
    assert _split_for_comment(merges) == []


def test_imported_names_are_in_the_order_ruff_sorts_them(tmp_path: Path) -> None:
    names = ["Stage10", "ResNet", "Stage2", "CNN", "block_b", "SE", "Block", "VGG16", "A", "a1"]
    ordered = member_order(names)
    assert ordered[:4] == ["CNN", "SE", "VGG16", "A"]  # constants first, then classes
    (tmp_path / "m.py").write_text(f"from pkg import {', '.join(ordered)}\n", encoding="utf-8")
    out = _run(
        [
            "ruff",
            "check",
            "--isolated",
            "--no-cache",
            "--select",
            "I",
            "--line-length",
            "200",
            "m.py",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stdout
