"""`seqgen import`: a spec from an existing nn.Module, and its weights carried over.

The round trip on the architecture zoo's module-for-module copies of torchvision's models
(tests/architectures/reference.py; torchvision itself is not installed): import -> spec ->
generate -> the same parameter count and output shape, the original's weights loaded through the
mapping, and the same outputs in eval mode. Small models written here test the mapping of
functional ops, block parameters, the forward-hooks fallback and the located refusals.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import torch
from click.testing import CliRunner
from conftest import ROOT, isolated_imports

from seqgen.api import generate, import_model, options_for, output_paths
from seqgen.cli import main
from seqgen.importer import ImportRefused, remap
from seqgen.project.write import write_files

ARCHITECTURES = Path(__file__).resolve().parent / "architectures"
REFERENCE = ARCHITECTURES / "reference.py"


def _load(path: Path, name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _generated(spec_text: str, tmp_path: Path, stem: str) -> torch.nn.Module:
    """Write the spec, generate it with the public API, and build the generated model."""
    spec = tmp_path / f"{stem}.seq"
    spec.write_text(spec_text, encoding="utf-8")
    options = options_for(str(spec), str(tmp_path))
    result = generate(str(spec), options)
    write_files(list(result.files))
    module = _load(Path(output_paths(options)[0]), f"imported_{stem}_{tmp_path.name}")
    return getattr(module, result.traced.spec.class_name)()


def _randomize(model: torch.nn.Module) -> None:
    """Weights and BatchNorm statistics away from their initial values, so that a key mapped to
    the wrong layer cannot give the same output."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.uniform_(0.5, 1.5)
                else:
                    t.normal_(0, 0.1)


