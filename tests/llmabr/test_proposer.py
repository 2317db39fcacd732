"""Prompts, code extraction, the offline proposer and the replay proposer (no LLM, no training)."""

import json

import pytest

from llmabr.design.format import load_design
from llmabr.proposer.context import build_context
from llmabr.proposer.extract import ExtractionError, extract_code
from llmabr.proposer.offline import OfflineProposer
from llmabr.proposer.prompts import Failure, PromptContext, ScoredDesign, build_messages, repair_messages
from llmabr.proposer.replay import replay
from llmabr.proposer.seeds import seed_net_source, seed_state_source
from llmabr.sandbox.checks import check_design
from llmabr.sandbox.static import check_design_sources

STATE = "import torch\n\n\ndef state(m):\n    return {\"buffer\": m[\"buffer_s\"][:, -1:] / 10.0}\n"
TRUNK = "from torch import nn\n\n\nclass Trunk(nn.Module):\n    def __init__(self, feature_dims):\n        super().__init__()\n"


# -- extraction ------------------------------------------------------------------------------------

def test_extracts_the_block_after_the_analysis():
    reply = f"Analysis and ideas:\nAdd a buffer feature.\n\n```python\n{STATE}```\n"
    extracted = extract_code(reply, "state")
    assert extracted.source == STATE and extracted.defines == "state"
    assert extracted.analysis.startswith("Add a buffer feature")


def test_several_blocks_take_the_last_that_defines_the_name():
    reply = f"```python\ndef state(m):\n    return {{}}\n```\nrevised:\n```python\n{STATE}```\n```python\nx = 1\n```"
    assert extract_code(reply, "state").source == STATE


@pytest.mark.parametrize("reply, code, words", [
    ("I would add the harmonic mean of the throughput.", "no_code", "no fenced"),
    ("", "empty", "empty"),
    (f"Analysis and ideas: x\n```python\n{STATE[:40]}", "truncated", "cut off"),
    ("```python\ndef get_state(m):\n    return {}\n```", "wrong_name", "get_state"),
    ("```python\nclass Net(nn.Module):\n    pass\n```", "wrong_name", "Net"),
    ("```python\ndef state(m:\n    return {}\n```", "syntax", "syntax error at line 1"),
    ("```javascript\nfunction state(m) {}\n```", "no_code", "javascript"),
])
def test_unusable_replies_say_why(reply, code, words):
    kind = "network" if "Net" in reply else "state"
    with pytest.raises(ExtractionError) as error:
        extract_code(reply, kind)
    assert error.value.code == code and words in str(error.value)


def test_truncation_names_the_token_limit():
    with pytest.raises(ExtractionError, match="max_tokens"):
        extract_code(f"```python\n{STATE[:30]}", "state", finish_reason="length")


def test_bare_code_without_fences_is_accepted_and_nada_state_func_counts():
    assert extract_code(TRUNK, "network").defines == "Trunk"
    nada = "def state_func(bit_rate_kbps_list, buffer_size_second_list):\n    return [], []\n"
    assert extract_code(f"```python\n{nada}```", "state").defines == "state_func"


# -- prompts ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def context():
    return build_context("broadband")


@pytest.mark.parametrize("kind", ["state", "network"])
def test_prompts_follow_the_published_structure(context, kind):
    system, user = build_messages(kind, context)
    assert system["role"] == "system" and "You are an expert" in system["content"]
    text = user["content"]
    for part in ("What ABR is", "Network type: broadband", 'm["buffer_s"]', "seconds", "kbps", "bytes",
                 "Statistics of the training traces", "Analysis and ideas:", "```python", "Rules"):
        assert part in text, part
    if kind == "state":
        assert "about [-1, 1]" in text and "Never feed raw kbps, bytes" in text and "def state(m):" in text
    else:
        assert "class Trunk(nn.Module)" in text and "feature_dims" in text
    assert seed_state_source().strip()[:60] in text and "class Trunk" in text
    assert "test trace" not in text.lower() and "test set" not in text.lower()


def test_iterative_prompt_carries_top_designs_failures_and_curves(context):
    from dataclasses import replace

    rich = replace(context, seed_score=0.912, curve_summary="the best designs plateau after 300k steps",
                   top_designs=(ScoredDesign("a", 0.95, "def state(m):\n    return {}"), ScoredDesign("b", 0.99, STATE)),
                   failures=(Failure("c", "S1", "feature 'x' has p99 |value| 3e4 > 20: normalize it"),))
    text = build_messages("state", rich)[1]["content"]
    assert text.index("- b: 0.990") < text.index("- a: 0.950")  # best first
    assert "0.912" in text and "p99 |value| 3e4" in text and "plateau after 300k" in text
    assert "test" not in PromptContext.__dataclass_fields__  # there is no field through which test scores could enter


