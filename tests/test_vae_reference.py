"""The VAE of pytorch/examples, written with heads and `reparameterize:` (issue 19's reference).

tests/architectures/heads/vae.seq is generated with seqgen's API and compared with the original
(copied by hand in tests/architectures/vae.py): the same parameter count (652,824), the outputs
(recon, mu, logvar) in that order with their shapes, and, with the original's weights copied
in (its state_dict in order: fc1, fc21, fc22, fc3, fc4), the same forward: in training mode
with the same seed set before each forward (randn_like draws the same numbers), and in eval
mode, where the generated model returns decode(mu) (the original samples even in eval mode, so
it is compared through its own encode and decode); at the defaults and at latent=8, hidden=64.
(slow) The tests seqgen generates for it pass.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import run_generated_tests
from torch import nn

from seqgen.api import generate, options_for
from seqgen.project.write import write_files
from tests.architectures.vae import VAE

SPEC = Path(__file__).resolve().parent / "architectures" / "heads" / "vae.seq"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], ModuleType]:
    out = tmp_path_factory.mktemp("vae")
    spec = out / SPEC.name
    spec.write_text(SPEC.read_text(encoding="utf-8"), encoding="utf-8")
    result = generate(str(spec), options_for(str(spec), str(out)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location("gen_vae", result.files[0].path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return [Path(f.path) for f in result.files], module


@pytest.fixture(scope="module")
def generated(built: tuple[list[Path], ModuleType]) -> ModuleType:
    return built[1]


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _copied(generated: ModuleType, latent: int, hidden: int) -> tuple[nn.Module, VAE]:
    """The generated model and the original at the same sizes, the original's weights copied
    into the generated one entry by entry, in order (shapes checked)."""
    torch.manual_seed(0)
    reference = VAE(latent, hidden)
    model = generated.VAE(latent=latent, hidden=hidden)
    ours, theirs = model.state_dict(), reference.state_dict()
    assert list(theirs) == [f"fc{i}.{w}" for i in (1, 21, 22, 3, 4) for w in ("weight", "bias")]
    assert len(ours) == len(theirs)
    for (key, value), (ref_key, ref_value) in zip(ours.items(), theirs.items(), strict=True):
        assert value.shape == ref_value.shape, (key, ref_key)
    model.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))
    return model, reference


@pytest.mark.parametrize(("latent", "hidden", "expected"), [(20, 400, 652_824), (8, 64, None)])
def test_parameter_count_equals_the_originals(
    generated: ModuleType, latent: int, hidden: int, expected: int | None
) -> None:
    reference = VAE(latent, hidden)
    if expected is not None:  # the count of pytorch/examples' VAE
        assert _count(reference) == expected
    assert _count(generated.VAE(latent=latent, hidden=hidden)) == _count(reference)


def test_outputs_are_the_originals_in_order(generated: ModuleType) -> None:
    assert generated.VAEOutput._fields == ("recon", "mu", "logvar")
    model = generated.VAE()
    assert [name for name, _ in model.named_children()] == ["trunk_0", "z_mu", "z_logvar", "trunk"]
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        for out in (model.train()(x), model.eval()(x)):
            assert [tuple(t.shape) for t in out] == [(3, 784), (3, 20), (3, 20)]


@pytest.mark.parametrize(("latent", "hidden"), [(20, 400), (8, 64)])
def test_same_forward_as_the_original_with_its_weights(
    generated: ModuleType, latent: int, hidden: int
) -> None:
    model, reference = _copied(generated, latent, hidden)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.manual_seed(1)
        ours = model.train()(x)
        torch.manual_seed(1)
        theirs = reference.train()(x)
        assert len(ours) == len(theirs) == 3
        for name, a, b in zip(ours._fields, ours, theirs, strict=True):
            assert a.shape == b.shape and torch.equal(a, b), name
        # another seed, another sample: the noise is really drawn
        torch.manual_seed(2)
        assert not torch.allclose(model(x).recon, ours.recon)

        # eval mode: the generated model decodes mu; the original has no eval path, so its
        # encode and decode are run on mu by hand
        got = model.eval()(x)
        mu, logvar = reference.eval().encode(x.view(-1, 784))
        assert torch.equal(got.mu, mu)
        assert torch.equal(got.logvar, logvar)
        assert torch.equal(got.recon, reference.decode(mu))
        torch.manual_seed(1)
        assert torch.equal(model.eval()(x).recon, got.recon)  # no sampling in eval mode


def test_the_generated_model_scripts(generated: ModuleType) -> None:
    model = generated.VAE(latent=8, hidden=64)
    scripted = torch.jit.script(model)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        for training in (True, False):
            torch.manual_seed(5)
            a = scripted.train(training)(x)
            torch.manual_seed(5)
            b = model.train(training)(x)
            assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True)), training


@pytest.mark.slow
def test_generated_tests_pass(built: tuple[list[Path], ModuleType]) -> None:
    files, _ = built
    run_generated_tests(*[f for f in files if f.name.startswith("test_")])
