"""What design code may touch: the one list both the static check (S0) and the runtime loader use.

Designs are untrusted. S0 rejects source that imports or names anything outside these rules
before any of it runs; the loader then executes accepted source with builtins reduced to
``SAFE_BUILTINS`` and an ``__import__`` that admits only ``ALLOWED_IMPORTS`` (defence in depth);
and the whole execution happens in a caged child process (``llmabr.sandbox.cage``).

A NADA design's state.py (the paper's per-player numpy prompt, which allows scipy and pandas) may
also import ``NADA_EXTRA_IMPORTS``; ``nada_denial`` says which of their attributes stay out (files,
downloads, code evaluation, options, plotting, internals), for S0 and the loader alike.
"""

from __future__ import annotations

# Modules a design may import (and their submodules listed here, nothing else).
ALLOWED_IMPORTS = frozenset({
    "__future__", "math", "typing", "numpy", "torch", "torch.nn", "torch.nn.functional",
})

# NADA designs (the paper's per-player numpy prompt: "You can also import scipy, pandas if needed") may
# also import these in state.py: scipy's computation modules and pandas' top level. Torch designs
# and every net.py keep ALLOWED_IMPORTS (they are traced and exported to ONNX). Left out on purpose:
# scipy.io (files), scipy.datasets (downloads), scipy.misc, scipy.integrate and scipy.odr (Fortran
# and C callbacks, report files), scipy.sparse (save_npz/load_npz), and every pandas submodule
# (pandas.io, pandas.api, pandas.core, pandas.plotting, ...).
NADA_SCIPY_MODULES = ("stats", "signal", "special", "fft", "linalg", "interpolate", "optimize", "ndimage")
NADA_EXTRA_IMPORTS = frozenset({"scipy", "pandas", *(f"scipy.{name}" for name in NADA_SCIPY_MODULES)})
NADA_ALLOWED_IMPORTS = ALLOWED_IMPORTS | NADA_EXTRA_IMPORTS

# What scipy and pandas offer besides computation, denied as attribute names in a NADA state.py and
# on the library modules a NADA design imports, with the reason S0 and the loader give.
NADA_DENIED_GROUPS = {
    "reads or writes files": ("io", "ExcelWriter", "ExcelFile", "HDFStore", "save_npz", "load_npz"),
    "downloads data": ("datasets",),
    "evaluates code given as a string": ("eval", "query"),
    "changes pandas' process-wide options (whose plotting backend names a module to import)": (
        "options", "set_option", "get_option", "reset_option", "describe_option", "option_context"),
    "plots or styles (imports plotting and templating libraries, may write files)": (
        "plotting", "plot", "hist", "boxplot", "style"),
    "runs the test suite or inspects the installation": ("test", "show_config", "show_versions"),
    "reaches library internals or extension registration": ("api", "core", "compat", "util"),
    "is not among the computation modules (C callbacks, report and matrix files)": (
        "misc", "integrate", "odr", "sparse", "LowLevelCallable", "cython_blas", "cython_lapack", "cython_special",
        "cython_optimize"),
}
NADA_DENIED_ATTRIBUTES = frozenset(name for names in NADA_DENIED_GROUPS.values() for name in names)
# Readers and writers by prefix (pd.read_csv, DataFrame.to_csv, to_pickle, to_parquet, to_clipboard, ...),
# except the conversions that stay in memory (S0 also lets ``x.to_string()`` through when it names no destination).
NADA_DENIED_PREFIXES = ("read_", "to_")
NADA_ALLOWED_CONVERSIONS = frozenset({"to_numpy", "to_list", "to_dict", "to_frame"})
# pandas methods that look a method up by name when given a string (``s.apply("to_csv", path)`` is
# getattr in disguise): their function argument must be a function or one of these names.
NADA_DISPATCH_METHODS = frozenset({"agg", "aggregate", "apply", "transform"})
NADA_AGGREGATION_NAMES = frozenset({
    "sum", "mean", "median", "min", "max", "std", "var", "sem", "skew", "kurt", "kurtosis", "count", "size",
    "nunique", "prod", "first", "last", "cumsum", "cumprod", "cummax", "cummin", "diff", "pct_change", "rank",
    "abs", "quantile", "idxmax", "idxmin", "any", "all", "ffill", "bfill",
})


