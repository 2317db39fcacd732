"""What crosses between the search's driver and its workers, and what it costs.

Tasks carry data, not paths (see ``llmabr.search.stages``): the driver sends a design's files,
configs and weights, and references to values put once into Ray's object store; a stage returns
its files as data, and ``write_outputs`` puts them into the archive, complete on disk before the
task is marked done (a run folder is written aside and renamed, so a driver killed halfway leaves
the earlier attempt's folder or none, never a mix). ``nbytes`` counts the
traffic for ``llmabr bench search``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from llmabr.search.archive import Task


@dataclass
class Dispatched:
    """What the loop attaches to a submitted task: the task, and what sending it cost the driver."""

    task: Task
    to_worker_bytes: int = 0
    driver_s: float = 0.0


def nbytes(value) -> int:
    """Approximate bytes of what crosses to or from a worker: text and binary data, arrays (``.nbytes``),
    traces and video profiles (their attributes), nested in dicts, lists and tuples; 8 per number.
    Object-store references count 0 (their values are counted once, when put)."""
    if isinstance(value, (bytes, str)):
        return len(value)
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(nbytes(key) + nbytes(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(item) for item in value)
    if isinstance(value, (int, float, bool)) or value is None:
        return 8
    if hasattr(value, "__dict__"):
        return sum(nbytes(item) for item in vars(value).values())
    return 0


def write_outputs(target: Path, files: dict[str, bytes], whole_folder: bool) -> None:
    """Write a stage's returned files under ``target``: the whole folder replaced (a run, a test), or file by
    file (check.json next to the design); always complete on disk before the task is marked done."""
    if not whole_folder:
        target.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            aside = target / f".incoming-{name}"
            aside.write_bytes(content)
            os.replace(aside, target / name)
        return
    aside, old = target.with_name(f".incoming-{target.name}"), target.with_name(f".replaced-{target.name}")
    shutil.rmtree(aside, ignore_errors=True)
    for name, content in files.items():
        path = aside / name
        if path.resolve().is_relative_to(aside.resolve()):  # never outside the run folder
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    aside.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():  # an earlier attempt's (a resumed task runs again)
        os.replace(target, old)
    os.replace(aside, target)
    shutil.rmtree(old, ignore_errors=True)

