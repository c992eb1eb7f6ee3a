"""Parameters that do nothing or lie: unused parameters, 0/1 defaults, input dims that size no
weight. Each generated model is imported and built at values other than the defaults."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
import torch
from conftest import run_generated_tests, seqgen_cli

from seqgen.api import generate, load, options_for, trace_spec
from seqgen.project.write import write_files


def _generate(tmp_path: Path, text: str, name: str = "net.seq"):
    spec = tmp_path / name
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec)))
    write_files(list(result.files))
    mod_path = tmp_path / f"{spec.stem}.py"
    module_spec = importlib.util.spec_from_file_location(
        f"_gen_{spec.stem}_{id(tmp_path)}", mod_path
    )
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return result, getattr(module, result.traced.spec.class_name)


def test_unused_parameter_is_a_located_warning(tmp_path: Path) -> None:
    spec = tmp_path / "u.seq"
    spec.write_text("model M(depth=3, n=4)\ninput (8,)\nlinear n\n", encoding="utf-8")
    traced = trace_spec(load(str(spec))[1])
    warnings = [w for w in traced.warnings if "depth" in w.message]
    assert len(warnings) == 1 and warnings[0].location.line == 1
    strict = seqgen_cli("check", "-q", "--strict", str(spec))
    assert strict.returncode == 1 and "'depth' is not used" in strict.stderr


def test_parameter_defaulting_to_one_stays_symbolic(tmp_path: Path) -> None:
    _, GrayNet = _generate(
        tmp_path,
        "model GrayNet(in_ch=1)\ninput (in_ch, 28, 28)\nconv2d 16 3\nflatten\nlinear 10\n",
        "gray.seq",
    )
    for in_ch in (1, 3):
        model = GrayNet(in_ch=in_ch).eval()
        assert model(torch.randn(2, in_ch, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"^in_ch must be at least 1 \(the input would have an"):
        GrayNet(in_ch=0)


def test_zero_default_padding_stays_symbolic(tmp_path: Path) -> None:
    _, Net = _generate(
        tmp_path, "model Net(pad=0)\ninput 3x16\nconv1d 4 3 padding=pad\nflatten\nlinear 2\n"
    )
    for pad in (0, 1, 5):
        assert Net(pad=pad).eval()(torch.randn(2, 3, 16)).shape == (2, 2)
    with pytest.raises(
        ValueError, match=r"^pad must be at least 0 \(Conv1d's padding\), got pad=-1$"
    ):
        Net(pad=-1)


def test_input_dim_that_sizes_no_weight_is_no_constructor_argument(tmp_path: Path) -> None:
    _result, Audio = _generate(
        tmp_path,
        "model Audio(width=16)\ninput (1, length=16000)\n"
        "conv1d width 400 stride=160\nrelu\nadaptiveavgpool1d 1\n"
        "flatten\nlinear 10\n",
        "audio.seq",
    )
    assert list(inspect.signature(Audio).parameters) == ["width"]
    assert "length must be at least 400" in Audio.__doc__
    model = Audio().eval()
    for length in (400, 1234, 16000):
        assert model(torch.randn(2, 1, length)).shape == (2, 10)
    test_file = tmp_path / "test_audio.py"
    text = test_file.read_text(encoding="utf-8")
    assert "Audio(length=" not in text and "def test_length_sizes" in text
    run_generated_tests(test_file)


def test_input_dim_that_sizes_a_weight_stays_a_constructor_argument(tmp_path: Path) -> None:
    _, Net = _generate(
        tmp_path, "input (1, seq_len=28)\nconv1d 16 kernel_size=3\nflatten\nlinear 10\n"
    )
    assert "seq_len" in inspect.signature(Net).parameters
    assert Net(seq_len=50).eval()(torch.randn(2, 1, 50)).shape == (2, 10)


DEEP = """model Deep(depth=3, width=8)
input 3x16x16
conv2d width 3 p=1
repeat depth:
    conv2d width 3 p=1 bias=False
    batchnorm2d
    relu
