"""Section 4 of the trust issue: every problem at once, the right hints, and no noise.

Each test here failed before its fix: it reproduces what a PyTorch-fluent user saw.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import seqgen_cli

from seqgen.api import load, trace_spec
from seqgen.errors import SeqgenError, SpecErrors
from seqgen.lang.parser import parse
from seqgen.report.lint import lint


def check_in_a_subprocess(
    tmp_path: Path, text: str, *args: str, name: str = "m.seq"
) -> subprocess.CompletedProcess[str]:
    """`seqgen check` in a fresh interpreter: under pytest a warning that leaks from torch would
    be caught by pytest's warnings plugin, never printed."""
    spec = tmp_path / name
    spec.write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "seqgen", "check", "-q", *args, str(spec)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def error_of(tmp_path: Path, text: str) -> SeqgenError:
    spec = tmp_path / "m.seq"
    spec.write_text(text, encoding="utf-8")
    with pytest.raises(SeqgenError) as info:
        _, model = load(str(spec))
        trace_spec(model)
    return info.value


def warnings_of(text: str) -> list[str]:
    return [d.render() for d in lint(trace_spec(parse(text, "w.seq")))]


# ---------------------------------------------------------------- every error in one run


def test_three_typos_on_three_lines_are_three_errors(tmp_path: Path) -> None:
    (tmp_path / "m.seq").write_text(
        "input 3x8x8\nconv2dd 16 3\nrelu inplce=True\nlinear 10 = 3\n", encoding="utf-8"
    )
    out = seqgen_cli("check", "-q", "m.seq", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.count("error:") == 3, out.stderr
    assert "m.seq:2:1: error: unknown layer 'conv2dd'" in out.stderr
    assert "m.seq:3:6: error: relu has no argument 'inplce'" in out.stderr
    assert "m.seq:4:11: error: dangling '='" in out.stderr
    assert "Traceback" not in out.stderr


def test_binding_errors_of_every_layer_come_before_the_trace(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 3x8x8\nconv2d 4 kernal=3\nlinear 10\nmaxpool2d 2 strid=2\n")
    assert isinstance(e, SpecErrors) and len(e.errors) == 2
    assert [x.location.line for x in e.errors] == [2, 4]  # type: ignore[union-attr]


def test_parse_errors_are_collected_per_line() -> None:
    with pytest.raises(SpecErrors) as info:
        parse("input 3x8x8\nconv2d 4 3 k=\nrelu )\nlinear 10 **2\n", "t.seq")
    assert [e.location.line for e in info.value.errors] == [2, 3, 4]  # type: ignore[union-attr]


def test_a_broken_model_line_does_not_make_its_parameters_undefined() -> None:
    with pytest.raises(SeqgenError) as info:
        parse("model M(a=1, b=x)\ninput (a,)\nlinear b\n", "t.seq")
    assert not isinstance(info.value, SpecErrors)  # one error: the default, not `b` undefined
    assert "default of 'b'" in info.value.render()


def test_a_line_inside_repeat_is_reported_once(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 3x8x8\nrepeat 3:\n  conv2d 4 3 p=1 kernal=2\n")
    assert not isinstance(e, SpecErrors)


def lines_of(e: SeqgenError) -> list[int]:
    errors = e.errors if isinstance(e, SpecErrors) else (e,)
    return [x.location.line for x in errors if x.location is not None]


def test_a_pasted_mlp_reports_every_written_in_features_in_one_run(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 784\nlinear 784 256\nrelu\nlinear 256 128\nrelu\nlinear 128 10\n")
    assert lines_of(e) == [2, 4, 6]
    assert "did you mean `linear 128`?" in e.render()  # each line as it meant to be


def test_a_residual_mismatch_does_not_hide_a_later_concat_mismatch(tmp_path: Path) -> None:
    text = (
        "input 3x32x32\nconv2d 16 3 padding=1\nresidual:\n  conv2d 32 3 padding=1\n"
        "concat:\n  branch:\n    conv2d 8 3\n  branch:\n    conv2d 8 5\nflatten\nlinear 10\n"
    )
    e = error_of(tmp_path, text)
    assert lines_of(e) == [3, 5]
    assert "the body gives (N, 32, 32, 32)" in e.render()
    assert "branch 2 gives (N, 8, 28, 28)" in e.render()


def test_the_trace_continues_with_the_shape_the_merge_meant(tmp_path: Path) -> None:
    # after the residual, the body's 32 channels flow on: `conv2d 32 32 3` is the in_channels
    # habit at 32, and no error follows from the residual's own mismatch
    text = "input 3x8x8\nresidual:\n  conv2d 32 3 p=1\nconv2d 32 32 3\nflatten\nlinear 10\n"
    e = error_of(tmp_path, text)
    assert lines_of(e) == [2, 4]
    assert "seqgen infers in_channels (32 here)" in e.render()


def test_an_error_with_no_shape_to_continue_with_stops_there(tmp_path: Path) -> None:
    # conv2d on a rank-1 input has no output shape: the later habit cannot be checked, and
    # nothing is made up about it
    e = error_of(tmp_path, "input 16\nconv2d 8 3\nlinear 16 10\n")
    assert lines_of(e) == [2]


def test_errors_in_a_block_body_and_after_it_come_together(tmp_path: Path) -> None:
    text = "model M\ninput 3x8x8\nblock B(c):\n  conv2d 3 c 3 p=1\nB 8\nflatten\nlinear 512 10\n"
    e = error_of(tmp_path, text)
    assert lines_of(e) == [4, 7]
    assert "traced at its first use (line 5" in e.render()


def test_a_shape_error_before_a_parse_error_is_reported_with_it(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 3x32x32\nconv2d 3 16 3\nrelu(\nmaxpool2d 2 ,\n")
    assert lines_of(e) == [2, 3, 4]
    assert "seqgen infers in_channels (3 here)" in e.render()


# ---------------------------------------------------------------- right hints


def test_missing_kernel_size_hint_keeps_out_channels(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 3x8x8\nconv2d 16\n")
    assert "write `conv2d 16 KERNEL_SIZE` (or kernel_size=...)" in e.render()


def test_missing_argument_after_keywords_is_spelled_as_a_keyword(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 3x8x8\nconv2d k=3\n")
    assert "write `conv2d OUT_CHANNELS k=3`" in e.render()


@pytest.mark.parametrize("value, fix", [("true", "True"), ("false", "False"), ("none", "None")])
def test_lowercase_constant_suggests_python_spelling(tmp_path: Path, value: str, fix: str) -> None:
    e = error_of(tmp_path, f"input 3x8x8\nrelu inplace={value}\n")
    assert f"did you mean {fix}?" in e.render()
    assert "declare it" not in e.render()


def test_python_call_syntax_says_what_to_write(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 784\nLinear(784, 10)\n")
    text = e.render()
    assert "write `linear 10`: seqgen infers in_features" in text
    assert "empty()" not in text and "argument 'size'" not in text
    e = error_of(tmp_path, "input 3x8x8\nConv2d(3, 16, kernel_size=3, bias=False)\n")
    assert "write `conv2d 16 kernel_size=3 bias=False`" in e.render()


def test_annotated_parameter_is_accepted() -> None:
    spec = parse(
        "model Net(num_classes: int = 10, p: float = 1, act: str = 'relu')\n"
        "input 784\nlinear num_classes\n",
        "t.seq",
    )
    assert [(p.name, p.default) for p in spec.params] == [
        ("num_classes", 10),
        ("p", 1.0),
        ("act", "relu"),
    ]
    assert isinstance(spec.params[1].default, float)


@pytest.mark.parametrize(
    "line, message",
    [
        ("model Net(n: int = 'x')", "annotated int but its default 'x' is a str"),
        ("model Net(n: list = 3)", "annotated with 'list'"),
        ("model Net(n: int)", "write `n: int = VALUE`"),
    ],
)
def test_bad_annotations_are_precise(line: str, message: str) -> None:
    with pytest.raises(SeqgenError) as info:
        parse(f"{line}\ninput 4\nlinear 2\n", "t.seq")
    assert message in info.value.render()


def test_groups_error_names_the_numbers(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 3x8x8\nconv2d 16 k=3 g=5\n")
    text = e.render()
    assert "in_channels=3 is not divisible by groups=5" in text
    assert "in_channels (3) and out_channels (16): use one of 1" in text
    e = error_of(tmp_path, "input 4x8x8\nconv2d 6 k=3 g=4\n")
    assert "out_channels=6 is not divisible by groups=4" in e.render()
    assert "use one of 1, 2" in e.render()


# ---------------------------------------------------------------- warnings: codes, no noise


@pytest.mark.slow
def test_softmax_without_dim_is_one_located_warning_and_no_torch_warning(tmp_path: Path) -> None:
    out = check_in_a_subprocess(tmp_path, "input 10\nlinear 4\nsoftmax\nlinear 2\n")
    assert out.returncode == 0
    assert "UserWarning" not in out.stderr and "Implicit dimension" not in out.stderr
    assert "m.seq:3:1: warning: softmax has no `dim`" in out.stderr
    assert "[W006 softmax-without-dim]" in out.stderr


def test_softmax_without_dim_on_rank_3_names_the_batch() -> None:
    (w,) = [w for w in warnings_of("input 4x10\nsoftmax\nflatten\nlinear 2\n") if "W006" in w]
    assert "picks dim=0, the batch" in w and "write `softmax dim=1`" in w


def test_log_softmax_last_is_right_with_nll_loss() -> None:
    assert warnings_of("input 10\nlinear 4\nlogsoftmax dim=1\n") == []
    (w,) = warnings_of("input 10\nlinear 4\nsoftmax dim=1\n")
    assert "[W001 softmax-before-loss]" in w and "log_softmax and train with nn.NLLLoss" in w


def test_bottleneck_before_transposed_convolutions_is_fine() -> None:
    autoencoder = (
        "input 1x8x8\nconv2d 4 3 s=2\nconv2d 8 3\nrelu\nconvtranspose2d 4 3\nrelu\n"
        "convtranspose2d 1 3 s=2 output_padding=1\n"
    )
    assert warnings_of(autoencoder) == []


def test_bottleneck_warns_once_where_the_size_becomes_one() -> None:
    found = warnings_of("input 3x4x4\nmaxpool2d 4\nrelu\nconv2d 4 1\n")
    assert len(found) == 1 and "w.seq:2:1" in found[0] and "[W005 spatial-size-one]" in found[0]


@pytest.mark.parametrize(
    "comment",
    [
        "# seqgen: ignore[W001]",
        "# seqgen: ignore[softmax-before-loss]",
        "# seqgen: ignore",
        "#seqgen:ignore[W004, W001]",
    ],
)
def test_a_warning_is_silenced_per_line(comment: str) -> None:
    assert warnings_of(f"input 10\nlinear 4\nsoftmax dim=1  {comment}\n") == []


def test_ignore_names_only_its_own_line_and_code() -> None:
    found = warnings_of(
        "input 10\nlinear 4  # seqgen: ignore[W001]\nsoftmax dim=1  # seqgen: ignore[W004]\n"
    )
    assert len(found) == 1 and "W001" in found[0]


def test_unknown_ignore_code_is_reported() -> None:
    found = warnings_of("input 10\nlinear 4  # seqgen: ignore[W01]\n")
    assert (
        len(found) == 1
        and "unknown warning 'W01'" in found[0]
        and "did you mean 'W001'?" in found[0]
    )


@pytest.mark.slow
def test_device_check_of_softmax_without_dim_leaks_no_torch_warning(tmp_path: Path) -> None:
    (tmp_path / "m.seq").write_text("input 10\nlinear 4\nsoftmax\nlinear 2\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "seqgen", "new", "-q", "--device", "cpu", "m.seq"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "UserWarning" not in out.stderr and "[W006 softmax-without-dim]" in out.stderr
    assert "--device cpu: built M for real on cpu" in out.stdout


def test_a_shape_error_before_a_binding_error_is_reported_with_it(tmp_path: Path) -> None:
    e = error_of(tmp_path, "input 3x32x32\nconv2d 3 16 3\nrelu\nmaxpool2d 2 strid=2\n")
    assert lines_of(e) == [2, 4]
    assert "seqgen infers in_channels (3 here)" in e.render()


def test_each_branch_of_a_merge_reports_its_own_error(tmp_path: Path) -> None:
    text = (
        "input 3x8x8\nconcat:\n  branch:\n    conv2d 4 3\n    conv1d 4 3\n"
        "  branch:\n    conv2d 3 4 3\n"
    )
    e = error_of(tmp_path, text)  # branch 1 has no shape after line 5: the concat is not checked
    assert lines_of(e) == [5, 7]


@pytest.mark.slow  # a subprocess: under pytest, torch's warnings would be caught, not printed
def test_torch_warnings_become_located_lint_warnings(tmp_path: Path) -> None:
    text = "input 3x8\nrepeat 2:\n  hardtanh min_value=-2\ndropout2d 0.1\nflatten\nlinear 4\n"
    out = check_in_a_subprocess(tmp_path, text)
    assert out.returncode == 0, out.stderr
    assert "torch/" not in out.stderr and "site-packages" not in out.stderr  # nothing leaks
    assert out.stderr.count("[W014 torch-warning]") == 2, out.stderr  # each line once
    assert "m.seq:3:3: warning: torch warns about hardtanh" in out.stderr
    assert "m.seq:4:1: warning: torch warns about dropout2d" in out.stderr
