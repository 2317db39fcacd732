"""S0, the static check: milliseconds, in-process, and it never executes what it reads.

It parses each design file and walks the syntax tree: size caps, imports only from
``rules.ALLOWED_IMPORTS``, no name from ``rules.DENIED_NAMES``, no dunder name or attribute (but
``__init__``), no attribute from ``rules.DENIED_ATTRIBUTES``, no private attribute of an imported
module, module level made only of imports, definitions and constants, no async code, and the
entry points the design contract requires. Every finding says what to change.

A NADA design's state.py (the paper's per-player numpy prompt) may also import scipy's computation
modules and pandas (``rules.NADA_EXTRA_IMPORTS``); there S0 also rejects the attributes
``rules.nada_denial`` refuses (readers and writers such as ``pd.read_csv`` and ``.to_csv``,
``pd.eval``, ``.query``, options, plotting, ``scipy.io``), ``.to_string`` with a destination, any
private attribute not on ``self``, scipy subpackages other than the allowed ones, and pandas'
by-name dispatch (``.apply``/``.agg``/``.transform`` given anything but a function or a named
aggregation: ``s.apply("to_csv", path)`` is getattr in disguise).

The write rule (check ``write``: writes only into objects the design created) lives in
``llmabr.sandbox.writes``.
"""

from __future__ import annotations

import ast

from llmabr.sandbox import rules
from llmabr.sandbox.findings import Finding, S0Result
from llmabr.sandbox.writes import write_findings

ALLOWED_LIST = "torch, torch.nn, torch.nn.functional, numpy, math, typing"
NADA_ALLOWED_LIST = (ALLOWED_LIST + ", scipy (" + ", ".join(f"scipy.{name}" for name in rules.NADA_SCIPY_MODULES)
                     + ") and pandas (its top level)")
MAX_NESTING = 24
NADA_PARAMETERS = (
    "bit_rate_kbps_list", "buffer_size_second_list", "delay_second_list", "video_chunk_size_bytes_list",
    "next_chunk_bytes_sizes", "video_chunk_remain_num", "total_chunk_num", "all_bit_rate_kbps",
)


def _is_constant_expression(node: ast.AST) -> bool:
    """Literals, tuples/lists/dicts/sets of them, and arithmetic on them (e.g. ``HISTORY = 8``)."""
    allowed = (ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.Set, ast.UnaryOp, ast.BinOp, ast.operator,
               ast.unaryop, ast.Load, ast.Name)
    return all(isinstance(child, allowed) for child in ast.walk(node))


