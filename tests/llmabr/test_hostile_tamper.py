"""The evaluator-tampering corpus at S0, and the legitimate writes S0 must keep allowing.

Every tampering case gets the outcome its record states: rejected with the recorded reason, or
passed (then only trusted scoring stands between it and its score). Legitimate designs write into
their own objects (self, tensors and dicts they build, their layers' parameters, their module-level
dicts) and must still pass.
"""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmabr.design.format import detect_kind, load_design
from llmabr.proposer import net_blocks, state_blocks
from llmabr.sandbox.static import check_design_sources, check_source
from tests.llmabr.hostile.tamper_cases import (REJECTED, SCORED_AS_UNTAMPERED, SEED, SEED_NET, SEED_STATE,
                                               TAMPER_CASES, _net, _state)


def _s0(state_source, net_source):
    return check_design_sources(state_source, net_source, detect_kind(state_source))


@pytest.mark.parametrize("case", TAMPER_CASES, ids=[case.id for case in TAMPER_CASES])
def test_tampering_case_has_its_recorded_s0_outcome(case):
    result = _s0(case.state_source, case.net_source)
    if case.expect == REJECTED:
        assert case.fragment and case.check
        assert not result.passed
        matching = [f for f in result.findings if f.check == case.check and case.fragment in f.message]
        assert matching, f"expected a {case.check!r} finding with {case.fragment!r}, got " \
                         f"{[(f.check, f.message) for f in result.findings]}"
        assert all(f.line > 0 and f" line {f.line}: " in f.message for f in matching)  # says where
    else:
        assert case.expect == SCORED_AS_UNTAMPERED and case.why
        assert result.passed, [(f.check, f.message) for f in result.findings]


def _only_additions(seed: str, source: str) -> bool:
    """``source`` is ``seed`` with lines added (and none changed or removed)."""
    opcodes = difflib.SequenceMatcher(a=seed.splitlines(), b=source.splitlines(), autojunk=False).get_opcodes()
    return all(tag in ("equal", "insert") for tag, *_ in opcodes)


@pytest.mark.parametrize("case", TAMPER_CASES, ids=[case.id for case in TAMPER_CASES])
def test_each_case_is_the_seed_design_plus_its_tampering(case):
    assert _only_additions(SEED_STATE, case.state_source) and _only_additions(SEED_NET, case.net_source)
    assert (case.state_source, case.net_source) != (SEED_STATE, SEED_NET)


def test_the_corpus_covers_the_attacks_and_records_both_outcomes():
    ids = {case.id for case in TAMPER_CASES}
    assert len(TAMPER_CASES) >= 16
    for required in ("numpy_zeros_in_trunk_init", "numpy_mean_in_state", "numpy_sum_module_level_alias",
                     "numpy_asarray_tuple_alias", "torch_argmax", "tensor_argmax_class_attribute", "functional_softmax",
                     "categorical_distribution_alias", "builtin_sum_shadowed", "builtin_float_global",
                     "input_rows_item_in_place", "input_rows_attribute", "module_forward_via_type_mro",
                     "after_many_calls", "default_argument_alias", "class_body_patch", "property_alias",
                     "helper_init_side_effect", "walrus_alias", "lambda_default_alias", "comprehension_alias",
                     "for_loop_alias"):
        assert required in ids, required
    assert {case.expect for case in TAMPER_CASES} == {REJECTED, SCORED_AS_UNTAMPERED}


def test_the_issues_case_is_refused_with_an_actionable_reason():
    case = next(case for case in TAMPER_CASES if case.id == "numpy_zeros_in_trunk_init")
    assert "np.zeros = thousands" in case.net_source and "np.full(shape, 1000.0" in case.net_source
    line = case.net_source.splitlines().index("        np.zeros = thousands") + 1
    [finding] = _s0(case.state_source, case.net_source).findings
    assert (finding.check, finding.file, finding.line) == ("write", "net.py", line)
    assert finding.message.startswith(f"net.py line {line}: assigns to `np.zeros`, an attribute of `np`, the imported "
                                      "module numpy; designs may only assign to attributes and items of objects they "
                                      "create (`self.x = ...`")


def test_s0_on_the_corpus_executes_nothing():
    def targets():
        return (np.zeros, np.mean, np.sum, np.asarray, torch.argmax, torch.Tensor.argmax, F.softmax, nn.Linear.forward,
                torch.distributions.Categorical.mode, np.sctypeDict["float64"], np.finfo(np.float32).eps)

    before = targets()
    for case in TAMPER_CASES:
        _s0(case.state_source, case.net_source)
    assert targets() == before


# -- what designs may write ----------------------------------------------------------------------

NADA_STATE = '''import numpy as np


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    delays = np.array(delay_second_list)
    delays[delays <= 0] = 1.0
    sizes = np.zeros(len(next_chunk_bytes_sizes), np.float32)
    sizes[:] = next_chunk_bytes_sizes
    sizes /= 1e6
    history = []
    history.append(buffer_size_second_list[-1] / 10.0)
    return {"normal_states": [history, [video_chunk_remain_num / total_chunk_num]],
            "time_series_states": [list(delays / 10.0), list(sizes)]}
'''

