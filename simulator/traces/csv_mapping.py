"""How a CSV file becomes traces: the ``CsvMapping`` and the mapping files (TOML or JSON) that set it.

A mapping names the time column and its format, the rate column(s) and their unit, the columns
that split a file into sessions, and the gap after which a trace splits. The built-in presets
(``simulator.traces.presets``) build one from a file's header; a mapping file builds one for
anything else, either from scratch or on top of a preset::

    # trace-format.toml: pass it as --trace-format FILE, or leave it in the trace folder
    time = "timestamp"                  # column name (or 0-based index when header = false)
    time_format = "%Y-%m-%d %H:%M:%S %Z" # seconds | epoch | epoch_ms | iso | auto | a strptime pattern
    rate = ["att_mbps", "vz_mbps"]      # one trace per column
    rate_unit = "Mbps"                  # bps | kbps | Mbps | Gbps | Bps | kBps | MBps | bytes | kbytes
    session = ["run"]                   # rows with equal values form one trace
    split_gap_s = 10                    # a longer gap without rows splits a trace; shorter ones are held

Keys and their meaning are the fields of ``CsvMapping``; ``preset = "NAME"`` starts from a preset.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from simulator.traces.model import TraceError
from simulator.traces.timeparse import NAMED_FORMATS, Pattern, TimeFormatError

FOLDER_MAPPING_NAMES = ("trace-format.toml", "trace-format.json")
MISSING_VALUES = frozenset({"", "-", "na", "n/a", "nan", "null", "none", "--"})

# Rate units: Mbps per unit. Bit units are matched case-insensitively, byte units by their capital B
# or the word "byte"; "bytes" / "kbytes" / "mbytes" are amounts per interval (divided by interval_s).
_BIT_UNITS = {"bps": 1e-6, "bit/s": 1e-6, "bits/s": 1e-6, "bits/sec": 1e-6, "kbps": 1e-3, "kbit/s": 1e-3,
              "kbits/s": 1e-3, "kbits/sec": 1e-3, "mbps": 1.0, "mbit/s": 1.0, "mbits/s": 1.0, "mbits/sec": 1.0,
              "gbps": 1e3, "gbit/s": 1e3, "gbits/s": 1e3, "gbits/sec": 1e3}
_BYTE_RATE_UNITS = {"Bps": 8e-6, "B/s": 8e-6, "bytes/s": 8e-6, "bytes/sec": 8e-6, "kBps": 8e-3, "KBps": 8e-3,
                    "kB/s": 8e-3, "KB/s": 8e-3, "kbytes/s": 8e-3, "kbytes/sec": 8e-3, "MBps": 8.0, "MB/s": 8.0,
                    "mbytes/s": 8.0, "mbytes/sec": 8.0, "GBps": 8e3, "GB/s": 8e3}
_BYTE_AMOUNT_UNITS = {"bytes": 8e-6, "kbytes": 8e-3, "mbytes": 8.0}
UNIT_HELP = "bps, kbps, Mbps, Gbps (bits/s), Bps, kBps, MBps (bytes/s), bytes, kbytes, mbytes (per interval)"


def rate_unit_factor(unit: str) -> tuple[float, bool] | None:
    """(Mbps per unit, whether the unit is an amount per interval), or None for an unknown unit."""
    text = unit.strip()
    if text in _BYTE_RATE_UNITS:
        return _BYTE_RATE_UNITS[text], False
    lowered = text.lower()
    if lowered in _BYTE_AMOUNT_UNITS:
        return _BYTE_AMOUNT_UNITS[lowered], True
    if lowered in _BYTE_RATE_UNITS:
        return _BYTE_RATE_UNITS[lowered], False
    if lowered in _BIT_UNITS and "B" not in text.replace("Bits", "bits").replace("Bit", "bit"):
        return _BIT_UNITS[lowered], False
    return None


Column = str | int


@dataclass(frozen=True)
class CsvMapping:
    """How one CSV file becomes traces. Columns are header names (matched exactly, then ignoring
    case) or 0-based indexes; every trace is one rate column of one session of the file.

    time: the time column; None: the row number times ``interval_s`` (files with one row a second).
    time_format: seconds | epoch | epoch_ms | iso | auto | a strptime pattern (``%Z`` reads zone names).
    rate: the rate column(s); several give one trace each (a carrier per column).
    rate_unit: the unit of every rate column (see ``UNIT_HELP``); ignored where ``rate_unit_column`` is set.
    rate_unit_column: a column holding each row's unit (iPerf's ``Mbits/sec``, ``Kbits/sec``).
    session: columns whose values name a session; rows with equal values form one trace.
    split_gap_s: a gap between rows longer than this splits the trace; shorter gaps are held
        (the last rate continues until one interval before the next row).
    interval_s: the sampling interval; None: the typical step between rows of the file (the median of
        the steps up to 1.5 x their 10th percentile, so that gaps do not stretch it).
    keep: only rows whose column holds one of the listed values count (``{State = ["D"]}``).
    describe: label columns whose value shares the load report lists (``NetworkMode``).
    header: whether the first row names the columns.
    delimiter: the field separator, or "auto" (the commonest of comma, tab, semicolon in the first row).
    tz_offsets_h: extra time-zone names for ``%Z``, in hours east of UTC.
    name: what the report calls this mapping (a preset name, or the mapping file).
    """

    time: Column | None
    rate: tuple[Column, ...]
    time_format: str = "auto"
    rate_unit: str = "Mbps"
    rate_unit_column: Column | None = None
    session: tuple[Column, ...] = ()
    split_gap_s: float = 10.0
    interval_s: float | None = None
    keep: dict[str, tuple[str, ...]] = field(default_factory=dict)
    describe: tuple[Column, ...] = ()
    header: bool = True
    delimiter: str = "auto"
    tz_offsets_h: dict[str, float] = field(default_factory=dict)
    name: str = "mapping"

    def check(self, where: str) -> None:
        """Raise ``TraceError`` naming ``where`` and the field when a value cannot work."""
        def fail(key: str, message: str):
            raise TraceError(where, f"{key}: {message}")

        if not self.rate:
            fail("rate", "name at least one rate column")
        if self.rate_unit_column is None and rate_unit_factor(self.rate_unit) is None:
            fail("rate_unit", f"unknown unit {self.rate_unit!r}; use one of {UNIT_HELP}")
        if self.time_format not in NAMED_FORMATS:
            if "%" not in self.time_format:
                fail("time_format", f"{self.time_format!r} is none of {', '.join(NAMED_FORMATS)} and not a "
                                    "strptime pattern (such as \"%Y-%m-%d %H:%M:%S %Z\")")
            try:
                Pattern(self.time_format)
            except TimeFormatError as error:
                fail("time_format", str(error))
        if not (self.split_gap_s > 0 and math.isfinite(self.split_gap_s)):
            fail("split_gap_s", f"must be a positive number of seconds, got {self.split_gap_s!r}")
        if self.interval_s is not None and not (self.interval_s > 0 and math.isfinite(self.interval_s)):
            fail("interval_s", f"must be a positive number of seconds, got {self.interval_s!r}")
        if self.delimiter != "auto" and len(self.delimiter) != 1:
            fail("delimiter", f"must be one character (or \"auto\"), got {self.delimiter!r}")
        if not self.header:
            for key in ("time", "rate_unit_column"):
                if isinstance(getattr(self, key), str):
                    fail(key, "with header = false, columns are 0-based indexes")
            for key in ("rate", "session", "describe"):
                if any(isinstance(column, str) for column in getattr(self, key)):
                    fail(key, "with header = false, columns are 0-based indexes")


MAPPING_KEYS = tuple(item.name for item in fields(CsvMapping) if item.name != "name") + ("preset",)


@dataclass(frozen=True)
class MappingSpec:
    """A mapping as given (a preset name, a mapping file, or both): resolved per file against its header.

    ``preset`` None means the file's own preset is detected from its header first, then ``overrides``
    apply; a spec with neither a preset nor ``time``/``rate`` overrides is plain detection.
    """

    source: str
    preset: str | None = None
    overrides: dict = field(default_factory=dict)


def _as_columns(value, key: str, where: str) -> tuple[Column, ...]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise TraceError(where, f"{key}: columns are names or 0-based indexes, got {item!r}")
    return tuple(items)


def _parse_overrides(raw: dict, where: str) -> tuple[str | None, dict]:
    unknown = sorted(set(raw) - set(MAPPING_KEYS))
    if unknown:
        raise TraceError(where, f"unknown key {unknown[0]!r}; a mapping takes {', '.join(MAPPING_KEYS)}")
    overrides = {}
    for key, value in raw.items():
        if key == "preset":
            continue
        if key in ("rate", "session", "describe"):
            value = _as_columns(value, key, where)
        elif key in ("time", "rate_unit_column"):
            if value in ("", "row", None):
                value = None
            else:
                value = _as_columns(value, key, where)[0]
        elif key in ("split_gap_s", "interval_s"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TraceError(where, f"{key}: a number of seconds, got {value!r}")
            value = float(value)
        elif key == "header":
            if not isinstance(value, bool):
                raise TraceError(where, f"header: true or false, got {value!r}")
        elif key == "keep":
            if not isinstance(value, dict):
                raise TraceError(where, "keep: a table of column = [values], e.g. keep = {State = [\"D\"]}")
            value = {str(column): tuple(str(v) for v in (allowed if isinstance(allowed, list) else [allowed]))
                     for column, allowed in value.items()}
        elif key == "tz_offsets_h":
            if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
                raise TraceError(where, "tz_offsets_h: a table of zone name = hours east of UTC, e.g. {CDT = -5}")
            value = {str(zone): float(hours) for zone, hours in value.items()}
        elif key == "delimiter":
            value = {"tab": "\t", "\\t": "\t"}.get(value, value)
            if not isinstance(value, str):
                raise TraceError(where, f"delimiter: a character, got {value!r}")
        elif not isinstance(value, str):
            raise TraceError(where, f"{key}: a string, got {value!r}")
        overrides[key] = value
    preset = raw.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise TraceError(where, f"preset: a preset name, got {preset!r}")
    return preset, overrides


def load_mapping(path: str | Path) -> MappingSpec:
    """Read a mapping file (``.toml`` or ``.json``); raise ``TraceError`` naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(path, "no such mapping file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TraceError(path, f"mapping file cannot be read: {error}") from None
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except json.JSONDecodeError as error:
        raise TraceError(path, f"invalid JSON: {error.msg}", error.lineno) from None
    except tomllib.TOMLDecodeError as error:
        raise TraceError(path, f"invalid TOML: {error}") from None
    if not isinstance(raw, dict):
        raise TraceError(path, "a mapping is a table of keys (time, rate, ...)")
    preset, overrides = _parse_overrides(raw, str(path))
    if preset is None and "rate" not in overrides:
        raise TraceError(path, "a mapping needs rate = COLUMN (and time = COLUMN), or preset = NAME to start from")
    return MappingSpec(source=str(path), preset=preset, overrides=overrides)


def apply_overrides(base: CsvMapping, spec: MappingSpec) -> CsvMapping:
    """``base`` (a preset's mapping) with a spec's keys replacing its fields, named after the spec."""
    mapping = replace(base, **spec.overrides, name=f"{base.name} + {Path(spec.source).name}" if spec.overrides
                      else base.name)
    mapping.check(spec.source)
    return mapping


def mapping_from_overrides(spec: MappingSpec) -> CsvMapping:
    """A mapping made only of a spec's keys (no preset)."""
    overrides = dict(spec.overrides)
    if "time" not in overrides:
        raise TraceError(spec.source, 'time: name the time column, or time = "row" for one row per interval_s')
    mapping = CsvMapping(time=overrides.pop("time", None), rate=overrides.pop("rate"), **overrides,
                         name=Path(spec.source).name)
    mapping.check(spec.source)
    return mapping


def example_mapping(header: list[str] | None) -> str:
    """A mapping file to start from, guessed from a header (None: a headerless file) for the unknown-CSV error."""
    if header is None:
        return ("    header = false\n"
                '    time = 0                  # the time column\'s 0-based index, or "row" for one row per interval_s\n'
                '    time_format = "seconds"\n'
                "    rate = 1\n"
                '    rate_unit = "Mbps"        # or bps, kbps, Gbps, Bps, kBps, MBps, bytes (per interval)')
    time_guess = next((name for name in header if "time" in name.lower() or "seq" in name.lower()), header[0])
    rate_guess = next((name for name in header if name != time_guess and any(
        word in name.lower() for word in ("throughput", "bitrate", "bandwidth", "rate", "mbps", "kbps"))),
        next((name for name in header if name != time_guess), time_guess))
    return (f'    time = "{time_guess}"\n'
            '    time_format = "seconds"   # or epoch, epoch_ms, iso, or a pattern like "%Y-%m-%d %H:%M:%S %Z"\n'
            f'    rate = "{rate_guess}"\n'
            '    rate_unit = "Mbps"        # or bps, kbps, Gbps, Bps, kBps, MBps, bytes (per interval)\n'
            '    # session = ["run_id"]    # columns that name a session, if one file holds several\n'
            '    # split_gap_s = 10        # a longer gap splits a trace; shorter ones are held')
