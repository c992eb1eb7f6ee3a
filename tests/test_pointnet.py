"""PointNet's classifier written as specs (issue 19's third reference): `bmm:`, `add_identity`,
and heads that read a merge's branch.

tests/architectures/heads/pointnet_cls.seq is fxia22/pointnet.pytorch's
`PointNetCls(k, feature_transform=False)` and pointnet_cls_ft.seq the same with
`feature_transform=True`, compared with the hand-written reference in
tests/architectures/pointnet.py: the same parameter count (1,614,129 at k=40 without the feature
transform, as the issue states, and 3,471,473 with it; at other k too), the same output shapes,
and, with the reference's weights copied in, the same outputs in eval mode and in training mode
(batch statistics, and dropout 0.3 under the same seed), at k=40 and k=10 and at several point
counts (`n_pts` is a free named size of the input).

How the outputs correspond: the reference returns the tuple `(log_softmax(x, dim=1), trans,
trans_feat)`; the generated model a NamedTuple whose fields are the spec's heads, in order:
`log_probs` (the classifier on the global feature), `trans` (`head trans from=stn.trans`: the
input transform, the `trans` branch of the `bmm name=stn:` merge that applies it to the points)
and, in pointnet_cls_ft.seq only, `trans_feat` (`from=fstn.trans`, the feature transform). The
reference's `trans_feat` is None without the feature transform: that spec has no such transform,
so no such head, and its NamedTuple has the two fields `log_probs` and `trans`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import run_generated_tests
from torch import nn

from seqgen.api import generate, options_for
from seqgen.project.write import write_files
from tests.architectures.pointnet import PointNetCls

HEADS = Path(__file__).resolve().parent / "architectures" / "heads"
SPECS = {False: HEADS / "pointnet_cls.seq", True: HEADS / "pointnet_cls_ft.seq"}
CLASSES = {False: "PointNetCls", True: "PointNetClsFT"}
HEADS_OF = {False: ("log_probs", "trans"), True: ("log_probs", "trans", "trans_feat")}
# the layers that hold weights or running statistics, which a weight copy pairs one to one
WEIGHTED = (nn.Conv1d, nn.Linear, nn.BatchNorm1d)


def _build(out: Path, spec_path: Path) -> tuple[list[Path], ModuleType]:
    spec = out / spec_path.name
    spec.write_text(spec_path.read_text(encoding="utf-8"), encoding="utf-8")
    result = generate(str(spec), options_for(str(spec), str(out)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(f"gen_{spec.stem}", result.files[0].path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return [Path(f.path) for f in result.files], module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, tuple[list[Path], ModuleType]]:
    """Both specs as committed: their files and their imported model modules."""
    return {ft: _build(tmp_path_factory.mktemp(path.stem), path) for ft, path in SPECS.items()}


def _model(built: dict[bool, tuple[list[Path], ModuleType]], ft: bool, k: int) -> nn.Module:
    model: nn.Module = getattr(built[ft][1], CLASSES[ft])(k=k)
    return model


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _in_call_order(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The layers with weights, in the order a forward pass calls them (each once)."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m))
        for m in model.modules()
        if isinstance(m, WEIGHTED)
    ]
    was = model.training
    with torch.no_grad():
        model.eval()(x)
    model.train(was)
    for hook in hooks:
        hook.remove()
    assert len(order) == len({id(m) for m in order})
    return order


def _copy_weights(reference: nn.Module, model: nn.Module) -> None:
    """Copy the reference's parameters and buffers into the generated model, layer by layer in
    call order (the reference registers its convs, then its linears, then its BatchNorms; the
    generated model in the order of the spec), types and shapes checked."""
    x = torch.randn(2, 3, 5)
    theirs, ours = _in_call_order(reference, x), _in_call_order(model, x)
    assert len(theirs) == len(ours)
    for ref, mine in zip(theirs, ours, strict=True):
        assert type(ref) is type(mine), (ref, mine)
        state = ref.state_dict()
        assert {k: v.shape for k, v in state.items()} == {
            k: v.shape for k, v in mine.state_dict().items()
        }, (ref, mine)
        mine.load_state_dict(state)
    assert len(theirs) == len([m for m in model.modules() if isinstance(m, WEIGHTED)])


def _vary_batchnorms(model: nn.Module) -> None:
    """Fresh BatchNorms are weight 1, bias 0, running stats 0 / 1: make them differ per channel
    so that one copied to the wrong place shows."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                assert m.running_mean is not None and m.running_var is not None
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def _pair(
    built: dict[bool, tuple[list[Path], ModuleType]], ft: bool, k: int
) -> Iterator[nn.Module]:
    torch.manual_seed(k)
    reference = PointNetCls(k=k, feature_transform=ft)
    _vary_batchnorms(reference)
    model = _model(built, ft, k)
    _copy_weights(reference, model)
    yield reference
    yield model


