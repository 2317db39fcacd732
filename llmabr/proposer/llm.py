"""The LLM proposer: prompt -> reply -> code -> checks, with bounded repairs in the same conversation.

For ``n`` designs, one chat request with ``n`` choices. Servers that return fewer choices than
asked (llama.cpp's server ignores ``n`` and always answers with one) are asked again for the
missing ones, one request after another, so a call costs at most ``n`` requests; replies that
repeat an earlier one (likely at temperature 0) are kept once. Each reply goes through
``extract_code``; if that fails, or the optional ``check`` callable (S0, or S0+S1 via
``llmabr.sandbox.checks``) rejects the design, the conversation continues with the rejected reply
and the exact reason (``prompts.repair_messages``), at most ``max_repairs`` times. Designs that
never pass come back as failures with their last reason, for the next prompt's "recent failures"
list.

Endpoint errors (``LLMError``; ``BudgetExceeded`` means no request was sent) propagate when they
leave the call with nothing: the caller decides whether to back off, fall back or stop. An error
after some replies were settled ends the call with what it has (logged); the next call meets the
same error and the caller handles it there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from llmabr.proposer.client import LLMError
from llmabr.proposer.extract import ExtractionError, extract_code
from llmabr.proposer.prompts import PromptContext, build_messages, repair_messages
from llmabr.proposer.proposal import Proposal
from llmabr.proposer.replay import design_hash_text, from_code

LABEL = "LLM proposer"

log = logging.getLogger(__name__)


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
        config = client.config
        where = f"local {config.model} via llama.cpp" if config.local_model else \
            f"{config.model} at {config.base_url or 'api.openai.com'}"
        self.label = f"{LABEL} ({where})"

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
        """Up to ``n`` designs of ``kind`` for the prompt ``context`` gives, and the replies that failed."""
        return self.propose_messages(kind, n, build_messages(kind, context))

    def propose_messages(self, kind: str, n: int, messages: list[dict]) -> tuple[list[Proposal], list[Rejected]]:
        """As ``propose``, for a conversation built elsewhere (its last message asks for the design)."""
        proposals, rejected, seen = [], [], set()
        asked = 0
        try:
            while asked < n:
                result = self.client.chat(messages, n=n - asked, purpose=f"propose {kind}")
                if len(result.replies) < n - asked:
                    log.info("the server returned %d of %d choices asked for; asking again for the rest",
                             len(result.replies), n - asked)
                asked += len(result.replies)
                for reply, finish in zip(result.replies, result.finish_reasons):
                    if reply in seen:
                        log.info("a reply repeats an earlier one of this call: kept once")
                        continue
                    seen.add(reply)
                    proposal, failure = self._settle(kind, messages, reply, finish)
                    if proposal is not None:
                        proposals.append(proposal)
                    else:
                        rejected.append(failure)
        except LLMError as error:
            if not proposals and not rejected:
                raise
            log.warning("LLM request failed after %d settled repl%s; keeping them: %s",
                        len(proposals) + len(rejected), "y" if len(proposals) + len(rejected) == 1 else "ies", error)
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
