"""Spec language v2: named blocks, residuals and merges, from parser to generated code.

Merged shapes are checked against torch itself: every generated model here is built at
parameter values other than the defaults and run on a real tensor, and its shapes and counts
are compared with the expressions seqgen wrote.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import run_generated_tests

from seqgen.api import generate, options_for
from seqgen.errors import SeqgenError
from seqgen.ir import BlockUse, MergeSpec, RepeatSpec, TracedBlockUse, TracedMerge
from seqgen.lang.parser import parse
from seqgen.project.write import write_files
from seqgen.safe_eval import evaluate_source
from seqgen.trace.model import trace

RESNET = """\
model ResNetish(num_classes=10, width=16)
input 3x32x32

block Basic(out, stride=1):
    residual:
        conv2d out k=3 s=stride p=1 bias=False
        batchnorm2d
        relu
        conv2d out k=3 p=1 bias=False
        batchnorm2d
    shortcut:
        conv2d out k=1 s=stride bias=False
        batchnorm2d
    relu

conv2d width k=3 p=1
Basic width
Basic width * 2 stride=2
concat:
    branch:
        conv2d 32 k=1
    branch:
        maxpool2d 3 s=1 p=1
        conv2d 32 k=1
multiply:
    branch:
        identity
    branch:
        adaptiveavgpool2d 1
        conv2d 16 k=1
        relu
        conv2d 64 k=1
        sigmoid
adaptiveavgpool2d 1
flatten
linear num_classes
"""


def _generate(tmp_path: Path, text: str, name: str = "model"):
    spec = tmp_path / f"{name}.seq"
    spec.write_text(text)
    result = generate(str(spec), options_for(str(spec), str(tmp_path)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(
        f"gen_{name}_{id(text)}", result.files[0].path
    )
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return result, module


# ------------------------------------------------------------------------------ parser


def test_parser_builds_the_tree() -> None:
    spec = parse(RESNET)
    (basic,) = spec.blocks
    assert basic.name == "Basic"
    assert [(p.name, p.default) for p in basic.params] == [("out", None), ("stride", 1)]
    residual = basic.body[0]
    assert isinstance(residual, MergeSpec) and residual.kind == "residual"
    assert [len(b) for b in residual.branches] == [5, 2]  # body, shortcut
    kinds = [type(n).__name__ for n in spec.layers]
    assert kinds == [
        "LayerSpec",
        "BlockUse",
        "BlockUse",
        "MergeSpec",
        "MergeSpec",
        "LayerSpec",
        "LayerSpec",
        "LayerSpec",
    ]
    use = spec.layers[2]
    assert isinstance(use, BlockUse) and [k.name for k in use.kwargs] == ["stride"]
    concat = spec.layers[3]
    assert isinstance(concat, MergeSpec) and concat.kind == "concat" and concat.dim is None
    assert [len(b) for b in concat.branches] == [1, 2]


def test_block_keywords_keep_their_spelling_and_nest() -> None:
    spec = parse(
        "input 3x8x8\nblock B(k, p=1):\n    conv2d 4 k=k p=p\n"
        "block C:\n    B 3\n    add:\n        branch:\n            B k=1 p=0\n"
        "        branch:\n            identity\nC\nconcat dim=2:\n    branch:\n"
        "        repeat 2:\n            C\n    branch:\n        identity\n"
    )
    use = spec.blocks[1].body[1].branches[0][0]  # type: ignore[union-attr]
    assert isinstance(use, BlockUse) and [k.name for k in use.kwargs] == ["k", "p"]
    concat = spec.layers[1]
    assert isinstance(concat, MergeSpec) and concat.dim is not None
    assert [type(n) for n in concat.branches[0]] == [BlockUse, BlockUse]  # repeat unrolled


def test_repeat_with_a_block_parameter_is_a_loop() -> None:
    spec = parse(
        "input 3x8x8\nblock B(c, depth=2):\n    repeat depth:\n        conv2d c k=1\nB 3\n"
    )
    assert isinstance(spec.blocks[0].body[0], RepeatSpec)


@pytest.mark.parametrize(
    "text, message",
    [
        ("input 3x8x8\nshortcut:\n    relu\n", "`shortcut:` must come right after a `residual:`"),
        ("input 3x8x8\nconcat:\n    branch:\n        relu\n", "needs two or more `branch:`"),
        ("input 3x8x8\nconcat:\n    relu\n    relu\n", "each line at this level must be `branch:`"),
        ("input 3x8x8\nresidual:\nrelu\n", "`residual:` needs an indented block"),
        ("input 3x8x8\nB 4\nblock B(c):\n    relu\n", "used before its definition on line 3"),
        ("input 3x8x8\nblock B(c):\n    B c\nB 3\n", "cannot be recursive"),
        ("input 3x8x8\nblock B(c):\n    relu\n    block C:\n        relu\nB 3\n", "top level"),
        ("input 3x8x8\nblock B(c):\n    relu\nB\n", "block 'B' needs 'c'"),
        ("input 3x8x8\nblock B(c):\n    relu\nB 1 2\n", "takes 1 argument (c), 2 given"),
        ("input 3x8x8\nblock B(c):\n    relu\nB 1 c=2\n", "given twice"),
        ("input 3x8x8\nblock B(in_channels):\n    relu\n", "names the block's input size"),
        ("input 3x8x8\nblock add(c):\n    relu\n", "keyword of the spec language"),
        ("model M(w=2)\ninput 3x8x8\nblock B:\n    conv2d w k=1\nB\n", "pass it as a block"),
        (
            "input 3x8x8\nblock B:\n    conv2d 4 k=1 name=stem\n    relu name=stem\nB\n",
            "name 'stem' is already used on line 3",
        ),
        (
            "input 3x8x8\nconcat dim=1 x:\n    branch:\n        relu\n    branch:\n        relu\n",
            "`concat` takes only `dim=D` and `name=N`, found 'x'",
        ),
    ],
)
def test_misuse_is_a_located_syntax_error(text: str, message: str) -> None:
    with pytest.raises(SeqgenError) as info:
        parse(text)
    assert message in info.value.render()
    assert "<spec>:1:" not in info.value.render()  # located at the offending line


# ------------------------------------------------------------------------------ trace


def test_block_class_is_traced_once_in_its_own_names() -> None:
    traced = trace(parse(RESNET))
    (basic,) = traced.blocks
    assert [a.name for a in basic.args] == ["in_channels", "out", "stride"]
    assert [d.code for d in basic.out_shape] == [
        "N",
        "out",
        "(H - 1) // stride + 1",
        "(W - 1) // stride + 1",
    ]
    assert basic.total_params.code == "10 * in_channels * out + 6 * out + 9 * out * out"
    uses = [n for n in traced.layers if isinstance(n, TracedBlockUse)]
    assert [u.call for u in uses] == ["Basic(width, width)", "Basic(width, width * 2, stride=2)"]
    assert [d.code for d in uses[1].out_shape] == ["N", "2 * width", "16", "16"]
    assert uses[1].params.code == "12 * width + 56 * width * width"


IDENTITY = """model M(c=8)
input 8x8x8
block Basic(out):
    residual:
        conv2d out k=3 p=1
        relu
        conv2d out k=3 p=1
    relu
