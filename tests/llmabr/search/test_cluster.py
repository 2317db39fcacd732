"""``llmabr search --ray-address`` on a real two-node Ray cluster started on this machine, sharing no folder.

The head (this machine's address, one CPU) and a second node (127.0.0.2, one CPU, its own Ray temp
folder and its own TMPDIR, where the stages' scratch folders go) run as two ``ray start --block``
process trees with ports of their own, so other Ray instances on the machine are never touched.
The test stops exactly the processes it started (the two trees, and any process whose command
line or working directory lies under its own folder), whatever happens. Below it, the pieces it
rests on, without a cluster: stages that take and return data, the archive writes, the failure
reasons, the object store filled once per search.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmabr.sandbox.cage import descendants
from llmabr.search.archive import Archive
from tests.conftest import wait_for

NODE_IP = "127.0.0.2"  # the second "machine": another loopback address (Ray maps 127.0.0.1 to the head's own)
TINY = ["--set", "train.warm_start=none", "--set", "budget.screen_steps=768", "--set", "budget.screen_eval_every=384",
        "--set", "budget.train_steps=768", "--set", "budget.train_seeds=1", "--set", "budget.top_k=1",
        "--set", "train.ppo.n_envs=8", "--set", "train.ppo.n_steps=48", "--set", "train.ppo.batch_size=128",
        "--set", "synthetic_test_count=4", "--set", "train.synthetic_count=10", "--set", "round_size=2",
        "--set", "train.early_stop.margin=100", "--set", "budget.minutes=8"]
RAY = str(Path(sys.executable).with_name("ray"))


def head_ip() -> str:
    import ray.util

    return ray.util.get_node_ip_address()  # what Ray calls this machine (127.0.0.1 becomes it, too)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tree(root: int) -> list[int]:
    """``root`` and every live process below it, from /proc."""
    return [root, *descendants(root)]


def kill_tree(root: int) -> None:
    """SIGKILL ``root``'s whole tree, listed before any of it dies, until nothing of it is left (processes
    forked meanwhile included)."""
    def gone() -> bool:
        alive = [pid for pid in tree(root) if _state(pid) != "Z"]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not alive

    assert wait_for(gone, 30, interval_s=0.1), f"process tree {root} still alive"


def cmdline(pid: int) -> str:
    """A process's command line, arguments joined by spaces ("" once it is gone)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return ""


def _state(pid: int) -> str:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return "Z"


