"""CLI: files written, exit codes, messages without tracebacks, no torch for --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, seqgen_cli

from seqgen import __version__, api
from seqgen.cli import BUG_REPORT, main
from seqgen.errors import Exit, InternalError


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m seqgen ARGS`: a fresh interpreter (the entry point, or what it imports)."""
    return subprocess.run(
        [sys.executable, "-m", "seqgen", *args], capture_output=True, text=True, cwd=cwd
    )


seqgen = seqgen_cli  # `seqgen ARGS` in this process: exit codes and messages


def test_new_writes_module_and_test_next_to_spec(tmp_path: Path) -> None:
    spec = tmp_path / "cnn.seq"
    spec.write_bytes((EXAMPLES / "cnn.seq").read_bytes())
    result = CliRunner().invoke(main, ["new", str(spec)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cnn.py").is_file() and (tmp_path / "test_cnn.py").is_file()
    assert "nn.Linear(32 * 8 * 8, 128)" in result.output
    assert "(N, num_classes)" in result.output
    again = CliRunner().invoke(main, ["new", str(spec)])
    assert "unchanged" in again.output


@pytest.mark.slow
def test_new_with_output_and_tests_dirs_and_input_override(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "new",
            str(EXAMPLES / "cnn.seq"),
            "-o",
            str(tmp_path / "m"),
            "--tests-dir",
            str(tmp_path / "t"),
            "--input",
            "3x64x64",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "nn.Linear(32 * 16 * 16, 128)" in (tmp_path / "m" / "cnn.py").read_text()
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "t")],
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout


def test_version_and_module_entry_point() -> None:
    out = run("--version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom seqgen.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("NO-TORCH")


@pytest.mark.parametrize(
    "spec_text, message",
    [
        ("input 3x8x8\nconv2d 16 k=\n", "bad.seq:2:12: error: dangling '='"),
        ("input 3x8x8\nconv2d 4 kernal_size=3\n", "did you mean 'kernel_size'?"),
        ("input 8\nlstm 4\n", "lstm returns a tuple (output, state), so it needs take="),
        ("", "the spec is empty"),
    ],
)
def test_spec_errors_exit_1_without_traceback_and_write_nothing(
    tmp_path: Path, spec_text: str, message: str
) -> None:
    spec = tmp_path / "bad.seq"
    spec.write_text(spec_text)
    out = seqgen("new", "bad.seq", cwd=tmp_path)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.seq"]


def test_non_utf8_spec_is_named(tmp_path: Path) -> None:
    (tmp_path / "latin.seq").write_bytes(b"input 3\n\xff\n")
    out = seqgen("new", "latin.seq", cwd=tmp_path)
    assert out.returncode == 1 and "latin.seq:2: not valid UTF-8" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_spec_and_bad_usage_exit_codes(tmp_path: Path) -> None:
    assert seqgen("new", "nope.seq", cwd=tmp_path).returncode == 1
    assert seqgen("new", cwd=tmp_path).returncode == 2
    assert seqgen("new", "x.seq", "--device", "tpu", cwd=tmp_path).returncode == 2
    assert seqgen("frobnicate").returncode == 2


def test_one_bad_spec_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.seq").write_text("input 4\nlinear 2\n")
    (tmp_path / "bad.seq").write_text("input 4\nlinear\n")
    out = seqgen("new", "bad.seq", "good.seq", cwd=tmp_path)
    assert out.returncode == 1
    assert (tmp_path / "good.py").is_file() and not (tmp_path / "bad.py").exists()


def test_a_seqgen_bug_asks_for_a_report_and_exits_3(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An InternalError is told apart from a problem in the spec: its own exit code, and how
    to report it; the other specs of the run are still done."""
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path / "cache"))
    bug = InternalError("internal error: seqgen computes (N, 2) but torch gives (N, 3)")
    traced_spec = api.traced_spec

    def traced_spec_with_a_bug(spec_path: str, *args: object, **kwargs: object) -> object:
        if Path(spec_path).name == "bug.seq":
            raise bug
        return traced_spec(spec_path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "traced_spec", traced_spec_with_a_bug)
    monkeypatch.chdir(tmp_path)
    for name in ("bug", "good"):
        (tmp_path / f"{name}.seq").write_text("input 4\nlinear 2\n")
    for command in (
        ["new", "bug.seq", "good.seq"],
        ["check", "bug.seq", "good.seq"],
        ["summary", "bug.seq"],
    ):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == Exit.INTERNAL == 3, result.output
        assert "error: internal error: seqgen computes (N, 2)" in result.output
        assert result.output.count(BUG_REPORT) == 1, result.output
        assert "seqgen --version" in BUG_REPORT and "Traceback" not in result.output
    assert (tmp_path / "good.py").is_file() and not (tmp_path / "bug.py").exists()


def test_a_failed_invariant_in_load_is_a_bug(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(api, "parse_partial", lambda *args, **kwargs: (None, []))
    (tmp_path / "m.seq").write_text("input 4\nlinear 2\n")
    result = CliRunner().invoke(main, ["check", str(tmp_path / "m.seq")])
    assert result.exit_code == Exit.INTERNAL, result.output
    assert "gave neither a spec nor an error" in result.output and BUG_REPORT in result.output


def test_a_problem_in_a_spec_is_not_called_a_bug(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(tmp_path / "missing.seq")])
    assert result.exit_code == Exit.SPEC_ERROR == 1
    assert BUG_REPORT not in result.output


def test_hand_edited_output_is_not_clobbered(tmp_path: Path) -> None:
    spec = tmp_path / "m.seq"
    spec.write_text("input 4\nlinear 2\n")
    assert seqgen("new", "m.seq", cwd=tmp_path).returncode == 0
    module = tmp_path / "m.py"
    edited = module.read_text().replace("nn.Linear(4, 2)", "nn.Linear(4, 3)")
    module.write_text(edited)
    spec.write_text("input 4\nlinear 5\n")
    out = seqgen("new", "m.seq", cwd=tmp_path)
    assert out.returncode == 1 and "--force" in out.stderr
    assert module.read_text() == edited
    assert seqgen("new", "m.seq", "--force", cwd=tmp_path).returncode == 0
    assert "nn.Linear(4, 5)" in module.read_text()


def test_check_recognises_up_to_date_specs_without_torch(tmp_path: Path) -> None:
    spec = tmp_path / "m.seq"
    spec.write_text("model M(n=4)\ninput (n,)\nlinear 2\n")
    assert seqgen("new", "m.seq", cwd=tmp_path).returncode == 0
    code = (
        "import sys\nfrom seqgen.cli import main\n"
        "try:\n    main(['new', '--check', 'm.seq'])\nexcept SystemExit as e:\n"
        "    print('exit', e.code)\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "NO-TORCH" in out.stdout and "exit 1" not in out.stdout, out.stdout + out.stderr


def test_check_and_diff_report_stale_output_and_write_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "m.seq"
    spec.write_text("input 4\nlinear 2\n")
    assert seqgen("new", "m.seq", cwd=tmp_path).returncode == 0
    spec.write_text("input 4\nlinear 3\n")
    before = (tmp_path / "m.py").read_text()
    check = seqgen("new", "--check", "m.seq", cwd=tmp_path)
    assert check.returncode == 1 and "would change" in check.stdout and "m.py" in check.stdout
    diff = seqgen("new", "--diff", "m.seq", cwd=tmp_path)
    assert diff.returncode == 1
    assert (
        "-            nn.Linear(4, 2)," in diff.stdout
        and "+            nn.Linear(4, 3)," in diff.stdout
    )
    assert (tmp_path / "m.py").read_text() == before
    fresh = seqgen("new", "--check", "new.seq", cwd=tmp_path)
    assert fresh.returncode == 1  # missing spec


def test_init_writes_starters_that_generate(tmp_path: Path) -> None:
    from seqgen.lang.starters import KINDS

    assert {"resnet", "lstm", "transformer"} <= set(KINDS)
    for kind in KINDS:
        assert seqgen("init", f"s_{kind}", "--kind", kind, cwd=tmp_path).returncode == 0
    assert seqgen("init", "s_mlp", cwd=tmp_path).returncode == 1  # never overwrites
    out = seqgen("new", "s_*.seq", "-q", cwd=tmp_path)  # a quoted glob is expanded by seqgen
    assert out.returncode == 0, out.stderr
    assert {p.name for p in tmp_path.glob("test_s_*.py")} == {f"test_s_{k}.py" for k in KINDS}
    check = seqgen("new", "--check", cwd=tmp_path)  # no argument: every spec of the project
    assert check.returncode == 0 and check.stdout == (
        f"seqgen: {len(KINDS)} specs checked, every output up to date\n"
    )


def test_custom_templates(tmp_path: Path) -> None:
    from seqgen.project.templates import default_templates_dir

    custom = tmp_path / "tpl"
    custom.mkdir()
    for t in default_templates_dir().glob("*.jinja"):
        text = t.read_text()
        if t.name == "model.py.jinja":
            text = text.replace("import torch\n", "import torch  # custom template\n", 1)
        (custom / t.name).write_text(text)
    (tmp_path / "m.seq").write_text("input 4\nlinear 2\n")
    out = seqgen("new", "m.seq", "--templates", "tpl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "# custom template" in (tmp_path / "m.py").read_text()
