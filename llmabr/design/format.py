"""Design folders on disk: read and write them as text. Nothing here executes design code."""

from __future__ import annotations

import ast
import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

ORIGINS = ("seed", "llm", "offline", "human", "replay")
DESIGN_FILES = ("design.toml", "state.py", "net.py")  # a design folder: what load_design reads


class DesignError(ValueError):
    """A design folder that cannot be read, naming the file at fault."""


@dataclass(frozen=True)
class Design:
    """A design as text: the sources plus the metadata of ``design.toml``."""

    name: str
    state_source: str
    net_source: str | None = None
    kind: str = "torch"  # "torch" (batched state()) or "nada" (per-player state_func)
    origin: str = "human"
    parent: str | None = None
    network: str = "any"
    notes: str = ""
    shared_trunk: bool = False
    path: Path | None = field(default=None, compare=False)

    def with_(self, **changes) -> "Design":
        return replace(self, **changes)


def detect_kind(state_source: str) -> str:
    """'nada' when state.py defines ``state_func`` at top level, else 'torch' (static, no execution)."""
    try:
        tree = ast.parse(state_source)
    except SyntaxError:
        return "nada" if "def state_func" in state_source else "torch"
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    return "nada" if "state_func" in names and "state" not in names else "torch"


def load_design(path: str | Path) -> Design:
    """Read ``design.toml``, ``state.py`` and (optional for NADA designs) ``net.py`` from a folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise DesignError(f"{folder}: no such design folder")
    meta_path, state_path, net_path = (folder / name for name in DESIGN_FILES)
    meta = {}
    if meta_path.exists():
        try:
            meta = tomllib.loads(meta_path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise DesignError(f"{meta_path}: invalid TOML: {error}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise DesignError(f"{meta_path}: cannot be read: {error}") from None
    if not state_path.exists():
        raise DesignError(f"{state_path}: missing; a design needs state.py (and net.py for torch designs)")
    try:
        state_source = state_path.read_text()
        net_source = net_path.read_text() if net_path.exists() else None
    except (OSError, UnicodeDecodeError) as error:
        raise DesignError(f"{folder}: a source file cannot be read as text: {error}") from None
    kind = meta.get("kind") or detect_kind(state_source)
    if kind not in ("torch", "nada"):
        raise DesignError(f"{meta_path}: kind must be 'torch' or 'nada', got {kind!r}")
    if kind == "torch" and net_source is None:
        raise DesignError(f"{net_path}: missing; a torch design needs net.py with class Trunk")
    origin = meta.get("origin", "human")
    if origin not in ORIGINS:
        raise DesignError(f"{meta_path}: origin must be one of {', '.join(ORIGINS)}, got {origin!r}")
    return Design(
        name=str(meta.get("name", folder.name)), state_source=state_source, net_source=net_source, kind=kind,
        origin=origin, parent=meta.get("parent") or None, network=str(meta.get("network", "any")),
        notes=str(meta.get("notes", "")), shared_trunk=bool(meta.get("shared_trunk", False)), path=folder,
    )


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_design(design: Design, folder: str | Path) -> Path:
    """Write the design as a folder (created if needed); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"name = {_toml_string(design.name)}", f"kind = {_toml_string(design.kind)}",
             f"origin = {_toml_string(design.origin)}", f"network = {_toml_string(design.network)}",
             f"shared_trunk = {'true' if design.shared_trunk else 'false'}"]
    if design.parent:
        lines.append(f"parent = {_toml_string(design.parent)}")
    if design.notes:
        lines.append(f"notes = {_toml_string(design.notes)}")
    (folder / "design.toml").write_text("\n".join(lines) + "\n")
    (folder / "state.py").write_text(design.state_source)
    if design.net_source is not None:
        (folder / "net.py").write_text(design.net_source)
    return folder


def _normalized(source: str | None) -> str:
    if source is None:
        return ""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):  # docstrings do not change what a design computes
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


def design_hash(design: Design) -> str:
    """Hash of the normalized code (comments, docstrings and formatting ignored) and the trunk sharing."""
    digest = hashlib.sha256()
    for part in (design.kind, _normalized(design.state_source), _normalized(design.net_source), str(design.shared_trunk)):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()
