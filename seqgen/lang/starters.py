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
}


def starter_spec(stem: str, kind: str) -> str:
    """A commented starter spec of `kind` whose class is named after `stem`."""
    cls = check_identifier(camel_case(stem), "class name", Location(f"{stem}.seq", 1, 1))
    return (
        f"# {kind} starter written by `seqgen init`; edit it, then run `seqgen new`.\n"
        "# One layer per line: a torch.nn class name, positional args, KEY=VALUE args.\n"
        + _BODIES[kind].format(cls=cls)
    )
