"""Issue 19's fourth reference: the LSTM text classifier with a lengths input (packed sequences),
and a transformer encoder layer with a key padding mask, against hand-written torch modules.

The specs in tests/architectures/inputs/ are generated with seqgen's API and compared with the
classic hand-written models below: the same parameter count, the same output shape, and, with
the reference's weights copied in, the same output on a batch of varied lengths whose padded
steps hold garbage (which packing, or the mask, must ignore: the output is unchanged when the
garbage changes, and differs from the model run without packing or mask), at the defaults and at
other parameter values; and (slow) the tests seqgen generates for each spec pass.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import run_generated_tests
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from seqgen.api import generate, options_for
from seqgen.project.write import write_files

SPECS = Path(__file__).resolve().parent / "architectures" / "inputs"


class LSTMClassifier(nn.Module):
    """The classic packed-LSTM classifier, as tutorials write it (bidirectional: the last
    layer's two final states concatenated, forward first)."""

    def __init__(
        self,
        vocab: int,
        emb: int,
        hidden: int,
        num_classes: int,
        num_layers: int = 1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        self.lstm = nn.LSTM(
            emb, hidden, num_layers=num_layers, batch_first=True, bidirectional=bidirectional
        )
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, pack: bool = True) -> torch.Tensor:
        embedded = self.embedding(x)
        if pack:
            packed = pack_padded_sequence(
                embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, (h_n, _) = self.lstm(packed)
        else:  # what a model that ignores lengths computes: padded steps included
            _, (h_n, _) = self.lstm(embedded)
        if self.lstm.bidirectional:
            return self.fc(torch.cat((h_n[-2], h_n[-1]), dim=1))
        return self.fc(h_n[-1])


class MaskedEncoder(nn.Module):
    """An embedding, one nn.TransformerEncoderLayer with a key padding mask, the first token's
    vector classified."""

    def __init__(self, vocab: int, d_model: int, nhead: int, dim_ff: int, num_classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model, padding_idx=0)
        self.encoder = nn.TransformerEncoderLayer(
            d_model, nhead, dim_ff, dropout=0.0, batch_first=True
        )
        self.fc = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.fc(self.encoder(self.embedding(x), src_key_padding_mask=mask)[:, 0])


def _build(out: Path, stem: str) -> tuple[list[Path], ModuleType]:
    spec = out / f"{stem}.seq"
    spec.write_text((SPECS / f"{stem}.seq").read_text(encoding="utf-8"), encoding="utf-8")
    result = generate(str(spec), options_for(str(spec), str(out)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(f"ref_{stem}", result.files[0].path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return [Path(f.path) for f in result.files], module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[Path], ModuleType]]:
    out = tmp_path_factory.mktemp("packed_reference")
    return {
        stem: _build(out, stem)
        for stem in ("lstm_classifier", "lstm_classifier_bi", "masked_encoder")
    }


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _copy_weights(reference: nn.Module, model: nn.Module) -> None:
    """Both register the same parameters in the same order (embedding, recurrent or encoder
    layer, classifier): copy them one by one, shapes checked."""
    theirs = list(reference.state_dict().values())
    ours = model.state_dict()
    assert len(theirs) == len(ours)
    for (key, mine), value in zip(ours.items(), theirs, strict=True):
        assert mine.shape == value.shape, key
    model.load_state_dict(dict(zip(ours, theirs, strict=True)))


def _padded_batch(vocab: int, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, varied lengths (the first full, one of 1), and the same ids with other garbage
    at the padded steps."""
    torch.default_generator.manual_seed(1)
    lengths = torch.tensor([length, 1, max(1, length // 2), max(1, length - 3), 2])
    tokens = torch.randint(1, vocab, (len(lengths), length))
    garbage = tokens.clone()
    for row, n in enumerate(lengths.tolist()):
        tokens[row, n:] = 0  # the usual padding id
        garbage[row, n:] = torch.randint(1, vocab, (length - n,))
    return tokens, lengths, garbage


LSTM_VALUES = [
    {"vocab": 5000, "emb": 100, "hidden": 128, "num_classes": 2},  # the defaults
    {"vocab": 37, "emb": 8, "hidden": 11, "num_classes": 5},
]


@pytest.mark.parametrize("values", LSTM_VALUES)
@pytest.mark.parametrize(
    ("stem", "bidirectional"), [("lstm_classifier", False), ("lstm_classifier_bi", True)]
)
def test_packed_lstm_classifier_equals_the_reference(
    built: dict[str, tuple[list[Path], ModuleType]],
    stem: str,
    bidirectional: bool,
    values: dict[str, int],
) -> None:
    module = built[stem][1]
    cls = module.BiLSTMClassifier if bidirectional else module.LSTMClassifier
    torch.default_generator.manual_seed(0)
    layers = 2 if bidirectional else 1
    reference = LSTMClassifier(**values, num_layers=layers, bidirectional=bidirectional).eval()
    model = cls(**values).eval()
    assert _count(model) == _count(reference)
    if values == LSTM_VALUES[0]:  # the counts the references print
        assert _count(model) == (1_131_298 if bidirectional else 618_018)
    _copy_weights(reference, model)
    tokens, lengths, garbage = _padded_batch(values["vocab"], 9)
    with torch.no_grad():
        want = reference(tokens, lengths)
        got = model(tokens, lengths)
        assert got.shape == (5, values["num_classes"])
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(model(garbage, lengths), want)  # padding never reaches it
        torch.testing.assert_close(model(tokens, lengths.to(torch.int32)), want)
        unpacked = reference(tokens, lengths, pack=False)
        assert not torch.allclose(got[1:], unpacked[1:], atol=1e-4)  # the short rows differ
        torch.testing.assert_close(got[0], unpacked[0])  # the full row is the same either way


@pytest.mark.parametrize(
    "values",
    [
        {"vocab": 1000, "d_model": 32, "nhead": 4, "dim_ff": 64, "num_classes": 3},
        {"vocab": 23, "d_model": 12, "nhead": 3, "dim_ff": 7, "num_classes": 2},
    ],
)
@pytest.mark.parametrize("training", [False, True])
def test_masked_encoder_equals_the_reference(
    built: dict[str, tuple[list[Path], ModuleType]], values: dict[str, int], training: bool
) -> None:
    torch.default_generator.manual_seed(0)
    reference = MaskedEncoder(**values).train(training)
    model = built["masked_encoder"][1].MaskedEncoder(**values).train(training)
    assert _count(model) == _count(reference)
    _copy_weights(reference, model)
    tokens, lengths, garbage = _padded_batch(values["vocab"], 8)
    mask = torch.arange(8) >= lengths[:, None]
    with torch.no_grad():
        want = reference(tokens, mask)
        got = model(tokens, mask)
        assert got.shape == (5, values["num_classes"])
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(model(garbage, mask), want)  # masked keys never count
        unmasked = reference(tokens, None)
        assert not torch.allclose(got[1:], unmasked[1:], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["lstm_classifier", "lstm_classifier_bi", "masked_encoder"])
def test_generated_tests_pass(built: dict[str, tuple[list[Path], ModuleType]], stem: str) -> None:
    run_generated_tests(built[stem][0][1])
