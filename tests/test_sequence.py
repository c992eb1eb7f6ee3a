"""Sequence models (issue #11): generated modules against hand-written torch references.

Each spec is generated, imported and compared with the same architecture written directly in
torch: parameter counts (also at non-default parameter values), output shapes, and for the
recurrent ones the outputs themselves, with the reference's weights copied in.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from seqgen.api import generate, options_for, trace_spec
from seqgen.errors import SeqgenError
from seqgen.lang.parser import parse
from seqgen.project.write import write_files


def _generate(text: str, tmp_path: Path, name: str) -> ModuleType:
    path = tmp_path / f"{name}.seq"
    path.write_text(text, encoding="utf-8")
    result = generate(str(path), options_for(str(path), str(tmp_path)))
    write_files(list(result.files))
    spec = importlib.util.spec_from_file_location(f"seq_{name}", result.files[0].path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _copy(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters in registration order (both modules register them alike)."""
    ps, pd = list(src.parameters()), list(dst.parameters())
    assert [p.shape for p in ps] == [p.shape for p in pd]
    with torch.no_grad():
        for a, b in zip(ps, pd):
            b.copy_(a)


BILSTM = """model BiLSTM(vocab=500, embed=24, hidden=32, num_classes=5)
input (seq_len=12) dtype=long
embedding vocab embed padding_idx=0
lstm hidden bidirectional=True take=hidden
dropout 0.3
linear num_classes
"""


class BiLSTMRef(nn.Module):
    def __init__(
        self, vocab: int = 500, embed: int = 24, hidden: int = 32, num_classes: int = 5
    ) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(self.emb(x))
        return self.fc(torch.cat([h[-2], h[-1]], dim=-1))


def test_bilstm_classifier_matches_torch(tmp_path: Path) -> None:
    gen = _generate(BILSTM, tmp_path, "bilstm")
    for kw in ({}, {"vocab": 77, "embed": 9, "hidden": 13, "num_classes": 3}):
        ref, ours = BiLSTMRef(**kw).eval(), gen.BiLSTM(**kw).eval()
        assert _count(ours) == _count(ref)
        _copy(ref, ours)
        x = torch.randint(0, kw.get("vocab", 500), (3, 7))
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref(x))
    assert _count(gen.BiLSTM()) == 500 * 24 + 2 * (4 * 32 * (24 + 32) + 8 * 32) + 64 * 5 + 5


GRU_TAGGER = """model Tagger(vocab=300, embed=16, hidden=20, tags=7)
input (seq_len=10) dtype=long
embedding vocab embed
gru hidden num_layers=2 bidirectional=True dropout=0.2 take=all
linear tags
"""


class TaggerRef(nn.Module):
    def __init__(self, vocab: int = 300, embed: int = 16, hidden: int = 20, tags: int = 7) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(
            embed, hidden, num_layers=2, bidirectional=True, dropout=0.2, batch_first=True
        )
        self.out = nn.Linear(2 * hidden, tags)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.gru(self.emb(x))[0])


def test_gru_tagger_matches_torch(tmp_path: Path) -> None:
    gen = _generate(GRU_TAGGER, tmp_path, "tagger")
    for kw in ({}, {"embed": 5, "hidden": 6, "tags": 2}):
        ref, ours = TaggerRef(**kw).eval(), gen.Tagger(**kw).eval()
        assert _count(ours) == _count(ref)
        _copy(ref, ours)
        for length in (1, 10, 23):  # the sequence length stays free
            x = torch.randint(0, 300, (2, length))
            with torch.no_grad():
                torch.testing.assert_close(ours(x), ref(x))
            assert ours(x).shape == (2, length, kw.get("tags", 7))


TCN = """model TCN(channels=16, classes=4)
input (3, steps=60)
conv1d channels 3 p=1 weight_norm=True
relu
residual:
    conv1d channels 3 p=2 d=2 weight_norm=True
    relu
    conv1d channels 3 p=4 d=4 weight_norm=True
    relu
mean 2
linear classes weight_norm=True
"""


def _wn(m: nn.Module) -> nn.Module:
    return nn.utils.parametrizations.weight_norm(m)


