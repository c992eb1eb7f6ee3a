"""Shared fixtures and helpers: paths of the committed examples, hypothesis profiles, and running
seqgen's CLI and generated test files in this process (torch is imported once per process).

Hypothesis profiles: `dev` (the default, small) and `ci` (what CI runs), chosen with the
HYPOTHESIS_PROFILE environment variable. A test sizes its own draw with `max_examples(n)`: `n`
under `ci`, a sixth of it (at least 3) under `dev`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

if "PYTEST_XDIST_WORKER" in os.environ and "torch" not in sys.modules:
    # pytest-xdist's workers share the cores: a worker's torch (and the subprocesses it starts)
    # gets its share of threads, not all of them each (spinning OpenMP threads then contend)
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (_cores or 1) // _workers)))

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "generated_examples"
EXAMPLE_SPECS = sorted(EXAMPLES.glob("*.seq"))

settings.register_profile("ci", max_examples=300, deadline=None, database=None)
settings.register_profile("dev", max_examples=50, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
# Hypothesis writes files (constants of the modules it sees) even without a database, from
# collection on: into a folder of this process, not into .hypothesis/ in the checkout.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="seqgen-tests-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


def max_examples(ci: int) -> int:
    """A test's number of examples: `ci` under the ci profile, scaled like the profile's own
    max_examples under another one (dev: a sixth)."""
    return max(3, ci * settings.default.max_examples // 300)


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write spec text to tmp_path/<name> and return its path as a string."""

    def _write(text: str, name: str = "model.seq") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return _write


@pytest.fixture(scope="session", autouse=True)
def _trace_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests (and the seqgen subprocesses they start) keep traces under a temporary folder: one
    per pytest process, so each xdist worker has its own."""
    old = os.environ.get("SEQGEN_CACHE_DIR")
    os.environ["SEQGEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("trace-cache"))
    yield
    if old is None:
        os.environ.pop("SEQGEN_CACHE_DIR", None)
    else:
        os.environ["SEQGEN_CACHE_DIR"] = old


# ------------------------------------------------------------------ in-process runs


@dataclass
class Ran:
    """What a `seqgen` command did: like subprocess.CompletedProcess, for in-process runs."""

    returncode: int
    stdout: str
    stderr: str


def seqgen_cli(*args: str, cwd: Path | None = None) -> Ran:
    """`seqgen ARGS` run in `cwd` in this process (click's CliRunner), where torch is imported
    once for all tests. An exception other than SystemExit is raised: in a terminal it would be
    a traceback."""
    from click.testing import CliRunner

    from seqgen.cli import main

    with pytest.MonkeyPatch.context() as mp:
        if cwd is not None:
            mp.chdir(cwd)
        result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def _inside(path: str | None, folders: tuple[Path, ...]) -> bool:
    if not path:
        return False
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(f) for f in folders)


@contextlib.contextmanager
def isolated_imports(*folders: Path, first_on_path: Path | None = None) -> Iterator[None]:
    """Import code from `folders` (generated modules and tests) as a fresh interpreter would.

    Modules named like a file or folder in `folders` are taken out of sys.modules (this
    session may hold another `cnn` or `test_cnn`: the collected generated_examples/), and this
    checkout's test folders out of sys.path (so a generated test that failed to put its own
    folder on sys.path cannot import generated_examples/ instead). Afterwards the modules
    imported from `folders` are dropped and sys.modules and sys.path are restored; library
    modules imported meanwhile (a torch submodule) stay, as they would in any process.
    `first_on_path` goes first on sys.path meanwhile."""
    folders = tuple(f.resolve() for f in folders)
    names = {p.stem if p.suffix == ".py" else p.name for f in folders for p in f.rglob("*")}
    names.discard("__pycache__")
    taken = {n: m for n, m in sys.modules.items() if n.partition(".")[0] in names}
    for name in taken:
        del sys.modules[name]
    saved_path = list(sys.path)
    sys.path[:] = [p for p in sys.path if not _inside(p or ".", (ROOT / "tests", EXAMPLES))]
    if first_on_path is not None:
        sys.path.insert(0, str(first_on_path))
    try:
        yield
    finally:
        for name, module in list(sys.modules.items()):
            if name.partition(".")[0] in names or _inside(
                getattr(module, "__file__", None), folders
            ):
                del sys.modules[name]
        sys.modules.update(taken)
        sys.path[:] = saved_path


@dataclass(eq=False)  # hashable: pytest registers it as a plugin
class PytestRun:
    """The outcome of an in-process pytest run: counts, and the failures' reports."""

    exit_code: int = -1
    passed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failures.append(f"{report.nodeid} ({report.when}):\n{report.longreprtext}")
        elif report.skipped:
            self.skipped += 1
        elif report.when == "call":
            self.passed += 1

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.failures.append(f"{report.nodeid} (collection):\n{report.longreprtext}")


def run_generated_tests(*paths: Path, cwd: Path | None = None) -> PytestRun:
    """Run generated test files (or folders of them) with pytest in this process, where torch
    is imported already: a subprocess would only import it again. Isolated as
    `isolated_imports` says; fails the calling test, with the failures, unless all pass."""
    cwd = cwd or (paths[0] if paths[0].is_dir() else paths[0].parent)
    run = PytestRun()
    # no:unraisableexception: its cleanup runs gc.collect() five times, 0.3 s with torch loaded
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception", "--rootdir", str(cwd)]
    folders = {cwd, *(p if p.is_dir() else p.parent for p in paths)}
    # cwd first on sys.path, as `python -m pytest` run there has it
    with pytest.MonkeyPatch.context() as mp, isolated_imports(*folders, first_on_path=cwd):
        mp.chdir(cwd)
        mp.delenv("PYTEST_ADDOPTS", raising=False)
        mp.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # generated tests need pytest alone
        run.exit_code = int(pytest.main([*args, *map(str, paths)], plugins=[run]))
    assert run.exit_code == 0 and not run.failures, "\n\n".join(run.failures)[-6000:]
    return run


def generated_module(
    folder: Path, text: str, name: str, prefix: str
) -> tuple[list[Path], ModuleType]:
    """Write spec `text` as `folder/NAME.seq`, generate it there with seqgen's API, and import
    the generated model as module `PREFIX_NAME` (a name no other test file uses): the written
    files (model, then tests) and the module."""
    from seqgen.api import generate, options_for
    from seqgen.project.write import write_files

    spec = folder / f"{name}.seq"
    spec.write_text(text)
    result = generate(str(spec), options_for(str(spec), str(folder)))
    write_files(list(result.files))
    module_spec = importlib.util.spec_from_file_location(f"{prefix}_{name}", result.files[0].path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return [Path(f.path) for f in result.files], module


def generated_tests_per_file(count: int) -> int:
    """How many of a generated test file's `count` tests pass on this torch (CUDA's skipped):
    one fewer before torch 2.13, which skips the export test (seqgen/render/export.py
    EXPORT_MIN_TORCH; README "Supported torch versions")."""
    from seqgen.render.export import EXPORT_MIN_TORCH
    from seqgen.torch_version import installed_minor

    minor = installed_minor()
    return count if minor is not None and minor >= EXPORT_MIN_TORCH else count - 1
