"""Stage 1: spec text -> ModelSpec. Values are parsed into a closed set of nodes, never run."""

from __future__ import annotations

import builtins
import difflib
import keyword
import re
from dataclasses import dataclass, replace
from pathlib import Path

from seqgen.errors import Location, SeqgenError, SpecReadError, SpecSyntaxError, raise_all
from seqgen.ir import (
    BinOp,
    BlockDef,
    BlockUse,
    Const,
    Expr,
    Keyword,
    LayerSpec,
    MergeSpec,
    ModelSpec,
    Name,
    Neg,
    Node,
    Num,
    Param,
    RepeatSpec,
    Str,
    TupleExpr,
    flat_layers,
    walk,
)

ALIASES = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}
# Names generated code uses itself; a parameter or class with one of these names would shadow it.
# Builtins are reserved too: generated code calls several (sum, tuple, ValueError, ...), and a
# custom template may call any.
RESERVED = frozenset(
    {
        "self",
        "torch",
        "nn",
        "math",
        "pytest",
        "sys",
        "Path",
        "x",
        "N",
        "batch",
        "model",
        # helpers the generated test file defines
        "PARAM_COUNT",
        "input_shape",
        "expected_shapes",
        "expected_param_count",
        "layer_shapes",
        "sample_input",
        # helper classes a generated model file may define (seqgen/runtime/sequence.py)
        "RecurrentOutput",
        "Permute",
        "Transpose",
        "Unsqueeze",
        "Squeeze",
        "Mean",
        "Sum",
        "Amax",
        "Select",
        "Scale",
        "ClsToken",
        "PosEmbedding",
        "PosEncoding",
    }
    | {name for name in dir(builtins) if not name.startswith("_")}
)
# Bounds that keep hostile specs from exhausting the stack (every stage walks values recursively)
# or memory (`repeat` multiplies layers).
MAX_NESTING = 50  # parentheses, signs and operators in one value; `repeat` blocks inside each other
MAX_LAYERS = 10_000  # layers after unrolling `repeat`

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
_SHAPE_X = re.compile(r"\d+(?:x\d+)*")
_IGNORE = re.compile(r"#\s*seqgen:\s*ignore\b(?:\[([^\]]*)\])?")
PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


MERGES = frozenset({"residual", "concat", "add", "multiply"})
# Words of the spec language: a block may not take one as its name.
KEYWORDS = frozenset({"model", "input", "repeat", "block", "branch", "shortcut", *MERGES})
# Inside a block, the names of its input sizes, by the input's rank (batch included): dim 1 is
# `in_channels` from rank 3 on, the last dim is `in_features` up to rank 3, and the spatial dims
# of an image or volume are H, W and D.
INPUT_NAMES: dict[int, tuple[str, ...]] = {
    2: ("in_features",),
    3: ("in_channels", "in_features"),
    4: ("in_channels", "H", "W"),
    5: ("in_channels", "D", "H", "W"),
}
ALL_INPUT_NAMES = frozenset(n for names in INPUT_NAMES.values() for n in names)


# Keywords whose values are words, which may be written unquoted (`lstm 64 take=last`): never
# parameter names
BARE_WORDS = {"take": ("all", "last", "hidden")}
# `input ... dtype=X`: the spellings seqgen reads, and the dtype each means
INPUT_DTYPES = {"long": "long", "int64": "long", "float": "float", "float32": "float"}


def input_names(rank: int) -> tuple[str, ...]:
    """The names of a block's input sizes (dims 1..rank-1) for an input of `rank`."""
    return INPUT_NAMES.get(rank, tuple(f"in_dim{i}" for i in range(1, rank)))


@dataclass(frozen=True)
class _Scope:
    """Where a stack of lines sits: at the top level, inside merges or repeats, in a block."""

    top: bool
    depth: int
    block: str | None  # the block being defined, if any
    params: tuple[Param, ...]  # the block's parameters (the model's are read from the parser)


def _extent(items: list[tuple[int, _Line]], i: int, stop: int, ind: int) -> int:
    """The index after the line items[i] and the lines indented under it."""
    end = i + 1
    while end < stop and items[end][0] > ind:
        end += 1
    return end


def _is_header(line: _Line) -> bool:
    """A line that ends with ':' opens an indented block."""
    tokens = line.tokens
    return len(tokens) >= 2 and tokens[-2].kind == "op" and tokens[-2].text == ":"


@dataclass(frozen=True)
class Token:
    kind: str  # number | name | string | op | end
    text: str
    col: int  # 1-based
    space_before: bool


def check_identifier(name: str, what: str, loc: Location) -> str:
    """Return `name` if it is safe to place in generated code as `what`, else raise."""
    if not name.isidentifier() or not name.isascii():
        raise SpecSyntaxError(f"{what} {name!r} is not a valid Python identifier", location=loc)
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise SpecSyntaxError(
            f"{what} {name!r} is a Python keyword", location=loc, hint="choose another name"
        )
    if name.startswith("__") and name.endswith("__"):
        raise SpecSyntaxError(
            f"{what} {name!r} is a dunder name, which seqgen refuses", location=loc
        )
    if name in RESERVED:
        raise SpecSyntaxError(
            f"{what} {name!r} is reserved: generated code uses it",
            location=loc,
            hint="Python builtins and the names generated code defines are reserved; "
            "choose another name",
        )
    return name


def camel_case(stem: str) -> str:
    """`variable_input` -> `VariableInput`; the class name when a spec has no `model` line."""
    parts = re.split(r"[^A-Za-z0-9]+", stem)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not name or name[0].isdigit():
        name = "Model" + name
    return name


