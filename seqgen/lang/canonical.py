"""What a spec means, as text: its tokens without comments and spacing, for the fingerprints
that decide whether outputs are current (the generated-file header, the trace cache), and a
spec line as generated code cites it.

The canonical form keeps each code line's indentation (blocks are indented) and its tokens, in
order. It drops comments, blank lines, line numbers and spacing between tokens, except where
the parser reads spacing: before a `-` and the token after it (`a -1` is `a` then -1; `a - 1` is
a subtraction) and before a `(` (call syntax `linear(10)` against a tuple). Generated files cite
a spec line by its text (`line_text`), never by its number, so editing a comment, adding a
comment or blank line anywhere, and re-spacing a line leave the outputs as they are.
"""

from __future__ import annotations

from seqgen.errors import SpecSyntaxError
from seqgen.lang.lexer import Line


def canonical_spec(text: str) -> str:
    """The canonical form of a spec's text (a line that does not tokenize is kept whole)."""
    out: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        indent = raw[: len(raw) - len(raw.lstrip())]
        try:
            tokens = Line("<spec>", number, raw).tokens
        except SpecSyntaxError:
            out.append(raw.rstrip())
            continue
        words: list[str] = []
        spaced = False  # the previous token was a `-`: the next token's spacing matters
        for tok in tokens:
            if tok.kind == "end":
                break
            marks = tok.text in ("-", "(") or spaced
            words.append(("_" if tok.space_before else "") + tok.text if marks else tok.text)
            spaced = tok.text == "-"
        if words:
            out.append(f"{indent}\0" + "\x1f".join(words))
    return "\n".join(out)


_TIGHT_AFTER = ("(", "[", "=")
_TIGHT_BEFORE = (")", "]", ",", "=", ":")


def line_text(raw: str) -> str:
    """A spec line as generated code cites it: its tokens without its comment, spaced as the
    spec language reads them (`conv2d 16 k=3 stride=s`), so it changes only with its meaning;
    the stripped line when it does not tokenize."""
    try:
        tokens = Line("<spec>", 1, raw).tokens
    except SpecSyntaxError:
        return " ".join(raw.split())
    out = ""
    previous = ""
    for tok in tokens:
        if tok.kind == "end":
            break
        semantic = tok.text in ("-", "(") or previous == "-"  # spacing the parser reads
        tight = previous in _TIGHT_AFTER or tok.text in _TIGHT_BEFORE
        space = tok.space_before if semantic else not tight
        out += (" " if space and out else "") + tok.text
        previous = tok.text
    return out
