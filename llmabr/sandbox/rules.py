"""What design code may touch: the one list both the static check (S0) and the runtime loader use.

Designs are untrusted. S0 rejects source that imports or names anything outside these rules
before any of it runs; the loader then executes accepted source with builtins reduced to
``SAFE_BUILTINS`` and an ``__import__`` that admits only ``ALLOWED_IMPORTS`` (defence in depth);
and the whole execution happens in a caged child process (``llmabr.sandbox.cage``).
"""

from __future__ import annotations

# Modules a design may import (and their submodules listed here, nothing else).
ALLOWED_IMPORTS = frozenset({
    "__future__", "math", "typing", "numpy", "torch", "torch.nn", "torch.nn.functional",
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
