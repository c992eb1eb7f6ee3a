"""The generated `__init__`'s checks read as Python: each ValueError says the rule once, in the
constructor's argument names, why in the generated code's words, and the values it got; the spec
line is a comment above the check, never part of the message."""

from __future__ import annotations

import ast
import importlib.util
import io
import tokenize
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import EXAMPLES

from seqgen.api import generate, options_for
from seqgen.ir import Constraint
from seqgen.project.write import write_files
from seqgen.render.context import _check
from seqgen.render.messages import MESSAGE_LINE, MESSAGE_PIECE


def _generate(tmp_path: Path, text: str) -> tuple[str, Any]:
    spec = tmp_path / "net.seq"
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(
        f"_msg_{id(tmp_path)}", tmp_path / "net.py"
    )
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return result.files[0].text, getattr(module, result.traced.spec.class_name)


def _refusal(cls: Any, **values: int) -> str:
    with pytest.raises(ValueError) as refused:
        cls(**values)
    return str(refused.value)


@pytest.mark.parametrize(
    ("text", "values", "message", "comment"),
    [
        (  # an argument passed as is: the layer, not the argument's name again
            "model M(stride=2)\ninput 3x16x16\nconv2d 8 3 s=stride\n",
            {"stride": 0},
            "stride must be at least 1 (for Conv2d), got stride=0",
            "spec line 3: Conv2d stride",
        ),
        (  # a parameter under another name: which argument of which layer it is
            "model M(k=3)\ninput 3x16x16\nconv2d 8 k\n",
            {"k": 0},
            "k must be at least 1 (Conv2d's kernel_size), got k=0",
            "spec line 3: Conv2d kernel_size",
        ),
        (  # a bound derived from the layer's rule: the rule it comes from, in Python names
            "model M(k=5)\ninput 3x16\nconv1d 4 k - 2\n",
            {"k": 2},
            "k must be at least 3 (Conv1d: kernel_size (k - 2) must be at least 1), got k=2",
            "spec line 3: Conv1d kernel_size",
        ),
        (
            "model M(c=8)\ninput 3x16x16\nconv2d c 3\nflatten\nlinear 10\n",
            {"c": 0},
            "c must be at least 1 (Conv2d's output would be empty), got c=0",
            "spec line 3: Conv2d output size",
        ),
        (  # a condition checked as written: its names in the order it reads them
            "model M(c=8, g=2)\ninput 8x8x8\nconv2d c 3 groups=g\n",
            {"c": 7},
            "c must be divisible by g (Conv2d's out_channels and groups), got c=7, g=2",
            "spec line 3: Conv2d out_channels and groups",
        ),
        (
            "model M(c=8)\ninput 8x8x8\nresidual:\n    conv2d c k=3 p=1\n",
            {"c": 9},
            "c must equal 8 (a residual adds its input), got c=9",
            "spec line 3: residual",
        ),
        (
            "model M(h=32)\ninput (3, h, 32)\nconv2d 4 k=3 p=1\nconcat:\n    branch:\n"
            "        identity\n    branch:\n        maxpool2d 2\n        upsample scale_factor=2\n"
            "conv2d 4 1\n",
            {"h": 33},
            "h must be a multiple of 2 (concat: branch 1 and branch 2 must agree in dim 2), "
            "got h=33",
            "spec line 4: concat",
        ),
        (  # a block's rule, seen from the model: which block, and the rule inside it
            "model M(w=8)\ninput 3x8x8\nblock B(out):\n    conv2d out 1\nB w\nconv2d 4 1\n",
            {"w": 0},
            "w must be at least 1 (in B, Conv2d's output would be empty), got w=0",
            "spec line 5: B (spec line 4: Conv2d output size)",
        ),
    ],
)
def test_a_refusal_says_the_rule_once_in_python_terms(
    tmp_path: Path, text: str, values: dict[str, int], message: str, comment: str
) -> None:
    source, cls = _generate(tmp_path, text)
    assert _refusal(cls, **values) == message
    assert f"        # {comment}\n        if " in source
    assert "spec line" not in message


DIVIDES = """\
model M(r=4)
input (16, 8)
block B(r=4):
    linear in_features // r
    relu
B r=r
"""


