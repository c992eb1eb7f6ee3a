"""Layers that read another input beside their own: `lstm/gru/rnn H ... lengths=NAME` packs by
an (N,) lengths input, `transformerencoderlayer ... key_padding_mask=NAME` masks by an (N, L)
bool input; inputs of shape `()` and `dtype=bool`.

The parser's and the trace's located errors, the generated forward (the trunk split at such a
layer), the generated tests (valid lengths and masks, export marked xfail for packing), and the
device check on the packed path. tests/test_packed_reference.py compares the generated models
with hand-written references after a weight copy.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import generated_module, run_generated_tests
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqgen.check.realize import verify_on_device
from seqgen.errors import SeqgenError
from seqgen.ir import TracedLayer
from seqgen.lang.parser import parse
from seqgen.report.table import shape_table
from seqgen.runtime.sequence import PackedRecurrentOutput, RecurrentOutput
from seqgen.trace.model import trace

PACKED = """\
model Packed(vocab=50, hidden=6, num_classes=3)
input tokens (seq_len=7,) dtype=long
input lengths () dtype=long

embedding vocab 5 padding_idx=0
lstm hidden take=hidden lengths=lengths
linear num_classes
"""

MASKED = """\
model Masked(dim=8, num_classes=3)
input tokens (seq=6,) dtype=long
input mask (seq,) dtype=bool

embedding 20 dim
transformerencoderlayer 2 dim_feedforward=16 dropout=0.0 key_padding_mask=mask
mean 1
linear num_classes
"""


# two id towers scored by their product: the trunk starts from the first input's ids
TOWERS = """\
multiply name=towers:
    branch name=user:
        embedding 50 4
    branch name=item from=item:
        embedding 30 4
concat:
    branch:
        identity
    branch:
        linear 2
"""


def _generate(tmp_path: Path, text: str, name: str) -> tuple[list[Path], ModuleType]:
    return generated_module(tmp_path, text, name, "reads")


# ------------------------------------------------------------------------------ parser


def test_an_empty_shape_and_bool_are_inputs_after_the_first() -> None:
    spec = parse(PACKED)
    assert [(i.name, i.shape, i.dtype) for i in spec.inputs][1] == ("lengths", (), "long")
    lstm = spec.layers[1]
    assert [(k.name, getattr(k.value, "id", None)) for k in getattr(lstm, "reads", ())] == [
        ("lengths", "lengths")
    ]
    assert [k.name for k in getattr(lstm, "kwargs", ())] == ["take"]
    assert parse(MASKED).inputs[1].dtype == "bool"


def test_a_first_input_of_ids_may_be_empty() -> None:
    """`input user () dtype=long` first: one id per sample, (N,), which an embedding maps to
    (N, dim) (NeuMF, two-tower recommenders); a float `()` first is still refused."""
    spec = parse("model M\ninput user () dtype=long\ninput item () dtype=long\n" + TOWERS)
    assert [(i.name, i.shape, i.dtype) for i in spec.inputs] == [
        ("user", (), "long"),
        ("item", (), "long"),
    ]
    one = parse("input () dtype=long\nembedding 10 4\n")
    assert (one.input_shape, one.input_dtype) == ((), "long")


def test_a_model_on_first_input_ids_embeds_them(tmp_path: Path) -> None:
    text = "model Ids\ninput user () dtype=long\ninput item () dtype=long\n" + TOWERS
    _, module = _generate(tmp_path, text, "ids")
    model = module.Ids().eval()
    user, item = torch.tensor([3, 49, 0]), torch.tensor([29, 1, 7])
    towers = model.towers_user(user) * model.towers_item(item)
    assert towers.shape == (3, 4)
    expected = torch.cat([towers, model.trunk_0[0].branches["1"](towers)], dim=1)
    torch.testing.assert_close(model(user, item), expected)
    with pytest.raises(ValueError, match=r"expected a 1-d input user \(N,\), got \[3, 1\]"):
        model(user[:, None], item)


def test_a_mask_read_inside_a_merge_is_one_error() -> None:
    """The layer's own error, not also "input 'mask' is not read by any layer"."""
    text = MASKED.replace("transformerencoderlayer", "residual:\n    transformerencoderlayer", 1)
    with pytest.raises(SeqgenError) as info:
        parse(text)
    rendered = info.value.render()
    assert rendered.count("error:") == 1, rendered
    assert "only supported at the trunk's top level or in a `repeat` there" in rendered


