"""A fast, faithful, trace-driven ABR (adaptive bitrate) video streaming simulator.

The C core (``simulator._core``, from ``csrc/abr_sim.h``) steps N players by one chunk per call;
``simulator.reference`` is the readable pure-Python specification it is tested against. This
layer knows nothing of LLMs, Ray or the design search.
"""

from simulator.config import MODE_DIFFERENCES, SimConfig, test_config, train_config
from simulator.layout import LAYOUT_VERSION, Layout

__all__ = ["SimConfig", "MODE_DIFFERENCES", "train_config", "test_config", "Layout", "LAYOUT_VERSION"]