adaptiveavgpool2d 1
flatten
linear 4
"""


def test_repeat_with_a_parameter_count_is_a_loop(tmp_path: Path) -> None:
    _result, Deep = _generate(tmp_path, DEEP, "deep.seq")
    source = (tmp_path / "deep.py").read_text(encoding="utf-8")
    assert "for _ in range(depth)" in source and source.count("nn.BatchNorm2d") == 1
    for depth, width in ((1, 8), (2, 5), (6, 3)):
        model = Deep(depth=depth, width=width).eval()
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)
        torch_count = sum(p.numel() for p in model.parameters())
        # the same layers, unrolled by hand
        layers = [torch.nn.Conv2d(3, width, 3, padding=1)]
        for _ in range(depth):
            layers += [
                torch.nn.Conv2d(width, width, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(width),
                torch.nn.ReLU(),
            ]
        layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(width, 4)]
        assert torch_count == sum(p.numel() for p in torch.nn.Sequential(*layers).parameters())
    with pytest.raises(ValueError, match=r"^depth must be at least 1 \(a repeated block runs at"):
        Deep(depth=0)
    run_generated_tests(tmp_path / "test_deep.py")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model M(depth=2)\ninput 3x16x16\nrepeat depth:\n    conv2d 8 3\n",
            "a loop needs its passes after the first to give back the shape",
        ),
        ("model M(depth=2.0)\ninput 3x16x16\nrepeat depth:\n    relu\n", "an int model parameter"),
        ("model M(d=2)\ninput 3x16x16\nrepeat depth:\n    relu\n", "an int model parameter"),
        (
            "model M(a=2, b=2)\ninput 3x16x16\nrepeat a:\n    repeat b:\n        relu\n",
            "cannot hold another one",
        ),
    ],
)
def test_repeat_with_a_parameter_count_errors(tmp_path: Path, text: str, message: str) -> None:
    from seqgen.errors import SeqgenError

    spec = tmp_path / "bad.seq"
    spec.write_text(text, encoding="utf-8")
    with pytest.raises(SeqgenError, match=message):
        trace_spec(load(str(spec))[1])


def test_in_place_layer_after_a_layer_that_saves_its_output_is_refused(tmp_path: Path) -> None:
    from seqgen.errors import SeqgenError

    spec = tmp_path / "ip.seq"
    spec.write_text("input 8\nlinear 4\nrelu\nrelu inplace=True\n", encoding="utf-8")
    with pytest.raises(SeqgenError, match="breaks training") as info:
        trace_spec(load(str(spec))[1])
    assert info.value.location.line == 4
    spec.write_text("input 8\nlinear 4\nbatchnorm1d\nrelu inplace=True\n", encoding="utf-8")
    trace_spec(load(str(spec))[1])  # BatchNorm's backward needs its input, not its output


def test_batchnorm_with_batch_statistics_is_tested_above_batch_one(tmp_path: Path) -> None:
    # track_running_stats=False normalises with batch statistics in eval mode too: batch 1 fails
    _generate(tmp_path, "input (21,)\nbatchnorm1d track_running_stats=False\nlinear 4\n", "bn.seq")
    text = (tmp_path / "test_bn.py").read_text(encoding="utf-8")
    assert '@pytest.mark.parametrize("batch", [2, 3])' in text
    run_generated_tests(tmp_path / "test_bn.py")


def test_groupnorm_without_spatial_size_is_tested_above_batch_one(tmp_path: Path) -> None:
    # (1, 3) in 3 groups is one value per group, which torch refuses in any mode (found by
    # fuzz/differential.py --pytest, seed 20240601 spec 5); with a spatial size batch 1 stays
    _generate(tmp_path, "input (8,)\nlinear 3\ngroupnorm 3\nlinear 2\n", "gn.seq")
    text = (tmp_path / "test_gn.py").read_text(encoding="utf-8")
    assert '@pytest.mark.parametrize("batch", [2, 3])' in text
    run_generated_tests(tmp_path / "test_gn.py")
    _generate(tmp_path, "input (3, 5)\ngroupnorm 3\nflatten\nlinear 2\n", "gn2.seq")
    assert '"batch", [1, 3]' in (tmp_path / "test_gn2.py").read_text(encoding="utf-8")


FLAGS = """\
model Net(c=4, b: bool = True, a: bool = False)
input (3, 9, 9)
conv2d c k=3 bias=b
batchnorm2d affine=a
flatten
linear 5 bias=b
layernorm elementwise_affine=a
"""


def test_a_bool_parameter_that_decides_a_count_is_counted_both_ways(tmp_path: Path) -> None:
    """`bias=b`, `affine=a`: the count is an expression of both flags (and of c), equal to
    torch's count of the same layers at every combination."""
    result, cls = _generate(tmp_path, FLAGS)
    assert result.traced.total_params.code == "10 * a + 2 * a * c + 5 * b + b * c + 272 * c"
    namespace: dict[str, object] = {}
    test_source = (tmp_path / "test_net.py").read_text(encoding="utf-8")
    assert "def expected_param_count(*, c: int = 4, b: bool = True, a: bool = False)" in (
        test_source
    )
    for c in (1, 4, 7):
        for b in (False, True):
            for a in (False, True):
                reference = torch.nn.Sequential(
                    torch.nn.Conv2d(3, c, 3, bias=b),
                    torch.nn.BatchNorm2d(c, affine=a),
                    torch.nn.Flatten(),
                    torch.nn.Linear(c * 49, 5, bias=b),
                    torch.nn.LayerNorm(5, elementwise_affine=a),
                )
                want = sum(p.numel() for p in reference.parameters())
                model = cls(c=c, b=b, a=a)
                assert sum(p.numel() for p in model.parameters()) == want, (c, b, a)
                namespace.update(a=a, b=b, c=c)
                assert eval(result.traced.total_params.code, {}, namespace) == want
                assert model(torch.zeros(2, 3, 9, 9)).shape == (2, 5)


