"""Fuzzing: any text ends in a result or a SeqgenError; any valid stack generates code that runs.

The strategies here are shared with the long-running harness, fuzz/fuzz_check.py.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import generated_tests_per_file, max_examples, run_generated_tests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from seqgen.api import generate, options_for, trace_spec
from seqgen.errors import InternalError, SeqgenError
from seqgen.ir import TracedModel
from seqgen.lang.parser import parse
from seqgen.layers.torch_classes import layer_names
from seqgen.layers.torch_nn import INFERRED
from seqgen.project.write import write_files

# ------------------------------------------------------------------ spec text, token by token

LAYER_WORDS = sorted({n.lower() for n in layer_names()}) + [
    "Conv2d",
    "LINEAR",
    "lstm",
    "sequential",
    "module",
    "lazylinear",
    "notalayer",
    "model",
    "input",
    "repeat",
    "__class__",
    "import",
    "x",
]
COMMON_LAYERS = [
    "conv1d",
    "conv2d",
    "linear",
    "relu",
    "flatten",
    "maxpool2d",
    "avgpool2d",
    "batchnorm2d",
    "batchnorm1d",
    "dropout",
    "layernorm",
    "identity",
    "unflatten",
    "upsample",
    "convtranspose2d",
    "groupnorm",
    "maxpool1d",
    "adaptiveavgpool2d",
]
PARAM_NAMES = ["a", "n", "h", "w", "c", "hidden", "classes", "seq_len", "k"]
ARG_NAMES = [
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "inplace",
    "p",
    "dim",
    "start_dim",
    "end_dim",
    "eps",
    "momentum",
    "affine",
    "scale_factor",
    "mode",
    "size",
    "output_size",
    "ceil_mode",
    "padding_mode",
    "negative_slope",
    "num_parameters",
    "upscale_factor",
    "value",
    "k",
    "s",
    "d",
    "g",
    "in_features",
    "in_channels",
    "num_features",
    "normalized_shape",
    "device",
    "dtype",
    "out_features",
    "out_channels",
    "unflattened_size",
    "return_indices",
    "count_include_pad",
    "divisor_override",
    "num_groups",
    "track_running_stats",
]
ODD_NAMES = [
    "True",
    "False",
    "None",
    "self",
    "x",
    "N",
    "batch",
    "torch",
    "__class__",
    "__import__",
    "class",
    "lambda",
    "match",
    "_",
    "sum",
    "tuple",
    "ValueError",
]
NUMBER_TEXTS = [
    "0",
    "1",
    "-1",
    "1.",
    ".5",
    "1e5",
    "1e999",
    "-1e999",
    "1E-3",
    "0.0",
    "007",
    "1_0",
    "0x1f",
    "\u0663",
    "\u00b2",
    "9" * 30,
    "9" * 4000,
    "9" * 4400,
    "1" + "0" * 19,
]
ODD_TEXTS = [
    "=",
    "(",
    ")",
    ",",
    ":",
    "+",
    "-",
    "*",
    "//",
    "/",
    "**",
    "x",
    "[",
    "]",
    "{",
    "}",
    ";",
    "\\",
    "@",
    ".",
    "'",
    '"',
    "'''",
    '"""',
    "#",
    "{{ 7*7 }}",
    "{% if 1 %}",
    "\t",
    "\x00",
    "\r",
    "\x0c",
    "\u00a0",
    "\u2028",
    "\u202e",
    "\ufeff",
    "é",
    "😀",
]


def _quote(body: str, q: str) -> str:
    return q + body.replace("\\", "\\\\").replace(q, "\\" + q).replace("\n", "\\n") + q


numbers = st.one_of(
    st.integers(-3, 70).map(str),
    st.integers(0, 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(NUMBER_TEXTS),
)
small_ints = st.integers(0, 12).map(str)
names = st.sampled_from(PARAM_NAMES + ARG_NAMES + ODD_NAMES + LAYER_WORDS)
printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8)
strings = st.one_of(
    st.builds(_quote, printable, st.sampled_from(["'", '"'])),
    st.builds(_quote, st.text(max_size=8), st.sampled_from(["'", '"'])),
    st.sampled_from(
        [
            '"unterminated',
            "'a\\'",
            '"\\"',
            "'\\n\\t\\0\\x41'",
            '"{{ 7*7 }}"',
            "'{% raw %}'",
            '"\\""',
            "''",
            '""',
            '"a # b"',
            "'\\\\'",
        ]
    ),
)
clean_numbers = st.one_of(
    st.integers(-3, 70).map(str),
    st.floats(-10, 10).map(repr),
    st.sampled_from(["1e-3", "0.5", "1.", ".5", "007"]),
)
clean_strings = st.builds(_quote, printable, st.sampled_from(["'", '"']))
comments = st.one_of(printable, st.text(max_size=12)).map(lambda t: "# " + t)
raw = st.text(max_size=10)


