"""Any loadable trace folder to Pensieve-cooked files, with a manifest of every conversion choice.

``convert_dir(source, out, fmt)`` writes one cooked file per trace (``time_s<TAB>Mbps``, full float
precision, so loading ``out`` gives the same arrays) under the same relative folders, and
``out/manifest.json``: per source file its format, rows read, rows averaged, gaps held, splits and
dropped rows with their reasons, and the file each trace went to.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from simulator.traces.formats import TraceFormat, is_trace_list, load_trace_dir_reports, write_cooked
from simulator.traces.model import TraceError
from simulator.traces.report import combined_summary

MANIFEST_NAME = "manifest.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def cooked_name(trace_name: str) -> str:
    """A file name for a trace: its source file's stem, then its parts (column, session, piece)."""
    file_name, *parts = trace_name.split("#")
    stem = Path(file_name).stem if Path(file_name).suffix.lower() in (".csv", ".json", ".tsv", ".log") else file_name
    return _UNSAFE.sub("_", "_".join([stem, *parts])).strip("_") or "trace"


def convert_dir(source: str | Path, out: str | Path, fmt: TraceFormat = "auto") -> dict:
    """Write ``source``'s traces to ``out`` as cooked files; return the manifest (also written)."""
    source, out = Path(source), Path(out)
    if out.exists() and any(out.iterdir()):
        raise TraceError(out, "the output folder is not empty; choose a new folder (a conversion never mixes "
                              "with older files)")
    traces, reports = load_trace_dir_reports(source, fmt)
    flat = is_trace_list(source)
    by_source = {report.path: report for report in reports}
    used: set[Path] = set()
    outputs: dict[str, list[dict]] = {report.path: [] for report in reports}
    for trace in traces:
        folder = Path() if flat else Path(trace.source).parent.relative_to(source)
        target = folder / cooked_name(trace.name)
        number = 1
        while target in used:
            number += 1
            target = folder / f"{cooked_name(trace.name)}_{number}"
        used.add(target)
        (out / folder).mkdir(parents=True, exist_ok=True)
        write_cooked(trace, out / target)
        outputs[trace.source].append({"trace": trace.name, "file": str(target), "rows": len(trace),
                                      "duration_s": trace.duration_s})
    files = []
    for path, report in by_source.items():
        entry = report.to_dict()
        entry["outputs"] = outputs[path]
        files.append(entry)
    manifest = {"source": str(source), "format": str(fmt), "traces": len(traces),
                "hours": sum(trace.duration_s for trace in traces) / 3600.0,
                "summary": combined_summary(reports), "files": files}
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
