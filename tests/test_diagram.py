"""`seqgen diagram`: the network drawn from the trace as Mermaid, SVG and dot.

Each format is checked by a small parser of its own (Mermaid line by line, SVG with
xml.etree, dot statement by statement), on traced specs and on a graph whose every text is
hostile; the collapsing of repeats, `--expand`, `--at`, determinism, and that the committed
example diagrams are current.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import EXAMPLE_SPECS, EXAMPLES, ROOT, seqgen_cli

from seqgen.api import diagram, traced_spec
from seqgen.diagram import FORMATS, build, draw
from seqgen.diagram.graph import Box, Diagram, Fork, Group, all_boxes, all_edges
from seqgen.errors import DiagramError

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = 'x"] --> n0; click n0 "javascript:alert(1)" <script>`#quot;&amp;</b>\n%%\\"}'

# ------------------------------------------------------------------------- format checkers

_SHAPES = {'(["': '"])', '["': '"]', '[["': '"]]', '{{"': '"}}'}
_NODE = re.compile(r"(n\d+)(\(\[\"|\[\[\"|\[\"|\{\{\")(.*)$")
_LABEL_TEXT = re.compile(r"(?:[A-Za-z0-9 _.,=:+\-*/()\[\]']|#\d+;)*")


def mermaid_graph(text: str) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, str]]:
    """Parses seqgen's Mermaid strictly: every line must be a header, a node, a subgraph, an
    `end` or an edge, and every label only safe characters and entities. Returns the nodes
    (id -> label), the edges and the subgraphs (id -> title)."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, str] = {}
    groups: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    depth = 0
    for line in lines[1:]:
        body = line.strip()
        if m := re.fullmatch(r"subgraph (g\d+)\[\"(.*)\"\]", body):
            assert m.group(1) not in groups, f"subgraph id twice: {line}"
            assert _LABEL_TEXT.fullmatch(m.group(2)), line
            groups[m.group(1)] = m.group(2)
            depth += 1
        elif body == "end":
            depth -= 1
            assert depth >= 0, "an `end` without its subgraph"
        elif m := re.fullmatch(r"(n\d+) --> (n\d+)", body):
            edges.append((m.group(1), m.group(2)))
        elif m := _NODE.fullmatch(body):
            node, opening, rest = m.groups()
            closing = _SHAPES[opening]
            assert rest.endswith(closing), f"label not closed: {line}"
            label = rest[: -len(closing)]
            parts = label.split("<br/>")
            assert len(parts) == 2 and all(_LABEL_TEXT.fullmatch(p) for p in parts), line
            assert node not in nodes, f"node id twice: {line}"
            nodes[node] = label
        else:
            raise AssertionError(f"not a line seqgen writes: {line!r}")
    assert depth == 0, "a subgraph without its `end`"
    assert not set(nodes) & set(groups)
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge to an undeclared node: {a} --> {b}"
    return nodes, edges, groups


def svg_root(text: str) -> ET.Element:
    """Parses the SVG and checks its geometry: positive sizes, every box inside the canvas."""
    root = ET.fromstring(text)
    assert root.tag == SVG + "svg"
    width, height = float(root.get("width", "0")), float(root.get("height", "0"))
    assert width > 0 and height > 0
    for rect in root.iter(SVG + "rect"):
        x, y = float(rect.get("x", "0")), float(rect.get("y", "0"))
        w, h = float(rect.get("width", "0")), float(rect.get("height", "0"))
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
    for line in root.iter(SVG + "polyline"):
        assert len(line.get("points", "").split()) >= 2
    return root


_DOT_STRING = r'"(?:[^"\\]|\\.)*"'
_DOT_SETTING = (
    rf"(\w+=(\w+|{_DOT_STRING})(, )?)+;|(node|graph) \[.*\];|label={_DOT_STRING}; style=\w+;"
)