@st.composite
def values(draw: st.DrawFn, noisy: bool = True, depth: int = 0) -> str:
    """A spec value: numbers, names, strings, tuples, arithmetic; `noisy` adds malformed ones."""
    leaf = st.one_of(
        small_ints,
        small_ints,
        numbers if noisy else clean_numbers,
        st.sampled_from(PARAM_NAMES),
        strings if noisy else clean_strings,
        st.sampled_from(["True", "False", "None"]),
    )
    if depth >= 3 or draw(st.integers(0, 3)) > 0:
        return draw(leaf)
    kind = draw(st.sampled_from(["tuple", "binop", "neg", "paren"]))
    if kind == "tuple":
        items = draw(st.lists(values(noisy, depth + 1), max_size=4))
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if kind == "binop":
        op = draw(st.sampled_from(["+", "-", "*", "//", " + ", " - ", " * ", " // "]))
        return draw(values(noisy, depth + 1)) + op + draw(values(noisy, depth + 1))
    if kind == "neg":
        return "-" + draw(values(noisy, depth + 1))
    return "(" + draw(values(noisy, depth + 1)) + ")"


tokens = st.one_of(
    numbers, names, strings, st.sampled_from(ODD_TEXTS), values(), st.characters(), raw
)


def kwargs(noisy: bool) -> st.SearchStrategy[str]:
    return st.builds(
        lambda k, v: f"{k}={v}", st.sampled_from(ARG_NAMES + PARAM_NAMES + ODD_NAMES), values(noisy)
    )


@st.composite
def layer_lines(draw: st.DrawFn, noisy: bool) -> str:
    """`NAME arg ... key=value ...`: the shape of a layer line, with arbitrary values."""
    head = draw(st.one_of(st.sampled_from(COMMON_LAYERS), st.sampled_from(LAYER_WORDS)))
    parts = [
        head,
        *draw(st.lists(values(noisy), max_size=3)),
        *draw(st.lists(kwargs(noisy), max_size=3)),
    ]
    if draw(st.integers(0, 5)) == 0:
        parts.append(draw(comments if noisy else printable.map(lambda t: "# " + t)))
    return " ".join(parts)


@st.composite
def plausible_layer_lines(draw: st.DrawFn) -> str:
    """A common layer with small whole-number arguments: the lines that reach the tracer."""
    head = draw(st.sampled_from(COMMON_LAYERS))
    args = draw(st.lists(st.one_of(small_ints, st.sampled_from(PARAM_NAMES)), max_size=2))
    keys = draw(
        st.lists(
            st.sampled_from(
                [
                    "kernel_size",
                    "stride",
                    "padding",
                    "bias",
                    "dim",
                    "k",
                    "s",
                    "p",
                    "eps",
                    "inplace",
                    "start_dim",
                ]
            ),
            max_size=2,
            unique=True,
        )
    )
    given = [
        f"{k}={draw(st.one_of(small_ints, st.sampled_from(['True', 'False', '0.5'])))}"
        for k in keys
    ]
    return " ".join([head, *args, *given])


@st.composite
def token_lines(draw: st.DrawFn) -> str:
    """Tokens of every kind glued together with spaces or nothing."""
    parts = draw(st.lists(tokens, min_size=1, max_size=8))
    seps = draw(
        st.lists(st.sampled_from([" ", " ", "", "  "]), min_size=len(parts), max_size=len(parts))
    )
    return "".join(s + p for s, p in zip(seps, parts)).lstrip(" ")


@st.composite
def model_lines(draw: st.DrawFn) -> str:
    name = draw(st.one_of(st.sampled_from(["Net", "M", "CNN"]), names))
    if draw(st.integers(0, 2)) > 0:  # declare the names values use, so layer lines can parse
        defaults = draw(
            st.lists(st.integers(1, 16), min_size=len(PARAM_NAMES), max_size=len(PARAM_NAMES))
        )
        return "model Net(" + ", ".join(f"{n}={v}" for n, v in zip(PARAM_NAMES, defaults)) + ")"
    if draw(st.booleans()):
        return f"model {name}"
    params = draw(
        st.lists(
            st.builds(
                lambda n, v: f"{n}={v}",
                st.one_of(st.sampled_from(PARAM_NAMES), names),
                st.one_of(numbers, strings, values(noisy=False)),
            ),
            max_size=3,
        )
    )
    return f"model {name}({', '.join(params)})"


