"""Parser: the spec language contract, and bad input reported with a location."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqgen.errors import SeqgenError, SpecReadError, SpecSyntaxError
from seqgen.ir import BinOp, Const, Name, Num, Str, TupleExpr
from seqgen.lang.names import camel_case
from seqgen.lang.parser import parse, parse_shape, read_spec
from seqgen.lang.values import expr_source


def layers(text: str):
    return parse("input 3x8x8\n" + text, "t.seq").layers


def test_model_line_and_params() -> None:
    spec = parse("model Net(a=1, b=2.5, c=True, d='x', e=-3)\ninput (a,)\nlinear a", "t.seq")
    assert spec.class_name == "Net"
    assert [(p.name, p.default) for p in spec.params] == [
        ("a", 1),
        ("b", 2.5),
        ("c", True),
        ("d", "x"),
        ("e", -3),
    ]
    assert [p.type_name for p in spec.params] == ["int", "float", "bool", "str", "int"]


def test_class_name_defaults_to_camel_case_stem() -> None:
    assert parse("input 4\nlinear 2", "dir/my_small-net.seq").class_name == "MySmallNet"
    assert camel_case("3d_unet") == "Model3dUnet"


@pytest.mark.parametrize("text", ["3x32x32", "(3, 32, 32)", "(3,32,32,)"])
def test_input_forms(text: str) -> None:
    dims, new = parse_shape(text)
    assert [d.value for d in dims] == [3, 32, 32] and new == []  # type: ignore[union-attr]


def test_input_declares_named_dim() -> None:
    spec = parse("input (8, seq_len=50)\nconv1d 4 3", "t.seq")
    assert spec.params[0].name == "seq_len" and spec.params[0].default == 50
    assert spec.params[0].from_input
    assert isinstance(spec.input_shape[1], Name)


def test_input_override_replaces_the_line() -> None:
    spec = parse("input 3x32x32\nconv2d 4 3", "t.seq", input_override="(3, h=64, 64)")
    assert [expr_source(d) for d in spec.input_shape] == ["3", "h", "64"]
    assert spec.param("h") is not None


def test_layer_args_and_aliases() -> None:
    (layer,) = layers("Conv2d 16 k=3 s=2 p=1 d=1 g=1 bias=False")
    assert layer.name == "Conv2d"
    assert [a.value for a in layer.args] == [16]  # type: ignore[union-attr]
    assert [k.name for k in layer.kwargs] == [
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "bias",
    ]
    assert isinstance(layer.kwargs[-1].value, Const)


def test_sign_glued_to_number_starts_an_argument() -> None:
    (flatten,) = layers("flatten 1 -1")
    assert [a.value for a in flatten.args] == [1, -1]  # type: ignore[union-attr]
    (lin,) = parse("model M(n=4)\ninput 4\nlinear n - 1", "t.seq").layers
    assert len(lin.args) == 1 and isinstance(lin.args[0], BinOp)
    (lin2,) = parse("model M(n=4)\ninput 4\nlinear n-1", "t.seq").layers
    assert len(lin2.args) == 1


def test_arithmetic_precedence_round_trips() -> None:
    (lin,) = parse("model M(h=8)\ninput 4\nlinear (h + 2) * 3 // 2 - -1", "t.seq").layers
    assert expr_source(lin.args[0]) == "(h + 2) * 3 // 2 - (-1)"


def test_values() -> None:
    (layer,) = layers("identity 1.5e-3 'a # not a comment' None (6, 6) (1,)  # comment")
    kinds = [type(a) for a in layer.args]
    assert kinds == [Num, Str, Const, TupleExpr, TupleExpr]
    assert layer.args[1].value == "a # not a comment"  # type: ignore[union-attr]


def test_repeat_unrolls_blocks() -> None:
    spec = parse(
        "input 3x8x8\nrepeat 2:\n  conv2d 4 3 p=1\n  repeat 2:\n    relu\nflatten", "t.seq"
    )
    assert [l.name for l in spec.layers] == ["conv2d", "relu", "relu"] * 2 + ["flatten"]
    assert spec.layers[0].loc.line == 3


@pytest.mark.parametrize(
    "text, message, line, col",
    [
        ("input 3x8x8\nconv2d 16 k=", "dangling '='", 2, 12),
        ("input 3x8x8\nconv2d (16, 3", "unbalanced parenthesis", 2, 8),
        ("input 3x8x8\nconv2d 16)", "unbalanced parenthesis", 2, 10),
        ("input 3x8x8\nrepeat 2:\nrelu", "needs an indented block", 2, 1),
        ("input 3x8x8\n  relu", "unexpected indentation", 2, 1),
        ("input 3x8x8\nrepeat 2:\n    relu\n  relu", "indentation does not match", 4, 1),
        ("input 3x8x8\nrepeat two:\n  relu", "whole number", 2, 8),
        ("input 3x8x8\nrepeat 2\n  relu", "expected ':'", 2, 9),
        ("linear 3", "no `input` line", 1, 1),
        ("model 3D\ninput 3", "class name", 1, 7),
        ("model class\ninput 3\nrelu", "keyword", 1, 7),
        ("model __init__\ninput 3\nrelu", "dunder", 1, 7),
        ("model M(self=1)\ninput 3\nrelu", "reserved", 1, 9),
        ("model M(Add=1)\ninput 3\nrelu", "reserved", 1, 9),  # a merge helper class
        ("model M(a=1, a=2)\ninput 3\nrelu", "defined twice", 1, 14),
        ("model M(a)\ninput 3\nrelu", "needs a default", 1, 10),
        ("model M(a=)\ninput 3\nrelu", "dangling '='", 1, 11),
        ("model M(a=b)\ninput 3\nrelu", "must be a literal", 1, 11),
        ("input 3x8x8\nlinear hidden", "undefined parameter 'hidden'", 2, 8),
        ("input 3x8x8\nlinear 4 / 2", "unexpected character '/'", 2, 10),
        ("input 3x8x8\nlinear 2 ** 3", "'**' is not supported", 2, 10),
        ("input 3x8x8\nlinear 'abc", "unexpected character", 2, 8),
        ("input 3x8x8\nlinear bias=False 4", "positional argument after a keyword", 2, 19),
        ("input 3x8x8\nlinear 4 bias=1 bias=2", "given twice", 2, 17),
        ("input 3x8x8\nrelu\ninput 3", "before the first layer", 3, 1),
        ("input 3x8x8\ninput 3", "one `input` line", 2, 1),
        ("input\nrelu", "needs a shape", 1, 6),
        ("input (3, n=x)\nrelu", "positive whole sample size", 1, 13),
        ("input ()\nrelu", "empty", 1, 7),
        ("input 3x8x8", "no layers", 1, 1),
        ("input 3x8x8\n\tlinear 3", "tabs", 2, 1),
    ],
)
def test_syntax_errors_point_at_the_spec(text: str, message: str, line: int, col: int) -> None:
    with pytest.raises(SpecSyntaxError) as info:
        parse(text, "bad.seq")
    err = info.value
    assert message in str(err)
    assert err.location is not None
    assert (err.location.line, err.location.col) == (line, col)
    rendered = err.render()
    assert rendered.startswith(f"bad.seq:{line}:{col}: error: ")
    assert "^" in rendered


def test_undefined_name_suggests_a_close_one() -> None:
    with pytest.raises(SeqgenError) as info:
        parse("model M(hidden=4)\ninput 3\nlinear hiden", "t.seq")
    assert "did you mean 'hidden'?" in info.value.render()


def test_unreadable_files(tmp_path) -> None:
    def read_and_parse(path: Path) -> None:
        parse(read_spec(path), str(path))

    empty = tmp_path / "empty.seq"
    empty.write_text("  \n# only a comment?\n")
    with pytest.raises(SeqgenError):
        read_and_parse(empty)
    blank = tmp_path / "blank.seq"
    blank.write_text("\n\n")
    with pytest.raises(SpecReadError, match="empty"):
        read_and_parse(blank)
    latin = tmp_path / "latin.seq"
    latin.write_bytes(b"input 3\n# caf\xe9\nrelu\n")
    with pytest.raises(SpecReadError, match="not valid UTF-8") as info:
        read_and_parse(latin)
    assert "latin.seq:2" in str(info.value)
    with pytest.raises(SpecReadError, match="no such file"):
        read_and_parse(tmp_path / "missing.seq")


UNKNOWN_MERGE = """\
model SiameseL1(dim=64)
input left 1x28x28
input right 1x28x28
minus name=towers:
    branch name=left:
        conv2d 8 k=3 p=1
        flatten
        linear dim
    branch name=right from=right shares=left:
linear 1
"""


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (UNKNOWN_MERGE, "'minus' does not open an indented block", "`repeat N:`, `branch:`"),
        (UNKNOWN_MERGE.replace("minus", "concatenate"), "'concatenate'", "did you mean `concat:`"),
        (
            "input 4x8x8\nblock B(c):\n    conv2d c k=1\nB 4:\n    relu\n",
            "'B' does not open",
            "`B` is a block: use it on a line of its own, without the ':'",
        ),
    ],
)
def test_an_unknown_header_is_one_error_and_its_body_is_skipped(
    text: str, message: str, hint: str
) -> None:
    """A line ending with ':' whose word opens nothing (`minus:`) was "expected a value, found
    ':'", then
    "unexpected indentation" on every line of its body and, with `from=` in the body, "input
    'right' is not read": now one error at the word, with the merges that exist."""
    with pytest.raises(SeqgenError) as info:
        parse(text)
    rendered = info.value.render()
    assert rendered.count("error:") == 1, rendered
    assert message in rendered and hint in rendered
    assert "unexpected indentation" not in rendered and "is not read" not in rendered
