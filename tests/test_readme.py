"""The README's code that users copy is run here, against the committed generated model."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, ROOT, isolated_imports
from torch import nn


def readme_block(marker: str) -> str:
    """The fenced code block right after `<!-- tested: MARKER -->` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- tested: {marker} -->\n```\w*\n(.*?)```", text, re.DOTALL)
    assert match is not None, f"README.md has no block marked {marker!r}"
    return match.group(1)


def test_subclassing_snippet_customises_the_generated_model(tmp_path: Path) -> None:
    (tmp_path / "custom.py").write_text(readme_block("subclass"), encoding="utf-8")
    with isolated_imports(tmp_path, first_on_path=tmp_path):
        sys.path.insert(1, str(EXAMPLES))
        from cnn import CNN
        from custom import InitializedCNN

        torch.manual_seed(0)
        model = InitializedCNN(num_classes=7).eval()
        plain = CNN(num_classes=7)
        assert list(model.state_dict()) == list(plain.state_dict())
        count = sum(p.numel() for p in model.parameters())
        assert count == sum(p.numel() for p in plain.parameters())
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(torch.count_nonzero(m.bias) == 0 for m in convs)
        x = torch.randn(2, 3, 32, 32)
        assert model(x).shape == (2, 7) and model.features(x).shape == (2, 128)
        with pytest.raises(ValueError):
            InitializedCNN(num_classes=0)


def test_sequence_example_is_the_committed_spec() -> None:
    committed = (EXAMPLES / "text_lstm.seq").read_text(encoding="utf-8")
    assert readme_block("text_lstm") == committed


def test_check_example_is_in_the_committed_model() -> None:
    committed = (EXAMPLES / "resnet_block.py").read_text(encoding="utf-8")
    assert readme_block("check") in committed