class _Line:
    """Tokens of one spec line, with a cursor."""

    def __init__(self, path: str, lineno: int, text: str) -> None:
        self.path, self.lineno, self.text = path, lineno, text
        self.ignore: tuple[str, ...] | None = None  # codes of `# seqgen: ignore[...]`
        self.ignore_col = 0
        self.tokens = self._tokenize()
        self.pos = 0
        self.depth = 0  # nesting of the value being parsed, bounded by MAX_NESTING

    def loc(self, col: int, width: int = 1) -> Location:
        return Location(self.path, self.lineno, col, self.text, max(1, width))

    def error(
        self, message: str, col: int, width: int = 1, hint: str | None = None
    ) -> SpecSyntaxError:
        return SpecSyntaxError(message, location=self.loc(col, width), hint=hint)

    def _tokenize(self) -> list[Token]:
        tokens: list[Token] = []
        pos, space = 0, True
        while pos < len(self.text):
            m = _TOKEN.match(self.text, pos)
            if m is None:
                ch = self.text[pos]
                hint = None
                if ch == "/":
                    hint = "use // for integer division"
                elif ch in "\"'":
                    hint = "close the string with a matching quote"
                elif ch in "[]{}":
                    hint = "tuples are written with parentheses: (3, 3)"
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

    # -- expressions
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

    def expr(self, top_level: bool = False) -> Expr:
        """Parse `term (('+'|'-') term)*`; at top level a glued sign starts a new argument."""
        depth = self.depth
        left = self.term(top_level)
        while self.at("+") or self.at("-"):
            if top_level and self._is_sign(self.peek()):
                break
            op = self.next()
            self.deeper(op)  # a chain of operators is a left-leaning tree: each one nests
            right = self.term(top_level)
            left = BinOp(op.text, left, right, self.loc(op.col))
        self.depth = depth
        return left

    def _is_sign(self, tok: Token) -> bool:
        nxt = self.peek(1)
        return (
            tok.text == "-" and tok.space_before and not nxt.space_before and nxt.kind == "number"
        )

    def term(self, top_level: bool) -> Expr:
        depth = self.depth
        left = self.unary()
        while self.at("*") or self.at("//"):
            op = self.next()
            self.deeper(op)
            right = self.unary()
            left = BinOp(op.text, left, right, self.loc(op.col))
        self.depth = depth
        return left

    def unary(self) -> Expr:
        if self.at("-") or self.at("+"):
            depth = self.depth
            tok = self.next()
            self.deeper(tok)
            operand = self.unary()
            self.depth = depth
            if tok.text == "+":
                return operand
            if isinstance(operand, Num):  # fold `-1` into a literal
                return Num(-operand.value, self.loc(tok.col))
            return Neg(operand, self.loc(tok.col))
        return self.atom()

    def atom(self) -> Expr:
        tok = self.next()
        loc = self.loc(tok.col, len(tok.text))
        if tok.kind == "number":
            text = tok.text
            number: int | float = self.whole(tok) if text.isdigit() else float(text)
            if isinstance(number, float) and number in (float("inf"), float("-inf")):
                raise self.error(f"number {text} is too large", tok.col, len(text))
            return Num(number, loc)
        if tok.kind == "string":
            return Str(_unquote(tok.text), loc)
        if tok.kind == "name":
            if tok.text in ("True", "False", "None"):
                return Const({"True": True, "False": False, "None": None}[tok.text], loc)
            return Name(tok.text, loc)
        if tok.kind == "op" and tok.text == "(":
            depth = self.depth
            self.deeper(tok)
            value = self.paren(tok)
            self.depth = depth
            return value
        if tok.kind == "end":
            raise self.error("expected a value, found end of line", tok.col)
        raise self.error(f"expected a value, found {tok.text!r}", tok.col, len(tok.text))

    def whole(self, tok: Token) -> int:
        """The int a number token spells; Python refuses to convert over 4300 digits."""
        try:
            return int(tok.text)
        except ValueError:
            raise self.error(
                f"number {tok.text[:20]}... is too large", tok.col, len(tok.text)
            ) from None

    def paren(self, open_tok: Token) -> Expr:
        items: list[Expr] = []
        trailing_comma = False
        while not self.at(")"):
            if self.peek().kind == "end":
                raise self.unclosed(open_tok)
            items.append(self.expr())
            trailing_comma = self.at(",")
            self.separator(open_tok)
        self.next()
        if len(items) == 1 and not trailing_comma:
            return items[0]
        return TupleExpr(tuple(items), self.loc(open_tok.col))


def _unquote(text: str) -> str:
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