@st.composite
def input_lines(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 7))
    if kind in (0, 4, 5, 6, 7):
        dims = draw(st.lists(st.integers(0, 40), min_size=1, max_size=4))
        return "input " + "x".join(map(str, dims))
    if kind == 1:
        dims = draw(
            st.lists(
                st.one_of(
                    st.integers(1, 40).map(str),
                    st.builds(
                        lambda n, v: f"{n}={v}",
                        st.sampled_from(PARAM_NAMES + ODD_NAMES),
                        st.integers(0, 40).map(str),
                    ),
                ),
                min_size=1,
                max_size=4,
            )
        )
        return f"input ({', '.join(dims)}{',' if len(dims) == 1 else ''})"
    if kind == 2:
        return "input " + draw(values(noisy=False))
    return "input" + draw(token_lines())


def _settable(name: str) -> list[tuple[str, object]]:
    """(name, default) of the constructor arguments a spec may give torch.nn.<name>."""
    import torch.nn

    try:
        params = list(inspect.signature(getattr(torch.nn, name).__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    return [
        (p.name, p.default)
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("device", "dtype")
    ]


SIGNATURES = {
    name.lower(): _settable(name)
    for name in layer_names()
    if not name.endswith("Loss") and not name.startswith("Lazy")
}  # quick refusals


@st.composite
def _argument(draw: st.DrawFn, default: object, sizes: list[str]) -> str:
    """A value of the kind a constructor argument's default suggests."""
    if isinstance(default, bool):
        return draw(st.sampled_from(["True", "False"]))
    if isinstance(default, float):
        return draw(st.sampled_from(["0.5", "1.0", "1e-3", "0.0", "2.5"]))
    if isinstance(default, str):
        return draw(st.sampled_from(["'zeros'", "'nearest'", "'mean'", "'reflect'", "'tanh'"]))
    if isinstance(default, tuple):
        items = draw(st.lists(st.sampled_from(sizes), min_size=1, max_size=3))
        return "(" + ", ".join(items) + ",)"
    return draw(st.sampled_from(sizes))  # required, int or None: a size


@st.composite
def plausible_specs(draw: st.DrawFn) -> str:
    """Any torch.nn layers with arguments that fit their signatures, sizes often symbolic."""
    params = {
        n: draw(st.integers(1, 6))
        for n in draw(st.lists(st.sampled_from(["c", "k", "s"]), unique=True))
    }
    sizes = ["1", "2", "3", "4", "0", *params]
    first = draw(st.sampled_from(sorted(SIGNATURES)))
    rank = {"1d": 2, "2d": 3, "3d": 4}.get(first[-2:], draw(st.integers(1, 3)))
    dims = [
        draw(st.one_of(st.integers(1, 12).map(str), st.sampled_from(["h=8", "w=9", "L=16", "h=1"])))
        for _ in range(rank)
    ]
    dims = list(dict.fromkeys(dims))  # a named dim once
    lines = [
        f"model Net({', '.join(f'{n}={v}' for n, v in params.items())})",
        f"input ({', '.join(dims)},)",
    ]
    for i in range(draw(st.integers(1, 4))):
        name = first if i == 0 else draw(st.sampled_from(sorted(SIGNATURES)))
        parts = [name]
        positional = True
        for pname, default in SIGNATURES[name]:
            if pname in INFERRED and draw(st.integers(0, 5)) > 0:
                positional = False
                continue
            if default is inspect.Parameter.empty or draw(st.integers(0, 3)) == 0:
                value = draw(_argument(default, sizes))
                parts.append(value if positional and draw(st.booleans()) else f"{pname}={value}")
                positional = positional and "=" not in parts[-1]
            else:
                positional = False
        lines.append(" ".join(parts))
    return "\n".join(lines)


TREE_LAYERS = [
    "conv2d {c} k=3 p=1",
    "conv2d {c} k=1",
    "conv2d {c} k=k p=k // 2",
    "maxpool2d 2",
    "avgpool2d 3 s=1 p=1",
    "relu",
    "relu inplace=True",
    "batchnorm2d",
    "identity",
    "convtranspose2d {c} k=2 s=2",
    "adaptiveavgpool2d 1",
    "sigmoid",
    "upsample scale_factor=2",
    "linear {c}",
    "flatten",
    "conv1d {c} k=3",
    "dropout 0.1",
    "groupnorm 2",
    "add_identity",
    "unflatten 1 ({c}, 2)",
    "transpose 1 2",
]
MERGE_WORDS = [
    "residual:",
    "concat:",
    "concat dim=2:",
    "concat dim=0:",
    "add:",
    "multiply:",
    "bmm:",
    "reparameterize:",
]


IMAGE_LAYERS = [
    "conv2d {c} k=3 p=1",
    "conv2d {c} k=1",
    "conv2d {c} k=k p=k // 2",
    "maxpool2d 2",
    "avgpool2d 3 s=1 p=1",
    "relu",
    "batchnorm2d",
    "identity",
    "convtranspose2d {c} k=2 s=2",
    "adaptiveavgpool2d 1",
    "sigmoid",
    "upsample scale_factor=2",
    "conv2d {c} k=3 s=2 p=1",
    "dropout 0.1",
    "add_identity",  # on (N, C, h, w): needs h == w, a rule on the input where they are named
]
CLEAN_MERGES = ["residual:", "concat:", "concat dim=2:", "add:", "multiply:", "reparameterize:"]
# A bmm on an image that keeps it one: its pixels as rows (N, H * W, C) times a matrix the
# image gives (N, C, c), back to an image (N, c, H * W, 1).
CLEAN_BMM = [
    "bmm:",
    "    branch:",
    "        flatten 2",
    "        transpose 1 2",
    "    branch:",
    "        flatten 2",
    "        adaptiveavgpool1d {c}",
    "transpose 1 2",
    "unsqueeze 3",
]
# A reparameterize whose mean and log-variance agree (random branches seldom do).
CLEAN_REPARAMETERIZE = [
    "reparameterize:",
    "    branch:",
    "        conv2d {c} k=1",
    "    branch:",
    "        conv2d {c} k=3 p=1",
    "        tanh",
]


@st.composite
def tree_nodes(
    draw: st.DrawFn,
    depth: int,
    indent: str,
    sizes: list[str],
    blocks: list[str],
    clean: bool = False,
) -> list[str]:
    """Lines of a stack: layers, block uses and merges (nested up to depth 2)."""
    lines: list[str] = []
    vocabulary = IMAGE_LAYERS if clean else TREE_LAYERS
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 6))
        if kind <= 3 or depth >= 2:
            lines.append(
                indent + draw(st.sampled_from(vocabulary)).format(c=draw(st.sampled_from(sizes)))
            )
        elif kind == 4 and blocks:
            lines.append(indent + f"{draw(st.sampled_from(blocks))} {draw(st.sampled_from(sizes))}")
        elif kind == 5 and clean and draw(st.booleans()):
            c = draw(st.sampled_from(sizes))
            template = draw(st.sampled_from([CLEAN_BMM, CLEAN_REPARAMETERIZE]))
            lines += [indent + line.format(c=c) for line in template]
        else:
            word = draw(st.sampled_from(CLEAN_MERGES if clean else MERGE_WORDS))
            lines.append(indent + word)
            inner = indent + "    "
            if word == "residual:":
                lines += draw(tree_nodes(depth + 1, inner, sizes, blocks, clean))
                if draw(st.booleans()):
                    lines.append(indent + "shortcut:")
                    lines += draw(tree_nodes(depth + 1, inner, sizes, blocks, clean))
            else:
                for _ in range(draw(st.integers(2 if clean else 1, 3))):
                    lines.append(inner + "branch:")
                    lines += draw(tree_nodes(depth + 1, inner + "    ", sizes, blocks, clean))
    return lines


