"""Spec lines as tokens: the tokenizer, a cursor over one line's tokens, and string unquoting."""

from __future__ import annotations

import re
from dataclasses import dataclass

from seqgen.errors import Location, SpecSyntaxError
from seqgen.ir import MERGE_CLASSES

# A bound that keeps hostile specs from exhausting the stack (every stage walks values recursively).
MAX_NESTING = 50  # parentheses, signs and operators in one value; `repeat` blocks inside each other

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t]+)
  | (?P<comment>\#.*)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<op>//|[-+*(),=:])
    """,
    re.VERBOSE,
)
MERGES = frozenset(MERGE_CLASSES)
# Words of the spec language: a block may not take one as its name, nor follow an `nn.` prefix.
KEYWORDS = frozenset({"model", "input", "repeat", "block", "branch", "shortcut", *MERGES})
# `nn.Conv2d(3, 16, 3)` pasted from PyTorch: the module prefix before a layer's class name
_MODULE_PREFIX = re.compile(r"[ ]*((?:torch\.)?nn\.)([A-Za-z_]\w*)")
_IGNORE = re.compile(r"#\s*seqgen:\s*ignore\b(?:\[([^\]]*)\])?")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


@dataclass(frozen=True)
class Token:
    """One token of a spec line; every line ends with an `end` token."""

    kind: str  # number | name | string | op | end
    text: str
    col: int  # 1-based
    space_before: bool


def _dotted_point(tokens: list[Token], text: str, pos: int, space: bool) -> bool:
    """Whether the '.' at `pos` joins `from=MERGE.BRANCH` (a head reading a merge's branch, or
    further in: `from=p3.down.p4`): right after `from=NAME[.NAME]...`, right before a name.
    Anywhere else a '.' is an error."""
    end = len(tokens)
    while end >= 5 and tokens[end - 2].text == "." and tokens[end - 3].kind == "name":
        end -= 2  # `from=p3.down`: back over `.down`
    if end < 3 or space or pos + 1 >= len(text):
        return False
    key, equals, name = tokens[end - 3 : end]
    return (key.kind, key.text, equals.text, name.kind) == ("name", "from", "=", "name") and (
        text[pos + 1].isalpha() or text[pos + 1] == "_"
    )


class Line:
    """Tokens of one spec line, with a cursor."""

    def __init__(self, path: str, lineno: int, text: str) -> None:
        self.path, self.lineno, self.text = path, lineno, text
        self.ignore: tuple[str, ...] | None = None  # codes of `# seqgen: ignore[...]`
        self.ignore_col = 0
        self.prefix: Token | None = None  # `nn.` or `torch.nn.` before the first word
        self.tokens = self._tokenize()
        self.pos = 0
        self.depth = 0  # nesting of the value being parsed, bounded by MAX_NESTING

    def loc(self, col: int, width: int = 1) -> Location:
        return Location(self.path, self.lineno, col, self.text, max(1, width))

    def error(
        self,
        message: str,
        col: int,
        width: int = 1,
        hint: str | None = None,
        fix: str | None = None,
    ) -> SpecSyntaxError:
        return SpecSyntaxError(message, location=self.loc(col, width), hint=hint, fix=fix)

    def _tokenize(self) -> list[Token]:
        tokens: list[Token] = []
        pos, space = 0, True
        prefix = _MODULE_PREFIX.match(self.text)
        if prefix is not None and prefix.group(2).lower() not in KEYWORDS:
            # read as a layer line, refused with the spelling it means (`nn.residual:` is not)
            self.prefix = Token("prefix", prefix.group(1), prefix.start(1) + 1, True)
            pos = prefix.end(1)
        while pos < len(self.text):
            m = _TOKEN.match(self.text, pos)
            if m is None and _dotted_point(tokens, self.text, pos, space):
                tokens.append(Token("op", ".", pos + 1, False))  # `from=z.mu`: a merge's branch
                pos += 1
                continue
            if m is None:
                ch = self.text[pos]
                hint = None
                if ch == "/":
                    hint = "use // for integer division"
                elif ch in "\"'":
                    hint = "close the string with a matching quote"
                elif ch in "[]{}":
                    hint = "tuples are written with parentheses: (3, 3)"
                elif ch == ".":
                    hint = "a layer line is `NAME ARG... KEY=VALUE...`, its name a torch.nn class"
                    hint += " name without `nn.` (`conv2d 16 3`)"
                raise self.error(f"unexpected character {ch!r}", pos + 1, hint=hint)
            kind = m.lastgroup or ""
            if kind == "comment":
                ignore = _IGNORE.match(m.group())
                if ignore is not None:
                    codes = (ignore.group(1) or "").split(",")
                    self.ignore = tuple(c.strip() for c in codes if c.strip())
                    self.ignore_col = pos + 1
                break
            if kind == "space":
                space = True
            else:
                if kind == "op" and m.group() == "*" and self.text.startswith("**", pos):
                    raise self.error(
                        "'**' is not supported",
                        pos + 1,
                        2,
                        hint="spec values allow + - * // and parentheses",
                    )
                tokens.append(Token(kind, m.group(), pos + 1, space))
                space = False
            pos = m.end()
        tokens.append(Token("end", "", len(self.text.rstrip()) + 1, True))
        return tokens

    # -- cursor
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text == text

    def expect(self, text: str, what: str) -> Token:
        tok = self.peek()
        if not self.at(text):
            found = f"{tok.text!r}" if tok.kind != "end" else "end of line"
            raise self.error(f"expected {what}, found {found}", tok.col, len(tok.text))
        return self.next()

    def unclosed(self, open_tok: Token) -> SpecSyntaxError:
        """The error for a '(' at `open_tok` that the line never closes."""
        return self.error(
            "unbalanced parenthesis: '(' is never closed", open_tok.col, hint="add the missing ')'"
        )

    def separator(self, open_tok: Token) -> None:
        """After an item of a parenthesised list: take a ',' or stop before the ')'."""
        if self.at(","):
            self.next()
        elif not self.at(")"):
            t = self.peek()
            if t.kind == "end":
                raise self.unclosed(open_tok)
            raise self.error(f"expected ',' or ')', found {t.text!r}", t.col, len(t.text))

    def expect_end(self, what: str) -> None:
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(f"unexpected {tok.text!r} after {what}", tok.col, len(tok.text))

    # -- values (parsed in values_parser.py)
    def deeper(self, tok: Token) -> None:
        """Count one more level of nesting; refuse values nested past MAX_NESTING."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(
                f"value is nested more than {MAX_NESTING} levels deep",
                tok.col,
                len(tok.text),
                hint="split it up with a model parameter",
            )

    def whole(self, tok: Token) -> int:
        """The int a number token spells; Python refuses to convert over 4300 digits."""
        try:
            return int(tok.text)
        except ValueError:
            raise self.error(
                f"number {tok.text[:20]}... is too large", tok.col, len(tok.text)
            ) from None


def unquote(text: str) -> str:
    """The value a string token spells: its quotes removed, its escapes resolved."""
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], "\\" + body[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