def test_a_literal_repeat_of_masked_layers_is_unrolled_at_the_top_level(tmp_path: Path) -> None:
    """`repeat 2:` at the top level is unrolled there: each encoder layer reads the mask, as
    the two written out do (a BERT's encoder), with the same weights in the same order."""
    layer = "transformerencoderlayer 2 dim_feedforward=16 dropout=0.0 key_padding_mask=mask\n"
    looped = MASKED.replace(layer, "repeat 2:\n    " + layer + "    relu\n")
    written = MASKED.replace(layer, (layer + "relu\n") * 2)
    assert looped != MASKED and written != MASKED
    reads = [getattr(n, "reads", ()) != () for n in parse(looped).layers]
    assert reads == [False, True, False, True, False, False, False]
    _, module = _generate(tmp_path, looped, "looped")
    _, reference = _generate(tmp_path, written, "written")
    for dim in (8, 4):
        model, twin = module.Masked(dim=dim).eval(), reference.Masked(dim=dim).eval()
        twin.load_state_dict(model.state_dict())
        tokens = torch.randint(0, 20, (3, 6))
        mask = torch.tensor([[False] * 6, [False] * 4 + [True] * 2, [False] + [True] * 5])
        with torch.no_grad():
            out = model(tokens, mask)
            torch.testing.assert_close(out, twin(tokens, mask))
            assert not torch.allclose(out, model(tokens, torch.zeros_like(mask)))


def test_a_bad_first_input_is_one_error_not_a_cascade() -> None:
    """A first `input` line that fails still counts as the first: the lines after it are read as
    further inputs, not refused as the first again (or as unnamed seconds)."""
    with pytest.raises(SeqgenError) as info:
        parse("model M\ninput user ()\ninput item () dtype=long\n" + TOWERS)
    rendered = info.value.render()
    assert rendered.count("error:") == 1, rendered
    assert "<spec>:2:" in rendered and "the input shape is empty" in rendered
    assert "an input of `dtype=long`" in rendered


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("input ()\nlinear 2\n", "the input shape is empty", 1),
        ("input (4,) dtype=bool\nlinear 2\n", "the first input cannot be dtype=bool", 1),
        ("input a (4,)\ninput m (4,) dtype=int8\nlinear 2\n", "unknown input dtype 'int8'", 2),
        (
            "input a (4,)\ninput m (4,) dtype=bool\nadd:\n    branch:\n        relu\n"
            "    branch from=m:\n        relu\n",
            "input 'm' is dtype=bool, a mask",
            3,
        ),
        ("input a (4,)\ninput b ()\nlinear 2\n", "lengths=b", 2),  # the hint: read it so
        (
            "input t (5, 4)\ninput lengths () dtype=long\nresidual:\n"
            "    lstm 4 take=all lengths=lengths\n",
            "only supported at the trunk's top level",
            4,
        ),
        (
            "input t (5, 4)\ninput lengths () dtype=long\nlstm 4 take=all lengths=lengths\n"
            "linear lengths\n",
            "'lengths' is an input of the model, not a parameter",
            4,
        ),
        (
            "input t (5, 4)\ninput lengths () dtype=long\nlstm 4 take=all lengths=lenghts\n",
            "did you mean input 'lengths'?",
            3,
        ),
    ],
)
def test_misuse_is_a_located_syntax_error(text: str, message: str, line: int) -> None:
    with pytest.raises(SeqgenError) as info:
        parse(text)
    rendered = info.value.render()
    assert message in rendered
    assert f"<spec>:{line}:" in rendered


# ------------------------------------------------------------------------------ trace


