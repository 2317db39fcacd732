"""The first program of a caged process: lock the process down, then exec the real workload.

Run as ``python -I -m llmabr.sandbox.jail SPEC_JSON -- ARGV...`` by ``llmabr.sandbox.cage``,
already in a new session (so the whole tree is one process group). In this order it:

1. where permitted (root), enters new mount, pid and network namespaces: every mount but the
   work directory becomes read-only; the workload's root becomes a fresh tmpfs that holds only
   what running Python and this package needs (system folders, the interpreter, the virtual
   environment, ``llmabr/`` and ``simulator/``), the paths the caller lists as ``readable`` and the
   work directory, so it cannot read traces, runs, archives or scores it was not handed; there is
   no network, and the workload's processes live in
   a pid namespace whose init is the workload, so when it dies the kernel kills every process it
   left behind (even ones that escaped the process group with ``setsid``);
   Before that it asks the kernel to kill it when its parent (the orchestrator, a Ray worker)
   dies, and the workload likewise when the jail dies: nothing outlives its caller;
2. forks the workload; in it: resource limits (address space, CPU seconds, file size, open
   files, processes, no core), an optional drop to a throw-away uid, an empty capability
   bounding set (so uid 0 holds no capability after exec), ``PR_SET_NO_NEW_PRIVS``;
3. writes what it achieved to ``isolation.json`` in the work directory and execs ``ARGV`` with
   the scrubbed environment it was given; the jail waits and passes on the exit status or signal.

Doing this in a fresh interpreter instead of a ``preexec_fn`` keeps the orchestrator safe to
use with threads (``preexec_fn`` is not). ``--reap UID`` is the other job: kill every process of
``UID`` (used after the workload, to catch children that left the process group).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
KEEP_WRITABLE_FS = ("proc",)  # remounting these read-only would break /proc/self

LIMITS = {
    "address_space_bytes": resource.RLIMIT_AS,
    "cpu_s": resource.RLIMIT_CPU,
    "file_bytes": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE,
    "processes": resource.RLIMIT_NPROC,
}


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(libc, source, target, flags) -> bool:
    encode = lambda text: None if text is None else text.encode()  # noqa: E731
    return libc.mount(encode(source), encode(target), None, ctypes.c_ulong(flags), None) == 0


def _mount_points() -> list[tuple[str, str]]:
    """(mount point, file-system type) of every mount, from /proc/self/mountinfo."""
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, right = line.split(" - ", 1)
            points.append((left.split()[4].replace("\\040", " "), right.split()[0]))
    return points


def read_only_except(libc, workdir: str) -> list[str]:
    """In a private mount namespace: every mount read-only except the work directory."""
    if not _mount(libc, None, "/", MS_REC | MS_PRIVATE):
        return []
    if not _mount(libc, workdir, workdir, MS_BIND | MS_REC):
        return []
    done = []
    for point, fs_type in sorted(_mount_points(), key=lambda item: len(item[0])):
        if point == workdir or fs_type in KEEP_WRITABLE_FS or point.startswith("/proc"):
            continue
        if _mount(libc, None, point, MS_REMOUNT | MS_BIND | MS_RDONLY):
            done.append(point)
    return done


SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/dev", "/proc", "/sys")


def _mount_fs(libc, source: str, target: str, fs_type: str, flags: int, data: str) -> bool:
    return libc.mount(source.encode(), target.encode(), fs_type.encode(), ctypes.c_ulong(flags), data.encode()) == 0


def whitelist_root(libc, root: str, readable: list[str], workdir: str) -> list[str] | None:
    """Build a root of only ``readable`` (read-only binds; symlinks copied) plus ``workdir`` (writable)
    on a tmpfs at ``root``, then chroot into it. Returns the paths made visible, None on failure
    (then nothing changed: the caller keeps the read-only view of everything)."""
    if not _mount_fs(libc, "tmpfs", root, "tmpfs", 0, "size=1m,mode=755"):
        return None
    visible = []
    for path in [*SYSTEM_PATHS, *readable]:
        if not os.path.lexists(path) or path == workdir:
            continue
        target = root + path
        if os.path.islink(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(os.readlink(path), target)
            visible.append(path)
            continue
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        if not _mount(libc, path, target, MS_BIND | MS_REC):
            return None
        if path != "/proc":
            _mount(libc, None, target, MS_REMOUNT | MS_BIND | MS_RDONLY)
        visible.append(path)
    os.makedirs(root + workdir, exist_ok=True)
    if not _mount(libc, workdir, root + workdir, MS_BIND | MS_REC):
        return None
    _mount(libc, None, root, MS_REMOUNT | MS_RDONLY)
    os.chroot(root)
    return visible + [workdir]


def drop_capabilities(libc) -> bool:
    """Empty the capability bounding set: after exec, even uid 0 holds no capability."""
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    return cap > 30  # all known capabilities went


def isolate(spec: dict) -> dict:
    """Namespaces and mounts, done by the jail itself (it forks the workload right after)."""
    achieved = {"network_namespace": False, "pid_namespace": False, "read_only_mounts": [], "visible_paths": None}
    libc = _libc()
    if os.getuid() != 0:
        return achieved
    flags = CLONE_NEWNS | CLONE_NEWPID | (CLONE_NEWNET if spec.get("network_namespace", True) else 0)
    if libc.unshare(flags) == 0:
        achieved["network_namespace"] = bool(flags & CLONE_NEWNET)
        achieved["pid_namespace"] = True
        achieved["read_only_mounts"] = read_only_except(libc, spec["workdir"])
        if spec.get("root_dir") and achieved["read_only_mounts"]:
            achieved["visible_paths"] = whitelist_root(libc, spec["root_dir"], spec.get("readable", []), spec["workdir"])
        # The old working directory still points into the (now read-only) parent mount, or outside the new root.
        os.chdir(spec["workdir"])
    return achieved


def confine(spec: dict, achieved: dict) -> dict:
    """Limits and privileges of the workload process itself (after the fork)."""
    achieved["limits"] = {}
    for key, limit in LIMITS.items():
        value = spec["limits"].get(key)
        if value is None:
            continue
        resource.setrlimit(limit, (int(value), int(value)))
        achieved["limits"][key] = int(value)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = _libc()
    drop_uid = spec.get("drop_uid")
    if drop_uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(int(drop_uid))
        os.setuid(int(drop_uid))
    achieved["capabilities_dropped"] = drop_capabilities(libc) if os.getuid() == 0 else True
    achieved["no_new_privs"] = libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    achieved["uid"] = os.getuid()
    # The kernel never applies RLIMIT_NPROC to uid 0: say so instead of implying a limit.
    achieved["process_limit_enforced"] = os.getuid() != 0
    return achieved


def reap(uid: int) -> None:
    """Kill every process of ``uid`` (this one survives ``kill(-1)``, then exits)."""
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if os.getuid() != uid or uid == 0:
        raise SystemExit("reap: refusing to kill(-1) as this user")
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies (a killed orchestrator or Ray worker must not leave
    a trainer running that would write into a folder a retried task is using)."""
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before the request took effect. (The init of a new pid namespace
    # sees its parent as pid 0, and its parent, the jail, has just forked it.)
    if os.getppid() not in (parent_pid, 0):
        os._exit(1)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--reap"]:
        reap(int(argv[1]))
        return 0
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m llmabr.sandbox.jail SPEC_JSON -- ARGV...", file=sys.stderr)
        return 2
    spec = json.loads(argv[0])
    die_with_parent(int(spec.get("parent_pid", os.getppid())))
    target = argv[2:]
    achieved = isolate(spec)
    jail_pid = os.getpid()
    child = os.fork()  # in a new pid namespace this child is its init: when it dies, all inside die
    if child == 0:
        try:
            die_with_parent(jail_pid)  # kept across exec: the workload dies with the jail
            confine(spec, achieved)
            with open(os.path.join(spec["workdir"], "isolation.json"), "w") as handle:
                json.dump(achieved, handle)
            os.execve(target[0], target, spec["env"])
        finally:
            os._exit(127)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):  # hand the workload's fate to the cage unchanged
        if os.WTERMSIG(status) not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.kill(os.getpid(), os.WTERMSIG(status))
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
