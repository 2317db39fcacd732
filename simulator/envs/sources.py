"""Turn what a user passes as ``traces=`` / ``video=`` into the simulator's inputs.

``traces`` may be:

* a list of ``Trace`` or a ``TraceSet``: used as is;
* a network type name (``broadband``, ``3g``, ``4g``, ``5g``, ``satellite``): a synthetic set
  from ``simulator.traces.generate(type, count, seed)`` (needs no data files);
* a file or folder path: read with ``simulator.traces.load_traces`` (one file) or
  ``simulator.traces.load_trace_dir`` (every trace in a folder, or the traces a ``.txt`` list names).

``video`` may be a ``VideoProfile``, a profile name or a path (``simulator.video.load_profile``),
or None: the network type's default profile (``simulator.video.default_profile``), which needs
``traces`` to be a network type name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from simulator.config import SimConfig
from simulator.traces.model import Trace, TraceSet
from simulator.video import DEFAULT_PROFILE_BY_NETWORK, VideoProfile, default_profile, load_profile

TracesLike = Union[list[Trace], TraceSet, str, Path]
VideoLike = Union[VideoProfile, str, Path, None]

NETWORK_TYPES = tuple(DEFAULT_PROFILE_BY_NETWORK)
DEFAULT_NETWORK = "broadband"
SYNTHETIC_TRACE_COUNT = 64
SYNTHETIC_TRACE_SEED = 0


def network_type_of(traces: TracesLike) -> str | None:
    """The network type named by ``traces`` (case-insensitive), or None if it names none."""
    if isinstance(traces, str) and traces.strip().lower() in NETWORK_TYPES:
        return traces.strip().lower()
    return None


def resolve_traces(traces: TracesLike, count: int = SYNTHETIC_TRACE_COUNT,
                   seed: int = SYNTHETIC_TRACE_SEED) -> list[Trace] | TraceSet:
    """The traces ``traces`` stands for (see the module docstring); ``count`` and ``seed``
    apply to synthetic sets only."""
    if isinstance(traces, TraceSet):
        return traces
    if isinstance(traces, (list, tuple)):
        if not traces:
            raise ValueError("traces= is an empty list; pass at least one Trace")
        bad = [type(item).__name__ for item in traces if not isinstance(item, Trace)]
        if bad:
            raise TypeError(f"traces= list must hold simulator.traces.model.Trace objects, found {bad[0]}")
        return list(traces)
    if not isinstance(traces, (str, Path)):
        raise TypeError(
            f"traces= must be a list of Trace, a TraceSet, a network type ({', '.join(NETWORK_TYPES)}) "
            f"or a path, got {type(traces).__name__}"
        )
    network = network_type_of(traces)
    if network is not None:
        from simulator.traces import generate  # imported late: the generator is optional at import time

        return generate(network, count, seed)
    path = Path(traces).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"traces={str(traces)!r} is neither a network type ({', '.join(NETWORK_TYPES)}) "
            f"nor an existing file or folder"
        )
    import simulator.traces as traces_module

    if path.is_file() and not traces_module.is_trace_list(path):
        return traces_module.load_traces(path)
    return traces_module.load_trace_dir(path)


def resolve_video(video: VideoLike, traces: TracesLike) -> VideoProfile:
    """The profile ``video`` stands for; None picks the default profile of ``traces``' network type."""
    if isinstance(video, VideoProfile):
        return video
    if video is not None:
        return load_profile(video)
    network = network_type_of(traces)
    if network is None:
        raise ValueError(
            "video= is required unless traces= names a network type; pass a VideoProfile, a profile "
            "name (e.g. 'envivio', 'envivio-synth', 'service-4g') or a folder of video_size_N files"
        )
    return load_profile(default_profile(network))


def resolve_config(config: SimConfig | None, mode: str | None = None, qoe: str | None = None) -> SimConfig:
    """``config`` (default ``SimConfig()``) with ``mode`` / ``qoe`` overriding its fields when given.

    The registered ids set ``mode`` this way, so a ``config=`` passed to ``gymnasium.make``
    keeps the id's mode.
    """
    config = SimConfig() if config is None else config
    if not isinstance(config, SimConfig):
        raise TypeError(f"config= must be a simulator.config.SimConfig, got {type(config).__name__}")
    changes = {name: value for name, value in (("mode", mode), ("qoe", qoe)) if value is not None}
    return config.with_(**changes) if changes else config


def resolve(traces: TracesLike, video: VideoLike) -> tuple[list[Trace] | TraceSet, VideoProfile]:
    """``(traces, video)`` ready for ``VecSim``."""
    return resolve_traces(traces), resolve_video(video, traces)
