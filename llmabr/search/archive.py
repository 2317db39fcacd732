"""The design archive of one search run: an SQLite database plus one folder per design.

    RUN/archive.sqlite      designs (one row each, unique by normalized-code hash) and tasks
    RUN/designs/<name>/     design.toml, state.py, net.py, genome.json / conversation.json,
                            and what each stage leaves there (check.json, train-*/, eval-*/)

Every state change is one SQLite transaction (WAL journal, synchronous=FULL), and a design's
folder is complete on disk (written aside, then renamed) before its row exists, so a process
killed at any moment leaves an archive that opens and resumes: tasks it had claimed go back to
the queue (``requeue_interrupted``), finished tasks are never run again, and a design already
present (same code hash) is never added twice. Errors while writing (disk full, read-only
file system) raise ``ArchiveError`` naming the run; the transaction rolls back, so what was
committed before stays readable.

Stages of a design: proposed -> checked (S0-S1) -> screened (S2) -> trained (S3) -> tested,
or rejected / failed at one of them with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llmabr.design.format import design_hash

STAGES = ("proposed", "checked", "screened", "trained", "tested")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS designs (
    name TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    parent TEXT,
    round INTEGER NOT NULL DEFAULT 0,
    created_s REAL NOT NULL,
    stage TEXT NOT NULL DEFAULT 'proposed',
    status TEXT NOT NULL DEFAULT 'ok',          -- ok | rejected | failed
    reason TEXT NOT NULL DEFAULT '',
    val_qoe REAL,                               -- validation QoE per chunk (S2/S3)
    test_qoe REAL,                              -- held-out test QoE per chunk (never shown to a proposer)
    metrics TEXT NOT NULL DEFAULT '{}'          -- JSON: per-stage numbers
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    design TEXT NOT NULL REFERENCES designs(name),
    stage TEXT NOT NULL,                        -- check | screen | train | test
    seed INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'queued',      -- queued | running | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    started_s REAL,
    finished_s REAL,
    result TEXT,
    UNIQUE (design, stage, seed)
);
"""


class ArchiveError(RuntimeError):
    """The archive could not be written or read; the message names the run and what to do."""


@dataclass(frozen=True)
class Task:
    id: int
    design: str
    stage: str
    seed: int
    attempts: int


