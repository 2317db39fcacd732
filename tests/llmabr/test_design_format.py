"""Design folders: reading, writing, hashing, errors, and the loader's own restrictions."""

from __future__ import annotations

import pytest

from llmabr.design.format import Design, DesignError, design_hash, detect_kind, load_design, write_design
from llmabr.design.loader import execute, load_modules
from llmabr.sandbox.static import check_design_sources
from simulator.paths import REPO_ROOT
from tests.llmabr.hostile.s1_cases import GOOD_NET, GOOD_STATE

SEEDS = ["pensieve", "pensieve-compat"]


@pytest.mark.parametrize("seed", SEEDS)
def test_seed_designs_load_and_pass_s0(seed):
    design = load_design(REPO_ROOT / "designs" / seed)
    assert design.name == seed and design.origin == "seed" and design.kind == "torch"
    assert check_design_sources(design.state_source, design.net_source, design.kind).passed


def test_write_then_load_round_trips(tmp_path):
    design = Design(name="d1", state_source=GOOD_STATE, net_source=GOOD_NET, origin="llm", parent="pensieve",
                    network="5g", notes='uses "quotes"\nand lines', shared_trunk=True)
    again = load_design(write_design(design, tmp_path / "d1"))
    assert again == design


def test_hash_ignores_comments_docstrings_and_formatting_but_not_code():
    base = Design(name="a", state_source=GOOD_STATE, net_source=GOOD_NET)
    cosmetic = base.with_(name="b", state_source='"""A docstring."""\n# comment\n' + GOOD_STATE.replace("    ", "    ", 1))
    changed = base.with_(state_source=GOOD_STATE.replace("/ 10.0", "/ 20.0"))
    assert design_hash(base) == design_hash(cosmetic)
    assert design_hash(base) != design_hash(changed)
    assert design_hash(base) != design_hash(base.with_(shared_trunk=True))


def test_kind_is_detected_without_running_code():
    assert detect_kind(GOOD_STATE) == "torch"
    assert detect_kind("def state_func(a):\n    pass\n") == "nada"
    assert detect_kind("def state_func(:\n") == "nada"  # even unparseable


@pytest.mark.parametrize("problem, message", [
    ("no_folder", "no such design folder"),
    ("no_state", "state.py: missing"),
    ("no_net", "net.py: missing"),
    ("bad_toml", "invalid TOML"),
    ("bad_origin", "origin must be one of"),
])
def test_bad_design_folders_are_named(tmp_path, problem, message):
    folder = tmp_path / "d"
    if problem != "no_folder":
        write_design(Design(name="d", state_source=GOOD_STATE, net_source=GOOD_NET), folder)
    if problem == "no_state":
        (folder / "state.py").unlink()
    elif problem == "no_net":
        (folder / "net.py").unlink()
    elif problem == "bad_toml":
        (folder / "design.toml").write_text("name = \n")
    elif problem == "bad_origin":
        (folder / "design.toml").write_text('origin = "martian"\n')
    with pytest.raises(DesignError, match=message):
        load_design(folder)


def test_loader_restricts_builtins_and_imports():
    with pytest.raises(ImportError, match="not allowed"):
        execute("import os\n", "<design>/x/state.py")
    with pytest.raises(NameError):
        execute("open('/tmp/x', 'w')\n", "<design>/x/state.py")
    with pytest.raises(ImportError, match="not allowed"):
        execute("from torch import hub\n", "<design>/x/state.py")
    namespace = execute("import torch\nfrom torch import nn\nimport torch.nn.functional as F\nX = 1\n", "<design>/x/s.py")
    assert namespace["X"] == 1


def test_loaded_seed_computes_features_and_latent():
    import torch

    from simulator.layout import Layout

    loaded = load_modules(load_design(REPO_ROOT / "designs" / "pensieve"))
    layout = Layout(16, 6)
    obs = torch.rand(4, layout.size)
    features = loaded.state_fn({name: obs[:, s] for name, s in ((n, layout.slice(n)) for n, _, _ in layout.fields)})
    dims = {name: value.shape[1] for name, value in features.items()}
    assert dims == {"last_bitrate": 1, "buffer": 1, "throughput": 8, "download_time": 8, "next_sizes": 6,
                    "chunks_left": 1}
    latent = loaded.trunk_cls(dims)(features)
    assert latent.shape == (4, 128)
