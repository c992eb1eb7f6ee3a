"""Optional names: `conv2d 16 k=3 name=stem`, `Basic 64 name=layer1`, `concat name=skip:` and
`branch name=left:` give stable, readable state_dict keys."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import run_generated_tests

from seqgen.api import generate, load, options_for, trace_spec
from seqgen.errors import SeqgenError
from seqgen.ir import BlockUse, MergeSpec, Num
from seqgen.lang.parser import parse
from seqgen.project.write import write_files
from seqgen.report.rows import rows

SPEC = "model Net(n=10)\ninput 3x8x8\nconv2d 16 k=3 name=stem\nrelu\nflatten\nlinear n name=head\n"


def _generated(tmp_path: Path, text: str):
    spec = tmp_path / "named.seq"
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location("named_model", tmp_path / "named.py")
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return result, module


def test_named_layers_key_the_state_dict_and_unnamed_keep_their_index(tmp_path: Path) -> None:
    result, module = _generated(tmp_path, SPEC)
    model = module.Net()
    assert list(model.state_dict()) == [
        "model.stem.weight",
        "model.stem.bias",
        "model.head.weight",
        "model.head.bias",
    ]
    assert [name for name, _ in model.model.named_children()] == ["stem", "1", "2", "head"]
    assert "from collections import OrderedDict" in result.files[0].text
    assert '("1", nn.ReLU()),' in result.files[0].text


def test_named_model_passes_its_generated_tests(tmp_path: Path) -> None:
    _generated(tmp_path, SPEC)
    run_generated_tests(tmp_path / "test_named.py")


def test_without_names_the_output_is_a_plain_sequential(tmp_path: Path) -> None:
    result, module = _generated(tmp_path, "input 4\nlinear 2\n")
    assert "OrderedDict" not in result.files[0].text
    assert list(module.Named().state_dict()) == ["model.0.weight", "model.0.bias"]


def test_name_is_not_a_constructor_argument() -> None:
    (layer,) = parse("input 4\nlinear 2 name=head bias=False\n", "t.seq").layers
    assert layer.key == "head" and [k.name for k in layer.kwargs] == ["bias"]
    traced = trace_spec(parse("input 4\nlinear 2 name=head bias=False\n", "t.seq"))
    assert traced.layers[0].call == "nn.Linear(4, 2, bias=False)"


@pytest.mark.parametrize(
    "line, message",
    [
        ("linear 2 name=2a", "is not a valid Python identifier"),
        ("linear 2 name=class", "keyword or dunder"),
        ("linear 2 name=__init__", "keyword or dunder"),
        ("linear 2 name='a b'", "is not a valid Python identifier"),
        ("linear 2 name=forward", "taken by nn.Sequential"),
        ("linear 2 name=x name=y", "'name' is given twice"),
    ],
)
def test_bad_names_are_located_errors(tmp_path: Path, line: str, message: str) -> None:
    spec = tmp_path / "m.seq"
    spec.write_text(f"input 4\n{line}\n", encoding="utf-8")
    with pytest.raises(SeqgenError) as info:
        trace_spec(load(str(spec))[1])
    assert message in info.value.render()
    assert info.value.location is not None and info.value.location.line == 2


def test_names_are_unique_also_after_repeat() -> None:
    with pytest.raises(SeqgenError, match="already used on line 2"):
        parse("input 4\nlinear 4 name=a\nrelu name=a\n", "t.seq")
    with pytest.raises(SeqgenError, match="inside a `repeat` block"):
        parse("input 4\nrepeat 2:\n  linear 4 name=a\n", "t.seq")


# ------------------------------------------------- names on block uses, merges and branches

NESTED = """model Net(n=4)
input 3x8x8

block Stage(out):
    conv2d out k=3 p=1 name=conv
    relu

Stage 8 name=stem
concat dim=1 name=skip:
    branch name=keep:
        identity
    branch name=down:
        maxpool2d 2
        Stage 8
        upsample scale_factor=2
    branch:
        conv2d 4 k=1 name=proj
residual name=res:
    conv2d 20 k=1
    relu
add:
    branch name=a:
        identity
    branch:
        conv2d 20 k=1
