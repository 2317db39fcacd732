"""A CSV time column as seconds: numbers, ISO date-times, or a strptime-style pattern with zone names.

``parse_times(values, time_format)`` returns float64 seconds (absolute; the loader makes them
relative per trace). ``time_format`` is one of:

* ``seconds`` / ``epoch`` - a number of seconds (a relative clock, or seconds since 1970);
* ``epoch_ms`` / ``milliseconds`` - a number of milliseconds;
* ``iso`` - ISO 8601 (``2024-05-27T11:04:35.49``, ``2024-05-27 11:04:35+02:00``);
* a pattern with ``%`` directives (``%Y.%m.%d_%H.%M.%S``, ``%Y-%m-%d %H:%M:%S %Z``);
* ``auto`` - the first of the above that reads the first value.

Times without a zone are read as UTC: only differences matter for a trace, and UTC has no
daylight-saving jumps. ``%Z`` reads a zone name (``CDT``, ``UTC``) through ``ZONE_OFFSETS_H``
plus the mapping's own ``tz_offsets_h``, so a drive that crosses from CDT into MDT stays continuous.

Speed: values of one length are decoded as a fixed-width byte matrix with numpy (a 10 MB file
takes tens of milliseconds); a group of rows whose layout differs falls back to one regular
expression match per row.
"""

from __future__ import annotations

import re
import warnings
from datetime import datetime, timezone

import numpy as np

NUMERIC_FORMATS = {"seconds": 1.0, "epoch": 1.0, "epoch_ms": 1e-3, "milliseconds": 1e-3}
NAMED_FORMATS = (*NUMERIC_FORMATS, "iso", "auto")
# Patterns "auto" tries after numbers and ISO, in order (the published forms the presets know).
AUTO_PATTERNS = ("%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S.%f %Z", "%Y.%m.%d_%H.%M.%S", "%Y/%m/%d %H:%M:%S",
                 "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%Y%m%d%H%M%S")

