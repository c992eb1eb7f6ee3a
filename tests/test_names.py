"""Optional layer names: `conv2d 16 k=3 name=stem` gives stable state_dict keys."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import run_generated_tests

from seqgen.api import generate, load, options_for, trace_spec
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.project.write import write_files

SPEC = "model Net(n=10)\ninput 3x8x8\nconv2d 16 k=3 name=stem\nrelu\nflatten\nlinear n name=head\n"


def _generated(tmp_path: Path, text: str):
    spec = tmp_path / "named.seq"
    spec.write_text(text, encoding="utf-8")
    result = generate(str(spec), options_for(str(spec)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location("named_model", tmp_path / "named.py")
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return result, module


def test_named_layers_key_the_state_dict_and_unnamed_keep_their_index(tmp_path: Path) -> None:
    result, module = _generated(tmp_path, SPEC)
    model = module.Net()
    assert list(model.state_dict()) == [
        "model.stem.weight",
        "model.stem.bias",
        "model.head.weight",
        "model.head.bias",
    ]
    assert [name for name, _ in model.model.named_children()] == ["stem", "1", "2", "head"]
    assert "from collections import OrderedDict" in result.files[0].text
    assert '("1", nn.ReLU()),' in result.files[0].text


def test_named_model_passes_its_generated_tests(tmp_path: Path) -> None:
    _generated(tmp_path, SPEC)
    run_generated_tests(tmp_path / "test_named.py")


def test_without_names_the_output_is_a_plain_sequential(tmp_path: Path) -> None:
    result, module = _generated(tmp_path, "input 4\nlinear 2\n")
    assert "OrderedDict" not in result.files[0].text
    assert list(module.Named().state_dict()) == ["model.0.weight", "model.0.bias"]


def test_name_is_not_a_constructor_argument() -> None:
    (layer,) = parse("input 4\nlinear 2 name=head bias=False\n", "t.seq").layers
    assert layer.key == "head" and [k.name for k in layer.kwargs] == ["bias"]
    traced = trace_spec(parse("input 4\nlinear 2 name=head bias=False\n", "t.seq"))
    assert traced.layers[0].call == "nn.Linear(4, 2, bias=False)"


@pytest.mark.parametrize(
    "line, message",
    [
        ("linear 2 name=2a", "is not a valid Python identifier"),
        ("linear 2 name=class", "keyword or dunder"),
        ("linear 2 name=__init__", "keyword or dunder"),
        ("linear 2 name='a b'", "is not a valid Python identifier"),
        ("linear 2 name=forward", "taken by nn.Sequential"),
        ("linear 2 name=x name=y", "'name' is given twice"),
    ],
)
def test_bad_names_are_located_errors(tmp_path: Path, line: str, message: str) -> None:
    spec = tmp_path / "m.seq"
    spec.write_text(f"input 4\n{line}\n", encoding="utf-8")
    with pytest.raises(SeqgenError) as info:
        trace_spec(load(str(spec))[1])
    assert message in info.value.render()
    assert info.value.location is not None and info.value.location.line == 2


def test_names_are_unique_also_after_repeat() -> None:
    with pytest.raises(SeqgenError, match="already used on line 2"):
        parse("input 4\nlinear 4 name=a\nrelu name=a\n", "t.seq")
    with pytest.raises(SeqgenError, match="inside a `repeat` block"):
        parse("input 4\nrepeat 2:\n  linear 4 name=a\n", "t.seq")
