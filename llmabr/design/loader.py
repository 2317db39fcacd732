"""Turn design source into callables. THIS EXECUTES DESIGN CODE.

Call it only inside the cage (``llmabr.sandbox.probe``) or the caged trainer, never in the
orchestrating process. As a second line of defence after S0, each source runs with builtins
reduced to ``rules.SAFE_BUILTINS`` and an ``__import__`` that admits only
``rules.ALLOWED_IMPORTS``.
"""

from __future__ import annotations

import builtins
import sys
from dataclasses import dataclass
from typing import Any, Callable

from llmabr.design.format import Design
from llmabr.sandbox import rules


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - import protocol
    if level != 0:
        raise ImportError("relative imports are not allowed in designs")
    if name not in rules.ALLOWED_IMPORTS:
        # torch's C++ tracer imports its own, already loaded modules (torch.jit, to warn about a
        # shape-dependent branch) while a design frame is on top of the stack, so the import lands
        # here (C-level imports pass fromlist ["__doc__"]). S0 rejects such imports in design source.
        if name.startswith("torch.") and name in sys.modules and all(item == "__doc__" for item in fromlist or ()):
            return builtins.__import__(name, globals, locals, fromlist, level)
        raise ImportError(f"import of {name!r} is not allowed in designs; allowed: {sorted(rules.ALLOWED_IMPORTS)}")
    for item in fromlist or ():
        if item in rules.DENIED_ATTRIBUTES or item.startswith("_"):
            raise ImportError(f"'from {name} import {item}' is not allowed in designs")
    return builtins.__import__(name, globals, locals, fromlist, level)


def safe_builtins() -> dict[str, Any]:
    table = {name: getattr(builtins, name) for name in rules.SAFE_BUILTINS if hasattr(builtins, name)}
    table["__import__"] = _guarded_import
    return table


def execute(source: str, filename: str) -> dict[str, Any]:
    """Run one design file in a fresh namespace with restricted builtins; returns the namespace."""
    namespace: dict[str, Any] = {"__builtins__": safe_builtins(), "__name__": f"design_{filename.replace('/', '_')}"}
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
    state_ns = execute(design.state_source, f"<design>/{design.name}/state.py")
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