# Zone abbreviations, hours east of UTC. Ambiguous names take the North American or UTC reading
# (CST is US Central, not China; IST is Irish Summer Time, not India); a mapping's
# tz_offsets_h overrides any of them.
ZONE_OFFSETS_H = {
    "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "IST": 1, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "AST": -4, "ADT": -3, "NST": -3.5, "NDT": -2.5,
    "JST": 9, "KST": 9, "AEST": 10, "AEDT": 11, "ACST": 9.5, "ACDT": 10.5, "AWST": 8, "NZST": 12, "NZDT": 13,
}
MONTHS = {name: number for number, names in enumerate(
    (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")), start=1) for name in names}

# directive -> (regular expression, field); numeric fields are decoded digit by digit.
DIRECTIVES = {
    "Y": (r"\d{4}", "year"), "y": (r"\d{2}", "year2"), "m": (r"\d{1,2}", "month"), "d": (r"\d{1,2}", "day"),
    "H": (r"\d{1,2}", "hour"), "I": (r"\d{1,2}", "hour12"), "M": (r"\d{1,2}", "minute"),
    "S": (r"\d{1,2}", "second"), "f": (r"\d{1,9}", "fraction"), "j": (r"\d{1,3}", "yday"),
    "p": (r"[AaPp][Mm]", "ampm"), "b": (r"[A-Za-z]{3,9}\.?", "monthname"), "B": (r"[A-Za-z]{3,9}", "monthname"),
    "Z": (r"[A-Za-z]{1,5}", "zone"), "z": (r"Z|[+-]\d{2}:?\d{2}", "offset"),
    "a": (r"[A-Za-z]{2,9}\.?", None), "A": (r"[A-Za-z]{2,9}", None),
}
NUMERIC_FIELDS = {"year", "year2", "month", "day", "hour", "hour12", "minute", "second", "fraction", "yday"}


class TimeFormatError(ValueError):
    """A time value that does not read; ``index`` is its position in the values (None: the format itself)."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


class Pattern:
    """A compiled strptime-style pattern: one regular expression plus the field of each group."""

    def __init__(self, pattern: str):
        self.text = pattern
        parts, fields, position = [], [], 0
        while position < len(pattern):
            char = pattern[position]
            if char != "%":
                parts.append(r"\s+" if char.isspace() else re.escape(char))
                position += 1
                continue
            directive = pattern[position + 1: position + 2]
            if directive == "%":
                parts.append("%")
            elif directive in DIRECTIVES:
                regex, name = DIRECTIVES[directive]
                parts.append(f"({regex})" if name else f"(?:{regex})")
                if name:
                    fields.append(name)
            else:
                raise TimeFormatError(f"time_format {pattern!r}: unsupported directive %{directive}; supported: "
                                      + " ".join("%" + key for key in DIRECTIVES) + " %%")
            position += 2
        if "year" not in fields and "year2" not in fields and "yday" not in fields and "month" not in fields:
            raise TimeFormatError(f"time_format {pattern!r} has no date (%Y, %m, %d): times would wrap at midnight; "
                                  "add the date or give seconds")
        self.fields = tuple(fields)
        self.regex = re.compile("".join(parts))


def parse_times(values: list[str], time_format: str, tz_offsets_h: dict[str, float] | None = None) -> np.ndarray:
    """Seconds (float64) for each value; raise ``TimeFormatError`` naming the first value that fails."""
    if not values:
        return np.zeros(0)
    if time_format == "auto":
        time_format = detect_time_format(values[0])
    if time_format in NUMERIC_FORMATS:
        return _numbers(values) * NUMERIC_FORMATS[time_format]
    if time_format == "iso":
        return _iso(values)
    return _pattern(values, Pattern(time_format), {**ZONE_OFFSETS_H, **(tz_offsets_h or {})})


def detect_time_format(value: str) -> str:
    """The format ``auto`` settles on for a first value: seconds, iso, or one of ``AUTO_PATTERNS``."""
    text = value.strip()
    try:
        float(text)
        return "seconds"
    except ValueError:
        pass
    try:
        datetime.fromisoformat(text)
        return "iso"
    except ValueError:
        pass
    for pattern in AUTO_PATTERNS:
        if Pattern(pattern).regex.fullmatch(text):
            return pattern
    raise TimeFormatError(f"time {value!r} is not seconds, an ISO date-time or a known date-time form; give "
                          "time_format (a strptime pattern such as \"%Y-%m-%d %H:%M:%S %Z\") in a mapping", 0)


def _numbers(values: list[str]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        for index, value in enumerate(values):
            try:
                float(value)
            except ValueError:
                raise TimeFormatError(f"time {value!r} is not a number", index) from None
        raise


def _iso(values: list[str]) -> np.ndarray:
    if not any("+" in value or "Z" in value or value.count("-") > 2 for value in values[:1]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                stamps = np.array(values, dtype="datetime64[us]")
            if not np.isnat(stamps).any():
                return stamps.astype(np.int64) / 1e6
        except (ValueError, DeprecationWarning, UserWarning):
            pass
    seconds = np.empty(len(values))
    for index, value in enumerate(values):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TimeFormatError(f"time {value!r} is not an ISO date-time", index) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds[index] = moment.timestamp()
    return seconds


def _pattern(values: list[str], pattern: Pattern, zones: dict[str, float]) -> np.ndarray:
    count = len(values)
    fields: dict[str, np.ndarray] = {}
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=count)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        group = [values[i] for i in rows] if len(rows) < count else values
        decoded = _fixed_width(group, pattern, zones) or _row_by_row(group, pattern, zones, rows)
        for name, column in decoded.items():
            target = fields.setdefault(name, np.zeros(count, dtype=column.dtype))
            target[rows] = column
    return _seconds(fields, values)


def _fixed_width(values: list[str], pattern: Pattern, zones) -> dict[str, np.ndarray] | None:
    """Decode values of one length as a byte matrix, or None when their layout differs from the first one's."""
    first = pattern.regex.fullmatch(values[0])
    if first is None or not values[0].isascii():
        return None
    width = len(values[0])
    try:
        joined = "".join(values).encode("ascii")
    except UnicodeEncodeError:
        return None
    matrix = np.frombuffer(joined, dtype=np.uint8).reshape(len(values), width)
    literal = np.ones(width, dtype=bool)
    decoded = {}
    for group, name in enumerate(pattern.fields, start=1):
        start, end = first.span(group)
        literal[start:end] = False
        block = matrix[:, start:end]
        if name in NUMERIC_FIELDS:
            digits = block.astype(np.int64) - 48
            if ((digits < 0) | (digits > 9)).any():
                return None
            number = digits @ (10 ** np.arange(end - start - 1, -1, -1, dtype=np.int64))
            decoded[name] = number / 10.0 ** (end - start) if name == "fraction" else number
        else:
            texts = np.ascontiguousarray(block).view(f"S{end - start}").ravel()
            unique, inverse = np.unique(texts, return_inverse=True)
            table = [_text_field(name, item.decode(), zones, None) for item in unique]
            if any(value is None for value in table):
                return None
            decoded[name] = np.array(table, dtype=np.float64)[inverse]
    if (matrix[:, literal] != matrix[0, literal]).any():
        return None
    return decoded


def _row_by_row(values: list[str], pattern: Pattern, zones, rows: np.ndarray) -> dict[str, np.ndarray]:
    decoded = {name: np.zeros(len(values)) for name in pattern.fields}
    for index, value in enumerate(values):
        match = pattern.regex.fullmatch(value.strip())
        if match is None:
            raise TimeFormatError(f"time {value!r} does not match time_format {pattern.text!r}", int(rows[index]))
        for name, text in zip(pattern.fields, match.groups()):
            if name in NUMERIC_FIELDS:
                decoded[name][index] = int(text) / 10.0 ** len(text) if name == "fraction" else int(text)
            else:
                decoded[name][index] = _text_field(name, text, zones, int(rows[index]))
    return decoded


def _text_field(name: str, text: str, zones, index: int | None) -> float | None:
    """A zone name, offset, month name or AM/PM as a number; raise (index given) or None when unknown."""
    key = text.strip().rstrip(".")
    if name == "zone":
        value = zones.get(key, zones.get(key.upper()))
        if value is None and index is not None:
            raise TimeFormatError(f"time zone {key!r} is not a known zone name; add tz_offsets_h = {{{key} = <hours "
                                  "east of UTC>} to the mapping", index)
        return value
    if name == "offset":
        if key == "Z":
            return 0.0
        digits = key[1:].replace(":", "")
        return (1 if key[0] == "+" else -1) * (int(digits[:2]) + int(digits[2:]) / 60)
    if name == "monthname":
        value = MONTHS.get(key.lower())
        if value is None and index is not None:
            raise TimeFormatError(f"month {key!r} is not a month name", index)
        return value
    if name == "ampm":
        return 12.0 if key.lower() == "pm" else 0.0
    return 0.0


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), vectorized."""
    year = year - (month <= 2)
    era = np.floor_divide(year, 400)
    year_of_era = year - era * 400
    day_of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _seconds(fields: dict[str, np.ndarray], values: list[str]) -> np.ndarray:
    count = len(values)
    ones = np.ones(count, dtype=np.int64)
    year = fields["year"].astype(np.int64) if "year" in fields else None
    if year is None and "year2" in fields:
        short = fields["year2"].astype(np.int64)
        year = np.where(short < 69, 2000 + short, 1900 + short)  # Python's strptime rule
    year = year if year is not None else 1970 * ones
    month = fields["monthname"] if "monthname" in fields else fields.get("month", ones)
    month = month.astype(np.int64)
    day = fields.get("day", ones).astype(np.int64)
    if "hour12" in fields:
        hour = fields["hour12"].astype(np.int64) % 12 + fields.get("ampm", 0 * ones).astype(np.int64)
    else:
        hour = fields.get("hour", 0 * ones).astype(np.int64)
    minute = fields.get("minute", 0 * ones).astype(np.int64)
    second = fields.get("second", 0 * ones).astype(np.int64)
    days_in_month = _days_from_civil(year + (month == 12), np.where(month == 12, 1, month + 1), ones) \
        - _days_from_civil(year, np.clip(month, 1, 12), ones)
    checks = (("month", (month < 1) | (month > 12)), ("day", (day < 1) | (day > np.where((month >= 1) & (month <= 12),
              days_in_month, 31))), ("hour", hour > 23), ("minute", minute > 59), ("second", second > 60))
    for what, bad in checks:
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise TimeFormatError(f"time {values[index]!r} has an impossible {what}", index)
    days = _days_from_civil(year, month, day)
    if "yday" in fields:
        days = _days_from_civil(year, ones, ones) + fields["yday"].astype(np.int64) - 1
    seconds = days * 86400.0 + hour * 3600.0 + minute * 60.0 + second + fields.get("fraction", 0.0 * ones)
    offset_h = fields.get("zone", 0.0 * ones) + fields.get("offset", 0.0 * ones)
    return seconds - offset_h * 3600.0
