"""`head NAME [from=POINT] [train_only=True]:` sections: the model's several outputs.

After the trunk (the model's top-level stack), each head is an indented stack of its own that
reads the trunk's output, or the output of the trunk node named POINT (`conv2d 64 k=3
name=mid`), or of the branch BRANCH of the merge named MERGE (`from=MERGE.BRANCH`), or of a
node or branch further in (`from=p3.down.p4`: node p4 of that branch). A head
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
    inner: tuple[str, ...] = ()
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
            path = [(ptok.text, point_loc)]
            while line.at("."):  # `from=MERGE.BRANCH`, `from=p3.down.p4`, ...
                line.next()
                btok = line.next()
                if btok.kind != "name":
                    raise line.error(
                        f"expected a name after '.' in `from=`, found {btok.text or 'nothing'!r}",
                        btok.col,
                        len(btok.text) or 1,
                        hint="e.g. `from=z.mu` or `from=p3.down.p4`",
                    )
                path.append((btok.text, line.loc(btok.col, len(btok.text) or 1)))
                point_loc = line.loc(ptok.col, btok.col + len(btok.text) - ptok.col)
            if len(path) > 1:
                branch, inner = _path(path, point_loc, trunk)
                for text, at in path[2::2]:
                    check_identifier(text, "a head's `from=` point", at)
                    _not_taken(text, "a head's `from=` point", at, parser)
                    if any(h.name == text for h in heads) or text == name:
                        raise SpecSyntaxError(f"point {text!r} is also a head's name", location=at)
            point = _point(ptok.text, point_loc, parser, trunk, heads, name, branch is not None)
        else:
            value = parse_value(line)
            if not isinstance(value, Const) or not isinstance(value.value, bool):
                raise SpecSyntaxError(
                    "train_only= takes True or False", location=value.loc, hint="write True"
                )
            train_only = value.value
    if line.peek().kind == "end" and end == i + 1:  # `head mu from=z.mu`: returned as is
        return HeadSpec(name, (), loc, point, point_loc, train_only, branch, inner)
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
    return HeadSpec(name, tuple(body), loc, point, point_loc, train_only, branch, inner)


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
    `from=MERGE.BRANCH`, `branch`, the merge's name, already checked by `_path`)."""
    index = point_index(trunk, text)
    inner = next((n for n in walk(trunk) if node_key(n) == text), None)
    if index is None and inner is not None:  # FPN's P4 inside the merge that builds P3
        path = _path_to(trunk, text)
        raise SpecSyntaxError(
            f"`from={text}`: {text!r} (line {inner.loc.line}) is inside a merge: a head reads it "
            "by its path, the merges and named branches that hold it",
            location=loc,
            hint=f"did you mean `from={path}`?"
            if path
            else f"name the merges and branches around it, then `from=MERGE.BRANCH....{text}`",
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


def _path_to(stack: Sequence[Node], text: str) -> str | None:
    """`td3.down.td4` for a node named `td4` inside branch `down` of merge `td3`: the path a
    head reads it by (None where a merge or branch on the way has no name)."""
    for node in stack:
        if node_key(node) == text:
            return text
        if not isinstance(node, MergeSpec) or node.key is None or node.kind == "residual":
            continue
        for key, branch in zip(node.branch_keys, node.branches, strict=False):
            rest = _path_to(branch, text) if key is not None else None
            if rest is not None:
                return f"{node.key}.{key}.{rest}"
    return None


def _path(
    path: Sequence[tuple[str, Location]], point_loc: Location, trunk: Sequence[Node]
) -> tuple[str, tuple[str, ...]]:
    """`from=MERGE.BRANCH[.NODE[.BRANCH]...]`, checked a step at a time: each MERGE a merge with
    named branches, each NODE a node of the branch before it (not inside a `repeat`, a residual
    or a block). Returns the top-level merge's BRANCH and the rest of the path."""
    full = ".".join(text for text, _ in path)
    stack: Sequence[Node] = trunk
    where = None  # the trunk's top level; then "branch 'down' of 'p4'"
    for k in range(0, len(path) - 1, 2):
        (merge, merge_loc), (text, loc) = path[k], path[k + 1]
        at = point_loc if k == 0 else merge_loc
        node = _node(full, merge, at, stack, where, merges=True)
        if not isinstance(node, MergeSpec) or node.kind == "residual":
            what = "a residual" if isinstance(node, MergeSpec) else "no merge"
            raise SpecSyntaxError(
                f"`from={full}`: {merge!r} is {what}: a head reads a branch of a "
                "`concat:`, `add:`, ... with named branches",
                location=at,
                hint=f"drop `.{'.'.join(t for t, _ in path[k + 1 :])}` to read {merge!r}'s output",
            )
        names = [key for key in node.branch_keys if key is not None]
        if text not in names:
            hint = _did_you_mean(text, names) or (
                f"name the branch the head reads: `branch name={text}:` in {merge!r}"
                + (f" (its named branches: {', '.join(names)})" if names else "")
            )
            raise SpecSyntaxError(
                f"`from={full}`: merge {merge!r} has no branch named {text!r}",
                location=loc,
                hint=hint,
            )
        j = node.branch_keys.index(text)
        shared = node.branch_shares[j] if node.branch_shares else None
        if shared is not None and k + 2 < len(path):  # its stack is the other branch's modules
            fixed = [t for t, _ in path[: k + 1]] + [shared] + [t for t, _ in path[k + 2 :]]
            raise SpecSyntaxError(
                f"`from={full}`: branch {text!r} of {merge!r} runs the modules of branch "
                f"{shared!r}: a head reads inside the branch that holds them",
                location=loc,
                hint=f"did you mean `from={'.'.join(fixed)}`?",
            )
        stack = node.branches[j]
        where = f"branch {text!r} of {merge!r}"
    if len(path) % 2 == 1:  # it ends at a node of the last branch
        _node(full, *path[-1], stack, where)
    return path[1][0], tuple(text for text, _ in path[2:])


def _node(
    full: str,
    text: str,
    loc: Location,
    stack: Sequence[Node],
    where: str | None,
    merges: bool = False,
) -> Node:
    """The node named `text` among `stack`'s own nodes, or a located error: what is close, or
    why a name further in cannot be read."""
    index = point_index(stack, text)
    if index is not None:
        return stack[index]
    what = "merge" if merges else "layer"
    deeper = any(node_key(n) == text for n in walk(stack))
    hint = (
        f"{text!r} is deeper there, in a residual or an unnamed merge: the path names each "
        "merge and branch on the way (`from=MERGE.BRANCH.NODE`)"
        if deeper
        else _did_you_mean(text, _names(stack, merges))
        or f"add `name={text}` to the {what} the head reads (not inside a block or a `repeat`)"
    )
    missing = f"no top-level {what} is named" if where is None else f"{where} has no {what} named"
    raise SpecSyntaxError(f"`from={full}`: {missing} {text!r}", location=loc, hint=hint)


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


def head_keys(heads: Sequence[HeadSpec], trunk: Sequence[Node]) -> list[SpecSyntaxError]:
    """`name=` keys the trunk's nodes only: a head is a plain nn.Sequential. And when every head
    reads a `from=` point, the trunk's layers after the last one feed no output: no gradient
    would reach them, and the model would carry their weights for nothing."""
    read = [point_index(trunk, h.point) for h in heads if h.point is not None]
    unread: list[SpecSyntaxError] = []
    if heads and len(read) == len(heads) and None not in read:
        last = max(i for i in read if i is not None)
        if last < len(trunk) - 1:
            unread.append(
                SpecSyntaxError(
                    "this and the trunk's later lines feed no output: every head reads an "
                    "earlier point (from=)",
                    location=trunk[last + 1].loc,
                    hint="add a head that reads the trunk's end (`head NAME:` without from=), "
                    "or remove these lines",
                )
            )
    return unread + [
        SpecSyntaxError(
            "name= is only supported in the trunk, not inside a head",
            location=node.loc,
            hint="drop name=... here",
        )
        for head in heads
        for node in dict.fromkeys(walk(head.layers))
        if node_key(node) is not None
    ]