def kill_under(root: Path) -> None:
    """SIGKILL every process whose command line or working directory lies under ``root`` (ours only)."""
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if str(root) in cmdline(pid) or os.readlink(entry / "cwd").startswith(str(root)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@dataclass
class Node:
    ip: str
    temp_dir: Path  # Ray's --temp-dir (sessions, sockets, logs)
    work_dir: Path  # TMPDIR of the node's processes: where the stages' scratch folders go
    process: subprocess.Popen | None = None
    log: Path | None = None

    def started(self) -> bool:
        """``ray start`` says so once the node's processes are up and registered (it fails: the test fails)."""
        if self.process.poll() is not None:
            pytest.fail(f"ray start for {self.ip} exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        return b"Ray runtime started" in self.log.read_bytes()


@dataclass
class Cluster:
    root: Path
    address: str
    head: Node
    node: Node
    env: dict = field(default_factory=dict)

    def node_ips(self) -> set[str]:
        """IPs of the nodes the cluster counts alive (asked by a separate driver)."""
        code = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
                "print(json.dumps(sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive'])))" % self.address)
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return set(json.loads(out.stdout.strip().splitlines()[-1]))


def start_node(node: Node, args: list[str], env: dict) -> None:
    node.temp_dir.mkdir(parents=True)
    node.work_dir.mkdir(parents=True)
    node.log = node.temp_dir.parent / f"{node.temp_dir.name}.log"
    ports = {"--node-manager-port": free_port(), "--object-manager-port": free_port(),
             "--dashboard-agent-grpc-port": free_port(), "--dashboard-agent-listen-port": free_port(),
             "--runtime-env-agent-port": free_port(), "--metrics-export-port": free_port()}
    command = [RAY, "start", "--block", f"--node-ip-address={node.ip}", "--num-cpus=1", f"--temp-dir={node.temp_dir}",
               "--disable-usage-stats", *[f"{flag}={port}" for flag, port in ports.items()], *args]
    with open(node.log, "wb") as log:
        node.process = subprocess.Popen(command, env={**env, "TMPDIR": str(node.work_dir)}, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def cluster():
    """A head and a second node, each ``ray start --block`` with its own ports and folders; stopped after."""
    root = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must stay short
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLMABR_LLM_BASE_URL", "RAY_ADDRESS")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    port = free_port()
    head = Node(head_ip(), root / "h", root / "hw")
    node = Node(NODE_IP, root / "n", root / "nw")
    running = Cluster(root, f"{head.ip}:{port}", head, node, env)
    try:
        start_node(head, ["--head", f"--port={port}", "--include-dashboard=false",
                          f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}"], env)
        until(head.started, 120, "the head node to start", head)
        start_node(node, [f"--address={running.address}"], env)
        until(node.started, 120, "the second node to start", node)
        until(lambda: running.node_ips() == {head.ip, NODE_IP}, 120, "both nodes alive in the cluster", node)
        yield running
    finally:
        for member in (node, head):
            if member.process is not None:
                kill_tree(member.process.pid)
                member.process.wait(timeout=30)
        kill_under(root)
        shutil.rmtree(root, ignore_errors=True)


def until(condition, timeout_s: float, what: str, node: Node | None = None, search=None, stderr=None) -> None:
    """``tests.conftest.wait_for`` with a message: fail on the deadline, or as soon as the watched search exits."""
    def reached():
        if search is not None and search.poll() is not None:
            pytest.fail(f"the search exited ({search.returncode}) while waiting for {what}:\n"
                        f"{stderr.read_text()[-3000:] if stderr else ''}")
        return condition()

    if not wait_for(reached, timeout_s, interval_s=0.5):
        log = node.log.read_text()[-2000:] if node is not None and node.log and node.log.exists() else ""
        pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{log}")


def task_rows(run: Path) -> list[dict]:
    """The archive's task rows, read as another process would (empty while the archive does not exist)."""
    if not (run / "archive.sqlite").exists():
        return []
    try:
        connection = sqlite3.connect(f"file:{run / 'archive.sqlite'}?mode=ro", uri=True, timeout=5)
        connection.row_factory = sqlite3.Row
        rows = [dict(row) for row in connection.execute("SELECT * FROM tasks ORDER BY id")]
        connection.close()
    except sqlite3.Error:
        return []
    for row in rows:
        row["result"] = json.loads(row["result"]) if row["result"] else None
    return rows


def ran_on(row: dict) -> str | None:
    return ((row.get("result") or {}).get("worker") or {}).get("node_ip")


def stage_running_in(pids: list[int]) -> bool:
    return any(cmdline(pid).startswith("ray::_run_stage") for pid in pids)


STAGES_OF_SCRATCH = {"check": ("check",), "train": ("screen", "train"), "test": ("test",)}


def evaluations_in(work_dir: Path) -> list[tuple[tuple[str, ...], str]]:
    """(archive stages, design name) of each stage a node is running, from its scratch folders (deleted by the
    stage before it returns, so one that exists belongs to a stage still running)."""
    found = []
    for kind, stages in STAGES_OF_SCRATCH.items():
        for toml in work_dir.glob(f"llmabr-{kind}-*/design/design.toml"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                found.append((stages, tomllib.loads(toml.read_text())["name"]))
    return found


def test_search_on_a_two_node_cluster_survives_a_dead_node_and_a_killed_driver(cluster, tmp_path):
    head_ip = cluster.head.ip
    run, stderr_path = tmp_path / "run", tmp_path / "search.err"
    command = [sys.executable, "-m", "llmabr.cli.main", "search", "--out", str(run), "--ray-address", cluster.address,
               "--workers", "2", "--set", "budget.designs=2", *TINY]
    with open(stderr_path, "wb") as stderr:
        search = subprocess.Popen(command, env=cluster.env, stdout=subprocess.DEVNULL, stderr=stderr,
                                  start_new_session=True)
    try:
        # 1. Both nodes evaluate: a task finished on each, and the second node is in the middle of one.
        def both_nodes_busy() -> bool:
            done = {ran_on(row) for row in task_rows(run) if row["status"] == "done"}
            return ({head_ip, NODE_IP} <= done and stage_running_in(tree(cluster.node.process.pid))
                    and bool(evaluations_in(cluster.node.work_dir)))

        until(both_nodes_busy, 300, "a task done on each node and one running on the second", search=search,
                 stderr=stderr_path)
        # 2. The second node dies mid-evaluation: its whole process tree (raylet, workers, cages) at once;
        # its folders (Ray's session, the stages' scratch) go with it: the driver must not need them.
        on_node = evaluations_in(cluster.node.work_dir)
        kill_tree(cluster.node.process.pid)
        cluster.node.process.wait(timeout=30)
        interrupted = {row["id"] for row in task_rows(run) if row["status"] == "running"
                       and any(row["stage"] in stages and row["design"] == name for stages, name in on_node)}
        assert interrupted, (on_node, task_rows(run))
        shutil.rmtree(cluster.node.temp_dir)
        shutil.rmtree(cluster.node.work_dir)

        # 3. The interrupted tasks run again on the head; then the driver is killed with -9 mid-search.
        def retried_and_busy() -> bool:
            rows = task_rows(run)
            return (all(row["status"] == "done" for row in rows if row["id"] in interrupted)
                    and any(row["status"] == "running" for row in rows))

        until(retried_and_busy, 300, "the interrupted tasks to finish on the head", search=search,
                 stderr=stderr_path)
        os.killpg(search.pid, signal.SIGKILL)
        search.wait(timeout=30)
        done_before = {row["id"]: row for row in task_rows(run) if row["status"] == "done"}
        for task_id in interrupted:
            assert ran_on(done_before[task_id]) == head_ip, done_before[task_id]

        # 4. Resumed against the same cluster (the head alone now), the search finishes.
        resumed = subprocess.run([sys.executable, "-m", "llmabr.cli.main", "search", "--resume", str(run)],
                                 env=cluster.env, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
            search.wait(timeout=30)

    rows = {row["id"]: row for row in task_rows(run)}
    assert all(row["status"] == "done" for row in rows.values()), [
        (row["design"], row["stage"], row["status"], row["result"]) for row in rows.values() if row["status"] != "done"]
    for task_id, before in done_before.items():  # no finished task ran again
        assert rows[task_id]["finished_s"] == before["finished_s"] and rows[task_id]["attempts"] == 1
    assert {ran_on(row) for row in rows.values()} == {head_ip, NODE_IP}
    # the archive is complete: every design checked and screened, the finalists trained and tested
    archive = Archive(run)
    designs = [design["name"] for design in archive.designs()]
    assert len(designs) == 3
    for name in designs:
        assert (run / "designs" / name / "check.json").is_file() and (run / "designs" / name / "screen" / "result.json").is_file()
    finalists = archive.meta("finalists")
    assert "seed-pensieve" in finalists and len(finalists) == 2
    for name in finalists:
        assert archive.design(name)["stage"] == "tested", archive.design(name)
        for part in ("result.json", "curve.json", "policy_best.pt", "design/state.py", "test/per_trace.json"):
            assert (run / "designs" / name / "train-s0" / part).is_file(), part
    assert (run / "report.md").is_file()
    archive.close()


def test_an_address_where_no_cluster_answers_is_a_clear_error(tmp_path):
    """ray.init would wait for minutes; the search says at once what is wrong and how to go on."""
    run = tmp_path / "run"
    address = f"127.0.0.1:{free_port()}"
    result = subprocess.run([sys.executable, "-m", "llmabr.cli.main", "search", "--out", str(run), "--ray-address",
                             address, "--set", "budget.designs=1", *TINY],
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"no Ray cluster answers at {address}" in result.stderr and "ray start --head" in result.stderr
    assert f"--resume {run}" in result.stderr


# -- the pieces, without a cluster ---------------------------------------------------------------


def test_a_stage_gets_data_returns_data_and_leaves_nothing_on_its_node(tmp_path, monkeypatch):
    from llmabr.search import stages
    from simulator.paths import REPO_ROOT

    node_tmp = tmp_path / "node-tmp"  # the worker node's temp folder
    node_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(node_tmp))
    result = stages.check(stages.read_design_files(REPO_ROOT / "designs" / "pensieve"), "reject")
    assert result["passed"], result["reason"]
    report = json.loads(result["files"]["check.json"])
    assert report["passed"] and report["path"] == ""  # no path of the worker's scratch folder
    assert list(node_tmp.iterdir()) == []


def test_returned_files_replace_an_earlier_attempts_folder_and_stay_inside_it(tmp_path):
    from llmabr.search.transfer import write_outputs

    run = tmp_path / "designs" / "d" / "train-s0"
    (run / "cage").mkdir(parents=True)
    (run / "cage" / "stale.txt").write_text("from an attempt cut short")
    write_outputs(run, {"result.json": b"{}", "cage/stderr.txt": b"", "../escaped.txt": b"x"}, whole_folder=True)
    assert sorted(str(path.relative_to(run)) for path in run.rglob("*")) == ["cage", "cage/stderr.txt", "result.json"]
    assert not (run.parent / "escaped.txt").exists() and sorted(p.name for p in run.parent.iterdir()) == ["train-s0"]
    write_outputs(run.parent, {"check.json": b"{}"}, whole_folder=False)  # next to the design's own files
    assert (run.parent / "check.json").read_bytes() == b"{}" and (run / "result.json").exists()


@pytest.mark.parametrize("error, says", [
    (lambda e: e.WorkerCrashedError(), "worker process died on each of 3 attempts"),
    (lambda e: e.NodeDiedError("node 127.0.0.2 died"), "its node died on each of 3 attempts"),
    (lambda e: e.OutOfMemoryError("memory monitor"), "lack of memory"),
    (lambda e: e.RayTaskError("_run_stage", "Traceback ...", KeyError("state.py")), "the stage raised KeyError"),
])
def test_a_task_that_failed_for_good_says_why_in_words(error, says):
    import ray.exceptions

    from llmabr.search.executor import failure_reason

    assert says in failure_reason(error(ray.exceptions))


def test_a_failed_task_fails_its_design_with_the_reason_and_nothing_else(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from llmabr.search.config import load_search_config
    from llmabr.search.executor import Finished
    from llmabr.search.loop import SEED_NAME, Search
    from llmabr.search.transfer import Dispatched

    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLMABR_LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    search = Search(tmp_path / "run", load_search_config(None, ["synthetic_test_count=2", "proposer=offline"]),
                    Console(file=io.StringIO()))
    search.add_seed()
    task = search.archive.claim("check")
    search.record(Finished(Dispatched(task), None, "its node died on each of 3 attempts"))
    design = search.archive.design(SEED_NAME)
    assert design["status"] == "failed" and design["reason"] == "check: its node died on each of 3 attempts"
    assert [t["status"] for t in search.archive.tasks()] == ["failed"] and not search.archive.open_tasks()
    assert search.driver_stats["check"]["tasks"] == 1


def test_tasks_carry_data_and_the_traces_go_into_the_object_store_once(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from llmabr.search.archive import Task
    from llmabr.search.config import load_search_config
    from llmabr.search.loop import SEED_NAME, Search

    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLMABR_LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    search = Search(tmp_path / "run", load_search_config(None, ["synthetic_test_count=2", "proposer=offline",
                                                                "train.synthetic_count=6"]),
                    Console(file=io.StringIO()))
    search.add_seed()

    class Store:  # stands in for Ray's object store
        def __init__(self):
            self.values = []

        def put(self, value):
            self.values.append(value)
            return f"ref-{len(self.values)}"

    store = Store()
    arguments = [search._task_args(Task(index, SEED_NAME, stage, seed, 1), None, store)
                 for index, (stage, seed) in enumerate([("check", 0), ("screen", 0), ("train", 0), ("train", 1)])]
    assert len(store.values) == 2  # the probe rows, and the traces with the video: once each, for four tasks
    train_traces, val_traces, video = store.values[1]
    assert len(train_traces) + len(val_traces) == 6 and video.n_levels > 0
    check, screen, *trains = arguments
    assert check[0] == "check" and set(check[1]) == {"design.toml", "state.py", "net.py"} and check[3] == "ref-1"
    assert screen[0] == "train" and screen[3] == "ref-2" and all(train[3] == "ref-2" for train in trains)
    for args in arguments:  # no argument names a path of the driver's disk (a traces folder given by the user
        # would ride along in the config, as a record of where the traces came from; no worker reads it)
        assert str(tmp_path) not in json.dumps(args, default=str)


def test_the_scaling_bench_reports_costs_per_task_and_per_design_by_hand_arithmetic():
    from llmabr.search.bench import ArmResult, format_scaling, task_costs

    def task(stage, started_s, finished_s, worker_s, status="done"):
        return {"stage": stage, "status": status, "started_s": started_s, "finished_s": finished_s,
                "result": {"worker": {"wall_s": worker_s}}}

    tasks = [task("check", 0.0, 5.0, 4.0), task("check", 0.0, 7.0, 6.0), task("screen", 10.0, 41.0, 30.0),
             task("screen", 10.0, 52.0, 40.0, status="failed")]  # a failed screen costs latency, not S2 seconds
    driver = {"check": {"tasks": 2, "driver_s": 0.02, "to_worker_bytes": 4000, "from_worker_bytes": 12000},
              "screen": {"tasks": 2, "driver_s": 0.02, "to_worker_bytes": 6000, "from_worker_bytes": 8_000_000},
              "shared:train": {"shared_bytes": 1_000_000, "driver_s": 0.5}}
    cost = task_costs(tasks, driver, n_designs=2)
    assert cost["check_worker_s"] == 5.0 and cost["screen_worker_s_mean"] == 30.0
    assert cost["driver_ms_per_task"] == 10.0  # 40 ms over 4 tasks; the put-once work is not a task's
    assert cost["ray_s_per_task"] == 1.25  # (1 + 1 + 1 + 2) / 4
    assert cost["to_worker_kb_per_design"] == 5.0 and cost["from_worker_kb_per_design"] == 4006.0
    assert cost["shared_kb"] == 1000.0
    one = ArmResult("1-worker", 3600.0, 10, 0, 0, 0.0, 0, None, None, workers=1, **cost)
    two = ArmResult("2-workers", 2400.0, 10, 0, 0, 0.0, 0, None, None, workers=2, **cost)
    assert "1.50x the designs per hour of 1 worker (efficiency 75%)" in format_scaling([one, two])
