"""One error hierarchy for every stage, and the exit codes the CLI maps them to."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Exit(enum.IntEnum):
    """Process exit codes, documented in README.md."""

    OK = 0
    SPEC_ERROR = 1  # a problem in a spec, a stale output (--check), or a refused overwrite
    USAGE = 2  # bad command-line usage (click's own code for usage errors)
    INTERNAL = 3  # a bug in seqgen itself (an InternalError), whatever the spec


@dataclass(frozen=True)
class Location:
    """A place in a spec: 1-based line and column, the line's text and the span's width."""

    path: str
    line: int
    col: int
    text: str = ""
    width: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """An error or warning about a spec, with where it is and how to fix it."""

    severity: str  # "error" | "warning"
    message: str
    location: Location | None = None
    hint: str | None = None
    code: str | None = None  # a warning's stable code and name, e.g. "W001 softmax-before-loss"

    def render(self) -> str:
        """Format like a compiler: `file:line:col: error: ...`, the line, a caret, a hint."""
        head = f"{self.severity}: {self.message}" + (f" [{self.code}]" if self.code else "")
        lines = [f"{self.location}: {head}" if self.location else head]
        loc = self.location
        if loc is not None and loc.text:
            gutter = str(loc.line)
            lines.append(f" {gutter} | {loc.text}")
            caret = " " * (loc.col - 1) + "^" + "~" * max(0, loc.width - 1)
            lines.append(f" {' ' * len(gutter)} | {caret}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class SeqgenError(Exception):
    """Base of every error seqgen reports to a user; never shown as a traceback."""

    def __init__(
        self, message: str, *, location: Location | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.diagnostic = Diagnostic("error", message, location, hint)

    @property
    def location(self) -> Location | None:
        return self.diagnostic.location

    def render(self) -> str:
        """The message as the CLI prints it."""
        return self.diagnostic.render()


class SpecErrors(SeqgenError):
    """Several independent errors in one spec, reported together (first one as the headline)."""

    def __init__(self, errors: list[SeqgenError]) -> None:
        first = errors[0].diagnostic
        super().__init__(first.message, location=first.location, hint=first.hint)
        self.errors = tuple(errors)

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


def raise_all(errors: list[SeqgenError]) -> None:
    """Raise nothing, the one error as itself, or several sorted by line as SpecErrors."""
    unique: dict[tuple[object, ...], SeqgenError] = {}
    for e in errors:  # `repeat` unrolls one line into several layers: report each place once
        d = e.diagnostic
        unique.setdefault((str(d.location), d.message), e)
    found = sorted(
        unique.values(),
        key=lambda e: (e.location.line, e.location.col) if e.location is not None else (0, 0),
    )
    if len(found) == 1:
        raise found[0]
    if found:
        raise SpecErrors(found)


class SpecReadError(SeqgenError):
    """The spec file cannot be read: missing, empty, or not UTF-8."""


class SpecSyntaxError(SeqgenError):
    """The spec text does not follow the spec language."""


class TorchVersionError(SeqgenError):
    """The installed torch is missing or outside the verified range."""


class TraceError(SeqgenError):
    """The layers do not fit together, or torch rejects a layer's arguments."""


class SizeTooSmallError(TraceError):
    """A size collapses to zero: the input is too small for a layer."""


class RenderError(SeqgenError):
    """Generated code could not be produced (a template or formatting failure)."""


class DiagramError(SeqgenError):
    """A diagram cannot be drawn as asked: an `--at` that names no size or breaks a rule."""


class WriteError(SeqgenError):
    """Output files could not be written, or would clobber hand edits."""


class OutputConflict(SeqgenError):
    """Two outputs of one run would land on the same path (a usage error: exit 2)."""


class InternalError(SeqgenError):
    """A bug in seqgen, not a problem in the spec: one of seqgen's invariants failed, or its
    own size arithmetic disagrees with torch. The CLI asks for a bug report (exit 3)."""


class ConfigError(SeqgenError):
    """The `[tool.seqgen]` table of a project's pyproject.toml is not one seqgen understands."""
