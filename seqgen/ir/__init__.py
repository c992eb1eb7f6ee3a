"""Frozen dataclasses passed between pipeline stages.

DSL text --lang--> ModelSpec --trace--> TracedModel --render--> source --project--> files.
Nothing here imports torch: the trace stage copies what it learns into plain values.
spec.py holds the parser's output, traced.py the tracer's; both are re-exported here.
"""

from __future__ import annotations

from seqgen.ir.spec import (
    BinOp,
    BlockDef,
    BlockUse,
    Const,
    Expr,
    Keyword,
    LayerSpec,
    Literal,
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
    expr_names,
    flat_layers,
    spec_names,
    walk,
)
from seqgen.ir.traced import (
    MERGE_CLASSES,
    BlockArg,
    Constraint,
    Dim,
    GeneratedFile,
    TracedBlock,
    TracedBlockUse,
    TracedLayer,
    TracedMerge,
    TracedModel,
    TracedNode,
    called_names,
)

__all__ = [
    "MERGE_CLASSES",
    "BinOp",
    "BlockArg",
    "BlockDef",
    "BlockUse",
    "Const",
    "Constraint",
    "Dim",
    "Expr",
    "GeneratedFile",
    "Keyword",
    "LayerSpec",
    "Literal",
    "MergeSpec",
    "ModelSpec",
    "Name",
    "Neg",
    "Node",
    "Num",
    "Param",
    "RepeatSpec",
    "Str",
    "TracedBlock",
    "TracedBlockUse",
    "TracedLayer",
    "TracedMerge",
    "TracedModel",
    "TracedNode",
    "TupleExpr",
    "called_names",
    "expr_names",
    "flat_layers",
    "spec_names",
    "walk",
]
