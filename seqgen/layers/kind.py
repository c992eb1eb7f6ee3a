"""One layer kind: what seqgen knows about a layer line that is not a torch.nn class as is.

A kind (an embedding, an LSTM with its `take=`, `permute`, `cls_token`, ...) is one subclass of
`Op`, defined once, in one file under layers/ops/. The class knows everything every stage asks:

- how a line binds (`positional`, `keywords`, `required`, `var_positional`, `bind`),
- its exact output size and parameter count with their conditions (`rule`),
- how the generated code builds it (`call`) and which runtime helper classes that code needs
  (`helper`),
- how to build it for real from concrete values (`build`), which the trace runs on `meta` and
  the self-check runs at other parameter values.

Defining a subclass with a `name` registers it: the parser's reserved names, the renderer's
helper classes, the lint's sequence layers and the preflight typo hints all follow from the
registry (layers/registry.py), so no stage keeps its own list. README "Development" walks through
adding one.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from seqgen.errors import TraceError
from seqgen.ir import Const, Expr, LayerSpec
from seqgen.lang.hints import layer_text, whole_line
from seqgen.lang.values import expr_source
from seqgen.layers.formulas import Count, Outcome, Size
from seqgen.layers.input_reads import InputRead
from seqgen.layers.torch_nn import Values
from seqgen.runtime import sequence as runtime

# What a line's arguments bind to: a spec value per name (a tuple of them for `var_positional`)
Nodes = dict[str, Any]
SEQ3 = "(N, L, E): a batch of sequences of E features"


@dataclass(frozen=True)
class OpResult:
    """What an op's rule computes: the output shape with its conditions, and the counts.

    `activations` is what torchinfo keeps as this layer's activations when that is not the
    output's size (None: the output's size); `hidden_params` the parameters torchinfo's
    "params size" leaves out (None: none).
    """

    outcome: Outcome
    params: Count = 0
    macs: Count = 0
    activations: Count | None = None
    hidden_params: Count | None = None


@dataclass(frozen=True)
class CallSite:
    """What the generated call is written from: each argument's source, and the input dims."""

    source: Mapping[str, Any]  # argument name -> source text (a tuple of them for var args)
    nodes: Mapping[str, Any]  # argument name -> spec value
    dims: Sequence[str]  # the input's dims as generated code writes them, batch first
    reads: Collection[str] = ()  # the keywords that name an input the layer reads (lengths)

    def kwargs(self, skip: Sequence[str] = ()) -> list[str]:
        """`name=source` for every written argument not in `skip`, in the order written."""
        return [f"{k}={s}" for k, s in self.source.items() if k not in skip]


_REGISTRY: dict[str, Op] = {}