@pytest.mark.parametrize(
    ("ft", "k", "expected"),
    [(False, 40, 1_614_129), (True, 40, 3_471_473), (False, 10, None), (True, 2, None)],
)
def test_parameter_count_equals_the_references(
    built: dict[bool, tuple[list[Path], ModuleType]], ft: bool, k: int, expected: int | None
) -> None:
    reference = PointNetCls(k=k, feature_transform=ft)
    if expected is not None:  # the 1,614,129 for PointNetCls(k=40)
        assert _count(reference) == expected
    assert _count(_model(built, ft, k)) == _count(reference)


@pytest.mark.parametrize("ft", [False, True])
@pytest.mark.parametrize("n_pts", [1, 7, 300])
def test_output_shapes_are_the_references(
    built: dict[bool, tuple[list[Path], ModuleType]], ft: bool, n_pts: int
) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 3, n_pts)
    with torch.no_grad():
        theirs = PointNetCls(k=10, feature_transform=ft).eval()(x)
        ours = _model(built, ft, 10).eval()(x)
    assert ours._fields == HEADS_OF[ft]
    assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in theirs if t is not None]
    assert [tuple(t.shape) for t in ours] == [(3, 10), (3, 3, 3), (3, 64, 64)][: len(ours)]
    assert (theirs[2] is None) is (not ft)


@pytest.mark.parametrize("ft", [False, True])
@pytest.mark.parametrize(
    ("k", "n_pts"), [(40, 1), (40, 64), (10, 7), pytest.param(40, 2500, marks=pytest.mark.slow)]
)
def test_same_outputs_as_the_reference_with_its_weights(
    built: dict[bool, tuple[list[Path], ModuleType]], ft: bool, k: int, n_pts: int
) -> None:
    reference, model = _pair(built, ft, k)
    x = torch.randn(4, 3, n_pts)
    with torch.no_grad():
        expected = [t for t in reference.eval()(x) if t is not None]
        got = model.eval()(x)
        assert len(got) == len(expected) == len(HEADS_OF[ft])
        for name, ours, theirs in zip(HEADS_OF[ft], got, expected, strict=True):
            torch.testing.assert_close(ours, theirs, msg=name)
        # training mode: BatchNorm on the batch's statistics, dropout 0.3 drawing the same mask
        # under the same seed (both call one nn.Dropout, at the same point of the forward)
        torch.manual_seed(1)
        expected_train = [t for t in reference.train()(x) if t is not None]
        torch.manual_seed(1)
        got_train = model.train()(x)
    for name, ours, theirs in zip(HEADS_OF[ft], got_train, expected_train, strict=True):
        torch.testing.assert_close(ours, theirs, msg=name)
    # dropout and batch statistics did act; the outputs are log-probs
    assert not torch.allclose(got_train.log_probs, got.log_probs, atol=1e-3)
    assert torch.allclose(got.log_probs.exp().sum(dim=1), torch.ones(4))


def test_the_transforms_are_applied_to_the_points_by_bmm(
    built: dict[bool, tuple[list[Path], ModuleType]],
) -> None:
    """forward multiplies the points by the transforms it returns, as PointNetfeat does: the
    generated model's submodules run by hand reproduce its log-probs."""
    _, model = _pair(built, True, 40)
    model.eval()
    x = torch.randn(2, 3, 9)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(model.stn_trans(x), out.trans)
        points = model.trunk_0(torch.bmm(x.transpose(1, 2), out.trans))  # conv1d 64, bn, relu
        assert torch.equal(model.fstn_trans(points), out.trans_feat)
        features = model.trunk(torch.bmm(points.transpose(1, 2), out.trans_feat))
        torch.testing.assert_close(model.log_probs(features), out.log_probs)
        # the transforms start at the identity: zero their last linear and they are eye(k)
        for stn, size in ((model.stn_trans, 3), (model.fstn_trans, 64)):
            last = [m for m in stn.modules() if isinstance(m, nn.Linear)][-1]
            last.weight.zero_()
            last.bias.zero_()
            assert torch.equal(stn(x if size == 3 else points), torch.eye(size).expand(2, -1, -1))


def test_the_number_of_points_is_free_but_at_least_one(
    built: dict[bool, tuple[list[Path], ModuleType]],
) -> None:
    model = _model(built, False, 40).eval()
    assert model(torch.randn(2, 3, 1)).log_probs.shape == (2, 40)
    with pytest.raises(ValueError, match=r"n_pts \(dim 2\) must be at least 1"):
        model(torch.randn(2, 3, 0))
    with pytest.raises(ValueError, match="input dim 1 must be 3"):
        model(torch.randn(2, 4, 10))


@pytest.mark.slow
@pytest.mark.parametrize("ft", [False, True])
def test_generated_tests_pass(built: dict[bool, tuple[list[Path], ModuleType]], ft: bool) -> None:
    files, _ = built[ft]
    run_generated_tests(*[f for f in files if f.name.startswith("test_")])