@pytest.mark.parametrize(
    ("lines", "message", "line"),
    [
        (
            "input lengths () dtype=long\nlinear 4 bias=lengths\n",
            "linear's bias= cannot take input 'lengths'",
            4,
        ),
        (
            "input lengths () dtype=long\ngru 4 take=all lengths=n\nlstm 4 take=all "
            "lengths=lengths\n",
            "gru's lengths= names an input of the model, (N,), dtype=long; n is not an input",
            4,
        ),
        (
            "input lengths ()\nlstm 4 take=all lengths=lengths\n",
            "input 'lengths' must be dtype=long, it is float32",
            4,
        ),
        (
            "input lengths (2,) dtype=long\ngru 4 take=last lengths=lengths\n",
            "input 'lengths' holds one length per sequence, shape (N,); it is (N, 2)",
            4,
        ),
        (
            "input lengths () dtype=long\ntranspose 1 2\nconv1d 4 3\ntranspose 1 2\n"
            "lstm 4 take=all lengths=lengths\n",
            "has length seq - 2, which is no input's size",
            7,
        ),
        (
            "input mask (seq,) dtype=long\ntransformerencoderlayer 2 key_padding_mask=mask\n",
            "input 'mask' must be dtype=bool, it is int64",
            4,
        ),
        (
            "input mask (7,) dtype=bool\ntransformerencoderlayer 2 key_padding_mask=mask\n",
            "the mask must be (N, seq), one flag per step",
            4,
        ),
    ],
)
def test_a_wrong_read_is_a_located_error(lines: str, message: str, line: int) -> None:
    text = f"model M(n=4)\ninput t (seq=5, 4)\n{lines}"
    with pytest.raises(SeqgenError) as info:
        trace(parse(text))
    rendered = info.value.render()
    assert message in rendered
    assert f"<spec>:{line}:" in rendered


def test_the_trace_records_what_each_layer_reads() -> None:
    traced = trace(parse(PACKED))
    lstm = traced.layers[1]
    assert isinstance(lstm, TracedLayer)
    assert lstm.reads == (("", "lengths"),)
    assert lstm.call.startswith("PackedRecurrentOutput(nn.LSTM(5, hidden, batch_first=True)")
    assert lstm.helpers == ("PackedRecurrentOutput",)
    assert [(i.name, i.role, i.length_of) for i in traced.inputs] == [
        ("tokens", "", None),
        ("lengths", "lengths", ("tokens", 1)),
    ]
    masked = trace(parse(MASKED))
    encoder = masked.layers[1]
    assert isinstance(encoder, TracedLayer)
    assert encoder.reads == (("src_key_padding_mask", "mask"),)
    assert masked.inputs[1].role == "padding_mask"
    table = shape_table(traced)
    assert "input lengths" in table and "(N,)" in table


def test_the_device_check_runs_the_packed_path() -> None:
    for text in (PACKED, MASKED, PACKED.replace("take=hidden", "take=all").replace("linear", "#")):
        verify_on_device(trace(parse(text)), "cpu")


# ------------------------------------------------------------------------------ generated


def test_forward_splits_the_trunk_at_a_reading_layer(tmp_path: Path) -> None:
    files, module = _generate(tmp_path, PACKED, "packed")
    source = files[0].read_text()
    assert "        x: torch.Tensor = self.trunk_0(tokens)\n" in source
    assert "        x = self.lstm(x, lengths)\n        x = self.trunk_1(x)\n" in source
    assert "        # (N, hidden)\n        self.lstm = PackedRecurrentOutput(" in source
    model = module.Packed().eval()
    tokens = torch.randint(1, 50, (3, 7))
    lengths = torch.tensor([7, 2, 4])
    garbage = tokens.clone()
    garbage[1, 2:] = 49
    garbage[2, 4:] = 3
    with torch.no_grad():
        out = model(tokens, lengths)
        assert torch.allclose(model(garbage, lengths), out)  # packing ignores the padding
        assert not torch.allclose(model(tokens, torch.tensor([7, 7, 7])), out)
    with pytest.raises(ValueError, match="expected a 1-d input lengths"):
        model(tokens, lengths[:, None])
    files, module = _generate(tmp_path, MASKED, "masked")
    assert "x = self.transformerencoderlayer(x, src_key_padding_mask=mask)" in (
        files[0].read_text()
    )


def test_generated_tests_build_valid_samples_and_mark_export(tmp_path: Path) -> None:
    files, _ = _generate(tmp_path, PACKED, "packed_tests")
    test = files[1].read_text()
    assert '"lengths": sample_lengths(shapes["lengths"][0], shapes["tokens"][1], device)' in test
    assert '@pytest.mark.xfail(\n    reason="torch.export cannot trace pack_padded_sequence' in (
        test
    )
    assert "strict=True" in test
    files, _ = _generate(tmp_path, MASKED, "masked_tests")
    test = files[1].read_text()
    assert '"mask": sample_padding_mask(shapes["mask"], device),' in test
    assert '"mask": {0: batch, 1: seq},' in test and "xfail" not in test