def test_tcn_with_weight_norm_matches_torch(tmp_path: Path) -> None:
    gen = _generate(TCN, tmp_path, "tcn")
    for c, k in ((16, 4), (7, 2)):
        ref = nn.ModuleList(
            [
                _wn(nn.Conv1d(3, c, 3, padding=1)),
                _wn(nn.Conv1d(c, c, 3, padding=2, dilation=2)),
                _wn(nn.Conv1d(c, c, 3, padding=4, dilation=4)),
                _wn(nn.Linear(c, k)),
            ]
        )
        ours = gen.TCN(channels=c, classes=k).eval()
        assert _count(ours) == _count(ref)
        _copy(ref, ours)
        x = torch.randn(2, 3, 33)
        h = torch.relu(ref[0](x))
        h = h + torch.relu(ref[2](torch.relu(ref[1](h))))
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref[3](h.mean(2)))
    # weight_g adds out_channels (out_features) parameters to each wrapped layer
    plain = 3 * 16 * 3 + 16 + 2 * (16 * 16 * 3 + 16) + 16 * 4 + 4
    assert _count(gen.TCN()) == plain + 16 * 3 + 4


BERT = """model TinyBERT(vocab=1000, d=32, heads=4, ff=64, layers=2, classes=3)
input (seq_len=16) dtype=long
embedding vocab d
pos_embedding
layernorm
dropout 0.1
repeat layers:
    transformerencoderlayer nhead=heads dim_feedforward=ff activation='gelu'
select 1 0
linear d
tanh
linear classes
"""


def test_tiny_bert_counts_and_shapes_match_torch(tmp_path: Path) -> None:
    gen = _generate(BERT, tmp_path, "bert")
    for kw in ({}, {"d": 24, "heads": 3, "ff": 40, "layers": 3, "seq_len": 9}):
        d, ff, n = kw.get("d", 32), kw.get("ff", 64), kw.get("layers", 2)
        length = kw.get("seq_len", 16)
        layer = nn.TransformerEncoderLayer(
            d, kw.get("heads", 4), ff, activation="gelu", batch_first=True
        )
        ref = nn.ModuleList(
            [
                nn.Embedding(1000, d),
                nn.LayerNorm(d),
                nn.TransformerEncoder(layer, n, enable_nested_tensor=False),
                nn.Linear(d, d),
                nn.Linear(d, 3),
            ]
        )
        ours = gen.TinyBERT(**kw).eval()
        assert _count(ours) == _count(ref) + length * d  # + the position table
        with torch.no_grad():
            assert ours(torch.randint(0, 1000, (2, length))).shape == (2, 3)


def test_text_lstm_example_matches_the_issue(tmp_path: Path) -> None:
    text = (
        Path(__file__).resolve().parent.parent / "generated_examples" / "text_lstm.seq"
    ).read_text()
    model = trace_spec(parse(text, "text_lstm.seq"))
    call = model.layers[1].call
    assert call == (
        "RecurrentOutput(nn.LSTM(128, 256, num_layers=2, bidirectional=True, "
        "dropout=0.5, batch_first=True), take='hidden')"
    )
    ref = nn.ModuleList(
        [
            nn.Embedding(20000, 128, padding_idx=0),
            nn.LSTM(128, 256, num_layers=2, bidirectional=True, dropout=0.5),
            nn.Linear(512, 2),
        ]
    )
    assert model.total_params.value == _count(ref)
    assert model.total_params.code == "513 * num_classes + 128 * vocab + 2367488"
    assert [d.code for d in model.layers[0].out_shape] == ["N", "seq_len", "128"]


def test_tiny_vit_example_counts_equal_torch() -> None:
    text = (
        Path(__file__).resolve().parent.parent / "generated_examples" / "tiny_vit.seq"
    ).read_text()
    model = trace_spec(parse(text, "tiny_vit.seq"))
    dim, mlp = 64, 128
    ref = nn.ModuleList(
        [
            nn.Conv2d(3, dim, 4, stride=4),
            *(nn.TransformerEncoderLayer(dim, 4, mlp, norm_first=True) for _ in range(3)),
            nn.LayerNorm(dim),
            nn.Linear(dim, 10),
        ]
    )
    assert model.total_params.value == _count(ref) + dim + 65 * dim  # cls token, positions
    assert [d.code for d in model.out_shape] == ["N", "num_classes"]


