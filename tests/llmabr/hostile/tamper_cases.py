"""Evaluator-tampering designs: copies of designs/pensieve that try to rewrite their own score.

Scoring once ran in the design's own interpreter, so a design could patch what the evaluator computes
with. The issue's case replaced np.zeros in Trunk.__init__ with a function returning arrays filled
with 1000.0 and reported QoE 20.8 where RobustMPC scores 1.05. Each case is the seed design plus one
tampering attempt: complete, and without the attempt it trains as the seed does. Its expected outcome:

- ``"rejected_by_s0"``: S0 refuses it; ``check`` names the S0 check and ``fragment`` is part of the reason.
- ``"scored_as_untampered"``: S0 passes it (``why`` says why S0 cannot or need not catch it); the trusted
  scorer must then report exactly the scores of the same weights played through the untampered seed.

``attack`` says what each case tries. Module-level helpers are definitions or names only (S0 allows
nothing else there), so every attempt happens when the design is imported, built or called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEED = Path(__file__).resolve().parents[3] / "designs" / "pensieve"
SEED_STATE = (SEED / "state.py").read_text()
SEED_NET = (SEED / "net.py").read_text()

REJECTED, SCORED_AS_UNTAMPERED = "rejected_by_s0", "scored_as_untampered"


@dataclass(frozen=True)
class TamperCase:
    id: str
    attack: str
    state_source: str
    net_source: str
    expect: str  # REJECTED or SCORED_AS_UNTAMPERED
    check: str = ""  # the S0 check that rejects it
    fragment: str = ""  # part of S0's reason
    why: str = ""  # for SCORED_AS_UNTAMPERED: why S0 cannot or need not catch it


def _insert(source: str, anchor: str, text: str, before: bool = False) -> str:
    assert source.count(anchor) == 1, f"anchor {anchor!r} not found once in the seed design"
    return source.replace(anchor, text + anchor if before else anchor + text)


def _indent(code: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" if line else "\n" for line in code.strip("\n").split("\n"))


def _net(imports: str = "", helpers: str = "", init: str = "", forward: str = "", init_end: str = "") -> str:
    """The seed net.py with extra imports, module-level helpers, and lines at the top of __init__
    (after super().__init__()), at its end (before self.latent_dim = ...) and at the top of forward."""
    source = SEED_NET
    if imports:
        source = _insert(source, "from torch import nn\n", imports.strip("\n") + "\n")
    if helpers:
        source = _insert(source, "\n\nclass Trunk(nn.Module):", "\n\n" + helpers.strip("\n") + "\n", before=True)
    if init:
        source = _insert(source, "        super().__init__()\n", _indent(init, 8))
    if init_end:
        source = _insert(source, "        self.latent_dim = WIDTH\n", _indent(init_end, 8), before=True)
    if forward:
        source = _insert(source, "    def forward(self, features):\n", _indent(forward, 8))
    return source


def _state(imports: str = "", helpers: str = "", body: str = "") -> str:
    """The seed state.py with extra imports, module-level helpers, and lines at the top of state()."""
    source = SEED_STATE
    if imports:
        source = _insert(source, "import torch\n", imports.strip("\n") + "\n")
    if helpers:
        source = _insert(source, "\n\ndef state(m):", "\n\n" + helpers.strip("\n") + "\n", before=True)
    if body:
        source = _insert(source, "def state(m):\n", _indent(body, 4))
    return source


NUMPY = "import numpy as np"
THOUSANDS = '''
def thousands(shape, dtype=float, **kwargs):
    return np.full(shape, 1000.0, dtype=dtype)
'''
TOP_LEVEL = '''
def top_level(values, dim=None, keepdim=False):
    """Always the top bitrate, whatever the logits say."""
    return torch.full(values.shape[:-1], values.shape[-1] - 1, dtype=torch.long)
'''
FLAT_SOFTMAX = '''
def flat_softmax(values, dim=None, **kwargs):
    return torch.full_like(values, 1.0 / values.shape[-1])
'''
FAST_FORWARD = '''
def fast_forward(module, values):
    return values.sum(dim=-1, keepdim=True).expand(-1, module.out_features) * 1000.0
'''


def _reject(case_id, attack, fragment, check="write", *, state=None, net=None) -> TamperCase:
    return TamperCase(case_id, attack, state or SEED_STATE, net or SEED_NET, REJECTED, check, fragment)


def _scored(case_id, attack, why, *, state=None, net=None) -> TamperCase:
    return TamperCase(case_id, attack, state or SEED_STATE, net or SEED_NET, SCORED_AS_UNTAMPERED, why=why)


INPUT_COPIES = ("the write reaches only the design's own copy of the measurement rows: the environments hand out "
                "copies (simulator/envs: obs.copy()), the scorer takes QoE from the simulator, not from the rows, "
                "and the seed state reads no rebuffer_s, so features and actions are those of the untampered copy")

TAMPER_CASES = [
    # numpy
    _reject("numpy_zeros_in_trunk_init", "the issue's case: every np.zeros in the process starts at 1000.0",
            "assigns to `np.zeros`, an attribute of `np`, the imported module numpy",
            net=_net(NUMPY, THOUSANDS, init="np.zeros = thousands")),
    _reject("numpy_mean_in_state", "every np.mean returns 1000.0 once state() has run",
            "assigns to `np.mean`, an attribute of `np`, the imported module numpy",
            state=_state(NUMPY, body="np.mean = lambda *args, **kwargs: 1000.0")),
    _reject("numpy_sum_module_level_alias", "np.sum patched through a module-level alias",
            "assigns to `NUMPY.sum`, an attribute of `NUMPY`, which may be `np` (the imported module numpy)",
            state=_state(NUMPY, "NUMPY = np\n\n\ndef inflated_sum(*args, **kwargs):\n    return 1000.0",
                         body="NUMPY.sum = inflated_sum")),
    _reject("numpy_asarray_tuple_alias", "np.asarray patched through tuple unpacking",
            "assigns to `lib.asarray`, an attribute of `lib`, which may be `np`",
            net=_net(NUMPY, THOUSANDS, init="lib, other = np, torch\nlib.asarray = thousands")),
    _reject("numpy_type_table_item", "numpy's type table rewritten so float64 means float16",
            "assigns to `np.sctypeDict['float64']`, an item of `np.sctypeDict`",
            net=_net(NUMPY, init='np.sctypeDict["float64"] = np.float16')),
    _reject("numpy_type_table_update", "the same through dict.update",
            "changes `np.sctypeDict` in place with .update(...)",
            net=_net(NUMPY, init="np.sctypeDict.update(float64=np.float16)")),
    _reject("numpy_finfo_cache", "np.finfo caches its objects: every eps in the process changes",
            "a cached object the library shares process-wide",
            net=_net(NUMPY, init="np.finfo(np.float32).eps = 1.0")),
    _reject("numpy_global_bit_generator", "rewinds numpy's global random stream (SB3 shuffles minibatches with it)",
            "assigns to `generator.state`, an attribute of `generator`, which may be "
            "`np.random.get_bit_generator(...)` (a cached object the library shares process-wide)",
            net=_net(NUMPY, init="generator = np.random.get_bit_generator()\ngenerator.state = generator.state")),
    # torch
    _reject("torch_argmax", "the evaluator's argmax always picks the top level",
            "assigns to `torch.argmax`, an attribute of `torch`, the imported module torch",
            net=_net(helpers=TOP_LEVEL, forward="torch.argmax = top_level")),
    _reject("tensor_argmax_class_attribute", "Tensor.argmax, the method SB3 calls for deterministic actions",
            "assigns to `torch.Tensor.argmax`, an attribute of `torch.Tensor`, which may be `torch`",
            net=_net(helpers=TOP_LEVEL, init="torch.Tensor.argmax = top_level")),
    _reject("functional_softmax", "F.softmax flattened for every caller",
            "assigns to `F.softmax`, an attribute of `F`, the imported module torch.nn.functional",
            net=_net("import torch.nn.functional as F", FLAT_SOFTMAX, init="F.softmax = flat_softmax")),
    _reject("categorical_distribution_alias", "the action distribution's mode patched through an alias",
            "assigns to `Categorical.mode`, an attribute of `Categorical`, which may be `torch`",
            net=_net(helpers=TOP_LEVEL, init="Categorical = torch.distributions.Categorical\n"
                                             "Categorical.mode = property(top_level)")),
    _reject("nn_linear_forward", "every Linear layer, SB3's action and value heads included, rewritten",
            "assigns to `nn.Linear.forward`, an attribute of `nn.Linear`, which may be `nn` (the imported module "
            "torch.nn)", net=_net(helpers=FAST_FORWARD, init="nn.Linear.forward = fast_forward")),
    _reject("nn_module_call_dunder", "Module.__call__ (already a dunder)", "`.__call__`", "dunder",
            net=_net(helpers=FAST_FORWARD, init="nn.Module.__call__ = fast_forward")),
    _reject("delete_torch_argmax", "deletes the evaluator's argmax", "deletes `torch.argmax`",
            net=_net(init="del torch.argmax")),
    _reject("global_forward_pre_hook", "a hook on every module's input, SB3's heads included",
            "changes process-wide library state", "attribute",
            net=_net(helpers="def scale_inputs(module, inputs):\n    return tuple(value * 1000.0 for value in inputs)",
                     init="torch.nn.modules.module.register_module_forward_pre_hook(scale_inputs)")),
    _reject("private_api_via_alias", "torch internals reached through an alias", "private attribute `._C`",
            "attribute", net=_net(init="lib = torch\nlib._C._set_grad_enabled(False)")),
    # builtins
    _scored("builtin_sum_shadowed", "module-level `sum = summed` adds 1000 to every float sum",
            "module-level names belong to the design's module: rebinding `sum` there shadows the builtin for the "
            "design's own code only (the loader gives each file a fresh builtins dict and `__builtins__` is "
            "denied); the design's own sums are of ints and come out exact",
            net=_net(helpers="def summed(values, start=0):\n    total = start\n    for value in values:\n"
                             "        total = total + value\n    if isinstance(total, float):\n"
                             "        return total + 1000.0\n    return total\n\n\nsum = summed")),
    _scored("builtin_float_global", "`global float` rebinds float to inflate every conversion",
            "a `global` statement rebinds a name in the design's own module; the seed state never calls float "
            "and the evaluator's builtins are untouched",
            state=_state(helpers="def inflated(value=0.0):\n    return 1000.0", body="global float\nfloat = inflated")),
    _scored("numpy_name_rebound", "module-level `np = ThousandsNumpy` hoping np.zeros means 1000s everywhere",
            "rebinding the name `np` changes what it means in the design's own module only; numpy is untouched, "
            "and the seed state does not use np",
            state=_state(NUMPY, "class ThousandsNumpy:\n    @staticmethod\n    def zeros(shape, dtype=float):\n"
                                "        return [1000.0] * shape\n\n\nnp = ThousandsNumpy")),
    _reject("builtin_object_attribute", "a builtin's attribute", "is a Python builtin shared with the evaluator",
            net=_net(helpers=FAST_FORWARD, init="object.forward = fast_forward")),
    # the objects passed in: measurement rows, features, feature sizes
    _reject("input_rows_item_in_place", "chunks_left zeroed in the evaluator's rows, hoping the episode ends",
            "assigns to `m['chunks_left'][:]`, an item of `m['chunks_left']`, which may be `m` (an argument of "
            "state())", state=_state(body='m["chunks_left"][:] = 0.0')),
    _reject("input_rows_entry", "an entry of the evaluator's dict replaced", "an item of `m`, an argument of state()",
            state=_state(body='m["chunks_left"] = m["chunks_total"]')),
    _reject("input_rows_attribute", "an attribute set on the evaluator's dict",
            "assigns to `m.tampered`, an attribute of `m`, an argument of state()",
            state=_state(body="m.tampered = True")),
    _reject("input_rows_view_alias", "the rows written through a view", "assigns to `left[:]`, an item of `left`",
            state=_state(body='left = m["chunks_left"]\nleft[:] = 0.0')),
    _reject("input_rows_in_place_method", "the rows zeroed with an in-place tensor method",
            "changes `m['rebuffer_s']` in place with .zero_(...)", state=_state(body='m["rebuffer_s"].zero_()')),
    _reject("input_rows_out_keyword", "the rows overwritten through out=", "(out=)",
            state=_state(body='torch.mul(m["rebuffer_s"], 0.0, out=m["rebuffer_s"])')),
    _scored("input_rows_library_in_place", "rebuffer_s zeroed through nn.init, hoping stalls are not counted",
            "S0 cannot know which library functions write into their arguments (nn.init.*_ here); " + INPUT_COPIES,
            state=_state(body='torch.nn.init.zeros_(m["rebuffer_s"])')),
    _scored("input_rows_unbound_tensor_method", "the same through torch.Tensor.zero_ called on the class",
            "a library method reached through its class looks like any library call to S0; " + INPUT_COPIES,
            state=_state(body='torch.Tensor.zero_(m["rebuffer_s"])')),
    _reject("features_in_place_in_forward", "the features SB3 passes to forward inflated in place",
            "updates `features['buffer']`, an item of `features`, an argument of forward()",
            net=_net(forward='features["buffer"] *= 1000.0')),
    _reject("feature_sizes_written", "the feature sizes the framework passes to __init__ rewritten",
            "an item of `feature_dims`, an argument of __init__()", net=_net(init='feature_dims["buffer"] = 1')),
    # reaching library classes from the design's own objects
    _reject("module_forward_via_type_mro", "nn.Module.forward reached through type(self).mro()",
            "may be `type(...)` (the class of an object, possibly a library class such as torch.Tensor)",
            net=_net(helpers=FAST_FORWARD, init="type(self).mro()[-2].forward = fast_forward")),
    _reject("module_forward_via_dunder_mro", "the same through __class__.__mro__ (already a dunder)", "`.__class__`",
            "dunder", net=_net(helpers=FAST_FORWARD, init="self.__class__.__mro__[1].forward = fast_forward")),
    _reject("super_attribute", "an attribute set through super()", "a proxy of the class's bases",
            net=_net(helpers=FAST_FORWARD, init="super().train = fast_forward")),
    _reject("unbound_method_on_a_module", "a design method called with torch as its `self`",
            "`Installer.install` takes the method install() from `Installer`, the class Installer, not from an "
            "instance",
            net=_net(helpers="class Installer:\n    def install(self, value):\n        self.argmax = value\n\n"
                             + TOP_LEVEL, init="Installer.install(torch, top_level)")),
    # only after a while: training looks normal first
    _reject("after_many_calls", "argmax patched only after 50000 forward calls (counted in a module-level dict)",
            "assigns to `torch.argmax`, an attribute of `torch`, the imported module torch",
            net=_net(helpers='CALLS = {"forward": 0}\n\n' + TOP_LEVEL,
                     forward='CALLS["forward"] += 1\nif CALLS["forward"] > 50000:\n    torch.argmax = top_level')),
    # indirections
    _reject("default_argument_alias", "numpy reached through a default argument",
            "assigns to `lib.zeros`, an attribute of `lib`, which may be `np`",
            net=_net(NUMPY, THOUSANDS + "\n\ndef install(value, lib=np):\n    lib.zeros = value",
                     init="install(thousands)")),
    _reject("class_body_patch", "np.zeros patched by a class body when the module is imported",
            "assigns to `np.zeros`, an attribute of `np`",
            net=_net(NUMPY, THOUSANDS + "\n\nclass Patch:\n    np.zeros = thousands")),
    _reject("class_attribute_alias", "numpy kept as a class attribute, patched through it",
            "assigns to `Libraries.numpy.zeros`, an attribute of `Libraries.numpy`, which may be `np`",
            net=_net(NUMPY, THOUSANDS + "\n\nclass Libraries:\n    numpy = np",
                     init="Libraries.numpy.zeros = thousands")),
    _reject("self_attribute_alias", "torch kept on self, patched through it",
            "assigns to `self.framework.argmax`, an attribute of `self.framework`, which may be `torch`",
            net=_net(helpers=TOP_LEVEL, init="self.framework = torch\nself.framework.argmax = top_level")),
    _reject("property_alias", "a property that returns numpy",
            "assigns to `Handle().numpy.zeros`, an attribute of `Handle().numpy`, which may be `np`",
            net=_net(NUMPY, THOUSANDS + "\n\nclass Handle:\n    @property\n    def numpy(self):\n        return np",
                     init="Handle().numpy.zeros = thousands")),
    _reject("helper_init_side_effect", "a helper class whose __init__ patches F.softmax",
            "assigns to `F.softmax`, an attribute of `F`",
            net=_net("import torch.nn.functional as F", FLAT_SOFTMAX + "\n\nclass Installer:\n"
                     "    def __init__(self):\n        F.softmax = flat_softmax", init="Installer()")),
    _reject("walrus_alias", "numpy bound by an assignment expression",
            "assigns to `lib.zeros`, an attribute of `lib`, which may be `np`",
            net=_net(NUMPY, THOUSANDS, init="if (lib := np) is not None:\n    lib.zeros = thousands")),
    _reject("lambda_default_alias", "numpy returned by a lambda's default argument",
            "assigns to `numpy().zeros`, an attribute of `numpy()`, which may be `np`",
            net=_net(NUMPY, THOUSANDS, init="numpy = lambda lib=np: lib\nnumpy().zeros = thousands")),
    _reject("comprehension_alias", "numpy laundered through a list comprehension",
            "assigns to `libraries[0].zeros`, an attribute of `libraries[0]`, which may be `np`",
            net=_net(NUMPY, THOUSANDS, init="libraries = [lib for lib in (np, torch)]\n"
                                            "libraries[0].zeros = thousands")),
    _reject("comprehension_target_store", "np.zeros as a comprehension's loop target",
            "assigns to `np.zeros`, an attribute of `np`",
            net=_net(NUMPY, THOUSANDS, init="patched = [None for np.zeros in [thousands]]")),
    _reject("for_loop_alias", "numpy as a for loop's variable", "assigns to `lib.zeros`, an attribute of `lib`",
            net=_net(NUMPY, THOUSANDS, init="for lib in [np]:\n    lib.zeros = thousands")),
    _reject("for_target_store", "np.zeros as a for loop's target", "assigns to `np.zeros`, an attribute of `np`",
            net=_net(NUMPY, THOUSANDS, init="for np.zeros in [thousands]:\n    pass")),
    _reject("function_return_alias", "numpy returned by a design function",
            "assigns to `numpy().zeros`, an attribute of `numpy()`, which may be `np`",
            net=_net(NUMPY, THOUSANDS + "\n\ndef numpy():\n    return np", init="numpy().zeros = thousands")),
    _reject("container_laundering", "numpy appended to a list the design made, patched through it",
            "assigns to `box[0].zeros`, an attribute of `box[0]`, which may be `np`",
            net=_net(NUMPY, THOUSANDS, init="box = []\nbox.append(np)\nbox[0].zeros = thousands")),
    _reject("builtin_laundering", "numpy laundered through next(iter(...))",
            "assigns to `next(iter([np])).zeros`",
            net=_net(NUMPY, THOUSANDS, init="next(iter([np])).zeros = thousands")),
    _reject("exception_carrier", "numpy carried in an exception's arguments",
            "which may be `error` (an exception caught by the design",
            net=_net(NUMPY, THOUSANDS, init="try:\n    raise ValueError(np)\nexcept ValueError as error:\n"
                                            "    error.args[0].zeros = thousands")),
    # S0 cannot see it, and it cannot change a score
    _scored("global_random_streams", "draws from numpy's and torch's global random streams on every call",
            "S0 cannot tell drawing random numbers from computing; it may change training (SB3 samples actions and "
            "shuffles minibatches with those streams), but the scorer plays the given weights' argmax actions in its "
            "own process, out of the design's reach",
            net=_net(NUMPY, forward="np.random.random(64)\ntorch.rand(64)")),
]

assert len({case.id for case in TAMPER_CASES}) == len(TAMPER_CASES)
assert all(case.fragment for case in TAMPER_CASES if case.expect == REJECTED)
assert all(case.why and not case.fragment for case in TAMPER_CASES if case.expect == SCORED_AS_UNTAMPERED)
