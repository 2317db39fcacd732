"""Turn design source into callables. THIS EXECUTES DESIGN CODE.

Call it only inside the cage (``llmabr.sandbox.probe``) or the caged trainer, never in the
orchestrating process. As a second line of defence after S0, each source runs with builtins
reduced to ``rules.SAFE_BUILTINS`` and an ``__import__`` that admits only ``rules.ALLOWED_IMPORTS``
(a NADA design's state.py: ``rules.NADA_ALLOWED_IMPORTS``, which adds scipy's computation modules
and pandas). There, ``import pandas`` / ``import scipy.stats`` bind a ``library_view`` of the
module: attributes that ``rules.nada_denial`` refuses (readers and writers, pd.eval, options,
private names) and submodules outside the allowed ones raise AttributeError, even where S0
missed the source that names them.
"""

from __future__ import annotations

import builtins
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable

from llmabr.design.format import Design
from llmabr.sandbox import rules


def _module_allowed(name: str) -> bool:
    """A NADA design may reach the allowed modules and the submodules of those (scipy itself aside:
    its subpackages are listed one by one), never a private or denied part."""
    if name in rules.NADA_ALLOWED_IMPORTS:
        return True
    parts = name.split(".")
    if any(rules.nada_denial(part) for part in parts[1:]):
        return False
    return any(name.startswith(parent + ".") for parent in rules.NADA_EXTRA_IMPORTS if parent != "scipy")


def library_view(module: types.ModuleType) -> types.ModuleType:
    """``module`` as a NADA design sees it (see the module docstring); allowed attributes are cached."""

    class LibraryView(types.ModuleType):
        def __getattr__(self, attr: str):
            reason = rules.nada_denial(attr)
            if reason:
                raise AttributeError(f"{module.__name__}.{attr} is not available to designs: {reason}")
            value = getattr(module, attr)
            if isinstance(value, types.ModuleType):
                if not _module_allowed(value.__name__):
                    raise AttributeError(f"{value.__name__} is not available to designs; NADA designs may use "
                                         f"{', '.join(sorted(rules.NADA_EXTRA_IMPORTS))}")
                if value.__name__ not in rules.ALLOWED_IMPORTS:
                    value = library_view(value)
            types.ModuleType.__setattr__(self, attr, value)
            return value

        def __setattr__(self, attr: str, value) -> None:
            raise AttributeError(f"designs may not change library modules ({module.__name__}.{attr})")

        def __delattr__(self, attr: str) -> None:
            raise AttributeError(f"designs may not change library modules ({module.__name__}.{attr})")

    return LibraryView(module.__name__, getattr(module, "__doc__", None))


def _importer(nada: bool):
    allowed = rules.NADA_ALLOWED_IMPORTS if nada else rules.ALLOWED_IMPORTS
    libraries = {name.split(".")[0] for name in allowed} - {"__future__", "math", "typing"}

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - import protocol
        if level != 0:
            raise ImportError("relative imports are not allowed in designs")
        if name not in allowed:
            # Libraries' C code imports their own, already loaded modules while a design frame is on top
            # of the stack (torch's tracer: torch.jit, to warn about a shape-dependent branch; numpy:
            # numpy._core._methods on a first ndarray.max()), so the import lands here. Such C-level
            # imports pass a list as fromlist ([] or ["__doc__"]); an import statement passes None or a
            # tuple. The module goes back to the C caller; S0 rejects such imports in design source.
            c_level = isinstance(fromlist, list) or name.startswith("torch.")
            if (c_level and all(item == "__doc__" for item in fromlist or ()) and name in sys.modules
                    and name.split(".")[0] in libraries):
                return builtins.__import__(name, globals, locals, fromlist, level)
            raise ImportError(f"import of {name!r} is not allowed in designs; allowed: {sorted(allowed)}")
        for item in fromlist or ():
            if item in rules.DENIED_ATTRIBUTES or item.startswith("_"):
                raise ImportError(f"'from {name} import {item}' is not allowed in designs")
            if name in rules.NADA_EXTRA_IMPORTS and rules.nada_denial(item):
                raise ImportError(f"'from {name} import {item}' is not allowed in designs: {rules.nada_denial(item)}")
        imported = builtins.__import__(name, globals, locals, fromlist, level)
        if name.split(".")[0] not in ("scipy", "pandas"):
            return imported
        return library_view(sys.modules[name] if fromlist else sys.modules[name.split(".")[0]])

    return guarded_import


def safe_builtins(nada: bool = False) -> dict[str, Any]:
    """The builtins design code runs with; ``nada``: a NADA state.py's (scipy and pandas importable)."""
    table = {name: getattr(builtins, name) for name in rules.SAFE_BUILTINS if hasattr(builtins, name)}
    table["__import__"] = _importer(nada)
    return table


def execute(source: str, filename: str, nada: bool = False) -> dict[str, Any]:
    """Run one design file in a fresh namespace with restricted builtins; returns the namespace."""
    namespace: dict[str, Any] = {"__builtins__": safe_builtins(nada),
                                 "__name__": f"design_{filename.replace('/', '_')}"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - the caged probe/trainer is the only caller
    return namespace


@dataclass
class LoadedDesign:
    state_fn: Callable
    trunk_cls: type
    kind: str
    exportable: bool


def load_modules(design: Design) -> LoadedDesign:
    """Execute the design's files and return its state function and trunk class."""
    state_ns = execute(design.state_source, f"<design>/{design.name}/state.py", nada=design.kind == "nada")
    if design.kind == "nada":
        from llmabr.design.nada import NadaTrunk, nada_state_fn

        state_fn = nada_state_fn(state_ns[rules.NADA_STATE_FUNCTION])
        trunk_cls = NadaTrunk
        if design.net_source is not None:
            trunk_cls = execute(design.net_source, f"<design>/{design.name}/net.py")[rules.TRUNK_CLASS]
        return LoadedDesign(state_fn, trunk_cls, "nada", exportable=False)
    state_fn = state_ns[rules.STATE_FUNCTION]
    trunk_cls = execute(design.net_source or "", f"<design>/{design.name}/net.py")[rules.TRUNK_CLASS]
    return LoadedDesign(state_fn, trunk_cls, "torch", exportable=True)
