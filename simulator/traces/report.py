"""What loading one trace file did: rows read, averaged, held, split and dropped, and the traces made.

Every loader fills a ``FileReport``; ``llmabr traces stats --report`` prints them and
``llmabr traces convert`` writes them to its manifest, so no conversion choice is silent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@dataclass
class FileReport:
    """One file's load. Counts over all rate columns of the file (a carrier-per-column file counts
    each of its rows once per column).

    rows_read: data rows in the file (header and blank lines excluded).
    rows_dropped: reason -> rows not used (a missing rate, a ``keep`` filter, a one-row session, ...).
    rows_averaged: rows merged into the row before them because they share its timestamp.
    timestamps_averaged: timestamps that had more than one row.
    gaps_held / held_s: gaps up to ``split_gap_s`` bridged by holding the last rate, and their total length.
    splits: cause -> extra traces started (time going back, a gap over ``split_gap_s``, a session column).
    labels: describe column -> value -> share of rows.
    traces: one entry per trace made: name, rows, duration_s, column, session.
    """

    path: str
    format: str
    rows_read: int = 0
    rows_dropped: Counter = field(default_factory=Counter)
    rows_averaged: int = 0
    timestamps_averaged: int = 0
    gaps_held: int = 0
    held_s: float = 0.0
    splits: Counter = field(default_factory=Counter)
    interval_s: float | None = None
    rate_columns: int = 1
    labels: dict[str, dict[str, float]] = field(default_factory=dict)
    traces: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what was made and every choice that changed the rows."""
        parts = [f"{_count(self.rows_read, 'row')} -> {_count(len(self.traces), 'trace')} ({self.format})"]
        if self.rate_columns > 1:
            parts.append(f"{self.rate_columns} rate columns")
        if self.rows_averaged:
            parts.append(f"{_count(self.rows_averaged, 'row')} averaged into "
                         f"{_count(self.timestamps_averaged, 'shared timestamp')}")
        if self.gaps_held:
            parts.append(f"{_count(self.gaps_held, 'gap')} held ({self.held_s:g} s)")
        for cause, count in sorted(self.splits.items()):
            parts.append(f"{_count(count, 'split')} at {cause}")
        for reason, count in sorted(self.rows_dropped.items()):
            parts.append(f"{_count(count, 'row')} dropped: {reason}")
        for column, shares in self.labels.items():
            shown = ", ".join(f"{value or '(empty)'} {share:.0%}" for value, share in
                              sorted(shares.items(), key=lambda item: -item[1])[:4])
            parts.append(f"{column}: {shown}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "path": self.path, "format": self.format, "rows_read": self.rows_read,
            "rows_dropped": dict(self.rows_dropped), "rows_averaged": self.rows_averaged,
            "timestamps_averaged": self.timestamps_averaged, "gaps_held": self.gaps_held,
            "held_s": self.held_s, "splits": dict(self.splits), "interval_s": self.interval_s,
            "rate_columns": self.rate_columns, "labels": self.labels, "traces": self.traces,
        }


def combined_summary(reports: list[FileReport]) -> str:
    """A line over many files: formats, and totals of every choice."""
    formats = Counter(report.format for report in reports)
    traces = sum(len(report.traces) for report in reports)
    parts = [f"{_count(len(reports), 'file')} ({', '.join(f'{count} {name}' for name, count in formats.most_common())})"
             f" -> {_count(traces, 'trace')}"]
    averaged = sum(report.rows_averaged for report in reports)
    held = sum(report.gaps_held for report in reports)
    splits: Counter = sum((report.splits for report in reports), Counter())
    dropped: Counter = sum((report.rows_dropped for report in reports), Counter())
    if averaged:
        parts.append(f"{_count(averaged, 'row')} averaged")
    if held:
        parts.append(f"{_count(held, 'gap')} held ({sum(report.held_s for report in reports):g} s)")
    for cause, count in sorted(splits.items()):
        parts.append(f"{_count(count, 'split')} at {cause}")
    for reason, count in sorted(dropped.items()):
        parts.append(f"{_count(count, 'row')} dropped: {reason}")
    return "; ".join(parts)
