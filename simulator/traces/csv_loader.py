"""CSV files to traces through a ``CsvMapping``: sessions, shared timestamps, gaps, and a report of each choice.

For each rate column and each session (rows with equal ``session`` values, in file order):

1. rows without a time or a rate (empty, ``-``, ``NA``, ``nan``) and rows outside ``keep`` are dropped;
2. time going back starts a new trace (concatenated sessions, out of order);
3. rows sharing a timestamp are averaged into one;
4. a gap longer than ``split_gap_s`` starts a new trace; a shorter gap longer than 1.5 intervals is
   held: the last rate continues until one interval before the next row (one row is inserted);
5. a trace keeps its times relative to its first row (which, as everywhere, only anchors the clock).

A piece left with one row, or with zero rate throughout, is dropped (and reported). Every count
goes to the file's ``FileReport``. Columns are read with the csv module and converted with numpy,
so a 10 MB file loads in well under a second.
"""

from __future__ import annotations

import csv
import gc
import io
from collections import Counter
from operator import itemgetter
from pathlib import Path

import numpy as np

from simulator.traces.csv_mapping import (MISSING_VALUES, UNIT_HELP, CsvMapping, MappingSpec, apply_overrides,
                                          example_mapping, mapping_from_overrides, rate_unit_factor)
from simulator.traces.model import Trace, TraceError
from simulator.traces.presets import PRESET_NAMES, detect_preset, get_preset
from simulator.traces.report import FileReport
from simulator.traces.timeparse import TimeFormatError, parse_times

HOLD_TOLERANCE = 1.5  # a step up to 1.5 intervals is clock jitter, not a gap
_MISSING_EXACT = frozenset(variant for value in MISSING_VALUES
                           for variant in (value, value.upper(), value.capitalize(), "NaN", "N/A", " "))


def load_csv(path: Path, text: str, spec: MappingSpec | None = None) -> tuple[list[Trace], FileReport]:
    """The traces of one CSV file and the report of how they were made; ``TraceError`` (file, line) otherwise."""
    # A file's rows are ~10^5 small lists and no cycles: the cyclic collector would rescan them again
    # and again while they are built (a third of the load time), so it pauses for the load.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load_csv(path, text, spec)
    finally:
        if collecting:
            gc.enable()


def _load_csv(path: Path, text: str, spec: MappingSpec | None) -> tuple[list[Trace], FileReport]:
    first_line_no, first_line = _first_line(text)
    if first_line is None:
        raise TraceError(path, "the trace is empty (no header, no data rows)")
    delimiter = _sniff(first_line)
    first_row = next(csv.reader([first_line], delimiter=delimiter))
    mapping = resolve_mapping(path, first_row, spec, first_line_no)
    if mapping.delimiter != "auto" and mapping.delimiter != delimiter:
        delimiter = mapping.delimiter
        first_row = next(csv.reader([first_line], delimiter=delimiter))
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    lines = _line_numbers(text, delimiter, len(rows))
    header = first_row if mapping.header else None
    start = first_line_no if mapping.header else first_line_no - 1  # index of the first data row in ``rows``
    # Blank lines skip; a row repeating the header (files joined with cat) is dropped and reported.
    kept = [(row, line) for row, line in zip(rows[start:], lines[start:]) if row and row != header]
    build = _Build(path, mapping, header, [row for row, _ in kept], np.array([line for _, line in kept], np.int64))
    repeated = sum(1 for row in rows[start:] if row == header) if header is not None else 0
    if repeated:
        build.report.rows_read += repeated
        build.report.rows_dropped["a repeated header row"] += repeated
    return build.run()


def resolve_mapping(path: Path, first_row: list[str], spec: MappingSpec | None, line: int = 1) -> CsvMapping:
    """The mapping for a file: ``spec``'s preset or keys, else the preset its first row (on ``line``) matches."""
    if spec is not None and spec.preset is None and "rate" in spec.overrides:
        return mapping_from_overrides(spec)
    if spec is not None and spec.preset is not None:
        try:
            preset = get_preset(spec.preset)
        except KeyError:
            raise TraceError(spec.source, f"no preset {spec.preset!r}; presets: {', '.join(PRESET_NAMES)}") from None
        if not preset.matches(first_row):
            raise TraceError(path, f"first row {first_row[:12]} is not the {preset.name} form ({preset.dataset}); "
                                   "check the file, or describe it with a mapping file (see traces/README.md)", line)
    else:
        preset = detect_preset(first_row)
        if preset is None:
            raise _unknown_csv(path, first_row, line)
    mapping = preset.build(first_row)
    return apply_overrides(mapping, spec) if spec is not None and spec.overrides else mapping


