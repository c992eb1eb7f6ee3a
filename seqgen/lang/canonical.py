"""What a spec means, as text: its tokens without comments and spacing, for the fingerprints
that decide whether outputs are current (the generated-file header, the trace cache).

The canonical form keeps each code line's number (generated files cite spec lines: `# line 5:
nn.Conv2d(...)`), its indentation (blocks are indented) and its tokens. It drops comments,
blank lines and spacing between tokens, except where the parser reads spacing: before a `-`
and the token after it (`a -1` is `a` then -1; `a - 1` is a subtraction) and before a `(` (call
syntax `linear(10)` against a tuple). So editing a comment, adding one at a line's end or in a
blank line, and re-spacing a line leave the outputs as they are; inserting or deleting a line
above a layer changes the line numbers the outputs cite, and with them the outputs.
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
            out.append(f"{number}\0{raw.rstrip()}")
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
            out.append(f"{number}\0{indent}\0" + "\x1f".join(words))
    return "\n".join(out)
