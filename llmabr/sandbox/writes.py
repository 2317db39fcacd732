"""S0's write rule (check ``write``), used by ``llmabr.sandbox.static.check_source``.

The write rule (check ``write``): a design may assign to, update in place or delete attributes and
items only of objects it created: ``self`` in its own methods, and the tensors, lists and dicts it
builds. Everything else may be shared with the evaluator when they run in one interpreter: a
library (``np.zeros = f``), a library class (``torch.Tensor.argmax = f``), a class object, the
evaluator's inputs (``m["chunks_left"][:] = 0``). ``_Flows`` decides which values those are: a
flow-insensitive analysis of the whole file, iterated to a fixpoint, that follows values from
imports, parameters, ``type(...)`` and ``super(...)`` through aliases, containers, attributes,
default arguments, class bodies, comprehensions, walrus, ``for``/``with`` targets, unpacking and
the design's own function returns. Where it cannot tell, it counts the value as not created.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from llmabr.sandbox import rules
from llmabr.sandbox.findings import Finding

if TYPE_CHECKING:
    from llmabr.sandbox.static import _Walker


def write_findings(tree: ast.Module, filename: str, walker: "_Walker") -> list[Finding]:
    """Every write into an object the design did not create, in one parsed file."""
    return _Flows(tree, filename, walker).findings()


# What a value may be when S0 cannot prove the design created it: something reachable from an import,
# anything at all, a parameter whose callers S0 cannot see (a lambda's, a function passed as a value),
# a class object, a super() proxy, or the evaluator's input to an entry point (state, forward, __init__).
MODULE, UNKNOWN, PARAM, CLASS, SUPER, INPUT = "module", "unknown", "param", "class", "super", "input"
_RANK = {MODULE: 5, UNKNOWN: 4, PARAM: 3, CLASS: 2, SUPER: 1, INPUT: 0}
_HINTS = {
    MODULE: "patching a library changes what the evaluator computes",
    UNKNOWN: "S0 cannot tell which object that is, so it may belong to a library or the evaluator",
    PARAM: "S0 cannot see what its callers pass, so it may belong to a library or the evaluator",
    CLASS: "a class object is shared by all its instances and may be a library's: keep state on `self`",
    SUPER: "keep state on `self`",
    INPUT: "it is the evaluator's input: compute a new tensor instead (e.g. `x = m[\"buffer_s\"].clone()`)",
}
_ONLY_CREATED = ("designs may only assign to attributes and items of objects they create (`self.x = ...` in "
                 "their own methods, tensors, lists and dicts they build)")
# Builtins whose result holds none of their arguments, those that build a new container of them,
# and (any other builtin: next, min, max, sum, ...) those that may return an argument itself.
SCALAR_BUILTINS = frozenset({
    "len", "abs", "int", "float", "bool", "str", "round", "range", "isinstance", "issubclass", "hasattr",
    "callable", "hash", "id", "repr", "format", "chr", "ord", "bin", "hex", "oct", "divmod", "pow", "complex",
    "any", "all", "print", "bytes", "bytearray",
})
CONTAINER_BUILTINS = frozenset({"list", "tuple", "dict", "set", "frozenset", "sorted", "reversed", "iter", "enumerate",
                                "zip", "map", "filter"})
# Library calls that return a cached, process-wide object rather than a new one.
SINGLETON_FACTORIES = frozenset({"finfo", "iinfo", "dtype", "get_bit_generator", "get_default_dtype",
                                 "get_default_device"})
# Calls and methods whose result may be (a view of) their argument or receiver, or one of its elements.
PASS_THROUGH = frozenset({
    "asarray", "asanyarray", "ascontiguousarray", "asfortranarray", "as_tensor", "from_numpy", "atleast_1d",
    "atleast_2d", "atleast_3d", "broadcast_to", "broadcast_arrays", "broadcast_tensors", "squeeze", "unsqueeze",
    "reshape", "ravel", "flatten", "narrow", "select", "transpose", "swapaxes", "swapdims", "moveaxis", "movedim",
    "permute", "chunk", "split", "tensor_split", "array_split", "unbind", "diagonal", "detach", "real", "imag",
    "view_as_real", "view_as_complex", "as_strided", "unflatten", "t", "adjoint", "expand", "view", "view_as",
    "expand_as", "reshape_as", "contiguous", "to", "type", "float", "double", "half", "bfloat16", "int", "long",
    "short", "bool", "cpu", "numpy", "unfold", "astype", "item", "tolist", "get", "pop", "popitem", "setdefault",
    "values", "keys", "items", "mro", "fromkeys",
})
# Methods that change a container in place (checked on objects the design did not create).
CONTAINER_MUTATORS = frozenset({"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update",
                                "setdefault", "discard"})
# Submodules of the allowed imports: an attribute of a module that is itself a module.
KNOWN_SUBMODULES = frozenset({"nn", "functional", "init", "distributions", "modules", "random", "linalg", "fft",
                              "special", "ma", "char", "polynomial", "emath", "autograd", "math"})
# Library attributes that are plain values (dtypes, numeric constants): harmless as call arguments.
CONSTANT_ATTRIBUTES = frozenset({
    "float16", "float32", "float64", "bfloat16", "half", "float", "double", "int8", "int16", "int32", "int64",
    "uint8", "long", "int", "short", "bool", "bool_", "complex64", "complex128", "float_", "int_", "intp",
    "pi", "e", "inf", "nan", "tau", "newaxis", "euler_gamma",
})


@dataclass(frozen=True)
class _Origin:
    """Where a value may come from, when S0 cannot prove the design created it."""

    kinds: frozenset
    label: str  # the source as written: `np`, `m`, `type(...)`
    what: str  # what that source is: "the imported module numpy"
    module_object: bool = False  # exactly an imported module (np, torch.nn), not an object inside one
    factory: bool = False  # may be a library callable that returns a process-wide object (np.finfo)


def _origin(kind: str, label: str, what: str, module_object: bool = False, factory: bool = False) -> _Origin:
    return _Origin(frozenset({kind}), label, what, module_object, factory)


def _rank(origin: _Origin) -> int:
    return max(_RANK[kind] for kind in origin.kinds)


def _join(*origins):
    result = None
    for origin in origins:
        if origin is None or result == origin:
            continue
        if result is None:
            result = origin
            continue
        lead = result if _rank(result) >= _rank(origin) else origin
        result = _Origin(result.kinds | origin.kinds, lead.label, lead.what,
                         result.module_object and origin.module_object, result.factory or origin.factory)
    return result


def _value(origin):
    """A value computed from ``origin`` (a call result, an element): neither a module nor a factory."""
    return replace(origin, module_object=False, factory=False) if origin is not None else None


def _strip_input(origin):
    """Arithmetic on an input makes a new object: what is left is what else the value may be."""
    if origin is None or INPUT not in origin.kinds:
        return origin
    kinds = origin.kinds - {INPUT}
    return replace(origin, kinds=kinds) if kinds else None


def _source(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


class _Scope:
    def __init__(self, kind: str, parent):
        self.kind, self.parent = kind, parent
        self.bound, self.globals, self.nonlocals = set(), set(), set()

    def root(self):
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def bind(self, name: str) -> None:
        if name in self.globals:
            self.root().bound.add(name)
        elif name not in self.nonlocals:
            self.bound.add(name)


def _all_args(args: ast.arguments) -> list:
    extra = [arg for arg in (args.vararg, args.kwarg) if arg is not None]
    return args.posonlyargs + args.args + extra + args.kwonlyargs


class _Scopes(ast.NodeVisitor):
    """Pass one: which names each scope binds (Python's rules: class bodies do not enclose methods)."""

    def __init__(self, tree: ast.Module):
        self.of: dict[int, _Scope] = {}
        self.functions: set[str] = set()  # every def in the file
        self.methods: set[str] = set()  # defs in class bodies that receive `self` (not staticmethod)
        self.properties: set[str] = set()  # defs decorated with property (or a property's .setter)
        self.current = None
        self.visit(tree)

    def _open(self, node, kind: str) -> _Scope:
        scope = self.of[id(node)] = _Scope(kind, self.current)
        return scope

    def _within(self, scope: _Scope, nodes) -> None:
        outer, self.current = self.current, scope
        for node in nodes:
            self.visit(node)
        self.current = outer

    def visit_Module(self, node):
        self.current = self._open(node, "module")
        self.generic_visit(node)

    def _signature(self, args: ast.arguments) -> None:
        for node in args.defaults + [default for default in args.kw_defaults if default is not None]:
            self.visit(node)
        for arg in _all_args(args):
            if arg.annotation is not None:
                self.visit(arg.annotation)

    def visit_FunctionDef(self, node):
        self.current.bind(node.name)
        self.functions.add(node.name)
        if self.current.kind == "class" and not any(isinstance(d, ast.Name) and d.id == "staticmethod"
                                                    for d in node.decorator_list):
            self.methods.add(node.name)
        if any((isinstance(d, ast.Name) and d.id == "property") or (isinstance(d, ast.Attribute) and d.attr == "setter")
               for d in node.decorator_list):
            self.properties.add(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._signature(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        scope = self._open(node, "function")
        scope.bound.update(arg.arg for arg in _all_args(node.args))
        self._within(scope, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._signature(node.args)
        scope = self._open(node, "function")
        scope.bound.update(arg.arg for arg in _all_args(node.args))
        self._within(scope, [node.body])

    def visit_ClassDef(self, node):
        self.current.bind(node.name)
        for child in node.decorator_list + node.bases + [keyword.value for keyword in node.keywords]:
            self.visit(child)
        self._within(self._open(node, "class"), node.body)

    def _comprehension(self, node, parts) -> None:
        self.visit(node.generators[0].iter)
        scope = self._open(node, "comprehension")
        outer, self.current = self.current, scope
        for index, generator in enumerate(node.generators):
            self.visit(generator.target)
            if index:
                self.visit(generator.iter)
            for condition in generator.ifs:
                self.visit(condition)
        for part in parts:
            self.visit(part)
        self.current = outer

    def visit_ListComp(self, node):
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node):
        self._comprehension(node, [node.key, node.value])

    def visit_Name(self, node):
        if not isinstance(node.ctx, ast.Load):
            self.current.bind(node.id)

    def visit_NamedExpr(self, node):
        scope = self.current
        while scope.kind == "comprehension":
            scope = scope.parent
        scope.bind(node.target.id)
        self.visit(node.value)

    def visit_Import(self, node):
        for alias in node.names:
            self.current.bind((alias.asname or alias.name).split(".")[0])

    def visit_ImportFrom(self, node):
        for alias in node.names:
            if alias.name != "*":
                self.current.bind(alias.asname or alias.name)

    def visit_ExceptHandler(self, node):
        if node.name:
            self.current.bind(node.name)
        self.generic_visit(node)

    def visit_Global(self, node):
        self.current.globals.update(node.names)

    def visit_Nonlocal(self, node):
        self.current.nonlocals.update(node.names)

    def visit_MatchAs(self, node):
        if node.name:
            self.current.bind(node.name)
        self.generic_visit(node)

    visit_MatchStar = visit_MatchAs

    def visit_MatchMapping(self, node):
        if node.rest:
            self.current.bind(node.rest)
        self.generic_visit(node)


class _Flows:
    """Pass two: which values may not be the design's own, and the writes into them.

    Every value is a pair (the object itself, what it holds), each ``None`` when S0 can prove the
    design created it, else an ``_Origin``. Names, attribute names (file-wide, whatever object they
    are on), function returns (by name) and what call sites pass to parameters (by function name)
    are joined over the whole file until nothing changes; a last pass reports.
    """

    MAX_PASSES = 60  # legitimate designs settle in 2-5

    def __init__(self, tree: ast.Module, filename: str, walker: "_Walker"):
        self.tree, self.filename, self.walker = tree, filename, walker
        scopes = _Scopes(tree)
        self.scope_of, self.functions, self.methods = scopes.of, scopes.functions, scopes.methods
        self.properties = scopes.properties
        self.names: dict = {}  # (scope, name) -> (object, content)
        self.attributes: dict = {}  # attribute name -> (object, content)
        self.returns: dict = {}  # function, method or lambda-bound name -> origin of what calling it returns
        self.passed: dict = {}  # function name -> origin of what its call sites pass
        self.escaped: set[str] = set()  # design functions used as values (callers unknown)
        self.callables = set(self.functions)
        self.escaped_returns = None  # what design functions and lambdas passed around as values return
        self.lambda_returns: dict = {}
        self.subject = None  # of the match statement being read
        self.found: dict = {}
        self.scope = self.function = None
        self.report = self.changed = False

    def findings(self) -> list[Finding]:
        for _ in range(self.MAX_PASSES):
            self.changed = False
            self._run()
            if not self.changed:
                break
        else:  # unfinished tables could hide a write: fail closed
            return [Finding("size", 0, 0, f"{self.filename}: S0 could not follow how values flow through this file "
                                          f"in {self.MAX_PASSES} rounds (very long chains of aliases or calls); "
                                          "simplify them", self.filename)]
        self.report = True
        self._run()
        return list(self.found.values())

    def _run(self) -> None:
        self.scope, self.function = self.scope_of[id(self.tree)], None
        self._body(self.tree.body)

    # tables
    def _join_into(self, table: dict, key, value) -> None:
        if value is None:
            return
        old = table.get(key)
        new = _join(old, value)
        if new != old:
            table[key] = new
            self.changed = True

    def _join_pair(self, table: dict, key, obj, content) -> None:
        old_obj, old_content = table.get(key, (None, None))
        new = (_join(old_obj, obj), _join(old_content, content))
        if new != (old_obj, old_content):
            table[key] = new
            self.changed = True

    def _resolve(self, name: str):
        start = scope = self.scope
        while scope is not None:
            if name in scope.globals:
                root = scope.root()
                return root if name in root.bound else None
            if name in scope.bound and name not in scope.nonlocals and (scope is start or scope.kind != "class"):
                return scope
            scope = scope.parent
        return None

    def _bind(self, name: str, obj, content) -> None:
        scope = self._resolve(name)
        if scope is not None:
            self._join_pair(self.names, (id(scope), name), obj, content)

    def _escaped_return(self, origin) -> None:
        """What a function passed around as a value returns, besides its arguments (each call adds its own)."""
        if origin is not None and PARAM in origin.kinds:
            origin = replace(origin, kinds=origin.kinds - {PARAM}) if origin.kinds != {PARAM} else None
        new = _join(self.escaped_returns, origin)
        if new != self.escaped_returns:
            self.escaped_returns, self.changed = new, True

    def _escape(self, name: str) -> None:
        if name not in self.escaped:
            self.escaped.add(name)
            self.changed = True

    def _add(self, check: str, node: ast.AST, message: str) -> None:
        if self.report:
            line = getattr(node, "lineno", 0)
            text = f"{self.filename} line {line}: {message}"
            self.found.setdefault((line, text), Finding(check, line, getattr(node, "col_offset", 0), text,
                                                        self.filename))

    @staticmethod
    def _describe(node: ast.AST, origin: _Origin) -> str:
        """`np`, the imported module numpy | `n`, which may be `np` (the imported module numpy) or part of it"""
        text = _source(node)
        return f"`{text}`, {origin.what}" if text == origin.label else \
            f"`{text}`, which may be `{origin.label}` ({origin.what}) or part of it"

    @staticmethod
    def _is(node: ast.AST, origin: _Origin) -> str:
        """`np` is the imported module numpy | `n` may be `np` (the imported module numpy) or part of it"""
        text = _source(node)
        return f"`{text}` is {origin.what}" if text == origin.label else \
            f"`{text}` may be `{origin.label}` ({origin.what}) or part of it"

    def _hint(self, origin: _Origin) -> str:
        return _HINTS[max(origin.kinds, key=_RANK.__getitem__)]

    # statements
    def _body(self, statements) -> None:
        for statement in statements:
            self._statement(statement)

    def _statement(self, node) -> None:
        handler = getattr(self, f"_s_{type(node).__name__}", None)
        if handler is not None:
            handler(node)
            return
        for child in ast.iter_child_nodes(node):  # if, while, try, raise, assert, ...
            if isinstance(child, ast.stmt):
                self._statement(child)
            elif isinstance(child, ast.expr):
                self._full(child)
            elif isinstance(child, ast.excepthandler):
                self._s_ExceptHandler(child)
            elif isinstance(child, ast.match_case):
                self._match_case(child)
            elif isinstance(child, ast.withitem):
                self._s_withitem(child)

    def _s_ExceptHandler(self, node) -> None:
        if node.type is not None:
            self._full(node.type)
        if node.name:
            caught = _origin(UNKNOWN, node.name, "an exception caught by the design (it may carry any object)")
            self._bind(node.name, caught, caught)
        self._body(node.body)

    def _s_withitem(self, node) -> None:
        value = self._full(node.context_expr)
        if node.optional_vars is not None:
            self._assign(node.optional_vars, value, value, None)

    def _match_case(self, node) -> None:
        for pattern in ast.walk(node.pattern):
            name = getattr(pattern, "name", None) or getattr(pattern, "rest", None)
            if isinstance(pattern, (ast.MatchAs, ast.MatchStar, ast.MatchMapping)) and name:
                self._bind(name, self.subject, self.subject)
            elif isinstance(pattern, ast.MatchValue):
                self._full(pattern.value)
            elif isinstance(pattern, ast.MatchClass):
                self._full(pattern.cls)
        if node.guard is not None:
            self._full(node.guard)
        self._body(node.body)

    def _s_Match(self, node) -> None:
        self.subject = self._full(node.subject)
        for case in node.cases:
            subject = self.subject
            self._match_case(case)
            self.subject = subject

    def _s_Expr(self, node) -> None:
        self._full(node.value)

    def _s_Return(self, node) -> None:
        if node.value is not None:
            value = self._full(node.value)
            if self.function is not None:
                self._join_into(self.returns, self.function, value)

    def _s_Assign(self, node) -> None:
        obj, content = self._expr(node.value)
        for target in node.targets:
            self._assign(target, obj, content, node.value)

    def _s_AnnAssign(self, node) -> None:
        self._full(node.annotation)
        if node.value is not None:
            obj, content = self._expr(node.value)
            self._assign(node.target, obj, content, node.value)

    def _s_AugAssign(self, node) -> None:
        value = _strip_input(self._full(node.value))
        target = node.target
        if isinstance(target, ast.Name):
            scope = self._resolve(target.id)
            current = self.names.get((id(scope), target.id), (None, None))[0] if scope else None
            if _strip_input(current) is not None:  # (an input, += rebinds numbers: arithmetic, not a write)
                self._add("write", node, f"updates `{target.id}` in place (`{_source(node)}`), but "
                                         f"{self._is(target, current)}; {_ONLY_CREATED}: {self._hint(current)}")
            self._bind(target.id, value, value)
        else:
            self._check_store(target, "updates")
            self._store_value(target, value, value, None, item_value=_join(value))

    def _s_Delete(self, node) -> None:
        for target in node.targets:
            for part in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
                if isinstance(part, (ast.Attribute, ast.Subscript)):
                    self._check_store(part, "deletes")

    def _s_For(self, node) -> None:
        element = self._full(node.iter)
        self._assign(node.target, element, element, None)
        self._body(node.body)
        self._body(node.orelse)

    _s_AsyncFor = _s_For

    def _s_With(self, node) -> None:
        for item in node.items:
            self._s_withitem(item)
        self._body(node.body)

    _s_AsyncWith = _s_With

    def _s_Import(self, node) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            module = alias.name if alias.asname else bound
            origin = _origin(MODULE, bound, f"the imported module {module}", module_object=True)
            self._bind(bound, origin, origin)

    def _s_ImportFrom(self, node) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name
            full_name = f"{node.module}.{alias.name}"
            if full_name in rules.NADA_ALLOWED_IMPORTS:
                origin = _origin(MODULE, bound, f"the imported module {full_name}", module_object=True)
            else:
                origin = _origin(MODULE, bound, f"imported from {node.module}",
                                 factory=alias.name in SINGLETON_FACTORIES)
            self._bind(bound, origin, origin)

    def _decorators(self, decorators) -> tuple[set[str], bool]:
        """Builtin decorators by name, and whether any other decorator may call the function itself."""
        builtin, foreign = set(), False
        for decorator in decorators:
            value = self._full(decorator)
            if isinstance(decorator, ast.Call):
                value = self._full(decorator.func)
            if isinstance(decorator, ast.Name) and decorator.id in ("staticmethod", "classmethod", "property") \
                    and self._resolve(decorator.id) is None:
                builtin.add(decorator.id)
            elif isinstance(decorator, ast.Attribute) and decorator.attr in ("setter", "getter", "deleter") \
                    and isinstance(decorator.value, ast.Name) and decorator.value.id in self.properties:
                builtin.add("property")
            elif value is None or value.kinds != {MODULE}:  # the design's own decorator: it gets the function
                foreign = True
        return builtin, foreign

    def _parameters(self, node, name: str, method: bool, builtin: set, foreign: bool) -> None:
        """Bind the parameters of a def or lambda (in its own scope, which must be current)."""
        args = node.args
        positional = args.posonlyargs + args.args
        defaults = dict(zip([arg.arg for arg in positional][len(positional) - len(args.defaults):], args.defaults))
        defaults.update({arg.arg: default for arg, default in zip(args.kwonlyargs, args.kw_defaults) if default})
        outer, self.scope = self.scope, self.scope.parent
        default_origins = {arg: self._full(default) for arg, default in defaults.items()}
        self.scope = outer
        passed = self.passed.get(name)
        for index, arg in enumerate(_all_args(args)):
            if method and index == 0 and positional and arg is positional[0] and "staticmethod" not in builtin:
                if "classmethod" in builtin:
                    origin = _origin(CLASS, arg.arg, "the class a classmethod is called on")
                elif foreign:
                    origin = _origin(PARAM, arg.arg, f"the first parameter of {name}(), which a decorator of the "
                                                       "design's may call with any object")
                else:
                    origin = None  # self: an instance of the design's own class
            elif isinstance(node, ast.Lambda):
                origin = _origin(PARAM, arg.arg, "a parameter of a lambda")
            else:
                origin = _join(_origin(INPUT, arg.arg, f"an argument of {name}()"), passed)
                if foreign or name in self.escaped:
                    origin = _join(origin, _origin(PARAM, arg.arg, f"a parameter of {name}(), which the design "
                                                                     "passes around as a value"))
            origin = _join(origin, default_origins.get(arg.arg))
            self._bind(arg.arg, origin, origin)

    def _s_FunctionDef(self, node) -> None:
        builtin, foreign = self._decorators(node.decorator_list)
        if foreign:
            self._escape(node.name)
        method = self.scope.kind == "class"
        for annotation in [arg.annotation for arg in _all_args(node.args)] + [node.returns]:
            if annotation is not None:
                self._full(annotation)
        outer, outer_function = self.scope, self.function
        self.scope, self.function = self.scope_of[id(node)], node.name
        self._parameters(node, node.name, method, builtin, foreign)
        self._body(node.body)
        self.scope, self.function = outer, outer_function
        returned = self.returns.get(node.name)
        if "property" in builtin:  # reading the attribute runs the getter
            self._join_pair(self.attributes, node.name, returned, returned)
        if node.name in self.escaped:
            self._escaped_return(returned)

    _s_AsyncFunctionDef = _s_FunctionDef

    def _s_ClassDef(self, node) -> None:
        cls = _origin(CLASS, node.name, f"the class {node.name}")
        for decorator in node.decorator_list:
            self._full(decorator)
            if isinstance(decorator, ast.Name):
                self._join_into(self.passed, decorator.id, cls)
        for base in node.bases + [keyword.value for keyword in node.keywords]:
            self._full(base)
        self._bind(node.name, cls, cls)
        outer, self.scope = self.scope, self.scope_of[id(node)]
        self._body(node.body)
        self.scope = outer

    # assignment
    def _assign(self, target, obj, content, value_node) -> None:
        if isinstance(target, ast.Name):
            self._bind(target.id, obj, content)
            self._store_value(target, obj, content, value_node)
        elif isinstance(target, (ast.Tuple, ast.List)):
            element = _join(obj, content)
            for part in target.elts:
                self._assign(part, element, element, None)
        elif isinstance(target, ast.Starred):
            self._assign(target.value, _join(obj, content), _join(obj, content), None)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self._check_store(target, "assigns to")
            self._store_value(target, obj, content, value_node, item_value=_join(obj, content))

    def _store_value(self, target, obj, content, value_node, item_value=None) -> None:
        """What a store does to the tables: attribute values, poisoned containers, lambda returns."""
        name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else None
        if isinstance(value_node, ast.Lambda) and name is not None:
            self._join_into(self.returns, name, self.lambda_returns.get(id(value_node)))
            if name not in self.callables:
                self.callables.add(name)
                self.changed = True
        if isinstance(target, ast.Attribute) or (isinstance(target, ast.Name) and self.scope.kind == "class"):
            # class-body names are class attributes; a call there may build a descriptor (property(...))
            extra = self.escaped_returns if isinstance(value_node, ast.Call) and isinstance(target, ast.Name) else None
            self._join_pair(self.attributes, name, _join(obj, extra), _join(content, extra))
        elif isinstance(target, ast.Subscript):
            self._poison(target.value, item_value)

    def _poison(self, node, origin) -> None:
        """``origin`` was put into the container ``node`` evaluates to."""
        if origin is None:
            return
        if isinstance(node, ast.Name):
            scope = self._resolve(node.id)
            if scope is not None:
                self._join_pair(self.names, (id(scope), node.id), None, origin)
        elif isinstance(node, ast.Attribute):
            self._join_pair(self.attributes, node.attr, None, origin)
        elif isinstance(node, (ast.Subscript, ast.Starred)):
            self._poison(node.value, origin)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            self._poison(node.func.value, origin)
        elif isinstance(node, ast.NamedExpr):
            self._poison(node.target, origin)

    def _check_store(self, target, verb: str) -> None:
        obj, _ = self._expr(target.value)
        if isinstance(target, ast.Subscript):
            self._full(target.slice)
        if not self.report:
            return
        what = "an attribute" if isinstance(target, ast.Attribute) else "an item"
        head = f"{verb} `{_source(target)}`, {what} of "
        root = target.value
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            root = root.value
        call = root if isinstance(root, ast.Call) else None
        if isinstance(root, ast.Name) and self._resolve(root.id) is None and root.id not in ("type", "super"):
            self._add("write", target, f"{head}`{_source(target.value)}`, and `{root.id}` is a Python builtin shared "
                                       f"with the evaluator; {_ONLY_CREATED}")
        elif obj is not None:
            self._add("write", target, f"{head}{self._describe(target.value, obj)}; {_ONLY_CREATED}: {self._hint(obj)}")
        elif call is not None and MODULE in (self._full(call.func) or _origin(INPUT, "", "")).kinds:
            self._add("write", target, f"{head}an object returned by `{_source(call.func)}(...)`, which S0 cannot "
                                       f"prove is new rather than shared by the library; {_ONLY_CREATED}")

    # expressions
    def _full(self, node):
        return _join(*self._expr(node))

    def _expr(self, node, callee: bool = False):
        handler = getattr(self, f"_e_{type(node).__name__}", None)
        if handler is not None:
            return handler(node, callee) if isinstance(node, (ast.Name, ast.Attribute)) else handler(node)
        value = _join(*(self._full(child) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)))
        return value, value

    def _e_Constant(self, node):
        return None, None

    def _e_JoinedStr(self, node):
        for value in node.values:
            self._full(value)
        return None, None

    def _e_Name(self, node, callee: bool = False):
        scope = self._resolve(node.id)
        if scope is None:
            if node.id in ("type", "super"):
                origin = _Origin(frozenset({UNKNOWN, CLASS}), node.id, f"the builtin {node.id}, which returns classes "
                                                                       "and proxies")
                return origin, origin
            return None, None
        if not callee and node.id in self.functions:
            self._escape(node.id)
        obj, content = self.names.get((id(scope), node.id), (None, None))
        return obj, _join(obj, content)

    def _e_Attribute(self, node, callee: bool = False):
        obj, content = self._expr(node.value)
        return self._attribute(node, obj, callee)

    def _attribute(self, node, owner, callee: bool):
        attr = node.attr
        if owner is not None and self.report:
            if attr in self.methods and owner.kinds & {CLASS, UNKNOWN, PARAM}:
                self._add("write", node, f"`{_source(node)}` takes the method {attr}() from "
                                         f"{self._describe(node.value, owner)}, not from an instance: call the "
                                         f"design's methods on instances (`self.{attr}(...)`) so that `self` is "
                                         "always an object the design created")
            if MODULE in owner.kinds and not (attr.startswith("__") and attr.endswith("__")):
                if attr.startswith(rules.GLOBAL_STATE_PREFIXES) or attr in rules.GLOBAL_STATE_ATTRIBUTES:
                    self._add("attribute", node, f"`{_source(node)}` changes process-wide library state (hooks, "
                                                 "grad mode, random or error state) shared with the evaluator; "
                                                 "designs may only compute with their own objects")
                elif attr.startswith("_") and not self.walker._rooted_at_module(node.value):
                    self._add("attribute", node, f"private attribute `.{attr}` is not allowed: "
                                                 f"{self._is(node.value, owner)}; use its public API")
        if not callee and attr in self.functions and attr not in self.properties:
            self._escape(attr)
        if owner is not None:
            owner = replace(owner, module_object=owner.module_object and attr in KNOWN_SUBMODULES,
                            factory=MODULE in owner.kinds and attr in SINGLETON_FACTORIES)
        obj, content = self.attributes.get(attr, (None, None))
        return _join(owner, obj), _join(owner, obj, content)

    def _e_Subscript(self, node):
        value = _value(self._full(node.value))
        self._full(node.slice)
        return value, value

    def _e_Starred(self, node):
        return self._expr(node.value)

    def _e_NamedExpr(self, node):
        obj, content = self._expr(node.value)
        self._bind(node.target.id, obj, content)
        return obj, content

    def _e_IfExp(self, node):
        self._full(node.test)
        body, orelse = self._expr(node.body), self._expr(node.orelse)
        return _join(body[0], orelse[0]), _join(body[1], orelse[1])

    def _e_BoolOp(self, node):
        pairs = [self._expr(value) for value in node.values]
        return _join(*(pair[0] for pair in pairs)), _join(*(pair[1] for pair in pairs))

    def _e_BinOp(self, node):
        value = _strip_input(_join(self._full(node.left), self._full(node.right)))
        return value, value

    def _e_UnaryOp(self, node):
        value = self._full(node.operand)
        value = None if isinstance(node.op, ast.Not) else _strip_input(value)
        return value, value

    def _e_Compare(self, node):
        for child in [node.left] + node.comparators:
            self._full(child)
        return None, None

    def _container(self, elements):
        return None, _value(_join(*(self._full(element) for element in elements if element is not None)))

    def _e_List(self, node):
        return self._container(node.elts)

    _e_Tuple = _e_Set = _e_List

    def _e_Dict(self, node):
        return self._container(node.keys + node.values)

    def _comprehension(self, node, parts):
        outer = self.scope
        first = self._full(node.generators[0].iter)
        self.scope = self.scope_of[id(node)]
        for index, generator in enumerate(node.generators):
            element = first if index == 0 else self._full(generator.iter)
            self._assign(generator.target, element, element, None)
            for condition in generator.ifs:
                self._full(condition)
        content = _join(*(self._full(part) for part in parts))
        self.scope = outer
        return None, content

    def _e_ListComp(self, node):
        return self._comprehension(node, [node.elt])

    _e_SetComp = _e_GeneratorExp = _e_ListComp

    def _e_DictComp(self, node):
        return self._comprehension(node, [node.key, node.value])

    def _e_Lambda(self, node):
        outer, outer_function = self.scope, self.function
        self.scope, self.function = self.scope_of[id(node)], None
        self._parameters(node, "<lambda>", False, set(), False)
        returned = self._full(node.body)
        self.scope, self.function = outer, outer_function
        self.lambda_returns[id(node)] = _join(self.lambda_returns.get(id(node)), returned)
        self._escaped_return(returned)
        return None, None

    def _e_Yield(self, node):
        if node.value is not None and self.function is not None:
            self._join_into(self.returns, self.function, self._full(node.value))
        sent = _origin(UNKNOWN, "yield", "a value sent into a generator")
        return sent, sent

    _e_YieldFrom = _e_Await = _e_Yield

    def _e_Call(self, node):
        func = node.func
        arguments = [arg.value if isinstance(arg, ast.Starred) else arg for arg in node.args]
        arguments += [keyword.value for keyword in node.keywords]
        values = [self._full(argument) for argument in arguments]
        passed = _join(*values)
        library_args = _strip_input(_join(*(value for value, argument in zip(values, arguments)
                                            if not (isinstance(argument, ast.Attribute)
                                                    and argument.attr in CONSTANT_ATTRIBUTES))))
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        for keyword in node.keywords:
            if keyword.arg == "out":
                out = self._expr(keyword.value)[0]
                if out is not None:
                    self._add("write", keyword.value, f"writes a result into `{_source(keyword.value)}` (out=), but "
                                                      f"{self._is(keyword.value, out)}; {_ONLY_CREATED}: "
                                                      f"{self._hint(out)}")
        if isinstance(func, ast.Name) and self._resolve(func.id) is None:  # a builtin
            if func.id == "super" and (not arguments or values[-1] is None):
                proxy = _origin(SUPER, "super()", "a proxy of the class's bases, not an object of the design's own")
                return proxy, proxy
            if func.id in SCALAR_BUILTINS:
                return None, None
            if func.id in CONTAINER_BUILTINS:
                return None, _value(passed)
            if func.id == "type" or func.id == "super":
                what = ("the class of an object, possibly a library class such as torch.Tensor" if func.id == "type"
                        else "a proxy that may hand out methods unbound")
                made = _Origin(frozenset({UNKNOWN, CLASS}), f"{func.id}(...)", what)
                return made, made
            return _value(passed), _value(passed)
        if isinstance(func, ast.Attribute):
            receiver, receiver_content = self._expr(func.value)
            callee, _ = self._attribute(func, receiver, callee=True)
        else:
            receiver = receiver_content = None
            callee = self._expr(func, callee=True)[0]
        if name is not None and name in self.functions:  # the design's own function or method
            self._join_into(self.passed, "__init__" if callee is not None and CLASS in callee.kinds else name, passed)
        elif callee is not None and CLASS in callee.kinds:
            self._join_into(self.passed, "__init__", passed)
        result = self.returns.get(name) if name in self.callables else None
        if callee is None:  # an object the design made (a layer, a bound method)
            result = _join(result, _strip_input(passed), receiver_content if name in PASS_THROUGH else None)
        else:
            result = _join(result, self._call_result(node, name, callee, receiver, receiver_content, passed,
                                                     library_args))
        if name not in self.callables and (callee is None or callee.kinds not in ({MODULE}, {CLASS})):
            result = _join(result, self.escaped_returns)  # it may be a design function passed around as a value
        if isinstance(func, ast.Attribute):
            self._mutation(node, func, receiver, name, values)
        result = _value(result)
        return result, result

    def _call_result(self, node, name, callee, receiver, receiver_content, passed, library_args):
        kinds = callee.kinds
        result = None
        if MODULE in kinds:
            func = node.func
            if callee.factory or name in SINGLETON_FACTORIES:
                result = _origin(MODULE, _source(func) + "(...)", "a cached object the library shares process-wide")
            elif isinstance(func, ast.Attribute) and receiver is not None and MODULE in receiver.kinds \
                    and not receiver.module_object:  # a method of a shared library object (np.sctypeDict.get)
                result = _join(callee, passed)
            else:  # a library function, however the design reached it
                result = passed if name in PASS_THROUGH else library_args
        if INPUT in kinds:
            if isinstance(node.func, ast.Attribute) and (name in PASS_THROUGH or name.endswith("_")):
                result = _join(result, receiver_content, passed if name in PASS_THROUGH else None)
            elif not isinstance(node.func, ast.Attribute):  # a callable passed in: it may return its arguments
                result = _join(result, _strip_input(passed))
        if kinds & {UNKNOWN, PARAM}:
            result = _join(result, callee, passed)
        if kinds & {CLASS, SUPER}:
            result = _join(result, _strip_input(passed))
        return result

    def _mutation(self, node, func, receiver, name, values) -> None:
        """A method call may store its arguments into its receiver, or change a shared one in place."""
        self._poison(func.value, _strip_input(_join(*values)))
        if receiver is None or not self.report:
            return
        in_place = name.endswith("_") and not name.endswith("__") and receiver.kinds == {INPUT}
        if (name in CONTAINER_MUTATORS and not receiver.module_object) or in_place:
            self._add("write", node, f"changes `{_source(func.value)}` in place with .{name}(...), but "
                                     f"{self._is(func.value, receiver)}; {_ONLY_CREATED}: {self._hint(receiver)}")
