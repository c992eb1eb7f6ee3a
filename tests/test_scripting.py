"""torch.jit.script compiles every runtime helper, as generated files hold it, and a generated
model that uses them; scripted and eager modules agree, errors included."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from seqgen.runtime import helper_classes

# every helper class, and how to build one and the input to run it on
CASES: dict[str, tuple[Callable[[ModuleType], nn.Module], tuple[int, ...]]] = {
    "Residual": (lambda h: h.Residual(nn.Linear(4, 4)), (2, 4)),
    "Residual with a shortcut": (lambda h: h.Residual(nn.Linear(4, 5), nn.Linear(4, 5)), (2, 4)),
    "Concat": (lambda h: h.Concat(nn.Linear(4, 3), nn.Identity(), dim=1), (2, 4)),
    "Concat by name": (
        lambda h: h.Concat({"down": nn.Linear(4, 3), "skip": nn.Identity()}, dim=1),
        (2, 4),
    ),
    "Add": (lambda h: h.Add(nn.Linear(4, 4), nn.Identity()), (2, 4)),
    "Add broadcasting": (lambda h: h.Add(nn.Identity(), nn.Linear(4, 1), nn.Flatten(0)), (1, 4)),
    "Add by name": (lambda h: h.Add({"a": nn.Linear(4, 4), "b": nn.Identity()}), (2, 4)),
    "Multiply": (lambda h: h.Multiply(nn.Identity(), nn.Sigmoid()), (2, 4)),
    "Subtract": (lambda h: h.Subtract(nn.Identity(), nn.Sigmoid()), (2, 4)),
    "Multiply by name": (
        lambda h: h.Multiply({"x": nn.Identity(), "gate": nn.Sigmoid()}),
        (2, 4),
    ),
    "Bmm": (lambda h: h.Bmm(nn.Unflatten(1, (2, 3)), nn.Unflatten(1, (3, 2))), (2, 6)),
    "Bmm by name": (
        lambda h: h.Bmm({"a": nn.Unflatten(1, (3, 2)), "b": nn.Unflatten(1, (2, 3))}),
        (4, 6),
    ),
    "Reparameterize": (lambda h: h.Reparameterize(nn.Linear(4, 3), nn.Linear(4, 3)), (2, 4)),
    "Reparameterize by name": (
        lambda h: h.Reparameterize({"mu": nn.Linear(4, 3), "logvar": nn.Linear(4, 3)}),
        (2, 4),
    ),
    "RecurrentOutput all": (
        lambda h: h.RecurrentOutput(nn.LSTM(4, 5, batch_first=True), "all"),
        (2, 3, 4),
    ),
    "RecurrentOutput last": (
        lambda h: h.RecurrentOutput(nn.GRU(4, 5, batch_first=True, bidirectional=True), "last"),
        (2, 3, 4),
    ),
    "RecurrentOutput hidden": (
        lambda h: h.RecurrentOutput(
            nn.LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True), "hidden"
        ),
        (2, 3, 4),
    ),
    "RecurrentOutput hidden rnn": (
        lambda h: h.RecurrentOutput(nn.RNN(4, 5, batch_first=True), "hidden"),
        (2, 3, 4),
    ),
    "Permute": (lambda h: h.Permute(0, 2, 1), (2, 3, 4)),
    "Transpose": (lambda h: h.Transpose(1, 2), (2, 3, 4)),
    "Unsqueeze": (lambda h: h.Unsqueeze(1), (2, 3)),
    "Squeeze": (lambda h: h.Squeeze(1), (2, 1, 3)),
    "Mean": (lambda h: h.Mean(1, keepdim=True), (2, 3, 4)),
    "Sum": (lambda h: h.Sum(1), (2, 3, 4)),
    "Amax": (lambda h: h.Amax(2), (2, 3, 4)),
    "Select": (lambda h: h.Select(1, -1), (2, 3, 4)),
    "Narrow": (lambda h: h.Narrow(2, 1, 2), (2, 3, 4)),
    "Scale": (lambda h: h.Scale(0.5), (2, 3)),
    "Abs": (lambda h: h.Abs(), (2, 3)),
    "AddIdentity": (lambda h: h.AddIdentity(), (2, 3, 3)),
    "ClsToken": (lambda h: h.ClsToken(4), (2, 3, 4)),
    "PosEmbedding": (lambda h: h.PosEmbedding(3, 4), (2, 3, 4)),
    "PosEncoding": (lambda h: h.PosEncoding(5, max_len=10), (2, 3, 5)),
}


@pytest.fixture(scope="module")
def helpers(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """Every helper class in one module, as a generated file holds them: their source copied
    after the generated imports (no `from __future__ import annotations`: TorchScript reads the
    annotations)."""
    path = tmp_path_factory.mktemp("helpers") / "scripted_helpers.py"
    path.write_text(
        "import math\n\nimport torch\nfrom torch import nn\n\n\n"
        + "\n\n\n".join(helper_classes().values())
        + "\n",
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location("scripted_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert math  # the helpers' source may use it
    return module


# helpers whose forward reads another input beside x: (build, x's shape, the other input)
READING_CASES: dict[str, tuple[Callable[[ModuleType], nn.Module], tuple[int, ...], torch.Tensor]]
READING_CASES = {
    f"PackedRecurrentOutput {take} {rnn.__name__}{' bidirectional' * bi}": (
        lambda h, rnn=rnn, take=take, bi=bi: h.PackedRecurrentOutput(
            rnn(4, 5, num_layers=2, batch_first=True, bidirectional=bi), take
        ),
        (3, 6, 4),
        torch.tensor([6, 2, 4]),
    )
    for rnn in (nn.LSTM, nn.GRU, nn.RNN)
    for take in ("all", "last", "hidden")
    for bi in (False, True)
}


def test_every_helper_has_a_case() -> None:
    cases = [*CASES, *READING_CASES]
    assert {name.split(" ")[0] for name in cases} == set(helper_classes())


@pytest.mark.parametrize("case", list(READING_CASES))
def test_reading_helper_scripts_and_agrees(helpers: ModuleType, case: str) -> None:
    """A helper that reads another input (lengths) scripts, and agrees with its eager self."""
    build, shape, other = READING_CASES[case]
    torch.default_generator.manual_seed(0)
    module = build(helpers).eval()
    scripted = torch.jit.script(module)
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.equal(scripted(x, other), module(x, other))


@pytest.mark.parametrize("case", list(CASES))
def test_helper_scripts_and_agrees(helpers: ModuleType, case: str) -> None:
    build, shape = CASES[case]
    torch.default_generator.manual_seed(0)
    module = build(helpers).eval()
    scripted = torch.jit.script(module)
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.equal(scripted(x), module(x))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda h: h.Residual(nn.Linear(4, 3)),
            "Residual: the body gives (2, 3) but the input gives (2, 4) for input (2, 4)",
        ),
        (
            lambda h: h.Concat(nn.Linear(4, 3), nn.Identity(), dim=0),
            "Concat: branch outputs (2, 3), (2, 4) for input (2, 4) differ outside dim 0",
        ),
        (
            lambda h: h.Add(nn.Linear(4, 3), nn.Identity()),
            "Add: branch outputs (2, 3), (2, 4) for input (2, 4) do not broadcast",
        ),
        (
            lambda h: h.Bmm(nn.Unflatten(1, (2, 2)), nn.Unflatten(1, (4, 1))),
            "Bmm: branch outputs (2, 2, 2), (2, 4, 1) for input (2, 4) must be (N, n, m) and "
            "(N, m, p)",
        ),
        (
            lambda h: h.Bmm(nn.Identity(), nn.Unflatten(1, (4, 1))),
            "Bmm: branch outputs (2, 4), (2, 4, 1) for input (2, 4) must both have rank 3",
        ),
        (
            lambda h: h.Reparameterize(nn.Linear(4, 3), nn.Linear(4, 2)),
            "Reparameterize: the mean (2, 3) and the log-variance (2, 2) for input (2, 4) "
            "differ in shape",
        ),
    ],
)
def test_scripted_merges_raise_the_eager_message(
    helpers: ModuleType, build: Callable[[ModuleType], nn.Module], message: str
) -> None:
    """Eager: that ValueError; scripted: a torch.jit.Error whose last line is the ValueError."""
    module = build(helpers).eval()
    with pytest.raises(ValueError) as eager:
        module(torch.randn(2, 4))
    assert str(eager.value) == message
    with pytest.raises(torch.jit.Error) as scripted:
        torch.jit.script(module)(torch.randn(2, 4))
    assert str(scripted.value).splitlines()[-1] == f"builtins.ValueError: {message}"


def test_reparameterize_samples_in_training_and_returns_the_mean_in_eval(
    helpers: ModuleType,
) -> None:
    """Scripted and eager draw the same noise from the same seed; eval mode gives mu itself."""
    torch.manual_seed(0)
    mu, logvar = nn.Linear(4, 3), nn.Linear(4, 3)
    module = helpers.Reparameterize(mu, logvar).train()
    scripted = torch.jit.script(module)
    x = torch.randn(5, 4)
    with torch.no_grad():
        torch.manual_seed(1)
        eager_out = module(x)
        torch.manual_seed(1)
        scripted_out = scripted(x)
        torch.manual_seed(1)
        std = torch.exp(0.5 * logvar(x))
        expected = mu(x) + torch.randn_like(std) * std
        assert torch.equal(eager_out, expected) and torch.equal(scripted_out, expected)
        assert not torch.equal(module(x), expected)  # another draw
        assert torch.equal(module.eval()(x), mu(x))
    with pytest.raises(ValueError, match="takes two branches"):
        helpers.Reparameterize(mu, logvar, nn.Identity())


# bundled examples whose models hold helpers: (module, class, input shape, token input)
EXAMPLES = [
    ("resnet_block", "ResNetSmall", (2, 3, 32, 32), False),
    ("unet_small", "UNetSmall", (2, 3, 16, 16), False),
    ("inception", "InceptionNet", (2, 3, 32, 32), False),
    ("text_lstm", "TextRNN", (2, 7), True),
    ("tiny_vit", "TinyViT", (2, 3, 32, 32), False),
]


@pytest.mark.parametrize(("stem", "class_name", "shape", "tokens"), EXAMPLES)
def test_a_generated_model_scripts(
    stem: str, class_name: str, shape: tuple[int, ...], tokens: bool
) -> None:
    path = Path(__file__).resolve().parent.parent / "generated_examples" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"scripted_{stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    torch.default_generator.manual_seed(0)
    model: nn.Module = getattr(module, class_name)().eval()
    x = torch.randint(0, 100, shape) if tokens else torch.randn(shape)
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(model)(x), model(x), atol=1e-6)


def test_a_generated_model_that_packs_scripts() -> None:
    """text_lstm_packed reads a lengths input beside its tokens: scripted, it agrees."""
    path = Path(__file__).resolve().parent.parent / "generated_examples" / "text_lstm_packed.py"
    spec = importlib.util.spec_from_file_location("scripted_text_lstm_packed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    torch.default_generator.manual_seed(0)
    model: nn.Module = module.PackedTextRNN(vocab=100).eval()
    tokens, lengths = torch.randint(1, 100, (3, 9)), torch.tensor([9, 2, 5])
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(model)(tokens, lengths), model(tokens, lengths))
