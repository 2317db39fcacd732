"""Pull the design code out of an LLM reply, or say exactly why not (the reason goes back to the LLM).

Rules, in order:
- A fence opened and never closed means the reply was cut off: rejected (``truncated``).
- Fenced blocks (```python, ```py or bare ```) are candidates; the last block that defines the
  expected name wins (models often revise a first attempt further down).
- With no fence at all, the whole reply is taken if it parses as Python and defines the name.
- Blocks that parse but define another name (``def get_state``, ``class Net``) are rejected
  with the names found (``wrong_name``); a block with a syntax error with its line.
- For ``kind="state"`` both ``state`` (batched torch) and ``state_func`` (the NADA/LLM-ABR
  per-player format, run through the adapter) are accepted.

The text before the code ("Analysis and ideas: ...") is kept as the design's notes.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
NAMES = {"state": ("state", "state_func"), "network": ("Trunk",)}


class ExtractionError(ValueError):
    """A reply without usable code; ``code`` names the failure, the message says what to fix."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Extracted:
    source: str
    analysis: str
    defines: str  # the expected name the source defines


def _top_level_names(source: str) -> set[str]:
    tree = ast.parse(source)
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def _analysis(text: str) -> str:
    match = re.search(r"analysis and ideas\s*:?(.*)", text, re.IGNORECASE | re.DOTALL)
    return (match.group(1) if match else text).strip()[:2000]


def extract_code(reply: str | None, kind: str, finish_reason: str | None = None) -> Extracted:
    if kind not in NAMES:
        raise ValueError(f"kind must be one of {tuple(NAMES)}, got {kind!r}")
    wanted = NAMES[kind]
    wanted_text = " or ".join(("class " if kind == "network" else "def ") + name for name in wanted)
    text = (reply or "").strip()
    if not text:
        raise ExtractionError("empty", "the reply was empty")
    blocks = [(match.group(1).lower(), match.group(2), match.start()) for match in FENCE.finditer(text)]
    closed_until = max((match.end() for match in FENCE.finditer(text)), default=0)
    if "```" in text[closed_until:]:
        cut = " (the reply hit the max_tokens limit)" if finish_reason == "length" else ""
        raise ExtractionError("truncated", f"the reply was cut off inside a code block{cut}; answer with the complete "
                                           f"file in one fenced ```python block")
    candidates = [(code, start) for lang, code, start in blocks if lang in ("", "python", "py", "python3")]
    if not candidates:
        if blocks:
            raise ExtractionError("no_code", f"the reply has code blocks but none is marked python "
                                             f"(found: {', '.join(sorted({b[0] for b in blocks}))})")
        try:
            names = _top_level_names(text)
        except SyntaxError:
            raise ExtractionError("no_code", "the reply holds no fenced ```python code block") from None
        found = [name for name in wanted if name in names]
        if not found:
            raise ExtractionError("no_code", f"the reply holds no fenced ```python code block defining {wanted_text}")
        return Extracted(text + "\n", "", found[0])
    problems = []
    for code, start in reversed(candidates):
        try:
            names = _top_level_names(code)
        except SyntaxError as error:
            problems.append(f"syntax error at line {error.lineno} of a code block: {error.msg}")
            continue
        found = [name for name in wanted if name in names]
        if found:
            return Extracted(code.rstrip() + "\n", _analysis(text[:start]), found[0])
        problems.append(f"a code block defines {', '.join(sorted(names)) or 'nothing at top level'} "
                        f"but not {wanted_text}")
    syntax = [p for p in problems if p.startswith("syntax")]
    code = "syntax" if syntax and len(syntax) == len(problems) else "wrong_name"
    raise ExtractionError(code, "; ".join(dict.fromkeys(problems)))
