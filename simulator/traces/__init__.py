"""Throughput traces: the in-memory model, loaders for the common formats, statistics, synthesis."""

from simulator.traces.formats import (FORMATS, is_trace_list, load_trace, load_trace_dir, read_trace_list, trace_files,
                                      write_cooked)
from simulator.traces.model import Trace, TraceError, TraceSet, validate
from simulator.traces.stats import trace_stats
from simulator.traces.synth import SYNTH_TYPES, generate

__all__ = [
    "Trace", "TraceSet", "TraceError", "validate", "FORMATS", "load_trace", "load_trace_dir", "trace_files",
    "is_trace_list", "read_trace_list",
    "write_cooked", "trace_stats", "SYNTH_TYPES", "generate",
]
