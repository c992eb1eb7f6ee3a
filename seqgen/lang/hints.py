"""Words for errors: what the user should write instead. No torch here.

The trace stage calls these with plain values (sizes at the sample input), so a message can name
the numbers involved and a hint can spell out a corrected spec line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from seqgen.ir import Expr, Keyword, LayerSpec
from seqgen.lang.values import expr_source


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
    layer: LayerSpec, order: Sequence[str], inferred: Sequence[str], spec_name: str
) -> tuple[str, str]:
    """`Linear(784, 10)`: the message, and the spec line that means it (`linear 10`)."""
    bound = dict(zip(order, layer.args))  # a Python call fills parameters in order
    args = [a for name, a in bound.items() if name not in inferred]
    args += list(layer.args[len(bound) :])
    kwargs = [k for k in layer.kwargs if k.name not in inferred]
    dropped = [n for n in inferred if n in bound or any(k.name == n for k in layer.kwargs)]
    line = layer_text(spec_name, args, kwargs, layer.key)
    message = (
        f"`{layer.name}(...)` is Python call syntax; a layer line lists its arguments "
        "after the name, without parentheses or commas"
    )
    hint = f"write `{line}`"
    if dropped:
        hint += f": seqgen infers {', '.join(dropped)} from the input"
    return message, hint


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
