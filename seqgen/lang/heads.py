"""`head NAME [from=POINT] [train_only=True]:` sections: the model's several outputs.

After the trunk (the model's top-level stack), each head is an indented stack of its own that
reads the trunk's output, or the output of the trunk node named POINT (`conv2d 64 k=3
name=mid`), or of the branch BRANCH of the merge named MERGE (`from=MERGE.BRANCH`). A head
without ':' and stack returns what it reads as is. The parser calls `head_section`; it calls
back the parser's `stack` for the body.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence

from seqgen.errors import Location, SpecSyntaxError
from seqgen.ir import Const, HeadSpec, MergeSpec, Node, Param, node_key, point_index, walk
from seqgen.lang.compound import Parser, StackContext, is_header
from seqgen.lang.lexer import Line
from seqgen.lang.names import check_identifier
from seqgen.lang.values_parser import parse_value

# Names a head or a `from=` point cannot take: the generated model's own attributes and locals
# (`self.trunk`, `features`) and the public attributes of nn.Module (`self.train` would shadow
# the method).
TAKEN = frozenset(
    {
        "trunk", "features", "add_module", "apply", "bfloat16", "buffers", "children",
        "compile", "cpu", "cuda", "double", "eval", "extra_repr", "float", "forward",
        "get_buffer", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict",
        "modules", "mtia", "named_buffers", "named_children", "named_modules",
        "named_parameters", "parameters", "register_buffer", "register_module",
        "register_parameter", "requires_grad_", "share_memory", "state_dict", "to",
        "to_empty", "train", "training", "type", "xpu", "zero_grad",
    }
)  # fmt: skip


# Names the generated tests of a model with heads use, where the int parameters are keyword
# arguments and locals: a parameter cannot take one.
TEST_NAMES = frozenset(
    {"training", "every", "TRAIN_ONLY", "output_shapes", "expected_output_shapes"}
)


def heads_name_errors(
    heads: Sequence[HeadSpec], params: Sequence[Param], class_name: str
) -> list[SpecSyntaxError]:
    """What only the whole spec shows: a parameter named like a helper of the generated tests,
    a point named like the output class (forward's local would hide it)."""
    if not heads:
        return []
    errors = [
        SpecSyntaxError(
            f"parameter {p.name!r} is taken in a model with heads: its generated tests use it",
            location=p.loc,
            hint="choose another name",
        )
        for p in params
        if p.name in TEST_NAMES
    ]
    output = f"{class_name}Output"
    errors += [
        SpecSyntaxError(
            f"point {h.point!r} is the name of the output class forward returns",
            location=h.point_loc,
            hint="name the layer otherwise",
        )
        for h in heads
        if h.point == output
    ]
    return errors


def is_head_header(line: Line, blocks: Collection[str]) -> bool:
    """`head NAME ...:`, or a line that means one (its ':' forgotten): a line that starts with
    `head`, unless it uses a block of that name (a use never ends in ':')."""
    first = line.tokens[0]
    if first.kind != "name" or first.text.lower() != "head":
        return False
    return is_header(line) or first.text not in blocks


def head_section(
    parser: Parser,
    items: list[tuple[int, Line]],
    i: int,
    end: int,
    line: Line,
    scope: StackContext,
    trunk: Sequence[Node],
    heads: Sequence[HeadSpec],
) -> HeadSpec:
    """The head whose header is items[i], its body items[i+1:end]."""
    keyword = line.next()
    if not scope.top:
        raise line.error(
            "a `head` is written at the top level, after the trunk",
            keyword.col,
            4,
            hint="unindent it: heads follow the model's own layers",
        )
    tok = line.next()
    loc = line.loc(tok.col, len(tok.text) or 1)
    if tok.kind != "name":
        raise SpecSyntaxError(
            f"expected a head's name after `head`, found {tok.text or 'the end of the line'!r}",
            location=loc,
            hint="e.g. `head logits:` or `head aux from=mid train_only=True:`",
        )
    name = check_identifier(tok.text, "head name", loc)
    _not_taken(name, "head name", loc, parser)
    if not trunk:
        raise line.error(
            "a `head` needs the trunk's layers above it",
            keyword.col,
            4,
            hint="write the shared layers first, then `head NAME:` sections",
        )
    if any(h.name == name for h in heads):
        first = next(h for h in heads if h.name == name)
        raise SpecSyntaxError(
            f"head {name!r} is defined twice (first on line {first.loc.line})", location=loc
        )
    if any(h.point == name for h in heads):
        raise SpecSyntaxError(f"head name {name!r} is a `from=` point's name", location=loc)
    point, point_loc, train_only = None, None, False
    branch: str | None = None
    seen: set[str] = set()
    while not line.at(":") and line.peek().kind != "end":
        key = line.next()
        if key.kind != "name" or key.text not in ("from", "train_only"):
            raise line.error(
                f"a head takes `from=POINT` and `train_only=True`, found {key.text!r}",
                key.col,
                len(key.text) or 1,
                hint=f"e.g. `head {name} from=stem:`",
            )
        if key.text in seen:
            raise line.error(f"{key.text}= is given twice", key.col, len(key.text))
        seen.add(key.text)
        line.expect("=", f"'=' after {key.text}")
        if key.text == "from":
            ptok = line.next()
            point_loc = line.loc(ptok.col, len(ptok.text) or 1)
            if ptok.kind != "name":
                raise SpecSyntaxError(
                    "`from=` names a trunk layer: `from=POINT`, where the layer has `name=POINT`",
                    location=point_loc,
                )
            if line.at("."):  # `from=MERGE.BRANCH`
                line.next()
                btok = line.next()
                branch_loc = line.loc(btok.col, len(btok.text) or 1)
                point_loc = line.loc(ptok.col, btok.col + len(btok.text) - ptok.col)
                branch = _branch(ptok.text, btok.text, branch_loc, point_loc, trunk)
            point = _point(ptok.text, point_loc, parser, trunk, heads, name, branch is not None)
        else:
            value = parse_value(line)
            if not isinstance(value, Const) or not isinstance(value.value, bool):
                raise SpecSyntaxError(
                    "train_only= takes True or False", location=value.loc, hint="write True"
                )
            train_only = value.value
    if line.peek().kind == "end" and end == i + 1:  # `head mu from=z.mu`: returned as is
        return HeadSpec(name, (), loc, point, point_loc, train_only, branch)
    line.expect(":", f"':' after `head {name}`")
    line.expect_end(f"`head {name}:`")
    if end == i + 1:
        raise line.error(
            f"head {name!r} needs an indented stack after it",
            keyword.col,
            4,
            hint=f"a head that returns its point's output as is has no ':' (`head {name}`)",
        )
    body = parser.stack(items, i + 1, end, StackContext(False, 1, None, ()))
    return HeadSpec(name, tuple(body), loc, point, point_loc, train_only, branch)


def _point(
    text: str,
    loc: Location,
    parser: Parser,
    trunk: Sequence[Node],
    heads: Sequence[HeadSpec],
    head: str,
    branch: bool = False,
) -> str:
    """A `from=` point: the name of a top-level trunk node, usable as an attribute name (for
    `from=MERGE.BRANCH`, `branch`, the merge's name, already checked by `_branch`)."""
    index = point_index(trunk, text)
    inner = next((n for n in walk(trunk) if node_key(n) == text), None)
    if index is None and inner is not None:  # FPN's P4 inside the merge that builds P3
        raise SpecSyntaxError(
            f"`from={text}`: {text!r} (line {inner.loc.line}) is inside a merge: a head reads a "
            "top-level trunk node, or a named branch of a top-level merge (`from=MERGE.BRANCH`)",
            location=loc,
            hint="a point inside a merge cannot be read by a head yet; name a top-level node "
            "instead",
        )
    if index is None:
        raise SpecSyntaxError(
            f"`from={text}`: no top-level trunk layer is named {text!r}",
            location=loc,
            hint=_did_you_mean(text, _names(trunk))
            or f"add `name={text}` to the trunk layer the head reads",
        )
    check_identifier(text, "a head's `from=` point", loc)
    _not_taken(text, "a head's `from=` point", loc, parser)
    if any(h.name == text for h in heads) or text == head:
        raise SpecSyntaxError(f"point {text!r} is also a head's name", location=loc)
    if index == len(trunk) - 1 and not branch:
        raise SpecSyntaxError(
            f"`from={text}`: {text!r} is the trunk's last layer, where every head starts",
            location=loc,
            hint="drop `from=`",
        )
    return text


def _branch(
    merge: str, text: str, loc: Location, point_loc: Location, trunk: Sequence[Node]
) -> str:
    """The BRANCH of `from=MERGE.BRANCH`: a named branch of the top-level merge named MERGE."""
    index = point_index(trunk, merge)
    if index is None:
        raise SpecSyntaxError(
            f"`from={merge}.{text}`: no top-level merge is named {merge!r}",
            location=point_loc,
            hint=_did_you_mean(merge, _names(trunk, merges=True))
            or f"add `name={merge}` to the merge whose branch the head reads",
        )
    node = trunk[index]
    if not isinstance(node, MergeSpec) or node.kind == "residual":
        what = "a residual" if isinstance(node, MergeSpec) else "no merge"
        raise SpecSyntaxError(
            f"`from={merge}.{text}`: {merge!r} is {what}: a head reads a branch of a "
            "`concat:`, `add:`, ... with named branches",
            location=point_loc,
            hint=f"drop `.{text}` to read {merge!r}'s output",
        )
    names = [k for k in node.branch_keys if k is not None]
    if text not in names:
        hint = _did_you_mean(text, names) or (
            f"name the branch the head reads: `branch name={text}:` in {merge!r}"
            + (f" (its named branches: {', '.join(names)})" if names else "")
        )
        raise SpecSyntaxError(
            f"`from={merge}.{text}`: merge {merge!r} has no branch named {text!r}",
            location=loc,
            hint=hint,
        )
    return text


def _names(trunk: Sequence[Node], merges: bool = False) -> list[str]:
    """The names of the trunk's top-level nodes (only its merges' with `merges`)."""
    return [
        key
        for node in trunk
        if (key := node_key(node)) is not None and (not merges or isinstance(node, MergeSpec))
    ]


def _did_you_mean(text: str, names: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(text, sorted(names), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _not_taken(name: str, what: str, loc: Location, parser: Parser) -> None:
    """Refuse a name the generated model already uses: its attributes, locals and parameters."""
    if name in TAKEN or name.startswith("_"):
        raise SpecSyntaxError(
            f"{what} {name!r} is taken: the generated model uses it (`self.{name}`)",
            location=loc,
            hint="choose another name",
        )
    if name == parser.class_name or any(p.name == name for p in parser.params):
        raise SpecSyntaxError(
            f"{what} {name!r} is already the model's name or one of its parameters",
            location=loc,
            hint="choose another name",
        )


def head_keys(heads: Sequence[HeadSpec]) -> list[SpecSyntaxError]:
    """`name=` keys the trunk's nodes only: a head is a plain nn.Sequential."""
    return [
        SpecSyntaxError(
            "name= is only supported in the trunk, not inside a head",
            location=node.loc,
            hint="drop name=... here",
        )
        for head in heads
        for node in dict.fromkeys(walk(head.layers))
        if node_key(node) is not None
    ]
