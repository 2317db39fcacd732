"""Evaluations as Ray tasks: a local Ray with one CPU per worker, or any cluster by address.

Each task runs one function of ``llmabr.search.stages`` and takes one CPU (one caged training
process per core, torch at one thread). Tasks carry data, not paths: what a stage needs goes in
as values (the design's files, the config, weights) or as a reference to a value put once into
Ray's object store (``put``: traces, video, probe batches), and its results come back as data
that the driver writes into the archive. So a cluster needs no shared file system: every node
needs only this package installed.

A worker or node that dies mid-task is retried by Ray (``MAX_RETRIES``, on any node with a free
CPU); a task that still fails comes back as an error record with a reason a person can act on,
never as an exception in the search loop.

A cluster: ``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others,
then ``llmabr search --ray-address HEAD:6379`` (or ``auto`` on a cluster node).

A local Ray starts without the dashboard unless asked (``dashboard=True``, ``--ray-dashboard``).
Ray 2.60 still starts, whatever ``include_dashboard`` says, a head API process (usage stats only),
the autoscaler monitor, and per node a dashboard agent and a runtime-env agent (the raylet refuses
an empty agent command); no documented ``ray.init`` option turns those off.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import ray
import ray.exceptions
import ray.util

from llmabr.search import stages

STAGE_FUNCTIONS = {"check": stages.check, "train": stages.train, "test": stages.test}
MAX_RETRIES = 2  # a task runs at most 3 times when its worker or its node dies


@ray.remote(num_cpus=1, max_retries=MAX_RETRIES)
def _run_stage(kind: str, *args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # Ray sets it for 1-CPU tasks too; no job-wide runtime_env needed
    started = time.perf_counter()
    result = STAGE_FUNCTIONS[kind](*args)
    result["worker"] = {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                        "host": socket.gethostname(), "pid": os.getpid(), "wall_s": time.perf_counter() - started}
    return result


@dataclass
class Finished:
    key: object  # what the caller attached when submitting
    result: dict | None
    error: str = ""


def failure_reason(error: Exception) -> str:
    """Why a task failed for good, in words, with Ray's own message shortened after it."""
    detail = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}"
    attempts = f"{MAX_RETRIES + 1} attempts"
    if isinstance(error, ray.exceptions.RayTaskError):  # the stage function raised: a bug, not a crash
        cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else None
        what = f"{type(cause).__name__}: {str(cause)[:500]}" if cause is not None else str(error)[-500:]
        return f"the stage raised {what} (not retried: a Python error repeats)"
    if isinstance(error, (ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError)):
        return f"its node died on each of {attempts}; nodes still alive may be too few ({detail})"
    if isinstance(error, ray.exceptions.OutOfMemoryError):
        return f"Ray killed its worker for lack of memory on each of {attempts} ({detail})"
    if isinstance(error, ray.exceptions.WorkerCrashedError):
        return f"its worker process died on each of {attempts} (killed, or its node went away) ({detail})"
    if isinstance(error, (ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError)):
        return f"its result was lost with the node that held it and could not be rebuilt ({detail})"
    if isinstance(error, ray.exceptions.TaskCancelledError):
        return "it was cancelled"
    return f"Ray could not run it ({detail})"


class ClusterUnreachable(ConnectionError):
    """Nothing answers at the Ray cluster address; the message says what to check."""


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast where ``ray.init(address=...)`` would wait for minutes: a HOST:PORT whose GCS port is closed."""
    if address in ("auto", "local") or "://" in address or ":" not in address:
        return  # Ray finds these itself (the latest local cluster, a Ray Client URL)
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as error:
        raise ClusterUnreachable(
            f"no Ray cluster answers at {address} ({error}); start its head with `ray start --head --port {port}` "
            f"on {host}, or check the address (the head prints it: `ray start --address=...`)") from None


class RayExecutor:
    """Runs stages on Ray; ``free`` worker slots, ``submit``, ``wait``, ``put`` shared values, ``shutdown``."""

    def __init__(self, workers: int, address: str | None = None, dashboard: bool = False):
        self.workers = workers
        self.startup_s = 0.0  # ray.init's wall-clock (0 when Ray was already started in this process)
        self.dashboard_url = ""
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback-only local cluster
            started = time.perf_counter()
            if address:  # the cluster's dashboard is the cluster's: `ray start --head --include-dashboard`
                check_reachable(address)
                context = ray.init(address=address, log_to_driver=False)
            else:
                context = ray.init(num_cpus=workers, include_dashboard=dashboard, log_to_driver=False)
            self.startup_s = time.perf_counter() - started
            self.dashboard_url = context.dashboard_url or ""
        self.pending: dict = {}  # ObjectRef -> key

    @property
    def free(self) -> int:
        return max(0, self.workers - len(self.pending))

    def put(self, value):
        """Put ``value`` in the object store once; pass the returned reference to ``submit`` as an argument
        (Ray hands the task the value, fetched once per node)."""
        return ray.put(value)

    def submit(self, key, kind: str, *args) -> None:
        self.pending[_run_stage.remote(kind, *args)] = key

    def wait(self, timeout_s: float = 1.0) -> list[Finished]:
        if not self.pending:
            time.sleep(min(timeout_s, 0.2))
            return []
        ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout_s)
        finished = []
        for ref in ready:
            key = self.pending.pop(ref)
            try:
                finished.append(Finished(key, ray.get(ref)))
            except Exception as error:  # noqa: BLE001 - a task that failed for good, said in words
                finished.append(Finished(key, None, failure_reason(error)))
        return finished

    def shutdown(self) -> None:
        for ref in list(self.pending):
            ray.cancel(ref, force=True)
        self.pending.clear()
        ray.shutdown()
