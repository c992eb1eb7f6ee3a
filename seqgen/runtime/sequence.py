"""Small nn.Module classes for sequence models, copied verbatim into generated files.

seqgen finds each class here by name (with `ast`) and writes its source into the generated
model file, so every class stands alone: it uses only `math`, `torch` and `nn`, and no helper
outside its own body.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class RecurrentOutput(nn.Module):
    """Runs a batch-first nn.RNN, nn.LSTM or nn.GRU and keeps one tensor of its output.

    take="all": the output sequence, (N, L, H * dirs); "last": its last time step,
    (N, H * dirs); "hidden": the final hidden state of the last layer with both directions
    concatenated (forward first), (N, H * dirs). H is proj_size for an LSTM with a projection.
    For a bidirectional layer "last" and "hidden" differ: the backward direction's last output
    step has seen one element, its final hidden state the whole sequence.
    """

    TAKES = ("all", "last", "hidden")

    def __init__(self, rnn: nn.RNNBase, take: str) -> None:
        super().__init__()
        if take not in self.TAKES:
            raise ValueError(
                f"take must be one of 'all', 'last', 'hidden', got {take!r}"
            )
        if not rnn.batch_first:
            raise ValueError("the recurrent layer must be built with batch_first=True")
        self.rnn = rnn
        self.take = take
        self.directions = 2 if rnn.bidirectional else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.rnn(x)
        output: torch.Tensor = result[0]
        if self.take == "all":
            return output
        if self.take == "last":
            return output[:, -1]
        # an LSTM gives (h_n, c_n); h_n is (num_layers * dirs, N, H), and the last layer's
        # directions are its last rows
        state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] = result[1]
        h_n = state[0] if isinstance(state, tuple) else state
        return torch.cat(torch.unbind(h_n[-self.directions :]), dim=-1)

    def extra_repr(self) -> str:
        return f"take={self.take!r}"


class PackedRecurrentOutput(nn.Module):
    """Runs a batch-first nn.RNN, nn.LSTM or nn.GRU on a padded batch packed by each sequence's
    length, so that no padded step reaches it, and keeps one tensor of its output.

    lengths: (N,) integers in [1, L] on any device (packing reads them on the CPU); the padded
    steps of x may hold anything. take="all": the output sequence padded back to L with zeros,
    (N, L, H * dirs); "last": each sequence's output at its own last step, lengths - 1,
    (N, H * dirs); "hidden": the final hidden state of the last layer, directions
    concatenated (forward first), each taken at its sequence's own length, (N, H * dirs).
    """

    TAKES = ("all", "last", "hidden")

    def __init__(self, rnn: nn.RNNBase, take: str) -> None:
        super().__init__()
        if take not in self.TAKES:
            raise ValueError(
                f"take must be one of 'all', 'last', 'hidden', got {take!r}"
            )
        if not rnn.batch_first:
            raise ValueError("the recurrent layer must be built with batch_first=True")
        self.rnn = rnn
        self.take = take
        self.directions = 2 if rnn.bidirectional else 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        result = self.rnn(packed)
        if self.take == "hidden":
            # h_n is (num_layers * dirs, N, H) in the batch's own order
            state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] = result[1]
            h_n = state[0] if isinstance(state, tuple) else state
            return torch.cat(torch.unbind(h_n[-self.directions :]), dim=-1)
        output, _ = nn.utils.rnn.pad_packed_sequence(
            result[0], batch_first=True, total_length=x.shape[1]
        )
        if self.take == "all":
            return output
        rows = torch.arange(output.shape[0], device=output.device)
        return output[rows, lengths.to(output.device) - 1]

    def extra_repr(self) -> str:
        return f"take={self.take!r}"


class Permute(nn.Module):
    """Reorders the dimensions: `x.permute(*dims)`."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return ", ".join(str(d) for d in self.dims)


class Transpose(nn.Module):
    """Swaps two dimensions: `x.transpose(dim0, dim1)`."""

    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dim0 = dim0
        self.dim1 = dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)

    def extra_repr(self) -> str:
        return f"{self.dim0}, {self.dim1}"


