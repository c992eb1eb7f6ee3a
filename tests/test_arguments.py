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

RULE = "only the required arguments after an inferred size are positional"


@pytest.mark.parametrize(
    "text, message, hint, at",
    [
        (
            "input 3x8x8\nconv2d 16 3 1",
            "conv2d takes 2 arguments by position (out_channels, kernel_size); give stride by "
            f"keyword (seqgen infers in_channels, and {RULE})",
            "to set stride, write stride=1: `conv2d 16 3 stride=1`",
            "1",
        ),
        (
            "input 512\nlinear 4096 128",
            "linear takes 1 argument by position (out_features); give bias by keyword",
            "4096 looks like in_features (Linear(4096, 128) in PyTorch), which seqgen infers: "
            "write `linear 128`",
            "4096",
        ),
        (
            "input 3x8x8\nconv2d 16 3\nbatchnorm2d 32",
            "batchnorm2d takes no arguments by position",
            "32 looks like num_features (BatchNorm2d(32) in PyTorch), which seqgen infers: "
            "write `batchnorm2d`; to set eps instead, write `batchnorm2d eps=32`",
            "32",
        ),
        (
            "input 3x8x8\nbatchnorm2d 0.001",
            "batchnorm2d takes no arguments by position",
            "to set eps, write eps=0.001: `batchnorm2d eps=0.001`",
            "0.001",
        ),
        (
            "input 3x8x8\nconv2d 1 32 3 1",
            "give stride by keyword",
            "1 looks like in_channels (Conv2d(1, 32, 3, 1) in PyTorch), which seqgen infers: "
            "write `conv2d 32 3 stride=1`",
            "1 32",
        ),
    ],
)
def test_where_a_size_is_inferred_arguments_beyond_the_required_ones_need_keywords(
    text: str, message: str, hint: str, at: str
) -> None:
    e = error(text)
    assert message in str(e) and hint in (e.diagnostic.hint or "")
    assert "maxpool2d 2 2" not in str(e) + (e.diagnostic.hint or "")
    last = text.splitlines()[-1]  # at the shifted value, or the inferred size written
    assert e.location is not None and e.location.col == last.rindex(at) + 1


def test_the_in_channels_habit_is_named_with_the_incoming_size() -> None:
    e = error("input 1x28x28\nconv2d 1 32 3 1")
    assert "`conv2d 1 32 3 1`: seqgen infers in_channels (1 here)" in str(e)
    assert e.diagnostic.hint == "did you mean `conv2d 32 3 stride=1`?"
    assert e.diagnostic.fix == "conv2d 32 3 stride=1"
    assert calls("input 1x28x28\n" + e.diagnostic.fix) == ["nn.Conv2d(1, 32, 3, stride=1)"]


def test_where_nothing_is_inferred_arguments_fill_torchs_own_order() -> None:
    assert calls(
        "input 3x8x8\nmaxpool2d 2 2\nmaxpool2d 2 1 1 1 False True\nflatten 1 -1\n"
        "dropout 0.5 False\nunflatten 1 (3, -1)\nhardtanh -2 2\nupsample None 2 'nearest'"
    ) == [
        "nn.MaxPool2d(2, 2)",
        "nn.MaxPool2d(2, 1, 1, 1, False, True)",
        "nn.Flatten(1, -1)",
        "nn.Dropout(0.5, False)",
        "nn.Unflatten(1, (3, -1))",
        "nn.Hardtanh(-2, 2)",
        "nn.Upsample(None, 2, 'nearest')",
    ]
    t = traced("input 3x8x8\nmaxpool2d 2 2\navgpool2d 3 1 1")
    assert [str(d.value) for d in t.layers[0].out_shape[2:]] == ["4", "4"]
    assert [str(d.value) for d in t.layers[1].out_shape[2:]] == ["4", "4"]


def test_torchs_order_still_checks_each_value_and_the_count() -> None:
    e = error("input 3x8x8\nmaxpool2d 2 2 0 1 False 1")  # ceil_mode=1: an int for a bool
    assert "maxpool2d's ceil_mode takes True or False, got 1" in str(e)
    e = error("input 3x8x8\nmaxpool2d 2 2 0 1 False False 7")
    assert "maxpool2d takes 6 positional argument(s), got 7" in str(e)
    assert "inferred" not in str(e)


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
    # scale_factor=s of a block's float parameter would make every size after it hold for
    # s=2.0 only (a model's float parameter is a scale: tests/test_float_params.py)
    with pytest.raises(TraceError, match="scale_factor decides sizes or parameter counts") as info:
        traced("input 3x8x8\nblock B(s=2.0):\n    upsample scale_factor=s\nB\n")
    assert info.value.location.line == 3 and info.value.location.col == 27
    # a bool block parameter may decide a count (counted for both values: tests/test_params.py)
    t = traced("input 10\nblock B(wide: bool = True):\n    linear 4 bias=wide\nB wide=False\n")
    assert t.layers[0].params.code == "40"


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
    from seqgen.project.templates import default_templates_dir
    from seqgen.render.budget import DIM_BATCH, SAMPLE_BATCH

    template = (default_templates_dir() / "test_model.py.jinja").read_text()
    assert f"input_shape({SAMPLE_BATCH})" in template
    assert f"input_shape({DIM_BATCH}, {{{{ dim.name }}}}={{{{ dim.name }}}})" in template
    batches = {int(n) for n in re.findall(r"input_shape\((\d+)", template)}
    assert batches == {SAMPLE_BATCH, DIM_BATCH}


