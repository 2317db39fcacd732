"""Throughput traces: the in-memory model, loaders for the common formats, statistics, synthesis."""

from simulator.traces.csv_mapping import CsvMapping, MappingSpec, load_mapping
from simulator.traces.formats import (FORMATS, is_trace_list, load_file, load_trace, load_trace_dir,
                                      load_trace_dir_reports, load_traces, read_trace_list, resolve_format,
                                      trace_files, write_cooked)
from simulator.traces.model import Trace, TraceError, TraceSet, validate
from simulator.traces.presets import PRESET_NAMES, PRESETS
from simulator.traces.report import FileReport
from simulator.traces.stats import trace_stats
from simulator.traces.synth import SYNTH_TYPES, generate

__all__ = [
    "Trace", "TraceSet", "TraceError", "validate", "FORMATS", "PRESETS", "PRESET_NAMES", "CsvMapping", "MappingSpec",
    "FileReport", "load_mapping", "load_file", "load_trace", "load_traces", "load_trace_dir", "load_trace_dir_reports",
    "resolve_format", "trace_files", "is_trace_list", "read_trace_list",
    "write_cooked", "trace_stats", "SYNTH_TYPES", "generate",
]
