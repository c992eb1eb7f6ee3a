"""The stages that need no torch never import it: parsing a spec, laying out a project, rendering
and reporting work (and `seqgen new --check` stays fast) without the 1-3 s `import torch`.

One subprocess imports each package below and every module in it (found by walking the package
with pkgutil, so a new module is covered without editing this file), with an import hook that
records, and refuses, every import of torch. The trace stage may import torch; these may not.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.xdist_group("layering")  # one subprocess for the module

TORCH_FREE = [
    "seqgen.diagram",
    "seqgen.ir",
    "seqgen.lang",
    "seqgen.project",
    "seqgen.render",
    "seqgen.report",
]

# Runs in a fresh interpreter (cwd: the checkout, so it imports this checkout's seqgen).
# Prints {module: [the import chain that reached torch, innermost last]} for every module whose
# import reached torch, or None for a module that imported cleanly.
PROBE = r"""
import importlib, json, pkgutil, sys, traceback

attempts = []

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            chain = [
                f"{f.filename.split('seqgen/', 1)[-1]}:{f.lineno} {(f.line or '').strip()}"
                for f in traceback.extract_stack()
                if "/seqgen/" in f.filename
            ]
            attempts.append(chain)
            raise ImportError(f"{name} is not importable here")
        return None

sys.meta_path.insert(0, NoTorch())
names = []
for package in json.loads(sys.argv[1]):
    names.append(package)
    try:
        path = importlib.import_module(package).__path__
    except ImportError:
        continue
    for info in pkgutil.walk_packages(path, package + ".", onerror=lambda name: None):
        names.append(info.name)

result = {}
for name in names:
    del attempts[:]
    try:
        importlib.import_module(name)
        error = None
    except ImportError as e:
        error = f"{type(e).__name__}: {e}"
    result[name] = attempts[0] if attempts else (None if error is None else [error])
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def torch_imports() -> dict[str, list[str] | None]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(TORCH_FREE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("package", TORCH_FREE)
def test_package_imports_no_torch(package: str, torch_imports: dict[str, list[str] | None]) -> None:
    modules = {
        m: chain for m, chain in torch_imports.items() if m.split(".")[:2] == package.split(".")
    }
    assert len(modules) > 1, f"no modules found in {package}"
    offenders = {m: chain for m, chain in modules.items() if chain is not None}
    assert not offenders, "these modules import torch:\n" + "\n".join(
        f"  {m}: " + " -> ".join(chain or []) for m, chain in sorted(offenders.items())
    )
