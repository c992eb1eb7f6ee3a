"""The README's code that users copy is run here, against the committed generated model."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, ROOT, generated_module, isolated_imports
from torch import nn

from seqgen.api import generate, options_for


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


def missing_runs(snippet: str, generated: str) -> list[str]:
    """The runs of a README snippet's lines (split at lines with `...`, which stand for what the
    README leaves out) that are not, in this order, runs of the generated file's lines."""
    runs: list[list[str]] = [[]]
    for line in snippet.splitlines():
        if "..." in line:
            runs.append([])
        else:
            runs[-1].append(line)
    lines = generated.splitlines()
    start, missing = 0, []
    for run in filter(None, runs):
        found = next((i for i in range(start, len(lines)) if lines[i : i + len(run)] == run), None)
        if found is None:
            missing.append("\n".join(run))
        else:
            start = found + len(run)
    return missing


def test_the_generated_module_snippet_is_generated_code() -> None:
    generated = (EXAMPLES / "cnn.py").read_text(encoding="utf-8")
    assert missing_runs(readme_block("cnn_py"), generated) == []


def test_the_blocks_snippet_is_generated_code(tmp_path: Path) -> None:
    spec = tmp_path / "resnetish.seq"
    spec.write_text(readme_block("resnetish_seq"), encoding="utf-8")
    model = generate(str(spec), options_for(str(spec))).files[0]
    assert model.path.endswith("resnetish.py")
    assert missing_runs(readme_block("resnetish_py"), model.text) == []


def test_the_bmm_snippet_is_generated_code_and_multiplies_the_points(tmp_path: Path) -> None:
    spec = tmp_path / "transform.seq"
    spec.write_text(readme_block("bmm_seq"), encoding="utf-8")
    model = generate(str(spec), options_for(str(spec))).files[0]
    assert missing_runs(readme_block("bmm_py"), model.text) == []
    (tmp_path / "transform.py").write_text(model.text, encoding="utf-8")
    with isolated_imports(tmp_path, first_on_path=tmp_path):
        from transform import Transform

        for k, n_pts in ((3, 1024), (5, 7)):
            torch.manual_seed(k)
            net = Transform(k=k).eval()
            x = torch.randn(2, k, n_pts)
            matrix = net.model.stn.branches.matrix
            with torch.no_grad():
                conv, linear = matrix[0], matrix[3]
                by_hand = linear(conv(x).relu().amax(2)).view(2, k, k) + torch.eye(k)
                moved = torch.bmm(x.transpose(1, 2), by_hand).transpose(1, 2)
                torch.testing.assert_close(net(x), net.model[2](moved))
        with pytest.raises(ValueError, match="k must be at least 1"):
            Transform(k=0)


def test_check_example_is_in_the_committed_model() -> None:
    committed = (EXAMPLES / "resnet_block.py").read_text(encoding="utf-8")
    assert readme_block("check") in committed


def test_the_heads_example_is_the_committed_spec() -> None:
    committed = (EXAMPLES / "aux_heads.seq").read_text(encoding="utf-8")
    assert readme_block("aux_heads_seq") == committed


def test_the_heads_snippet_is_generated_code() -> None:
    generated = (EXAMPLES / "aux_heads.py").read_text(encoding="utf-8")
    assert missing_runs(readme_block("heads_forward"), generated) == []


def test_the_vae_example_is_the_committed_spec() -> None:
    committed = (EXAMPLES / "vae.seq").read_text(encoding="utf-8")
    assert readme_block("vae_seq") == committed


def test_the_vae_snippet_is_generated_code() -> None:
    generated = (EXAMPLES / "vae.py").read_text(encoding="utf-8")
    assert missing_runs(readme_block("vae_forward"), generated) == []


def test_the_two_input_example_is_the_committed_spec() -> None:
    committed = (EXAMPLES / "two_input.seq").read_text(encoding="utf-8")
    assert readme_block("two_input_seq") == committed


def test_the_packed_example_is_the_committed_spec() -> None:
    committed = (EXAMPLES / "text_lstm_packed.seq").read_text(encoding="utf-8")
    assert readme_block("text_lstm_packed_seq") == committed


def test_the_packed_snippet_is_generated_code() -> None:
    generated = (EXAMPLES / "text_lstm_packed.py").read_text(encoding="utf-8")
    assert missing_runs(readme_block("text_lstm_packed_forward"), generated) == []


def test_the_two_input_snippet_is_generated_code() -> None:
    generated = (EXAMPLES / "two_input.py").read_text(encoding="utf-8")
    assert missing_runs(readme_block("two_input_forward"), generated) == []


def test_the_loop_reads_snippet_is_generated_code(tmp_path: Path) -> None:
    """The BERT-style loop over a masked encoder layer, as README shows its generated code."""
    files, _ = generated_module(tmp_path, readme_block("loop_reads_seq"), "bert", "readme")
    assert missing_runs(readme_block("loop_reads_forward"), files[0].read_text()) == []
