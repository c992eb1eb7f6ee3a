"""The layer-kind registry: adding an op is one class, and every stage then knows it.

The test op below is defined the way README "Adding a layer kind" says; nothing else in seqgen
changes, yet the spec that uses it parses, traces, renders and runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from seqgen.api import generate, options_for
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.layers import kind as kind_module
from seqgen.layers.formulas import Outcome, Size
from seqgen.layers.kind import CallSite, Op, OpResult
from seqgen.layers.preflight import check_layer
from seqgen.layers.registry import OPS, close_op_name, op_names, sequence_classes
from seqgen.project.write import write_files
from seqgen.runtime import helper_classes
from seqgen.runtime import sequence as runtime


@pytest.fixture
def halve() -> Iterator[type[Op]]:
    """A test-only op: `halve_demo` multiplies by 0.5 (runtime's Scale), registered for the test."""

    class Halve(Op):
        name = "halve_demo"
        helper = "Scale"
        usage = "e.g. `halve_demo`"

        def rule(self, v: Mapping[str, Any], shape: Sequence[Size], dtype: torch.dtype) -> OpResult:
            return OpResult(Outcome(tuple(shape), ()))

        def call(self, site: CallSite) -> str:
            return "Scale(0.5)"

        def build(self, v: Mapping[str, Any], in_shape: tuple[int, ...]) -> nn.Module:
            return runtime.Scale(0.5)

    yield Halve
    del kind_module.registered()["halve_demo"]  # type: ignore[attr-defined]


def test_every_op_names_a_runtime_helper_or_a_torch_class() -> None:
    helpers = helper_classes()
    for name, op in OPS.items():
        assert name == name.lower() and name == op.name
        assert op.helper in helpers or (op.helper is None and hasattr(nn, op.torch_class or ""))
        assert op.usage or not op.required, name  # a missing argument gets an example line


def test_sequence_classes_are_the_sequence_layers() -> None:
    assert sequence_classes() == {
        "Embedding",
        "RNN",
        "LSTM",
        "GRU",
        "TransformerEncoderLayer",
        "Transpose",
        "Permute",
        "ClsToken",
        "PosEmbedding",
        "PosEncoding",
    }


def test_a_second_op_of_the_same_name_is_refused(halve: type[Op]) -> None:
    with pytest.raises(TypeError, match="halve_demo"):
        type("Again", (Op,), {"name": "halve_demo"})


def test_a_new_op_is_known_to_every_stage(
    halve: type[Op], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQGEN_NO_CACHE", "1")  # the test op is not part of seqgen's source
    assert "halve_demo" in op_names()
    assert close_op_name("halve_dmeo") == "halve_demo"  # preflight's typo hint
    check_layer(parse("input 4\nhalve_demo\n").layers[0])
    with pytest.raises(SeqgenError, match="halve_demo has no argument 'x'"):
        check_layer(parse("input 4\nhalve_demo x=1\n").layers[0])

    spec = tmp_path / "halved.seq"
    spec.write_text("model Halved(n=6)\ninput (3, 5)\nlinear n\nhalve_demo\n", encoding="utf-8")
    result = generate(str(spec), options_for(str(spec)))
    write_files(list(result.files))
    source = (tmp_path / "halved.py").read_text(encoding="utf-8")
    assert "Scale(0.5)" in source and "class Scale(nn.Module):" in source
    loaded = importlib.util.spec_from_file_location("halved_model", tmp_path / "halved.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    model = module.Halved(n=4)  # other than the default: the size stays an expression
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(model(x), 0.5 * model.model[0](x))