class _Walker(ast.NodeVisitor):
    def __init__(self, filename: str, nada: bool = False):
        self.filename = filename
        self.nada = nada  # a NADA design's state.py: scipy and pandas allowed, and their rules
        self.allowed = rules.NADA_ALLOWED_IMPORTS if nada else rules.ALLOWED_IMPORTS
        self.allowed_list = NADA_ALLOWED_LIST if nada else ALLOWED_LIST
        self.findings: list[Finding] = []
        self.module_aliases: set[str] = set()
        self.alias_modules: dict[str, str] = {}  # name bound by an import -> the module it is
        self.functions: set[str] = set()  # names only ever bound by def or from-import (safe to pass as functions)
        self.clean_calls: set[int] = set()  # ids of `.to_string` attributes called without a destination
        self.library_names: set[str] = set()  # names bound only to an allowed scipy/pandas module (NADA)
        self.rebound: set[str] = set()  # names assigned or taken as parameters anywhere in the file (NADA)
        self.depth = 0

    def add(self, check: str, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 0)
        self.findings.append(Finding(check, line, getattr(node, "col_offset", 0),
                                     f"{self.filename} line {line}: {message}", self.filename))

    def generic_visit(self, node: ast.AST) -> None:
        self.depth += 1
        if self.depth == MAX_NESTING + 1:
            self.add("size", node, f"code is nested more than {MAX_NESTING} levels deep; flatten it")
        super().generic_visit(node)
        self.depth -= 1

    def visit_Module(self, node: ast.Module) -> None:
        if self.nada:
            defined, rebound, libraries = set(), set(), set()
            for child in ast.walk(node):
                if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                    defined.add(child.name)
                elif isinstance(child, ast.ImportFrom):
                    defined.update(alias.asname or alias.name for alias in child.names)
                    libraries.update(alias.asname or alias.name for alias in child.names
                                     if f"{child.module}.{alias.name}" in rules.NADA_EXTRA_IMPORTS)
                elif isinstance(child, ast.Import):
                    libraries.update(alias.asname for alias in child.names
                                     if alias.asname and alias.name in rules.NADA_EXTRA_IMPORTS)
                elif isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                    rebound.add(child.id)
                elif isinstance(child, ast.arg):
                    rebound.add(child.arg)
            self.functions = (defined | (rules.SAFE_BUILTINS - {"__build_class__", "__name__"})) - rebound
            self.rebound = rebound
            # `from scipy import signal` binds a reserved name (the signal module's) to scipy.signal: fine
            self.library_names = libraries - rebound
        self.generic_visit(node)

    # imports
    def _library_hint(self, module: str) -> str:
        if self.nada and module.split(".")[0] in ("scipy", "pandas"):
            return (f"; a NADA design may use {self.allowed_list} for computation, not their I/O, option or "
                    "internal modules")
        return f"; designs may import only {self.allowed_list}"

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in self.allowed:
                self.add("import", node, f"`import {alias.name}` is not allowed{self._library_hint(alias.name)}")
            else:
                bound = alias.asname or alias.name.split(".")[0]
                self.module_aliases.add(bound)
                self.alias_modules[bound] = alias.name if alias.asname else bound

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.add("import", node, "relative imports are not allowed; a design is two self-contained files")
            return
        if module not in self.allowed:
            self.add("import", node, f"`from {module} import ...` is not allowed{self._library_hint(module)}")
            return
        for alias in node.names:
            if alias.name == "*":
                self.add("import", node, f"`from {module} import *` is not allowed; import the names you use")
            elif (alias.name in rules.DENIED_ATTRIBUTES or alias.name.startswith("_")
                  or alias.name in rules.GLOBAL_STATE_ATTRIBUTES or alias.name.startswith(rules.GLOBAL_STATE_PREFIXES)):
                self.add("import", node, f"`from {module} import {alias.name}` is not allowed (I/O, process or internal API)")
            elif self.nada and module in rules.NADA_EXTRA_IMPORTS and rules.nada_denial(alias.name):
                self.add("import", node, f"`from {module} import {alias.name}` is not allowed: "
                                         f"{rules.nada_denial(alias.name)}; compute with the library's numeric API")
            elif f"{module}.{alias.name}" in self.allowed:
                self.module_aliases.add(alias.asname or alias.name)
                self.alias_modules[alias.asname or alias.name] = f"{module}.{alias.name}"

    # names and attributes
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in rules.DENIED_NAMES and node.id not in self.library_names:
            self.add("name", node, f"`{node.id}` is not allowed in designs (no I/O, dynamic code, or process access)")
        elif node.id.startswith("__") and node.id.endswith("__"):
            self.add("dunder", node, f"`{node.id}` is not allowed: designs may not reach interpreter internals")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr.startswith("__") and attr.endswith("__") and attr not in rules.ALLOWED_DUNDERS:
            self.add("dunder", node, f"attribute `.{attr}` is not allowed: designs may not reach interpreter internals")
        elif attr in rules.DENIED_ATTRIBUTES:
            self.add("attribute", node, f"attribute `.{attr}` is not allowed (file, process, compile or global-state "
                                        "APIs); compute features with tensor operations only")
        elif attr.startswith("_") and self._rooted_at_module(node.value):
            self.add("attribute", node, f"private attribute `.{attr}` of a library is not allowed; use its public API")
        elif self.nada:
            self._nada_attribute(node)
        self.generic_visit(node)

    def _nada_attribute(self, node: ast.Attribute) -> None:
        attr, receiver = node.attr, node.value
        if attr.startswith("_"):
            if not (isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")):
                self.add("attribute", node, f"private attribute `.{attr}` is not allowed in a NADA state function "
                                            "(it reaches library internals); use the public API")
        elif attr == "to_string" and id(node) in self.clean_calls:
            pass
        elif rules.nada_denial(attr):
            self.add("attribute", node, f"attribute `.{attr}` is not allowed in a NADA state function: "
                                        f"{rules.nada_denial(attr)}; compute features from the lists you are given")
        elif (isinstance(receiver, ast.Name) and self.alias_modules.get(receiver.id) == "scipy"
              and attr not in rules.NADA_SCIPY_MODULES):
            self.add("attribute", node, f"`scipy.{attr}` is not allowed: a NADA design may use "
                                        f"{', '.join(f'scipy.{name}' for name in rules.NADA_SCIPY_MODULES)}")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if self.nada and isinstance(func, ast.Attribute):
            if func.attr == "to_string":
                if node.args or any(keyword.arg in (None, "buf") for keyword in node.keywords):
                    self.add("attribute", node, "`.to_string(...)` with a destination writes a file: call "
                                                "`.to_string()` alone, or better `.to_numpy()` / `.to_list()`")
                self.clean_calls.add(id(func))  # one finding per call is enough
            elif func.attr in rules.NADA_DISPATCH_METHODS:
                self._dispatch(node, func.attr)
        self.generic_visit(node)

    def _dispatch(self, node: ast.Call, method: str) -> None:
        if any(keyword.arg is None for keyword in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
            self.add("dispatch", node, f"`.{method}(*args / **kwargs)` is not allowed in a NADA state function: "
                                       "pass the function explicitly")
            return
        function = node.args[0] if node.args else next(
            (keyword.value for keyword in node.keywords if keyword.arg in ("func", "arg")), None)
        if function is None and method in ("agg", "aggregate"):  # named aggregation: out=("column", function)
            candidates = [kw.value.elts[1] if isinstance(kw.value, ast.Tuple) and len(kw.value.elts) == 2 else kw.value
                          for kw in node.keywords]
        else:
            candidates = [] if function is None else [function]
        for candidate in candidates:
            if not self._is_function(candidate):
                names = ", ".join(repr(name) for name in sorted(rules.NADA_AGGREGATION_NAMES)[:8])
                self.add("dispatch", candidate, f"`.{method}()` must be given a function (a lambda, a def of this "
                                                f"file, a library function such as np.mean) or a named aggregation "
                                                f"({names}, ...): pandas looks any other name up on the object "
                                                f"like getattr (`.{method}('to_csv', path)` would write a file)")

    def _is_function(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Lambda):
            return True
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str) and node.value in rules.NADA_AGGREGATION_NAMES
        if isinstance(node, ast.Name):
            return node.id in self.functions
        if isinstance(node, ast.Attribute):  # np.mean, stats.zscore: from a module no assignment rebinds
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            return self._rooted_at_module(node.value) and root.id not in self.rebound and not node.attr.startswith("_")
        if isinstance(node, (ast.List, ast.Tuple)):
            return all(self._is_function(element) for element in node.elts)
        if isinstance(node, ast.Dict):
            return all(key is not None and self._is_function(value) for key, value in zip(node.keys, node.values))
        return False

    def _rooted_at_module(self, node: ast.AST) -> bool:
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id in self.module_aliases

    def _check_defined_name(self, node: ast.AST, name: str) -> None:
        if name in rules.DENIED_NAMES:
            self.add("name", node, f"the name `{name}` is reserved; choose another")
        elif name.startswith("__") and name.endswith("__") and name not in rules.ALLOWED_DUNDERS:
            self.add("dunder", node, f"defining `{name}` is not allowed")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_defined_name(node, node.name)
        for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
            self._check_defined_name(arg, arg.arg)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_defined_name(node, node.name)
        for keyword in node.keywords:
            self.add("structure", node, f"class keyword `{keyword.arg}=` (metaclasses etc.) is not allowed")
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node) -> None:
        self.add("structure", node, "async functions are not allowed in designs")

    def visit_Await(self, node) -> None:
        self.add("structure", node, "await is not allowed in designs")

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self._check_defined_name(node, name)