def test_a_division_by_a_parameter_is_checked_before_it_divides(tmp_path: Path) -> None:
    """`in_features // r` at r=0: a ValueError naming r, not ZeroDivisionError, in the model and
    in the block's class; other values build what torch builds."""
    source, cls = _generate(tmp_path, DIVIDES)
    assert _refusal(cls, r=0) == "r must not be 0 (8 // r divides by it), got r=0"
    block = cls.__init__.__globals__["B"]  # the block's class, from the same module
    assert _refusal(block, in_features=16, r=0) == (
        "r must not be 0 (in_features // r divides by it), got r=0"
    )
    assert source.index("if r == 0:") < source.index("if in_features // r < 1:")
    for r in (1, 2, 3, 8):
        out = cls(r=r)(torch.zeros(2, 16, 8))
        assert out.shape == torch.nn.Linear(8, 8 // r)(torch.zeros(2, 16, 8)).shape
    for r in (9, -1, -8):  # an empty or negative output: refused as before
        _refusal(cls, r=r)


def test_checks_come_in_the_constructors_argument_order(tmp_path: Path) -> None:
    """Not seqgen's order (by name, or by layer): zeta is checked before alpha, as declared; a
    condition on several arguments comes after those on one."""
    source, cls = _generate(
        tmp_path,
        "model M(zeta=8, alpha=8, g=2)\ninput 8x8x8\nconv2d alpha 1\nconv2d zeta 1 groups=g\n",
    )
    tests = [line.strip() for line in source.splitlines() if line.strip().startswith("if ")]
    assert tests[:4] == ["if zeta < 1:", "if alpha < 1:", "if g < 1:", "if alpha % g != 0:"]
    assert _refusal(cls, zeta=0, alpha=0) == (
        "zeta must be at least 1 (Conv2d's output would be empty), got zeta=0"
    )


def test_no_generated_message_cites_the_spec() -> None:
    """In the committed examples, every check of a model or block class has its comment, and no
    message names a spec line."""
    checked = 0
    models = (p for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_"))
    for path in sorted(models):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for cls in ast.parse(source).body:
            doc = ast.get_docstring(cls) if isinstance(cls, ast.ClassDef) else None
            if doc is None or not doc.startswith("Maps "):
                continue  # a runtime helper checks its own input
            init = next(f for f in cls.body if isinstance(f, ast.FunctionDef))
            for check in (n for n in init.body if isinstance(n, ast.If)):
                assert lines[check.lineno - 2].startswith("        # spec line "), path.name
                message = ast.get_source_segment(source, check.body[0]) or ""
                assert "spec line" not in message and "used on line" not in message, message
                checked += 1
    assert checked > 20


def _constraint(message: str, names: tuple[str, ...]) -> Constraint:
    return Constraint("x >= 1", None, None, "x < 1", 0, message, names=names)


@pytest.mark.parametrize(
    ("message", "names"),
    [
        ("stride must be at least 1 (for Conv2d)", ("stride",)),
        (
            "c3_reduce must be at least 1 (in ConvBN, Conv2d's output would be empty)",
            ("c3_reduce",),
        ),
        (
            "in_channels // r must be at least 1 (Conv2d's output would be empty) and a "
            "much longer reason that needs three strings {braces} and all",
            ("in_channels", "r"),
        ),
        ("h must be a multiple of 4 {", ()),
    ],
)
def test_a_message_is_written_in_strings_that_fit(message: str, names: tuple[str, ...]) -> None:
    source = _check(_constraint(message, names))["message"]
    strings = [
        t.string
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type == tokenize.STRING
    ]
    assert " ".join(strings) == source
    limit = MESSAGE_LINE if len(strings) == 1 else MESSAGE_PIECE
    assert all(len(ast.literal_eval(s.lstrip("f"))) <= limit for s in strings), strings
    # only a string that holds a value is an f-string; the text's own braces stay braces
    for s in strings:
        assert s.startswith("f") == any("{" + n + "}" in s for n in names), s
    values = {n: f"<{n}>" for n in names}
    # what the generated raise says, each value a marker: string literals and names only
    said = eval(f"({source})", {"__builtins__": {}}, values)
    assert said == (
        message + ", got " + ", ".join(f"{n}=<{n}>" for n in names) if names else message
    )
