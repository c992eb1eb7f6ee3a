"""seqgen's own symbolic sizes (seqgen/trace/sizes.py): the same expressions as torch's SymInt,
the fallback to torch's ShapeEnv where they cannot decide, and a cold trace without dynamo."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from seqgen.api import trace_spec
from seqgen.lang.parser import parse
from seqgen.layers import torch_rules
from seqgen.trace import model as trace_model
from seqgen.trace import symbolic as S

ROOT = Path(__file__).resolve().parent.parent


def _pair(session: S.AnySession) -> tuple[object, object]:
    return session.symbol("h", 11), session.symbol("k", 3, size=False)


@pytest.mark.parametrize(
    "build",
    [
        lambda h, k: (h + 2 * k - 3) // 2 + 1,
        lambda h, k: h * k - (h // k) * 5,
        lambda h, k: (h - 1) % 4 + h % k,
        lambda h, k: 7 - h,
        lambda h, k: -(-h // k),
        lambda h, k: S.sym_min((h + 1) // 2, (h - k) // 3 + 2),
        lambda h, k: 100 // (k + 1) + 3 % (h + 0),
    ],
)
def test_size_arithmetic_builds_what_a_symint_builds(build: object) -> None:
    """The light trace's sizes print and evaluate as torch's do: the same sympy expression."""
    light = build(*_pair(S.LightSession()))  # type: ignore[operator]
    full = build(*_pair(S.Session()))  # type: ignore[operator]
    assert S.expr_of(light) == S.expr_of(full)
    assert light.hint == int(full)  # type: ignore[union-attr]


def test_a_size_never_decides_a_branch_at_the_sample() -> None:
    h, _ = _pair(S.LightSession())
    assert (h == 12) is False  # false at the sample: nothing to fix
    assert h != 12
    with pytest.raises(S.NeedsShapeEnv):
        _ = h == 11  # true at the sample: torch would specialise h to 11
    for undecided in (lambda: h < 3, lambda: bool(h), lambda: int(h), lambda: h / 2):  # type: ignore[operator]
        with pytest.raises(S.NeedsShapeEnv):
            undecided()


@pytest.mark.parametrize(
    "cls, values, shape",
    [
        (nn.Linear, {"in_features": 5, "out_features": 7, "bias": False}, (2, 5)),
        (
            nn.Conv2d,
            {"in_channels": 6, "out_channels": 4, "kernel_size": (3, 2), "groups": 2},
            (2, 6, 9, 9),
        ),
        (
            nn.ConvTranspose1d,
            {"in_channels": 6, "out_channels": 9, "kernel_size": 4, "groups": 3},
            (2, 6, 9),
        ),
        (nn.BatchNorm3d, {"num_features": 5, "affine": True}, (2, 5, 3, 3, 3)),
        (nn.InstanceNorm2d, {"num_features": 5, "affine": True}, (2, 5, 3, 3)),
        (nn.LayerNorm, {"normalized_shape": (3, 4), "bias": False}, (2, 3, 4)),
        (nn.GroupNorm, {"num_groups": 2, "num_channels": 6, "affine": False}, (2, 6, 4)),
        (nn.RMSNorm, {"normalized_shape": 8}, (2, 8)),
        (nn.PReLU, {"num_parameters": 3}, (2, 3, 5)),
    ],
)
def test_parameter_formulas_match_torch(
    cls: type[nn.Module], values: dict[str, object], shape: tuple[int, ...]
) -> None:
    shapes = torch_rules.param_shapes(cls, values, shape)
    assert shapes is not None
    with torch.device("meta"):
        module = cls(**values)
    assert [(n, tuple(s)) for n, s in shapes.items()] == [
        (n, tuple(p.shape)) for n, p in module.named_parameters()
    ]


def test_a_layer_without_a_rule_is_traced_on_torchs_shape_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RNNCell has no size rule: the light trace gives way, and the ShapeEnv trace answers."""
    sessions: list[str] = []
    light, full = S.LightSession, S.Session

    monkeypatch.setattr(S, "LightSession", lambda: sessions.append("light") or light())
    monkeypatch.setattr(S, "Session", lambda: sessions.append("full") or full())
    traced = trace_spec(parse("model R(c=5)\ninput 6\nrnncell 6 8\nlinear c\n"))
    assert sessions == ["light", "full"]
    assert [d.code for d in traced.layers[0].out_shape] == ["N", "8"]
    assert traced.total_params.code == "9 * c + 128"  # 8 * (6 + 8 + 2), then 8 * c + c


def test_a_spec_with_rules_only_never_needs_the_shape_env(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("the ShapeEnv trace ran")

    monkeypatch.setattr(trace_model.S, "Session", refuse)
    text = (ROOT / "generated_examples" / "resnet_block.seq").read_text(encoding="utf-8")
    assert trace_spec(parse(text)).layers


@pytest.mark.slow  # a fresh interpreter: torch's import alone takes a second or more
def test_a_cold_trace_of_a_small_cnn_never_imports_dynamo() -> None:
    """The ShapeEnv, FakeTensorMode and meta kernels written in Python all import
    torch._dynamo, which costs about what `import torch` does (BENCHMARKS.md)."""
    code = textwrap.dedent(f"""\
        import sys
        from seqgen.api import trace_spec
        from seqgen.lang.parser import parse
        trace_spec(parse(open({str(ROOT / "generated_examples" / "cnn.seq")!r}).read()))
        print("torch._dynamo" in sys.modules)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