CEIL = """\
model Net(k=2, cm: bool = False)
input (3, 9, 11)
conv2d 4 k=1
maxpool2d k ceil_mode=cm
maxpool2d 2 ceil_mode=cm
flatten
linear 5
"""


def test_a_bool_parameter_that_decides_sizes_writes_both(tmp_path: Path) -> None:
    """`ceil_mode=cm`: each size is the floor one where cm is False and the ceil one where it is
    True (`cm * (...) + ...`), equal to torch's at both values and other k; the generated
    shape and count functions take cm."""
    result, cls = _generate(tmp_path, CEIL)
    sizes = [d.code for d in result.traced.layers[2].out_shape]
    assert "cm" in sizes[2] and "cm" in sizes[3] and "(cm" not in sizes[3]  # not nested
    test_source = (tmp_path / "test_net.py").read_text(encoding="utf-8")
    assert "batch: int, *, k: int = 2, cm: bool = False" in test_source
    for k in (1, 2, 3, 4):
        for cm in (False, True):
            reference = torch.nn.Sequential(
                torch.nn.Conv2d(3, 4, 1),
                torch.nn.MaxPool2d(k, ceil_mode=cm),
                torch.nn.MaxPool2d(2, ceil_mode=cm),
                torch.nn.Flatten(),
            )
            flat = reference(torch.zeros(2, 3, 9, 11)).shape[1]
            model = cls(k=k, cm=cm)
            assert model.model[:4](torch.zeros(2, 3, 9, 11)).shape[1] == flat, (k, cm)
            assert model(torch.zeros(2, 3, 9, 11)).shape == (2, 5)
            assert sum(p.numel() for p in model.parameters()) == 16 + flat * 5 + 5


BLOCK_FLAGS = """\
model Net(b: bool = True, cm: bool = False)
input 3x33x33
block Down(c, bias=True, ceil=False):
    conv2d c 3 p=1 bias=bias
    batchnorm2d affine=bias
    maxpool2d 2 ceil_mode=ceil
block Two(c, bias=True):
    Down c bias=bias ceil=True
    Down c bias=False
Down 4 bias=False ceil=cm
Down 6 bias=b
Two 5 bias=b
flatten
linear 2
"""


def _down(cin: int, c: int, bias: bool, ceil: bool) -> list[torch.nn.Module]:
    return [
        torch.nn.Conv2d(cin, c, 3, padding=1, bias=bias),
        torch.nn.BatchNorm2d(c, affine=bias),
        torch.nn.MaxPool2d(2, ceil_mode=ceil),
    ]


def test_a_bool_parameter_passed_into_blocks_is_counted_both_ways(tmp_path: Path) -> None:
    """`Down 6 bias=b` where `block Down(c, bias=True, ...)`: the block's counts and sizes are
    written for both values of its own bool, and each use puts in the caller's (a literal, the
    model's bool, or an enclosing block's); all equal torch's at every combination."""
    result, cls = _generate(tmp_path, BLOCK_FLAGS)
    assert result.traced.layers[1].params.code == "18 * b + 216"
    assert result.traced.layers[2].params.code == "15 * b + 495"
    assert result.traced.layers[0].out_shape[2].code == "cm + 16"
    for b in (False, True):
        for cm in (False, True):
            reference = torch.nn.Sequential(
                *_down(3, 4, False, cm),
                *_down(4, 6, b, False),
                *_down(6, 5, b, True),
                *_down(5, 5, False, False),
                torch.nn.Flatten(),
            )
            flat = reference(torch.zeros(2, 3, 33, 33)).shape[1]
            model = cls(b=b, cm=cm)
            want = sum(p.numel() for p in reference.parameters()) + flat * 2 + 2
            assert sum(p.numel() for p in model.parameters()) == want, (b, cm)
            assert model(torch.zeros(2, 3, 33, 33)).shape == (2, 2)
            namespace = {"b": b, "cm": cm}
            assert eval(result.traced.total_params.code, {}, namespace) == want
    run_generated_tests(tmp_path / "test_net.py")
