"""Where a spec's outputs go: the file names, folders and package of one run's outputs. No torch.

`options_for` places a spec's outputs from command-line options (next to the spec by default);
`recorded_options` places them again from a generated file's header.
"""

from __future__ import annotations

import keyword
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from seqgen.project.config import load_config
from seqgen.project.layout import Layout, Recorded, package_of, relative
from seqgen.project.layout import project_root as find_project_root

# Module names a generated model must not shadow: `from os import Os` would find the stdlib's
# os, and a test imports these too
_TAKEN_MODULES = frozenset(
    {
        "torch",
        "nn",
        "pytest",
        "test",
        "conftest",
        "seqgen",
        "jinja2",
        "black",
        "click",
        "numpy",
        "sympy",
        "typing_extensions",
        "_pytest",
    }
)


@dataclass(frozen=True)
class Options:
    """Where files go, how the test imports the model, and which templates render them."""

    module_stem: str  # file stem of the model module, a valid Python module name
    out_dir: str  # directory of the model module
    tests_dir: str  # directory of the test file
    layout: Layout  # what the headers record (paths relative to the project root)
    package: tuple[str, ...]  # the package out_dir is (`mypkg.models`); () for loose files
    test_stem: str  # file stem of the test module
    templates_dir: str | None = None  # custom templates (`--templates DIR`)
    input_override: str | None = None  # `--input`

    @property
    def model_import(self) -> str:
        """The module the test imports: `mypkg.models.cnn`, or `cnn` for loose files."""
        return ".".join((*self.package, self.module_stem))

    @property
    def model_dir_from_tests(self) -> tuple[str, ...] | None:
        """For loose files, the model's folder relative to the test's, as path parts (the test
        puts it on sys.path; () when they share a folder); None for a model in a package."""
        if self.package:
            return None
        rel = PurePosixPath(Path(os.path.relpath(self.out_dir, self.tests_dir)).as_posix())
        return tuple(part for part in rel.parts if part != ".")

    def rendering_inputs(self) -> str:
        """Everything about the outputs' places that reaches the rendered bodies (the test's
        import of the model), and nothing else: two layouts that agree on it render the same
        bodies, so a rendering cached for one serves the other (only the headers differ)."""
        return repr((self.model_import, self.model_dir_from_tests))


def module_stem(spec_path: str) -> str:
    """`variable-input.seq` -> `variable_input`: a file name Python can import."""
    stem = re.sub(r"\W", "_", Path(spec_path).stem, flags=re.ASCII) or "model"
    if stem[0].isdigit():
        stem = "model_" + stem
    if keyword.iskeyword(stem) or stem in sys.stdlib_module_names or stem in _TAKEN_MODULES:
        stem += "_model"
    return stem


def package_in(folder: Path, package_root: Path | None = None) -> tuple[str, ...]:
    """The dotted package a folder is: named from the project's `package-root` when it lies
    below it (namespace packages need no `__init__.py`), else from its `__init__.py` files."""
    folder = folder.resolve()
    if package_root is not None and folder != package_root and folder.is_relative_to(package_root):
        parts = folder.relative_to(package_root).parts
        if all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
            return parts
    return package_of(folder)


def options_for(
    spec_path: str,
    out_dir: str | None = None,
    tests_dir: str | None = None,
    templates_dir: str | None = None,
    input_override: str | None = None,
    project_root: Path | None = None,
) -> Options:
    """Where a spec's outputs go (next to the spec unless told otherwise), and what the headers
    record about it, relative to the project root (found from the spec unless given); the
    project's `package-root` ([tool.seqgen]) names the package the outputs are in."""
    out = out_dir if out_dir is not None else str(Path(spec_path).parent)
    tests = tests_dir if tests_dir is not None else out
    if project_root is not None:
        root, marked = project_root, True
    else:
        root, marked = find_project_root(Path(spec_path).parent)
    package_root = load_config(root).package_root if marked else None
    stem = module_stem(spec_path)
    package = package_in(Path(out), package_root)
    # pytest (prepend mode) names a test module after its file when its folder is no package:
    # two models `cnn` in two packages would both get `test_cnn` there, so name it in full
    test_stem = (
        "test_" + "_".join((*package, stem))
        if package and not package_in(Path(tests), package_root)
        else f"test_{stem}"
    )
    layout = Layout(
        spec=relative(Path(spec_path), root),
        out=relative(Path(out), root),
        tests=relative(Path(tests), root),
        module=stem,
        test=test_stem,
        input=input_override,
        templates=relative(Path(templates_dir), root) if templates_dir is not None else None,
    )
    return Options(
        module_stem=stem,
        out_dir=out,
        tests_dir=tests,
        layout=layout,
        package=package,
        test_stem=test_stem,
        templates_dir=templates_dir,
        input_override=input_override,
    )


def recorded_options(recorded: Recorded) -> tuple[str, Options]:
    """The spec a generated file was made from and the options it was made with, read back
    from its header (paths relative to the current directory where possible)."""
    root, layout = recorded.root, recorded.layout

    def here(rel: str) -> str:
        path = Path(os.path.normpath(root / rel))
        try:
            return os.path.relpath(path)
        except ValueError:  # another drive (Windows)
            return str(path)

    spec = here(layout.spec)
    return spec, options_for(
        spec,
        here(layout.out),
        here(layout.tests),
        here(layout.templates) if layout.templates is not None else None,
        layout.input,
        project_root=root,
    )


def output_paths(options: Options) -> tuple[str, str]:
    """The model module and test file a spec generates."""
    return (
        str(Path(options.out_dir) / f"{options.module_stem}.py"),
        str(Path(options.tests_dir) / f"{options.test_stem}.py"),
    )
