"""The trace cache: unchanged specs are checked and summarised without importing torch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE_SPECS, EXAMPLES, seqgen_cli

from seqgen import errors, ir
from seqgen.api import load, options_for, trace_spec, traced_spec
from seqgen.project import cache

NO_TORCH = (
    "import sys\nfrom seqgen.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    print('exit', e.code)\n"
    "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
)


@pytest.mark.parametrize("spec_path", EXAMPLE_SPECS, ids=lambda p: p.stem)
def test_cached_trace_round_trips(
    spec_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path))
    _, spec = load(str(spec_path))
    fresh = trace_spec(spec)
    key = cache.key(str(spec_path), spec_path.read_text(), None)
    cache.store(key, fresh)
    assert cache.load(key) == fresh


def _dataclasses_of(module: object) -> list[type]:
    return [v for v in vars(module).values() if isinstance(v, type) and dataclasses.is_dataclass(v)]


def test_every_ir_dataclass_is_registered_once() -> None:
    """The cache decodes by class name: every IR dataclass is known, and no two share a name."""
    found = _dataclasses_of(ir) + _dataclasses_of(errors)
    assert {"TracedModel", "ModelSpec", "Diagnostic"} <= {cls.__name__ for cls in found}
    for cls in found:
        assert cache._TYPES[cls.__name__] is cls
    assert len({cls.__name__ for cls in found}) == len(set(found))


@pytest.mark.parametrize("cls", _dataclasses_of(ir), ids=lambda cls: cls.__name__)
def test_every_ir_dataclass_round_trips(cls: type) -> None:
    """Each field is encoded and given back to the constructor (no field hides from __init__)."""
    value = cls(**{f.name: f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls)})
    nested = (value, (value,))  # IR holds tuples of nodes, and tuples of those
    assert cache._decode(json.loads(json.dumps(cache._encode(nested)))) == nested


def test_a_parsed_spec_round_trips() -> None:
    _, spec = load(str(EXAMPLE_SPECS[0]))
    assert cache._decode(json.loads(json.dumps(cache._encode(spec)))) == spec


def test_an_unwritable_cache_is_skipped_with_a_debug_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(blocker / "cache"))  # under a file: unwritable
    traced = ir.TracedModel.__new__(ir.TracedModel)  # never looked at: _encode is stubbed
    monkeypatch.setattr(cache, "_encode", lambda value: {})
    with caplog.at_level("DEBUG", logger="seqgen.project.cache"):
        cache.store("k", traced)
    assert "trace not cached: cannot write" in caplog.text


@pytest.mark.parametrize("command", [["check", "--strict"], ["summary", "--format", "json"]])
def test_unchanged_spec_needs_no_torch(command: list[str], tmp_path: Path) -> None:
    """Traced in this process, the spec is checked again by a fresh interpreter (the same
    SEQGEN_CACHE_DIR) without importing torch; once it changes it is traced again."""
    spec = tmp_path / "m.seq"
    # the class name keeps this case's key apart from the other command's (same relative path;
    # a comment would not: the key ignores comments)
    text = f"model M{command[0]}(n=16)\ninput (3, n)\nconv1d 4 3\nflatten\nlinear 2\n"
    spec.write_text(text)
    first = seqgen_cli(*command, "m.seq", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *command, "m.seq"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    *output, exit_line, torch_line = second.stdout.splitlines()
    assert torch_line == "NO-TORCH", second.stdout + second.stderr
    assert exit_line == "exit 0" and output == first.stdout.splitlines()
    changed = text.replace("conv1d 4 3", "conv1d 5 3")
    spec.write_text(changed)
    assert cache.load(cache.key("m.seq", changed, None)) is None
    assert seqgen_cli(*command, "m.seq", cwd=tmp_path).returncode == 0
    assert cache.load(cache.key("m.seq", changed, None)) is not None  # traced again


def test_corrupt_or_disabled_cache_is_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path / "c"))
    spec = tmp_path / "m.seq"
    spec.write_text("input 4\nlinear 2\n")
    _, traced = traced_spec(str(spec))
    (entry,) = (tmp_path / "c").iterdir()
    entry.write_text("{not json")
    assert traced_spec(str(spec))[1] == traced
    monkeypatch.setenv("SEQGEN_NO_CACHE", "1")
    assert cache.cache_dir() is None
    assert traced_spec(str(spec))[1] == traced


def test_code_fingerprint_covers_every_subpackage(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trace cached by other tracer code must miss: every .py under seqgen/ is hashed."""
    import seqgen

    root = Path(seqgen.__file__).resolve().parent
    nested = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if p.parent != root)
    assert nested, "seqgen has subpackages (runtime/ at least)"
    hashed: list[str] = []

    class Recorder:
        def update(self, data: bytes) -> None:
            hashed.append(data.split(b"\0")[0].decode(errors="replace"))

        def hexdigest(self) -> str:
            return "0"

    monkeypatch.setattr(cache.hashlib, "sha256", lambda *a: Recorder())
    cache._code_fingerprint.cache_clear()
    try:
        cache._code_fingerprint()
    finally:
        cache._code_fingerprint.cache_clear()
    assert set(nested) <= set(hashed)


