"""A search run folder written directly, without a search: an archive with the seed design and some
candidates at stage "tested", their per-trace validation rows (train-s<seed>/val_best.json) and test
rows (test-s<seed>.json), as the loop leaves them. For unit tests of what reads a finished run (the
report's winner and verdict, ``llmabr archive``), in milliseconds instead of a search's minutes.

A design's per-trace QoE is ``BASE_QOE[trace] + offset`` (+ a small seed wobble), so a test states by
hand how two designs compare: an offset of +0.5 over the seed is "better" on every resample.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from llmabr.proposer.offline import OfflineProposer
from llmabr.search.archive import Archive

SEED = "seed-pensieve"
TRACES = [f"trace-{index:02d}" for index in range(12)]
BASE_QOE = [0.9, 1.4, 0.2, 1.1, 0.7, 1.8, 0.5, 1.2, 0.3, 1.6, 1.0, 0.8]


def rows(offset: float, seed: int = 0, wobble: float = 0.01) -> list[dict]:
    """Per-trace rows (trace name, qoe_per_chunk and the fields the report tabulates) of one seed."""
    return [{"trace": trace, "qoe_per_chunk": base + offset + wobble * seed * (-1) ** index, "qoe_sum": 48 * (base + offset),
             "bitrate_kbps": 1000.0 + 100 * index, "rebuffer_ratio": 0.01, "switches_per_min": 1.0}
            for index, (trace, base) in enumerate(zip(TRACES, BASE_QOE))]


def alternating(amplitude: float, seed: int = 0) -> list[dict]:
    """Rows +amplitude and -amplitude from the base on alternate traces: on average level with offset 0."""
    out = rows(0.0, seed)
    for index, row in enumerate(out):
        row["qoe_per_chunk"] += amplitude * (-1) ** index
    return out


def make_run(run_dir: Path, designs: dict[str, tuple[float | None, list[list[dict]] | None, list[list[dict]] | None]],
             network: str = "broadband") -> Archive:
    """``designs[name] = (val_qoe, validation rows per seed, test rows per seed)``; ``SEED`` must be one of
    them. Names other than ``SEED`` get distinct offline network designs' code. Sets meta "finalists" (the
    tested designs, the seed last) and "config" as the loop does."""
    proposals = OfflineProposer(3).propose("network", len(designs))
    archive = Archive(run_dir)
    finalists = []
    for proposal, (name, (val_qoe, val_rows, test_rows)) in zip(proposals, designs.items()):
        added, new = archive.add(replace(proposal, name=name, kind="seed" if name == SEED else "network"))
        assert new and added == name
        archive.update(name, stage="tested" if test_rows else "screened", val_qoe=val_qoe,
                       test_qoe=None if not test_rows else sum(r["qoe_per_chunk"] for r in test_rows[0]) / len(TRACES))
        folder = archive.folder(name)
        for seed, seed_rows in enumerate(val_rows or []):
            (folder / f"train-s{seed}").mkdir()
            (folder / f"train-s{seed}" / "val_best.json").write_text(json.dumps(seed_rows))
        for seed, seed_rows in enumerate(test_rows or []):
            (folder / f"test-s{seed}.json").write_text(json.dumps(seed_rows))
        if test_rows and name != SEED:
            finalists.append(name)
    archive.set_meta("finalists", finalists + [SEED])
    archive.set_meta("config", {"network": network, "traces": "synthetic", "test_traces": "tests-only"})
    return archive
