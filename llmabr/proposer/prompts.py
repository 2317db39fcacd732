"""Prompts for the LLM proposer, rendered from the text templates in ``prompts/``.

The structure follows the prompts the LLM-ABR paper published: a role line; what ABR is and
what the controller observes (every input with its unit); the seed code; the rules (signature,
output contract, normalization into about [-1, 1], never raw kbps or bytes); the answer format
"Analysis and ideas:" plus one fenced Python block. Iterative rounds append the best designs so
far with their validation scores, recent failures with their reasons and a training-curve
summary. Test-trace scores never enter a prompt: ``PromptContext`` has no field for them, and
``top_designs`` carry validation scores only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from string import Template

KINDS = ("state", "network")
EXPECTED = {"state": ("state.py", "def state(m)"), "network": ("net.py", "class Trunk(nn.Module)")}


def template(name: str) -> Template:
    return Template(resources.files("llmabr.proposer").joinpath("prompts", f"{name}.txt").read_text())


@dataclass(frozen=True)
class ScoredDesign:
    name: str
    val_qoe: float  # mean validation QoE per chunk (never a test score)
    source: str  # the file the prompt is about (state.py or net.py)


@dataclass(frozen=True)
class Failure:
    name: str
    stage: str  # "extract", "S0", "S1", "S2", "train"
    reason: str


@dataclass(frozen=True)
class PromptContext:
    """Everything a prompt may contain. Deliberately no test-set numbers."""

    network: str
    trace_stats: str
    ladder_kbps: tuple[float, ...]
    seed_state: str
    seed_net: str
    feature_dims: dict[str, int] = field(default_factory=dict)
    history_len: int = 16
    chunk_s: float = 4.0
    rebuffer_penalty: float = 4.3
    seed_score: float | None = None
    top_designs: tuple[ScoredDesign, ...] = ()
    failures: tuple[Failure, ...] = ()
    curve_summary: str = ""


def _history(context: PromptContext, top_k: int = 3, max_failures: int = 5) -> str:
    if not context.top_designs and not context.failures:
        return ""
    tops = sorted(context.top_designs, key=lambda d: d.val_qoe, reverse=True)[:top_k]
    top_text = "\n".join(f"- {d.name}: {d.val_qoe:.3f}\n```python\n{d.source.strip()}\n```" for d in tops) or "- none yet"
    failure_text = "\n".join(f"- {f.name} ({f.stage}): {f.reason}" for f in context.failures[-max_failures:]) or "- none"
    return template("iterative").substitute(
        seed_score="unknown" if context.seed_score is None else f"{context.seed_score:.3f}",
        top_designs=top_text, failures=failure_text, curve_summary=context.curve_summary or "not available yet.") + "\n"


def build_messages(kind: str, context: PromptContext) -> list[dict]:
    """The chat messages asking for one ``kind`` ("state" or "network") design."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    values = {
        "network": context.network, "trace_stats": context.trace_stats, "history_len": context.history_len,
        "n_levels": len(context.ladder_kbps), "ladder_kbps": ", ".join(f"{k:g}" for k in context.ladder_kbps),
        "chunk_s": f"{context.chunk_s:g}", "rebuffer_penalty": f"{context.rebuffer_penalty:g}",
        "seed_state": context.seed_state.strip(), "seed_net": context.seed_net.strip(),
        "feature_dims": ", ".join(f"{k}: {v}" for k, v in context.feature_dims.items()) or "see the code",
        "history": _history(context),
    }
    user = template("abr").substitute(values) + "\n" + template(kind).substitute(values)
    return [{"role": "system", "content": template("role").template.strip()}, {"role": "user", "content": user}]


def repair_messages(messages: list[dict], reply: str, kind: str, reason: str) -> list[dict]:
    """The conversation continued with the rejected reply and the exact reason it was rejected."""
    file, expected = EXPECTED[kind]
    text = template("repair").substitute(reason=reason, file=file, expected=expected)
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": text}]
