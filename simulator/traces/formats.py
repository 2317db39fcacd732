"""Trace loaders: Pensieve cooked, Mahimahi, Sabre JSON and CSV, with errors that name file and line.

Every loader returns a ``Trace`` whose row i carries the bandwidth of the interval
``(time_s[i-1], time_s[i]]`` (Pensieve's convention, see ``simulator.traces.model``):

* **Pensieve cooked** - ``time_s<space|tab>throughput_Mbps`` per line, used as is.
* **Mahimahi** - one integer millisecond timestamp per line, each a delivery opportunity for one
  1500-byte packet. Opportunities are counted in ``mahimahi_bin_ms`` bins (1 s by default);
  row i (i >= 1) holds bin i-1's rate and ends at ``i x bin``; row 0 anchors the clock at 0.
* **Sabre JSON** - a list of ``{"duration_ms", "bandwidth_kbps", ...}``. Row 0 anchors the clock at
  0; row i ends at the cumulative duration of entries 0..i-1 and holds entry i-1's bandwidth.
* **CSV** - read through a ``CsvMapping`` (``simulator.traces.csv_loader``): a built-in preset
  detected from the header (G-NetTrack, 5Gophers, Lumos5G, Starlink drive tests, NYU-METS, generic
  ``time,throughput_mbps`` logs; ``simulator.traces.presets``), a preset named by ``fmt``, or a mapping
  file (TOML or JSON). One CSV file may hold several traces (a carrier per column, sessions).

In the cooked, Mahimahi and Sabre forms a row that repeats the previous row's timestamp spans no
time (Pensieve's loop never uses its bandwidth) and is dropped; a time that goes backwards is an
error. (CSV files average rows that share a timestamp and split where time goes back.)

``fmt`` is ``auto`` (detect), a form above, a preset name, or a mapping file. In ``auto`` mode a
``trace-format.toml`` (or ``.json``) in a trace's folder, or in a folder above it up to the folder
being loaded, is the mapping for every file below it.

Wherever a trace folder is accepted (``trace_files``, ``load_trace_dir``), a **trace list** may
stand in for it: a ``.txt`` file naming one trace per line (see ``read_trace_list``), such as the
split lists in ``traces/splits/``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from simulator.paths import shared_traces
from simulator.traces.csv_loader import _is_number, load_csv
from simulator.traces.csv_mapping import FOLDER_MAPPING_NAMES, MappingSpec, load_mapping
from simulator.traces.model import Trace, TraceError
from simulator.traces.presets import PRESET_NAMES
from simulator.traces.report import FileReport

FORMATS = ("auto", "cooked", "mahimahi", "sabre", "csv")
MAHIMAHI_PACKET_BYTES = 1500
SKIPPED_NAMES = {"readme", "readme.md", "readme.txt", "manifest", "manifest.md", "manifest.json", "license",
                 "splits.txt", *FOLDER_MAPPING_NAMES}
LIST_SUFFIX = ".txt"
LIST_ROOT_HEADER = "root:"


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TraceError(path, "no such file") from None
    except IsADirectoryError:
        raise TraceError(path, "is a folder, not a trace file (use load_trace_dir)") from None
    except OSError as error:
        raise TraceError(path, f"cannot be read: {error.strerror or error}") from None
    if b"\x00" in data[:65536]:
        raise TraceError(path, "looks like a binary file, not a text trace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise TraceError(path, "is not UTF-8 text", line) from None


def _number(text: str, path: Path, line: int, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise TraceError(path, f"{what} {text!r} is not a number", line) from None


def detect_format(path: Path, text: str) -> str:
    """Guess the format from the extension, then from the first non-empty line."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "sabre"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("["):
        return "sabre"
    has_letters = any(ch.isalpha() for ch in first.replace("e", "").replace("E", ""))
    if suffix == ".csv" or (has_letters and not first.startswith("#") and any(sep in first for sep in ",\t;")):
        return "csv"
    fields = first.replace(",", " ").split()
    if len(fields) == 1 and fields[0].isdigit():
        return "mahimahi"
    return "cooked"


def parse_cooked(path: Path, text: str) -> Trace:
    times, bandwidths, lines = [], [], []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields or raw.lstrip().startswith("#"):
            continue
        if len(fields) != 2:
            raise TraceError(path, f"expected 2 columns (time_s Mbps), found {len(fields)}: {raw.strip()[:60]!r}", line_no)
        times.append(_number(fields[0], path, line_no, "time"))
        bandwidths.append(_number(fields[1], path, line_no, "bandwidth"))
        lines.append(line_no)
    return _trace(path, times, bandwidths, lines)


def parse_mahimahi(path: Path, text: str, bin_ms: float = 1000.0) -> Trace:
    stamps_ms, lines = [], []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        field = raw.strip()
        if not field:
            continue
        if not field.isdigit():
            raise TraceError(path, f"a Mahimahi line holds one integer millisecond timestamp, got {field[:60]!r}", line_no)
        stamp = int(field)
        if stamps_ms and stamp < stamps_ms[-1]:
            raise TraceError(path, f"timestamp {stamp} ms is earlier than the previous {stamps_ms[-1]} ms", line_no)
        stamps_ms.append(stamp)
        lines.append(line_no)
    if not stamps_ms:
        raise TraceError(path, "the trace is empty (no data rows)")
    n_bins = max(1, math.ceil(stamps_ms[-1] / bin_ms))
    # Opportunity at t ms belongs to the bin covering (k x bin, (k+1) x bin]; t = 0 to the first bin.
    bins = np.clip(np.ceil(np.array(stamps_ms, dtype=np.float64) / bin_ms) - 1, 0, n_bins - 1).astype(np.int64)
    counts = np.bincount(bins, minlength=n_bins)
    rate_mbps = counts * MAHIMAHI_PACKET_BYTES * 8 / (bin_ms / 1000.0) / 1e6
    time_s = np.arange(n_bins + 1) * (bin_ms / 1000.0)
    bw_mbps = np.concatenate([[rate_mbps[0]], rate_mbps])
    first_line_of_bin = np.full(n_bins, lines[0])
    for line_no, k in zip(reversed(lines), reversed(bins.tolist())):
        first_line_of_bin[k] = line_no
    return _trace(path, time_s, bw_mbps, np.concatenate([[lines[0]], first_line_of_bin]))


def parse_sabre(path: Path, text: str) -> Trace:
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise TraceError(path, f"invalid JSON: {error.msg}", error.lineno) from None
    if not isinstance(entries, list):
        raise TraceError(path, "a Sabre network trace is a JSON list of {duration_ms, bandwidth_kbps} objects", 1)
    # Line of each entry: Sabre files hold one object per line; count opening braces to find them.
    brace_lines = [text.count("\n", 0, pos) + 1 for pos, ch in enumerate(text) if ch == "{"]
    times, bandwidths, lines = [0.0], [], [brace_lines[0] if brace_lines else 1]
    clock_ms = 0.0
    for index, entry in enumerate(entries):
        line_no = brace_lines[index] if index < len(brace_lines) else None
        if not isinstance(entry, dict) or "duration_ms" not in entry or "bandwidth_kbps" not in entry:
            raise TraceError(path, f"entry {index} needs duration_ms and bandwidth_kbps", line_no)
        duration_ms = _number(str(entry["duration_ms"]), path, line_no, "duration_ms")
        kbps = _number(str(entry["bandwidth_kbps"]), path, line_no, "bandwidth_kbps")
        clock_ms += duration_ms
        times.append(clock_ms / 1000.0)
        bandwidths.append(kbps / 1000.0)
        lines.append(line_no or 0)
    if not bandwidths:
        raise TraceError(path, "the trace is empty (no data rows)")
    return _trace(path, times, [bandwidths[0]] + bandwidths, lines)


def _trace(path: Path, times, bandwidths, lines) -> Trace:
    time_s = np.asarray(times, dtype=np.float64)
    bw_mbps = np.asarray(bandwidths, dtype=np.float64)
    lines = np.asarray(lines, dtype=np.int64)
    # A row repeating the previous timestamp spans zero time: Pensieve's delivery loop never
    # uses its bandwidth. Drop it (10 Lumos LTE files have one); time going backwards stays an error.
    repeated = np.zeros(len(time_s), dtype=bool)
    repeated[1:] = time_s[1:] == time_s[:-1]
    if repeated.any():
        time_s, bw_mbps, lines = time_s[~repeated], bw_mbps[~repeated], lines[~repeated]
    return Trace(name=path.name, time_s=time_s, bw_mbps=bw_mbps, source=str(path), lines=lines)


PARSERS = {"cooked": parse_cooked, "mahimahi": parse_mahimahi, "sabre": parse_sabre}
TraceFormat = str | Path | MappingSpec


def resolve_format(fmt: TraceFormat) -> str | MappingSpec:
    """``fmt`` as a parser name (or ``auto``/``csv``) or a ``MappingSpec`` (a preset name, a mapping file)."""
    if isinstance(fmt, MappingSpec):
        return fmt
    text = str(fmt)
    if text in FORMATS:
        return text
    if text in PRESET_NAMES:
        return MappingSpec(source=f"preset {text}", preset=text)
    if Path(text).suffix.lower() in (".toml", ".json"):
        return load_mapping(text)
    raise ValueError(f"trace format must be one of {', '.join(FORMATS)}, a CSV preset ({', '.join(PRESET_NAMES)}) "
                     f"or a mapping file (.toml or .json), got {text!r}")


def load_file(path: str | Path, fmt: TraceFormat = "auto") -> tuple[list[Trace], FileReport]:
    """The traces of one file (a CSV file may hold several) and the report of how they were read."""
    path = Path(path)
    kind = resolve_format(fmt)
    text = _read_text(path)
    if not text.strip():
        raise TraceError(path, "the trace is empty (no data rows)")
    if isinstance(kind, MappingSpec):
        return load_csv(path, text, kind)
    kind = detect_format(path, text) if kind == "auto" else kind
    if kind == "csv":
        return load_csv(path, text)
    trace = PARSERS[kind](path, text)
    report = FileReport(path=str(path), format=kind, rows_read=len(trace),
                        traces=[{"name": trace.name, "rows": len(trace), "duration_s": trace.duration_s}])
    return [trace], report


def load_traces(path: str | Path, fmt: TraceFormat = "auto") -> list[Trace]:
    """Every trace in one file; raise ``TraceError`` (file and line) on anything unusable."""
    return load_file(path, fmt)[0]


def load_trace(path: str | Path, fmt: TraceFormat = "auto") -> Trace:
    """Load a file that holds one trace; raise ``TraceError`` (file and line) on anything unusable."""
    traces = load_traces(path, fmt)
    if len(traces) != 1:
        shown = ", ".join(trace.name for trace in traces[:3]) + (", ..." if len(traces) > 3 else "")
        raise TraceError(path, f"holds {len(traces)} traces ({shown}); load it with load_traces or load_trace_dir")
    return traces[0]


def is_trace_list(path: str | Path) -> bool:
    """True when ``path`` names a trace list (a ``.txt`` file, not a folder)."""
    path = Path(path)
    return path.suffix.lower() == LIST_SUFFIX and not path.is_dir()


def read_trace_list(list_path: str | Path) -> list[Path]:
    """The trace files a list names, in list order.

    A trace list is UTF-8 text with one trace path per line. Lines starting with ``#`` and blank
    lines are ignored. An optional ``root: DIR`` line before the first path sets the folder the
    paths are relative to (a relative DIR is taken from the list file's folder); without it,
    paths are relative to ``../shared/traces`` (``simulator.paths.shared_traces``), which is how
    the committed split lists in ``traces/splits/`` are written. Absolute paths are used as is.

    Raises ``TraceError`` naming the list (and line) for: a missing list file, a list with no
    paths, a misplaced or repeated ``root:`` line, a path listed twice, a line that is trace data
    rather than a path, no root (``../shared`` absent), and listed traces that do not exist.
    """
    list_path = Path(list_path)
    if not list_path.exists():
        where = "" if list_path.is_absolute() else f" (relative to the current folder {Path.cwd()})"
        raise TraceError(list_path, f"no such trace list file{where}")
    text = _read_text(list_path)
    root: Path | None = None
    entries: list[tuple[int, str]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith(LIST_ROOT_HEADER):
            if root is not None or entries:
                raise TraceError(list_path, "a 'root:' line may appear once, before the first path", line_no)
            # normpath folds "../" so sources and errors name the real file, without resolving links.
            root = Path(os.path.normpath(list_path.parent / line[len(LIST_ROOT_HEADER):].strip()))
            if not root.is_dir():
                raise TraceError(list_path, f"root folder {root} does not exist", line_no)
            continue
        if all(_is_number(field) for field in line.replace(",", " ").split()):
            # A cooked or Mahimahi trace that happens to end in .txt: say so instead of
            # reporting hundreds of "missing files" named "0.0 1.52".
            raise TraceError(list_path, f"line {line!r} is trace data, not a path: this is a trace file, "
                                        "not a trace list (load it with load_trace)", line_no)
        entries.append((line_no, line))
    if not entries:
        raise TraceError(list_path, "the trace list names no traces (only comments and blank lines)")
    if root is None:
        root = shared_traces()
        if root is None and not all(Path(name).is_absolute() for _, name in entries):
            raise TraceError(list_path, "paths are relative to ../shared/traces, which is absent here; "
                                        "provide ../shared beside the repository or add a 'root: DIR' line")
    first_line: dict[Path, int] = {}
    missing: list[str] = []
    for line_no, name in entries:
        path = root / name if root is not None else Path(name)
        if path in first_line:
            raise TraceError(list_path, f"{name} is listed twice (lines {first_line[path]} and {line_no})", line_no)
        first_line[path] = line_no
        if not path.is_file():
            missing.append(f"{name} (line {line_no})")
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        under = f" under {root}" if root is not None else ""
        raise TraceError(list_path, f"{len(missing)} of {len(entries)} listed traces are missing{under}: "
                                    f"{shown}; ../shared may be absent or another version "
                                    "(experiments/make_splits.py --check compares the split lists with it)")
    return list(first_line)


def trace_files(folder: str | Path, recursive: bool = True) -> list[Path]:
    """The trace files under ``folder``, sorted by path; documentation files and dotfiles skipped.

    ``folder`` may also be a trace list (``.txt``, see ``read_trace_list``): its traces come back
    in list order and ``recursive`` does not apply.
    """
    folder = Path(folder)
    if is_trace_list(folder):
        return read_trace_list(folder)
    if not folder.is_dir():
        raise TraceError(folder, "no such folder" if not folder.exists() else "is a file, not a folder (use load_trace)")
    pattern = "**/*" if recursive else "*"
    files = [
        path for path in folder.glob(pattern)
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.name.lower() not in SKIPPED_NAMES and path.suffix.lower() not in (".md", ".pkl", ".py")
    ]
    return sorted(files, key=lambda p: str(p.relative_to(folder)))


def load_trace_dir(folder: str | Path, fmt: TraceFormat = "auto", recursive: bool = True) -> list[Trace]:
    """Load every trace under ``folder`` (sorted by relative path); an empty folder is an error.

    ``folder`` may be a trace list (``.txt``): exactly the listed traces load, in list order.
    """
    return load_trace_dir_reports(folder, fmt, recursive)[0]


def load_trace_dir_reports(folder: str | Path, fmt: TraceFormat = "auto",
                           recursive: bool = True) -> tuple[list[Trace], list[FileReport]]:
    """``load_trace_dir`` plus one ``FileReport`` per file (what was averaged, held, split, dropped)."""
    kind = resolve_format(fmt)
    # a mapping file given as fmt may sit among the traces: it is not one of them
    given = Path(kind.source).resolve() if isinstance(kind, MappingSpec) and Path(kind.source).is_file() else None
    files = [path for path in trace_files(folder, recursive) if given is None or path.resolve() != given]
    if not files:
        raise TraceError(folder, "holds no trace files")
    root = None if is_trace_list(folder) else Path(folder)
    found: dict[Path, MappingSpec | None] = {}
    traces, reports = [], []
    for path in files:
        spec = (_folder_mapping(path, root, found) or kind) if kind == "auto" else kind
        file_traces, report = load_file(path, spec)
        traces.extend(file_traces)
        reports.append(report)
    return traces, reports


def _folder_mapping(path: Path, root: Path | None, found: dict) -> MappingSpec | None:
    """The nearest trace-format file from ``path``'s folder up to ``root`` (its own folder only for lists)."""
    for folder in [path.parent, *path.parent.parents]:
        if folder not in found:
            mapping_file = next((folder / name for name in FOLDER_MAPPING_NAMES if (folder / name).is_file()), None)
            found[folder] = load_mapping(mapping_file) if mapping_file else None
        if found[folder] is not None or root is None or folder == root or root not in folder.parents:
            return found[folder]
    return None


def write_cooked(trace: Trace, path: str | Path) -> None:
    """Write ``trace`` in Pensieve cooked format (``time_s<TAB>Mbps``, full float precision)."""
    lines = [f"{t!r}\t{bw!r}" for t, bw in zip(trace.time_s.tolist(), trace.bw_mbps.tolist())]
    Path(path).write_text("\n".join(lines) + "\n")
