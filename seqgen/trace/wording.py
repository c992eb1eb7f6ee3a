"""How a generated check reads (trace stage): the rule over the constructor's arguments, why,
and where in the spec it comes from.

A `ValueError` of the generated `__init__` is read by someone calling a Python class, who may
never see the spec. It says the rule once, in the arguments' names (`stride must be at least 1`,
`out must equal in_channels`), why in the generated code's words (`Conv2d would output an empty
tensor`, `a residual adds its input`), and the values it got. The spec line goes in a comment
beside the check, for whoever edits the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sympy

from seqgen.errors import Location, TraceError
from seqgen.lang.canonical import line_text
from seqgen.trace import symbolic as S

_RULES = {
    sympy.Ge: "must be at least",
    sympy.Gt: "must be greater than",
    sympy.Le: "must be at most",
    sympy.Lt: "must be less than",
    sympy.Eq: "must equal",
    sympy.Ne: "must not equal",
}

# why a merge needs its branches' sizes to agree, by kind (a residual: with a shortcut or not)
_MERGES = {
    "residual": "a residual adds its input",
    "shortcut": "a residual adds its shortcut's output",
    "add": "add's branches must broadcast",
    "multiply": "multiply's branches must broadcast",
    "subtract": "subtract's branches must broadcast",
    "concat": "concat's branches must agree outside its dim",
    "bmm": "bmm multiplies (N, n, m) by (N, m, p)",
    "reparameterize": "reparameterize's mean and log-variance must have equal shapes",
}


@dataclass(frozen=True)
class Site:
    """The layer (or merge, block, input) a condition comes from, and its spec line."""

    name: str  # "Conv2d", "residual", "ConvBN"
    line: int
    text: str = ""  # the spec line as written

    def __str__(self) -> str:
        """How the spec's own errors name it: `Conv2d (spec line 22)`."""
        return f"{self.name} (spec line {self.line})"

    def comment(self, what: str = "") -> str:
        """The comment beside a check: `Conv2d stride: conv2d 16 3 stride=s`. The spec line is
        cited by its text, not its number, so a comment line added to the spec changes no
        generated file."""
        head = f"{self.name} {what}".rstrip()
        cited = line_text(self.text)
        return head if cited.rstrip(":") in ("", self.name) else f"{head}: `{cited}`"


def subject_of(comment: str) -> str:
    """A check's comment without the spec line it cites (`Conv2d output size`): what a block
    use's comment quotes of a check inside the block, whose class shows the line itself."""
    return comment.split(": `", 1)[0]


def rule(cond: sympy.Basic, code: Callable[[sympy.Basic], str]) -> str:
    """A condition in words over Python source: `dim must be divisible by heads`."""
    if isinstance(cond, sympy.Eq) and cond.rhs == 0 and isinstance(cond.lhs, S.MODS):
        a, b = cond.lhs.args
        return f"{code(a)} must be divisible by {code(b)}"
    if isinstance(cond, sympy.Ne) and cond.rhs == 0:
        return f"{code(cond.lhs)} must not be 0"
    if type(cond) in _RULES:
        return f"{code(cond.lhs)} {_RULES[type(cond)]} {code(cond.rhs)}"
    if isinstance(cond, sympy.Or) and all(isinstance(p, sympy.Eq) for p in cond.args):
        return _choices(cond.args, code)
    if isinstance(cond, (sympy.And, sympy.Or)):
        parts = sorted(cond.args, key=code)  # in the order the printed condition has them
        return (" and " if isinstance(cond, sympy.And) else " or ").join(
            rule(p, code) for p in parts
        )
    return f"{code(cond)} must hold"


def _choices(parts: tuple[sympy.Basic, ...], code: Callable[[sympy.Basic], str]) -> str:
    """Equalities joined by `or`: `hid - 1 must equal 1 or 3`; a broadcast of two parameters
    (`a == b or a == 1 or b == 1`): `a and b must be equal or one of them 1`."""
    sides = sorted((code(p.lhs), code(p.rhs)) for p in parts)
    lhs = {a for a, _ in sides}
    if len(lhs) == 1:
        return f"{sides[0][0]} must equal " + " or ".join(b for _, b in sides)
    ones = sorted(a for a, b in sides if b == "1")
    pair = [(a, b) for a, b in sides if b != "1"]
    if len(ones) == 2 and len(pair) == 1 and sorted(pair[0]) == ones:
        return f"{ones[0]} and {ones[1]} must be equal or one of them 1"
    return " or ".join(f"{a} must equal {b}" for a, b in sides)


def at_defaults(
    cond: sympy.Basic, names: Mapping[sympy.Symbol, str], hints: Mapping[sympy.Symbol, int]
) -> str:
    """`, at the defaults (L=50)`: the values at which a condition fails, for its error."""
    free = sorted(f"{names[s]}={hints[s]}" for s in S.free_symbols(cond))
    return f", at the defaults ({', '.join(free)})" if free else ""


def with_reason(rule_text: str, reason: str) -> str:
    """`stride must be at least 1 (for Conv2d)`."""
    return f"{rule_text} ({reason})" if reason else rule_text


def argument_reason(layer: str, subject: str, shown: tuple[str, ...], rule_text: str) -> str:
    """Why a layer's argument rule holds, when the check is that rule itself: `for Conv2d` when
    the argument is passed as is (`stride` for stride), else `Conv2d's kernel_size`; the layer's
    own words (`rule_text`) when the rule has no one subject."""
    if not subject:
        return f"{layer}: {rule_text}"
    if shown == (subject,):
        return f"for {layer}"
    if subject.startswith(("the ", "each ")):
        return f"{subject} of {layer}"
    return f"{layer}'s {subject}"


def empty_output(layer: str) -> str:
    """Why an output size must stay >= 1."""
    return f"{layer}'s output would be empty"


def merge_reason(kind: str, branches: int) -> str:
    """Why a merge needs two sizes to agree."""
    if kind == "residual" and branches == 2:
        return _MERGES["shortcut"]
    return _MERGES[kind]


def in_block(block: str, text: str) -> str:
    """A block's reason, seen from where the block is used."""
    return f"in {block}, {text}" if text else ""


def token_ids_refused(name: str, loc: Location, own: str | None) -> TraceError:
    """A layer other than an embedding on integer token ids; `own`: the import path of a class
    of the user's own, which seqgen traces on float tensors only as yet."""
    why = f" (a class of your own, {own}, takes floats only)" if own else ""
    hint = "start with `embedding VOCAB DIM`, or drop dtype=long from `input`"
    if own:
        hint += " (ids that need your class's work before the embedding: do that before forward)"
    return TraceError(
        f"{name} gets integer token ids (the input has dtype=long); only an embedding looks "
        f"them up{why}",
        location=loc,
        hint=hint,
    )
