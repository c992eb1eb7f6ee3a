"""The context of the generated test file of a model with named inputs
(templates/test_model_inputs.py.jinja): each input's shape and sample, the output's shape, the
sizes at other parameter values, and torch.export with every input's dynamic dims."""

from __future__ import annotations

import re
from typing import Any

from seqgen.ir import TracedLayer, TracedMerge, TracedModel, TracedNode, walk_traced
from seqgen.lang.values import expr_source
from seqgen.render.heads import other_points
from seqgen.render.inputs import wrong_input

_BATCH = re.compile(r"\bN\b")


def _tuple(codes: list[str]) -> str:
    return f"({codes[0]},)" if len(codes) == 1 else f"({', '.join(codes)})"


def _reads(traced: TracedModel, name: str) -> list[TracedNode]:
    """The nodes that see input `name` first: the trunk's (for the first input) and the branches
    of merges with `from=name`."""
    first = traced.inputs[0].name
    nodes: list[TracedNode] = []
    for node in traced.layers:
        if isinstance(node, TracedMerge) and node.spec.branch_from:
            for branch, src in zip(node.branches, node.spec.branch_from, strict=True):
                if src == name:
                    nodes += walk_traced(branch)
        elif name == first:
            nodes += walk_traced([node])
    return nodes


def _token_high(traced: TracedModel, name: str) -> str:
    """The bound of input `name`'s sampled ids: the first embedding it reaches."""
    for node in _reads(traced, name):
        if isinstance(node, TracedLayer) and node.class_name == "Embedding":
            if node.spec.args:
                return expr_source(node.spec.args[0])
            return {kw.name: expr_source(kw.value) for kw in node.spec.kwargs}["num_embeddings"]
    return "2"


def inputs_test_context(
    traced: TracedModel, shape_params: str, export: dict[str, Any]
) -> dict[str, Any]:
    """What the several-inputs test template adds to the common test context."""
    rows = []
    tokens = False
    for inp in traced.inputs:
        shape = _tuple([_BATCH.sub("batch", d.code) for d in inp.shape])
        if inp.role == "lengths" and inp.length_of is not None:  # of a sequence of that input
            source, dim = inp.length_of
            batch, length = f"shapes[{inp.name!r}][0]", f"shapes[{source!r}][{dim}]"
            sample = f"sample_lengths({batch}, {length}, device)"
        elif inp.role == "padding_mask":
            sample = f"sample_padding_mask(shapes[{inp.name!r}], device)"
        elif inp.dtype == "long":
            tokens = True
            high = _token_high(traced, inp.name)
            sample = f"torch.randint(0, {high}, shapes[{inp.name!r}], device=device)"
        else:
            sample = f"torch.randn(shapes[{inp.name!r}], device=device)"
        rows.append({"name": repr(inp.name), "shape": shape, "sample": sample})
    wrong = []  # per input with a checked size: a shape forward refuses, and its message
    read: set[str] = set()  # free named sizes an input before sets
    for inp in traced.inputs:
        found = wrong_input(traced, inp.shape, f"input {inp.name}", frozenset(read))
        if found is not None:
            wrong.append({"name": repr(inp.name), **found})
        read |= {d.code for d in inp.shape[1:]}
    names, points = other_points(traced)
    out = traced.out_shape
    other_args = ", ".join(f"{n}={n}" for n in names)
    roles = {i.role for i in traced.inputs}
    doc = "One sample tensor per input: floats, or token ids below the embedding's size."
    if roles - {""}:  # black leaves a docstring's lines as they are: two lines
        doc = (
            "One sample tensor per input: floats, token ids below the embedding's size, or\n"
            "    what a layer that reads the input accepts (lengths, a padding mask)."
        )
    return {
        "samples": {"lengths": "lengths" in roles, "padding_mask": "padding_mask" in roles},
        "sample_doc": doc,
        "inputs": rows,
        "wrong_sizes": wrong,
        "input_names": repr([i.name for i in traced.inputs]),
        "sample_params": shape_params if tokens else "",
        "output_shape": _tuple([_BATCH.sub("batch", d.code) for d in out]),
        "other_names": ", ".join(names),
        "other_points": repr([p[0] if len(p) == 1 else p for p in points]),
        "other_args": other_args,
        "other_sample_args": f", {other_args}" if tokens and other_args else "",
        "other_typed": ", ".join(f"{n}: int" for n in names),
        "export": _export(traced, export),
    }


def _export(traced: TracedModel, export: dict[str, Any]) -> dict[str, Any]:
    """export_context's dims, grouped by input: `{0: batch, 1: n_meta}` per input."""
    named = []
    per_input: dict[str, list[str]] = {i.name: ["0: batch"] for i in traced.inputs}
    for dim in export["dims"][1:]:
        name = dim["name"]
        named.append({"name": name, "call": dim["call"], "notes": dim["notes"]})
        for where, index in [(dim["input"], dim["index"]), *dim["also"]]:
            per_input[where].append(f"{index}: {name}")
    return {
        **export,
        "named": named,
        "inputs": [
            {"name": repr(k), "dims": "{" + ", ".join(v) + "}"} for k, v in per_input.items()
        ],
    }
