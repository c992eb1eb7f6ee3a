"""The user's own layer classes (`use mypkg.layers:Gate` in a spec): imported here, at the trace,
and only from the modules the project allows.

Importing runs a module's code and specs may come from anyone, so the allowed modules are set
around a run by `lang.uses.allowing` (from `[tool.seqgen] allow-imports` and `--allow-import`);
every import goes through `load_class`, which refuses the others with a located error.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

from torch import nn

from seqgen.errors import TraceError
from seqgen.ir import UseSpec
from seqgen.lang.uses import allow_errors, allowed_modules
from seqgen.layers.torch_nn import declare_inferred, first_line


def load_class(use: UseSpec) -> type[nn.Module]:
    """The nn.Module subclass a `use` line names, imported (with the spec's folder on sys.path,
    as the generated model beside it imports it); a located error where that is not allowed or
    fails."""
    refused = allow_errors([use], allowed_modules())
    if refused:
        raise refused[0]
    folder = str(Path(use.loc.path).resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(use.module)
    except Exception as e:  # the user's module failed: its error, located on the `use` line
        raise TraceError(
            f"cannot import {use.module!r}: {type(e).__name__}: {first_line(e)}",
            location=use.loc,
            hint="install the package, or run seqgen where it is importable (the spec's "
            "folder is searched too)",
        ) from e
    finally:
        if added:
            sys.path.remove(folder)
    cls = getattr(module, use.class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        what = "has no" if cls is None else "has no nn.Module class"
        raise TraceError(
            f"{use.module!r} {what} {use.class_name!r}", location=use.loc, hint="check the name"
        )
    params = inspect.signature(cls.__init__).parameters
    for name, _ in use.inferred:
        if name not in params:
            raise TraceError(
                f"{use.import_path} takes no argument {name!r} to infer",
                location=use.loc,
                hint=f"its arguments: {', '.join(list(params)[1:]) or 'none'}",
            )
    declare_inferred(cls, use.inferred)
    return cls
