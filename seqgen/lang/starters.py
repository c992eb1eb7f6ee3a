"""Starter specs written by `seqgen init`."""

from __future__ import annotations

from seqgen.errors import Location
from seqgen.lang.names import camel_case, check_identifier

_BODIES = {
    "mlp": """model {cls}(in_features=784, hidden=256, num_classes=10, dropout=0.1)
input (in_features,)

linear hidden
relu
dropout dropout
linear hidden // 2
relu
linear num_classes
""",
    "cnn": """model {cls}(num_classes=10)
input 3x32x32

conv2d 32 k=3 p=1 bias=False
batchnorm2d
relu
maxpool2d 2
conv2d 64 k=3 p=1 bias=False
batchnorm2d
relu
maxpool2d 2
flatten
linear 128
relu
linear num_classes
""",
    "cnn1d": """model {cls}(num_classes=5)
input (1, length=128)

conv1d 16 k=5 p=2
relu
maxpool1d 2
conv1d 32 k=5 p=2
relu
maxpool1d 2
flatten
linear num_classes
""",
    "resnet": """model {cls}(width=32, num_classes=10)
input 3x32x32

# `residual:` adds the block's input back onto its body's output; `shortcut:` brings the
# input to the body's shape first when the body strides or widens
block Basic(out):
    residual:
        conv2d out k=3 p=1 bias=False
        batchnorm2d
        relu
        conv2d out k=3 p=1 bias=False
        batchnorm2d
    relu

block Down(out):
    residual:
        conv2d out k=3 s=2 p=1 bias=False
        batchnorm2d
        relu
        conv2d out k=3 p=1 bias=False
        batchnorm2d
    shortcut:
        conv2d out k=1 s=2 bias=False
        batchnorm2d
    relu

conv2d width k=3 p=1 bias=False
batchnorm2d
relu
Basic width
Down 2 * width
Basic 2 * width
adaptiveavgpool2d 1
flatten
linear num_classes
""",
    "lstm": """model {cls}(vocab=10000, embed_dim=64, hidden=128, num_classes=2)
input (seq_len=40) dtype=long  # token ids

embedding vocab embed_dim padding_idx=0
# take=hidden: the final hidden state of both directions, (N, 2 * hidden)
lstm hidden bidirectional=True take=hidden
dropout 0.3
linear num_classes
""",
    "transformer": """model {cls}(vocab=10000, dim=64, heads=4, ff=128, num_classes=2)
input (seq_len=32) dtype=long  # token ids

embedding vocab dim
pos_encoding
transformerencoderlayer nhead=heads dim_feedforward=ff dropout=0.1 norm_first=True
transformerencoderlayer nhead=heads dim_feedforward=ff dropout=0.1 norm_first=True
layernorm
# mean over the sequence: (N, dim)
mean 1
linear num_classes
""",
}


KINDS = tuple(_BODIES)  # `seqgen init --kind`


def starter_spec(stem: str, kind: str) -> str:
    """A commented starter spec of `kind` whose class is named after `stem`."""
    cls = check_identifier(camel_case(stem), "class name", Location(f"{stem}.seq", 1, 1))
    return (
        f"# {kind} starter written by `seqgen init`; edit it, then run `seqgen new`.\n"
        "# One layer per line: a torch.nn class name, positional args, KEY=VALUE args.\n"
        + _BODIES[kind].format(cls=cls)
    )
