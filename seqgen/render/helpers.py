"""The helper classes a generated module defines (copied from seqgen/runtime, never imported).

`seqgen.runtime.helper_classes()` reads them as text, so this stays torch-free.
"""

from __future__ import annotations

import re

from seqgen.ir import TracedLayer, TracedMerge, TracedModel, walk_traced
from seqgen.render.nested import nested_parts
from seqgen.runtime import helper_classes, helper_names


def used_helpers(traced: TracedModel) -> list[str]:
    """The helper modules the generated file defines: those its merges use, in a fixed order."""
    stacks = [*traced.stacks, *(b.layers for b in traced.blocks)]
    # a merge that reads a model input, or whose branch a head reads, is plain statements in
    # forward (multi_inputs.py)
    split = [traced.layers[i] for i in traced.split_merges()] + nested_parts(traced).merges
    used = {
        n.class_name
        for nodes in stacks
        for n in walk_traced(nodes)
        if isinstance(n, TracedMerge) and not any(n is m for m in split)
    }
    used |= {
        h
        for nodes in stacks
        for n in walk_traced(nodes)
        if isinstance(n, TracedLayer)
        for h in n.helpers
    }
    return [name for name in helper_names() if name in used]


def helper_source(name: str) -> str:
    """The source of one helper class from seqgen/runtime, read without importing it."""
    return helper_classes()[name]


def uses_math(source: str) -> bool:
    """Whether a helper class calls the `math` module (the generated file must import it)."""
    return re.search(r"\bmath\.", source) is not None