@pytest.mark.parametrize(
    "kind, take, gates", [("rnn", "last", 1), ("gru", "hidden", 3), ("lstm", "all", 4)]
)
def test_recurrent_counts_and_takes(kind: str, take: str, gates: int) -> None:
    text = f"model M(h=6)\ninput (seq_len=5, 4)\n{kind} h num_layers=3 take={take}\n"
    model = trace_spec(parse(text, "t.seq"))
    ref = getattr(nn, kind.upper())(4, 6, num_layers=3)
    assert model.total_params.value == _count(ref)
    want = ["N", "seq_len", "h"] if take == "all" else ["N", "h"]
    assert [d.code for d in model.out_shape] == want


def test_lstm_projection_and_no_bias() -> None:
    text = "input 5x8\nlstm 16 proj_size=4 bias=False bidirectional=True take=last\n"
    model = trace_spec(parse(text, "t.seq"))
    ref = nn.LSTM(8, 16, proj_size=4, bias=False, bidirectional=True)
    assert model.total_params.value == _count(ref)
    assert [d.value for d in model.out_shape] == [2, 8]


def test_tensor_ops_shapes() -> None:
    text = (
        "model M(e=6)\ninput (seq_len=7, e)\nunsqueeze 1\npermute 0 3 2 1\nsqueeze 3\n"
        "transpose 1 2\nmean 1 keepdim=True\nsum -1\namax 1\n"
    )
    model = trace_spec(parse(text, "t.seq"))
    shapes = [[d.code for d in layer.out_shape] for layer in model.layers]
    assert shapes == [
        ["N", "1", "seq_len", "e"],
        ["N", "e", "seq_len", "1"],
        ["N", "e", "seq_len"],
        ["N", "seq_len", "e"],
        ["N", "1", "e"],
        ["N", "1"],
        ["N"],
    ]
    calls = [layer.call for layer in model.layers]
    assert calls[:4] == ["Unsqueeze(1)", "Permute(0, 3, 2, 1)", "Squeeze(3)", "Transpose(1, 2)"]


def test_scale_select_cls_and_positions() -> None:
    text = (
        "model M(e=8, temp=2.0)\ninput (seq_len=5, e)\nscale temp\ncls_token\npos_embedding\n"
        "pos_encoding max_len=64\nselect 1 -1\n"
    )
    model = trace_spec(parse(text, "t.seq"))
    assert [layer.call for layer in model.layers] == [
        "Scale(temp)",
        "ClsToken(e)",
        "PosEmbedding(seq_len + 1, e)",
        "PosEncoding(e, max_len=64)",
        "Select(1, -1)",
    ]
    assert model.total_params.code == "2 * e + e * seq_len"  # the token, the (L + 1, e) table
    assert model.total_params.value == 8 * 5 + 2 * 8


def test_select_past_a_symbolic_length_is_an_init_check(tmp_path: Path) -> None:
    text = "model M(e=4)\ninput (seq_len=10, e)\nselect 1 5\nlinear 2\n"
    model = trace_spec(parse(text, "t.seq"))
    assert any(c.symbol == "seq_len" and c.minimum == 6 for c in model.constraints)


def test_narrow_splits_a_concatenation_and_init_checks_its_bounds(tmp_path: Path) -> None:
    """`narrow 1 START LENGTH` picks a slice of the input (parameters as start and length): the
    generated model equals x.narrow by hand, and __init__ refuses a slice past the input."""
    text = (
        "model Split(a=3, b=5)\ninput (10,)\nconcat:\n    branch:\n        narrow 1 0 a\n"
        "        linear 4\n    branch:\n        narrow -1 a b\n"
    )
    module = _generate(text, tmp_path, "split")
    x = torch.randn(2, 10)
    for a, b in ((3, 5), (1, 9), (6, 2)):
        model = module.Split(a=a, b=b)
        linear = model.model[0].branches["0"][1]
        torch.testing.assert_close(
            model(x), torch.cat([linear(x.narrow(1, 0, a)), x.narrow(-1, a, b)], dim=1)
        )
    with pytest.raises(ValueError, match=r"a \+ b must be at most 10 .*got a=6, b=5"):
        module.Split(a=6, b=5)
    with pytest.raises(ValueError, match="b must be at least 1"):
        module.Split(a=1, b=0)


def test_pos_encoding_past_max_len_is_refused_for_a_symbolic_length() -> None:
    text = "model M(e=4)\ninput (seq_len=10, e)\npos_encoding max_len=32\n"
    model = trace_spec(parse(text, "t.seq"))
    assert any(c.symbol == "seq_len" and c.maximum == 32 for c in model.constraints)


