"""Generated files that fit a package: imports, test names, recorded layouts, strays."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqgen.cli import main
from seqgen.ir import GeneratedFile
from seqgen.project import header
from seqgen.project.layout import Layout, package_of, project_root
from seqgen.project.write import Pending, pending, write_files

CNN_A = "model CNN(num_classes=10)\ninput 3x16x16\nconv2d 8 3\nflatten\nlinear num_classes\n"
CNN_B = "model CNN(num_classes=5)\ninput 1x8x8\nconv2d 4 3\nflatten\nlinear num_classes\n"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def seqgen(*args: str, cwd: Path) -> Ran:
    """`seqgen ARGS` run in `cwd`, in this process (torch is imported once for all tests)."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, list(args))
    finally:
        os.chdir(old)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def pytest_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with two packages, each with its own `cnn.seq` (different models)."""
    root = tmp_path / "proj"
    for name, text in (("pkg_a", CNN_A), ("pkg_b", CNN_B)):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (root / name / "cnn.seq").write_text(text)
    (root / "pyproject.toml").write_text("[project]\nname = 'proj'\n")
    return root


def test_project_root_is_the_nearest_marker_else_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repo" / "a" / "b").mkdir(parents=True)
    (tmp_path / "repo" / ".git").write_text("gitdir: elsewhere\n")  # a worktree's .git is a file
    assert project_root(tmp_path / "repo" / "a" / "b") == ((tmp_path / "repo").resolve(), True)
    (tmp_path / "loose").mkdir()
    monkeypatch.chdir(tmp_path)
    assert project_root(tmp_path / "loose") == (tmp_path.resolve(), False)


def test_package_of_follows_the_init_chain(project: Path) -> None:
    (project / "pkg_a" / "models").mkdir()
    (project / "pkg_a" / "models" / "__init__.py").write_text("")
    assert package_of(project / "pkg_a" / "models") == ("pkg_a", "models")
    assert package_of(project) == ()


def test_two_packages_with_the_same_stem_are_both_tested(project: Path) -> None:
    out = seqgen("new", "-q", "pkg_a/cnn.seq", "pkg_b/cnn.seq", cwd=project)
    assert out.returncode == 0, out.stderr
    test_a = (project / "pkg_a" / "test_cnn.py").read_text()
    assert "from pkg_a.cnn import CNN\n" in test_a and "sys.path" not in test_a
    tests = pytest_in(project)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "8 passed" in tests.stdout, tests.stdout[-2000:]  # 4 per model, none shadowed


def test_a_shared_tests_dir_names_tests_after_the_package(project: Path) -> None:
    out = seqgen("new", "-q", "pkg_a/cnn.seq", "pkg_b/cnn.seq", "--tests-dir", "tests", cwd=project)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (project / "tests").iterdir()) == [
        "test_pkg_a_cnn.py",
        "test_pkg_b_cnn.py",
    ]
    tests = pytest_in(project, "tests")
    assert tests.returncode == 0 and "8 passed" in tests.stdout, tests.stdout[-3000:]


def test_loose_files_still_put_their_folder_on_sys_path(tmp_path: Path) -> None:
    (tmp_path / "m.seq").write_text("input 4\nlinear 2\n")
    assert seqgen("new", "-q", "m.seq", "--tests-dir", "t", cwd=tmp_path).returncode == 0
    text = (tmp_path / "t" / "test_m.py").read_text()
    assert 'sys.path.insert(0, str(Path(__file__).resolve().parent / ".."))' in text
    assert "from m import M  # noqa: E402" in text
    assert pytest_in(tmp_path, "t").returncode == 0


def test_outputs_on_one_path_are_a_usage_error_before_anything_is_written(project: Path) -> None:
    out = seqgen("new", "pkg_a/cnn.seq", "pkg_b/cnn.seq", "-o", "out", cwd=project)
    assert out.returncode == 2
    assert "out/cnn.py would be written for both pkg_a/cnn.seq and pkg_b/cnn.seq" in out.stderr
    assert not (project / "out").exists()
    (project / "x.seq").write_text("input 4\nlinear 2\n")
    (project / "test_x.seq").write_text("input 4\nlinear 3\n")
    out = seqgen("new", "x.seq", "test_x.seq", cwd=project)
    assert out.returncode == 2 and "test_x.py would be written for both" in out.stderr
    assert not (project / "x.py").exists()


def test_header_records_the_layout_and_the_command(project: Path) -> None:
    out = seqgen(
        "new",
        "-q",
        "pkg_a/cnn.seq",
        "-o",
        "src/models",
        "--tests-dir",
        "tests",
        "--input",
        "3x20x20",
        cwd=project,
    )
    assert out.returncode == 0, out.stderr
    text = (project / "src" / "models" / "cnn.py").read_text()
    lines = text.splitlines()
    assert lines[0] == "# Generated by seqgen 0.1.0 from pkg_a/cnn.seq. Do not edit by hand:"
    assert lines[1] == (
        "# change the spec and run `seqgen new pkg_a/cnn.seq -o src/models "
        "--tests-dir tests --input 3x20x20` in the project root."
    )
    layout = Layout.parse(lines[2].split(": ", 1)[1])
    assert layout == Layout("pkg_a/cnn.seq", "src/models", "tests", "cnn", "test_cnn", "3x20x20")
    assert str(project) not in text and str(project.parent) not in text


def test_header_is_read_back_as_written(tmp_path: Path) -> None:
    """The header contract in one module: what with_header writes, the readers get back."""
    layout = Layout("m.seq", ".", ".", "m", "test_m")
    body = '"""M."""\n\nimport torch\n'
    text = header.with_header(body, layout, "a" * 16, "b" * 16)
    assert text.startswith(header.GENERATED_PREFIX) and text.endswith(body)
    assert header.body_of(text) == body and header.body_intact(text)
    assert header.recorded_fingerprint(text) == {
        "spec": "a" * 16,
        "templates": "b" * 16,
        "body": header.fingerprint(body),
    }
    assert header.is_current(text, "a" * 16, "b" * 16)
    assert not header.is_current(text, "c" * 16, "b" * 16)
    edited = text.replace("import torch", "import torch  # mine")
    assert not header.body_intact(edited) and not header.is_current(edited, "a" * 16, "b" * 16)
    (tmp_path / "m.py").write_text(text)
    recorded = header.read_recorded(tmp_path / "m.py")
    assert recorded is not None and recorded.layout == layout
    (tmp_path / "other.py").write_text(body)
    assert header.read_recorded(tmp_path / "other.py") is None
    assert header.recorded_fingerprint(body) == {} and header.body_of(body) == body


def test_a_dry_run_lists_each_change_and_its_diff(tmp_path: Path) -> None:
    """write.pending: what --check and --diff print, computed without writing anything."""
    layout = Layout("m.seq", ".", ".", "m", "test_m")
    old, new = (header.with_header(f"x = {n}\n", layout, "s", "t") for n in (1, 2))
    write_files([GeneratedFile(str(tmp_path / "m.py"), old)])
    (tmp_path / "hand.py").write_text("x = 0\n")
    files = [
        GeneratedFile(str(tmp_path / "m.py"), new),
        GeneratedFile(str(tmp_path / "test_m.py"), new),
        GeneratedFile(str(tmp_path / "hand.py"), new),
    ]
    changes = pending(files, with_diff=True)
    assert [c.describe() for c in changes] == [
        f"would change {tmp_path / 'm.py'}",
        f"would create {tmp_path / 'test_m.py'}",
        f"would change {tmp_path / 'hand.py'} (not generated by seqgen)",
    ]
    assert "\n-x = 1\n" in changes[0].diff and changes[0].diff.endswith("\n+x = 2\n")
    assert pending(files[:1]) == [Pending(changes[0].status)]  # no diff unless asked
    assert (tmp_path / "m.py").read_text() == old and not (tmp_path / "test_m.py").exists()


def test_new_without_options_reuses_the_recorded_layout(project: Path) -> None:
    args = ["-o", "models", "--tests-dir", "tests", "--input", "3x20x20"]
    assert seqgen("new", "-q", "pkg_a/cnn.seq", *args, cwd=project).returncode == 0
    before = (project / "models" / "cnn.py").read_text()
    # from another directory, with no options: found by searching the project's headers
    check = seqgen("new", "--check", "cnn.seq", cwd=project / "pkg_a")
    assert check.returncode == 0, check.stdout + check.stderr
    spec = project / "pkg_a" / "cnn.seq"
    spec.write_text(spec.read_text().replace("conv2d 8 3", "conv2d 6 3"))
    assert seqgen("new", "--check", "cnn.seq", cwd=project / "pkg_a").returncode == 1
    out = seqgen("new", "-q", "pkg_a/cnn.seq", cwd=project)
    assert out.returncode == 0, out.stderr
    after = (project / "models" / "cnn.py").read_text()
    assert after != before and "nn.Conv2d(3, 6, 3)" in after
    assert "(N, 6, 18, 18)" in after  # --input 3x20x20 was kept
    assert not (project / "pkg_a" / "cnn.py").exists()
    assert sorted(p.name for p in (project / "tests").iterdir()) == ["test_cnn.py"]


def test_a_generated_file_as_argument_stands_for_its_spec(project: Path) -> None:
    assert seqgen("new", "-q", "pkg_a/cnn.seq", cwd=project).returncode == 0
    (project / "other.py").write_text("print('not generated')\n")
    ok = seqgen(
        "new",
        "--check",
        "pkg_a/cnn.py",
        "pkg_a/test_cnn.py",
        "other.py",
        "pkg_a/__init__.py",
        cwd=project,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    module = project / "pkg_a" / "cnn.py"
    module.write_text(module.read_text().replace("nn.Flatten(),", "nn.Flatten(),  # mine"))
    edited = seqgen("new", "--check", "pkg_a/cnn.py", cwd=project)
    assert edited.returncode == 1 and "(edited by hand)" in edited.stdout


def test_up_to_date_check_from_a_generated_file_needs_no_torch(project: Path) -> None:
    assert seqgen("new", "-q", "pkg_a/cnn.seq", cwd=project).returncode == 0
    code = (
        "import sys\nfrom seqgen.cli import main\n"
        "try:\n    main(['new', '--check', 'pkg_a/test_cnn.py', 'pkg_a/cnn.seq'])\n"
        "except SystemExit as e:\n    print('exit', e.code)\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project)
    assert "NO-TORCH" in out.stdout and "exit 1" not in out.stdout, out.stdout + out.stderr


def test_stray_generated_files_are_reported_and_pruned(project: Path) -> None:
    assert (
        seqgen(
            "new", "-q", "pkg_a/cnn.seq", "pkg_b/cnn.seq", "--tests-dir", "tests", cwd=project
        ).returncode
        == 0
    )
    (project / "pkg_b" / "cnn.seq").rename(project / "pkg_b" / "convnet.seq")
    out = seqgen("new", "-q", "pkg_b/convnet.seq", cwd=project)
    assert out.returncode == 0
    assert "pkg_b/cnn.py: its spec pkg_b/cnn.seq no longer exists" in out.stderr
    assert "tests/test_pkg_b_cnn.py: its spec pkg_b/cnn.seq no longer exists" in out.stderr
    assert "--prune removes it" in out.stderr
    assert seqgen("new", "--check", "pkg_b/convnet.seq", cwd=project).returncode == 1
    (project / "pkg_b" / "notes.py").write_text("# not generated\n")
    pruned = seqgen("new", "-q", "--prune", "pkg_b/convnet.seq", cwd=project)
    assert pruned.returncode == 0, pruned.stderr
    assert not (project / "pkg_b" / "cnn.py").exists()
    assert not (project / "tests" / "test_pkg_b_cnn.py").exists()
    assert (project / "tests" / "test_pkg_a_cnn.py").exists()  # its spec still exists
    assert (project / "pkg_b" / "notes.py").exists()
    assert seqgen("new", "--check", "pkg_b/convnet.seq", cwd=project).returncode == 0


def test_outputs_of_an_earlier_layout_are_strays_too(project: Path) -> None:
    assert seqgen("new", "-q", "pkg_a/cnn.seq", cwd=project).returncode == 0
    assert seqgen("new", "-q", "pkg_a/cnn.seq", "--tests-dir", "tests", cwd=project).returncode == 0
    out = seqgen("new", "-q", "pkg_a/cnn.seq", cwd=project)
    assert "pkg_a/test_cnn.py: pkg_a/cnn.seq now generates" in out.stderr


def test_an_edited_stray_is_kept_without_force(project: Path) -> None:
    assert seqgen("new", "-q", "pkg_a/cnn.seq", cwd=project).returncode == 0
    module = project / "pkg_a" / "cnn.py"
    module.write_text(module.read_text() + "# mine\n")
    (project / "pkg_a" / "cnn.seq").unlink()
    (project / "pkg_a" / "other.seq").write_text("input 4\nlinear 2\n")
    out = seqgen("new", "-q", "--prune", "pkg_a/other.seq", cwd=project)
    assert out.returncode == 1 and "edited by hand" in out.stderr and module.exists()
    assert not (project / "pkg_a" / "test_cnn.py").exists()
    assert seqgen("new", "-q", "--prune", "--force", "pkg_a/other.seq", cwd=project).returncode == 0
    assert not module.exists()


def test_a_file_generated_from_another_spec_is_not_overwritten(project: Path) -> None:
    assert seqgen("new", "-q", "pkg_a/cnn.seq", "-o", "out", cwd=project).returncode == 0
    out = seqgen("new", "-q", "pkg_b/cnn.seq", "-o", "out", cwd=project)
    assert out.returncode == 1 and "was generated from pkg_a/cnn.seq, another spec" in out.stderr
    assert "num_classes: int = 10" in (project / "out" / "cnn.py").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--check", "--diff"], "--check and --diff"),
        (["--check", "--force"], "--force writes files"),
        (["--diff", "--force"], "--force writes files"),
        (["--input", "3x8x8", "pkg_b/cnn.seq"], "--input overrides the input of one spec"),
    ],
)
def test_conflicting_options_are_usage_errors(project: Path, args: list[str], message: str) -> None:
    out = seqgen("new", "pkg_a/cnn.seq", *args, cwd=project)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (project / "pkg_a" / "cnn.py").exists()


def test_device_cpu_says_what_ran_in_one_line(project: Path) -> None:
    out = seqgen("new", "pkg_a/cnn.seq", "--device", "cpu", cwd=project)
    assert out.returncode == 0, out.stderr
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("--device cpu:")]
    assert "ran a (2, 3, 16, 16) sample" in line and "all 3 layer output shapes agree" in line


def test_a_copy_generated_in_another_project_is_no_stray(project: Path) -> None:
    # like tests/golden/*/expected: generated with its own root, then committed inside ours
    fixture = project / "fixtures" / "expected"
    fixture.mkdir(parents=True)
    (fixture / "m.seq").write_text("input 4\nlinear 2\n")
    (fixture / "pyproject.toml").write_text("")
    assert seqgen("new", "-q", "m.seq", cwd=fixture).returncode == 0
    (fixture / "m.seq").unlink()
    (fixture / "pyproject.toml").unlink()
    out = seqgen("new", "--check", "pkg_a/cnn.seq", "fixtures/expected/m.py", cwd=project)
    assert "fixtures" not in out.stderr and "fixtures" not in out.stdout
    assert seqgen("new", "-q", "--prune", "pkg_a/cnn.seq", cwd=project).returncode == 0
    assert (fixture / "m.py").exists()


def test_a_one_off_run_with_options_leaves_the_recorded_outputs_alone(project: Path) -> None:
    assert seqgen("new", "-q", "pkg_a/cnn.seq", cwd=project).returncode == 0
    out = seqgen("new", "-q", "--prune", "pkg_a/cnn.seq", "-o", "scratch", cwd=project)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert (project / "pkg_a" / "cnn.py").exists() and (project / "pkg_a" / "test_cnn.py").exists()
