"""The LLM proposer: prompt -> reply -> code -> checks, with bounded repairs in the same conversation.

For each design asked for, one chat request (``n`` choices in one request when possible). Each
reply goes through ``extract_code``; if that fails, or the optional ``check`` callable (S0, or
S0+S1 via ``llmabr.sandbox.checks``) rejects the design, the conversation continues with the
rejected reply and the exact reason (``prompts.repair_messages``), at most ``max_repairs`` times.
Designs that never pass come back as failures with their last reason, for the next prompt's
"recent failures" list. Endpoint errors (``LLMError``) propagate: the caller decides whether to
back off, fall back or stop; ``BudgetExceeded`` means no request was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from llmabr.proposer.extract import ExtractionError, extract_code
from llmabr.proposer.prompts import PromptContext, build_messages, repair_messages
from llmabr.proposer.proposal import Proposal
from llmabr.proposer.replay import design_hash_text, from_code

LABEL = "LLM proposer"


@dataclass(frozen=True)
class Rejected:
    name: str
    stage: str  # "extract" or the check's stage ("S0", "S1")
    reason: str
    repairs: int


CheckFn = Callable[[Proposal], tuple[bool, str, str]]  # -> (passed, stage, reason)


class LLMProposer:
    def __init__(self, client, max_repairs: int = 2, check: CheckFn | None = None):
        self.client, self.max_repairs, self.check = client, max_repairs, check
        self.label = f"{LABEL} ({client.config.model} at {client.config.base_url or 'api.openai.com'})"

    def _settle(self, kind: str, messages: list[dict], reply: str, finish: str | None) -> tuple[Proposal | None, Rejected | None]:
        """Extract and check one reply; repair it in the same conversation while allowed."""
        repairs = 0
        while True:
            stage, reason, proposal = "extract", "", None
            try:
                extracted = extract_code(reply, kind, finish)
            except ExtractionError as error:
                reason = str(error)
            else:
                name = f"llm-{kind}-{design_hash_text(extracted.source)}"
                notes = f"{self.label}; analysis: {extracted.analysis[:500]}" if extracted.analysis else self.label
                conversation = [*messages, {"role": "assistant", "content": reply}]
                proposal = from_code(name, kind, extracted.source, "llm", notes, conversation)
                if self.check is None:
                    return proposal, None
                passed, stage, reason = self.check(proposal)
                if passed:
                    return proposal, None
            if repairs >= self.max_repairs:
                name = proposal.name if proposal else f"llm-{kind}-unextracted"
                return None, Rejected(name, stage, reason, repairs)
            messages = repair_messages(messages, reply, kind, reason)
            result = self.client.chat(messages, n=1, purpose=f"repair {kind} ({stage})")
            reply, finish = result.replies[0], result.finish_reasons[0]
            repairs += 1

    def propose(self, kind: str, n: int, context: PromptContext) -> tuple[list[Proposal], list[Rejected]]:
        messages = build_messages(kind, context)
        result = self.client.chat(messages, n=n, purpose=f"propose {kind}")
        proposals, rejected = [], []
        for reply, finish in zip(result.replies, result.finish_reasons):
            proposal, failure = self._settle(kind, messages, reply, finish)
            if proposal is not None:
                proposals.append(proposal)
            else:
                rejected.append(failure)
        return proposals, rejected


def static_check(proposal: Proposal) -> tuple[bool, str, str]:
    """S0 only (in-process, never executes the code): the cheap repair trigger."""
    from llmabr.sandbox.static import check_design_sources

    design = proposal.to_design()
    result = check_design_sources(design.state_source, design.net_source, design.kind)
    return result.passed, "S0", "; ".join(f"line {f.line}: {f.message}" for f in result.findings[:5])


def full_check(proposal: Proposal) -> tuple[bool, str, str]:
    """S0 and S1 (S1 in the cage)."""
    from llmabr.sandbox.checks import check_design

    report = check_design(proposal.to_design())
    return report.passed, report.rejected_at or "S1", report.summary()
