"""Trace: symbolic shapes on fake tensors agree with real CPU forwards, and errors name the spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE_SPECS, EXAMPLES

from seqgen.api import load, trace_spec
from seqgen.errors import SeqgenError, TraceError
from seqgen.lang.parser import parse


def traced(text: str):
    return trace_spec(parse(text, "t.seq"))


def shapes(text: str) -> list[list[str]]:
    return [[d.code for d in layer.out_shape] for layer in traced(text).layers]


@pytest.mark.slow
@pytest.mark.parametrize("spec_path", EXAMPLE_SPECS, ids=lambda p: p.stem)
def test_examples_fake_trace_matches_real_cpu_forward(spec_path: Path) -> None:
    _, spec = load(str(spec_path))
    trace_spec(spec, device="cpu")  # raises if any layer's real shape differs
    trace_spec(spec, device="meta")


def test_seed_examples_generate_the_expected_calls() -> None:
    cnn = trace_spec(load(str(EXAMPLES / "cnn.seq"))[1])
    calls = [l.call for l in cnn.layers]
    assert "nn.Linear(32 * 8 * 8, 128)" in calls
    assert calls[0] == "nn.Conv2d(3, 16, kernel_size=3, padding=1)"
    assert calls[-1] == "nn.Linear(128, num_classes)"
    assert cnn.total_params.value == 268650
    simple = trace_spec(load(str(EXAMPLES / "simple_classifier.seq"))[1])
    assert simple.layers[0].call == "nn.Linear(input_size, hidden_size)"
    variable = trace_spec(load(str(EXAMPLES / "variable_input.seq"))[1])
    assert variable.layers[-1].call == "nn.Linear(16 * (seq_len - 2), 10)"
    assert [(c.symbol, c.minimum) for c in variable.constraints] == [("seq_len", 3)]


def test_inferred_sizes_for_every_family() -> None:
    t = traced(
        "input 3x16x16\nconv2d 8 3 p=1\nbatchnorm2d\ngroupnorm 2\ninstancenorm2d\n"
        "convtranspose2d 4 2 s=2\nlayernorm\nflatten\nlinear 5\nbatchnorm1d"
    )
    calls = [l.call for l in t.layers]
    assert calls == [
        "nn.Conv2d(3, 8, 3, padding=1)",
        "nn.BatchNorm2d(8)",
        "nn.GroupNorm(2, 8)",
        "nn.InstanceNorm2d(8)",
        "nn.ConvTranspose2d(8, 4, 2, stride=2)",
        "nn.LayerNorm(32)",
        "nn.Flatten()",
        "nn.Linear(4 * 32 * 32, 5)",
        "nn.BatchNorm1d(5)",
    ]


def test_symbolic_dims_flow_through_pooling_and_flatten() -> None:
    out = shapes("input (2, L=40)\nconv1d 4 5\nmaxpool1d 2\navgpool1d 3 s=1\nflatten\nlinear 7")
    assert out[0] == ["N", "4", "L - 4"]
    assert out[1] == ["N", "4", "(L - 4) // 2"] or out[1][2].startswith("L // 2")
    assert out[-1] == ["N", "7"]


def test_parameters_stay_symbolic() -> None:
    t = traced("model M(h=32, k=3)\ninput (4, n=20)\nconv1d h k\nflatten\nlinear h // 2")
    assert t.layers[0].call == "nn.Conv1d(4, h, k)"
    assert t.layers[-1].call == "nn.Linear(h * (n - k + 1), h // 2)"


def test_a_flattened_size_has_no_redundant_parentheses() -> None:
    # one factor left (the 1s drop out) is written as is, not `(c + 8)`; a factor whose
    # operators sit inside parentheses needs none either (ruff's UP034 flags `((c + 8))`)
    t = traced("model M(c=8)\ninput (c + 8, 1, 1)\nflatten\nunsqueeze 1\nflatten\nlinear 2")
    assert [d.code for d in t.layers[0].out_shape] == ["N", "c + 8"]
    assert t.layers[-1].call == "nn.Linear(c + 8, 2)"
    t = traced(
        "model M(h=8)\ninput (3, h, h)\nmaxpool2d 2\nupsample scale_factor=2\nflatten\nlinear 2"
    )
    assert t.layers[-1].call == "nn.Linear(3 * 2 * (h // 2) * 2 * (h // 2), 2)"


def test_explicit_inferred_size_is_checked() -> None:
    assert traced("input 10\nlinear 4 in_features=10").layers[0].call == "nn.Linear(10, 4)"
    with pytest.raises(TraceError, match="in_features=12 disagrees") as info:
        traced("input 10\nlinear 4 in_features=12")
    assert "receives 10" in str(info.value) and "says 12" in str(info.value)


@pytest.mark.parametrize(
    "text, message, hint",
    [
        ("input 3x8x8\nconv2D 4 3\nrelux", "unknown layer 'relux'", "did you mean 'relu"),
        (
            "input 3x8x8\nconv2d 4 kernal_size=3",
            "conv2d has no argument 'kernal_size'",
            "did you mean 'kernel_size'?",
        ),
        ("input 8\nlstm 16", "so it needs take=", "take= must be 'all'"),
        ("input 8\nmultiheadattention 8 2", "MultiheadAttention takes query", None),
        ("input 8\ncrossentropyloss", "loss function", "training loop"),
        ("input 8\nlazylinear 4", "infers its size", "use `linear`"),
        (
            "input 3x8x8\nflatten\nconv2d 4 3",
            "Conv2d needs an input of rank 4 but gets rank 2",
            None,
        ),
        ("input 3x4x4\nconv2d 4 5", "too small", "larger"),
        ("input 3x8x8\nconv2d -4 3", "torch rejected the arguments of Conv2d", None),
        ("input 3x8x8\nconv2d", "needs 'out_channels', 'kernel_size'", None),
        ("input 3x8x8\nconv2d 4 3 device='cpu'", "'device' cannot be set", None),
        ("input 3x8x8\nrelu 1 2 3", "relu takes 1 positional", None),
    ],
)
def test_trace_errors_point_at_the_layer(text: str, message: str, hint: str | None) -> None:
    with pytest.raises(SeqgenError) as info:
        traced(text)
    rendered = info.value.render()
    assert message in rendered
    assert rendered.startswith("t.seq:")
    if hint:
        assert hint in rendered


def test_linear_after_conv_keeps_torch_cause() -> None:
    # Linear on a rank-4 tensor is legal torch (it maps the last dim), so it traces; the
    # forgotten-flatten lint belongs to `seqgen check`.
    t = traced("input 3x8x8\nconv2d 4 3\nlinear 10")
    assert [d.code for d in t.layers[-1].out_shape] == ["N", "4", "6", "10"]


def test_device_check_uses_no_default_device_change() -> None:
    import torch

    before = torch.get_default_device()
    trace_spec(parse("input 4\nlinear 3", "t.seq"), device="meta")
    assert torch.get_default_device() == before


@pytest.mark.slow
def test_ten_billion_parameters_trace_without_allocating(tmp_path: Path) -> None:
    # Structural, not timed: peak RSS growth of the trace stays far below the weights' 43 GB.
    spec = "input 32768\n" + "linear 32768\nrelu\n" * 10
    code = (
        "import resource, sys\n"
        "from seqgen.api import trace_spec\nfrom seqgen.lang.parser import parse\n"
        "import torch\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"t = trace_spec(parse({spec!r}, 'big.seq'))\n"
        "grow = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base\n"
        "print(t.total_params.value, grow // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    params, grow_mb = map(int, out.stdout.split())
    assert params == 10 * (32768 * 32768 + 32768)
    assert grow_mb < 500


def test_alias_never_hides_the_class_own_parameter() -> None:
    t = traced("input 3x8x8\nconv2d 4 3 p=1\ndropout p=0.2")
    assert [l.call for l in t.layers] == ["nn.Conv2d(3, 4, 3, padding=1)", "nn.Dropout(p=0.2)"]


def test_self_check_varies_free_input_dims_near_their_minimum() -> None:
    """A free input dim (it sizes no weight) is checked at its smallest accepted sizes, not
    grown with the parameters: the meta LSTM loops once per step."""
    from seqgen.check.other_values import MAX_POINTS, accepts, candidate_points

    def checked(spec_path: Path) -> list[dict[str, int]]:
        t = trace_spec(load(str(spec_path))[1])
        points = [p for p in candidate_points(t) if accepts(t.constraints, p)]
        return [dict(k) for k in dict.fromkeys(tuple(sorted(p.items())) for p in points)][
            :MAX_POINTS
        ]

    lstm = checked(EXAMPLES / "text_lstm.seq")  # seq_len >= 1; vocab and num_classes grow
    assert [p["seq_len"] for p in lstm] == [1, 2, 3, 4]
    assert lstm[0]["vocab"] == 2 * 20000 + 1 and lstm[0]["num_classes"] == 2 * 2 + 1
    unet = checked(EXAMPLES / "unet_small.seq")  # h and w: >= 4 and divisible by 4
    assert [(p["h"], p["w"]) for p in unet] == [(4, 4), (8, 8), (12, 12), (16, 16)]


def test_a_check_the_bounds_imply_is_left_out() -> None:
    """concat's channels a + b >= 1 follow from a >= 1 and b >= 1; a - b + 4 >= 1 does not."""
    t = traced(
        "model M(a=4, b=4)\ninput 3x8x8\nconcat:\n    branch:\n        conv2d a 1\n"
        "    branch:\n        conv2d b 1\nconv2d a - b + 4 1\n"
    )
    assert [c.condition for c in t.constraints] == ["a >= 1", "b >= 1", "a - b + 4 >= 1"]