def _unknown_csv(path: Path, first_row: list[str], line: int) -> TraceError:
    looks_like_data = sum(_is_number(cell) for cell in first_row) * 2 >= len(first_row)
    found = ("its first row looks like data, not a header (set header = false and name columns by index)"
             if looks_like_data else f"columns found: {[cell.strip() for cell in first_row][:30]}")
    header = None if looks_like_data else [cell.strip() for cell in first_row]
    return TraceError(path, f"CSV matches no preset ({', '.join(PRESET_NAMES)}); {found}. The generic form needs "
                            "a time column (time, time_s, timestamp, t, seconds) and a throughput column "
                            "(throughput_mbps, throughput, bandwidth_kbps, ...). Otherwise describe the file in a "
                            "mapping, e.g. trace-format.toml in the trace folder (or --trace-format FILE):\n"
                            + example_mapping(header), line)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_line(text: str) -> tuple[int, str | None]:
    """(1-based line number, text) of the first non-blank line."""
    position, line_no = 0, 1
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        line = text[position:end].rstrip("\r")
        if line.strip():
            return line_no, line
        position, line_no = end + 1, line_no + 1
    return line_no, None


def _sniff(line: str) -> str:
    counts = {delimiter: line.count(delimiter) for delimiter in (",", "\t", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _line_numbers(text: str, delimiter: str, count: int) -> list[int]:
    """The file line each csv row starts on: its index + 1, unless a quoted field spans lines."""
    if text.count("\n") + (not text.endswith("\n")) == count or '"' not in text:
        return list(range(1, count + 1))
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    starts, previous_end = [], 0
    for _ in reader:
        starts.append(previous_end + 1)
        previous_end = reader.line_num
    return starts


class _Build:
    """One file's rows through the steps of the module docstring."""

    def __init__(self, path: Path, mapping: CsvMapping, header: list[str] | None, data: list[list[str]],
                 lines: np.ndarray):
        self.path, self.mapping, self.header, self.data, self.lines = path, mapping, header, data, lines
        self.report = FileReport(path=str(path), format=mapping.name, rows_read=len(data),
                                 rate_columns=len(mapping.rate))

    def fail(self, message: str, row: int | None = None):
        raise TraceError(self.path, message, int(self.lines[row]) if row is not None else 1)

    def index(self, column) -> int:
        header = self.header
        if isinstance(column, int):
            width = len(header) if header is not None else max(map(len, self.data[:100]), default=0)
            if not 0 <= column < max(width, 1):
                raise TraceError(self.path, f"column index {column} is outside the {width} columns", 1)
            return column
        names = [cell.strip() for cell in header]
        if column in names:
            return names.index(column)
        lowered = [name.lower() for name in names]
        if lowered.count(column.lower()) == 1:
            return lowered.index(column.lower())
        raise TraceError(self.path, f"mapping {self.mapping.name}: no column {column!r}; columns found: {names[:30]}",
                         1)

    def column(self, index: int) -> list[str]:
        return list(map(itemgetter(index), self.data))

    def run(self) -> tuple[list[Trace], FileReport]:
        mapping, count = self.mapping, len(self.data)
        if count == 0:
            raise TraceError(self.path, "the trace is empty (no data rows)")
        time_index = None if mapping.time is None else self.index(mapping.time)
        rate_indexes = [self.index(column) for column in mapping.rate]
        unit_index = None if mapping.rate_unit_column is None else self.index(mapping.rate_unit_column)
        session_indexes = [self.index(column) for column in mapping.session]
        keep = {self.index(column): set(values) for column, values in mapping.keep.items()}
        needed = max([i for i in [time_index, unit_index, *rate_indexes, *session_indexes, *keep] if i is not None])
        lengths = np.fromiter(map(len, self.data), dtype=np.int64, count=count)
        short = np.flatnonzero(lengths <= needed)
        if len(short):
            width = len(self.header) if self.header is not None else needed + 1
            self.fail(f"expected {width} columns as in the header, found {lengths[short[0]]}", int(short[0]))
        self.describe()

        usable = np.ones(count, dtype=bool)
        for index, allowed in keep.items():
            outside = np.fromiter((value.strip() not in allowed for value in self.column(index)), bool, count)
            self.drop(usable & outside, f"{self.name_of(index)} not in {sorted(allowed)}")
            usable &= ~outside
        time_s = self.times(time_index, usable)
        rates = [self.rates(index, unit_index, usable) for index in rate_indexes]
        groups = self.sessions(session_indexes)
        pieces = []  # (rate column position, session label, time_s, rate_mbps, lines)
        for position, (rate_mbps, has_rate) in enumerate(rates):
            for label, rows in groups:
                rows = rows[has_rate[rows] & usable[rows]]
                for segment in self.segments(rows, time_s):
                    pieces.append((position, label, *self.average(time_s[segment], rate_mbps[segment],
                                                                  self.lines[segment])))
        interval_s = mapping.interval_s or _typical_step(pieces)
        self.report.interval_s = interval_s
        pieces = [(position, label, *parts) for position, label, *piece in pieces
                  for parts in self.gaps(*piece, interval_s)]
        if mapping.rate_unit_column is None and rate_unit_factor(mapping.rate_unit)[1]:
            # amounts per interval (bytes, kbytes): averaged and held as amounts, then made rates
            pieces = [(position, label, t, amount / interval_s, lines) for position, label, t, amount, lines in pieces]
        return self.traces(pieces, groups), self.report

    def name_of(self, index: int) -> str:
        return self.header[index].strip() if self.header is not None else f"column {index}"

    def drop(self, mask: np.ndarray, reason: str) -> None:
        dropped = int(mask.sum())
        if dropped:
            self.report.rows_dropped[reason] += dropped

    def describe(self) -> None:
        for column in self.mapping.describe:
            index = self.index(column)  # a label column may be missing from short rows: counted as empty
            values = Counter(row[index].strip() if len(row) > index else "" for row in self.data)
            self.report.labels[self.name_of(index)] = {
                value: count / len(self.data) for value, count in values.most_common()}

    def missing(self, values: list[str]) -> np.ndarray:
        return np.fromiter(map(_MISSING_EXACT.__contains__, values), bool, len(values))

    def times(self, time_index: int | None, usable: np.ndarray) -> np.ndarray:
        count = len(self.data)
        if time_index is None:
            return np.arange(count, dtype=np.float64) * (self.mapping.interval_s or 1.0)
        values = self.column(time_index)
        missing = self.missing(values)
        self.drop(usable & missing, "empty time")
        usable &= ~missing
        rows = np.flatnonzero(usable)
        time_s = np.zeros(count)
        try:
            time_s[rows] = parse_times([values[i] for i in rows] if len(rows) < count else values,
                                       self.mapping.time_format, self.mapping.tz_offsets_h)
            return time_s
        except TimeFormatError as error:
            failure = error
        self.fail(str(failure), int(rows[failure.index]) if failure.index is not None else None)

    def rates(self, index: int, unit_index: int | None, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rate in Mbps, or Mbit per interval for amount units; whether the row has a rate)."""
        values = self.column(index)
        missing = self.missing(values)
        what = self.name_of(index)
        numbers = np.zeros(len(values))
        try:
            numbers[~missing] = np.array([values[i] for i in np.flatnonzero(~missing)], dtype=np.float64)
        except ValueError:
            for row in np.flatnonzero(~missing):
                if _is_number(values[row]):
                    numbers[row] = float(values[row])
                elif values[row].strip().lower() in MISSING_VALUES:
                    missing[row] = True
                else:
                    self.fail(f"{what} {values[row]!r} is not a number", int(row))
        self.drop(usable & missing, f"empty rate ({what})" if len(self.mapping.rate) > 1 else "empty rate")
        bad = np.flatnonzero(~np.isfinite(numbers) | (numbers < 0))
        if len(bad):
            self.fail(f"{what} {values[bad[0]]!r}: negative bandwidth or not a finite number", int(bad[0]))
        if unit_index is None:
            rate_mbps = numbers * rate_unit_factor(self.mapping.rate_unit)[0]
        else:
            units = self.column(unit_index)
            unique, inverse = np.unique(np.array(units, dtype=str), return_inverse=True)
            factors = []
            for position, unit in enumerate(unique):
                known = rate_unit_factor(unit)
                if known is None or known[1]:
                    row = int(np.flatnonzero(inverse == position)[0])
                    self.fail(f"rate unit {unit!r} is not one of {UNIT_HELP} (a per-row unit is a rate)", row)
                factors.append(known[0])
            rate_mbps = numbers * np.array(factors)[inverse]
        return rate_mbps, ~missing

    def sessions(self, session_indexes: list[int]) -> list[tuple[str, np.ndarray]]:
        count = len(self.data)
        if not session_indexes:
            return [("", np.arange(count))]
        keys = list(zip(*(self.column(index) for index in session_indexes)))
        numbering: dict[tuple, int] = {}
        ids = np.fromiter((numbering.setdefault(key, len(numbering)) for key in keys), np.int64, count)
        order = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[order], np.arange(len(numbering) + 1))
        labels = ["_".join(part.strip() for part in key) for key in numbering]
        if len(numbering) > 1:
            names = "/".join(self.name_of(index) for index in session_indexes)
            self.report.splits[f"{names} changes"] += len(numbering) - 1
        return [(label, order[bounds[i]:bounds[i + 1]]) for i, label in enumerate(labels)]

    def segments(self, rows: np.ndarray, time_s: np.ndarray) -> list[np.ndarray]:
        """``rows`` cut where time goes back."""
        if len(rows) == 0:
            return []
        back = np.flatnonzero(np.diff(time_s[rows]) < 0) + 1
        if len(back):
            self.report.splits["time going back"] += len(back)
        return np.split(rows, back)

    def average(self, time_s, rate_mbps, lines):
        """Rows sharing a timestamp (adjacent here: time never goes back within a segment) averaged."""
        starts = np.flatnonzero(np.concatenate([[True], np.diff(time_s) > 0]))
        if len(starts) == len(time_s):
            return time_s, rate_mbps, lines
        sizes = np.diff(np.append(starts, len(time_s)))
        self.report.rows_averaged += int(len(time_s) - len(starts))
        self.report.timestamps_averaged += int((sizes > 1).sum())
        return time_s[starts], np.add.reduceat(rate_mbps, starts) / sizes, lines[starts]

    def gaps(self, time_s, rate_mbps, lines, interval_s: float):
        """Pieces of one segment: split at long gaps, short ones held by one inserted row."""
        steps = np.diff(time_s)
        long = np.flatnonzero(steps > self.mapping.split_gap_s) + 1
        if len(long):
            self.report.splits[f"gaps over {self.mapping.split_gap_s:g} s"] += len(long)
        pieces = []
        for piece in np.split(np.arange(len(time_s)), long):
            t, bw, at = time_s[piece], rate_mbps[piece], lines[piece]
            held = np.flatnonzero(np.diff(t) > HOLD_TOLERANCE * interval_s) + 1
            if len(held):
                self.report.gaps_held += len(held)
                self.report.held_s += float(np.sum(t[held] - interval_s - t[held - 1]))
                t = np.insert(t, held, t[held] - interval_s)
                bw = np.insert(bw, held, bw[held - 1])
                at = np.insert(at, held, at[held])
            pieces.append((t, bw, at))
        return pieces

    def traces(self, pieces, groups) -> list[Trace]:
        mapping = self.mapping
        several_columns, several_sessions = len(mapping.rate) > 1, len(groups) > 1
        per_key = Counter((position, label) for position, label, time_s, *_ in pieces if len(time_s) >= 2)
        numbering: Counter = Counter()
        traces = []
        for position, label, time_s, rate_mbps, lines in pieces:
            column = self.name_of(self.index(mapping.rate[position]))
            if len(time_s) < 2:
                self.report.rows_dropped["a piece with a single row (no interval)"] += 1
                continue
            if not np.any(rate_mbps[1:] > 0):
                self.report.rows_dropped["a piece with zero rate throughout"] += len(time_s)
                continue
            numbering[(position, label)] += 1
            parts = ([column] if several_columns else []) + ([label] if several_sessions else [])
            if per_key[(position, label)] > 1:
                parts.append(f"part{numbering[(position, label)]}")
            name = self.path.name + "".join(f"#{part}" for part in parts)
            trace = Trace(name=name, time_s=time_s - time_s[0], bw_mbps=rate_mbps, source=str(self.path), lines=lines)
            traces.append(trace)
            self.report.traces.append({"name": name, "rows": len(trace), "duration_s": trace.duration_s,
                                       "column": column, "session": label, "first_line": int(lines[0])})
        if not traces:
            raise TraceError(self.path, f"no usable trace in the file: {self.report.summary()}")
        return traces


def _typical_step(pieces) -> float:
    """The sampling interval: the median of the steps near the shortest ones (up to 1.5 x their
    10th percentile), so that gaps, however many, do not stretch it."""
    steps = np.concatenate([np.diff(piece[2]) for piece in pieces] or [np.zeros(0)])
    steps = steps[steps > 0]
    if not len(steps):
        return 1.0
    return float(np.median(steps[steps <= HOLD_TOLERANCE * np.percentile(steps, 10)]))