class Archive:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.designs_dir = self.run_dir / "designs"
        try:
            self.designs_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.run_dir / "archive.sqlite", timeout=30.0, isolation_level=None,
                                      check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise ArchiveError(f"cannot open the archive in {self.run_dir}: {error}") from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self):
        """One atomic write; SQLite errors (a full disk: SQLITE_FULL) become ``ArchiveError``."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as error:
            if self.db.in_transaction:  # SQLite may have rolled back by itself (SQLITE_FULL does)
                self.db.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise ArchiveError(f"archive {self.run_dir / 'archive.sqlite'}: write failed ({error}); what was "
                                   f"committed before is intact; free disk space and resume with --resume") from None
            raise

    # -- metadata -------------------------------------------------------------------------------

    def set_meta(self, key: str, value) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    # -- designs --------------------------------------------------------------------------------

    def folder(self, name: str) -> Path:
        return self.designs_dir / name

    def add(self, proposal, round_index: int = 0) -> tuple[str, bool]:
        """Add a proposal; returns (name, True) or, for code already archived, (existing name, False)."""
        design = proposal.to_design()
        code_hash = design_hash(design)
        row = self.db.execute("SELECT name FROM designs WHERE code_hash = ?", (code_hash,)).fetchone()
        if row:
            return row["name"], False
        name = proposal.name
        if self.db.execute("SELECT 1 FROM designs WHERE name = ?", (name,)).fetchone():
            name = f"{name}-{code_hash[:6]}"
        aside = self.designs_dir / f".incoming-{name}"
        try:
            shutil.rmtree(aside, ignore_errors=True)
            proposal.write(aside)
            if self.folder(name).exists():  # left by a run killed between rename and commit
                shutil.rmtree(self.folder(name))
            os.replace(aside, self.folder(name))
        except OSError as error:
            shutil.rmtree(aside, ignore_errors=True)
            raise ArchiveError(f"cannot write design folder {self.folder(name)}: {error}") from None
        with self.transaction() as db:
            db.execute("INSERT INTO designs (name, code_hash, kind, origin, parent, round, created_s) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (name, code_hash, proposal.kind, proposal.origin, proposal.parent, round_index, time.time()))
        return name, True

    def update(self, name: str, stage: str | None = None, status: str | None = None, reason: str | None = None,
               val_qoe: float | None = None, test_qoe: float | None = None, metrics: dict | None = None) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT metrics FROM designs WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ArchiveError(f"no design {name!r} in {self.run_dir}")
            merged = {**json.loads(row["metrics"]), **(metrics or {})}
            db.execute("UPDATE designs SET stage = COALESCE(?, stage), status = COALESCE(?, status), "
                       "reason = COALESCE(?, reason), val_qoe = COALESCE(?, val_qoe), "
                       "test_qoe = COALESCE(?, test_qoe), metrics = ? WHERE name = ?",
                       (stage, status, reason, val_qoe, test_qoe, json.dumps(merged), name))

    def design(self, name: str) -> dict | None:
        row = self.db.execute("SELECT * FROM designs WHERE name = ?", (name,)).fetchone()
        return _row(row) if row else None

    def designs(self, status: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM designs", ()
        if status:
            query, args = query + " WHERE status = ?", (status,)
        return [_row(row) for row in self.db.execute(query + " ORDER BY created_s, name", args)]

    def hashes(self) -> set[str]:
        return {row["code_hash"] for row in self.db.execute("SELECT code_hash FROM designs")}

    def top(self, k: int | None = None, by: str = "val_qoe", stage: str | None = None) -> list[dict]:
        """Designs still in the race, best first (all of them when ``k`` is None)."""
        if by not in ("val_qoe", "test_qoe"):
            raise ValueError(f"rank by val_qoe or test_qoe, not {by!r}")
        query = f"SELECT * FROM designs WHERE status = 'ok' AND {by} IS NOT NULL"
        args: tuple = ()
        if stage:
            query, args = query + " AND stage = ?", (stage,)
        return [_row(row) for row in self.db.execute(query + f" ORDER BY {by} DESC LIMIT ?", (*args, -1 if k is None else k))]

    def funnel(self) -> dict[str, int]:
        """How many designs reached each stage (a rejected design counts up to the stage before)."""
        reached = {stage: 0 for stage in STAGES}
        for row in self.db.execute("SELECT stage, status FROM designs"):
            index = STAGES.index(row["stage"])
            for stage in STAGES[:index + 1]:
                reached[stage] += 1
        reached["rejected"] = self.db.execute("SELECT COUNT(*) FROM designs WHERE status != 'ok'").fetchone()[0]
        return reached

    # -- tasks ----------------------------------------------------------------------------------

    def enqueue(self, design: str, stage: str, seed: int = 0) -> bool:
        """Queue a task once: a task that exists (in any state) is never queued again."""
        with self.transaction() as db:
            cursor = db.execute("INSERT OR IGNORE INTO tasks (design, stage, seed) VALUES (?, ?, ?)",
                                (design, stage, seed))
        return cursor.rowcount == 1

    def claim(self, stage: str | None = None, design: str | None = None) -> Task | None:
        """The oldest queued task (of ``stage`` / ``design`` when given), marked running."""
        with self.transaction() as db:
            query = "SELECT * FROM tasks WHERE status = 'queued'"
            args: tuple = ()
            if stage:
                query, args = query + " AND stage = ?", (*args, stage)
            if design:
                query, args = query + " AND design = ?", (*args, design)
            row = db.execute(query + " ORDER BY id LIMIT 1", args).fetchone()
            if row is None:
                return None
            db.execute("UPDATE tasks SET status = 'running', attempts = attempts + 1, started_s = ? WHERE id = ?",
                       (time.time(), row["id"]))
        return Task(row["id"], row["design"], row["stage"], row["seed"], row["attempts"] + 1)

    def finish(self, task: Task, ok: bool, result: dict) -> None:
        with self.transaction() as db:
            db.execute("UPDATE tasks SET status = ?, finished_s = ?, result = ? WHERE id = ?",
                       ("done" if ok else "failed", time.time(), json.dumps(result), task.id))

    def drop_queued(self, stages: tuple[str, ...], reason: str, keep_design: str | None = None) -> list[str]:
        """Queued (not running) tasks of ``stages`` are marked failed with ``reason``, and so are their
        designs (status "failed"); returns the designs. ``keep_design``'s tasks stay queued."""
        marks = ", ".join("?" * len(stages))
        with self.transaction() as db:
            rows = db.execute(f"SELECT id, design FROM tasks WHERE status = 'queued' AND stage IN ({marks})"
                              + (" AND design != ?" if keep_design else ""),
                              (*stages, *([keep_design] if keep_design else []))).fetchall()
            for row in rows:
                db.execute("UPDATE tasks SET status = 'failed', finished_s = ?, result = ? WHERE id = ?",
                           (time.time(), json.dumps({"error": reason}), row["id"]))
                db.execute("UPDATE designs SET status = 'failed', reason = ? WHERE name = ?", (reason, row["design"]))
        return [row["design"] for row in rows]

    def requeue(self, task: Task) -> None:
        with self.transaction() as db:
            db.execute("UPDATE tasks SET status = 'queued' WHERE id = ?", (task.id,))

    def requeue_interrupted(self) -> int:
        """After a crash: tasks left 'running' go back to the queue (their attempt is counted)."""
        with self.transaction() as db:
            return db.execute("UPDATE tasks SET status = 'queued' WHERE status = 'running'").rowcount

    def tasks(self, design: str | None = None, stage: str | None = None) -> list[dict]:
        clauses, args = [], []
        for column, value in (("design", design), ("stage", stage)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = [dict(row) for row in self.db.execute(f"SELECT * FROM tasks{where} ORDER BY id", args)]
        for row in rows:
            row["result"] = json.loads(row["result"]) if row["result"] else None
        return rows

    def open_tasks(self, stages: tuple[str, ...] = ()) -> int:
        """Tasks queued or running (of the given stages)."""
        query = "SELECT COUNT(*) FROM tasks WHERE status IN ('queued', 'running')"
        if stages:
            query += f" AND stage IN ({', '.join('?' * len(stages))})"
        return self.db.execute(query, stages).fetchone()[0]

    def task_counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in self.db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")}


def _row(row: sqlite3.Row) -> dict:
    out = dict(row)
    out["metrics"] = json.loads(out["metrics"])
    return out