@st.composite
def tree_specs(draw: st.DrawFn, clean: bool = False) -> str:
    """Specs of the v2 language: blocks, merges and (unless `clean`) their misuse, sizes often
    symbolic. Clean specs are images through layers that keep the rank."""
    inputs = (
        ["3x16x16", "(3, h=16, w=16)"]
        if clean
        else ["3x16x16", "(3, h=16, w=16)", "(8, L=20)", "(16,)", "2x8x8x8"]
    )
    lines = ["model Net(c=4, k=3, n=2)", "input " + draw(st.sampled_from(inputs))]
    blocks: list[str] = []
    for name in draw(st.lists(st.sampled_from(["B", "Down", "Gate"]), unique=True, max_size=2)):
        params = draw(st.sampled_from(["(out)", "(out, s=1)", "", "(out: int)"]))
        lines.append(f"block {name}{params}:")
        sizes = ["out", "in_channels", "2", "out * 2"] if "out" in params else ["4", "in_channels"]
        lines += draw(tree_nodes(1, "    ", sizes, list(blocks), clean))
        blocks.append(name if "out" in params else f"{name} #")
    sizes = ["c", "4", "8", "c * 2", "n"]
    trunk = draw(tree_nodes(0, "", sizes, blocks, clean))
    if draw(st.integers(0, 4)) == 0:  # a second input, read by a top-level merge first
        first = lines[1].removeprefix("input ")
        lines[1] = f"input image {first}"
        lines.insert(
            2, "input side " + draw(st.sampled_from([first.replace("=16", ""), "3x16x16"]))
        )
        merge = [draw(st.sampled_from(["add:", "concat:", "multiply:"])), "    branch:"]
        merge += draw(tree_nodes(2, "        ", sizes, blocks, clean))
        if draw(st.booleans()):
            merge[1] = "    branch name=a:"
            merge.append("    branch from=side shares=a:")
        else:
            merge.append("    branch from=side:")
            merge += draw(tree_nodes(2, "        ", sizes, blocks, clean))
        trunk = merge + trunk
    lines += trunk
    if draw(st.integers(0, 2)) == 0:  # heads, from the end or from a named top-level node
        tops = [i for i, line in enumerate(trunk[:-1]) if not line.startswith(" ")]
        tops = [i for i in tops if any(not t.startswith(" ") for t in trunk[i + 1 :])]
        point = draw(st.sampled_from(tops)) if tops and draw(st.booleans()) else None
        if point is not None:
            at = len(lines) - len(trunk) + point
            line = lines[at]
            lines[at] = line[:-1] + " name=mid:" if line.endswith(":") else line + " name=mid"
        for k in range(draw(st.integers(1, 2))):
            options = " from=mid" if point is not None and draw(st.booleans()) else ""
            options += " train_only=True" if k and draw(st.booleans()) else ""
            if draw(st.integers(0, 3)) == 0:
                lines.append(f"head y{k}{options}")  # no stack: what it reads, as is
            else:
                lines.append(f"head y{k}{options}:")
                lines += draw(tree_nodes(1, "    ", sizes, blocks, clean))
    return "\n".join(lines)


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    """Text that looks like a spec: a header, layer lines, repeat blocks, comments, noise."""
    kind = draw(st.integers(0, 13))
    if kind == 0:
        return draw(st.text(max_size=80))
    if kind >= 12:
        return draw(tree_specs())
    if kind >= 10:
        return draw(plausible_specs())
    noisy = kind <= 4  # else only well-formed tokens: more specs get through to the tracer
    lines: list[str] = []
    if draw(st.integers(0, 2)) > 0:
        lines.append(draw(model_lines()))
    if draw(st.integers(0, 19)) > 0:
        lines.append(draw(input_lines()))
    indent = ""
    for _ in range(draw(st.integers(1, 7))):
        choice = draw(st.integers(0, 14))
        if choice <= 4:
            line = draw(plausible_layer_lines())
        elif choice <= 8 or (choice <= 10 and not noisy):
            line = draw(layer_lines(noisy))
        elif choice <= 10:
            line = draw(token_lines())
        elif choice == 11:
            line = draw(
                st.one_of(
                    st.sampled_from(["2", "1", "0", "3", "two", "10001", "2.5"]).map(
                        lambda n: f"repeat {n}:"
                    ),
                    st.sampled_from(
                        MERGE_WORDS
                        + [
                            "branch:",
                            "shortcut:",
                            "block B(c):",
                            "block B:",
                            "block Conv2d(c):",
                            "B 4",
                            "B",
                        ]
                    ),
                )
            )
        elif choice == 12:
            line = draw(comments if noisy else printable.map(lambda t: "# " + t))
        elif choice == 13:
            line = ""
        else:
            line = draw(st.sampled_from(["model M", "input 3x8x8", "input (n=8,)", "flatten"]))
        lines.append(indent + line)
        if line.endswith(":"):
            indent += draw(st.sampled_from(["  ", "  ", "    ", " ", "\t" if noisy else " "]))
        elif indent and draw(st.integers(0, 3)) == 0:
            indent = indent[: draw(st.integers(0, len(indent)))]
    text = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"])).join(lines)
    if kind == 1:  # a few character-level mutations of an otherwise structured spec
        for _ in range(draw(st.integers(1, 3))):
            pos = draw(st.integers(0, len(text)))
            cut = draw(st.integers(0, 2))
            text = text[:pos] + draw(st.one_of(st.sampled_from(ODD_TEXTS), raw)) + text[pos + cut :]
    return text