LEGITIMATE = [
    ("self_attributes", SEED_STATE, _net(init_end="self.scale = 10.0\nself.calls = 0\nself.calls += 1\n"
                                                  "self.first, self.second = nn.Linear(1, 2), nn.Linear(2, 1)\n"
                                                  "self.cache = {}\nself.cache['widths'] = [WIDTH]")),
    ("own_submodule_parameters", SEED_STATE,
     _net(init_end="self.merge.bias.data.fill_(0.0)\nnn.init.zeros_(self.merge.bias)\n"
                   "self.merge.weight = nn.Parameter(self.merge.weight.data * 0.5)\n"
                   "self.scalars[0].bias = nn.Parameter(torch.zeros(WIDTH))\n"
                   "for layer in self.series:\n    layer.weight.data.mul_(0.5)\n    layer.bias.requires_grad = True\n"
                   "extra = nn.Linear(1, 1)\nextra.weight = nn.Parameter(torch.ones(1, 1))")),
    ("items_of_created_tensors", _state(body='out = torch.zeros(m["buffer_s"].shape[0], 2, dtype=torch.float32)\n'
                                             'out[:, 0] = m["buffer_s"][:, -1] / 10.0\n'
                                             'scaled = m["buffer_s"] / 10.0\nscaled[scaled > 3.0] = 3.0\n'
                                             'copy = m["chunks_left"].clone()\ncopy[:, 0] = 0.0\n'
                                             'like = torch.zeros_like(m["buffer_s"])\nlike[:, -1] += 1.0\nlike *= 2.0\n'
                                             'features = {"out": out}\nfeatures["scaled"] = scaled'), SEED_NET),
    ("own_module_level_dicts", _state(helpers='CALLS = {"state": 0}\nSEEN = []',
                                      body='CALLS["state"] += 1\nSEEN.append(CALLS["state"])\n'
                                           'CALLS.setdefault("rows", []).append(1)\ndel SEEN[:]'), SEED_NET),
    ("old_style_super_and_initializers", SEED_STATE,
     _net(helpers="def initialize(module):\n    if isinstance(module, nn.Linear):\n"
                  "        nn.init.orthogonal_(module.weight)\n        module.bias.data.zero_()",
          init_end="self.apply(initialize)\nself.apply(self.reset)").replace(
         "super().__init__()", "super(Trunk, self).__init__()").replace(
         "    def forward(self, features):",
         "    def reset(self, module):\n        if isinstance(module, nn.Conv1d):\n"
         "            nn.init.zeros_(module.bias)\n\n    def forward(self, features):")),
    ("outputs_of_own_layers", SEED_STATE,
     _net(forward='names = sorted(features, key=lambda name: len(name))\n'
                  'hidden = self.scalars[0](features["buffer"])\nhidden[:, 0] = 0.0\nparts = []\n'
                  'parts.append(hidden)')),
    ("nada_numpy_arrays", NADA_STATE, None),
]


@pytest.mark.parametrize("case_id, state_source, net_source", LEGITIMATE, ids=[c[0] for c in LEGITIMATE])
def test_writes_into_the_designs_own_objects_pass_s0(case_id, state_source, net_source):
    result = _s0(state_source, net_source)
    assert result.passed, [(f.check, f.message) for f in result.findings]


DESIGN_FOLDERS = sorted(path.parent for path in SEED.parent.glob("**/state.py"))
FOLDER_IDS = [str(path.relative_to(SEED.parent)) for path in DESIGN_FOLDERS]


@pytest.mark.parametrize("folder", DESIGN_FOLDERS, ids=FOLDER_IDS)
def test_the_repositorys_designs_pass_s0(folder):
    design = load_design(folder)
    result = check_design_sources(design.state_source, design.net_source, design.kind)
    assert result.passed, [(f.check, f.message) for f in result.findings]


def test_every_offline_network_and_state_block_passes_s0():
    state = state_blocks.state_source({"history": 8, "throughput_scale": "log", "features": list(state_blocks.BLOCKS)})
    for kind, activation, layernorm in itertools.product(net_blocks.TYPES, net_blocks.ACTIVATIONS, (False, True)):
        net = net_blocks.net_source({"type": kind, "width": 64, "activation": activation, "depth": 2,
                                     "layernorm": layernorm, "shared_trunk": False})
        result = check_design_sources(state, net)
        assert result.passed, (kind, activation, [(f.check, f.message) for f in result.findings])


def test_s0_fails_closed_when_it_cannot_finish_following_values():
    chain = "".join(f"def f{index}():\n    return f{index - 1}()\n\n\n" for index in range(80, 0, -1))
    source = (f"import numpy as np\n\n\n{chain}def f0():\n    return np\n\n\n"
              "def state(m):\n    f80().zeros = 1\n    return {}\n")
    findings, _ = check_source(source, "state.py")
    assert [f.check for f in findings] == ["size"] and "could not follow" in findings[0].message
    deep = "import torch\n\n\ndef state(m):\n    x = 1" + " + 1" * 1500 + "\n    return {}\n"
    findings, _ = check_source(deep, "state.py")
    assert [f.check for f in findings] == ["size"] and "nested too deeply" in findings[0].message
