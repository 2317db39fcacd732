"""Which recording a trace file belongs to: the unit that statistics resample and splits keep whole.

Several files can come from one recording: the FCC dataset cuts up to 16 overlapping windows from
one measurement unit, the Norway test set cuts windows from one raw log. Such files are not
independent samples, so a split keeps all files of one recording on one side
(``experiments/make_splits.py``) and a bootstrap resamples them together
(``llmabr.scoring.stats.two_level_bootstrap``). Both take the rules from here.

Each rule maps a **file name** (``Trace.name``: the loaders name a trace by its file name, not its
path) to ``(trace ID, stratum)`` and raises ``TraceIdError`` on a name it does not understand.
``recording_id`` tries every rule and qualifies the ID with its ID space (``fcc:942154``,
``norway:norway_ferry_13``, ``lumos-lte:60044``), so equal numbers of two sources never merge;
the FCC train and test folders share unit IDs, as do the Norway train and test folders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath


class TraceIdError(ValueError):
    """A file name that an ID rule does not understand."""


def _match(pattern: str, name: str, what: str) -> re.Match:
    match = re.fullmatch(pattern, name)
    if match is None:
        raise TraceIdError(f"{name}: not a {what} file name (expected /{pattern}/); "
                           "a new file in ../shared needs an ID rule in simulator/traces/groups.py")
    return match


# -- ID rules: (trace ID, stratum) from a file name ------------------------------------------------

def fcc_id(name: str) -> tuple[str, str]:
    """FCC unit ID; stratum = sampling flavour (1 s windows ``test_fcc_trace_*`` or 5 s ``trace_*``)."""
    match = _match(r"(?:\d{3}_)?(test_fcc_)?trace_(\d+)_http.*", name, "FCC")
    return match.group(2), "1 s windows" if match.group(1) else "5 s traces"


def norway_train_id(name: str) -> tuple[str, str]:
    """The cooked trace ``norway_<mode>_<n>`` itself (no two train files share a window); stratum = mode."""
    match = _match(r"norway_([a-z]+)_\d+", name, "Norway train")
    return name, match.group(1)


def norway_test_id(name: str) -> tuple[str, str]:
    """The raw log a test window was cut from (``<mode>.<route>-report.<date>.log``), or ``norway_<mode>_<n>``."""
    base = name.removeprefix("test_norway_")
    if ".log_" in base:
        match = _match(r"(([a-z]+)\.[^.]+-report\.[\d-]+_\d{4}CES?T\.log)_\d+(?:_\d+)?", base, "Norway test")
        return match.group(1), match.group(2)
    match = _match(r"(norway_([a-z]+)_\d+)_\d+", base, "Norway test")
    return match.group(1), match.group(2)


def belgium_id(name: str) -> tuple[str, str]:
    """One log per file (``report_<mode>_<nnnn>.json``); stratum = mode."""
    match = _match(r"(report_([a-z]+)_\d+)\.json", name, "Belgium 4G")
    return match.group(1), match.group(2)


def lumos_lte_id(name: str) -> tuple[str, str]:
    """The run id in ``4g_trace_<mode>_<id>_<route>``; stratum = mode and route (dr, walking a / c)."""
    match = _match(r"4g_trace_(driving|walking)_(\d+)_(dr|a|c)", name, "Lumos LTE")
    return match.group(2), match.group(1) if match.group(3) == "dr" else f"walking_{match.group(3)}"


def lumos_5g_id(name: str) -> tuple[str, str]:
    """The Lumos5G ``run_num`` in ``5g_trace_<run>_<mode>``; stratum = mode."""
    match = _match(r"5g_trace_(\d+)_(driving|walking)", name, "Lumos 5G")
    return match.group(1), match.group(2)


def starlink_id(name: str) -> tuple[str, str]:
    """The nuttcp run ``<YYYYMMDD>_<runid>`` (one run per file); stratum = day."""
    match = _match(r"(\d{8})_(\d+)_tcp_downlink_\d+\.csv", name, "Starlink")
    return f"{match.group(1)}_{match.group(2)}", match.group(1)


@dataclass(frozen=True)
class IdRule:
    """One ID rule and the ID space its IDs live in (the prefix ``recording_id`` puts on them)."""

    space: str
    trace_id: Callable[[str], tuple[str, str]]  # file name -> (ID, stratum); TraceIdError otherwise


# The patterns are disjoint on every file of ../shared (tests/simulator/test_groups.py checks it).
ID_RULES = (
    IdRule("fcc", fcc_id),
    IdRule("norway", norway_train_id),
    IdRule("norway", norway_test_id),
    IdRule("belgium", belgium_id),
    IdRule("lumos-lte", lumos_lte_id),
    IdRule("lumos-5g", lumos_5g_id),
    IdRule("starlink", starlink_id),
)


def recording_id(trace_name: str) -> str:
    """The recording a trace belongs to, as ``<space>:<ID>`` (e.g. ``fcc:942154``).

    ``trace_name`` is a file name as ``Trace.name`` holds it; a path is accepted and only its last
    part is read. A name that no rule understands (synthetic traces, a user's own files) is its own
    recording: the name itself is returned unchanged.
    """
    file_name = PurePath(trace_name).name
    for rule in ID_RULES:
        try:
            trace_id, _ = rule.trace_id(file_name)
        except TraceIdError:
            continue
        return f"{rule.space}:{trace_id}"
    return trace_name
