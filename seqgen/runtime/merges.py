"""Merge modules that seqgen writes into generated files when a spec uses them.

Each class is copied verbatim (found by name) into the generated module, which needs nothing
but torch, so a class here uses only `torch` and `nn` and no helper outside itself.
"""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """`body(x) + shortcut(x)`, or `body(x) + x` without a shortcut (He et al., 2015)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        skip: torch.Tensor = x if self.shortcut is None else self.shortcut(x)
        if out.shape != skip.shape:
            raise ValueError(
                f"Residual: the body gives {self._shape(list(out.shape))} but the "
                f"{'input' if self.shortcut is None else 'shortcut'} gives "
                f"{self._shape(list(skip.shape))} for input {self._shape(list(x.shape))}"
            )
        return out + skip

    @staticmethod
    def _shape(shape: list[int]) -> str:
        """`(2, 3)`: a shape as Python shows a tuple (TorchScript has no tuple())."""
        one = "," if len(shape) == 1 else ""
        return "(" + ", ".join([str(size) for size in shape]) + one + ")"


class Concat(nn.Module):
    """Runs every branch on the same input and concatenates the outputs along `dim`.

    The branches are modules, keyed "0", "1", ... in the state_dict, or one dict that keys
    them by name: `Concat({"skip": nn.Identity(), "down": down}, dim=1)`.
    """

    def __init__(
        self, *branches: nn.Module | dict[str, nn.Module], dim: int = 1
    ) -> None:
        super().__init__()
        named: dict[str, nn.Module] = {}  # keys "0", "1", ... as an nn.ModuleList's
        for i, branch in enumerate(branches):
            if isinstance(branch, dict):
                named.update(branch)
            else:
                named[str(i)] = branch
        self.branches = nn.ModuleDict(named)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = [branch(x) for branch in self.branches.values()]
        first = outs[0].shape
        for out in outs[1:]:
            differ = out.dim() != len(first)
            for i in range(len(first)):  # a loop, not any(...): TorchScript compiles it
                if not differ and i != self.dim and out.shape[i] != first[i]:
                    differ = True
            if differ:
                shapes = ", ".join([self._shape(list(o.shape)) for o in outs])
                raise ValueError(
                    f"Concat: branch outputs {shapes} for input "
                    f"{self._shape(list(x.shape))} differ outside dim {self.dim}"
                )
        return torch.cat(outs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    @staticmethod
    def _shape(shape: list[int]) -> str:
        """`(2, 3)`: a shape as Python shows a tuple (TorchScript has no tuple())."""
        one = "," if len(shape) == 1 else ""
        return "(" + ", ".join([str(size) for size in shape]) + one + ")"


class Add(nn.Module):
    """Runs every branch on the same input and adds the outputs, broadcasting as torch does
    (dims aligned from the right; in each, equal sizes or 1); the branches are modules, or
    one dict that keys them by name: `Add({"a": a, "b": b})`.
    """

    def __init__(self, *branches: nn.Module | dict[str, nn.Module]) -> None:
        super().__init__()
        named: dict[str, nn.Module] = {}  # keys "0", "1", ... as an nn.ModuleList's
        for i, branch in enumerate(branches):
            if isinstance(branch, dict):
                named.update(branch)
            else:
                named[str(i)] = branch
        self.branches = nn.ModuleDict(named)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = [branch(x) for branch in self.branches.values()]
        merged: list[int] = list(outs[0].shape)
        differ = False
        for out in outs[1:]:  # loops, not any(...) or zip(): TorchScript compiles them
            shape: list[int] = list(out.shape)
            while len(merged) < len(shape):
                merged.insert(0, 1)
            for i in range(1, len(shape) + 1):
                a, b = merged[len(merged) - i], shape[len(shape) - i]
                if a == 1:
                    merged[len(merged) - i] = b
                elif b != 1 and b != a:
                    differ = True
        if differ:
            shapes = ", ".join([self._shape(list(o.shape)) for o in outs])
            raise ValueError(
                f"Add: branch outputs {shapes} for input {self._shape(list(x.shape))} "
                "do not broadcast"
            )
        total = outs[0]
        for out in outs[1:]:
            total = total + out
        return total

    @staticmethod
    def _shape(shape: list[int]) -> str:
        """`(2, 3)`: a shape as Python shows a tuple (TorchScript has no tuple())."""
        one = "," if len(shape) == 1 else ""
        return "(" + ", ".join([str(size) for size in shape]) + one + ")"


class Multiply(nn.Module):
    """Runs every branch on the same input and multiplies the outputs, broadcasting (a
    squeeze-excitation gate is `Multiply(nn.Identity(), gate)`); the branches are modules, or
    one dict that keys them by name: `Multiply({"x": nn.Identity(), "gate": gate})`."""

    def __init__(self, *branches: nn.Module | dict[str, nn.Module]) -> None:
        super().__init__()
        named: dict[str, nn.Module] = {}  # keys "0", "1", ... as an nn.ModuleList's
        for i, branch in enumerate(branches):
            if isinstance(branch, dict):
                named.update(branch)
            else:
                named[str(i)] = branch
        self.branches = nn.ModuleDict(named)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = [branch(x) for branch in self.branches.values()]
        product = outs[0]
        for out in outs[1:]:
            product = product * out
        return product


class Subtract(nn.Module):
    """Runs both branches on the same input and subtracts the second's output from the
    first's, broadcasting as torch does (a siamese network's `h1 - h2`, before an `abs`); the
    branches are two modules, or one dict that keys them by name: `Subtract({"a": a, "b": b})`.
    """

    def __init__(self, *branches: nn.Module | dict[str, nn.Module]) -> None:
        super().__init__()
        named: dict[str, nn.Module] = {}  # keys "0", "1" as an nn.ModuleList's
        for i, branch in enumerate(branches):
            if isinstance(branch, dict):
                named.update(branch)
            else:
                named[str(i)] = branch
        if len(named) != 2:
            raise ValueError(f"Subtract takes two branches, got {len(named)}")
        self.branches = nn.ModuleDict(named)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = [branch(x) for branch in self.branches.values()]
        return outs[0] - outs[1]


class Bmm(nn.Module):
    """Runs both branches on the same input and multiplies their outputs as batches of
    matrices, `torch.bmm(a, b)`: a (N, n, m) by b (N, m, p) gives (N, n, p) (PointNet applies a
    learned transform to its own input so). The branches are two modules, or one dict that keys
    them by name: `Bmm({"points": Transpose(1, 2), "transform": stn})`.
    """

    def __init__(self, *branches: nn.Module | dict[str, nn.Module]) -> None:
        super().__init__()
        named: dict[str, nn.Module] = {}  # keys "0", "1" as an nn.ModuleList's
        for i, branch in enumerate(branches):
            if isinstance(branch, dict):
                named.update(branch)
            else:
                named[str(i)] = branch
        if len(named) != 2:
            raise ValueError(f"Bmm multiplies two branches, got {len(named)}")
        self.branches = nn.ModuleDict(named)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = [branch(x) for branch in self.branches.values()]
        a, b = outs[0], outs[1]
        if a.dim() != 3 or b.dim() != 3:
            raise ValueError(
                f"Bmm: branch outputs {self._shape(list(a.shape))}, "
                f"{self._shape(list(b.shape))} for input {self._shape(list(x.shape))} "
                "must both have rank 3"
            )
        if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
            raise ValueError(
                f"Bmm: branch outputs {self._shape(list(a.shape))}, "
                f"{self._shape(list(b.shape))} for input {self._shape(list(x.shape))} "
                "must be (N, n, m) and (N, m, p)"
            )
        return torch.bmm(a, b)

    @staticmethod
    def _shape(shape: list[int]) -> str:
        """`(2, 3)`: a shape as Python shows a tuple (TorchScript has no tuple())."""
        one = "," if len(shape) == 1 else ""
        return "(" + ", ".join([str(size) for size in shape]) + one + ")"


class Reparameterize(nn.Module):
    """The reparameterisation trick of a VAE (Kingma and Welling, 2013): its two branches give
    the mean and the log-variance of equal shapes; in training mode it returns
    `mu + randn_like(std) * std` with `std = exp(0.5 * logvar)`, in eval mode `mu`. The
    branches are modules, or one dict that keys them by name:
    `Reparameterize({"mu": mu, "logvar": logvar})`."""

    def __init__(self, *branches: nn.Module | dict[str, nn.Module]) -> None:
        super().__init__()
        named: dict[str, nn.Module] = {}  # keys "0", "1" as an nn.ModuleList's
        for i, branch in enumerate(branches):
            if isinstance(branch, dict):
                named.update(branch)
            else:
                named[str(i)] = branch
        if len(named) != 2:
            raise ValueError(
                f"Reparameterize takes two branches (the mean, the log-variance), got {len(named)}"
            )
        self.branches = nn.ModuleDict(named)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = [branch(x) for branch in self.branches.values()]
        mu, logvar = outs[0], outs[1]
        if mu.shape != logvar.shape:
            raise ValueError(
                f"Reparameterize: the mean {self._shape(list(mu.shape))} and the log-variance "
                f"{self._shape(list(logvar.shape))} for input {self._shape(list(x.shape))} "
                "differ in shape"
            )
        if not self.training:
            return mu
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    @staticmethod
    def _shape(shape: list[int]) -> str:
        """`(2, 3)`: a shape as Python shows a tuple (TorchScript has no tuple())."""
        one = "," if len(shape) == 1 else ""
        return "(" + ", ".join([str(size) for size in shape]) + one + ")"