def _module_structure(tree: ast.Module, filename: str) -> list[Finding]:
    findings = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # docstring
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _is_constant_expression(node.value):
            continue
        findings.append(Finding("structure", node.lineno, node.col_offset,
                                f"{filename} line {node.lineno}: only imports, functions, classes and constants may "
                                "stand at module level (code there would run on import); move it into a function",
                                filename))
    return findings


def check_source(source: str, filename: str, kind: str = "torch") -> tuple[list[Finding], ast.Module | None]:
    """All findings for one file, and its tree when it parsed; ``kind="nada"``: a NADA design's state.py."""
    if len(source.encode()) > rules.MAX_SOURCE_BYTES or source.count("\n") + 1 > rules.MAX_SOURCE_LINES:
        return [Finding("size", 0, 0, f"{filename}: {len(source.encode())} bytes / {source.count(chr(10)) + 1} lines "
                                      f"exceed the caps ({rules.MAX_SOURCE_BYTES} bytes, {rules.MAX_SOURCE_LINES} lines)",
                        filename)], None
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as error:
        return [Finding("syntax", error.lineno or 0, error.offset or 0,
                        f"{filename} line {error.lineno}: syntax error: {error.msg}", filename)], None
    except (ValueError, RecursionError) as error:  # null bytes, absurd nesting
        return [Finding("syntax", 0, 0, f"{filename}: cannot be parsed: {error}", filename)], None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > rules.MAX_AST_NODES:
        return [Finding("size", 0, 0, f"{filename}: {nodes} syntax nodes exceed the cap of {rules.MAX_AST_NODES}; "
                                      "write a smaller design", filename)], tree
    walker = _Walker(filename, nada=kind == "nada")
    try:
        walker.visit(tree)
        flows = write_findings(tree, filename, walker)
    except RecursionError:  # an expression thousands of operators long
        return [Finding("size", 0, 0, f"{filename}: an expression is nested too deeply to check; split it into "
                                      "steps", filename)], tree
    return walker.findings + _module_structure(tree, filename) + flows, tree


