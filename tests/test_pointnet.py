"""PointNet's classifier written as specs (issue 19's third reference): `bmm:` and `add_identity`.

tests/architectures/heads/pointnet_cls.seq is fxia22/pointnet.pytorch's
`PointNetCls(k, feature_transform=False)` and pointnet_cls_ft.seq the same with
`feature_transform=True`, compared with the hand-written reference in
tests/architectures/pointnet.py: the same parameter count (1,614,129 at k=40 without the feature
transform, as the issue states, and 3,471,473 with it; at other k too), the same output shape,
and, with the reference's weights copied in, the same log-probs in eval mode and in training mode
(batch statistics, and dropout 0.3 under the same seed), at k=40 and k=10 and at several point
counts (`n_pts` is a free named size of the input).

How the outputs correspond: the reference returns `(log_softmax(x, dim=1), trans, trans_feat)`.
Each spec's model returns the first, the log-probs, as one tensor: `trans` (the input
transform, the `trans` branch of the `bmm name=stn:` merge) and `trans_feat` (the feature
transform, branch `trans` of `bmm name=fstn:`) are computed inside the model but not returned,
which needs a head that reads a merge's branch; the reference's `trans_feat` is None without the
feature transform, and that spec has no such transform at all.
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
def test_output_shape_is_the_references(
    built: dict[bool, tuple[list[Path], ModuleType]], ft: bool, n_pts: int
) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 3, n_pts)
    with torch.no_grad():
        log_probs, trans, trans_feat = PointNetCls(k=10, feature_transform=ft).eval()(x)
        got = _model(built, ft, 10).eval()(x)
    assert isinstance(got, torch.Tensor) and got.shape == log_probs.shape == (3, 10)
    assert trans.shape == (3, 3, 3)
    assert (trans_feat is None) if not ft else (trans_feat.shape == (3, 64, 64))


@pytest.mark.parametrize("ft", [False, True])
@pytest.mark.parametrize(
    ("k", "n_pts"), [(40, 1), (40, 64), (10, 7), pytest.param(40, 2500, marks=pytest.mark.slow)]
)
def test_same_log_probs_as_the_reference_with_its_weights(
    built: dict[bool, tuple[list[Path], ModuleType]], ft: bool, k: int, n_pts: int
) -> None:
    reference, model = _pair(built, ft, k)
    x = torch.randn(4, 3, n_pts)
    with torch.no_grad():
        expected, _, _ = reference.eval()(x)
        got = model.eval()(x)
        torch.testing.assert_close(got, expected)
        # training mode: BatchNorm on the batch's statistics, dropout 0.3 drawing the same mask
        # under the same seed (both call one nn.Dropout, at the same point of the forward)
        torch.manual_seed(1)
        expected_train, _, _ = reference.train()(x)
        torch.manual_seed(1)
        got_train = model.train()(x)
    torch.testing.assert_close(got_train, expected_train)
    assert not torch.allclose(got_train, got, atol=1e-3)  # dropout and batch statistics did act
    assert torch.allclose(got.exp().sum(dim=1), torch.ones(4))  # log-probs


def test_the_transforms_are_bmm_merges_over_the_points(
    built: dict[bool, tuple[list[Path], ModuleType]],
) -> None:
    """The generated stn (and fstn) apply `trans` to the points, as the reference's PointNetfeat
    does: its `trans` equals the generated merge's `trans` branch, weights copied."""
    reference, model = _pair(built, True, 40)
    x = torch.randn(2, 3, 9)
    with torch.no_grad():
        _, trans, trans_feat = reference.eval()(x)
        stn = model.eval().model.stn
        assert torch.allclose(stn.branches.trans(x), trans, atol=1e-6)
        points = model.model[:5](x)  # stn, transpose, conv1d 64, batchnorm1d, relu
        fstn = model.model.fstn
        assert torch.allclose(fstn.branches.trans(points), trans_feat, atol=1e-6)
        assert torch.allclose(fstn(points), torch.bmm(points.transpose(1, 2), trans_feat))


def test_the_number_of_points_is_free_but_at_least_one(
    built: dict[bool, tuple[list[Path], ModuleType]],
) -> None:
    model = _model(built, False, 40).eval()
    with pytest.raises(ValueError, match=r"n_pts \(dim 2\) must be at least 1"):
        model(torch.randn(2, 3, 0))
    with pytest.raises(ValueError, match="input dim 1 must be 3"):
        model(torch.randn(2, 4, 10))


@pytest.mark.slow
@pytest.mark.parametrize("ft", [False, True])
def test_generated_tests_pass(built: dict[bool, tuple[list[Path], ModuleType]], ft: bool) -> None:
    files, _ = built[ft]
    run_generated_tests(*[f for f in files if f.name.startswith("test_")])