# Names a design may not mention at all (calls, references, shadowing).
DENIED_NAMES = frozenset({
    "open", "eval", "exec", "compile", "__import__", "globals", "locals", "vars", "getattr", "setattr",
    "delattr", "input", "breakpoint", "memoryview", "help", "exit", "quit", "copyright", "credits",
    "license", "__builtins__", "__loader__", "__spec__",
    "os", "sys", "subprocess", "socket", "ctypes", "importlib", "builtins", "pickle", "marshal", "shutil",
    "signal", "threading", "multiprocessing", "asyncio", "io", "pathlib", "tempfile", "urllib", "http",
    "requests", "resource", "gc", "inspect", "code", "codeop", "pty", "select", "mmap", "fcntl",
})

# Attribute names a design may not use on anything: I/O, process control, compilation and
# the private internals of torch and numpy.
DENIED_ATTRIBUTES = frozenset({
    "save", "load", "tofile", "fromfile", "from_file", "memmap", "savetxt", "loadtxt", "genfromtxt",
    "savez", "savez_compressed", "fromregex", "DataSource", "ctypeslib", "f2py", "testing", "lib",
    "hub", "utils", "ops", "classes", "library", "multiprocessing", "distributed", "jit", "compile",
    "cuda", "backends", "package", "profiler", "onnx", "export", "storage", "untyped_storage",
    "share_memory_", "set_num_threads", "set_num_interop_threads", "manual_seed", "seed",
    "set_default_dtype", "set_default_device", "set_printoptions", "system", "popen", "fork", "spawn",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_backward_hook", "register_module_forward_hook",
})

# Attributes of imported modules and library objects that change process-wide state (global module
# hooks, grad mode, random and error state, default dtypes): denied on anything S0 traces back to an
# import, so `torch.set_grad_enabled(False)` and `nn.modules.module.register_module_forward_pre_hook`
# are refused while a design's own `self.register_buffer(...)` is not.
GLOBAL_STATE_PREFIXES = ("set_", "register_")
GLOBAL_STATE_ATTRIBUTES = frozenset({
    "seterr", "seterrcall", "setbufsize", "use_deterministic_algorithms",
})

# Dunder attributes a design may use (nn.Module subclasses must call super().__init__()).
ALLOWED_DUNDERS = frozenset({"__init__"})

# Builtins left to executing design code.
SAFE_BUILTINS = frozenset({
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "frozenset", "int",
    "isinstance", "issubclass", "len", "list", "map", "max", "min", "object", "pow", "range", "reversed",
    "round", "set", "slice", "sorted", "str", "sum", "super", "tuple", "zip", "print", "hasattr",
    "ValueError", "TypeError", "RuntimeError", "KeyError", "IndexError", "ZeroDivisionError",
    "ArithmeticError", "Exception", "NotImplementedError", "AssertionError", "StopIteration",
    "True", "False", "None", "type", "callable", "iter", "next", "format", "repr", "hash", "id", "chr", "ord",
    "bin", "hex", "oct", "complex", "bytes", "bytearray", "property", "staticmethod", "classmethod",
    "__build_class__", "__name__",
})

# Entry points a design's files must define.
STATE_FUNCTION = "state"          # torch design: state(m: dict[str, Tensor]) -> dict[str, Tensor]
NADA_STATE_FUNCTION = "state_func"  # the paper's per-player numpy signature
TRUNK_CLASS = "Trunk"             # net.py: class Trunk(nn.Module)

# Size caps (S0): beyond these a design is rejected before parsing further.
MAX_SOURCE_BYTES = 32_000
MAX_SOURCE_LINES = 600
MAX_AST_NODES = 8_000


def nada_denial(attr: str) -> str:
    """Why a NADA design may not use the attribute ``attr`` of scipy or pandas ('' when it may)."""
    if attr.startswith("_"):
        return "it is private (library internals); use the public API"
    for reason, names in NADA_DENIED_GROUPS.items():
        if attr in names:
            return f"it {reason}"
    if attr in DENIED_ATTRIBUTES:
        return "it is a file, process, compile or global-state API"
    if attr.startswith(GLOBAL_STATE_PREFIXES) or attr in GLOBAL_STATE_ATTRIBUTES:
        return "it changes process-wide library state"
    if attr.startswith(NADA_DENIED_PREFIXES) and attr not in NADA_ALLOWED_CONVERSIONS:
        return ("it reads or writes files (of the to_* methods only the in-memory conversions "
                + ", ".join(sorted(NADA_ALLOWED_CONVERSIONS)) + " are allowed)")
    return ""