def test_repair_continues_the_conversation_with_the_reason(context):
    messages = build_messages("network", context)
    repaired = repair_messages(messages, "no code here", "network", "the reply holds no fenced ```python code block")
    assert repaired[:2] == messages and repaired[2] == {"role": "assistant", "content": "no code here"}
    assert "no fenced" in repaired[3]["content"] and "class Trunk" in repaired[3]["content"]


# -- offline proposer ------------------------------------------------------------------------------

def test_offline_proposer_is_seeded_and_diverse():
    first = OfflineProposer(7).propose("network", 12)
    again = OfflineProposer(7).propose("network", 12)
    other = OfflineProposer(8).propose("network", 12)
    assert [p.net_source for p in first] == [p.net_source for p in again]
    assert [p.name for p in first] != [p.name for p in other]
    assert len({p.name for p in first}) == 12
    assert len({p.genome["net"]["type"] for p in first}) >= 3
    states = OfflineProposer(7).propose("state", 12)
    assert len({tuple(sorted(p.genome["state"]["features"])) for p in states}) >= 8
    for proposal in first + states:
        assert proposal.origin == "offline" and "offline proposer" in proposal.notes
        design = proposal.to_design()
        assert check_design_sources(design.state_source, design.net_source).passed


def test_offline_proposer_mutates_and_recombines_parents(tmp_path):
    seeds = OfflineProposer(1).propose("state", 4)
    parents = [{"name": p.name, "genome": p.genome} for p in seeds]
    children = OfflineProposer(2).propose("state", 10, parents)
    assert all(child.parent and child.parent != "pensieve" for child in children)
    assert any("+" in child.parent for child in children)  # a recombination
    child = children[0]
    folder = child.write(tmp_path / child.name)
    assert json.loads((folder / "genome.json").read_text()) == child.genome
    assert load_design(folder).origin == "offline"


def test_offline_designs_pass_the_caged_probe(tmp_path):
    """A handful end to end through S1 (the 200-design pass rate is experiments/offline_pass_rate.py)."""
    proposer = OfflineProposer(11)
    for proposal in proposer.propose("network", 2) + proposer.propose("state", 1):
        report = check_design(proposal.write(tmp_path / proposal.name))
        assert report.passed, report.summary()


def test_seed_trunk_on_pensieve_features_is_pensieves_trunk():
    """The seed network for state designs equals designs/pensieve's trunk on Pensieve's features (same size)."""
    from llmabr.design.loader import execute
    from llmabr.proposer.context import SEED_FEATURE_DIMS

    generic = execute(seed_net_source(), "net.py")["Trunk"](SEED_FEATURE_DIMS)
    from simulator.paths import REPO_ROOT

    pensieve = execute((REPO_ROOT / "designs" / "pensieve" / "net.py").read_text(), "net.py")["Trunk"](SEED_FEATURE_DIMS)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(generic) == count(pensieve) and generic.latent_dim == pensieve.latent_dim


# -- replay ----------------------------------------------------------------------------------------

def test_replay_jsonl_extracts_and_reports_bad_lines(tmp_path):
    lines = [
        {"kind": "state", "reply": f"Analysis and ideas: buffer only.\n```python\n{STATE}```", "model": "gpt-x"},
        {"kind": "network", "reply": "I cannot help with that."},
        {"kind": "sound", "reply": "x"},
    ]
    path = tmp_path / "replies.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    proposals, failures = replay(path)
    assert len(proposals) == 1 and proposals[0].origin == "replay" and "gpt-x" in proposals[0].notes
    assert proposals[0].net_source == seed_net_source()
    assert [f.name for f in failures] == ["line 2", "line 3", "line 4"]
    assert "no fenced" in failures[0].reason


def test_replay_folder_of_designs_and_loose_files(tmp_path):
    from simulator.paths import REPO_ROOT

    import shutil

    shutil.copytree(REPO_ROOT / "designs" / "pensieve", tmp_path / "pensieve")
    (tmp_path / "trunk_a.py").write_text(TRUNK + "        self.latent_dim = 1\n")
    (tmp_path / "broken").mkdir()
    proposals, failures = replay(tmp_path)
    assert sorted(p.name for p in proposals) == ["pensieve", "trunk_a"]
    trunk = next(p for p in proposals if p.name == "trunk_a")
    assert trunk.kind == "network" and trunk.state_source == seed_state_source()
    assert failures and failures[0].name == "broken"
