"""Layers that read another input inside a `repeat depth:` loop at the trunk's top level: a
BERT-style classifier (`repeat depth:` over a `transformerencoderlayer ... key_padding_mask=mask`)
and a stack of packed LSTMs (`lstm ... lengths=lengths`), against hand-written references after
a weight copy; the generated loop (an nn.ModuleList, a plain `for` in forward), the rows of
`seqgen check`, the device check, and the refusals that remain (a block, a merge or a head).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import generated_module, run_generated_tests
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqgen.check.realize import verify_on_device
from seqgen.diagram import draw
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.report.rows import rows
from seqgen.trace.model import trace

BERT = """\
# a BERT-style text classifier: token ids and their padding mask, `depth` encoder layers
model BertClassifier(vocab=1000, dim=32, heads=4, ff=64, depth=2, num_classes=3)
input tokens (seq=16,) dtype=long
input mask (seq,) dtype=bool

embedding vocab dim padding_idx=0
pos_embedding
repeat depth:
    transformerencoderlayer heads dim_feedforward=ff dropout=0.0 key_padding_mask=mask
POOL
linear num_classes
"""
POOLS = {"cls": "select 1 0", "mean": "mean 1"}

PACKED = """\
model PackedStack(vocab=50, emb=5, hidden=6, depth=3, num_classes=3)
input tokens (seq_len=7,) dtype=long
input lengths () dtype=long

embedding vocab emb padding_idx=0
repeat depth:
    lstm hidden take=all lengths=lengths
select 1 0
linear num_classes
"""

SEVERAL = """\
model Several(dim=8, blocks=2, wide=12)
input tokens (seq=6,) dtype=long
input mask (seq,) dtype=bool

embedding 20 dim
repeat blocks:
    linear wide
    relu
    transformerencoderlayer 2 dim_feedforward=16 dropout=0.0 key_padding_mask=mask
mean 1
linear 3
"""


class BertReference(nn.Module):
    """An embedding, a learned position table, a ModuleList of encoder layers called with the
    padding mask, the first token's vector (or the mean over the steps) classified."""

    def __init__(
        self, vocab: int, dim: int, heads: int, ff: int, depth: int, num_classes: int, seq: int
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(1, seq, dim))
        self.layers = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.0, batch_first=True)
                for _ in range(depth)
            ]
        )
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None, pool: str) -> torch.Tensor:
        x = self.embedding(tokens) + self.pos
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=mask)
        return self.fc(x[:, 0] if pool == "cls" else x.mean(1))


