"""Built-in CSV presets: public bandwidth datasets in their published form, detected from the header.

Each preset turns a file's first row (its header, or its first data row for headerless files)
into a ``CsvMapping``. ``detect_preset`` tries them in order, the most specific first; traces/README.md
says which dataset each comes from and how its column names were checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from simulator.traces.csv_mapping import CsvMapping

# The generic preset: a time column and a rate column under a common name (the unit read from it).
TIME_COLUMNS = ("time", "time_s", "timestamp", "t", "seconds")
MBPS_COLUMNS = ("throughput_mbps", "bandwidth_mbps", "mbps", "throughput", "bandwidth", "bw_mbps")
KBPS_COLUMNS = ("bandwidth_kbps", "throughput_kbps", "kbps")
BPS_COLUMNS = ("throughput_bps", "bandwidth_bps", "bps")
IPERF_UNIT = re.compile(r"[KMG]?bits/sec|[KMG]?Bytes/sec")


@dataclass(frozen=True)
class Preset:
    """A published CSV form: ``matches`` and ``build`` read the file's first row."""

    name: str
    dataset: str
    matches: Callable[[list[str]], bool]
    build: Callable[[list[str]], CsvMapping]


def _lower(row: list[str]) -> list[str]:
    return [cell.strip().lower() for cell in row]


def _find(row: list[str], *names: str) -> str | None:
    """The header cell equal to one of ``names`` (ignoring case and spaces), in ``names`` order."""
    lowered = _lower(row)
    for name in names:
        if name in lowered:
            return row[lowered.index(name)].strip()
    return None


def _present(row: list[str], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(cell for name in names if (cell := _find(row, name)) is not None)


# -- G-NetTrack Pro (Raca et al., MMSys'18 4G and MMSys'20 5G datasets, University College Cork) --------

def _gnettrack(row: list[str]) -> CsvMapping:
    return CsvMapping(time=_find(row, "timestamp"), time_format="%Y.%m.%d_%H.%M.%S", rate=(_find(row, "dl_bitrate"),),
                      rate_unit="kbps", describe=_present(row, ("networkmode", "state")), name="gnettrack")


# -- 5Gophers (Narayanan et al., WWW'20): carriers side by side, or one rate column with settings ------

FIVEGOPHERS_SETTINGS = ("protocol", "carrier", "num_tcp_conn", "server_location", "location", "obstruction_type",
                        "distance_in_meters", "orientation_angle_in_degrees", "run_num")


def _carrier_columns(row: list[str]) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in row if cell.strip().lower().endswith("_throughput_mbps"))


def _5gophers_matches(row: list[str]) -> bool:
    return _find(row, "seq_num") is not None and (_find(row, "throughput_mbps") is not None
                                                  or bool(_carrier_columns(row)))


def _5gophers(row: list[str]) -> CsvMapping:
    carriers = _carrier_columns(row)
    rate = carriers or (_find(row, "throughput_mbps"),)
    # radio_type / nrStatus change row by row in the walking trace: labels to describe, not sessions.
    return CsvMapping(time=_find(row, "seq_num"), time_format="seconds", rate=rate, rate_unit="Mbps",
                      session=_present(row, FIVEGOPHERS_SETTINGS),
                      describe=_present(row, ("radio_type", "nrstatus")), name="5gophers")


# -- Lumos5G (Narayanan et al., IMC'20): run_num, seq_num (a per-second clock), Throughput in Mbps -----

def _lumos5g(row: list[str]) -> CsvMapping:
    return CsvMapping(time=_find(row, "seq_num"), time_format="seconds", rate=(_find(row, "throughput"),),
                      rate_unit="Mbps", session=_present(row, ("run_num", "mobility_mode", "trajectory_direction")),
                      describe=_present(row, ("nrstatus", "mobility_mode")), name="lumos5g")


# -- Starlink and cellular drive tests (Hu et al., CoNEXT'23, "LEO Satellite vs. Cellular Networks") ---

def _drive_matches(row: list[str]) -> bool:
    return (_find(row, "time") is not None and _find(row, "throughput") is not None
            and bool(_present(row, ("longtitu", "latitude", "speed", "area_type"))))


def _drive(row: list[str]) -> CsvMapping:
    return CsvMapping(time=_find(row, "time"), time_format="%Y-%m-%d %H:%M:%S %Z", rate=(_find(row, "throughput"),),
                      rate_unit="Mbps", describe=_present(row, ("area_type",)), name="starlink-drive")


# -- NYU-METS (Mei et al., PAM'19): no header, one iPerf sample a second: "0.57,Mbits/sec" -------------

def _nyu_matches(row: list[str]) -> bool:
    if len(row) != 2 or IPERF_UNIT.fullmatch(row[1].strip()) is None:
        return False
    try:
        float(row[0])
    except ValueError:
        return False
    return True


def _nyu(row: list[str]) -> CsvMapping:
    return CsvMapping(time=None, rate=(0,), rate_unit_column=1, interval_s=1.0, header=False, name="nyu-mets")


# -- Generic per-second logs: a time column and a rate column under a common name ----------------------

def _generic_rate(row: list[str]) -> tuple[str, str] | None:
    for names, unit in ((MBPS_COLUMNS, "Mbps"), (KBPS_COLUMNS, "kbps"), (BPS_COLUMNS, "bps")):
        column = _find(row, *names)
        if column is not None:
            return column, unit
    return None


def _generic_matches(row: list[str]) -> bool:
    return _find(row, *TIME_COLUMNS) is not None and _generic_rate(row) is not None


def _generic(row: list[str]) -> CsvMapping:
    column, unit = _generic_rate(row)
    return CsvMapping(time=_find(row, *TIME_COLUMNS), rate=(column,), rate_unit=unit, name="generic")


PRESETS = (
    Preset("gnettrack", "G-NetTrack Pro logs: the Irish 4G (MMSys'18) and 5G (MMSys'20) datasets of Raca et al.",
           lambda row: _find(row, "timestamp") is not None and _find(row, "dl_bitrate") is not None, _gnettrack),
    Preset("5gophers", "5Gophers (Narayanan et al., WWW'20): carrier-per-column mobility files and per-run files",
           _5gophers_matches, _5gophers),
    Preset("lumos5g", "Lumos5G (Narayanan et al., IMC'20): Lumos5G-v1.0.csv",
           lambda row: all(_find(row, name) for name in ("run_num", "seq_num", "throughput")), _lumos5g),
    Preset("starlink-drive", "Starlink and cellular drive tests (Hu et al., CoNEXT'23, Satellite-vs-Cellular)",
           _drive_matches, _drive),
    Preset("nyu-mets", "NYU-METS LTE traces (Mei et al., PAM'19): headerless iPerf samples, one a second",
           _nyu_matches, _nyu),
    Preset("generic", "per-second throughput logs with a time column and a throughput column (e.g. Starlink nuttcp)",
           _generic_matches, _generic),
)
PRESET_NAMES = tuple(preset.name for preset in PRESETS)


def get_preset(name: str) -> Preset:
    for preset in PRESETS:
        if preset.name == name:
            return preset
    raise KeyError(name)


def detect_preset(first_row: list[str]) -> Preset | None:
    """The first preset whose columns the row has, or None."""
    return next((preset for preset in PRESETS if preset.matches(first_row)), None)
