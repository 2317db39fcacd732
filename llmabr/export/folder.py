"""Read a policy folder: ``policy.onnx`` + ``layout.json``, checked against the simulator's row layout.

A policy folder is what ``llmabr export`` writes, and what a shipped ``designs/<type>/<name>/``
holds (the design's sources may sit next to the two files). ``read_policy_folder`` reads JSON
and checks that the row ``layout.json`` describes is the simulator's row (``simulator.layout``):
the same fields in the same order, offsets and sizes, a ladder with one bitrate per level. The
graph is never parsed or run here: ``llmabr eval --policy`` runs it in the cage
(``llmabr.scoring.actor.OnnxActor``), ``llmabr serve`` with onnxruntime in the server.

What the export recorded about how the policy was trained (video profile, simulator mode, QoE)
comes from ``layout.json`` and, for the video, ``export.json``; a folder written by hand may
lack them, and the caller then asks for them (``--video``, ``--mode``, ``--qoe``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from simulator.layout import LAYOUT_VERSION, Layout

GRAPH, LAYOUT, EXPORT = "policy.onnx", "layout.json", "export.json"
REQUIRED_KEYS = ("layout_version", "history_len", "n_levels", "size", "fields", "ladder_kbps", "chunks_total",
                 "input", "output", "design")


class PolicyFolderError(ValueError):
    """A policy folder that cannot be used: what is wrong, in which file, and what to do."""


@dataclass(frozen=True)
class PolicyFolder:
    """A checked policy folder.

    ``layout``: layout.json's data. ``design``: the design's name. ``video``, ``mode``, ``qoe``:
    what the policy was trained and exported with (a video profile name, the simulator mode,
    the QoE variant), or None where the folder does not record it.
    """

    folder: Path
    layout: dict
    design: str
    video: str | None
    mode: str | None
    qoe: str | None

    @property
    def graph_path(self) -> Path:
        return self.folder / GRAPH

    @property
    def history_len(self) -> int:
        return int(self.layout["history_len"])

    @property
    def n_levels(self) -> int:
        return int(self.layout["n_levels"])


def read_policy_folder(folder: str | Path) -> PolicyFolder:
    """The folder's layout.json, checked (``check_layout``), and what the export recorded.

    Raises ``PolicyFolderError`` for a missing folder or file, an unreadable layout.json, a
    layout that is not the simulator's, or a policy.onnx that is empty or a Git LFS pointer.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PolicyFolderError(f"{folder}: no such folder (expected a policy folder with {GRAPH} and {LAYOUT}, "
                                "as llmabr export writes)")
    for name in (GRAPH, LAYOUT):
        if not (folder / name).is_file():
            raise PolicyFolderError(f"{folder}: no {name} there; a policy folder holds {GRAPH} and {LAYOUT} as "
                                    "llmabr export writes them (llmabr export RUN --out DIR)")
    head = (folder / GRAPH).open("rb").read(64)
    if not head:
        raise PolicyFolderError(f"{folder / GRAPH}: the file is empty, not an ONNX graph")
    if head.startswith(b"version https://git-lfs"):
        raise PolicyFolderError(f"{folder / GRAPH}: a Git LFS pointer, not the graph; fetch it with git lfs pull")
    layout = _read_json(folder / LAYOUT)
    check_layout(layout, folder / LAYOUT)
    recorded = _read_json(folder / EXPORT) if (folder / EXPORT).is_file() else {}
    return PolicyFolder(folder=folder, layout=layout, design=str(layout["design"]),
                        video=layout.get("video") or recorded.get("video"), mode=layout.get("mode"),
                        qoe=layout.get("qoe"))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFolderError(f"{path}: cannot be read: {error}") from None
    except json.JSONDecodeError as error:
        raise PolicyFolderError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from None
    if not isinstance(data, dict):
        raise PolicyFolderError(f"{path}: a JSON object is expected, got {type(data).__name__}")
    return data


def check_layout(layout: dict, path: Path | str = LAYOUT) -> Layout:
    """The simulator's ``Layout`` that ``layout`` (layout.json's data) describes, or ``PolicyFolderError``.

    Checked: every key players and scorers read is there, the layout version is this simulator's,
    ``fields`` lists the simulator's fields in its order with its offsets and sizes for the
    layout's ``history_len`` and ``n_levels``, ``size`` is the row's length and ``ladder_kbps``
    holds ``n_levels`` bitrates.
    """
    missing = [key for key in REQUIRED_KEYS if key not in layout]
    if missing:
        raise PolicyFolderError(f"{path}: missing {', '.join(missing)}; export again with llmabr export")
    if layout["layout_version"] != LAYOUT_VERSION:
        raise PolicyFolderError(f"{path}: layout_version {layout['layout_version']!r}; this simulator builds rows of "
                                f"layout version {LAYOUT_VERSION}")
    for key in ("history_len", "n_levels", "size"):
        if isinstance(layout[key], bool) or not isinstance(layout[key], int) or layout[key] < 1:
            raise PolicyFolderError(f"{path}: {key} must be a positive integer, got {layout[key]!r}")
    expected = Layout(layout["history_len"], layout["n_levels"])
    try:
        found = [(field["name"], field["offset"], field["size"]) for field in layout["fields"]]
    except (TypeError, KeyError) as error:
        raise PolicyFolderError(f"{path}: fields must be a list of objects with name, offset and size "
                                f"({type(error).__name__}: {error})") from None
    for index, (got, want) in enumerate(zip(found, expected.fields)):
        if tuple(got) != want:
            raise PolicyFolderError(
                f"{path}: fields[{index}] is {got[0]!r} at offset {got[1]} with size {got[2]}; the simulator's row "
                f"(history_len {expected.history_len}, n_levels {expected.n_levels}) has {want[0]!r} at offset "
                f"{want[1]} with size {want[2]} there. The policy reads another row than this simulator builds")
    if len(found) != len(expected.fields):
        raise PolicyFolderError(f"{path}: {len(found)} fields; the simulator's row has {len(expected.fields)} "
                                f"({', '.join(name for name, _, _ in expected.fields)})")
    if layout["size"] != expected.size:
        raise PolicyFolderError(f"{path}: size {layout['size']}, but its fields make a row of {expected.size} values")
    ladder = layout["ladder_kbps"]
    if not isinstance(ladder, list) or len(ladder) != expected.n_levels:
        count = len(ladder) if isinstance(ladder, list) else type(ladder).__name__
        raise PolicyFolderError(f"{path}: ladder_kbps holds {count} bitrates, n_levels is {expected.n_levels}")
    return expected
