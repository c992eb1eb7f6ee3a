"""No silent reinterpretation of arguments: types, ranges, the positional rule, inferred sizes
written out of PyTorch habit, implausibly large layers, and generated tests that fit in memory."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from seqgen.api import generate, options_for, trace_spec
from seqgen.errors import TraceError
from seqgen.lang.parser import parse
from seqgen.project.write import write_files


def traced(text: str):
    return trace_spec(parse(text, "t.seq"))


def calls(text: str) -> list[str]:
    return [layer.call for layer in traced(text).layers]


def error(text: str) -> TraceError:
    with pytest.raises(TraceError) as info:
        traced(text)
    return info.value


# ------------------------------------------------------------------ inferred sizes, PyTorch-style


@pytest.mark.parametrize(
    "text, message, hint, col",
    [
        (
            "input 3x32x32\nconv2d 3 16 3",
            "`conv2d 3 16 3`: seqgen infers in_channels (3 here)",
            "did you mean `conv2d 16 3`?",
            8,
        ),
        (
            "input 4096\nlinear 4096 128",
            "`linear 4096 128`: seqgen infers in_features (4096 here)",
            "did you mean `linear 128`?",
            8,
        ),
        (
            "input 3x8x8\nconv2d 32 3\nbatchnorm2d 32",
            "seqgen infers num_features (32 here)",
            "did you mean `batchnorm2d`?",
            13,
        ),
        (
            "input 3x8x8\nconv2d 8 3 p=1\ngroupnorm 2 8",
            "seqgen infers num_channels (8 here)",
            "did you mean `groupnorm 2`?",
            13,
        ),
        (
            "input (4, 10)\nlayernorm 10",
            "seqgen infers normalized_shape (10 here)",
            "did you mean `layernorm`?",
            11,
        ),
        (
            "input 3x8x8\nconvtranspose2d 3 4 2 stride=2",
            "`convtranspose2d 3 4 2 stride=2`: seqgen infers in_channels (3 here)",
            "did you mean `convtranspose2d 4 2 stride=2`?",
            17,
        ),
    ],
)
def test_an_inferred_size_written_pytorch_style_is_named(
    text: str, message: str, hint: str, col: int
) -> None:
    e = error(text)
    assert message in str(e) and e.diagnostic.hint == hint
    assert e.location is not None and (e.location.line, e.location.col) == (
        text.count("\n") + 1,
        col,
    )


def test_an_inferred_size_is_only_named_when_the_rest_fits_without_it() -> None:
    # Linear(10, 10): dropping the 10 would leave no out_features
    assert calls("input 10\nlinear 10") == ["nn.Linear(10, 10)"]
    # Conv2d(3, 3, 16): dropping the 3 would leave no kernel_size
    assert calls("input 3x32x32\nconv2d 3 16") == ["nn.Conv2d(3, 3, 16)"]


# ------------------------------------------------------------------ the positional rule


@pytest.mark.parametrize(
    "text, message, hint",
    [
        (
            "input 3x8x8\nmaxpool2d 2 2",
            "maxpool2d takes 1 argument by position (kernel_size); give stride by keyword",
            "write stride=2",
        ),
        ("input 3x8x8\nconv2d 16 3 1", "give stride by keyword", "to set stride, write stride=1"),
        (
            "input 512\nlinear 4096 128",
            "linear takes 1 argument by position (out_features), seqgen "
            "infers in_features; give bias by keyword",
            "seqgen infers in_features: don't write it; bias takes True or False",
        ),
        (
            "input 3x8x8\nconv2d 16 3\nbatchnorm2d 32",
            "batchnorm2d takes no arguments by position",
            "to set eps, write eps=32",
        ),
        ("input 3x8x8\nflatten 1 -1", "give end_dim by keyword", "write end_dim=-1"),
    ],
)
def test_arguments_beyond_the_required_ones_need_keywords(
    text: str, message: str, hint: str
) -> None:
    e = error(text)
    assert message in str(e) and hint in (e.diagnostic.hint or "")
    last = text.splitlines()[-1]
    assert e.location is not None and e.location.col == last.rindex(" ") + 2


def test_required_and_first_optional_arguments_stay_positional() -> None:
    assert calls(
        "input 3x8x8\nconv2d 16 3 stride=2\nmaxpool2d 2 stride=1\ngroupnorm 4\n"
        "dropout 0.25\nleakyrelu 0.2\nconstantpad2d 1 0.5\nflatten 1\nsoftmax 1\n"
        "unflatten 1 (16, -1)"
    ) == [
        "nn.Conv2d(3, 16, 3, stride=2)",
        "nn.MaxPool2d(2, stride=1)",
        "nn.GroupNorm(4, 16)",
        "nn.Dropout(0.25)",
        "nn.LeakyReLU(0.2)",
        "nn.ConstantPad2d(1, 0.5)",
        "nn.Flatten(1)",
        "nn.Softmax(1)",
        "nn.Unflatten(1, (16, -1))",
    ]


# ------------------------------------------------------------------ types and ranges


# (spec, the value's text on the last line, message, hint)
BAD_VALUES = [
    (
        "input 10\nlinear 10 bias=128",
        "128",
        "linear's bias takes True or False, got 128",
        "write bias=True or bias=False",
    ),
    (
        "input 10\nlinear 10 bias=1",
        "1",
        "linear's bias takes True or False, got 1",
        "write bias=True or bias=False",
    ),
    (
        "input 3x8x8\nconv2d 16 2.5",
        "2.5",
        "conv2d's kernel_size takes an int or a tuple of 2 ints, got 2.5 (a float)",
        "sizes are whole numbers",
    ),
    ("input 3x8x8\nconv2d 16 3.0", "3.0", "got 3.0 (a float)", "write kernel_size=3"),
    (
        "input 3x8x8\nconv2d 16 (3, 3, 3)",
        "(3, 3, 3)",
        "got (3, 3, 3) (a tuple of 3)",
        "give 2 sizes, one per dimension, or one int for all",
    ),
    (
        "input 3x8x8\nconv2d 16 '3'",
        "'3'",
        "got '3' (a string)",
        "write kernel_size=3 without quotes",
    ),
    (
        "input 3x8x8\nmaxpool2d (2, 2, 2)",
        "(2, 2, 2)",
        "maxpool2d's kernel_size takes an int or a tuple of 2 ints",
        "give 2 sizes",
    ),
    (
        "input 3x8x8\nconv2d 16 3 padding_mode='zero'",
        "'zero'",
        "padding_mode takes one of 'circular', 'reflect', 'replicate', 'zeros', got 'zero'",
        "did you mean 'zeros'?",
    ),
    (
        "input 3x8x8\nconv2d 16 3 padding='sme'",
        "'sme'",
        "conv2d's padding takes",
        "did you mean 'same'?",
    ),
    (
        "input 3x8x8\nmaxpool2d 2 ceil_mode=1",
        "1",
        "ceil_mode takes True or False",
        "ceil_mode=True",
    ),
    ("input 3x8x8\nsoftmax dim=True", "True", "softmax's dim takes an int or None, got True", None),
    (
        "model M(h=64)\ninput 10\nlinear h * 0.5",
        "h * 0.5",
        "linear's out_features takes an int, got `h * 0.5`, a float (32.0 at the defaults)",
        "use `//`",
    ),
    (
        "model M(k=3.0)\ninput 3x8x8\nconv2d 4 k",
        "k",
        "got `k`, a float (3.0 at the defaults)",
        None,
    ),
    ("model M(flag=True)\ninput 3x8x8\nconv2d 4 3 stride=flag", "flag", "stride takes", None),
    (
        "input 3x8x8\nbatchnorm2d eps=0",
        "0",
        "batchnorm2d's eps must be greater than 0, got 0",
        "the default is 1e-05",
    ),
    ("input 3x8x8\nbatchnorm2d eps=-1e-5", "-1e-5", "eps must be greater than 0", None),
    (
        "input 3x8x8\nbatchnorm2d momentum=2",
        "2",
        "momentum must be between 0 and 1 (or None)",
        "the default is 0.1",
    ),
    ("input 3x8x8\ninstancenorm2d momentum=-0.1", "-0.1", "momentum must be between 0 and 1", None),
    (
        "input 3x8x8\ndropout 1.5",
        "1.5",
        "dropout's p must be between 0 and 1, got 1.5",
        "probability",
    ),
    ("input 3x8x8\ndropout2d p=-0.5", "-0.5", "p must be between 0 and 1", None),
    (
        "model M(drop=1.5)\ninput 3x8x8\ndropout drop",
        "drop",
        "got `drop`, a float (1.5 at the defaults)",
        None,
    ),
    ("input 3x8x8\nleakyrelu 2", "2", "negative_slope must be at least 0 and below 1", None),
    ("input 3x8x8\nleakyrelu negative_slope=-0.1", "-0.1", "negative_slope must be", None),
    ("input 8\nlayernorm eps=0.0", "0.0", "layernorm's eps must be greater than 0", None),
]


@pytest.mark.parametrize("text, at, message, hint", BAD_VALUES)
def test_values_that_do_not_fit_their_parameter(
    text: str, at: str, message: str, hint: str | None
) -> None:
    e = error(text)
    assert message in str(e)
    if hint is not None:
        assert hint in (e.diagnostic.hint or "")
    last = text.splitlines()[-1]  # located at the value itself
    assert e.location is not None and e.location.col == last.rindex(at) + 1, e.render()


@pytest.mark.parametrize(
    "text",
    [
        "input 3x8x8\nbatchnorm2d momentum=None eps=1e-3 affine=False",
        "input 3x8x8\nconv2d 4 (3, 5) padding='same' padding_mode='reflect' bias=False",
        "input 3x8x8\nconv2d 4 3 padding=(1, 2) stride=(2, 1)",
        "input 3x8x8\nupsample scale_factor=2 mode='nearest'",
        "input 3x8x8\nadaptiveavgpool2d (None, 4)",
        "input 3x8x8\nmaxpool2d kernel_size=(2, 2) stride=2",
        "input 3x8x8\ndropout 0\ndropout 1\nleakyrelu 0",
        "input 3x8x8\nhardtanh -2 max_val=2",
        "model M(hidden=64, drop=0.25)\ninput 10\nlinear hidden // 2 bias=True\n"
        "dropout drop\nlinear (hidden - 2) * 3",
        "input (4, 8)\nlayernorm normalized_shape=(4, 8)",
        "input 10\nlinear 4 in_features=10",
        "input 3x8x8\nidentity 3 foo=1",
    ],
)
def test_values_that_fit_are_accepted(text: str) -> None:
    traced(text)


def test_a_float_parameter_cannot_decide_a_size() -> None:
    # scale_factor=sf would make every size after it hold for sf=2.0 only
    with pytest.raises(TraceError, match="scale_factor decides sizes or parameter counts") as info:
        traced("model M(sf=2.0)\ninput 3x8x8\nupsample scale_factor=sf\n")
    assert info.value.location.line == 3 and info.value.location.col == 23
    # inside a block, a bool block parameter still may not decide a count (bias=use_bias is
    # counted for both values at the top level only)
    with pytest.raises(TraceError, match="bias decides sizes or parameter counts"):
        traced("input 10\nblock B(wide: bool = True):\n    linear 4 bias=wide\nB\n")


# ------------------------------------------------------------------ implausibly large layers


def test_a_layer_above_a_billion_parameters_is_a_warning() -> None:
    t = traced("model M(hidden=2621440)\ninput 4096\nlinear hidden\nrelu\nlinear 10")
    (warning,) = t.warnings
    assert warning.severity == "warning" and warning.location.line == 3
    assert "linear has 10,740,039,680 parameters (10.7 billion" in warning.message
    assert "typo" in (warning.hint or "")
    assert traced("input 4096\nlinear 200000").warnings == ()  # 0.8 billion


# ------------------------------------------------------------------ generated tests' memory


def _no_more_than(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


@pytest.mark.slow
def test_tests_for_a_huge_model_check_shapes_on_meta_and_skip_the_real_pass(tmp_path: Path) -> None:
    from seqgen.render.budget import generated_tests_bytes

    spec = tmp_path / "huge.seq"
    spec.write_text("model Huge(hidden=2621440)\ninput 4096\nlinear hidden\nrelu\nlinear 10\n")
    result = generate(str(spec), options_for(str(spec), out_dir=str(tmp_path)))
    assert generated_tests_bytes(result.traced) > 40 * 10**9
    write_files(list(result.files))
    text = (tmp_path / "test_huge.py").read_text()
    assert 'with torch.device("meta")' in text and "Huge needs about 43.1 GB" in text
    # about 43 GB if it built the model for real: under an 8 GB cap that fails at once
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_huge.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_no_more_than(8 << 30),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout and "SKIPPED" in proc.stdout
    assert "over the 2 GB" in proc.stdout


def test_tests_for_a_normal_model_run_for_real(tmp_path: Path) -> None:
    from seqgen.render.budget import BUDGET_BYTES, generated_tests_bytes

    spec = tmp_path / "small.seq"
    spec.write_text("input 3x32x32\nconv2d 16 3\nflatten\nlinear 10\n")
    result = generate(str(spec), options_for(str(spec), out_dir=str(tmp_path)))
    assert generated_tests_bytes(result.traced) < BUDGET_BYTES
    text = next(f.text for f in result.files if Path(f.path).name == "test_small.py")
    assert "meta" not in text and "pytest.mark.skip(" not in text


def test_the_budget_counts_activations_at_the_largest_named_dim_size() -> None:
    from seqgen.render.budget import BUDGET_BYTES, generated_tests_bytes

    # tiny weights, but 2 * 2 * 160M activations at L=2 * 80M: over the budget
    t = traced("input (1, L=80000000)\nrelu")
    assert generated_tests_bytes(t) > BUDGET_BYTES
    assert generated_tests_bytes(traced("input (1, 80000000)\nrelu")) < BUDGET_BYTES


def test_the_budget_counts_the_batches_the_template_runs() -> None:
    """budget.py sizes the generated tests at the batches test_model.py.jinja writes."""
    from seqgen.render.budget import DIM_BATCH, SAMPLE_BATCH
    from seqgen.render.environment import default_templates_dir

    template = (default_templates_dir() / "test_model.py.jinja").read_text()
    assert f"input_shape({SAMPLE_BATCH})" in template
    assert f"input_shape({DIM_BATCH}, {{{{ dim.name }}}}={{{{ dim.name }}}})" in template
    batches = {int(n) for n in re.findall(r"input_shape\((\d+)", template)}
    assert batches == {SAMPLE_BATCH, DIM_BATCH}