# ------------------------------------------------------------------ an eps far outside real use


def test_a_norms_eps_above_one_is_a_located_warning() -> None:
    from seqgen.report.lint import EPS_ABOVE_ONE, lint

    t = traced(
        "model M(e=10.0, small=1e-3)\ninput 3x8x8\nbatchnorm2d eps=32\ngroupnorm 3 eps=e\n"
        "instancenorm2d eps=small\nlayernorm eps=1\nbatchnorm2d eps=1.5 # seqgen: ignore[W013]"
    )
    found = [
        (d.location.line, d.location.col, d.message) for d in lint(t) if d.code == EPS_ABOVE_ONE
    ]
    assert found == [
        (3, 17, "batchnorm2d's eps is 32, far above any real use"),
        (4, 17, "groupnorm's eps is e (10.0 at the defaults), far above any real use"),
    ]


# ------------------------------------------------------------------ hints spell lines that work

HABITS = [
    ("input 1x28x28", "MaxPool2d(2, 2)", "maxpool2d 2 2"),
    ("input 1x28x28", "Conv2d(1, 32, 3, 1)", "conv2d 32 3 stride=1"),
    ("input 3x28x28", "Conv2d(1, 32, 3, 1)", "conv2d 32 3 stride=1"),
    ("input 1x28x28", "conv2d 1 32 3 1", "conv2d 32 3 stride=1"),
    ("input 3x28x28", "conv2d 1 32 3 1", "conv2d 32 3 stride=1"),
    ("input 1x28x28", "conv2d(16, 3)", "conv2d 16 3"),
    ("input 3x32x32", "nn.Conv2d(3, 16, 3)", "conv2d 16 3"),
    ("input 3x32x32", "torch.nn.ReLU()", "relu"),
    ("input 3x32x32", "nn.ReLU", "ReLU"),
    ("input 3x32x32", "conv2d 16, 3", "conv2d 16 3"),
    ("input 3x32x32", "conv2d 16,3, padding=(1, 1)", "conv2d 16 3 padding=(1, 1)"),
    ("input 10", "swish", "silu"),
    ("input 10", "Swish()", "silu"),
    ("input 10", "leaky_relu 0.1", "leakyrelu 0.1"),
    ("input 10", "fc 10", "linear 10"),
    ("input 10", "fc 10 20", "linear 20"),
    ("input 10", "gelu_new", "gelu approximate='tanh'"),
    ("input 3x8x8", "global_avg_pool", "adaptiveavgpool2d 1"),
    ("input 784", "Linear(784, 10, bias=False)", "linear 10 bias=False"),
    ("input 512", "linear 4096 128", "linear 128"),
    ("input 3x8x8", "Conv2d(3, 8, kernel_size=3, stride=2, padding=1)", None),
    ("input 3x8x8", "conv2d 3 8 3 2 1", "conv2d 8 3 stride=2 padding=1"),
    ("input 6x8", "nn.BatchNorm1d(6, 1e-3)", "batchnorm1d eps=0.001"),
    ("input (8, 6)", "LSTM(6, 16, take='last')", "lstm 16 take='last'"),
]


@pytest.mark.parametrize("head, line, fixed", HABITS)
def test_a_pytorch_habit_gets_a_line_that_checks(head: str, line: str, fixed: str | None) -> None:
    from seqgen.errors import SeqgenError

    with pytest.raises(SeqgenError) as info:
        traced(f"{head}\n{line}\n")
    d = info.value.diagnostic
    assert d.fix is not None, d.render()
    assert d.fix.strip() in (d.hint or "") and d.location is not None and d.location.line == 2
    if fixed is not None:
        assert d.fix.strip() == fixed
    indent = line[: len(line) - len(line.lstrip())]
    traced(f"{head}\n{d.fix.removeprefix(indent)}\n")  # the whole spec checks


def test_an_nn_prefix_is_read_only_before_a_layer_name() -> None:
    from seqgen.errors import SeqgenError

    with pytest.raises(SeqgenError, match="unexpected character '.'") as info:
        traced("input 3x8x8\nnn.residual:\n    relu\n")
    assert info.value.diagnostic.fix is None and "without `nn.`" in (
        info.value.diagnostic.hint or ""
    )