Basic 8
Basic c
"""


def test_identity_residual_block_takes_its_one_size(tmp_path: Path) -> None:
    """The residual forces `out == in_channels`: the class takes `out` alone, the uses pass one
    value, and the model checks that value against the channels that reach it."""
    result, module = _generate(tmp_path, IDENTITY)
    (basic,) = result.traced.blocks
    assert [a.name for a in basic.args] == ["out"] and basic.constraints[0].condition == "out >= 1"
    assert [d.code for d in basic.input_shape] == ["N", "out", "H", "W"]
    assert [n.call for n in result.traced.layers] == ["Basic(8)", "Basic(c)"]
    assert "nn.Conv2d(out, out, kernel_size=3, padding=1)" in result.files[0].text
    (check,) = [c for c in result.traced.constraints if c.symbol is None]
    assert check.condition == "c == 8"
    assert check.comment == "Basic: `Basic c` (residual)"
    with pytest.raises(ValueError) as refused:
        module.M(c=9)
    assert str(refused.value) == "c must equal 8 (in Basic, a residual adds its input), got c=9"
    assert module.M()(torch.randn(2, 8, 8, 8)).shape == (2, 8, 8, 8)
    block = module.Basic(4).eval()  # the class works at any width on its own
    assert block(torch.randn(2, 4, 5, 5)).shape == (2, 4, 5, 5)
    with pytest.raises(ValueError, match="^out must be at least 1"):
        module.Basic(0)
    test_file = result.files[1]
    assert "block = Basic(out=8).eval()" in test_file.text
    run_generated_tests(Path(test_file.path))


def test_a_block_whose_input_size_may_differ_keeps_it() -> None:
    """With a shortcut, or a residual body whose width is not the parameter, the input size
    stays an argument of its own."""
    shortcut = trace(parse(RESNET))
    assert [a.name for a in shortcut.blocks[0].args] == ["in_channels", "out", "stride"]
    doubled = trace(
        parse("input 8x8x8\nblock B(half):\n    residual:\n        conv2d half * 2 k=1\nB 4\n")
    )
    (block,) = doubled.blocks
    assert [a.name for a in block.args] == ["in_channels", "half"]
    assert [c.condition for c in block.constraints] == ["half >= 1", "2 * half == in_channels"]


def test_concat_sums_symbolic_channels() -> None:
    traced = trace(
        parse(
            "model M(a=8, b=4)\ninput (3, h=16, w=16)\nconcat:\n    branch:\n"
            "        conv2d a k=1\n    branch:\n        conv2d b k=3 p=1\n"
            "    branch:\n        identity\n"
        )
    )
    (merge,) = traced.layers
    assert isinstance(merge, TracedMerge)
    assert [d.code for d in merge.out_shape] == ["N", "a + b + 3", "h", "w"]


@pytest.mark.parametrize(
    ("sample", "dim", "flatten", "joined"),
    [((3, 8), -1, "flatten", 1), ((3, 8), 1, "flatten", 1), ((5, 3, 8), -1, "flatten 2", 2)],
)
def test_concat_dim_counts_in_the_branch_outputs_rank(
    tmp_path: Path, sample: tuple[int, ...], dim: int, flatten: str, joined: int
) -> None:
    """Branches that change the rank (flatten) are joined at `dim` of their outputs, not of the
    merge's input: `concat dim=-1:` of two flattened (N, 3, 8) branches is dim 1 (it was written
    `dim=2`, -1 of the rank-3 input, and `check` called it a seqgen bug at c=9)."""
    shape = ", ".join(map(str, sample))
    text = (
        f"model M(c=4)\ninput ({shape})\nconcat dim={dim}:\n    branch:\n        {flatten}\n"
        f"    branch:\n        {flatten}\n        linear c\nlinear 2\n"
    )
    result, module = _generate(tmp_path, text, f"cat_{len(sample)}_{dim + 1}")
    (merge,) = [n for n in result.traced.layers if isinstance(n, TracedMerge)]
    assert merge.dim == joined
    assert f"dim={joined},\n" in result.files[0].text
    x = torch.randn(2, *sample)
    for c in (4, 9):
        model = module.M(c=c).eval()
        concat, head = model.model
        expected = head(torch.cat([b(x) for b in concat.branches.values()], dim=dim))
        torch.testing.assert_close(model(x), expected)


def test_residual_that_needs_equal_channels_becomes_an_init_check(tmp_path: Path) -> None:
    text = "model M(c=8)\ninput 8x8x8\nresidual:\n    conv2d c k=3 p=1\n    relu\n"
    result, module = _generate(tmp_path, text)
    (check,) = [c for c in result.traced.constraints if "==" in c.condition]
    assert (check.condition, check.failed) == ("c == 8", "c != 8")
    assert check.message == "c must equal 8 (a residual adds its input)"
    assert check.comment == "residual"
    assert "        # residual\n        if c != 8:\n" in result.files[0].text
    module.M(c=8)
    with pytest.raises(ValueError) as refused:
        module.M(c=9)
    assert str(refused.value) == "c must equal 8 (a residual adds its input), got c=9"


def test_a_loop_alone_in_a_branch_stays_one_branch(tmp_path: Path) -> None:
    """`repeat d:` as a branch's only node is one branch of d layers in a row, not d branches
    (its `*[...]` is wrapped in an nn.Sequential, not splatted into the merge)."""
    text = "model M(d=3)\ninput 4\nadd:\n  branch:\n    repeat d:\n      linear 4\n"
    text += "  branch:\n    identity\n"
    _, module = _generate(tmp_path, text)
    model = module.M(d=3).eval()
    add = model.model[0]
    assert list(add.branches) == ["0", "1"] and len(add.branches["0"]) == 3
    x = torch.randn(2, 4)
    chain = x
    for layer in add.branches["0"]:
        chain = layer(chain)
    with torch.no_grad():
        assert torch.allclose(model(x), chain + x)


def test_skip_connections_derive_a_divisibility_rule(tmp_path: Path) -> None:
    text = (
        "model U(ch=4)\ninput (3, h=32, w=32)\nconv2d ch k=3 p=1\nconcat:\n    branch:\n"
        "        identity\n    branch:\n        maxpool2d 2\n        conv2d ch k=3 p=1\n"
        "        maxpool2d 2\n        convtranspose2d ch k=4 s=4\nflatten\nlinear 10\n"
    )
    result, module = _generate(tmp_path, text)
    rules = {c.condition: c.message for c in result.traced.constraints}
    assert "h % 4 == 0" in rules and "h must be a multiple of 4" in rules["h % 4 == 0"]
    module.U(h=36, w=8)
    with pytest.raises(ValueError, match="multiple of 4"):
        module.U(h=34)


def test_free_input_dims_document_the_rule(tmp_path: Path) -> None:
    text = (
        "input (3, h=32, w=32)\nconcat:\n    branch:\n        identity\n    branch:\n"
        "        maxpool2d 2\n        upsample scale_factor=2\n"
    )
    _result, module = _generate(tmp_path, text, "free")
    assert "h must be a multiple of 2" in module.Free.__doc__
    model = module.Free().eval()
    assert tuple(model(torch.randn(1, 3, 10, 6)).shape) == (1, 6, 10, 6)
    # forward refuses it before the merge could fail on it
    with pytest.raises(ValueError, match=r"h \(dim 2\) must be a multiple of 2 .*got h=9"):
        model(torch.randn(1, 3, 9, 6))


@pytest.mark.parametrize(
    "text, message",
    [
        ("input 3x8x8\nresidual:\n    conv2d 16 k=3 s=2 p=1\n", "add a `shortcut:`"),
        (
            "input 3x8x8\nadd:\n    branch:\n        conv2d 4 k=1\n"
            "    branch:\n        conv2d 5 k=1\n",
            "branch 1 gives (N, 4, 8, 8), branch 2 gives (N, 5, 8, 8)",
        ),
        (
            "input 3x8x8\nconcat dim=3:\n    branch:\n        conv2d 4 k=1\n    branch:\n"
            "        conv2d 5 k=1\n",
            "must agree in every dim but dim 3",
        ),
        (
            "input 3x8x8\nmultiply:\n    branch:\n        identity\n    branch:\n        flatten\n",
            "do not broadcast",
        ),
        ("input 16\nblock B:\n    linear in_channels\nB\n", "not a size of this block's rank-2"),
        ("input 3x8x8\nblock B:\n    relu\nB\nflatten\nB\n", "traced for rank 4"),
        ("input 3x8x8\nblock B(c):\n    conv2d c k=9\nB 4\n", "first use (line 4"),
        (
            "input 3x8x8\nblock B(p=0.1):\n    dropout p\nB 'x'\n",
            "B's parameter p takes a float, got 'x', a str",
        ),
        ("input 3x8x8\nblock B(c=4):\n    conv2d c 1\nB 8.0\n", "got 8.0, a float; hint: write 8"),
        (  # a rule broken at the defaults says which values, and no bare "with the defaults"
            "model P(L=50)\ninput (L, 8)\npos_encoding max_len=10\n",
            "the sequence length (50) must be at most max_len (10), at the defaults (L=50); "
            "hint: None",
        ),
        (
            "input 3x8x8\nconv2d 4 k=1\nadd:\n    branch:\n        dropout\n"
            "        relu inplace=True\n"
            "    branch:\n        identity\n",
            "overwrites the input",
        ),
    ],
)
def test_trace_errors_name_the_merge_or_block(text: str, message: str) -> None:
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    assert message in f"{info.value}; hint: {info.value.diagnostic.hint}"


# ------------------------------------------------------------------------------ differential


SPECS = {
    "resnet": RESNET,
    "inverted_residual": (
        "model M(c=8, t=6)\ninput (8, h=12, w=12)\nblock Inverted(expand):\n    residual:\n"
        "        conv2d in_channels * expand k=1 bias=False\n        batchnorm2d\n        relu6\n"
        "        conv2d in_channels * expand k=3 p=1 g=in_channels * expand bias=False\n"
        "        batchnorm2d\n        relu6\n        conv2d in_channels k=1 bias=False\n"
        "        batchnorm2d\nconv2d c k=1\nInverted t\nInverted 2\nadaptiveavgpool2d 1\n"
        "flatten\nlinear 10\n"
    ),
    "dense": (
        "model D(g=4)\ninput 3x16x16\nblock Dense(growth):\n    concat:\n        branch:\n"
        "            identity\n        branch:\n            batchnorm2d\n            relu\n"
        "            conv2d growth k=3 p=1\nconv2d 2 * g k=3 p=1\nrepeat 3:\n    Dense g\n"
        "avgpool2d 2\nflatten\n"
    ),
    "nested": (
        "model Nested(a=4, b=2)\ninput (3, L=12)\nconcat:\n    branch:\n        conv1d a k=3 p=1\n"
        "    branch:\n        add:\n            branch:\n                conv1d b k=1\n"
        "            branch:\n                conv1d b k=3 p=1\n"
        "multiply:\n    branch:\n        identity\n    branch:\n        adaptivemaxpool1d 1\n"
        "        sigmoid\n"
    ),
}


def _points(defaults: dict[str, int]) -> list[dict[str, int]]:
    moves = [lambda v: v + 1, lambda v: 2 * v + 1, lambda v: v + 3]
    return [{n: move(v) for n, v in defaults.items()} for move in moves] + [
        {**defaults, n: defaults[n] * 2} for n in defaults
    ]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_generated_code_matches_torch_at_other_values(name: str, tmp_path: Path) -> None:
    result, module = _generate(tmp_path, SPECS[name], name)
    traced = result.traced
    cls = getattr(module, traced.spec.class_name)
    defaults = {p.name: p.default for p in traced.spec.params if type(p.default) is int}
    checked = 0
    for point in _points(defaults):
        ctor = {k: v for k, v in point.items() if k not in traced.free_dims}
        try:
            model = cls(**ctor).eval()
        except ValueError:
            continue  # the generated __init__ refuses these values: fine, not compared
        values = {**point, "N": 2}
        x = torch.randn([evaluate_source(d.code, values) for d in traced.input_shape])
        with torch.no_grad():
            for layer, node in zip(model.model, traced.layers):
                x = layer(x)
                want = tuple(evaluate_source(d.code, values) for d in node.out_shape)
                assert tuple(x.shape) == want, (name, point, node.call)
                got = sum(p.numel() for p in layer.parameters())
                assert got == evaluate_source(node.params.code, values), (name, point, node.call)
        checked += 1
    assert checked >= 2, "too few accepted points to compare"


def test_generated_tests_pass_and_test_each_block(tmp_path: Path) -> None:
    result, _ = _generate(tmp_path, RESNET, "resnet")
    test_file = Path(result.files[1].path)
    assert "def test_block_basic_at_its_first_use" in test_file.read_text()
    run_generated_tests(test_file)


def test_each_block_is_one_class_and_helpers_only_when_used(tmp_path: Path) -> None:
    result, _ = _generate(tmp_path, RESNET, "resnet")
    text = result.files[0].text
    assert text.count("class Basic(nn.Sequential):") == 1
    for helper, used in [("Residual", True), ("Concat", True), ("Multiply", True), ("Add", False)]:
        assert (f"class {helper}(nn.Module):" in text) is used
    assert "import seqgen" not in text and "from seqgen" not in text


def test_summary_nests_block_rows_with_per_use_sizes() -> None:
    from seqgen.report.rows import rows

    table = rows(trace(parse(RESNET)))
    depths = [r.depth for r in table]
    assert max(depths) == 2
    inner = [r for r in table if r.depth == 2 and r.label.startswith("nn.Conv2d(in_channels")]
    assert [r.sizes for r in inner] == [(16, 32, 32), (16, 32, 32), (32, 16, 16), (32, 16, 16)]
    assert sum(r.params for r in table if r.depth == 0) == trace(parse(RESNET)).total_params.value


def test_lints_inside_blocks_point_at_the_block_line() -> None:
    from seqgen.report.lint import lint

    text = (
        "input 3x8x8\nblock B(c):\n    conv2d c k=3 p=1\n    batchnorm2d\n"
        "block Unused:\n    relu\nB 4\nflatten\nlinear 2\n"
    )
    found = {(d.location.line, d.code) for d in lint(trace(parse(text)))}  # type: ignore[union-attr]
    assert (4, "W003 bias-before-batchnorm") in found
    assert (5, "W010 unused-block") in found


def test_a_block_parameter_named_like_an_input_dim(tmp_path: Path) -> None:
    """`input (16, d)` and `block FF(d)`: the block's own `d` is no input dim of the model (the
    trace raised KeyError)."""
    text = "model M(d=32)\ninput (16, d)\nblock FF(d):\n    residual:\n        linear d\nFF d\n"
    result, module = _generate(tmp_path, text)
    assert result.traced.dim_sizes == (("d", (1, 32, 64), 0),)
    assert module.M(d=8)(torch.zeros(2, 16, 8)).shape == (2, 16, 8)
