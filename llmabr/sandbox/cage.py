"""The cage: run untrusted work in a separate, limited process and always get control back.

``run_caged(argv, workdir, limits)`` starts ``argv`` through ``llmabr.sandbox.jail`` in a new
session, with

* resource limits: address space, CPU seconds, file size, open files, processes;
* a scrubbed environment: no API keys, no proxy settings, nothing from the parent except what
  is listed in ``scrubbed_env``; HOME and TMPDIR point into the empty work directory, which is
  also the working directory;
* where the orchestrator runs as root: its own network namespace (no network) and its own
  throw-away user id (so the process limit holds, the rest of the file system is read-only to it,
  and every process it started can be killed by uid, even ones that left the process group);

and kills the whole process group (and the uid's processes) on the wall-clock deadline or when
the workload ends. Only the work directory is shared: inputs are written there before, outputs
read from there after.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

UID_BASE = 200_000  # throw-away user ids: 200000..259999, no /etc/passwd entry needed
UID_SPAN = 60_000


@dataclass(frozen=True)
class CageLimits:
    """Limits of one caged process tree. ``wall_s`` is the deadline; the rest are rlimits."""

    wall_s: float = 30.0
    cpu_s: int = 60
    address_space_bytes: int = 6 << 30  # torch maps ~2-3 GiB of address space on import
    file_bytes: int = 64 << 20
    open_files: int = 256
    processes: int = 128  # threads count too; torch runs a few even with one intra-op thread
    drop_privileges: bool = True
    network_namespace: bool = True
    readable: tuple[str, ...] = ()  # paths outside the work folder the workload may read (besides Python's own)


@dataclass
class CageResult:
    """How a caged run ended. ``returncode`` < 0 is the signal that ended it."""

    returncode: int | None
    timed_out: bool
    wall_s: float
    session_id: int
    uid: int
    stdout_tail: str = ""
    stderr_tail: str = ""
    isolation: dict = field(default_factory=dict)

    @property
    def signal_name(self) -> str | None:
        if self.returncode is not None and self.returncode < 0:
            try:
                return signal.Signals(-self.returncode).name
            except ValueError:
                return f"signal {-self.returncode}"
        return None

    def describe(self) -> str:
        if self.timed_out:
            return f"killed at the {self.wall_s:.1f} s wall-clock deadline"
        if self.signal_name == "SIGXCPU":
            return "killed: CPU-time limit exceeded"
        if self.signal_name:
            return f"killed by {self.signal_name}"
        return f"exited with status {self.returncode}"

    def to_dict(self) -> dict:
        return asdict(self)


def scrubbed_env(workdir: Path) -> dict[str, str]:
    """The only environment a caged process sees: no secrets, no proxies, one thread per library."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "TORCH_NUM_THREADS": "1",
    }


def python_paths() -> list[str]:
    """What a caged interpreter must read to run this package: its installation, the virtual
    environment, and this package's two source folders (an editable install reads them in place)."""
    from simulator.paths import REPO_ROOT

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(REPO_ROOT / "llmabr"), str(REPO_ROOT / "simulator")}
    paths |= {os.path.realpath(path) for path in list(paths)}
    return sorted(paths)


@lru_cache(maxsize=None)
def can_drop_privileges() -> bool:
    """True when a throw-away uid can run this interpreter and import the project (checked once)."""
    if os.getuid() != 0:
        return False
    uid = UID_BASE + UID_SPAN - 1
    probe = "import llmabr.sandbox.probe, simulator.core"
    try:
        result = subprocess.run(
            [sys.executable, "-I", "-c", f"import os; os.setgroups([]); os.setgid({uid}); os.setuid({uid}); {probe}"],
            capture_output=True, timeout=60, env=scrubbed_env(Path("/")), cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def process_state(process: subprocess.Popen) -> str:
    """"still running", "exited with status N" or "killed by signal N" (for error messages)."""
    code = process.poll()
    if code is None:
        return "still running"
    return f"exited with status {code}" if code >= 0 else f"killed by signal {-code}"


def last_line(path: Path) -> str:
    """": <last non-empty line of the file>" (300 characters at most), or "" when there is none."""
    try:
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:300]}" if lines else ""