@pytest.mark.parametrize(
    "text, message",
    [
        ("input 8x16\nlstm 16\n", "needs take="),
        ("input 3x8x8\nlstm 16 take=last\n", "rank 3"),
        ("input (seq_len=5)\nembedding 10 4\n", "dtype=long"),
        ("input (seq_len=5) dtype=long\nconv1d 4 3\n", "only an embedding"),
        ("input 8x16\ngru 8 take=all batch_first=False\n", "batch first"),
        ("input 8x16\nrnn 8 take=last proj_size=2\n", "proj_size"),
        ("input 8x16\ntransformerencoderlayer nhead=5\n", "divisible by nhead"),
        ("input 8x16\nselect 1 8\n", "at least 9"),
        ("input 8x16\nunsqueeze 0\n", "before the batch"),
        ("input 8x16\nrelu weight_norm=True\n", "linear and conv"),
        ("input 8x16\nlinear 4 weight_norm=1\n", "True or False"),
        ("input (seq_len=5) dtype=float64\nlinear 4\n", "unknown input dtype"),
    ],
)
def test_errors_are_located(text: str, message: str) -> None:
    with pytest.raises(SeqgenError) as info:
        trace_spec(parse(text, "t.seq"))
    assert message in str(info.value)
    assert info.value.location is not None and info.value.location.line >= 1


def test_input_dtype_parses() -> None:
    assert parse("input (L=5) dtype=int64\nembedding 4 2\n", "t.seq").input_dtype == "long"
    assert parse("input 3x4 dtype=float\nlinear 2\n", "t.seq").input_dtype == "float"
    assert parse("input 3x4  # dtype=long in a comment\nlinear 2\n", "t.seq").input_dtype == "float"


def test_generated_token_tests_sample_below_the_vocabulary(tmp_path: Path) -> None:
    _generate(BILSTM, tmp_path, "tok")
    test_text = (tmp_path / "test_tok.py").read_text()
    assert "torch.randint(0, vocab, shape, device=device)" in test_text


def test_written_input_size_and_d_model_are_checked() -> None:
    text = (
        "model M(e=8)\ninput (seq_len=6, e)\ntransformerencoderlayer d_model=e nhead=2\n"
        "lstm input_size=e hidden_size=4 take=last\n"
    )
    model = trace_spec(parse(text, "t.seq"))
    assert [layer.call for layer in model.layers] == [
        "nn.TransformerEncoderLayer(e, 2, batch_first=True)",
        "RecurrentOutput(nn.LSTM(e, 4, batch_first=True), take='last')",
    ]
    with pytest.raises(SeqgenError, match="input_size=7 disagrees with the traced input"):
        trace_spec(parse("input 6x8\nlstm 4 input_size=7 take=last\n", "t.seq"))


def test_reductions_over_several_dims() -> None:
    model = trace_spec(parse("input 3x4x5\nmean (1, 2)\n", "t.seq"))
    assert model.layers[0].call == "Mean((1, 2))"
    assert [d.value for d in model.out_shape] == [2, 5]


@pytest.mark.parametrize(
    "text, code",
    [
        ("input 6x4\nlstm 8 bidirectional=True take=last\nlinear 2\n", "W011"),
        ("input 6x4\ngru 8 dropout=0.3 take=hidden\nlinear 2\n", "W012"),
    ],
)
def test_sequence_lints(text: str, code: str) -> None:
    from seqgen.report.lint import lint

    assert [d.code.split()[0] for d in lint(trace_spec(parse(text, "t.seq")))] == [code]


def test_per_step_linear_in_a_sequence_model_is_not_linear_before_flatten() -> None:
    from seqgen.report.lint import lint

    text = "input (seq_len=6) dtype=long\nembedding 10 8\nlayernorm\nlinear 4\nrelu\nlinear 2\n"
    assert lint(trace_spec(parse(text, "t.seq"))) == []


FEED_FORWARD = """\
model Tx(vocab=100, d=32)
input (seq_len=16) dtype=long

block FF(d):
    residual:
        layernorm
        linear 4 * d
        gelu
        linear d

embedding vocab d
residual:
    layernorm
    linear 4 * d
    gelu
    linear d
add:
    branch:
        linear d
    branch:
        relu
        linear d
FF d
linear vocab
"""