def dot_graph(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """Parses seqgen's dot statement by statement; returns the node ids and the edges."""
    lines = text.splitlines()
    assert re.fullmatch(rf"digraph {_DOT_STRING} \{{", lines[0]) and lines[-1] == "}"
    nodes: set[str] = set()
    edges: list[tuple[str, str]] = []
    depth = 0
    for line in lines[1:-1]:
        body = line.strip()
        if re.fullmatch(r"subgraph cluster_g\d+ \{", body):
            depth += 1
        elif body == "}":
            depth -= 1
        elif m := re.fullmatch(r"(n\d+) -> (n\d+);", body):
            edges.append((m.group(1), m.group(2)))
        elif m := re.fullmatch(
            rf"(n\d+) \[label={_DOT_STRING}(, \w+=(\w+|{_DOT_STRING}))*\];", body
        ):
            assert m.group(1) not in nodes
            nodes.add(m.group(1))
        elif not re.fullmatch(_DOT_SETTING, body):
            raise AssertionError(f"not a statement seqgen writes: {line!r}")
        assert depth >= 0
    assert depth == 0
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


# ------------------------------------------------------------------------------ helpers


def traced(write_spec, text: str, name: str = "model.seq"):  # type: ignore[no-untyped-def]
    return traced_spec(write_spec(text, name))[1]


RESNETISH = """\
model Res(classes=10)
input 3x16x16

block Basic(out):
    residual:
        conv2d out k=3 p=1
        relu
    relu

block Down(out, stride=2):
    residual:
        conv2d out k=3 s=stride p=1
    shortcut:
        conv2d out k=1 s=stride
    relu

conv2d 8 k=3 p=1
repeat 2:
    Basic 8
Down 16
Basic 16
flatten
linear classes
"""

# ------------------------------------------------------------------------- the formats


def test_hostile_text_never_leaves_its_label() -> None:
    """Labels and titles whose text would end a Mermaid label, start a statement, open HTML
    or end a dot string are written as text in every format."""
    head = Box("n0", "input", "(N, 3)", "input")
    body = (Box("n1", HOSTILE, HOSTILE, "layer"),)
    fork = Fork((body, ()), Box("n2", HOSTILE, "(N, 3)", "merge"))
    group = Group("g0", HOSTILE, (Box("n3", HOSTILE, "(N, 3)", "block"),), "repeat")
    d = Diagram(HOSTILE, (head, fork, group))
    nodes, edges, groups = mermaid_graph(FORMATS["mermaid"](d))
    assert sorted(nodes) == ["n0", "n1", "n2", "n3"] and list(groups) == ["g0"]
    assert ("n0", "n2") in edges and ("n2", "n3") in edges  # the identity branch joins
    root = svg_root(FORMATS["svg"](d))
    texts = [t for t in root.iter(SVG + "text") if t.get("class") == "box"]
    assert len(texts) == 4
    shown = HOSTILE.replace("\n", "")  # what XML text can hold: control characters dropped
    assert texts[1].text == shown and texts[1][0].text == shown
    titles = [t.text for t in root.iter(SVG + "text") if t.get("class") == "title"]
    assert titles == [shown, shown]
    dot_nodes, dot_edges = dot_graph(FORMATS["dot"](d))
    assert dot_nodes == set(nodes) and sorted(dot_edges) == sorted(edges)


def test_a_hostile_spec_name_and_comments_do_not_reach_the_output(write_spec) -> None:
    spec = write_spec(
        '# "]) --> n0 <script>alert(1)</script>\nmodel Safe(tag="\\"] --> x <b>")\n'
        "input 8\nlinear 4  # `'\"<>\n",
        name='a"]--><b>.seq',
    )
    page = diagram(spec, markdown=True)
    assert "<script" not in page and "<b>" not in page and 'a"]' not in page
    block = page.split("```mermaid\n", 1)[1].split("```", 1)[0]
    nodes, _, _ = mermaid_graph(block)
    assert len(nodes) == 2


def test_every_example_diagram_is_well_formed_mermaid() -> None:
    """The committed diagrams (no trace needed): structure, and one input per stack."""
    pages = sorted(EXAMPLES.glob("*.md"))
    assert [p.stem for p in pages] == [p.stem for p in EXAMPLE_SPECS]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        block = text.split("```mermaid\n", 1)[1].split("```", 1)[0]
        nodes, edges, groups = mermaid_graph(block)
        blocks = [g for g in groups.values() if g.startswith("block ")]
        inputs = [n for n, label in nodes.items() if re.match(r"input( \w+)?<br/>", label)]
        named = [n for n in inputs if not nodes[n].startswith("input<br/>")]  # several inputs
        assert len(inputs) - len(named) + min(len(named), 1) == 1 + len(blocks), page.name
        targets = {b for _, b in edges}
        assert set(nodes) - targets == set(inputs), page.name  # every other box is reached


def test_svg_has_one_text_per_box_and_dot_the_same_graph(write_spec) -> None:
    t = traced(write_spec, RESNETISH)
    d = build(t)
    boxes = all_boxes(d)
    root = svg_root(draw(t, "svg"))
    texts = [e for e in root.iter(SVG + "text") if e.get("class") == "box"]
    assert len(texts) == len(boxes)
    assert [(e.text, e[0].text) for e in texts] == [(b.label, b.shape) for b in boxes]
    assert {g.get("id") for g in root.iter(SVG + "g")} == {b.id for b in boxes}
    nodes, edges = dot_graph(draw(t, "dot"))
    assert nodes == {b.id for b in boxes}
    assert sorted(edges) == sorted((e.source, e.target) for e in all_edges(d))
    m_nodes, m_edges, _ = mermaid_graph(draw(t, "mermaid"))
    assert set(m_nodes) == nodes and sorted(m_edges) == sorted(edges)


def test_output_is_deterministic(write_spec) -> None:
    t = traced(write_spec, RESNETISH)
    for fmt in FORMATS:
        assert draw(t, fmt) == draw(t, fmt)
        assert draw(t, fmt, expand=True) == draw(t, fmt, expand=True)


# ------------------------------------------------------------------- what is drawn


def test_blocks_are_drawn_once_and_their_uses_collapsed(write_spec) -> None:
    t = traced(write_spec, RESNETISH)
    nodes, edges, groups = mermaid_graph(draw(t))
    labels = list(nodes.values())
    assert "Basic(8) x 2<br/>(N, 8, 16, 16)" in labels
    assert "Down(8, 16)<br/>(N, 16, 8, 8)" in labels and "Basic(16)<br/>(N, 16, 8, 8)" in labels
    assert sorted(groups.values()) == ["block Basic(out)", "block Down(out, stride=2)"]
    # the residual joins its body and the block's input; Down's shortcut is a branch
    joins = [n for n, label in nodes.items() if label.startswith("Residual (+)")]
    assert len(joins) == 2
    for join in joins:
        assert len([a for a, b in edges if b == join]) == 2
    assert any(label.startswith("Conv2d(in_channels, out, kernel_size=1") for label in labels)


def test_expand_opens_each_use_sized_for_it(write_spec) -> None:
    t = traced(write_spec, RESNETISH)
    nodes, _, groups = mermaid_graph(draw(t, expand=True))
    assert sorted(groups.values()) == ["Basic(16)", "Basic(8) x 2", "Down(8, 16)"]
    labels = list(nodes.values())
    assert "Conv2d(8, 16, kernel_size=3, stride=2, padding=1)<br/>(N, 16, 8, 8)" in labels
    assert "Conv2d(8, 16, kernel_size=1, stride=2)<br/>(N, 16, 8, 8)" in labels
    assert not any("in_channels" in label or "out," in label for label in labels)
    assert len([n for n in labels if n.startswith("input<br/>")]) == 1
    at = list(mermaid_graph(draw(t, expand=True, at=["N=3", "classes=5"]))[0].values())
    assert "Conv2d(8, 16, kernel_size=1, stride=2)<br/>(3, 16, 8, 8)" in at  # the batch too
    assert at[-1] == "Linear(16 * 8 * 8, 5)<br/>(3, 5)"


def test_runs_of_repeated_layers_are_collapsed(write_spec) -> None:
    spec = (
        "input 16\nrepeat 3:\n    linear 16\n    relu\n"  # three identical repetitions
        "repeat 2:\n    linear 32\n    relu\n"  # the first reads 16 features, the second 32
        "linear 8\nlinear 8\n"  # Linear(32, 8) then Linear(8, 8): not one layer twice
        "relu\nrelu\nrelu\n"
    )
    nodes, _, groups = mermaid_graph(draw(traced(write_spec, spec)))
    assert list(groups.values()) == ["x 3", "x 2, last shown"]
    labels = [label.split("<br/>")[0] for label in nodes.values()]
    assert labels == [
        "input",
        "Linear(16, 16)",
        "ReLU()",
        "Linear(32, 32)",
        "ReLU()",
        "Linear(32, 8)",
        "Linear(8, 8)",
        "ReLU() x 3",
    ]


def test_layers_that_read_an_input_are_never_collapsed(write_spec) -> None:
    """Two alike encoder layers that read a padding mask (a BERT's, written out): each is its
    own box joined by a box of the mask. Collapsing them into one `x 2` box crashed (an
    AssertionError with a traceback: the layer is a join, not a box)."""
    spec = (
        "model D(dim=8)\ninput tokens (seq=6,) dtype=long\ninput mask (seq,) dtype=bool\n"
        "embedding 20 dim\n"
        + "transformerencoderlayer 2 dim_feedforward=16 key_padding_mask=mask\n" * 2
        + "mean 1\nrelu\nrelu\n"
    )
    looped = spec.replace(  # a literal repeat is unrolled: the same spec line, twice
        "transformerencoderlayer 2 dim_feedforward=16 key_padding_mask=mask\n" * 2,
        "repeat 2:\n    transformerencoderlayer 2 dim_feedforward=16 key_padding_mask=mask\n",
    )
    assert looped != spec
    assert draw(traced(write_spec, looped)) == draw(traced(write_spec, spec))
    nodes, edges, groups = mermaid_graph(draw(traced(write_spec, spec)))
    assert not groups
    labels = [label.split("<br/>")[0] for label in nodes.values()]
    layer = "TransformerEncoderLayer(dim, 2, dim_feedforward=16, batch_first=True)"
    assert labels == [
        "input tokens",
        "Embedding(20, dim)",
        "input mask",
        layer,
        "input mask",
        layer,
        "Mean(1)",
        "ReLU() x 2",  # other layers still collapse
    ]
    masks = [n for n, label in nodes.items() if label.startswith("input mask")]
    layers = [n for n, label in nodes.items() if label.startswith("TransformerEncoderLayer")]
    assert {(m, t) for m, t in zip(masks, layers, strict=True)} <= set(edges)


def test_runs_of_uses_of_different_lengths_stay_apart(write_spec) -> None:
    """DenseNet's shape: uses that differ in their input sizes collapse, and
    `D x 2, T, D x 3, T` is not a repetition of `D x 2, T`."""
    spec = (
        "input 4x8x8\nblock D(growth=4):\n    concat:\n        branch:\n            identity\n"
        "        branch:\n            conv2d growth k=1\n"
        "block T:\n    conv2d in_channels // 2 k=1\n"
        "repeat 2:\n    D\nT\nrepeat 3:\n    D\nT\n"
    )
    t = traced(write_spec, spec)
    nodes, _, groups = mermaid_graph(draw(t))
    labels = [label for label in nodes.values() if not label.startswith(("input", "Identity"))]
    assert labels[:4] == [
        "D x 2<br/>(N, 12, 8, 8)",
        "T(12)<br/>(N, 6, 8, 8)",
        "D x 3<br/>(N, 18, 8, 8)",
        "T(18)<br/>(N, 9, 8, 8)",
    ]
    assert sorted(groups.values()) == ["block D(growth=4)", "block T()"]
    _, _, expanded = mermaid_graph(draw(t, expand=True))
    assert sorted(expanded.values()) == ["D x 2, last shown", "D x 3, last shown", "T(12)", "T(18)"]


def test_a_repeat_loop_is_a_frame_and_at_sets_its_count(write_spec) -> None:
    t = traced(
        write_spec, "model M(depth=2, c=8)\ninput (c,)\nrepeat depth:\n    linear c\n    relu\n"
    )
    _, _, groups = mermaid_graph(draw(t))
    assert list(groups.values()) == ["x depth"]
    _, _, groups = mermaid_graph(draw(t, at=["depth=5"]))
    assert list(groups.values()) == ["x 5"]


def test_at_substitutes_numbers_and_refuses_what_the_model_refuses(write_spec) -> None:
    t = traced(
        write_spec,
        "model V(classes=10)\ninput (1, seq_len=28)\nconv1d 16 3\nflatten\nlinear classes\n",
    )
    symbolic = list(mermaid_graph(draw(t))[0].values())
    assert "Flatten()<br/>(N, 16 * (seq_len - 2))" in symbolic
    assert "Linear(16 * (seq_len - 2), classes)<br/>(N, classes)" in symbolic
    at = list(mermaid_graph(draw(t, at=["seq_len=50", "N=4"]))[0].values())
    assert "Flatten()<br/>(4, 768)" in at and "Linear(768, classes)<br/>(4, classes)" in at
    assert at[0] == "input<br/>(4, 1, 50)"
    with pytest.raises(DiagramError, match="seq_len must be at least 3"):
        build(t, at=["seq_len=2"])
    with pytest.raises(DiagramError, match="'width' is no int parameter"):
        build(t, at=["width=2"])
    with pytest.raises(DiagramError, match="not a whole number"):
        build(t, at=["classes=1.5"])
    with pytest.raises(DiagramError, match="NAME=VALUE"):
        build(t, at=["classes"])


# ---------------------------------------------------------------------- command line


def test_cli_writes_markdown_svg_and_refuses_svg_in_markdown(tmp_path: Path, write_spec) -> None:
    spec = write_spec(RESNETISH, "res.seq")
    ran = seqgen_cli("diagram", spec, "-o", str(tmp_path / "res.md"))
    assert ran.returncode == 0, ran.stderr
    page = (tmp_path / "res.md").read_text(encoding="utf-8")
    assert (
        page.startswith("# Res\n")
        and "from `res.seq`" in page
        and "```mermaid\nflowchart TD\n" in page
    )
    ran = seqgen_cli("diagram", spec, "--format", "svg", "--at", "classes=3")
    assert ran.returncode == 0
    svg_root(ran.stdout)
    assert "Linear(16 * 8 * 8, 3)" in ran.stdout and "(N, 3)" in ran.stdout
    ran = seqgen_cli("diagram", spec, "--format", "svg", "-o", str(tmp_path / "res2.md"))
    assert ran.returncode == 2 and "--format svg" in ran.stderr
    ran = seqgen_cli("diagram", spec, "--at", "nope=1")
    assert ran.returncode == 1 and "'nope' is no int parameter" in ran.stderr


# --------------------------------------------------------------- committed diagrams


def _example_is_current(spec: Path) -> None:
    relative = spec.relative_to(ROOT)
    want = diagram(str(spec), markdown=True)
    assert spec.with_suffix(".md").read_text(encoding="utf-8") == want, (
        f"{spec.with_suffix('.md').name} is stale: run `seqgen diagram {relative} "
        f"-o {relative.with_suffix('.md')}`"
    )


def test_the_cnn_example_diagram_is_current() -> None:
    _example_is_current(EXAMPLES / "cnn.seq")


@pytest.mark.slow
@pytest.mark.parametrize("spec", EXAMPLE_SPECS, ids=lambda p: p.stem)
def test_every_example_diagram_is_current_and_draws_in_every_format(spec: Path) -> None:
    _example_is_current(spec)
    _, t = traced_spec(str(spec))
    for expand in (False, True):
        d = build(t, expand=expand)
        boxes = {b.id for b in all_boxes(d)}
        assert set(mermaid_graph(draw(t, expand=expand))[0]) == boxes
        texts = list(svg_root(draw(t, "svg", expand=expand)).iter(SVG + "text"))
        assert len([e for e in texts if e.get("class") == "box"]) == len(boxes)
        assert dot_graph(draw(t, "dot", expand=expand))[0] == boxes


@pytest.mark.slow
@pytest.mark.parametrize(("name", "most"), [("resnet50", 45), ("densenet121", 40)])
def test_big_architectures_stay_small(name: str, most: int) -> None:
    """ResNet-50 and DenseNet-121 (tests/architectures/) draw in a few dozen boxes."""
    _, t = traced_spec(str(ROOT / "tests" / "architectures" / f"{name}.seq"))
    boxes = all_boxes(build(t))
    assert len(boxes) <= most, len(boxes)
    mermaid_graph(draw(t))