class Op(ABC):
    """A layer kind of seqgen's own: subclass it, set `name`, and implement `rule`."""

    name: ClassVar[str] = ""  # the spec's (lower-case) layer name; empty for abstract bases
    positional: ClassVar[tuple[str, ...]] = ()
    keywords: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()
    var_positional: ClassVar[str | None] = None  # `permute 0 2 1`: every value, in order
    torch_class: ClassVar[str | None] = None  # the torch.nn class it builds, if any
    helper: ClassVar[str | None] = None  # the runtime class its code builds, if any
    rank: ClassVar[int | None] = None  # the input rank it needs
    shape_hint: ClassVar[str] = ""  # what a wrong-rank input should become
    usage: ClassVar[str] = ""  # an example line, for a missing argument
    inferred: ClassVar[str | None] = None  # the size it reads from the last input dim
    reads_token_ids: ClassVar[bool] = False  # may take an integer (dtype=long) input
    sequence: ClassVar[bool] = False  # its output is a sequence (N, L, E): lint W002 stays quiet
    # keywords whose value names another input the layer reads in forward (`lengths=NAME`)
    reads: ClassVar[Mapping[str, InputRead]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in _REGISTRY:
                raise TypeError(f"two layer kinds are named {cls.name!r}")
            _REGISTRY[cls.name] = cls()

    @property
    def title(self) -> str:
        """How messages and shape tables name it: its torch.nn class or helper."""
        return self.torch_class or self.helper or self.name

    # ---------------------------------------------------------------- binding

    def bind(self, layer: LayerSpec) -> Nodes:
        """The line's values by argument name (raises a located error for a misfit)."""
        args: Nodes = {}
        if self.var_positional is not None:
            if not layer.args:
                raise TraceError(f"{self.name} needs its dims", location=layer.loc, hint=self.usage)
            args[self.var_positional] = tuple(layer.args)
        else:
            for i, value in enumerate(layer.args):
                if i >= len(self.positional):
                    raise TraceError(
                        f"{self.name} takes {len(self.positional)} positional argument(s), got "
                        f"{len(layer.args)}",
                        location=value.loc,
                        hint=self._extra_positional_hint(layer),
                        fix=self._without_inferred(layer),
                    )
                args[self.positional[i]] = value
        accepted = (*self.positional, *self.keywords)
        for kw in layer.kwargs:
            key = kw.written if kw.written in accepted else kw.name
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
                raise TraceError(
                    f"{self.name} has no argument {kw.written!r}",
                    location=kw.loc,
                    hint=f"did you mean {close[0]!r}?"
                    if close
                    else f"{self.name} takes: {', '.join(accepted) or 'no arguments'}"
                    + self._inferred_note(),
                )
            if key in args:
                raise TraceError(
                    f"{self.name} got {key!r} both by position and by keyword", location=kw.loc
                )
            args[key] = kw.value
        missing = [p for p in self.required if p not in args]
        if missing:
            raise TraceError(
                f"{self.name} needs {', '.join(repr(m) for m in missing)}",
                location=layer.loc,
                hint=self.usage,
            )
        self.check_bound(layer, args)
        return args

    def check_bound(self, layer: LayerSpec, args: Nodes) -> None:  # noqa: B027 - optional hook
        """Checks of the bound values that need no trace (none by default)."""

    def _inferred_note(self) -> str:
        return f" (seqgen infers {self.inferred})" if self.inferred else ""

    def _without_inferred(self, layer: LayerSpec) -> str | None:
        """`lstm 8 16 take=last`: the line without its first value, the size seqgen infers."""
        if not (self.inferred and len(layer.args) == len(self.positional) + 1):
            return None
        kwargs = (*layer.kwargs, *layer.reads)
        return whole_line(layer.loc, layer_text(layer.name, layer.args[1:], kwargs, layer.key))

    def _extra_positional_hint(self, layer: LayerSpec) -> str:
        fixed = self._without_inferred(layer)
        if fixed is not None:
            return f"seqgen infers {self.inferred}: don't write it; did you mean `{fixed.strip()}`?"
        takes = ", ".join(self.positional) or "no positional arguments"
        return f"{self.name} takes: {takes}" + self._inferred_note()

    # ---------------------------------------------------------------- sizes and code

    @abstractmethod
    def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
        """The output shape, conditions and counts for argument values `v` on `shape`."""

    def run_for_shape(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The module's output on `x` where only its shape matters (on `meta`): by default the
        module run on `x`; an op whose kernel costs time per step may run a shorter sample."""
        y: torch.Tensor = module(x)
        return y

    def out_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The output's dtype for an input of `dtype` (an embedding turns ids into floats)."""
        return dtype

    def call(self, site: CallSite) -> str:
        """The generated constructor call: the helper with its positional arguments, then the
        keywords as written."""
        positional = [site.source[p] for p in self.positional if p in site.source]
        return f"{self.helper}({', '.join([*positional, *site.kwargs(self.positional)])})"

    def helpers(self, reads: Collection[str]) -> tuple[str, ...]:
        """The runtime helper classes its generated code needs, given the keywords that read
        another input."""
        return (self.helper,) if self.helper else ()

    def build_reading(
        self, v: Mapping[str, Any], in_shape: tuple[int, ...], reads: Collection[str]
    ) -> nn.Module:
        """`build`, for a line whose keywords `reads` name other inputs the layer reads (its
        forward then takes them); most kinds build the same module either way."""
        return self.build(v, in_shape)

    def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
        """The layer for real from concrete values (on the current default device)."""
        cls: type[nn.Module] = getattr(runtime, self.helper or "")
        return cls(
            *(v[p] for p in self.positional if p in v),
            **{k: x for k, x in v.items() if k not in self.positional},
        )


def batch_first_call(torch_class: str, first: str, site: CallSite, skip: Sequence[str]) -> str:
    """`nn.LSTM(in, first, ..., batch_first=True)`: a torch layer whose input size seqgen reads
    from the input's last dim, its first argument, the keywords as written, and batch_first."""
    parts = [site.dims[-1], site.source[first], *site.kwargs((first, "batch_first", *skip))]
    return f"nn.{torch_class}({', '.join([*parts, 'batch_first=True'])})"


def batch_first_only(name: str, args: Nodes) -> None:
    """seqgen writes batch_first=True itself: any other value is an error."""
    value: Expr | None = args.get("batch_first")
    if value is not None and not (isinstance(value, Const) and value.value is True):
        raise TraceError(
            f"{name} with batch_first={expr_source(value)}: seqgen's tensors are "
            "batch first, and it writes batch_first=True itself",
            location=value.loc,
            hint="remove batch_first=...",
        )


def evaluate(nodes: Nodes, values: Values) -> dict[str, Any]:
    """The bound arguments' values (a tuple of values for a var-positional argument)."""
    return {
        k: (tuple(values.eval(e) for e in v) if isinstance(v, tuple) else values.eval(v))
        for k, v in nodes.items()
    }


def registered() -> Mapping[str, Op]:
    """The ops defined so far, by name (layers/registry.py loads every op module first)."""
    return _REGISTRY
