"""S0, the static check: milliseconds, in-process, and it never executes what it reads.

It parses each design file and walks the syntax tree: size caps, imports only from
``rules.ALLOWED_IMPORTS``, no name from ``rules.DENIED_NAMES``, no dunder name or attribute (but
``__init__``), no attribute from ``rules.DENIED_ATTRIBUTES``, no private attribute of an imported
module, module level made only of imports, definitions and constants, no async code, and the
entry points the design contract requires. Every finding says what to change.

The write rule (check ``write``: writes only into objects the design created) lives in
``llmabr.sandbox.writes``.
"""

from __future__ import annotations

import ast

from llmabr.sandbox import rules
from llmabr.sandbox.findings import Finding, S0Result
from llmabr.sandbox.writes import write_findings

ALLOWED_LIST = "torch, torch.nn, torch.nn.functional, numpy, math, typing"
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
    def __init__(self, filename: str):
        self.filename = filename
        self.findings: list[Finding] = []
        self.module_aliases: set[str] = set()
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

    # imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in rules.ALLOWED_IMPORTS:
                self.add("import", node, f"`import {alias.name}` is not allowed; designs may import only {ALLOWED_LIST}")
            else:
                self.module_aliases.add((alias.asname or alias.name).split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.add("import", node, "relative imports are not allowed; a design is two self-contained files")
            return
        if module not in rules.ALLOWED_IMPORTS:
            self.add("import", node, f"`from {module} import ...` is not allowed; designs may import only {ALLOWED_LIST}")
            return
        for alias in node.names:
            if alias.name == "*":
                self.add("import", node, f"`from {module} import *` is not allowed; import the names you use")
            elif (alias.name in rules.DENIED_ATTRIBUTES or alias.name.startswith("_")
                  or alias.name in rules.GLOBAL_STATE_ATTRIBUTES or alias.name.startswith(rules.GLOBAL_STATE_PREFIXES)):
                self.add("import", node, f"`from {module} import {alias.name}` is not allowed (I/O, process or internal API)")
            elif f"{module}.{alias.name}" in rules.ALLOWED_IMPORTS:
                self.module_aliases.add(alias.asname or alias.name)

    # names and attributes
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in rules.DENIED_NAMES:
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
        self.generic_visit(node)

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


def check_source(source: str, filename: str) -> tuple[list[Finding], ast.Module | None]:
    """All findings for one file, and its tree when it parsed."""
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
    walker = _Walker(filename)
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
    findings, state_tree = check_source(state_source, "state.py")
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
