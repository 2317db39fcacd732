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


@pytest.fixture(scope="module")
def profiles():
    from llmabr.proposer.context import trace_profile

    return {network: trace_profile(network) for network in ("broadband", "4g")}


def test_trace_profile_reads_the_ladder_and_the_traces(profiles):
    broadband, lte = profiles["broadband"].signals(), profiles["4g"].signals()
    assert profiles["broadband"].median_over_top < 0.5 < 1.0 < profiles["4g"].median_over_top
    assert broadband["constrained"] == 1.0 and broadband["headroom"] == 0.0
    assert lte["constrained"] == 0.0 and lte["headroom"] > 0.3
    assert lte["variability"] > broadband["variability"] + 0.5 and lte["spread"] > broadband["spread"]
    assert 0.0 < profiles["broadband"].outage_share < 0.2 and all(0.0 <= v <= 1.0 for v in lte.values())


def _features(proposals, names) -> float:
    return sum(len(set(p.genome["state"]["features"]) & names) for p in proposals) / len(proposals)


def test_proposals_follow_the_training_traces(profiles):
    """Same seed, two network types: different designs, shifted the way the traces say (variable 4g throughput:
    robust throughput statistics, long windows, temporal trunks; broadband's constrained ladder: per-level costs)."""
    from llmabr.proposer.offline import SEED_NET

    made = {network: {kind: OfflineProposer(3, profile).propose(kind, 150) for kind in ("state", "network")}
            for network, profile in profiles.items()}
    again = OfflineProposer(3, profiles["4g"]).propose("state", 150)
    assert [p.name for p in again] == [p.name for p in made["4g"]["state"]]
    for kind in ("state", "network"):
        first_ten = [{p.name for p in made[network][kind][:10]} for network in profiles]
        assert len(first_ten[0] & first_ten[1]) <= 7, kind  # the old proposer: 10 of 10 the same
    variable = {"throughput_harmonic", "throughput_std", "throughput_percentiles"}
    constrained = {"predicted_download", "size_ratios", "bitrate_changes"}
    lte, broadband = made["4g"]["state"], made["broadband"]["state"]
    assert _features(lte, variable) > 1.5 * _features(broadband, variable)
    assert _features(broadband, constrained) > 1.5 * _features(lte, constrained)
    mean_history = {n: sum(p.genome["state"]["history"] for p in made[n]["state"]) / 150 for n in profiles}
    assert mean_history["4g"] > mean_history["broadband"]
    temporal = {n: sum(p.genome["net"]["type"] in ("conv", "gru", "lstm") for p in made[n]["network"]) for n in profiles}
    mlp = {n: sum(p.genome["net"]["type"] == "mlp" for p in made[n]["network"]) for n in profiles}
    assert temporal["4g"] > temporal["broadband"] and mlp["broadband"] > mlp["4g"]
    assert all(p.genome["net"] == SEED_NET for p in lte)  # a state design keeps the seed network
    assert "biased by 4g traces" in lte[0].notes


def _scored_parents(scores: list[float]) -> list[dict]:
    seeds = OfflineProposer(1).propose("state", len(scores))
    parents = [{"name": f"s{i}", "kind": "state", "genome": p.genome, "val_qoe": score}
               for i, (p, score) in enumerate(zip(seeds, scores))]
    network = OfflineProposer(1).propose("network", 1)[0]
    return parents + [{"name": "net", "kind": "network", "genome": network.genome, "val_qoe": 99.0}]


def test_selection_prefers_the_better_parents():
    from collections import Counter

    parents = _scored_parents([0.1, 0.2, 0.3, 0.9])
    children = OfflineProposer(5).propose("state", 60, parents)
    assert [c.name for c in children] == [c.name for c in OfflineProposer(5).propose("state", 60, parents)]
    uses = Counter(name for child in children for name in child.parent.split("+"))
    assert "net" not in uses  # a state design never descends from a network design (its state is the seed's)
    assert uses["s3"] > max(uses["s0"], uses["s1"], uses["s2"]) and uses["s3"] > 3 * uses["s0"]
    assert "val QoE 0.900" in next(c.notes for c in children if c.parent == "s3")
    unscored = [{k: v for k, v in p.items() if k != "val_qoe"} for p in parents]
    flat = Counter(n for c in OfflineProposer(5).propose("state", 60, unscored) for n in c.parent.split("+"))
    assert uses["s3"] > flat["s3"]  # without scores the choice is uniform


def test_the_seed_competes_as_a_parent_and_failures_are_avoided():
    from llmabr.proposer.offline import SEED_GENOME, genome_distance

    parents = _scored_parents([0.1, 0.2]) + [{"name": "seed-pensieve", "kind": "seed", "genome": None, "val_qoe": 5.0}]
    children = OfflineProposer(2).propose("state", 20, parents)
    assert sum("seed-pensieve" in c.parent for c in children) > len(children) / 2  # 0.70 of the draws
    failed = OfflineProposer(4).propose("network", 3)
    failures = [{"name": p.name, "genome": p.genome} for p in failed]
    avoiding = OfflineProposer(2).propose("network", 20, parents, failures=failures)
    assert len(avoiding) == 20
    assert all(genome_distance(c.genome, f["genome"]) > 1 for c in avoiding for f in failures)
    assert all(genome_distance(c.genome, SEED_GENOME) > 0 for c in avoiding)


def test_search_hands_scores_failures_and_seen_genomes_to_the_offline_proposer(tmp_path):
    from rich.console import Console

    from llmabr.proposer.proposal import Proposal
    from llmabr.search.archive import Archive
    from llmabr.search.config import load_search_config
    from llmabr.search.proposing import Proposing

    archive = Archive(tmp_path)
    archive.add(Proposal(name="seed-pensieve", kind="seed", origin="seed", state_source=seed_state_source(),
                         net_source=None))
    archive.update("seed-pensieve", stage="screened", val_qoe=1.0)
    good, bad, waiting = OfflineProposer(1).propose("state", 3)
    for proposal in (good, bad, waiting):
        archive.add(proposal)
    archive.update(good.name, stage="screened", val_qoe=1.2)
    archive.update(bad.name, stage="screened", status="rejected", reason="S2: stopped early", val_qoe=0.4)
    proposing = Proposing(load_search_config(None, ["proposer=offline", "network=4g"]), archive, tmp_path,
                          Console(quiet=True))
    parents, failures, seen = proposing._offline_inputs()
    assert {p["name"]: p["val_qoe"] for p in parents} == {"seed-pensieve": 1.0, good.name: 1.2}
    assert [f["name"] for f in failures] == [bad.name] and failures[0]["genome"] == bad.genome
    assert len(seen) == 3 and proposing.offline.profile.network == "4g"
    children = proposing._ask("state", 4)
    assert len(children) == 4 and {c.parent for c in children} <= {"pensieve", "seed-pensieve", good.name} | {
        c.parent for c in children if "+" in c.parent}


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
