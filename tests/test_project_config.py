"""A real project's configuration: [tool.seqgen] defaults, the project's specs found without
arguments, outputs that ignore comments and spacing, and the pre-commit hook's runner."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT, run_generated_tests, seqgen_cli

from seqgen.errors import ConfigError
from seqgen.lang.canonical import canonical_spec
from seqgen.lang.starters import KINDS
from seqgen.project.config import load_config
from seqgen.project.discover import expand_specs

seqgen = seqgen_cli  # `seqgen ARGS` in cwd, in this process

MLP = "model MLP(n=4)\ninput (n,)\nlinear 8\nrelu\nlinear 2\n"
CONFIG = """[project]
name = "proj"

[tool.seqgen]
specs = ["models"]
out-dir = "src/mypkg/models"
tests-dir = "tests"
package-root = "src"

[tool.pytest.ini_options]
pythonpath = ["src"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A src-layout project whose specs live in models/ (one in a sub-folder), configured by
    [tool.seqgen]; a stray spec outside models/ and one in a virtualenv are not the project's."""
    root = tmp_path / "proj"
    (root / "models" / "vision").mkdir(parents=True)
    (root / "models" / "mlp.seq").write_text(MLP)
    (root / "models" / "vision" / "cnn.seq").write_text(
        "model CNN(num_classes=3)\ninput 1x8x8\nconv2d 4 3\nflatten\nlinear num_classes\n"
    )
    (root / "scratch.seq").write_text("input 4\nlinear\n")  # broken, and outside `specs`
    (root / ".venv").mkdir()
    (root / ".venv" / "pyvenv.cfg").write_text("")
    (root / "pyproject.toml").write_text(CONFIG)
    return root


def header_layout(path: Path) -> dict[str, str]:
    line = next(x for x in path.read_text().splitlines() if x.startswith("# seqgen-layout: "))
    layout: dict[str, str] = json.loads(line.split(": ", 1)[1])
    return layout


def test_new_specs_follow_the_project_defaults(project: Path) -> None:
    out = seqgen("new", "-q", cwd=project)  # no argument: the specs below `specs`
    assert out.returncode == 0, out.stderr
    models = project / "src" / "mypkg" / "models"
    assert (models / "mlp.py").is_file() and (models / "vision" / "cnn.py").is_file()
    # no __init__.py anywhere: the package is named from package-root; a sub-folder is kept
    tests = sorted(p.name for p in (project / "tests").rglob("*.py"))
    assert tests == ["test_mypkg_models_mlp.py", "test_mypkg_models_vision_cnn.py"]
    test = (project / "tests" / "test_mypkg_models_mlp.py").read_text()
    assert "from mypkg.models.mlp import MLP" in test and "sys.path" not in test
    assert header_layout(models / "mlp.py") == {
        "module": "mlp",
        "out": "src/mypkg/models",
        "spec": "models/mlp.seq",
        "test": "test_mypkg_models_mlp",
        "tests": "tests",
    }
    assert not (project / "scratch.py").exists()  # outside `specs`: not the project's spec
    check = seqgen("new", "--check", cwd=project)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().splitlines() == ["seqgen: 2 specs checked, every output up to date"]


@pytest.mark.slow
def test_generated_tests_import_through_package_root(project: Path) -> None:
    assert seqgen("new", "-q", "models", cwd=project).returncode == 0
    assert run_generated_tests(project / "tests", cwd=project).passed >= 12


def test_a_recorded_layout_wins_and_a_renamed_spec_follows_the_default(project: Path) -> None:
    assert seqgen("new", "-q", "models/mlp.seq", "-o", "elsewhere", cwd=project).returncode == 0
    (project / "pyproject.toml").write_text(CONFIG.replace("tests-dir", "# tests-dir"))
    assert seqgen("new", "-q", "models/mlp.seq", cwd=project).returncode == 0
    assert header_layout(project / "elsewhere" / "mlp.py")["out"] == "elsewhere"
    assert not (project / "src" / "mypkg" / "models" / "mlp.py").exists()
    (project / "models" / "mlp.seq").rename(project / "models" / "mlp2.seq")
    out = seqgen("new", "-q", "models/mlp2.seq", cwd=project)
    assert out.returncode == 0
    # renamed: a new spec, placed by the defaults (tests-dir now unset: with the model)
    assert (project / "src" / "mypkg" / "models" / "test_mlp2.py").is_file()
    assert "elsewhere/mlp.py: its spec models/mlp.seq no longer exists" in out.stderr


def test_folder_arguments_and_no_arguments_for_check_and_summary(project: Path) -> None:
    assert expand_specs(("models",)) != []  # relative to the cwd, which the CLI sets below
    check = seqgen("check", "-q", "models", cwd=project)
    assert check.returncode == 0, check.stderr
    summary = seqgen("summary", "--format", "json", cwd=project)
    assert summary.returncode == 0, summary.stderr
    assert [s["model"] for s in json.loads(summary.stdout)] == ["MLP", "CNN"]
    one = seqgen("summary", "models/vision", cwd=project)
    assert one.returncode == 0 and "CNN: input (N, 1, 8, 8)" in one.stdout
    broken = seqgen("check", "-q", ".", cwd=project)  # a folder: every spec below it
    assert broken.returncode == 1 and "scratch.seq:2" in broken.stderr
    assert "No such file" not in broken.stderr and ".venv" not in broken.stderr
    empty = project / "empty"
    empty.mkdir()
    assert seqgen("new", "--check", "empty", cwd=project).returncode == 2


def test_without_specs_folders_the_whole_project_is_searched(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    for folder in ("a", "b/c", ".hidden", "build", "venv"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "m.seq").write_text(MLP)
    (tmp_path / "venv" / "pyvenv.cfg").write_text("")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path / "a")  # from a sub-folder: the project root's specs
        found = sorted(Path(os.path.relpath(p, tmp_path)).as_posix() for p in expand_specs(()))
    assert found == ["a/m.seq", "b/c/m.seq"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('outdir = "x"', "unknown key 'outdir' in [tool.seqgen] of "),
        ("tests-dir = 3", "key 'tests-dir' in "),
        ('specs = "models"', "key 'specs' in "),
    ],
)
def test_bad_config_is_a_located_error(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = 'p'\n\n[tool.seqgen]\n{table}\n")
    (tmp_path / "m.seq").write_text(MLP)
    for command in (["new", "m.seq"], ["new", "--check"]):
        out = seqgen(*command, cwd=tmp_path)
        assert out.returncode == 1, out.stderr
        assert message in out.stderr and "pyproject.toml:5:1: error:" in out.stderr
        assert "Traceback" not in out.stderr
    if table.startswith("outdir"):
        assert "hint: did you mean 'out-dir'?" in seqgen("new", "m.seq", cwd=tmp_path).stderr
    assert not (tmp_path / "m.py").exists()


def test_load_config_reads_paths_from_the_root(project: Path) -> None:
    config = load_config(project)
    assert config.specs == ((project / "models").resolve(),)
    assert config.package_root == (project / "src").resolve()
    assert load_config(project / "models").out_dir is None  # no pyproject.toml there
    (project / "pyproject.toml").write_text(
        '[tool.black]\nspecs = 3\n[tool.seqgen]\nout_dir = "gen"  # as out-dir\n'
    )
    assert load_config(project).out_dir == (project / "gen").resolve()
    (project / "pyproject.toml").write_text("[tool.black]\nspecs = 3\n[tool.seqgen]\nspecs = 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(project)
    assert e.value.location is not None and e.value.location.line == 4  # in [tool.seqgen]


def test_comments_and_spacing_do_not_change_outputs(tmp_path: Path) -> None:
    spec = tmp_path / "m.seq"
    spec.write_text("# an MLP\n" + MLP)
    assert seqgen("new", "-q", "m.seq", cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.py")}
    edited = "# an MLP, edited\n" + MLP.replace("linear 8", "linear   8    # wider?") + "# end\n"
    spec.write_text(edited.replace("model MLP(n=4)", "model MLP( n = 4 )"))
    check = seqgen("new", "--check", "m.seq", cwd=tmp_path)
    assert check.returncode == 0, check.stdout
    assert seqgen("new", "--force", "-q", "m.seq", cwd=tmp_path).returncode == 0
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.py")} == before  # headers too
    # what the spec means changes the outputs, and --check names the command that fixes it
    spec.write_text(edited.replace("linear   8", "linear   9"))
    stale = seqgen("new", "--check", "m.seq", cwd=tmp_path)
    assert stale.returncode == 1
    assert "would change m.py" in stale.stdout
    assert "to update them, run: seqgen new m.seq" in stale.stdout
    # a line inserted above the layers moves the spec lines the outputs cite: a real change
    spec.write_text("# one more line\n" + edited)
    moved = seqgen("new", "--check", "m.seq", cwd=tmp_path)
    assert moved.returncode == 1 and "would change test_m.py" in moved.stdout


def test_canonical_form_keeps_the_spacing_the_parser_reads() -> None:
    assert canonical_spec("linear a -1\n") != canonical_spec("linear a - 1\n")
    assert canonical_spec("linear(10)\n") != canonical_spec("linear (10)\n")
    assert canonical_spec("linear 10\n") == canonical_spec("linear  10   # ten\n\n")
    assert canonical_spec("a:\n    b\n") != canonical_spec("a:\n  b\n")  # indentation is syntax


def test_check_prints_the_fix_for_edited_files(tmp_path: Path) -> None:
    (tmp_path / "m.seq").write_text(MLP)
    assert seqgen("new", "-q", "m.seq", cwd=tmp_path).returncode == 0
    with (tmp_path / "m.py").open("a") as f:
        f.write("# hand edit\n")
    out = seqgen("new", "--check", "m.seq", cwd=tmp_path)
    assert out.returncode == 1
    assert "to update them, run: seqgen new --force m.seq" in out.stdout


def test_help_points_to_the_spec_language() -> None:
    out = seqgen("--help")
    assert out.returncode == 0 and '"The spec language"' in out.stdout
    assert "## The spec language" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("mlp", "cnn", "cnn1d")])
@pytest.mark.slow
def test_new_starters_generate_and_pass_their_tests(tmp_path: Path, kind: str) -> None:
    assert seqgen("init", f"s_{kind}", "--kind", kind, cwd=tmp_path).returncode == 0
    out = seqgen("new", "-q", f"s_{kind}.seq", cwd=tmp_path)
    assert out.returncode == 0 and out.stderr == "", out.stderr  # no warnings either
    assert run_generated_tests(tmp_path / f"test_s_{kind}.py").passed >= 6


# ------------------------------------------------------------------ the pre-commit hook


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pre_commit_seqgen", ROOT / "scripts" / "pre_commit_seqgen.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hook_finds_the_project_virtualenv_when_it_is_not_active(tmp_path: Path) -> None:
    (tmp_path / "m.seq").write_text(MLP)
    assert seqgen("new", "-q", "m.seq", cwd=tmp_path).returncode == 0
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\necho venv-python >&2\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "SEQGEN_PYTHON")}
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = "/nonexistent"  # no `seqgen` on PATH, as in an IDE's commit
    hook = [sys.executable, str(ROOT / "scripts" / "pre_commit_seqgen.py"), "m.seq", "m.py"]
    out = subprocess.run(hook, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "venv-python" in out.stderr and "every output up to date" in out.stdout


def test_hook_without_seqgen_says_how_to_set_it_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = _hook()
    monkeypatch.setattr(hook, "_has_seqgen", lambda python: False)
    monkeypatch.setattr(hook.shutil, "which", lambda name: None)
    assert hook.main(["m.seq"]) == 1
    err = capsys.readouterr().err
    assert "found no Python with seqgen" in err and "SEQGEN_PYTHON" in err


def test_hook_definition_runs_the_script() -> None:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "entry: scripts/pre_commit_seqgen.py" in text and "language: script" in text
    assert os.access(ROOT / "scripts" / "pre_commit_seqgen.py", os.X_OK)
