"""`reparameterize:`: a merge of two branches, the mean and the log-variance, that samples
`mu + randn_like(std) * std` in training mode and gives `mu` in eval mode.

The parser's and tracer's located errors, the `__init__` check where the two sizes are
expressions, the generated module (the `Reparameterize` helper in `self.model`, or split into
statements when a head reads a branch) against hand-written torch with the same weights and the
same seed, in both modes and at two parameter values, and the summary's row.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from seqgen.api import generate, options_for
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.project.write import write_files
from seqgen.report.summary import render_summary
from seqgen.trace.model import trace

PLAIN = """\
model Sampler(latent=4, hidden=16)
input 8

linear hidden
relu
reparameterize:
    branch:
        linear latent
    branch:
        linear latent
linear hidden
"""

HEADS = """\
model Split(latent=4, hidden=16)
input 8

linear hidden
relu
reparameterize name=z:
    branch name=mu:
        linear latent
    branch name=logvar:
        linear latent
linear hidden
head out
head mu from=z.mu
head logvar from=z.logvar
"""


def _generate(tmp_path: Path, text: str, name: str) -> tuple[str, ModuleType]:
    spec = tmp_path / f"{name}.seq"
    spec.write_text(text)
    result = generate(str(spec), options_for(str(spec), str(tmp_path)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(f"rep_{name}", result.files[0].path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return Path(result.files[0].path).read_text(), module


class _Reference(nn.Module):
    """PLAIN and HEADS by hand: (out, mu, logvar)."""

    def __init__(self, latent: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = torch.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu
        if self.training:
            std = torch.exp(0.5 * logvar)
            z = mu + torch.randn_like(std) * std
        return self.fc3(z), mu, logvar


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "    branch:\n        linear 4\n" * 3,
            "`reparameterize:` takes exactly 2 `branch:` stacks, found 3",
        ),
        ("    branch:\n        linear 4\n", "`reparameterize:` takes exactly 2 `branch:` stacks"),
    ],
)
def test_it_takes_exactly_two_branches(body: str, message: str) -> None:
    with pytest.raises(SeqgenError, match=message) as info:
        parse("input 8\nreparameterize:\n" + body)
    d = info.value.diagnostic
    assert d.location is not None and (d.location.line, d.location.col) == (2, 1)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ("linear 5", "branch 1 gives (N, 4), branch 2 gives (N, 5); the two must have equal"),
        ("linear 4\n        unsqueeze 1", "the ranks differ"),
    ],
)
def test_unequal_shapes_are_an_error_at_the_merge(second: str, message: str) -> None:
    text = (
        f"input 8\nreparameterize:\n    branch:\n        linear 4\n    branch:\n        {second}\n"
    )
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    d = info.value.diagnostic
    assert message in d.message and d.location is not None and d.location.line == 2


def test_sizes_that_agree_for_some_values_are_checked_in_init(tmp_path: Path) -> None:
    text = PLAIN.replace("model Sampler(latent=4, hidden=16)", "model Sampler(a=4, b=4)")
    text = text.replace(
        "linear latent\n    branch:\n        linear latent",
        "linear a\n    branch:\n        linear b",
    )
    text = text.replace("hidden", "16")
    source, module = _generate(tmp_path, text, "init_check")
    assert "if a != b:" in source
    module.Sampler(a=3, b=3)
    with pytest.raises(ValueError, match="a must equal b .reparameterize's mean and log-variance"):
        module.Sampler(a=3, b=4)


def test_summary_counts_no_parameters_of_its_own() -> None:
    traced = trace(parse(PLAIN))
    merge = traced.layers[2]
    assert merge.call == "Reparameterize(2 branches)"
    assert merge.params.value == 2 * (16 * 4 + 4)  # its two branches' Linear layers
    assert merge.macs.value == merge.params.value  # the Linears (bias too); sampling: 0
    assert "Reparameterize(2 branches)" in render_summary(traced)


def _copied(generated: nn.Module, latent: int, hidden: int) -> _Reference:
    reference = _Reference(latent, hidden)
    ours = generated.state_dict()
    assert [tuple(v.shape) for v in ours.values()] == [
        tuple(v.shape) for v in reference.state_dict().values()
    ]
    reference.load_state_dict(dict(zip(reference.state_dict(), ours.values(), strict=True)))
    return reference


@pytest.mark.parametrize(("latent", "hidden"), [(4, 16), (2, 5)])
def test_the_helper_in_self_model_equals_hand_written_torch(
    tmp_path: Path, latent: int, hidden: int
) -> None:
    source, module = _generate(tmp_path, PLAIN, f"plain_{latent}_{hidden}")
    assert "class Reparameterize(nn.Module):" in source and "Reparameterize(\n" in source
    torch.manual_seed(0)
    model = module.Sampler(latent=latent, hidden=hidden)
    reference = _copied(model, latent, hidden)
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x)[0])
        torch.manual_seed(7)
        ours = model.train()(x)
        torch.manual_seed(7)
        theirs = reference.train()(x)[0]
        assert torch.equal(ours, theirs)
        assert not torch.equal(ours, model.eval()(x))  # training mode does sample


@pytest.mark.parametrize(("latent", "hidden"), [(4, 16), (3, 7)])
def test_split_into_statements_when_a_head_reads_a_branch(
    tmp_path: Path, latent: int, hidden: int
) -> None:
    source, module = _generate(tmp_path, HEADS, f"split_{latent}_{hidden}")
    assert "z_mu + torch.randn_like(z_mu) * torch.exp(0.5 * z_logvar)" in source
    assert "class Reparameterize" not in source  # the expression in forward, no helper
    assert "return SplitOutput(out=features, mu=z_mu, logvar=z_logvar)" in source
    torch.manual_seed(0)
    model = module.Split(latent=latent, hidden=hidden)
    reference = _copied(model, latent, hidden)
    x = torch.randn(3, 8)
    with torch.no_grad():
        for training in (False, True):
            torch.manual_seed(11)
            ours = model.train(training)(x)
            torch.manual_seed(11)
            theirs = reference.train(training)(x)
            for name, a, b in zip(ours._fields, ours, theirs, strict=True):
                assert torch.equal(a, b), (training, name)
    scripted = torch.jit.script(model.train())
    torch.manual_seed(3)
    got = scripted(x)
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(got, model(x), strict=True))


def test_an_in_place_layer_after_it_cannot_change_a_heads_mean() -> None:
    """In eval mode the merge's output is mu itself, which head mu returns."""
    text = HEADS.replace("linear hidden\nhead out", "relu inplace=True\nlinear hidden\nhead out")
    with pytest.raises(SeqgenError, match="inplace=True here overwrites"):
        trace(parse(text))


def test_with_a_branch_that_reads_another_input_each_branch_runs_once(tmp_path: Path) -> None:
    text = (
        "model Noisy(latent=4)\ninput image 8\ninput noise 4\n\nlinear 16\nreparameterize:\n"
        "    branch:\n        linear latent\n    branch from=noise:\n        linear latent\n"
        "linear 3\n"
    )
    source, module = _generate(tmp_path, text, "noisy")
    assert source.count("self.merge_0_0(x)") == source.count("self.merge_0_1(noise)") == 1
    torch.manual_seed(0)
    model = module.Noisy(latent=5)
    image, noise = torch.randn(3, 8), torch.randn(3, 4)
    with torch.no_grad():
        mu = model.merge_0_0(model.trunk_0(image))
        logvar = model.merge_0_1(noise)
        assert torch.equal(model.eval()(image=image, noise=noise), model.trunk_1(mu))
        torch.manual_seed(4)
        got = model.train()(image=image, noise=noise)
        torch.manual_seed(4)
        std = torch.exp(0.5 * logvar)
        assert torch.equal(got, model.trunk_1(mu + torch.randn_like(std) * std))