def _top_level(tree: ast.Module, kind: type, name: str):
    return next((node for node in tree.body if isinstance(node, kind) and node.name == name), None)


def _entrypoints(state_tree, net_tree, kind: str) -> list[Finding]:
    findings = []
    if state_tree is not None:
        if kind == "nada":
            func = _top_level(state_tree, ast.FunctionDef, rules.NADA_STATE_FUNCTION)
            if func is None:
                findings.append(Finding("entrypoint", 0, 0, "state.py must define `def state_func(...)` "
                                                            f"with parameters {', '.join(NADA_PARAMETERS)}", "state.py"))
            else:
                names = tuple(arg.arg for arg in func.args.args)
                if names != NADA_PARAMETERS:
                    findings.append(Finding("entrypoint", func.lineno, 0,
                                            f"state.py line {func.lineno}: state_func must take exactly "
                                            f"({', '.join(NADA_PARAMETERS)}), got ({', '.join(names)})", "state.py"))
        else:
            func = _top_level(state_tree, ast.FunctionDef, rules.STATE_FUNCTION)
            if func is None:
                findings.append(Finding("entrypoint", 0, 0, "state.py must define `def state(m)` returning a dict of "
                                                            "feature tensors", "state.py"))
            elif len(func.args.args) != 1 or func.args.vararg or func.args.kwarg:
                findings.append(Finding("entrypoint", func.lineno, 0, f"state.py line {func.lineno}: `state` must take "
                                                                      "exactly one argument (the measurement dict)",
                                        "state.py"))
    if net_tree is not None:
        trunk = _top_level(net_tree, ast.ClassDef, rules.TRUNK_CLASS)
        if trunk is None:
            findings.append(Finding("entrypoint", 0, 0, "net.py must define `class Trunk(nn.Module)`", "net.py"))
        elif not any((isinstance(base, ast.Attribute) and base.attr == "Module")
                     or (isinstance(base, ast.Name) and base.id == "Module") for base in trunk.bases):
            findings.append(Finding("entrypoint", trunk.lineno, 0,
                                    f"net.py line {trunk.lineno}: Trunk must derive from nn.Module", "net.py"))
    return findings


def check_design_sources(state_source: str, net_source: str | None, kind: str = "torch") -> S0Result:
    """S0 on a design's two files (``net_source`` may be None for a NADA design)."""
    findings, state_tree = check_source(state_source, "state.py", kind)
    net_tree = None
    if net_source is not None:
        net_findings, net_tree = check_source(net_source, "net.py")
        findings += net_findings
    elif kind != "nada":
        findings.append(Finding("entrypoint", 0, 0, "net.py is missing: a torch design needs class Trunk", "net.py"))
    findings += _entrypoints(state_tree, net_tree, kind)
    return S0Result(findings)


def format_findings(findings: list[Finding]) -> str:
    return "\n".join(f"[{finding.check}] {finding.message}" for finding in findings)