# ------------------------------------------------------------------ the contract

# Crashes in trace.py the property tests tolerate while they are being fixed, as (type, message
# pattern); each recorded crasher below must then be listed. Empty: every one found is fixed.
KNOWN_TRACE_BUGS: list[tuple[type[BaseException], str]] = []


def known_trace_bug(e: BaseException) -> str | None:
    """The KNOWN_TRACE_BUGS pattern `e` matches, if any."""
    for kind, pattern in KNOWN_TRACE_BUGS:
        if isinstance(e, kind) and re.search(pattern, str(e)):
            return pattern
    return None


def _check_located(e: SeqgenError, text: str) -> None:
    """Every error about a spec points into it, and renders."""
    loc = e.location
    assert loc is not None, f"{type(e).__name__} without a location: {e}"
    assert 1 <= loc.line <= max(1, len(text.splitlines())) and loc.col >= 1, loc
    e.render()


def check_contract(text: str, trace: bool = True) -> str:
    """Parse (and trace) `text`; return the outcome, raising anything that is not a SeqgenError."""
    try:
        spec = parse(text, "fuzz.seq")
    except InternalError:
        raise  # a seqgen bug is no answer
    except SeqgenError as e:
        _check_located(e, text)
        return "syntax error"
    if not trace:
        return "parsed"
    try:
        trace_spec(spec)
    except InternalError:
        raise  # a seqgen bug is no answer
    except SeqgenError as e:
        _check_located(e, text)
        return "trace error"
    return "traced"


