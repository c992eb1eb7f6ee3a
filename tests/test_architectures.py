"""Real architectures written as specs (blocks, merges, repeats).

Each tests/architectures/*.seq is generated with seqgen's public API, and the generated model is
compared with its hand-written reference in tests/architectures/reference.py: the same parameter
count, exactly, and the same output shape (both checked on `meta`, so the zoo stays fast); every
`block` must become one class. The generated test files, which run each model forward and
backward on the CPU, are marked slow. (torchinfo's totals are compared in test_summary.py.)

Each spec is generated once per pytest process (the module fixture `built`); under xdist, a
spec's tests share one worker (`xdist_group`, with `--dist loadgroup`).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import run_generated_tests

from seqgen.api import Generated, generate, options_for, output_paths
from seqgen.project.write import write_files

ARCHITECTURES = Path(__file__).resolve().parent / "architectures"
SPECS = sorted(ARCHITECTURES.glob("*.seq"))
BLOCK = re.compile(r"^block\s+([A-Za-z_]\w*)", re.M)


def _reference() -> ModuleType:
    """tests/architectures/reference.py, imported once under one name (as test_reference.py)."""
    name = "seqgen_architecture_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ARCHITECTURES / "reference.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


reference = _reference()


@dataclass(frozen=True)
class Built:
    """One spec, generated and written to a temporary folder, its model module imported."""

    spec: Path
    result: Generated
    model_path: Path
    out_dir: Path
    module: ModuleType

    @property
    def model_class(self) -> type[torch.nn.Module]:
        return getattr(self.module, self.result.traced.spec.class_name)


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"arch_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """built(spec) -> Built, generating each spec once per module."""
    made: dict[Path, Built] = {}

    def get(spec: Path) -> Built:
        if spec not in made:
            out = tmp_path_factory.mktemp(spec.stem)
            options = options_for(str(spec), str(out))
            result = generate(str(spec), options)
            write_files(list(result.files))
            model_path = Path(output_paths(options)[0])
            made[spec] = Built(spec, result, model_path, out, _import(model_path))
        return made[spec]

    return get


def _reference_model(spec: Path) -> tuple[torch.nn.Module, tuple[int, ...]]:
    factory, input_shape = reference.REFERENCES[spec.name]
    with torch.device("meta"):
        return factory(), input_shape


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# each spec's tests run on one xdist worker, which generates the spec once
SPEC_PARAMS = [pytest.param(s, id=s.stem, marks=pytest.mark.xdist_group(s.stem)) for s in SPECS]


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_parameter_count_equals_the_reference(spec: Path, built) -> None:
    b = built(spec)
    ref, _ = _reference_model(spec)
    expected = _count(ref)
    assert reference.documented(spec).params == expected
    with torch.device("meta"):
        assert _count(b.model_class()) == expected
    assert b.result.traced.total_params.value == expected  # seqgen's own symbolic count


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_output_shape_equals_the_reference(spec: Path, built) -> None:
    b = built(spec)
    ref, input_shape = _reference_model(spec)
    traced = b.result.traced
    assert tuple(d.value for d in traced.input_shape[1:]) == input_shape
    with torch.device("meta"), torch.no_grad():  # shapes only: the generated tests run for real
        model = b.model_class().eval()
        x = torch.empty(2, *input_shape)
        out, expected = model(x), ref.eval()(x)
    assert tuple(out.shape) == tuple(expected.shape) == reference.documented(spec).output_shape(2)
    assert tuple(d.value for d in traced.out_shape[1:]) == tuple(out.shape[1:])


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_generated_tests_pass(spec: Path, built) -> None:
    """The generated test file runs the model forward and backward on the CPU (in this process:
    what it proves is the test file, not a fresh interpreter)."""
    run_generated_tests(built(spec).out_dir)


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_each_block_becomes_one_class(spec: Path, built) -> None:
    b = built(spec)
    text = b.model_path.read_text(encoding="utf-8")
    names = BLOCK.findall(spec.read_text(encoding="utf-8"))
    for name in [*names, b.result.traced.spec.class_name]:
        # a block is an nn.Sequential subclass; the model an nn.Module with `self.model`
        found = re.findall(rf"^class {re.escape(name)}\(nn\.(Module|Sequential)\):", text, re.M)
        assert len(found) == 1, f"class {name} appears {len(found)} times"
        assert isinstance(getattr(b.module, name), type)
    # a block's class is used, not inlined: the model holds one instance per use
    with torch.device("meta"):
        model = b.model_class()
    for name in names:
        cls = getattr(b.module, name)
        assert any(isinstance(m, cls) for m in model.modules()), f"no {name} in the model"
