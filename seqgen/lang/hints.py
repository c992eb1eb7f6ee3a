"""Words for errors: what the user should write instead. No torch here.

The trace stage calls these with plain values (sizes at the sample input), so a message can name
the numbers involved and a hint can spell out a corrected spec line.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Container, Mapping, Sequence

from seqgen.errors import Location, SpecSyntaxError
from seqgen.ir import MERGE_CLASSES, Expr, Keyword, LayerSpec
from seqgen.lang.lexer import Line
from seqgen.lang.values import expr_source

# Well-known other names of torch.nn layers (papers, Keras, torch.nn.functional), as the spec
# line torch's name gives; a name that differs from a class only by `_` or `-` needs no entry.
OTHER_NAMES = {
    "swish": "silu",
    "hswish": "hardswish",
    "hsigmoid": "hardsigmoid",
    "logistic": "sigmoid",
    "lrelu": "leakyrelu",
    "leaky": "leakyrelu",
    "gelunew": "gelu approximate='tanh'",
    "gelutanh": "gelu approximate='tanh'",
    "gelufast": "gelu approximate='tanh'",
    "fastgelu": "gelu approximate='tanh'",
    "approxgelu": "gelu approximate='tanh'",
    "geluapprox": "gelu approximate='tanh'",
    "dense": "linear",
    "fc": "linear",
    "fullyconnected": "linear",
    "conv": "conv2d",
    "deconv": "convtranspose2d",
    "deconv2d": "convtranspose2d",
    "conv2dtranspose": "convtranspose2d",
    "transposedconv2d": "convtranspose2d",
    "bn": "batchnorm2d",
    "batchnorm": "batchnorm2d",
    "batchnormalization": "batchnorm2d",
    "ln": "layernorm",
    "layernormalization": "layernorm",
    "gn": "groupnorm",
    "maxpool": "maxpool2d",
    "maxpooling2d": "maxpool2d",
    "avgpool": "avgpool2d",
    "averagepooling2d": "avgpool2d",
    "gap": "adaptiveavgpool2d 1",
    "globalavgpool": "adaptiveavgpool2d 1",
    "globalavgpool2d": "adaptiveavgpool2d 1",
    "globalaveragepooling2d": "adaptiveavgpool2d 1",
    "zeropadding2d": "zeropad2d",
    "upsampling2d": "upsample",
    "upsampling": "upsample",
    "embed": "embedding",
}


def other_name(layer: LayerSpec, known: Container[str]) -> tuple[str, str, str | None] | None:
    """An unknown layer name that is another name of a `known` one (`swish` is torch's
    `silu`): that name, the hint, and the corrected line (None for a call with arguments,
    `Swish(...)`)."""
    key = re.sub(r"[_-]", "", layer.name.lower())
    other = key if key in known else OTHER_NAMES.get(key)
    if other is None:
        return None
    name, loc = other.split()[0], layer.loc
    rest = loc.text[loc.col - 1 + loc.width :]
    if layer.call_syntax and (layer.args or layer.kwargs):
        return name, f"torch.nn calls it {name!r}, written without parentheses", None
    if layer.call_syntax:  # `Swish()`
        rest = rest.split(")", 1)[1]
    if rest.split("#", 1)[0].strip():  # arguments written: keep them, give the name only
        other = name
    fixed = (loc.text[: loc.col - 1] + other + rest).rstrip()
    return name, f"torch.nn calls it {name!r}: write `{fixed.strip()}`", fixed


def misindent_hint(
    line: Line, ind: int, indent: int, above: Line | None, header: Line | None
) -> tuple[str, str]:
    """A line indented `ind` spaces among lines at `indent`: what is misindented and how to fix
    it, and the line re-indented. `above`: the line before it; `header`: the `NAME:` line its
    block belongs to."""
    spaces = f"{ind} space{'s' * (ind != 1)}"
    text = line.text.strip()
    if ind > indent and above is not None:
        n = above.lineno
        hint = (
            f"it is indented {spaces}, but line {n} above it (`{above.text.strip()}`) opens no "
            f"block (only a line ending with ':' does): {_indent(indent)}, like line {n}"
        )
    elif header is not None and ind < indent:
        n, outer = header.lineno, len(header.text) - len(header.text.lstrip())
        hint = (
            f"it is indented {spaces}, but the block under line {n} (`{header.text.strip()}`) "
            f"is indented {indent} and line {n} itself {outer}: "
        )
        if text.endswith(":"):  # a header (`branch:`) belongs beside the one it follows
            hint += f"indent it {outer} to close the block, or {indent} to stay in it"
            return hint, " " * outer + text
        hint += f"indent it {indent} to stay in the block, or {outer} to close it"
    else:
        hint = f"it is indented {spaces}: {_indent(indent)}, like the lines around it"
    return hint, " " * indent + text


def without_commas(line: Line) -> str:
    """The line with the commas between its arguments (outside parentheses) taken out."""
    depth, cut = 0, []
    for tok in line.tokens:
        depth += {"(": 1, ")": -1}.get(tok.text, 0) if tok.kind == "op" else 0
        if tok.kind == "op" and tok.text == "," and depth == 0:
            cut.append(tok.col - 1)
    text = line.text
    for i in reversed(cut):  # `16, 3` -> `16 3`; `16,3` -> `16 3`
        text = text[:i] + ("" if text[i + 1 : i + 2] in (" ", "") else " ") + text[i + 1 :]
    return text.rstrip()


def _indent(n: int) -> str:
    return f"indent it {n}" if n else "remove its indentation"


def layer_text(
    name: str, args: Sequence[Expr], kwargs: Sequence[Keyword], key: str | None = None
) -> str:
    """A layer line as a spec spells it: `conv2d 16 kernel_size=3 name=stem`."""
    parts = [
        name,
        *(expr_source(a) for a in args),
        *(f"{k.written}={expr_source(k.value)}" for k in kwargs),
    ]
    if key is not None:
        parts.append(f"name={key}")
    return " ".join(parts)


def whole_line(loc: Location, text: str) -> str:
    """The spec line at `loc` replaced by `text`, its indentation kept: a diagnostic's `fix`."""
    indent = loc.text[: len(loc.text) - len(loc.text.lstrip())]
    return indent + text


