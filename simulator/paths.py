"""Where the project's data lives: the repository, and ../shared (real traces, Envivio) when present."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """The ``shared/`` folder beside the repository (real traces and video sizes), or None."""
    candidate = REPO_ROOT.parent / "shared"
    return candidate if (candidate / "traces").is_dir() else None


def shared_traces(*parts: str) -> Path | None:
    """A folder under ``../shared/traces`` if it exists, else None."""
    base = shared_dir()
    if base is None:
        return None
    path = base.joinpath("traces", *parts)
    return path if path.exists() else None