@pytest.mark.slow  # two fresh interpreters
def test_a_cached_run_renders_nothing_again(tmp_path: Path) -> None:
    """With the trace and the rendering cached, `new --force` writes the same files again
    without importing torch, jinja2 or black (the rendering's key covers the spec's meaning,
    the options, the templates and black's version)."""
    spec = tmp_path / "m.seq"
    spec.write_text("model Cached(n=16)\ninput (3, n)\nconv1d 4 3\nflatten\nlinear 2\n")
    assert seqgen_cli("new", "-q", "m.seq", cwd=tmp_path).returncode == 0
    first = {p.name: p.read_text() for p in tmp_path.glob("*.py")}
    script = NO_TORCH + "print(*sorted({'jinja2', 'black'} & set(sys.modules)))\n"
    again = subprocess.run(
        [sys.executable, "-c", script, "new", "-q", "--force", "m.seq"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    *_, exit_line, torch_line, engines = again.stdout.splitlines()
    assert (exit_line, torch_line, engines) == ("exit 0", "NO-TORCH", ""), again.stdout
    assert {p.name: p.read_text() for p in tmp_path.glob("*.py")} == first
    # into a new folder: the cached bodies serve it too, under that folder's own headers, and
    # the files are those an uncached run writes there
    elsewhere = subprocess.run(
        [sys.executable, "-c", script, "new", "-q", "m.seq", "-o", "other"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    *_, exit_line, torch_line, engines = elsewhere.stdout.splitlines()
    assert (exit_line, torch_line, engines) == ("exit 0", "NO-TORCH", ""), elsewhere.stdout
    cached = {p.name: p.read_text() for p in (tmp_path / "other").glob("*.py")}
    assert cached.keys() == first.keys() and cached != first  # the headers name the folder
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQGEN_NO_CACHE", "1")
        assert (
            seqgen_cli("new", "-q", "--force", "m.seq", "-o", "other", cwd=tmp_path).returncode == 0
        )
    assert {p.name: p.read_text() for p in (tmp_path / "other").glob("*.py")} == cached


@pytest.mark.parametrize(
    "spec_path", [EXAMPLES / "cnn.seq", EXAMPLES / "two_input.seq"], ids=lambda p: p.stem
)
def test_bodies_depend_on_the_rendering_inputs_only(spec_path: Path, tmp_path: Path) -> None:
    """The rendering cache's key leaves out the layout and the headers' spec key: options that
    agree on `Options.rendering_inputs` must render the same bodies, and options that do not
    (the test in another folder imports the model differently) must not share a key."""
    from seqgen.render import render_bodies

    _, traced = traced_spec(str(spec_path))
    here = options_for(str(spec_path), str(tmp_path / "a"))
    # another folder, another test name, another --input recorded: the same import of the model
    there = dataclasses.replace(
        options_for(str(spec_path), str(tmp_path / "b" / "c"), input_override="x"),
        test_stem="test_other",
    )
    assert here.layout != there.layout and here.rendering_inputs() == there.rendering_inputs()
    assert render_bodies(traced, here) == render_bodies(traced, there)
    apart = options_for(str(spec_path), str(tmp_path / "a"), str(tmp_path / "tests"))
    assert apart.rendering_inputs() != here.rendering_inputs()
    assert render_bodies(traced, apart)[1] != render_bodies(traced, here)[1]