class PackedReference(nn.Module):
    """An embedding, then `depth` LSTMs, each run on the batch packed by its lengths."""

    def __init__(self, vocab: int, emb: int, hidden: int, depth: int, num_classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        self.layers = nn.ModuleList(
            [nn.LSTM(emb if i == 0 else hidden, hidden, batch_first=True) for i in range(depth)]
        )
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens)
        for lstm in self.layers:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = lstm(packed)
            x, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
        return self.fc(x[:, 0])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[Path], ModuleType]]:
    out = tmp_path_factory.mktemp("loop_reads")
    specs = {f"bert_{k}": BERT.replace("POOL", v) for k, v in POOLS.items()}
    specs |= {"packed": PACKED, "several": SEVERAL}
    return {name: generated_module(out, text, name, "loop_reads") for name, text in specs.items()}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _padded(vocab: int, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids at varied lengths (the first full, one of 1), and the same ids with other
    garbage at the padded steps."""
    torch.default_generator.manual_seed(1)
    lengths = torch.tensor([length, 1, max(1, length // 2), max(1, length - 3), 2])
    tokens = torch.randint(1, vocab, (len(lengths), length))
    garbage = tokens.clone()
    for row, n in enumerate(lengths.tolist()):
        tokens[row, n:] = 0
        garbage[row, n:] = torch.randint(1, vocab, (length - n,))
    return tokens, lengths, garbage


BERT_VALUES = [
    {"vocab": 1000, "dim": 32, "heads": 4, "ff": 64, "depth": 2, "num_classes": 3, "seq": 16},
    {"vocab": 1000, "dim": 32, "heads": 4, "ff": 64, "depth": 3, "num_classes": 3, "seq": 16},
    {"vocab": 23, "dim": 12, "heads": 3, "ff": 7, "depth": 3, "num_classes": 2, "seq": 9},
]


@pytest.mark.parametrize("values", BERT_VALUES)
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_bert_classifier_equals_the_reference(
    built: dict[str, tuple[list[Path], ModuleType]], values: dict[str, int], pool: str
) -> None:
    torch.default_generator.manual_seed(0)
    reference = BertReference(**values).eval()
    model = built[f"bert_{pool}"][1].BertClassifier(**values).eval()
    assert _count(model) == _count(reference)
    assert len(model.layers) == values["depth"]
    # the encoder's keys are the reference's own; the rest by position (embedding, table, fc)
    theirs = reference.state_dict()
    ours = model.state_dict()
    renamed = {"trunk_0.0.weight": "embedding.weight", "trunk_0.1.weight": "pos"}
    renamed |= {"trunk_1.1.weight": "fc.weight", "trunk_1.1.bias": "fc.bias"}
    assert set(ours) == {*(k for k in theirs if k.startswith("layers.")), *renamed}
    model.load_state_dict({k: theirs[renamed.get(k, k)] for k in ours})
    tokens, lengths, garbage = _padded(values["vocab"], values["seq"])
    mask = torch.arange(values["seq"]) >= lengths[:, None]
    with torch.no_grad():
        want = reference(tokens, mask, pool)
        got = model(tokens, mask)
        assert got.shape == (5, values["num_classes"])
        torch.testing.assert_close(got, want)
        unmasked = reference(tokens, None, pool)
        assert not torch.allclose(got[1:], unmasked[1:], atol=1e-4)  # the mask reached them all
        if pool == "cls":  # the first step's vector never attends to the padded steps
            torch.testing.assert_close(model(garbage, mask), want)


@pytest.mark.parametrize("values", [{"depth": 3}, {"depth": 1}, {"emb": 4, "hidden": 9}])
def test_packed_lstm_stack_equals_the_reference(
    built: dict[str, tuple[list[Path], ModuleType]], values: dict[str, int]
) -> None:
    full = {"vocab": 50, "emb": 5, "hidden": 6, "depth": 3, "num_classes": 3} | values
    torch.default_generator.manual_seed(0)
    reference = PackedReference(**full).eval()
    model = built["packed"][1].PackedStack(**full).eval()
    assert _count(model) == _count(reference)
    theirs, ours = list(reference.state_dict().values()), model.state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs]
    model.load_state_dict(dict(zip(ours, theirs, strict=True)))
    tokens, lengths, garbage = _padded(50, 7)
    with torch.no_grad():
        want = reference(tokens, lengths)
        torch.testing.assert_close(model(tokens, lengths), want)
        torch.testing.assert_close(model(garbage, lengths), want)  # padding never reaches it


def test_the_loop_is_a_module_list_and_a_plain_for(
    built: dict[str, tuple[list[Path], ModuleType]],
) -> None:
    source = built["bert_cls"][0][0].read_text()
    assert "        self.layers = nn.ModuleList(\n            [\n" in source
    assert "                for _ in range(depth)\n" in source
    assert (
        "        x: torch.Tensor = self.trunk_0(tokens)\n"
        "        for layer in self.layers:\n"
        "            x = layer(x, src_key_padding_mask=mask)\n"
        "        x = self.trunk_1(x)\n"
    ) in source
    packed = built["packed"][0][0].read_text()  # the first pass changes the shape: apart
    assert '                    nn.LSTM(emb, hidden, batch_first=True), take="all"\n' in packed
    assert "for _ in range(depth - 1)" in packed
    assert "            x = layer(x, lengths)\n" in packed
    several = built["several"][0][0].read_text()  # one statement per layer of a pass
    assert (
        "        for block in self.layers:\n"
        "            x = block[0](x)  # type: ignore[index]\n"
        "            x = block[1](x)  # type: ignore[index]\n"
        "            x = block[2](x, src_key_padding_mask=mask)  # type: ignore[index]\n"
    ) in several
    model = built["several"][1].Several(blocks=3).eval()
    tokens = torch.randint(0, 20, (2, 6))
    mask = torch.tensor([[False] * 6, [False] * 3 + [True] * 3])
    assert model(tokens, mask).shape == (2, 3)
    assert [len(block) for block in model.layers] == [3, 3, 3]


def test_the_loops_script(built: dict[str, tuple[list[Path], ModuleType]]) -> None:
    """torch.jit.script compiles each loop (a pass of one layer, of several, packed) and the
    scripted model agrees with the eager one."""
    tokens = torch.randint(1, 20, (3, 7))
    mask = torch.arange(7) >= torch.tensor([7, 2, 5])[:, None]
    cases = [
        (built["bert_cls"][1].BertClassifier(vocab=20, seq=7), mask),
        (built["several"][1].Several(blocks=3), mask[:, :6]),
        (built["packed"][1].PackedStack(), torch.tensor([7, 2, 5])),
    ]
    for model, read in cases:
        model.eval()
        x = tokens[:, : read.shape[1]] if read.dim() == 2 else tokens
        with torch.no_grad():
            torch.testing.assert_close(torch.jit.script(model)(x, read), model(x, read))


def test_check_rows_and_counts_follow_the_loop() -> None:
    traced = trace(parse(BERT.replace("POOL", "select 1 0").replace("depth=2", "depth=3")))
    table = rows(traced)
    loop = next(r for r in table if r.line == 8)
    assert loop.label.startswith("nn.ModuleList([nn.TransformerEncoderLayer(dim, heads")
    assert loop.label.endswith(" for _ in range(depth)])")
    assert [r.depth for r in table if r.line == 9] == [1, 1, 1]
    reference = BertReference(1000, 32, 4, 64, 3, 3, 16)
    assert sum(r.params for r in table if r.depth == 0) == _count(reference)
    for text in (BERT.replace("POOL", "mean 1"), PACKED, SEVERAL):
        verify_on_device(trace(parse(text)), "cpu")
    mermaid = draw(traced)  # the mask's box joins the layer inside the loop's frame
    frame = mermaid.split('subgraph g0["x depth"]')[1].split("end")[0]
    mask = re.search(r'(n\d+)\(\["input mask<br/>\(N, seq\)"\]\)', frame)
    layer = re.search(r'(n\d+)\["TransformerEncoderLayer\(dim, heads', frame)
    assert mask is not None and layer is not None
    assert f"{mask[1]} --> {layer[1]}" in mermaid


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("repeat depth:\n    residual:\n        LAYER\n", 7),
        ("head aux:\n    repeat depth:\n        LAYER\n    linear 2\n", 7),
        ("block B(d=2):\n    repeat d:\n        LAYER\nB\n", 7),
    ],
)
def test_deeper_than_a_top_level_loop_is_refused(body: str, line: int) -> None:
    layer = "transformerencoderlayer 2 key_padding_mask=mask"
    text = (
        "model M(depth=2)\ninput tokens (seq=6,) dtype=long\ninput mask (seq,) dtype=bool\n"
        "embedding 20 8\n" + body.replace("LAYER", layer) + "linear 3\n"
    )
    with pytest.raises(SeqgenError) as info:
        parse(text)
    rendered = info.value.render()
    assert "only supported at the trunk's top level or in a `repeat` there" in rendered
    assert f"<spec>:{line}:" in rendered


@pytest.mark.parametrize(
    ("read", "message"),
    [
        ("input mask (7,) dtype=bool", "the mask must be (N, seq)"),
        ("input mask (seq,)", "input 'mask' must be dtype=bool, it is float32"),
    ],
)
def test_the_trace_checks_what_a_loop_reads(read: str, message: str) -> None:
    text = BERT.replace("POOL", "select 1 0").replace("input mask (seq,) dtype=bool", read)
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    rendered = info.value.render()
    assert message in rendered
    assert "<spec>:9:" in rendered  # the keyword, in the loop's body


def test_a_literal_repeat_unrolls_into_top_level_readers(tmp_path: Path) -> None:
    # a literal count unrolls where it is: its readers are top-level ones, or a loop's
    inner = "repeat 2:\n    repeat blocks:\n        relu\n        LAYER\n"
    layer = "transformerencoderlayer 2 key_padding_mask=mask"
    text = (
        "model Nest(blocks=2)\ninput tokens (seq=6,) dtype=long\ninput mask (seq,) dtype=bool\n"
        "embedding 20 8\n" + inner.replace("LAYER", layer) + "mean 1\nlinear 3\n"
    )
    source = generated_module(tmp_path, text, "nest", "loop_reads")[0][0].read_text()
    assert "for block in self.layers_1:" in source
    assert "x = block[1](x, src_key_padding_mask=mask)  # type: ignore[index]" in source
    text = SEVERAL.replace("repeat blocks:", "repeat 2:").replace("model Several(", "model Lit(")
    files, module = generated_module(tmp_path, text, "lit", "loop_reads")
    source = files[0].read_text()
    assert "x = self.transformerencoderlayer_3(x, src_key_padding_mask=mask)" in source
    assert "x = self.transformerencoderlayer_6(x, src_key_padding_mask=mask)" in source
    mask = torch.zeros(2, 6, dtype=torch.bool)
    assert module.Lit().eval()(torch.randint(0, 20, (2, 6)), mask).shape == (2, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert_cls", "packed", "several"])
def test_generated_tests_pass(built: dict[str, tuple[list[Path], ModuleType]], name: str) -> None:
    run_generated_tests(built[name][0][1])
