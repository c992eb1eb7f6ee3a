"""The user's own layers: `use MODULE:CLASS [as NAME] [infers ARG=DIM]` (README, "Your own
layers"): permission, binding, tracing (symbolic, else at the sample), counts against the real
module, and the generated code and tests."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, isolated_imports, run_generated_tests, seqgen_cli

from seqgen import api
from seqgen.errors import SeqgenError, SpecErrors, SpecSyntaxError
from seqgen.lang.parser import parse
from seqgen.safe_eval import evaluate_source

LAYERS = '''
import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, channels // reduction, 1)
        self.up = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.up(torch.relu(self.down(s))))


class Gate(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, 2 * out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj(x).chunk(2, dim=1)
        return a * torch.sigmoid(b)


class DataDependent(nn.Module):
    """Reads a value of its input: no fake tensor can run it."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale * float(x.abs().max().item() >= 0)


class Heads(nn.Module):
    """A Python loop over a size: torch fixes the size to its sample value."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(dim, 1) for _ in range(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([h(x) for h in self.heads], -1)


class Mlp(nn.Module):
    """int() of a size times a float: fake tensors take the sample's value, silently."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, int(dim * 1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")
'''


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    """A project folder with a module of layers, under a name no other test imports."""
    name = f"my_layers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(LAYERS)
    yield tmp_path, name
    sys.modules.pop(name, None)


def _spec(folder: Path, text: str, allow: str | None = None) -> str:
    if allow is not None:
        (folder / "pyproject.toml").write_text(f'[tool.seqgen]\nallow-imports = ["{allow}"]\n')
    path = folder / "net.seq"
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def test_use_line_parses_without_importing(project: tuple[Path, str]) -> None:
    _, name = project
    spec = parse(f"use {name}.sub:Gate as g infers in_channels=1\ninput 3x8x8\ng 4\n", "x.seq")
    (use,) = spec.uses
    assert (use.module, use.class_name, use.name, use.inferred) == (
        f"{name}.sub",
        "Gate",
        "g",
        (("in_channels", 1),),
    )
    assert spec.layers[0].use == use and name not in sys.modules


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("use os.path", "expected `use MODULE:CLASS`"),
        ("use os.pa-th:X", "not a dotted Python module name"),
        ("use mod:class", "is a Python keyword"),
        ("use mod:Gate infers in_channels", "expected `ARGUMENT=DIM`"),
        ("use mod:Gate infers in_channels=0", "dim 0 is the batch"),
        ("use mod:OrderedDict", "imported by generated code itself"),
        ("use mod:Residual", "reserved"),
    ],
)
def test_bad_use_lines_are_located(line: str, says: str) -> None:
    with pytest.raises(SpecSyntaxError) as e:
        parse(f"{line}\ninput 4\nlinear 2\n", "x.seq")
    assert says in e.value.diagnostic.message and e.value.location.line == 1


def test_refused_unless_the_project_allows_it(project: tuple[Path, str]) -> None:
    folder, name = project
    path = _spec(folder, f"use {name}:SqueezeExcite infers channels=1\ninput 8x4x4\nsqueezeexcite")
    with pytest.raises(SeqgenError) as e:
        api.traced_spec(path)
    d = e.value.diagnostic
    assert "does not import" in d.message and e.value.location.line == 1
    assert "allow-imports" in (d.hint or "") and "--allow-import" in (d.hint or "")
    assert name not in sys.modules  # nothing ran
    _, traced = api.traced_spec(path, allow_imports=[name])  # the flag
    assert traced.layers[0].call == "SqueezeExcite(8)"
    _spec(folder, (folder / "net.seq").read_text(), allow=name)  # the project's table
    assert api.traced_spec(path)[1].total_params.value == 8 * 2 + 2 + 2 * 8 + 8


def test_binding_errors_name_the_class_arguments(project: tuple[Path, str]) -> None:
    folder, name = project
    path = _spec(
        folder, f"use {name}:Gate infers in_channels=1\ninput 3x4x4\ngate 4 bogus=1", allow=name
    )
    with pytest.raises(SeqgenError) as e:
        api.traced_spec(path)
    assert "no argument 'bogus'" in e.value.diagnostic.message
    path = _spec(folder, f"use {name}:Gate infers channels=1\ninput 3x4x4\ngate 4", allow=name)
    with pytest.raises(SeqgenError, match="takes no argument 'channels' to infer"):
        api.traced_spec(path)
    path = _spec(folder, f"use {name}:Nope\ninput 3x4x4\nnope", allow=name)
    with pytest.raises(SeqgenError, match="has no 'Nope'"):
        api.traced_spec(path)


def test_a_class_that_cannot_run_gets_a_located_error(project: tuple[Path, str]) -> None:
    folder, name = project
    path = _spec(folder, f"use {name}:Broken\ninput 3x4x4\nconv2d 4 1\nbroken", allow=name)
    with pytest.raises(SeqgenError) as e:
        api.traced_spec(path)
    d = e.value.diagnostic
    assert e.value.location.line == 4
    assert f"{name}:Broken cannot be traced: RuntimeError: boom" in d.message


def test_traced_concretely_where_fake_tensors_cannot(project: tuple[Path, str]) -> None:
    folder, name = project
    text = f"use {name}:DataDependent\ninput 6\nlinear 5\ndatadependent 5\nlinear 2"
    _, traced = api.traced_spec(_spec(folder, text, allow=name))
    assert [w.code for w in traced.warnings] == ["W015 traced-concretely"]
    assert traced.warnings[0].location.line == 4
    assert traced.total_params.value == 6 * 5 + 5 + 5 + 5 * 2 + 2


@pytest.mark.parametrize("width", [4, 7, 16])
def test_counts_and_shapes_match_the_real_modules(project: tuple[Path, str], width: int) -> None:
    folder, name = project
    text = f"""
        use {name}:Gate infers in_channels=1
        use {name}:SqueezeExcite as se infers channels=1
        model Net(width=8, red=2)
        input 3x8x8
        gate width
        se reduction=red
        gate 5
        """
    path = _spec(folder, text, allow=name)
    _, traced = api.traced_spec(path)
    module = __import__(name)
    real = torch.nn.Sequential(
        module.Gate(3, width), module.SqueezeExcite(width, 2), module.Gate(width, 5)
    )
    want = sum(p.numel() for p in real.parameters())
    got = traced.total_params
    assert got.code != str(got.value)  # an expression of width, not a number
    assert evaluate_source(got.code, {"width": width, "red": 2}) == want
    assert real(torch.zeros(2, 3, 8, 8)).shape == (2, 5, 8, 8)
    assert [d.code for d in traced.layers[-1].out_shape] == ["N", "5", "8", "8"]


def test_generated_code_imports_the_class_and_its_tests_pass(project: tuple[Path, str]) -> None:
    folder, name = project
    text = f"""
        use {name}:SqueezeExcite as se infers channels=1
        model Net(width=8)
        input 3x8x8
        conv2d width 3
        se reduction=2
        flatten
        linear 4
        """
    path = _spec(folder, text, allow=name)
    options = api.options_for(path)
    generated = api.generate(path, options)
    source = generated.files[0].text
    assert f"\nfrom {name} import SqueezeExcite\n" in source
    assert "SqueezeExcite(width, reduction=2)" in source
    for f in generated.files:
        Path(f.path).write_text(f.text)
    run_generated_tests(folder)


def test_spec_errors_with_a_refused_use_report_it_once(project: tuple[Path, str]) -> None:
    folder, name = project
    path = _spec(folder, f"use {name}:Gate infers in_channels=1\ninput 3x4x4\ngate 4\ngate 2")
    with pytest.raises((SeqgenError, SpecErrors)) as e:
        api.traced_spec(path)
    assert e.value.render().count("does not import") == 1


@pytest.mark.parametrize("width", [4, 5, 7, 12])
def test_the_example_at_other_widths(width: int) -> None:
    """generated_examples/custom_layer.py: its count formula and shapes (floor divisions inside
    the user's class) against the real model built at widths other than the default."""
    with isolated_imports(EXAMPLES, first_on_path=EXAMPLES):
        model_module = __import__("custom_layer")
        tests = __import__("test_custom_layer")
        model = model_module.SECNN(num_classes=3, width=width).eval()
        want = sum(p.numel() for p in model.parameters())
        assert tests.expected_param_count(num_classes=3, width=width) == want
        x = torch.zeros(tests.input_shape(2, num_classes=3, width=width))
        assert tests.layer_shapes(model, x) == tests.expected_shapes(2, num_classes=3, width=width)


def test_a_class_that_fixes_a_size(project: tuple[Path, str]) -> None:
    folder, name = project
    use = f"use {name}:Heads infers dim=-1\n"
    _, traced = api.traced_spec(_spec(folder, use + "input 6\nlinear 4\nheads", allow=name))
    assert traced.total_params.value == 6 * 4 + 4 + 4 * (4 + 1)
    path = _spec(folder, use + "model M(w=4)\ninput 6\nlinear w\nheads", allow=name)
    with pytest.raises(SeqgenError) as e:
        api.traced_spec(path)
    d = e.value.diagnostic
    assert e.value.location.line == 5 and "its code fixes w to the sample value" in d.message
    assert "dim depend on the model's parameters" in d.message


def test_the_self_check_at_other_values_names_the_class(project: tuple[Path, str]) -> None:
    folder, name = project
    text = f"use {name}:Mlp infers dim=-1\nmodel M(w=8)\ninput 6\nlinear w\nmlp\nlinear 2"
    with pytest.raises(SeqgenError) as e:
        api.traced_spec(_spec(folder, text, allow=name))
    assert type(e.value).__name__ == "TraceError"  # the class's code, not a seqgen bug
    assert e.value.diagnostic.message.startswith(f"{name}:Mlp: at w=")
    assert e.value.location.line == 5


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("use m:Gate\nuse n:Gate as g\ninput 4\ng", "two `use` lines import a class called"),
        ("use m:Gate\nuse n:Other as gate\ninput 4\ngate", "declared by two `use` lines"),
        ("use m:Net\ninput 4\nnet", "is also the model's class name"),
        ("input 4\n  use m:Gate\nlinear 2", "cannot be indented"),
    ],
)
def test_use_lines_that_clash(text: str, says: str) -> None:
    with pytest.raises((SpecSyntaxError, SpecErrors)) as e:
        parse(text + "\n", "net.seq")
    assert says in e.value.render()


def test_the_cli_flag_and_the_config_key(project: tuple[Path, str]) -> None:
    folder, name = project
    _spec(folder, f"use {name}:SqueezeExcite as se infers channels=1\ninput 8x4x4\nse")
    refused = seqgen_cli("check", "net.seq", cwd=folder)
    assert (
        refused.returncode == 1 and "net.seq:1:5: error: seqgen does not import" in refused.stderr
    )
    allowed = seqgen_cli("check", "--allow-import", name, "net.seq", cwd=folder)
    assert allowed.returncode == 0 and "SqueezeExcite(8)" in allowed.stdout, allowed.stderr
    (folder / "pyproject.toml").write_text('[tool.seqgen]\nallow-imports = "mypkg"\n')
    bad = seqgen_cli("check", "net.seq", cwd=folder)
    assert (
        bad.returncode == 1
        and "pyproject.toml:2:1: error: [tool.seqgen] key 'allow-imports'" in (bad.stderr)
    )


def test_a_spec_with_syntax_errors_imports_nothing_it_may_not(project: tuple[Path, str]) -> None:
    folder, name = project
    text = f"use {name}:Gate infers in_channels=1\ninput 3x4x4\ngate 4\nlinear 3 +\n"
    path = _spec(folder, text)
    with pytest.raises(SpecErrors) as e:
        api.traced_spec(path)
    messages = [x.diagnostic.message for x in e.value.errors]
    assert any("does not import" in m for m in messages) and len(messages) == 2, messages
    assert name not in sys.modules


def test_an_inferred_dim_the_input_lacks(project: tuple[Path, str]) -> None:
    folder, name = project
    text = f"use {name}:SqueezeExcite infers channels=5\ninput 8x4x4\nsqueezeexcite"
    with pytest.raises(SeqgenError, match="needs an input of rank 6 but gets rank 4"):
        api.traced_spec(_spec(folder, text, allow=name))


def test_summary_says_how_each_class_was_traced(project: tuple[Path, str]) -> None:
    folder, name = project
    text = f"""
        use {name}:DataDependent
        use {name}:SqueezeExcite as se infers channels=1
        input 4x2x2
        se reduction=2
        flatten
        datadependent 16
        """
    _spec(folder, text)
    out = seqgen_cli("summary", "--allow-import", name, "net.seq", cwd=folder)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == [
        f"{name}:DataDependent: traced at the sample values (W015), mult-adds at the sample",
        f"{name}:SqueezeExcite: traced symbolically, mult-adds exact",
    ]


def test_a_changed_class_is_no_longer_up_to_date(tmp_path: Path) -> None:
    """No header records a class's code, so a spec with `use` lines is traced on every run:
    after the class changes (here its parameter count), `new --check` reports the outputs stale
    and `new` rewrites them; unchanged, `new` rewrites nothing."""
    name = f"widen_{tmp_path.name.replace('-', '_')}"
    module = tmp_path / f"{name}.py"
    source = (
        "import torch\nfrom torch import nn\n\n\nclass Widen(nn.Module):\n"
        "    def __init__(self, dim: int) -> None:\n        super().__init__()\n"
        "        self.fc = nn.Linear(dim, dim * {k})\n\n"
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        return self.fc(x)\n"
    )
    module.write_text(source.format(k=2))
    _spec(tmp_path, f"use {name}:Widen infers dim=-1\ninput 4\nwiden\n", allow=name)
    try:
        first = seqgen_cli("new", "net.seq", cwd=tmp_path)
        assert first.returncode == 0 and "wrote" in first.stdout, first.stderr
        again = seqgen_cli("new", "net.seq", cwd=tmp_path)
        assert again.returncode == 0 and "wrote" not in again.stdout
        assert "not traced" not in again.stdout  # traced, and found the same
        assert seqgen_cli("new", "--check", "net.seq", cwd=tmp_path).returncode == 0
        module.write_text(source.format(k=3) + "\n# widened\n")
        sys.modules.pop(name, None)  # a new process would import it afresh
        assert seqgen_cli("new", "--check", "net.seq", cwd=tmp_path).returncode == 1
        changed = seqgen_cli("new", "net.seq", cwd=tmp_path)
        assert changed.returncode == 0 and "wrote" in changed.stdout, changed.stderr
        assert "PARAM_COUNT = 60\n" in (tmp_path / "test_net.py").read_text()  # 4 * 12 + 12
    finally:
        sys.modules.pop(name, None)