def missing_hint(layer: LayerSpec, positional: Sequence[str], missing: Sequence[str]) -> str:
    """`conv2d 16` lacks kernel_size: "write `conv2d 16 KERNEL_SIZE`" (after the 16, which is
    out_channels), or `kernel_size=...` where a positional argument cannot go."""
    given = len(layer.args)
    run = list(positional[given : given + len(missing)])
    if run == list(missing):  # the missing ones continue the positional arguments
        spelled = f"{layer_text(layer.name, layer.args, ())} {' '.join(m.upper() for m in missing)}"
        rest = layer_text("", (), layer.kwargs, layer.key).strip()
        line = f"{spelled} {rest}".rstrip()
        keywords = ", ".join(f"{m}=..." for m in missing)
        return f"write `{line}` (or {keywords})"
    line = layer_text(layer.name, layer.args, layer.kwargs, layer.key)
    return f"write `{line} {' '.join(f'{m}=...' for m in missing)}`"


def call_syntax_hint(
    layer: LayerSpec, line: LayerSpec | None, inferred: Sequence[str], usage: str | None = None
) -> tuple[str, str, str | None]:
    """`Linear(784, 10)`: the message, a hint, and the spec line that means it (`linear 10`,
    given as `line`; None when no line binds, and then only `usage` is suggested)."""
    written = layer.loc.text[layer.loc.col - 1 : layer.loc.col - 1 + layer.loc.width]
    message = (
        f"`{written}(...)` is Python call syntax; a layer line lists its arguments "
        "after the name, without parentheses or commas"
    )
    if line is None:
        return message, usage or f"write `{layer.name.lower()} ARG... KEY=VALUE...`", None
    text = layer_text(line.name, line.args, line.kwargs, layer.key)
    hint = f"write `{text}`"
    if inferred and len(line.args) + len(line.kwargs) < len(layer.args) + len(layer.kwargs):
        hint += f": seqgen infers {', '.join(inferred)} from the input"  # a value was dropped
    return message, hint, whole_line(layer.loc, text)


def rejection(
    class_name: str, message: str, values: Mapping[str, object]
) -> tuple[str, str | None] | None:
    """torch's refusal of a layer's arguments in the spec's terms, naming the values involved;
    None when there is nothing better to say than torch's own message."""
    m = re.search(r"(in_channels|out_channels) must be divisible by groups", message)
    if m is not None and isinstance(values.get("groups"), int):
        groups = values["groups"]
        sizes = {
            k: values[k] for k in ("in_channels", "out_channels") if isinstance(values.get(k), int)
        }
        which = m.group(1)
        text = f"{class_name}: {which}={sizes.get(which, '?')} is not divisible by groups={groups}"
        if which == "in_channels":
            text += " (in_channels is the input's channel count)"
        if len(sizes) == 2:
            common = math.gcd(*sizes.values())  # type: ignore[arg-type]
            choices = [str(d) for d in range(1, common + 1) if common % d == 0]
            hint = (
                f"groups must divide in_channels ({sizes['in_channels']}) and out_channels "
                f"({sizes['out_channels']}): use one of {', '.join(choices)}"
            )
        else:
            hint = f"groups must divide {which}"
        return text, hint
    return None


def unknown_header(
    line: Line, blocks: Container[str], body: Sequence[tuple[int, Line]], loose: set[str]
) -> SpecSyntaxError:
    """A line that ends with ':' but starts with no word that opens an indented block
    (`subtract name=d:`): one error for it, its body skipped (no "unexpected indentation" per
    line below). The inputs its body's `from=` reads go to `loose`, so that an input read only
    there is not also reported unread."""
    loose |= {
        b.text for _, ln in body for a, e, b in zip(ln.tokens, ln.tokens[1:], ln.tokens[2:])
        if a.text == "from" and e.text == "=" and b.kind == "name"
    }  # fmt: skip
    head = line.peek()
    word = head.text if head.kind == "name" else ""
    openers = [*(f"{m}:" for m in MERGE_CLASSES), "repeat N:", "branch:", "block NAME:"]
    close = difflib.get_close_matches(word.lower(), list(MERGE_CLASSES), n=1)
    if word in blocks:
        hint = f"`{word}` is a block: use it on a line of its own, without the ':'"
    elif close:
        hint = f"did you mean `{close[0]}:`?"
    else:
        hint = f"a line ending with ':' opens {', '.join(f'`{o}`' for o in openers)} or "
        hint += "`head NAME:`; a layer's line does not end with ':'"
    what = f"{word!r} does not open" if word else "this line does not open"
    return line.error(
        f"{what} an indented block: it is not a merge (seqgen's are "
        f"{', '.join(MERGE_CLASSES)}), `repeat`, `branch`, `block` or `head`",
        head.col,
        len(head.text) or 1,
        hint=hint,
    )