def _tolerating_known_bugs(text: str) -> str:
    try:
        return check_contract(text)
    except Exception as e:
        pattern = known_trace_bug(e)
        if pattern is None:
            raise
        return f"known trace bug: {pattern}"


@settings(
    max_examples=max_examples(300),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec_texts())
def test_any_text_parses_to_a_spec_or_a_located_syntax_error(text: str) -> None:
    event(check_contract(text, trace=False))


@settings(
    max_examples=max_examples(200),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec_texts())
def test_any_text_traces_to_a_result_or_a_seqgen_error(text: str) -> None:
    event(_tolerating_known_bugs(text))


# Inputs that crashed once, found by fuzz/fuzz_check.py or by hand. Parser crashes are fixed in
# seqgen/dsl.py; trace crashes found by fuzzing are kept below as regression cases.
PARSER_CRASHERS = {
    "int over 4300 digits": "input 4\nlinear " + "9" * 5000,
    "input dim over 4300 digits": "input " + "9" * 5000 + "\nlinear 2",
    "named dim over 4300 digits": "input (a=" + "9" * 5000 + ",)\nlinear 2",
    "repeat count over 4300 digits": "input 4\nrepeat " + "9" * 5000 + ":\n  relu",
    "deep parentheses": "input 4\nlinear " + "(" * 3000 + "1" + ")" * 3000,
    "unclosed deep parentheses": "input 4\nlinear " + "(" * 3000,
    "deep signs": "input 4\nlinear " + "-" * 3000 + "1",
    "deep signs on a name": "model M(a=2)\ninput 4\nlinear " + "- " * 3000 + "a",
    "deep default": "model M(a=" + "-" * 3000 + "1)\ninput 4\nlinear 2",
    "deep input shape": "input (" + "(" * 3000 + ",)",
    "long sum": "input 4\nlinear " + "+".join(["1"] * 5000),
    "long product": "model M(a=1)\ninput 4\nlinear " + "*".join(["a"] * 5000),
    "nested repeats unroll to 10^8 layers": "input 4\nrepeat 10000:\n repeat 10000:\n  relu",
    "repeats nested 2000 deep": "input 4\n"
    + "".join(" " * i + "repeat 1:\n" for i in range(2000))
    + " " * 2000
    + "relu",
}


@settings(
    max_examples=max_examples(120),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tree_specs())
def test_blocks_and_merges_trace_to_a_result_or_a_located_error(text: str) -> None:
    event(_tolerating_known_bugs(text))


