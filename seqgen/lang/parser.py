"""Stage 1: spec text -> ModelSpec. Values are parsed into a closed set of nodes, never run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from seqgen.errors import (
    InternalError,
    Location,
    SeqgenError,
    SpecReadError,
    SpecSyntaxError,
    raise_all,
)
from seqgen.ir import (
    BlockDef,
    BlockUse,
    Expr,
    HeadSpec,
    InputSpec,
    Keyword,
    LayerSpec,
    ModelSpec,
    Node,
    Param,
    UseSpec,
)
from seqgen.lang.arguments import bind_use, parse_dims, parse_layer, parse_params
from seqgen.lang.compound import StackContext, block_def, body_end, is_header, merge, repeat
from seqgen.lang.heads import head_keys, head_section, heads_name_errors, is_head_header
from seqgen.lang.hints import misindent_hint, unknown_header
from seqgen.lang.inputs import inputs_fields, layer_reads, read_input, spec_input_errors
from seqgen.lang.lexer import Line, Token
from seqgen.lang.names import MERGES, camel_case, check_identifier, check_keys, check_names
from seqgen.lang.uses import is_use_line, parse_use, use_clashes


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
    return parse_dims(Line(path, 1, text))


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
    """Parses line by line, recording a line's error and going on: all errors together."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.params: list[Param] = []
        self.class_name: str | None = None
        self.input: tuple[Expr, ...] | None = None
        self.input_loc: Location | None = None
        self.input_dtype = "float"
        self.input_name: tuple[str, Location] | None = None  # `input image 3x32x32`
        self.extra_inputs: list[InputSpec] = []  # the `input NAME SHAPE` lines after the first
        self.errors: list[SeqgenError] = []
        self.header_failed = False  # a `model`/`input` line had an error
        self.loose_names: set[str] = set()  # names such a line seems to declare (no false alarms)
        self.blocks: dict[str, BlockDef] = {}  # defined so far, in order
        self.block_lines: dict[str, int] = {}  # every `block NAME` line of the spec
        self.failed_blocks: set[str] = set()  # blocks whose definition had an error
        self.heads: list[HeadSpec] = []  # `head NAME:` sections, after the trunk
        self.uses: dict[str, UseSpec] = {}  # `use` lines by lower-case name (read first)
        self.use_lines: list[UseSpec] = []

    def parse(self, text: str, input_override: str | None) -> ModelSpec:
        spec = self.parse_partial(text, input_override)
        raise_all(self.errors)
        if spec is None:  # no spec is built only when there are errors, raised above
            raise InternalError("the parser built no spec and reported no error")
        return spec

    def parse_partial(self, text: str, input_override: str | None) -> ModelSpec | None:
        """Parse what parses; errors are left in `self.errors`. None when no spec can be built."""
        lines = text.splitlines()
        items: list[tuple[int, Line]] = []  # (indent, tokens) of non-blank lines
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
            if is_use_line(raw):  # before the lexer: a module path has `.` and `:`
                try:
                    use = parse_use(self.path, i, raw)
                    self.use_lines.append(use)
                    self.uses.setdefault(use.name.lower(), use)
                except SpecSyntaxError as e:
                    self.errors.append(e)
                continue
            try:
                line = Line(self.path, i, raw)
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
        layers = self.stack(items, 0, len(items), StackContext(True, 0, None, (), reads=True))
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
        model = {p.name for p in self.params} | self.loose_names
        self.errors += check_names(layers, None, model, self.class_name, self.input or ())
        for block in self.blocks.values():
            self.errors += check_names(block.body, block, model, self.class_name)
        for head in self.heads:
            self.errors += check_names(head.layers, None, model, self.class_name)
        self.errors += check_keys(layers, self.blocks.values()) + head_keys(self.heads, layers)
        try:
            class_name = self.class_name or check_identifier(
                camel_case(Path(self.path).stem), "class name", Location(self.path, 1, 1, "")
            )
        except SpecSyntaxError as e:
            self.errors.append(e)
            return None
        self.errors += heads_name_errors(self.heads, self.params, class_name)
        self.errors += spec_input_errors(self, layers, class_name)
        self.errors += use_clashes(self.use_lines, self.blocks, class_name)
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
            heads=tuple(self.heads),
            **inputs_fields(self),
            uses=tuple(self.use_lines),
        )

    def stack(
        self, items: list[tuple[int, Line]], start: int, stop: int, scope: StackContext
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
            end = body_end(items, i, stop, ind)
            nxt = i + 1
            try:
                if ind != indent:
                    above = items[i - 1][1] if i > start else None
                    header = items[start - 1][1] if start > 0 else None
                    hint, fix = misindent_hint(line, ind, indent, above, header)
                    raise line.error(
                        "unexpected indentation"
                        if ind > indent
                        else "indentation does not match the block it closes",
                        1,
                        max(1, ind),
                        hint=hint,
                        fix=fix,
                    )
                if (
                    scope.top
                    and self.heads
                    and not (
                        is_head_header(line, self.blocks)
                        or (word == "block" and line.peek(1).kind == "name")
                    )
                ):
                    nxt = end
                    raise line.error(
                        "the trunk's lines come before the first `head`",
                        head.col,
                        len(head.text) or 1,
                        hint=f"move it above `head {self.heads[0].name}` (line "
                        f"{self.heads[0].loc.line}), or indent it into a head",
                    )
                if is_head_header(line, self.blocks):
                    nxt = end
                    self.heads.append(
                        head_section(self, items, i, end, line, scope, nodes, self.heads)
                    )
                elif word == "repeat":
                    nxt = end
                    nxt = repeat(self, items, i, stop, ind, line, head, nodes, scope)
                elif word == "block" and line.peek(1).kind == "name":
                    nxt = end
                    self.failed_blocks.add(line.peek(1).text)  # until it is defined
                    block_def(self, items, i, end, line, scope)
                elif word in MERGES and is_header(line):
                    nxt = end
                    nxt = merge(self, items, i, end, stop, line, scope, nodes)
                elif word in ("shortcut", "branch") and is_header(line):
                    nxt = end
                    raise line.error(
                        "`shortcut:` must come right after a `residual:` block, at its indentation"
                        if word == "shortcut"
                        else "`branch:` only appears directly inside `concat:`, `add:`, "
                        "`multiply:`, `subtract:`, `bmm:` or `reparameterize:`",
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
                        (self.model_line if word == "model" else self.input_line)(line, head)
                    except SpecSyntaxError:
                        self.header_failed = True
                        self.loose_names |= {
                            t.text
                            for t, after in zip(line.tokens, line.tokens[1:])
                            if t.kind == "name" and after.text in ("=", ":")
                        }
                        raise
                elif is_header(line):  # `subtract:`: no word that opens a block; body skipped
                    nxt = end
                    raise unknown_header(line, self.blocks, items[i + 1 : end], self.loose_names)
                else:
                    node = self.layer_or_use(line, scope)
                    if node is not None:
                        nodes.append(node)
            except SpecSyntaxError as e:
                self.errors.append(e)
            i = nxt
        return nodes

    def layer_or_use(self, line: Line, scope: StackContext) -> LayerSpec | BlockUse | None:
        """A layer line, or the use of a block defined above it (None: the use of a block whose
        definition had an error, reported there)."""
        layer = parse_layer(line)
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
            use = self.uses.get(layer.name.lower())
            return replace(layer, use=use) if use else layer_reads(self, layer, scope.reads)
        if layer.call_syntax:
            raise SpecSyntaxError(
                f"a block is used like a layer: `{layer.name} ARG... KEY=VALUE`", location=layer.loc
            )
        if layer.key is not None and block.param("name") is not None:
            raise SpecSyntaxError(
                f"`name=` keys this use of {layer.name!r}, but the block has a parameter "
                "called 'name' too",
                location=layer.loc,
                hint="pass that parameter by position, or rename it in the block's definition",
            )
        bind_use(block, layer)
        kwargs = tuple(Keyword(k.written, k.value, k.loc, k.written) for k in layer.kwargs)
        return BlockUse(layer.name, layer.args, kwargs, layer.loc, key=layer.key)

    # -- `model NAME(p=default, ...)`
    def model_line(self, line: Line, head: Token) -> None:
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
        for param in parse_params(line, block=False):
            self.add_param(param)
        line.expect_end("the model line")

    def add_param(self, param: Param) -> None:
        if any(p.name == param.name for p in self.params):
            raise SpecSyntaxError(f"parameter {param.name!r} is defined twice", location=param.loc)
        if param.name == self.class_name:
            raise SpecSyntaxError(
                f"parameter {param.name!r} has the class's name", location=param.loc
            )
        self.params.append(param)

    def input_line(self, line: Line, head: Token) -> None:
        self._declare_input_params(read_input(self, line, head), replace=False)  # lang/inputs

    def _declare_input_params(self, new: list[Param], replace: bool) -> None:
        for p in new:
            if replace and any(q.name == p.name for q in self.params):
                self.params = [q if q.name != p.name else p for q in self.params]
            else:
                self.add_param(p)