def read_spec(path: str | Path) -> str:
    """Read a spec file, turning I/O and encoding problems into SpecReadError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SpecReadError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise SpecReadError(f"{p}: is a directory, not a spec file") from None
    except OSError as e:
        raise SpecReadError(f"{p}: cannot read: {e.strerror}") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecReadError(
            f"{p}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})",
            hint="save the spec as UTF-8",
        ) from None
    if not text.strip():
        raise SpecReadError(
            f"{p}: the spec is empty",
            hint="start with `input SHAPE` and one layer per line; "
            "`seqgen init NAME` writes a starter spec",
        )
    return text


def parse_shape(text: str, path: str = "<--input>") -> tuple[tuple[Expr, ...], list[Param]]:
    """Parse a shape (`3x32x32`, `(3, 32, 32)`, `(8, seq_len=50)`); return dims and new params."""
    line = _Line(path, 1, text)
    return _Parser(path).shape(line)


def parse(text: str, path: str = "<spec>", input_override: str | None = None) -> ModelSpec:
    """Parse spec text into a ModelSpec; every independent error is raised together."""
    return _Parser(path).parse(text, input_override)


def parse_partial(
    text: str, path: str = "<spec>", input_override: str | None = None
) -> tuple[ModelSpec | None, list[SeqgenError]]:
    """Parse what parses (the lines without errors) and return the errors found, unraised.

    The trace stage checks the partial spec's layers too, so one run reports every error.
    """
    parser = _Parser(path)
    spec = parser.parse_partial(text, input_override)
    return spec, parser.errors


class _Parser:
    """Parses line by line; an error in one line is recorded and the next line is parsed, so a
    spec's independent errors are reported together."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.params: list[Param] = []
        self.class_name: str | None = None
        self.input: tuple[Expr, ...] | None = None
        self.input_loc: Location | None = None
        self.input_dtype = "float"
        self.errors: list[SeqgenError] = []
        self.header_failed = False  # a `model`/`input` line had an error
        self.loose_names: set[str] = set()  # names such a line seems to declare (no false alarms)
        self.blocks: dict[str, BlockDef] = {}  # defined so far, in order
        self.block_lines: dict[str, int] = {}  # every `block NAME` line of the spec
        self.failed_blocks: set[str] = set()  # blocks whose definition had an error

    def parse(self, text: str, input_override: str | None) -> ModelSpec:
        spec = self.parse_partial(text, input_override)
        raise_all(self.errors)
        assert spec is not None
        return spec

    def parse_partial(self, text: str, input_override: str | None) -> ModelSpec | None:
        """Parse what parses; errors are left in `self.errors`. None when no spec can be built."""
        lines = text.splitlines()
        items: list[tuple[int, _Line]] = []  # (indent, tokens) of non-blank lines
        ignores: list[tuple[Location, tuple[str, ...]]] = []
        for i, raw in enumerate(lines, start=1):
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                self.errors.append(
                    SpecSyntaxError(
                        "tabs are not allowed in indentation",
                        location=Location(self.path, i, 1, raw),
                        hint="indent with spaces",
                    )
                )
                continue
            try:
                line = _Line(self.path, i, raw)
            except SpecSyntaxError as e:
                self.errors.append(e)
                continue
            if line.ignore is not None:
                ignores.append(
                    (line.loc(line.ignore_col, len(raw) - line.ignore_col + 1), line.ignore)
                )
            if line.peek().kind == "end":
                continue
            items.append((len(raw) - len(raw.lstrip(" ")), line))
        for _, line in items:
            tokens = line.tokens
            if tokens[0].text == "block" and tokens[1].kind == "name":
                self.block_lines.setdefault(tokens[1].text, line.lineno)
        layers = self.stack(items, 0, len(items), _Scope(True, 0, None, ()))
        if input_override is not None:
            try:
                dims, new = parse_shape(input_override)
                self.input, self.input_loc = dims, Location("<--input>", 1, 1, input_override)
                self._declare_input_params(new, replace=True)
            except SpecSyntaxError as e:
                self.errors.append(e)
                self.header_failed = True
        if self.input is None and not self.header_failed:
            self.errors.append(
                SpecSyntaxError(
                    "the spec has no `input` line",
                    location=Location(self.path, 1, 1, lines[0] if lines else ""),
                    hint="add `input SHAPE` before the first layer, e.g. `input 3x32x32` "
                    "(one sample, batch excluded), or pass --input",
                )
            )
        if not layers and not self.errors:
            self.errors.append(
                SpecSyntaxError(
                    "the spec has no layers",
                    location=self.input_loc,
                    hint="add one layer per line after `input`, e.g. `linear 10`",
                )
            )
        self._check_names(layers, None)
        for block in self.blocks.values():
            self._check_names(list(block.body), block)
        self._check_keys(layers)
        try:
            class_name = self.class_name or check_identifier(
                camel_case(Path(self.path).stem), "class name", Location(self.path, 1, 1, "")
            )
        except SpecSyntaxError as e:
            self.errors.append(e)
            return None
        return ModelSpec(
            path=self.path,
            class_name=class_name,
            params=tuple(self.params),
            input_shape=self.input or (),
            layers=tuple(layers),
            input_loc=self.input_loc,
            input_dtype=self.input_dtype,
            ignores=tuple(ignores),
            blocks=tuple(self.blocks.values()),
        )

    def stack(
        self, items: list[tuple[int, _Line]], start: int, stop: int, scope: _Scope
    ) -> list[Node]:
        """The nodes of the lines items[start:stop], all at the indentation of the first."""
        nodes: list[Node] = []
        indent: int | None = None
        i = start
        while i < stop:
            ind, line = items[i]
            if indent is None:
                indent = ind
            head = line.peek()
            word = head.text.lower() if head.kind == "name" else ""
            end = _extent(items, i, stop, ind)
            nxt = i + 1
            try:
                if ind != indent:
                    raise line.error(
                        "unexpected indentation"
                        if ind > indent
                        else "indentation does not match the block it closes",
                        1,
                        max(1, ind),
                        hint="only the lines under a `NAME:` header are indented",
                    )
                if word == "repeat":
                    nxt = end
                    nxt = self.repeat(items, i, stop, ind, line, head, nodes, scope)
                elif word == "block" and line.peek(1).kind == "name":
                    nxt = end
                    self.failed_blocks.add(line.peek(1).text)  # until it is defined
                    self.block_def(items, i, end, line, scope)
                elif word in MERGES and _is_header(line):
                    nxt = end
                    nxt = self.merge(items, i, end, stop, line, scope, nodes)
                elif word in ("shortcut", "branch") and _is_header(line):
                    nxt = end
                    raise line.error(
                        "`shortcut:` must come right after a `residual:` block, at its indentation"
                        if word == "shortcut"
                        else "`branch:` only appears directly inside `concat:`, `add:` or "
                        "`multiply:`",
                        head.col,
                        len(word),
                        hint="indent it under the merge it belongs to"
                        if word == "branch"
                        else "write `residual:` with the body, then `shortcut:` below it",
                    )
                elif word in ("model", "input") and (
                    line.peek(1).kind != "op" or line.peek(1).text in "("
                ):
                    if not scope.top:
                        raise line.error(
                            f"`{word}` cannot appear inside an indented block", head.col, len(word)
                        )
                    if nodes:
                        raise line.error(
                            f"`{word}` must come before the first layer", head.col, len(word)
                        )
                    line.next()
                    try:
                        self.model_line(line, head) if word == "model" else self.input_line(
                            line, head
                        )
                    except SpecSyntaxError:
                        self.header_failed = True
                        self.loose_names |= {
                            t.text
                            for t, after in zip(line.tokens, line.tokens[1:])
                            if t.kind == "name" and after.text in ("=", ":")
                        }
                        raise
                else:
                    node = self.layer_or_use(line, scope)
                    if node is not None:
                        nodes.append(node)
            except SpecSyntaxError as e:
                self.errors.append(e)
            i = nxt
        return nodes

    def layer_or_use(self, line: _Line, scope: _Scope) -> LayerSpec | BlockUse | None:
        """A layer line, or the use of a block defined above it (None: the use of a block whose
        definition had an error, reported there)."""
        layer = self.layer(line)
        block = self.blocks.get(layer.name)
        if layer.name == scope.block:
            raise SpecSyntaxError(
                f"block {layer.name!r} uses itself: blocks cannot be recursive", location=layer.loc
            )
        if block is None and layer.name in self.failed_blocks:
            return None
        if block is None:
            later = self.block_lines.get(layer.name)
            if later is not None:
                raise SpecSyntaxError(
                    f"block {layer.name!r} is used before its definition on line {later}",
                    location=layer.loc,
                    hint="define a block above its first use",
                )
            return layer
        if layer.call_syntax:
            raise SpecSyntaxError(
                f"a block is used like a layer: `{layer.name} ARG... KEY=VALUE`", location=layer.loc
            )
        if layer.key is not None:
            raise SpecSyntaxError("name= is not supported on a block use", location=layer.loc)
        self.bind_use(block, layer)
        kwargs = tuple(Keyword(k.written, k.value, k.loc, k.written) for k in layer.kwargs)
        return BlockUse(layer.name, layer.args, kwargs, layer.loc)

    def bind_use(self, block: BlockDef, layer: LayerSpec) -> None:
        """A block use's arguments must fit the block's parameters."""
        params = [p.name for p in block.params]
        if len(layer.args) > len(params):
            extra = layer.args[len(params)]
            raise SpecSyntaxError(
                f"block {block.name!r} takes {len(params)} argument{'s' * (len(params) != 1)} "
                f"({', '.join(params) or 'none'}), {len(layer.args)} given",
                location=extra.loc,
            )
        given = set(params[: len(layer.args)])
        for kw in layer.kwargs:
            if kw.written not in params:
                close = difflib.get_close_matches(kw.written, params, n=1)
                raise SpecSyntaxError(
                    f"block {block.name!r} has no parameter {kw.written!r}",
                    location=kw.loc,
                    hint=f"did you mean {close[0]!r}?"
                    if close
                    else f"its parameters: {', '.join(params) or 'none'}",
                )
            if kw.written in given:
                raise SpecSyntaxError(
                    f"argument {kw.written!r} is given twice (by position and by name)",
                    location=kw.loc,
                )
            given.add(kw.written)
        missing = [p.name for p in block.params if p.required and p.name not in given]
        if missing:
            raise SpecSyntaxError(
                f"block {block.name!r} needs {', '.join(repr(m) for m in missing)}",
                location=layer.loc,
                hint=f"e.g. `{block.name} " + " ".join(f"{m}=..." for m in missing) + "`",
            )

    def merge(
        self,
        items: list[tuple[int, _Line]],
        i: int,
        end: int,
        stop: int,
        line: _Line,
        scope: _Scope,
        nodes: list[Node],
    ) -> int:
        """A merge at items[i] (and a `shortcut:` after a `residual:`); return the next index."""
        head = line.next()
        kind = head.text.lower()
        inner = _Scope(False, scope.depth + 1, scope.block, scope.params)
        dim: Expr | None = None
        try:
            if scope.depth >= MAX_NESTING:
                raise line.error(
                    f"blocks are nested more than {MAX_NESTING} deep", head.col, len(head.text)
                )
            if kind == "concat" and line.peek().kind == "name" and line.peek().text == "dim":
                line.next()
                line.expect("=", "'=' after dim")
                dim = line.expr()
            elif line.peek().kind == "name" and not line.at(":"):
                tok = line.peek()
                raise line.error(
                    f"`{kind}:` takes no arguments"
                    if kind != "concat"
                    else f"`concat` takes only `dim=D`, found {tok.text!r}",
                    tok.col,
                    len(tok.text),
                )
            line.expect(":", f"':' after `{kind}`")
            line.expect_end(f"`{kind}:`")
        except SpecSyntaxError as e:
            self.errors.append(e)
        if end == i + 1:
            self.errors.append(
                line.error(f"`{kind}:` needs an indented block after it", head.col, len(head.text))
            )
            return end
        loc = line.loc(head.col, len(head.text))
        if kind == "residual":
            body = self.stack(items, i + 1, end, inner)
            branches = [tuple(body)]
            if end < stop and items[end][0] == items[i][0]:
                sline = items[end][1]
                stok = sline.peek()
                if stok.kind == "name" and stok.text.lower() == "shortcut" and _is_header(sline):
                    send = _extent(items, end, stop, items[end][0])
                    sline.next()
                    try:
                        sline.expect(":", "':' after `shortcut`")
                        sline.expect_end("`shortcut:`")
                        if send == end + 1:
                            raise sline.error(
                                "`shortcut:` needs an indented block after it", stok.col, 8
                            )
                    except SpecSyntaxError as e:
                        self.errors.append(e)
                    branches.append(tuple(self.stack(items, end + 1, send, inner)))
                    end = send
            nodes.append(MergeSpec(kind, tuple(branches), loc))
            return end
        branches = []
        strays = 0
        j = i + 1
        while j < end:
            bind, bline = items[j]
            bend = _extent(items, j, end, bind)
            btok = bline.peek()
            if not (btok.kind == "name" and btok.text.lower() == "branch" and _is_header(bline)):
                self.errors.append(
                    bline.error(
                        f"inside `{kind}:`, each line at this level must be `branch:`",
                        btok.col,
                        len(btok.text) or 1,
                        hint="put the layers of each branch, indented, under its own `branch:`",
                    )
                )
                strays += 1
                j = bend
                continue
            bline.next()
            try:
                bline.expect(":", "':' after `branch`")
                bline.expect_end("`branch:`")
                if bend == j + 1:
                    raise bline.error(
                        "`branch:` needs an indented block after it",
                        btok.col,
                        6,
                        hint="a branch that passes its input on is `identity`",
                    )
            except SpecSyntaxError as e:
                self.errors.append(e)
            branches.append(tuple(self.stack(items, j + 1, bend, inner)))
            j = bend
        if len(branches) < 2 and not strays:
            self.errors.append(
                SpecSyntaxError(
                    f"`{kind}:` needs two or more `branch:` stacks, found {len(branches)}",
                    location=loc,
                    hint="a single stack needs no merge: write its layers directly",
                )
            )
        nodes.append(MergeSpec(kind, tuple(branches), loc, dim))
        return end

    def block_def(
        self, items: list[tuple[int, _Line]], i: int, end: int, line: _Line, scope: _Scope
    ) -> None:
        """`block NAME(p, q=default):` and its indented body."""
        head = line.next()
        tok = line.next()
        loc = line.loc(tok.col, len(tok.text))
        if not scope.top:
            raise line.error(
                "a `block` is defined at the top level, not inside another block", head.col, 5
            )
        name = check_identifier(tok.text, "block name", loc)
        if name.lower() in KEYWORDS:
            raise SpecSyntaxError(
                f"block name {name!r} is a keyword of the spec language",
                location=loc,
                hint="choose another name",
            )
        if name in self.blocks:
            raise SpecSyntaxError(
                f"block {name!r} is defined twice (first on line {self.blocks[name].loc.line})",
                location=loc,
            )
        if name == self.class_name or any(p.name == name for p in self.params):
            raise SpecSyntaxError(
                f"block name {name!r} is already the model's name or one of its parameters",
                location=loc,
            )
        params: list[Param] = []
        for param in self.param_list(line, block=True):
            if param.name in ALL_INPUT_NAMES:
                raise SpecSyntaxError(
                    f"{param.name!r} names the block's input size; a parameter cannot take it",
                    location=param.loc,
                    hint="seqgen passes it; choose another name",
                )
            if any(p.name == param.name for p in params):
                raise SpecSyntaxError(
                    f"parameter {param.name!r} is defined twice", location=param.loc
                )
            if param.required and params and not params[-1].required:
                raise SpecSyntaxError(
                    f"parameter {param.name!r} without a default follows one with a default",
                    location=param.loc,
                    hint="put parameters without defaults first",
                )
            params.append(param)
        line.expect(":", f"':' after `block {name}`")
        line.expect_end(f"`block {name}:`")
        if end == i + 1:
            raise line.error(f"block {name!r} needs an indented body", head.col, 5)
        body = self.stack(items, i + 1, end, _Scope(False, 1, name, tuple(params)))
        self.blocks[name] = BlockDef(name, tuple(params), tuple(body), loc)

    def repeat(
        self,
        items: list[tuple[int, _Line]],
        i: int,
        stop: int,
        ind: int,
        line: _Line,
        head: Token,
        layers: list[Node],
        scope: _Scope,
    ) -> int:
        """Unroll the `repeat N:` block at items[i] into `layers` (or, with an int parameter as
        its count, add it as a RepeatSpec); return the index after it."""
        end = _extent(items, i, stop, ind)
        try:
            count = self.repeat_header(line, scope)
        except SpecSyntaxError as e:
            self.errors.append(e)
            count = 0  # still parse the body, for its own errors
        if end == i + 1:
            raise line.error(
                "`repeat` needs an indented block after it",
                head.col,
                6,
                hint="indent the layers to repeat under `repeat N:`",
            )
        if scope.depth >= MAX_NESTING:
            raise line.error(
                f"`repeat` blocks are nested more than {MAX_NESTING} deep", head.col, 6
            )
        body = self.stack(
            items, i + 1, end, _Scope(False, scope.depth + 1, scope.block, scope.params)
        )
        if isinstance(count, Name):  # a loop in the generated model
            inner = next((b for b in walk(body) if isinstance(b, RepeatSpec)), None)
            if inner is not None:
                self.errors.append(
                    SpecSyntaxError(
                        "a `repeat` with a parameter count cannot hold another one",
                        location=inner.loc,
                        hint="give one of them a literal count",
                    )
                )
            else:
                layers.append(RepeatSpec(count, tuple(body), count.loc))
            return end
        if len(layers) + len(body) * count > MAX_LAYERS:
            self.errors.append(
                line.error(
                    f"the spec unrolls to more than {MAX_LAYERS} layers",
                    head.col,
                    6,
                    hint="repeat fewer times",
                )
            )
            return end
        layers.extend(body * count)
        return end

    def repeat_header(self, line: _Line, scope: _Scope) -> int | Name:
        """The count of `repeat N:`: a whole number, or an int model parameter (a loop)."""
        line.next()  # `repeat`
        tok = line.next()
        if tok.kind == "name" and line.at(":"):
            params = scope.params if scope.block is not None else self.params
            param = next((p for p in params if p.name == tok.text), None)
            if param is not None and param.required and param.type_name == "int":
                param = replace(param, default=1)
            loc = line.loc(tok.col, len(tok.text))
            if param is None or type(param.default) is not int or param.default < 1:
                raise SpecSyntaxError(
                    f"`repeat {tok.text}:` needs a whole number, or an int model parameter with a "
                    "default of 1 or more",
                    location=loc,
                    hint=f"declare it: `model {self.class_name or 'Net'}"
                    f"({tok.text}=2)`, or write a number",
                )
            line.next()
            line.expect_end("`repeat N:`")
            return Name(tok.text, loc)
        if tok.kind != "number" or not tok.text.isdigit():
            raise line.error(
                "`repeat` needs a whole number of times or an int parameter, like "
                "`repeat 3:` or `repeat depth:`",
                tok.col,
                len(tok.text) or 1,
            )
        count = line.whole(tok)
        if not 1 <= count <= 10_000:
            raise line.error(
                f"repeat count must be between 1 and 10000, got {count}", tok.col, len(tok.text)
            )
        if not line.at(":"):
            t = line.peek()
            raise line.error(
                "expected ':' after the repeat count", t.col, hint=f"write `repeat {count}:`"
            )
        line.next()
        line.expect_end("`repeat N:`")
        return count

    # -- `model NAME(p=default, ...)`
    def model_line(self, line: _Line, head: Token) -> None:
        if self.class_name is not None:
            raise line.error("a spec has one `model` line", head.col, 5)
        tok = line.next()
        if tok.kind != "name":
            raise line.error(
                "expected a class name after `model`",
                tok.col,
                len(tok.text) or 1,
                hint="e.g. `model CNN(num_classes=10)`",
            )
        self.class_name = check_identifier(tok.text, "class name", line.loc(tok.col, len(tok.text)))
        if self.class_name in self.blocks:
            raise line.error(
                f"class name {self.class_name!r} is already a block's name",
                tok.col,
                len(tok.text),
                hint="give the model or the block another name",
            )
        for param in self.param_list(line, block=False):
            self.add_param(param)
        line.expect_end("the model line")

    def param_list(self, line: _Line, block: bool) -> list[Param]:
        """`(p: int = 1, q=2)` after a model or block name; a block's may lack defaults."""
        params: list[Param] = []
        if not line.at("("):
            return params
        open_tok = line.next()
        while not line.at(")"):
            ptok = line.next()
            if ptok.kind == "end":
                raise line.unclosed(open_tok)
            if ptok.kind != "name":
                raise line.error(
                    f"expected a parameter name, found {ptok.text!r}", ptok.col, len(ptok.text)
                )
            ploc = line.loc(ptok.col, len(ptok.text))
            annotation = self.annotation(line, ptok.text)
            value: int | float | bool | str | None = None
            if line.at("="):
                line.next()
                value = self.literal(line, ptok.text)
                if annotation is not None:
                    value = self.check_annotation(line, ptok.text, annotation, value)
            elif not block:
                typed = f": {annotation[0]}" if annotation else ""
                raise line.error(
                    f"parameter {ptok.text!r} needs a default value",
                    line.peek().col,
                    hint=f"write `{ptok.text}{typed} = VALUE`",
                )
            params.append(
                Param(
                    check_identifier(ptok.text, "parameter name", ploc),
                    value,
                    ploc,
                    annotation=annotation[0] if annotation and block else None,
                )
            )
            line.separator(open_tok)
        line.next()
        return params

    def annotation(self, line: _Line, pname: str) -> tuple[str, int] | None:
        """An optional `: int` after a parameter name: (type name, column), Python's own form."""
        if not line.at(":"):
            return None
        line.next()
        tok = line.next()
        if tok.kind != "name" or tok.text not in PARAM_TYPES:
            shown = repr(tok.text) if tok.kind != "end" else "nothing"
            raise line.error(
                f"parameter {pname!r} is annotated with {shown}",
                tok.col,
                len(tok.text) or 1,
                hint="parameters are int, float, bool or str (the annotation is "
                f"optional: `{pname}=VALUE` takes the default's type)",
            )
        return tok.text, tok.col

    def check_annotation(
        self, line: _Line, pname: str, annotation: tuple[str, int], value: int | float | bool | str
    ) -> int | float | bool | str:
        """The default, if it has the annotated type (an int default of a float is widened)."""
        name, col = annotation
        if name == "float" and type(value) is int:
            return float(value)
        if type(value) is not PARAM_TYPES[name]:
            raise line.error(
                f"parameter {pname!r} is annotated {name} but its default {value!r} is a "
                f"{type(value).__name__}",
                col,
                len(name),
                hint=f"give a {name} default, or drop the annotation",
            )
        return value

    def literal(self, line: _Line, pname: str) -> int | float | bool | str:
        tok = line.peek()
        if tok.kind == "end" or line.at(",") or line.at(")"):
            raise line.error(f"dangling '=': parameter {pname!r} has no value", tok.col)
        value = line.unary()
        if isinstance(value, Num | Str) or (isinstance(value, Const) and value.value is not None):
            return value.value  # type: ignore[return-value]
        hint = None
        if isinstance(value, Name) and value.id.lower() in ("true", "false"):
            hint = f"did you mean {value.id.capitalize()}?"
        raise line.error(
            f"the default of {pname!r} must be a literal int, float, bool or string",
            value.loc.col,
            hint=hint,
        )

    def add_param(self, param: Param) -> None:
        if any(p.name == param.name for p in self.params):
            raise SpecSyntaxError(f"parameter {param.name!r} is defined twice", location=param.loc)
        if param.name == self.class_name:
            raise SpecSyntaxError(
                f"parameter {param.name!r} has the class's name", location=param.loc
            )
        self.params.append(param)

    # -- `input SHAPE`
    def input_line(self, line: _Line, head: Token) -> None:
        if self.input is not None:
            raise line.error("a spec has one `input` line", head.col, 5)
        self.input_dtype = self.dtype_option(line)
        dims, new = self.shape(line)
        self.input, self.input_loc = dims, line.loc(head.col, 5)
        self._declare_input_params(new, replace=False)

    def dtype_option(self, line: _Line) -> str:
        """A trailing `dtype=long` (or int64, float, float32) on the input line, taken off it."""
        toks = line.tokens
        if len(toks) < 4 or toks[-4].text != "dtype" or toks[-3].text != "=":
            return "float"
        value = toks[-2]
        dtype = INPUT_DTYPES.get(value.text)
        if dtype is None:
            raise line.error(
                f"unknown input dtype {value.text!r}",
                value.col,
                len(value.text),
                hint="write dtype=long for integer token ids (an embedding's input); "
                "the default is float",
            )
        line.tokens = [*toks[:-4], Token("end", "", toks[-4].col, True)]
        return dtype

    def _declare_input_params(self, new: list[Param], replace: bool) -> None:
        for p in new:
            if replace and any(q.name == p.name for q in self.params):
                self.params = [q if q.name != p.name else p for q in self.params]
            else:
                self.add_param(p)

    def shape(self, line: _Line) -> tuple[tuple[Expr, ...], list[Param]]:
        rest = line.text[line.peek().col - 1 : line.tokens[-1].col - 1].split("#", 1)[0].strip()
        start = line.peek()
        if _SHAPE_X.fullmatch(rest):
            sizes = tuple(
                Num(line.whole(Token("number", d, start.col, True)), line.loc(start.col))
                for d in rest.split("x")
            )
            return sizes, []
        if start.kind == "end":
            raise line.error(
                "`input` needs a shape",
                start.col,
                hint="e.g. `input 3x32x32` or `input (1, seq_len=28)`",
            )
        if not line.at("("):
            raise line.error(
                f"cannot read the shape {rest!r}",
                start.col,
                len(rest),
                hint="write `3x32x32` or `(3, 32, 32)`; a named dim is `(1, seq_len=28)`",
            )
        open_tok = line.next()
        dims: list[Expr] = []
        new: list[Param] = []
        while not line.at(")"):
            tok = line.peek()
            if tok.kind == "end":
                raise line.unclosed(open_tok)
            if tok.kind == "name" and line.peek(1).text == "=" and line.peek(1).kind == "op":
                line.next()
                line.next()
                loc = line.loc(tok.col, len(tok.text))
                vtok = line.peek()
                if vtok.kind != "number" or not vtok.text.isdigit():
                    raise line.error(
                        f"named dim {tok.text!r} needs a positive whole sample size",
                        vtok.col,
                        len(vtok.text) or 1,
                        hint=f"e.g. `{tok.text}=28`",
                    )
                line.next()
                new.append(
                    Param(
                        check_identifier(tok.text, "parameter name", loc),
                        line.whole(vtok),
                        loc,
                        from_input=True,
                    )
                )
                dims.append(Name(tok.text, loc))
            else:
                dims.append(line.expr())
            line.separator(open_tok)
        line.next()
        line.expect_end("the shape")
        if not dims:
            raise line.error(
                "the input shape is empty",
                open_tok.col,
                hint="give one sample's shape, batch excluded, e.g. `(10,)`",
            )
        return tuple(dims), new

    # -- layers
    def layer(self, line: _Line) -> LayerSpec:
        head = line.next()
        if head.kind != "name":
            raise line.error(
                f"expected a layer name, found {head.text!r}",
                head.col,
                len(head.text),
                hint="a layer line starts with a torch.nn class name, e.g. `linear 10`",
            )
        call_syntax = line.at("(") and not line.peek().space_before
        if call_syntax:  # `Linear(784, 10)`: read the call, refused later with the right spelling
            open_tok = line.next()
            args, kwargs, key = self.arguments(line, open_tok)
            line.expect_end(f"`{head.text}(...)`")
        else:
            args, kwargs, key = self.arguments(line, None)
        return LayerSpec(
            head.text,
            tuple(args),
            tuple(kwargs),
            line.loc(head.col, len(head.text)),
            key=key,
            call_syntax=call_syntax,
        )

    def arguments(
        self, line: _Line, open_tok: Token | None
    ) -> tuple[list[Expr], list[Keyword], str | None]:
        """`ARG... KEY=VALUE...` up to the end of the line, or up to `)` after `open_tok`."""
        args: list[Expr] = []
        kwargs: list[Keyword] = []
        key: str | None = None

        def done() -> bool:
            if open_tok is None:
                return line.peek().kind == "end"
            if line.peek().kind == "end":
                raise line.unclosed(open_tok)
            if line.at(")"):
                line.next()
                return True
            return False

        while not done():
            tok = line.peek()
            if open_tok is not None and args + kwargs and not line.at(","):
                raise line.error(f"expected ',' or ')', found {tok.text!r}", tok.col, len(tok.text))
            if open_tok is not None and line.at(","):
                line.next()
                if done():
                    break
                tok = line.peek()
            if tok.kind == "name" and line.peek(1).kind == "op" and line.peek(1).text == "=":
                line.next()
                eq = line.next()
                if line.peek().kind == "end" or (
                    line.peek().kind == "name" and line.peek(1).text == "="
                ):
                    raise line.error(
                        f"dangling '=': {tok.text!r} has no value",
                        eq.col,
                        hint=f"write `{tok.text}=VALUE`",
                    )
                if tok.text == "name":
                    if key is not None:
                        raise line.error("argument 'name' is given twice", tok.col, 4)
                    key = self.layer_key(line)
                    continue
                kw = ALIASES.get(tok.text, tok.text)
                if any(k.name == kw for k in kwargs):
                    raise line.error(f"argument {kw!r} is given twice", tok.col, len(tok.text))
                value = line.expr(top_level=open_tok is None)
                if kw in BARE_WORDS and isinstance(value, Name):
                    value = Str(value.id, value.loc)  # `take=hidden` reads as `take="hidden"`
                kwargs.append(Keyword(kw, value, line.loc(tok.col, len(tok.text)), tok.text))
                continue
            if tok.kind == "op" and tok.text == "=":
                raise line.error(
                    "dangling '=': no argument name before it",
                    tok.col,
                    hint="write `NAME=VALUE` with no space before '='",
                )
            if tok.kind == "op" and tok.text == ")":
                raise line.error("unbalanced parenthesis: ')' without a matching '('", tok.col)
            value = line.expr(top_level=open_tok is None)
            if kwargs:
                raise SpecSyntaxError(
                    "positional argument after a keyword argument",
                    location=value.loc,
                    hint="put positional arguments first",
                )
            args.append(value)
        return args, kwargs, key

    def layer_key(self, line: _Line) -> str:
        """The value of `name=`: the layer's key in the nn.Sequential, a plain identifier."""
        tok = line.next()
        text = (
            tok.text if tok.kind == "name" else _unquote(tok.text) if tok.kind == "string" else ""
        )
        loc = line.loc(tok.col, len(tok.text) or 1)
        if not text or not text.isidentifier() or not text.isascii():
            raise SpecSyntaxError(
                f"layer name {tok.text!r} is not a valid Python identifier",
                location=loc,
                hint="e.g. `name=stem`: letters, digits and _",
            )
        if keyword.iskeyword(text) or (text.startswith("__") and text.endswith("__")):
            raise SpecSyntaxError(
                f"layer name {text!r} is a Python keyword or dunder name",
                location=loc,
                hint="choose another name",
            )
        return text

    def _check_keys(self, items: list[Node]) -> None:
        """Layer names must be unique, also after `repeat` unrolls a named layer; they key the
        model's own nn.Sequential, so only its top-level layers take one."""
        nested = [n for m in items if isinstance(m, MergeSpec) for n in flat_layers([m])]
        nested += [n for b in self.blocks.values() for n in flat_layers(b.body)]
        for layer in dict.fromkeys(nested):
            if layer.key is not None:
                self.errors.append(
                    SpecSyntaxError(
                        "name= is only supported on the model's top-level layers",
                        location=layer.loc,
                        hint="drop name=... inside blocks and merges",
                    )
                )
        first: dict[str, LayerSpec] = {}
        layers = list(flat_layers([n for n in items if not isinstance(n, MergeSpec)]))
        for layer in dict.fromkeys(layers):  # each line once; `repeat` repeats the objects
            if layer.key is None:
                continue
            seen = first.setdefault(layer.key, layer)
            if seen is layer and layers.count(layer) > 1:
                self.errors.append(
                    SpecSyntaxError(
                        f"layer name {layer.key!r} is inside a `repeat` block, so it would be used "
                        "more than once",
                        location=layer.loc,
                        hint="layer names must be unique: name the layers outside `repeat`",
                    )
                )
            elif seen is not layer:
                self.errors.append(
                    SpecSyntaxError(
                        f"layer name {layer.key!r} is already used on line {seen.loc.line}",
                        location=layer.loc,
                        hint="layer names must be unique",
                    )
                )

    def _check_names(self, layers: list[Node], block: BlockDef | None) -> None:
        """Every Name in the input and the layers must be a defined parameter: the model's, or
        inside a block, the block's own and its input sizes."""
        model = {p.name for p in self.params} | self.loose_names
        defined = model if block is None else {p.name for p in block.params} | ALL_INPUT_NAMES

        def visit(e: Expr) -> None:
            if isinstance(e, Name):
                if e.id not in defined:
                    close = difflib.get_close_matches(e.id, sorted(defined), n=1)
                    if block is not None and e.id in model:
                        self.errors.append(
                            SpecSyntaxError(
                                f"model parameter {e.id!r} is used inside block {block.name!r}, "
                                "which sees only its own parameters and input sizes",
                                location=e.loc,
                                hint=f"pass it as a block parameter: "
                                f"`block {block.name}(..., {e.id})`",
                            )
                        )
                        return
                    if e.id.lower() in ("true", "false", "none"):
                        hint = f"did you mean {e.id.capitalize()}?"
                    elif close:
                        hint = f"did you mean {close[0]!r}?"
                    elif block is not None:
                        hint = (
                            f"add it to the block's parameters: `block {block.name}(..., {e.id})`"
                        )
                    else:
                        hint = (
                            f"declare it in the model line: `model {self.class_name or 'Net'}"
                            f"({e.id}=...)`, or quote it if it is a string"
                        )
                    self.errors.append(
                        SpecSyntaxError(f"undefined parameter {e.id!r}", location=e.loc, hint=hint)
                    )
            elif isinstance(e, Neg):
                visit(e.operand)
            elif isinstance(e, BinOp):
                visit(e.left)
                visit(e.right)
            elif isinstance(e, TupleExpr):
                for item in e.items:
                    visit(item)

        if block is None:
            for d in self.input or ():
                visit(d)
        for node in dict.fromkeys(walk(layers)):  # `repeat` repeats the same objects
            if isinstance(node, (LayerSpec, BlockUse)):
                for a in node.args:
                    visit(a)
                for k in node.kwargs:
                    visit(k.value)
            elif isinstance(node, MergeSpec) and node.dim is not None:
                visit(node.dim)