def test_per_token_linear_inside_merges_and_blocks_is_not_linear_before_flatten() -> None:
    """A transformer's feed-forward in a residual, a branch or a block lints as at the top;
    the same stacks in an image model still get W002."""
    from seqgen.report.lint import lint

    assert lint(trace_spec(parse(FEED_FORWARD, "t.seq"))) == []
    image = "input 3x8x8\nconv2d 4 3\nresidual:\n    linear 6\n    linear 6\n"
    codes = [d.code.split()[0] for d in lint(trace_spec(parse(image, "t.seq")))]
    assert codes == ["W002"]  # the first linear reads the conv's output, the second a linear


def test_time_series_transformer_and_speech_models_count_like_torch() -> None:
    from seqgen.report.lint import lint

    ts = trace_spec(
        parse(
            "model TS(features=8, d=64, heads=4, layers=3, horizon=24)\n"
            "input (steps=96, features)\n"
            "linear d\nscale 8.0\npos_encoding max_len=512\nrepeat layers:\n"
            "    transformerencoderlayer nhead=heads dim_feedforward=4 * d dropout=0.1\n"
            "mean 1\nlinear horizon\n",
            "ts.seq",
        )
    )
    layer = nn.TransformerEncoderLayer(64, 4, 256, batch_first=True)
    ref = nn.ModuleList(
        [
            nn.Linear(8, 64),
            nn.TransformerEncoder(layer, 3, enable_nested_tensor=False),
            nn.Linear(64, 24),
        ]
    )
    assert ts.total_params.value == _count(ref)
    assert [d.code for d in ts.out_shape] == ["N", "horizon"]
    assert lint(ts) == []  # a linear on (N, steps, features) is per step here
    speech = trace_spec(
        parse(
            "model Speech(n_mels=64, hidden=128, tokens=29)\ninput (1, n_mels, frames=200)\n"
            "conv2d 32 3 p=1 bias=False\nbatchnorm2d\nrelu\nmaxpool2d (2, 1)\npermute 0 3 1 2\n"
            "flatten 2\ngru hidden num_layers=2 bidirectional=True take=all\nlinear tokens\n",
            "speech.seq",
        )
    )
    ref = nn.ModuleList(
        [
            nn.Conv2d(1, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.GRU(32 * 32, 128, num_layers=2, bidirectional=True),
            nn.Linear(256, 29),
        ]
    )
    assert speech.total_params.value == _count(ref)
    assert [d.code for d in speech.out_shape] == ["N", "frames", "tokens"]


@pytest.mark.parametrize("take", ["all", "last"])
def test_recurrent_layers_never_step_through_a_long_sample(
    take: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trace and its self-check prove a recurrent rule on a few steps: a 1000-step sample
    costs what a short one does (torch's meta RNN kernels step in Python)."""
    from seqgen.layers.ops.recurrent import CONFIRM_LENGTH
    from seqgen.runtime import sequence as runtime

    lengths: list[int] = []
    forward = runtime.RecurrentOutput.forward

    def recording(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        lengths.append(int(x.shape[1]))
        return forward(self, x)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime.RecurrentOutput, "forward", recording)
    text = (
        "model L(vocab=50, hid=8)\ninput (1000,) dtype=long\nembedding vocab 16\n"
        f"lstm hid num_layers=2 take={take}\nflatten\nlinear 3\n"
    )
    traced = trace_spec(parse(text))
    assert lengths and max(lengths) <= CONFIRM_LENGTH
    want = (2, 1000, 8) if take == "all" else (2, 8)
    assert tuple(d.value for d in traced.layers[1].out_shape) == want


def test_token_ids_follow_an_embedding_size_set_by_a_named_size(tmp_path: Path) -> None:
    # `embedding h + 1 6`: the vocabulary follows the input's length, so test_h_sizes samples
    # ids below h + 1 at each h (it sampled below the default's 11, an IndexError at h=1;
    # found by fuzz/differential.py --pytest, seed 103 spec 6)
    from conftest import run_generated_tests

    _generate(
        "model M\ninput (h=10,) dtype=long\nembedding h + 1 6\nflatten\nlinear 3\n", tmp_path, "v"
    )
    text = (tmp_path / "test_v.py").read_text(encoding="utf-8")
    assert "x = sample_input(input_shape(2, h=h), h=h)" in text
    run_generated_tests(tmp_path / "test_v.py")