@settings(
    max_examples=max_examples(12),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(tree_specs(clean=True))
def test_generated_trees_agree_with_torch_at_other_values(tmp_path: Path, text: str) -> None:
    """fuzz/trees.py's check, bounded: generated code vs a real forward at accepted values."""
    import random

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
    from trees import check

    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        event(check(text, Path(tmp), random.Random(text)).split(" ")[0])


@pytest.mark.parametrize("text", PARSER_CRASHERS.values(), ids=PARSER_CRASHERS.keys())
def test_parser_crashers_are_syntax_errors(text: str) -> None:
    assert check_contract(text) == "syntax error"


TRACE_CRASHERS = {
    # AssertionError from torch's ShapeEnv.create_symbol: an int parameter's default becomes the
    # hint of a symbol, which torch assumes is positive.
    "negative int parameter": "model M(a=-5)\ninput (3,)\nlinear a",
    # TypeError from torch.empty in Tracer.run: input sizes are not checked against int64.
    "input dim beyond int64": "input 99999999999999999999999\nlinear 2",
    # ValueError from str() of a >4300-digit int in symbolic._emit (via Tracer.code).
    "input dim product over 4300 digits": "input ("
    + "9" * 4000
    + " * "
    + "9" * 4000
    + ",)\nlinear 2",
    # ZeroDivisionError from torch's SymInt floordiv in _Values.eval: the `right == 0` check
    # does not catch a parameter whose default is 0.
    "division by a zero parameter": "model M(a=0)\ninput (4,)\nlinear 4//a",
    # ZeroDivisionError from symbolic.evaluate in Tracer._minimum, which tries n=1 where the
    # size `n // 4` it divides by is 0.
    "minimum search divides by zero": "input (n=12,)\nunflatten 1 (-1, 4)",
}


@pytest.mark.parametrize("text", TRACE_CRASHERS.values(), ids=TRACE_CRASHERS.keys())
def test_trace_crashers_are_seqgen_errors(text: str) -> None:
    check_contract(text)


# Specs the symbolic trace accepts although the real layers reject them on CPU (found by running
# plausible_specs through trace_spec(spec, device="cpu")): seqgen generates a model that fails.
TRACE_TOO_LENIENT = {
    "output_padding not below stride": "input (3, 9)\nconvtranspose1d 2 2 output_padding=4",
    "softmax dim out of range": "input (9,)\nsoftmax dim=2",
    "transposed conv with kernel 0": "input (3, 8)\nconvtranspose1d 4 0",
    "bilinear upsampling to size 0": "input (3, 8, 8)\nupsamplingbilinear2d 0",
}


@pytest.mark.parametrize("text", TRACE_TOO_LENIENT.values(), ids=TRACE_TOO_LENIENT.keys())
def test_trace_rejects_what_the_cpu_rejects(text: str) -> None:
    spec = parse(text, "t.seq")
    with pytest.raises(SeqgenError):
        trace_spec(spec, device="cpu")  # holds today: the real forward fails
    with pytest.raises(SeqgenError):
        trace_spec(spec)


def test_known_trace_bugs_are_exactly_the_recorded_crashes() -> None:
    """Each tolerated pattern is still needed by a recorded crasher: delete it once it is fixed."""
    needed = set()
    for text in TRACE_CRASHERS.values():
        try:
            check_contract(text)
        except Exception as e:
            pattern = known_trace_bug(e)
            assert pattern is not None, f"{type(e).__name__}: {e}"
            needed.add(pattern)
    assert needed == {pattern for _, pattern in KNOWN_TRACE_BUGS}, (
        "a known bug was fixed: delete its KNOWN_TRACE_BUGS entry"
    )


# ------------------------------------------------------------------ valid stacks run for real

_conv_layers = ["conv2d", "maxpool2d", "avgpool2d", "batchnorm2d", "relu", "dropout", "flatten"]


@st.composite
def valid_stacks(draw: st.DrawFn) -> str:
    """A spec that must trace: image layers on 3xHxW, then flatten and linear layers."""
    channels, height, width = 3, draw(st.integers(8, 32)), draw(st.integers(8, 32))
    header = []
    classes = None
    if draw(st.booleans()):
        classes = draw(st.integers(2, 12))  # a sample of 1 broadcasts, so torch fixes it
        header.append(f"model Net(classes={classes})")
    header.append(
        draw(
            st.sampled_from(
                [f"input {channels}x{height}x{width}", f"input ({channels}, {height}, {width})"]
            )
        )
    )
    lines: list[str] = []
    flat = False
    for _ in range(draw(st.integers(1, 8))):
        if flat:
            kind = draw(st.sampled_from(["linear", "relu", "dropout"]))
        else:
            kind = draw(
                st.sampled_from(
                    _conv_layers
                    if min(height, width) >= 2
                    else [k for k in _conv_layers if "pool" not in k]
                )
            )
        if kind == "conv2d":
            out = draw(st.integers(1, 16))
            k = draw(st.integers(1, min(5, height, width)))
            p = draw(st.integers(0, k // 2))
            s = draw(st.integers(1, 3))
            form = draw(st.integers(0, 2))
            if form == 0:
                line = (
                    f"conv2d {out} {k}"
                    + (f" stride={s}" if s > 1 else "")
                    + (f" padding={p}" if p else "")
                )
            elif form == 1:
                line = f"conv2d {out} k={k} s={s} p={p}"
            else:
                line = f"conv2d out_channels={out} kernel_size=({k}, {k}) bias=False"
                s, p = 1, 0
            channels = out
            height, width = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        elif kind in ("maxpool2d", "avgpool2d"):
            k = draw(st.integers(2, min(4, height, width)))
            s = draw(st.integers(1, k))
            p = draw(st.integers(0, k // 2))
            line = (
                f"{kind} {k}" + (f" stride={s}" if s != k else "") + (f" padding={p}" if p else "")
            )
            if s == k and not p and draw(st.booleans()):
                line = f"{kind} kernel_size={k}"
            height, width = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        elif kind == "batchnorm2d":
            line = draw(
                st.sampled_from(
                    ["batchnorm2d", "batchnorm2d eps=1e-3", "batchnorm2d momentum=0.2 affine=False"]
                )
            )
        elif kind == "dropout":
            line = draw(st.sampled_from(["dropout", "dropout 0.25", "dropout p=0.5"]))
        elif kind == "relu":
            line = draw(st.sampled_from(["relu", "relu inplace=True", "ReLU"]))
            if lines and lines[-1].lower().startswith("relu"):
                line = "relu"  # in place right after a ReLU breaks backward: seqgen refuses it
        elif kind == "flatten":
            line, flat = "flatten", True
        else:
            line = f"linear {draw(st.integers(1, 32))}" + draw(st.sampled_from(["", " bias=False"]))
        lines.append(line)
    trainable = any(
        line.startswith(("conv2d", "linear")) or line in ("batchnorm2d", "batchnorm2d eps=1e-3")
        for line in lines
    )
    # a stack without trainable parameters generates a failing backward test: see
    # test_parameter_free_stack_generates_passing_tests; give every stack a head instead
    if draw(st.booleans()) or classes is not None or not trainable:
        lines += [] if flat else ["flatten"]
        lines.append("linear classes" if classes is not None else "linear 10")
    return "\n".join(header + [""] + lines) + "\n"


_fresh = itertools.count()


def _generate(directory: Path, text: str) -> tuple[Path, Path, TracedModel]:
    """Write the spec, generate and write its module and test file; return their paths."""
    directory.mkdir(parents=True)
    stem = f"fuzzed_{next(_fresh)}"
    spec_path = directory / f"{stem}.seq"
    spec_path.write_text(text, encoding="utf-8")
    result = generate(str(spec_path), options_for(str(spec_path), out_dir=str(directory)))
    write_files(list(result.files))
    return directory / f"{stem}.py", directory / f"test_{stem}.py", result.traced


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_valid = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@settings(_valid, max_examples=max_examples(40))
@given(valid_stacks())
def test_valid_stacks_trace_to_the_shapes_of_a_real_forward(tmp_path: Path, text: str) -> None:
    import torch

    module_path, _, traced = _generate(tmp_path / f"case_{next(_fresh)}", text)
    model = getattr(_import(module_path), traced.spec.class_name)().eval()
    x = torch.randn([d.value for d in traced.input_shape])
    assert x.shape[0] == 2  # the trace's batch
    with torch.no_grad():
        for layer, module in zip(traced.layers, model.model, strict=True):
            x = module(x)
            assert tuple(x.shape) == tuple(d.value for d in layer.out_shape), (layer.call, text)


def test_parameter_free_stack_generates_passing_tests(tmp_path: Path) -> None:
    _, test_path, _ = _generate(tmp_path / "case", "input 3x8x8\nmaxpool2d 2\nrelu\n")
    run_generated_tests(test_path)


def test_a_layer_that_fixes_the_batch_is_refused() -> None:
    # CrossMapLRN2d's Python forward reads the batch as a plain int: the model would only work
    # at the trace's batch size, so seqgen says so instead of generating it.
    with pytest.raises(SeqgenError, match="fixes the batch size"):
        trace_spec(parse("input 3x8x8\ncrossmaplrn2d 3\nflatten\nlinear 2", "t.seq"))


def test_size_that_shrinks_as_a_dim_grows_generates_passing_tests(tmp_path: Path) -> None:
    _, test_path, _ = _generate(tmp_path / "case", "input (L=16, 20 - L)\nflatten\nlinear 2\n")
    run_generated_tests(test_path)


@pytest.mark.slow
def test_trace_errors_print_no_torch_traceback(tmp_path: Path) -> None:
    # a subprocess: under pytest, its logging plugin takes the record before it reaches stderr
    spec = tmp_path / "pool.seq"
    spec.write_text("input 37x37x32x36\nadaptiveavgpool2d 3\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "seqgen", "new", "-q", str(spec)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "error:" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[:2000]


def test_valid_stacks_generate_tests_that_pass(tmp_path: Path) -> None:
    """A few valid stacks, generated and their own pytest files run in one pytest session."""
    cases: list[tuple[str, Path]] = []

    @settings(_valid, max_examples=max_examples(5))
    @given(valid_stacks())
    def collect(text: str) -> None:
        _, test_path, _ = _generate(tmp_path / f"case_{len(cases)}", text)
        cases.append((text, test_path))

    collect()
    specs = "\n".join(f"--- {p.name}\n{text}" for text, p in cases)
    try:
        run = run_generated_tests(*(p for _, p in cases), cwd=tmp_path)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{specs}") from None
    assert run.passed == generated_tests_per_file(6) * len(cases), specs