def kill_tree(session_id: int, uid: int | None) -> None:
    try:
        os.killpg(session_id, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None:  # children that called setsid() left the group but not the uid
        subprocess.run([sys.executable, "-I", "-m", "llmabr.sandbox.jail", "--reap", str(uid)],
                       env=scrubbed_env(Path("/")), cwd="/", capture_output=True, timeout=30)


ROOT_DIR_PREFIX = "llmabr-root-"  # the jail's new root (a tmpfs on an empty folder made by spawn_caged)


def _host_path(cwd: str) -> str:
    """A working directory as the workload sees it: a process chrooted into a jail's new root reads, from
    outside, as <that root><its path> (the work folder is bind-mounted there at its own path)."""
    head = os.path.join(tempfile.gettempdir(), ROOT_DIR_PREFIX)
    if not cwd.startswith(head):
        return cwd
    slash = cwd.find("/", len(head))
    return cwd[slash:] if slash >= 0 else "/"


def descendants(root: int) -> list[int]:
    """Pids of every live process below ``root`` (children, their children, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, frontier = [], [root]
    while frontier:
        for pid in children.get(frontier.pop(), []):
            found.append(pid)
            frontier.append(pid)
    return found


def processes_in(workdir: Path) -> list[int]:
    """Pids of live processes whose working directory is ``workdir`` or below (whatever their session,
    chrooted into a jail's new root or not)."""
    found = []
    prefix = str(workdir)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = _host_path(os.readlink(entry / "cwd"))
            if (cwd == prefix or cwd.startswith(prefix + "/")) and _state(entry) != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _state(entry: Path) -> str:
    return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]


def wait_gone(session_id: int, workdir: Path, timeout_s: float = 5.0) -> None:
    """Kill, and wait for, every process left in the session or working in the work folder."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = set(session_processes(session_id)) | set(processes_in(workdir))
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def session_processes(session_id: int) -> list[int]:
    """Pids still alive in session ``session_id`` (for tests and leak checks)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields after the command: state, ppid, pgrp, session, ...
        if int(fields[3]) == session_id and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


@dataclass
class CagedProcess:
    """A caged process tree started by ``spawn_caged``. ``kill()`` ends all of it, whatever it did."""

    process: subprocess.Popen
    uid: int | None
    workdir: Path
    root_dir: str | None = None

    def kill(self) -> None:
        kill_tree(self.process.pid, self.uid)
        self.process.wait()
        wait_gone(self.process.pid, self.workdir)
        if self.root_dir:  # empty here: the tmpfs on it lived in the dead namespace
            try:
                os.rmdir(self.root_dir)
            except OSError:
                pass


def spawn_caged(argv: list[str], workdir: Path, limits: CageLimits = CageLimits(), stdin=subprocess.DEVNULL,
                stdout=None, stderr=None) -> CagedProcess:
    """Start ``argv`` caged in ``workdir`` (which must exist) and return at once; the caller owns its end.

    ``run_caged`` waits for the workload and enforces ``limits.wall_s``; a long-lived worker that
    talks over pipes (``llmabr serve``'s caged backend: ``stdin=stdout=subprocess.PIPE``) starts here
    and is ended with ``kill()``. Pipes are unbuffered on this side.
    """
    workdir = Path(workdir).resolve()
    uid = None
    root_dir = tempfile.mkdtemp(prefix=ROOT_DIR_PREFIX) if os.getuid() == 0 else None  # the jail's empty new root
    if limits.drop_privileges and can_drop_privileges():
        uid = UID_BASE + secrets.randbelow(UID_SPAN - 1)
        for path in [workdir, *workdir.rglob("*")]:
            os.chown(path, uid, uid)
    env = scrubbed_env(workdir)
    spec = {
        "workdir": str(workdir),
        "parent_pid": os.getpid(),
        "env": env,
        "drop_uid": uid,
        "network_namespace": limits.network_namespace,
        "root_dir": root_dir,
        "readable": [*python_paths(), *(os.path.realpath(path) for path in limits.readable)],
        "limits": {
            "address_space_bytes": limits.address_space_bytes,
            "cpu_s": limits.cpu_s,
            "file_bytes": limits.file_bytes,
            "open_files": limits.open_files,
            "processes": limits.processes,
        },
    }
    jail = [sys.executable, "-I", "-m", "llmabr.sandbox.jail", json.dumps(spec), "--"]
    process = subprocess.Popen(jail + list(argv), cwd=workdir, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                               start_new_session=True, close_fds=True, bufsize=0)
    return CagedProcess(process=process, uid=uid, workdir=workdir, root_dir=root_dir)


def run_caged(argv: list[str], workdir: Path, limits: CageLimits = CageLimits(), on_poll=None) -> CageResult:
    """Run ``argv`` caged in ``workdir`` (which must exist); never raises for what the workload does.

    ``on_poll()``, if given, is called about twice a second while the workload runs (progress display).
    """
    workdir = Path(workdir).resolve()
    stdout_path, stderr_path = workdir / "stdout.txt", workdir / "stderr.txt"
    start = time.perf_counter()
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        caged = spawn_caged(argv, workdir, limits, stdout=stdout, stderr=stderr)
    process, uid = caged.process, caged.uid
    timed_out = False
    deadline = start + limits.wall_s
    try:
        while True:
            try:
                process.wait(timeout=max(0.0, min(0.5, deadline - time.perf_counter())))
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() >= deadline:
                    timed_out = True
                    break
                if on_poll is not None:
                    on_poll()
    finally:
        caged.kill()
    wall_s = time.perf_counter() - start
    try:
        isolation = json.loads((workdir / "isolation.json").read_text())
    except (OSError, ValueError):
        isolation = {}
    return CageResult(
        returncode=process.returncode, timed_out=timed_out, wall_s=wall_s, session_id=process.pid,
        uid=uid if uid is not None else os.getuid(), stdout_tail=_tail(stdout_path),
        stderr_tail=_tail(stderr_path), isolation=isolation,
    )