@pytest.mark.slow
@pytest.mark.parametrize("text", [PACKED, MASKED])
def test_generated_tests_pass(tmp_path: Path, text: str) -> None:
    files, _ = _generate(tmp_path, text, "run_" + text.split()[1].split("(")[0].lower())
    run_generated_tests(files[1])


# ------------------------------------------------------------------------------ runtime


@pytest.mark.parametrize("rnn", [torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("take", ["all", "last", "hidden"])
def test_packed_output_is_each_sequence_run_alone(
    rnn: type[torch.nn.RNNBase], bidirectional: bool, take: str
) -> None:
    """PackedRecurrentOutput row by row: the layer run on that row's real steps alone (`all`
    padded with zeros to L), whatever the padded steps hold."""
    torch.default_generator.manual_seed(0)
    layer = rnn(3, 5, num_layers=2, batch_first=True, bidirectional=bidirectional)
    module = PackedRecurrentOutput(layer, take)
    x, lengths = torch.randn(4, 6, 3), torch.tensor([6, 2, 4, 1])
    with torch.no_grad():
        out = module(x, lengths)
        garbage = x.clone()
        garbage[1, 2:], garbage[3, 1:] = 1e3, -7.0
        torch.testing.assert_close(module(garbage, lengths), out)
        for row, n in enumerate(lengths.tolist()):
            alone = RecurrentOutput(layer, take)(x[row : row + 1, :n])[0]
            if take == "all":
                alone = torch.cat([alone, alone.new_zeros(6 - n, alone.shape[-1])])
            torch.testing.assert_close(out[row], alone)


# ------------------------------------------------------------------------------ differential


def _random_packed_case(seed: int) -> tuple[str, dict[str, object]]:
    """A random spec with a packed recurrent layer, and what it is."""
    rng = random.Random(seed)
    case: dict[str, object] = {
        "kind": rng.choice(["lstm", "gru", "rnn"]),
        "hidden": rng.randint(1, 9),
        "layers": rng.randint(1, 3),
        "bidirectional": rng.random() < 0.5,
        "take": rng.choice(["all", "last", "hidden"]),
        "seq": rng.randint(1, 8),
        "features": rng.randint(1, 6),
    }
    text = (
        f"model R(hidden={case['hidden']})\ninput steps (seq={case['seq']}, {case['features']})\n"
        f"input lengths () dtype=long\n{case['kind']} hidden num_layers={case['layers']} "
        f"bidirectional={case['bidirectional']} take={case['take']} lengths=lengths\n"
    )
    return text, case


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(int(os.environ.get("SEQGEN_FUZZ_SPECS", "4"))))
def test_random_packed_layers_equal_torch(tmp_path: Path, seed: int) -> None:
    """A random packed rnn/gru/lstm against torch's own packing, after a weight copy, at a
    random batch of lengths (and another hidden size than the default)."""
    text, case = _random_packed_case(seed)
    _, module = _generate(tmp_path, text, f"random_{seed}")
    hidden = int(str(case["hidden"])) + 2
    model = module.R(hidden=hidden).eval()
    rnn_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[str(case["kind"])]
    bidirectional = bool(case["bidirectional"])
    rnn = rnn_class(
        int(str(case["features"])),
        hidden,
        num_layers=int(str(case["layers"])),
        batch_first=True,
        bidirectional=bidirectional,
    )
    model.load_state_dict(dict(zip(model.state_dict(), rnn.state_dict().values(), strict=True)))
    seq = int(str(case["seq"]))
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, seq + 1, (5,), generator=gen)
    x = torch.randn(5, seq, int(str(case["features"])), generator=gen)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, state = rnn(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True, total_length=seq)
        h_n = state[0] if isinstance(state, tuple) else state
        dirs = 2 if bidirectional else 1
        want = {
            "all": padded,
            "last": padded[torch.arange(5), lengths - 1],
            "hidden": torch.cat(list(h_n[-dirs:]), dim=-1),
        }[str(case["take"])]
        torch.testing.assert_close(model(x, lengths), want)
