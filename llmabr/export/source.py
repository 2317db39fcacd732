"""Find a trained policy on disk: a run folder from ``llmabr train``, or ``RUN:NAME`` in a search run.

Reads text and JSON only (the design's sources are never executed here).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from llmabr.design.format import Design, DesignError, load_design
from simulator.config import SimConfig
from simulator.layout import LAYOUT_VERSION, MEANINGS, Layout
from simulator.video import VideoProfile, VideoProfileError, default_profile, load_profile

WEIGHTS = ("policy_best.pt", "policy_final.pt")  # best on validation first, as llmabr eval does
DEFAULT_LEVEL = 1  # the simulator fetches chunk 0 at this level before the policy's first decision


class ExportError(RuntimeError):
    """An export (or a policy source) that cannot be used, with the reason and what to do."""


@dataclass(frozen=True)
class PolicySource:
    """A trained policy: ``run_dir`` holds ``design/``, ``weights`` and ``result.json``."""

    spec: str  # what the user typed
    run_dir: Path
    weights: str
    design: Design
    result: dict
    note: str  # how the run was chosen, e.g. "RUN:NAME -> RUN/designs/NAME/train-s0 (of 3 seeds)"

    @property
    def config(self) -> dict:
        return self.result.get("config") or {}

    @property
    def mode(self) -> str:
        return self.config.get("mode", "default")

    @property
    def qoe(self) -> str:
        return self.config.get("qoe", "lin")


def resolve_source(spec: str | Path) -> PolicySource:
    """``spec`` is a run folder, or ``RUN:NAME`` (the design NAME of the search run RUN, seed 0 preferred)."""
    text = str(spec)
    run_dir, note = Path(text), ""
    if not run_dir.is_dir() and ":" in text:
        search_dir, name = text.rsplit(":", 1)
        run_dir, note = _search_run(Path(search_dir), name)
    if not run_dir.is_dir():
        raise ExportError(f"{text}: no such run folder (expected a folder made by llmabr train, or RUN:NAME for a "
                          "design of a search run)")
    weights = next((name for name in WEIGHTS if (run_dir / name).is_file()), None)
    if weights is None:
        raise ExportError(f"{run_dir}: neither {' nor '.join(WEIGHTS)} is there; did training finish?")
    try:
        design = load_design(run_dir / "design")
    except DesignError as error:
        raise ExportError(f"{run_dir}: not a trained run folder: {error}") from None
    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError) as error:
        raise ExportError(f"{run_dir / 'result.json'}: cannot be read ({error}); is this a run folder of "
                          "llmabr train?") from None
    if weights != WEIGHTS[0]:
        note = (note + "; " if note else "") + f"{WEIGHTS[0]} missing, using {weights}"
    return PolicySource(spec=text, run_dir=run_dir.resolve(), weights=weights, design=design, result=result, note=note)


def _search_run(search_dir: Path, name: str) -> tuple[Path, str]:
    if not (search_dir / "archive.sqlite").is_file():
        raise ExportError(f"{search_dir}: no archive.sqlite there, so {search_dir}:{name} is not a design of a "
                          "search run")
    folder = search_dir / "designs" / name
    if not folder.is_dir():
        raise ExportError(f"{search_dir}: the archive has no design folder {name!r} (see llmabr archive list)")
    runs = sorted((path for path in folder.glob("train-s*") if re.fullmatch(r"train-s\d+", path.name)),
                  key=lambda path: int(path.name[len("train-s"):]))
    finished = [path for path in runs if any((path / weights).is_file() for weights in WEIGHTS)]
    if not finished:
        raise ExportError(f"{folder}: no finished training run (train-s*/ with {WEIGHTS[0]}); the design was "
                          "screened but not trained; train it with llmabr train")
    chosen = finished[0]
    return chosen, f"{search_dir}:{name} -> {chosen} (seed folder {chosen.name}, {len(finished)} trained)"


def video_of(source: PolicySource, video: str | None = None) -> VideoProfile:
    """The video profile to export for: ``video``, else the one the run trained with."""
    try:
        trained = (load_profile(source.result["video"]) if source.result.get("video")
                   else default_profile(source.result.get("network", "broadband")))
        chosen = load_profile(video) if video else trained
    except VideoProfileError as error:
        raise ExportError(f"video profile: {error}") from None
    if chosen.n_levels != trained.n_levels:  # the action head has one output per trained level
        raise ExportError(f"video profile {chosen.name!r} has {chosen.n_levels} levels, the policy was trained on "
                          f"{trained.name!r} with {trained.n_levels}; pick a profile with {trained.n_levels} levels")
    return chosen


def layout_info(source: PolicySource, video: VideoProfile, history_len: int = SimConfig().history_len) -> dict:
    """layout.json's data: the row's fields with units and meanings, the ladder, and the run's settings.

    ``chunks_total`` is the episode length the policy was trained with (the mode's rule applied to
    the video's chunk count), which is what ``chunks_total`` held in every training row.
    """
    layout = Layout(history_len, video.n_levels)
    described = layout.describe()
    for field in described["fields"]:
        field["meaning"] = MEANINGS[field["name"]]
    return {
        "layout_version": LAYOUT_VERSION,
        "history_len": layout.history_len,
        "n_levels": layout.n_levels,
        "size": layout.size,
        "fields": described["fields"],
        "ladder_kbps": [float(kbps) for kbps in video.bitrates_kbps],
        "chunk_s": float(video.chunk_s),
        "chunks_total": SimConfig(mode=source.mode).chunks_per_episode(video.n_chunks),
        "input": "obs",
        "output": "logits",
        "design": source.design.name,
        "network": source.result.get("network", source.design.network),
        "mode": source.mode,
        "qoe": source.qoe,
        "video": video.name,
        "default_level": DEFAULT_LEVEL,
    }