def round_trip(target: str, shape: tuple[int, ...], tmp_path: Path, original: torch.nn.Module):
    """Import `target`, generate its spec, load the original's weights into the generated model
    through the mapping, and compare; return the import result."""
    spec_path = tmp_path / "imported.seq"
    result = import_model(target, "x".join(map(str, shape)), str(spec_path))
    generated = _generated(result.spec_text, tmp_path, "imported")
    count = sum(p.numel() for p in original.parameters())
    assert sum(p.numel() for p in generated.parameters()) == count == result.total_params
    _randomize(original)
    keys = tmp_path / "imported.keys.json"
    keys.write_text(result.keys_text, encoding="utf-8")
    generated.load_state_dict(remap(original.state_dict(), keys))  # strict: every key
    original.eval(), generated.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        want, got = original(x), generated(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    return result


# (factory in reference.py, input, spec lines, blocks, slow): the line counts are the report's
ZOO = [
    ("vgg11_bn_cifar", (3, 32, 32), 25, 0, False),
    ("squeezenet1_1", (3, 64, 64), 33, 1, False),
    ("resnet18", (3, 32, 32), 37, 2, True),
    ("se_cnn", (3, 32, 32), 29, 2, True),
    ("unet_small", (3, 64, 64), 37, 0, True),
    ("resnet50", (3, 32, 32), 50, 2, True),
    ("mobilenet_v2", (3, 32, 32), 55, 2, True),
    ("googlenet", (3, 32, 32), 43, 2, True),
    ("efficientnet_b0", (3, 32, 32), 68, 3, True),
    ("densenet121", (3, 32, 32), 45, 1, True),
]


@pytest.mark.parametrize(
    "factory, shape, lines, blocks",
    [
        pytest.param(f, s, n, b, id=f, marks=[pytest.mark.slow] if slow else [])
        for f, s, n, b, slow in ZOO
    ],
)
def test_reference_models_round_trip(
    factory: str, shape: tuple[int, ...], lines: int, blocks: int, tmp_path: Path
) -> None:
    reference = _load(REFERENCE, "seqgen_import_reference")
    torch.manual_seed(0)
    result = round_trip(f"{REFERENCE}:{factory}", shape, tmp_path, getattr(reference, factory)())
    assert result.how == "torch.fx"
    assert (len(result.spec_text.splitlines()), result.blocks) == (lines, blocks)


def test_resnet18_reads_like_a_person_wrote_it(tmp_path: Path) -> None:
    """The identity and downsampling BasicBlocks are two blocks (their structure differs); the
    channel counts are the blocks' input sizes; runs of blocks are `repeat`s; the classifier's
    width is the model parameter `num_classes`."""
    result = import_model(f"{REFERENCE}:resnet18", "3x32x32", str(tmp_path / "r.seq"))
    text = result.spec_text
    assert "model ResNet(num_classes=10)\ninput 3x32x32\n" in text
    assert (
        textwrap.dedent("""\
        block BasicBlock2:
            residual:
                conv2d in_channels * 2 k=3 s=2 p=1 bias=False name=conv1
                batchnorm2d name=bn1
                relu
                conv2d in_channels * 2 k=3 p=1 bias=False name=conv2
                batchnorm2d name=bn2
            shortcut:
                conv2d in_channels * 2 k=1 s=2 bias=False
                batchnorm2d
            relu
        """)
        in text
    )
    assert text.endswith(
        "repeat 2:\n    BasicBlock\nrepeat 3:\n    BasicBlock2\n    BasicBlock\n"
        "adaptiveavgpool2d 1\nflatten\nlinear num_classes name=fc\n"
    )
    keys = json.loads(result.keys_text)
    assert keys["format"] == "seqgen-keys/1" and keys["model"] == "ResNet"
    assert keys["keys"]["layer2.0.downsample.0.weight"] == "model.6.0.shortcut.0.weight"


@pytest.mark.slow
def test_block_parameters_are_expressions_of_what_varies(tmp_path: Path) -> None:
    """Sizes that vary between the uses of a class become the block's parameters or expressions
    of its input size and of other parameters (`kernel // 2`); constant ones stay literal."""
    result = import_model(f"{REFERENCE}:efficientnet_b0", "3x32x32", str(tmp_path / "e.seq"))
    text = result.spec_text
    assert "block MBConv(out, kernel=3, stride=2):\n" in text
    assert "conv2d in_channels * 6 k=kernel s=stride p=kernel // 2 groups=in_channels * 6" in text
    assert "    SqueezeExcitation in_channels // 4\n" in text
    assert "MBConv 112 kernel=5 stride=1\n" in text


MODELS = """\
import torch
from torch import nn
from torch.nn import functional as F


class Functional(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = torch.sigmoid(F.adaptive_avg_pool2d(x, 4))
        x = x.view(x.size(0), -1)
        return self.fc(F.dropout(x, 0.3, training=self.training))


class Ops(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = self.conv(x).permute(0, 2, 3, 1)
        x = torch.transpose(x, 1, 2).unsqueeze(1).squeeze(1)
        return self.fc(x.mean([1, 2]))


class DropPath(nn.Module):  # as torchvision.ops.StochasticDepth: training-only, no weights
    def forward(self, x):
        if not self.training:
            return x
        keep = torch.empty(x.shape[0], 1, 1, 1).bernoulli_(0.9)
        return x * keep / 0.9


class Aux(nn.Module):  # as torchvision's GoogLeNet: a tuple in training, the logits in eval
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.drop = DropPath()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        x = x + self.drop(self.conv(x))
        out = self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        if self.training:
            return out, out
        return out


class Viewed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x).view(-1, 8 * 6 * 6)


class Rolled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return torch.roll(self.conv(x), 1, 2)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)
        self.c = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.a(x)
        z = self.b(y)
        return self.c(y) + z + z


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        if x.sum() > 1e9:  # data-dependent: torch.fx cannot trace this
            return x
        return self.act(self.conv(x))


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.gate = Gate(4)

    def forward(self, x):
        if x.sum() > 1e9:
            return x
        return self.gate(self.conv(x))


class NotAChain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.sum() > 1e9:
            return x
        return self.conv(x) * 2


class Lrn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.lrn = nn.CrossMapLRN2d(3)

    def forward(self, x):
        return self.lrn(self.conv(x))


class ModeDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        if self.training:  # torch.fx traces the branch of the mode the model is in
            return self.relu(self.conv(x))
        return self.sigmoid(self.conv(x))


def widths(num_classes=4):
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )
"""


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(MODELS, encoding="utf-8")
    return path


def test_functional_ops_become_layers(models: Path, tmp_path: Path) -> None:
    """F.relu, F.max_pool2d, torch.sigmoid, F.adaptive_avg_pool2d, x.view(x.size(0), -1) and
    F.dropout become spec lines, and the model round-trips."""
    module = _load(models, "import_models_functional")
    result = round_trip(f"{models}:Functional", (3, 8, 8), tmp_path, module.Functional())
    body = result.spec_text.split("input 3x8x8\n\n", 1)[1]
    assert body == (
        "conv2d 8 k=3 p=1 name=conv\nrelu\nmaxpool2d 2\nadaptiveavgpool2d 4\nsigmoid\nflatten\n"
        "dropout 0.3\nlinear num_classes name=fc\n"
    )


def test_tensor_ops_become_seqgens_own_ops(models: Path, tmp_path: Path) -> None:
    module = _load(models, "import_models_ops")
    result = round_trip(f"{models}:Ops", (3, 8, 8), tmp_path, module.Ops())
    body = result.spec_text.split("input 3x8x8\n\n", 1)[1]
    assert body == (
        "conv2d 8 k=3 name=conv\npermute 0 2 3 1\ntranspose 1 2\nunsqueeze 1\nsqueeze 1\n"
        "mean (1, 2)\nlinear num_classes name=fc\n"
    )


def test_an_op_without_a_spec_equivalent_is_refused_at_its_line(models: Path, tmp_path) -> None:
    with pytest.raises(ImportRefused) as e:
        import_model(f"{models}:Rolled", "3x8x8", str(tmp_path / "r.seq"))
    line = _line_of(MODELS, "torch.roll(")
    assert f"{models}:{line}: in Rolled (`the model`): `roll` (call_function)" in e.value.render()
    assert "has no spec equivalent" in e.value.render()


def test_a_view_with_written_sizes_is_refused_with_the_flatten_hint(models: Path, tmp_path) -> None:
    with pytest.raises(ImportRefused) as e:
        import_model(f"{models}:Viewed", "3x8x8", str(tmp_path / "v.seq"))
    assert f"{models}:{_line_of(MODELS, '.view(-1, 8 * 6 * 6)')}: " in e.value.render()
    assert "hint: write `x.flatten(1)`" in e.value.render()


def test_a_value_used_by_two_branches_is_refused(models: Path, tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="used by two branches") as e:
        import_model(f"{models}:Shared", "3x8x8", str(tmp_path / "s.seq"))
    assert f"{models}:" in str(e.value)


def test_a_layer_seqgen_refuses_is_reported_at_the_users_line(models: Path, tmp_path) -> None:
    """The spec seqgen would write does not trace: the error is told at the line of the
    original forward that calls the layer, with seqgen's own reason."""
    with pytest.raises(ImportRefused) as e:
        import_model(f"{models}:Lrn", "3x8x8", str(tmp_path / "l.seq"))
    line = _line_of(MODELS, "self.lrn(self.conv(x))")
    assert str(e.value).startswith(f"{models}:{line}: `crossmaplrn2d 3`: ")


def test_a_forward_fx_cannot_trace_is_read_from_hooks(models: Path, tmp_path: Path) -> None:
    module = _load(models, "import_models_chain")
    result = round_trip(f"{models}:Chain", (3, 8, 8), tmp_path, module.Chain())
    assert "`the model` read with forward hooks (torch.fx: TraceError" in result.how
    assert "`gate` read with forward hooks" in result.how
    assert "torch.fx and forward hooks" in result.spec_text.splitlines()[0]


def test_what_training_mode_refuses_is_read_in_eval_mode(models: Path, tmp_path: Path) -> None:
    module = _load(models, "import_models_aux")
    result = round_trip(f"{models}:Aux", (3, 8, 8), tmp_path, module.Aux())
    assert "`the model` read with torch.fx in eval mode (in training mode: " in result.how
    assert "forward returns a tuple" in result.how
    assert "residual:\n    conv2d 3 k=3 p=1 name=conv\nadaptiveavgpool2d 1\n" in result.spec_text


def test_a_forward_that_is_no_chain_and_no_fx_graph_is_refused(models: Path, tmp_path) -> None:
    with pytest.raises(ImportRefused, match="did not run as a chain") as e:
        import_model(f"{models}:NotAChain", "3x8x8", str(tmp_path / "n.seq"))
    assert f"{models}:{_line_of(MODELS, 'class NotAChain') + 5}:" in str(e.value)


def test_a_spec_that_computes_another_output_is_refused(models: Path, tmp_path: Path) -> None:
    """The forward is traced in training mode (relu) but eval mode computes a sigmoid: the
    generated model, given the original's weights, is compared with it in eval mode."""
    with pytest.raises(ImportRefused, match="computes another output"):
        import_model(f"{models}:ModeDependent", "3x8x8", str(tmp_path / "m.seq"))


def test_factory_arguments_and_the_cli(models: Path, tmp_path: Path) -> None:
    """`--arg` reaches the factory; the spec and `<stem>.keys.json` are written, and never
    overwritten without --force; a refusal exits 1 with the located message."""
    spec = tmp_path / "out" / "w.seq"
    spec.parent.mkdir()
    args = [
        "import",
        f"{models}:widths",
        "--input",
        "3x8x8",
        "-o",
        str(spec),
        "--arg",
        "num_classes=7",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "model Widths(num_classes=7)" in spec.read_text(encoding="utf-8")
    assert "linear num_classes\n" in spec.read_text(encoding="utf-8")
    keys = json.loads((tmp_path / "out" / "w.keys.json").read_text(encoding="utf-8"))
    assert keys["keys"]["5.weight"] == "model.linear.weight" or keys["keys"]["5.weight"] == (
        "model.5.weight"
    )
    assert re.search(
        r"wrote .*w\.seq \(Widths: \d+ lines, 0 blocks, 599 parameters\)", result.output
    )
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "already exists" in again.output
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0
    refused = CliRunner().invoke(
        main, ["import", f"{models}:Rolled", "--input", "3x8x8", "-o", str(tmp_path / "r.seq")]
    )
    assert refused.exit_code == 1 and "has no spec equivalent" in refused.output
    assert not (tmp_path / "r.seq").exists()
    bad = CliRunner().invoke(main, ["import", "no_such_module_xyz:Net", "--input", "3x8x8"])
    assert bad.exit_code == 1 and "ModuleNotFoundError" in bad.output


def _readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- tested: {marker} -->\n```\w*\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"README.md has no block marked {marker!r}"
    return match.group(1)


def test_the_readme_example_is_what_import_writes_and_its_weights_snippet_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = _readme_block("import_squeezenet")
    command, output = example.split("\n", 1)
    printed, spec_text = output.split("$ cat squeezenet.seq\n")
    target = command.split()[3]
    monkeypatch.chdir(ROOT)  # the README runs it from the checkout
    spec = tmp_path / "squeezenet.seq"
    result = CliRunner().invoke(main, ["import", target, "--input", "3x64x64", "-o", str(spec)])
    assert result.exit_code == 0, result.output
    assert result.output.replace(f"{tmp_path}/", "") == printed
    assert spec.read_text(encoding="utf-8") == spec_text
    monkeypatch.chdir(tmp_path)
    _generated(spec_text, tmp_path, "squeezenet")
    (tmp_path / "reference.py").write_text(REFERENCE.read_text(encoding="utf-8"), "utf-8")
    namespace: dict[str, object] = {}
    with isolated_imports(tmp_path, first_on_path=tmp_path):
        exec(_readme_block("import_weights"), namespace)  # the README's own snippet
        original, model = namespace["original"], namespace["model"]
        assert isinstance(original, torch.nn.Module) and isinstance(model, torch.nn.Module)
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(original.eval()(x), model.eval()(x), atol=1e-6)