flatten
linear n name=head
"""


def test_names_on_uses_merges_and_branches_parse() -> None:
    spec = parse(NESTED, "t.seq")
    use, concat, residual, add = spec.layers[:4]
    assert isinstance(use, BlockUse) and use.key == "stem" and use.kwargs == ()
    assert isinstance(concat, MergeSpec) and concat.key == "skip" and concat.dim is not None
    assert concat.branch_keys == ("keep", "down", None)
    assert isinstance(residual, MergeSpec) and residual.key == "res"
    assert residual.branch_keys == ()
    assert isinstance(add, MergeSpec) and add.key is None and add.branch_keys == ("a", None)
    assert spec.blocks[0].body[0].key == "conv"  # type: ignore[union-attr]
    # `name=` and `dim=` in either order
    other = parse(NESTED.replace("concat dim=1 name=skip:", "concat name=skip dim=2:"), "t.seq")
    assert other.layers[1].key == "skip" and other.layers[1].dim == Num(  # type: ignore[union-attr]
        2,
        other.layers[1].dim.loc,  # type: ignore[union-attr]
    )


def test_unnamed_merges_parse_as_before() -> None:
    spec = parse("input 4\nadd:\n  branch:\n    identity\n  branch:\n    relu\n", "t.seq")
    (merge,) = spec.layers
    assert isinstance(merge, MergeSpec) and merge.key is None and merge.branch_keys == ()


def test_names_key_the_state_dict_at_every_level(tmp_path: Path) -> None:
    result, module = _generated(tmp_path, NESTED.replace("model Net", "model Named"))
    model = module.Named(n=5)
    keys = list(model.state_dict())
    assert "model.stem.conv.weight" in keys  # a named block use, a named layer in the block
    assert "model.skip.branches.down.1.conv.weight" in keys  # merge, branch, block body
    assert "model.skip.branches.2.proj.weight" in keys  # an unnamed branch keeps its index
    assert "model.res.body.0.weight" in keys
    assert "model.3.branches.1.weight" in keys  # an unnamed merge keeps its index
    assert "model.head.weight" in keys and model.state_dict()["model.head.weight"].shape[0] == 5
    # a named layer alone in a branch keeps its name: the branch is an nn.Sequential
    assert '("proj", nn.Conv2d(' in result.files[0].text
    torch.manual_seed(1)
    other = module.Named(n=5)
    other.load_state_dict(model.state_dict())  # strict: every key matches
    x = torch.randn(2, 3, 8, 8)
    model.eval(), other.eval()
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
    scripted = torch.jit.script(model)
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))


def test_named_nested_model_passes_its_generated_tests(tmp_path: Path) -> None:
    _generated(tmp_path, NESTED)
    run_generated_tests(tmp_path / "test_named.py")


def test_unnamed_merges_keep_their_index_keys(tmp_path: Path) -> None:
    _, module = _generated(
        tmp_path, "input 4\nconcat:\n  branch:\n    identity\n  branch:\n    linear 3\n"
    )
    assert list(module.Named().state_dict()) == [
        "model.0.branches.1.weight",
        "model.0.branches.1.bias",
    ]


@pytest.mark.parametrize(
    "text, line, message",
    [
        (
            "add:\n  branch name=a:\n    relu\n  branch name=a:\n    relu\n",
            4,
            "already used on line 3",
        ),
        (
            "add name=x name=y:\n  branch:\n    relu\n  branch:\n    relu\n",
            1,
            "'name' is given twice",
        ),
        ("add name=2x:\n  branch:\n    relu\n  branch:\n    relu\n", 1, "not a valid Python"),
        ("add:\n  branch name=for:\n    relu\n  branch:\n    relu\n", 2, "keyword or dunder"),
        ("add k=2:\n  branch:\n    relu\n  branch:\n    relu\n", 1, "`add` takes only `name=N`"),
        ("residual:\n  relu\nshortcut name=s:\n  relu\n", 3, "keyed `shortcut` already"),
        (
            "relu name=a\nadd name=a:\n  branch:\n    relu\n  branch:\n    relu\n",
            2,
            "already used on line 2",
        ),
        (
            "repeat 2:\n  add name=a:\n    branch:\n      relu\n    branch:\n      relu\n",
            2,
            "inside a `repeat` block",
        ),
        (
            "add:\n  branch:\n    repeat 2:\n      relu name=r\n  branch:\n    relu\n",
            4,
            "inside a `repeat` block",
        ),
        (
            "add:\n  branch:\n    relu name=r\n    relu name=r\n  branch:\n    relu\n",
            4,
            "already used on line 4",
        ),
    ],
)
def test_bad_merge_names_are_located_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(SeqgenError) as info:
        parse(f"input 4\n{text}", "t.seq")
    assert message in info.value.render()
    assert info.value.location is not None and info.value.location.line == line + 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("input 4\nblock B(name=1):\n  relu\nB name=x\n", "has a parameter called 'name'"),
        ("input 4\nblock B:\n  relu\nB name=b\nB name=b\n", "already used on line 4"),
    ],
)
def test_bad_use_names_are_errors(text: str, message: str) -> None:
    with pytest.raises(SeqgenError, match=message):
        parse(text, "t.seq")


@pytest.mark.parametrize(
    "text, message",
    [
        ("add name=forward:\n  branch:\n    relu\n  branch:\n    relu\n", "nn.Sequential itself"),
        ("add:\n  branch name=keys:\n    relu\n  branch:\n    relu\n", "nn.ModuleDict itself"),
    ],
)
def test_names_taken_by_the_containers_are_errors(tmp_path: Path, text: str, message: str) -> None:
    spec = tmp_path / "m.seq"
    spec.write_text(f"input 4\n{text}", encoding="utf-8")
    with pytest.raises(SeqgenError) as info:
        trace_spec(load(str(spec))[1])
    assert message in info.value.render()
    assert info.value.location is not None and info.value.location.line == 2


def test_names_beside_a_repeat_depth_loop_are_fine() -> None:
    # the loop is one entry (an nn.Sequential of its passes): the keys after it are fixed
    spec = parse("model M(d=2)\ninput 4\nlinear 4 name=a\nrepeat d:\n  linear 4\n", "t.seq")
    assert spec.layers[0].key == "a"  # type: ignore[union-attr]


def test_tables_label_named_nodes_and_branches() -> None:
    """`seqgen check`/`summary` rows: a named node reads `NAME: call`, a named branch has a
    `branch NAME` row above its layers, and unnamed ones are as before."""

    text = (
        "model T\ninput 3x8x8\nconv2d 4 3 p=1 name=stem\nrelu\nconcat dim=1 name=fuse:\n"
        "    branch name=left:\n        identity\n    branch:\n        conv2d 2 1\n"
    )
    labels = [r.label for r in rows(trace_spec(parse(text)))]
    assert labels == [
        "stem: nn.Conv2d(3, 4, 3, padding=1)",
        "nn.ReLU()",
        "fuse: Concat(2 branches, dim=1)",
        "branch left",
        "nn.Identity()",
        "nn.Conv2d(4, 2, 1)",
    ]
