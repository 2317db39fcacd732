"""Evaluations as Ray tasks: a local Ray with one CPU per worker, or any cluster by address.

Each task runs one function of ``llmabr.search.stages`` and takes one CPU (one caged training
process per core, torch at one thread). A worker that dies mid-task is retried by Ray
(``max_retries``); a task that still fails comes back as an error record, never as an
exception in the search loop.

A cluster: ``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others,
then ``llmabr search --ray-address HEAD:6379`` (or ``auto`` on a cluster node). Every node needs
this package installed and the same paths for traces and the run folder (a shared file system).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import ray

from llmabr.search import stages

STAGE_FUNCTIONS = {"check": stages.check, "train": stages.train, "test": stages.test}


@ray.remote(num_cpus=1, max_retries=2)
def _run_stage(kind: str, *args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return STAGE_FUNCTIONS[kind](*args)


@dataclass
class Finished:
    key: object  # what the caller attached when submitting
    result: dict | None
    error: str = ""


class RayExecutor:
    def __init__(self, workers: int, address: str | None = None):
        self.workers = workers
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback-only local cluster
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        self.pending: dict = {}  # ObjectRef -> key

    @property
    def free(self) -> int:
        return max(0, self.workers - len(self.pending))

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
            except Exception as error:  # noqa: BLE001 - a task that failed for good, with Ray's reason
                finished.append(Finished(key, None, f"{type(error).__name__}: {str(error)[:800]}"))
        return finished

    def shutdown(self) -> None:
        for ref in list(self.pending):
            ray.cancel(ref, force=True)
        self.pending.clear()
        ray.shutdown()