class Unsqueeze(nn.Module):
    """Inserts a dimension of size 1: `x.unsqueeze(dim)`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Squeeze(nn.Module):
    """Removes a dimension of size 1: `x.squeeze(dim)` (seqgen checks that its size is 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Mean(nn.Module):
    """The mean over a dimension: `x.mean(dim, keepdim)`."""

    def __init__(self, dim: int, keepdim: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dim, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"


class Sum(nn.Module):
    """The sum over a dimension: `x.sum(dim, keepdim)`."""

    def __init__(self, dim: int, keepdim: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(self.dim, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"


class Amax(nn.Module):
    """The maximum over a dimension: `x.amax(dim, keepdim)`."""

    def __init__(self, dim: int, keepdim: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(self.dim, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"


class Select(nn.Module):
    """One index along a dimension, which disappears: `x.select(dim, index)`."""

    def __init__(self, dim: int, index: int) -> None:
        super().__init__()
        self.dim = dim
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(self.dim, self.index)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, index={self.index}"


class Narrow(nn.Module):
    """`length` entries from `start` along a dimension: `x.narrow(dim, start, length)`."""

    def __init__(self, dim: int, start: int, length: int) -> None:
        super().__init__()
        self.dim = dim
        self.start = start
        self.length = length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.narrow(self.dim, self.start, self.length)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, length={self.length}"


class Abs(nn.Module):
    """The absolute value, elementwise: `x.abs()` (an L1 distance after a `Subtract`)."""

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()

    def extra_repr(self) -> str:
        return ""


class Scale(nn.Module):
    """Multiplies by a constant: `x * value`."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value

    def extra_repr(self) -> str:
        return f"value={self.value}"


class AddIdentity(nn.Module):
    """Adds the identity matrix to each square matrix in the last two dims: `x + torch.eye(K)`
    for x (N, ..., K, K), in x's dtype and on its device (PointNet's learned transforms start
    at the identity)."""

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[-1]
        if x.dim() < 3 or x.shape[-2] != k:
            raise ValueError(
                f"AddIdentity needs square matrices (N, ..., K, K), got {list(x.shape)}"
            )
        return x + torch.eye(k, dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        return ""


class ClsToken(nn.Module):
    """Prepends a learned (1, 1, E) token to every sequence: (N, L, E) -> (N, L + 1, E)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.token = nn.Parameter(torch.zeros(1, 1, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        token = self.token.expand(x.shape[0], -1, -1)
        return torch.cat([token, x], dim=1)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}"


class PosEmbedding(nn.Module):
    """Adds a learned (1, L, E) position embedding (zeros at first): (N, L, E) -> (N, L, E)."""

    def __init__(self, length: int, embed_dim: int) -> None:
        super().__init__()
        self.length = length
        self.embed_dim = embed_dim
        self.weight = nn.Parameter(torch.zeros(1, length, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight

    def extra_repr(self) -> str:
        return f"length={self.length}, embed_dim={self.embed_dim}"


class PosEncoding(nn.Module):
    """Adds the fixed sinusoidal position encoding of Vaswani et al. to (N, L, E), L <= max_len.

    Column 2i holds sin(pos / 10000^(2i/E)) and column 2i + 1 the cos of the same angle, as in
    the PyTorch tutorial; for an odd E the last column is a sin without its cos. The table is
    a non-persistent buffer: it follows `.to(device)` but stays out of the state_dict, since it
    is recomputed identically from (embed_dim, max_len) and holds nothing learned.
    """

    encoding: torch.Tensor

    def __init__(self, embed_dim: int, max_len: int = 5000) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.max_len = max_len
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        rate = torch.exp(
            torch.arange(0, embed_dim, 2, dtype=torch.float32)
            * (-math.log(10000.0) / embed_dim)
        )
        table = torch.zeros(max_len, embed_dim)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate[: embed_dim // 2])
        self.register_buffer("encoding", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.encoding[: x.shape[1]]

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, max_len={self.max_len}"
