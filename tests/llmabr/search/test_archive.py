"""The SQLite design archive: dedup by code hash, tasks run once, resumable, clear errors on a full disk."""

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from llmabr.proposer.offline import OfflineProposer
from llmabr.search.archive import Archive, ArchiveError


@pytest.fixture
def proposals():
    return OfflineProposer(3).propose("network", 3)


def test_designs_are_deduplicated_by_normalized_code(tmp_path, proposals):
    archive = Archive(tmp_path)
    name, new = archive.add(proposals[0])
    assert new and (archive.folder(name) / "net.py").exists() and (archive.folder(name) / "genome.json").exists()
    # the same code with other comments and another name is the same design
    from dataclasses import replace

    twin = replace(proposals[0], name="twin", net_source="# reworded\n" + proposals[0].net_source)
    assert archive.add(twin) == (name, False)
    assert len(archive.designs()) == 1 and not archive.folder("twin").exists()


def test_out_of_time_drops_only_queued_checks_and_screens_and_says_why(tmp_path, proposals):
    archive = Archive(tmp_path)
    names = [archive.add(p)[0] for p in proposals]
    for name in names:
        archive.enqueue(name, "check")
    running = archive.claim()  # names[0]: running, must finish on its own
    archive.enqueue(names[1], "train")
    assert archive.drop_queued(("check", "screen"), "out of time", keep_design=names[2]) == [names[1]]
    statuses = {(t["design"], t["stage"]): t["status"] for t in archive.tasks()}
    assert statuses == {(names[0], "check"): "running", (names[1], "check"): "failed",
                        (names[2], "check"): "queued", (names[1], "train"): "queued"}
    assert archive.design(names[1])["status"] == "failed" and archive.design(names[1])["reason"] == "out of time"
    assert archive.design(running.design)["status"] == "ok"
    archive.close()


def test_tasks_run_once_and_interrupted_ones_come_back(tmp_path, proposals):
    archive = Archive(tmp_path)
    names = [archive.add(p)[0] for p in proposals]
    assert all(archive.enqueue(name, "check") for name in names)
    assert not archive.enqueue(names[0], "check")  # never twice
    first = archive.claim()
    archive.finish(first, True, {"passed": True})
    second = archive.claim()
    assert second.design == names[1]
    archive.close()

    reopened = Archive(tmp_path)  # a new process after a crash, with `second` still marked running
    assert reopened.requeue_interrupted() == 1
    again = reopened.claim()
    assert again.design == names[1] and again.attempts == 2
    assert not reopened.enqueue(names[0], "check")
    assert reopened.task_counts() == {"done": 1, "running": 1, "queued": 1}


def test_update_merges_metrics_and_ranks(tmp_path, proposals):
    archive = Archive(tmp_path)
    names = [archive.add(p)[0] for p in proposals]
    for value, name in zip((0.5, 0.9, 0.7), names):
        archive.update(name, stage="screened", val_qoe=value, metrics={"S2": {"steps": 100}})
    archive.update(names[2], status="rejected", reason="S2: below the seed")
    archive.update(names[1], stage="trained", metrics={"S3": {"seeds": 2}})
    assert [d["name"] for d in archive.top(5)] == [names[1], names[0]]
    assert archive.design(names[1])["metrics"] == {"S2": {"steps": 100}, "S3": {"seeds": 2}}
    assert archive.funnel() == {"proposed": 3, "checked": 3, "screened": 3, "trained": 1, "tested": 0, "rejected": 1}


def test_a_full_disk_is_a_clear_error_and_the_archive_stays_readable(tmp_path, proposals):
    archive = Archive(tmp_path)
    kept, _ = archive.add(proposals[0])
    pages = archive.db.execute("PRAGMA page_count").fetchone()[0]
    archive.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk
    with pytest.raises(ArchiveError, match="write failed .*full.*intact"):
        for proposal in proposals[1:]:
            archive.update(kept, metrics={"blob": "x" * 200_000, "from": proposal.name})
    archive.close()
    reopened = Archive(tmp_path)
    assert [d["name"] for d in reopened.designs()] == [kept] and reopened.design(kept)["metrics"] == {}


def test_kill_9_in_the_middle_of_adding_loses_nothing_committed(tmp_path):
    """A child adds designs in a loop and is killed with SIGKILL; the archive opens and is consistent."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(__import__('simulator.paths', fromlist=['x']).REPO_ROOT)!r})
        from llmabr.proposer.offline import OfflineProposer
        from llmabr.search.archive import Archive
        archive = Archive({str(tmp_path)!r})
        for proposal in OfflineProposer(5).propose("state", 400):
            name, _ = archive.add(proposal)
            archive.enqueue(name, "check")
            print(name, flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    printed = [child.stdout.readline().strip() for _ in range(15)]
    child.kill()
    child.wait()
    archive = Archive(tmp_path)
    names = {d["name"] for d in archive.designs()}
    assert set(printed) <= names  # everything reported as added is there
    for name in names:  # and every row has its complete folder
        assert (archive.folder(name) / "state.py").exists() and (archive.folder(name) / "design.toml").exists()
    assert sqlite3.connect(tmp_path / "archive.sqlite").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_full_disk_on_a_design_folder_write_is_a_clear_error_and_leaves_no_half_design(tmp_path, proposals):
    """A real write error from the OS: the file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes a
    large write fail with EFBIG, as a full disk makes it fail with ENOSPC, while small writes pass."""
    import resource
    import signal
    from dataclasses import replace

    archive = Archive(tmp_path)
    kept, _ = archive.add(proposals[0])
    huge = replace(proposals[1], notes="x" * (4 << 20))  # design.toml far over the limit
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try:
        with pytest.raises(ArchiveError, match="cannot write design folder"):
            archive.add(huge)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert [d["name"] for d in archive.designs()] == [kept]  # no row for the failed design
    assert sorted(p.name for p in archive.designs_dir.iterdir()) == [kept]  # and no half-written folder
    assert archive.add(proposals[1])[1]  # with room again, the same design goes in
