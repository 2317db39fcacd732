"""The search loop: propose -> S0/S1 -> S2 -> finalists to S3 -> held-out test -> report.

Everything the loop knows lives in the archive (``RUN/archive.sqlite``), so ``--resume RUN``
after a crash or ``kill -9`` picks up exactly there: finished tasks are never run again, tasks
that were running go back to the queue, proposals already archived are not made again.

One pass of the loop: keep ``queue_ahead`` proposals ready; hand queued tasks to free workers
(the seed design first, since its S2 curve is every other design's reference; then test, S3, S2,
checks); record whatever finished and queue the design's next stage; when proposing is over and
S2 has drained, pick the finalists (top-k on validation QoE) and train them, with the seed,
on several seeds; test them on held-out traces; stop when nothing is left to run.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from llmabr.search.archive import Archive, Task
from llmabr.search.config import SearchConfig, search_from_dict, search_to_dict
from llmabr.search.proposing import Proposing
from llmabr.search.transfer import Dispatched, nbytes, write_outputs
from llmabr.train.config import to_dict
from simulator.paths import REPO_ROOT

SEED_NAME = "seed-pensieve"
DISPATCH_ORDER = ("test", "train", "screen", "check")


class Search:
    def __init__(self, run_dir: Path, config: SearchConfig | None = None, console: Console | None = None):
        self.run_dir = Path(run_dir)
        self.console = console or Console(stderr=True)
        self.archive = Archive(self.run_dir)
        stored = self.archive.meta("config")
        if stored is not None:  # a resumed run keeps its own settings
            self.config = search_from_dict(stored)
            requeued = self.archive.requeue_interrupted()
            self.console.print(f"resuming {self.run_dir}: {len(self.archive.designs())} designs archived, "
                               f"{requeued} interrupted task(s) queued again")
        else:
            if config is None:
                raise ValueError(f"{self.run_dir} holds no search to resume")
            self.config = config
            self.archive.set_meta("config", search_to_dict(config))
        self.started_s = time.monotonic() - float(self.archive.meta("elapsed_s", 0.0))
        self.test_traces = self._test_traces()
        # Proposals come from their own thread with its own archive connection, so a slow LLM
        # never holds up dispatching and recording evaluations.
        self.proposing = Proposing(self.config, Archive(self.run_dir), self.run_dir, self.console)
        self.proposals_done = threading.Event()
        self.proposer_error: BaseException | None = None
        self._train_data = None
        self._shared: dict = {}  # object-store references of the traces, video and probe batches
        self.shared_s = 0.0  # driver seconds spent building and putting them
        # driver-side cost per stage: tasks, seconds spent dispatching and recording, bytes each way
        self.driver_stats: dict = self.archive.meta("driver_stats", {})

    # -- setup ----------------------------------------------------------------------------------

    def _test_traces(self) -> str:
        if self.config.test_traces != "synthetic":
            return str(Path(self.config.test_traces).resolve())
        folder = self.run_dir / "test-traces"
        if not folder.exists():
            from simulator.traces import generate, write_cooked

            aside = self.run_dir / ".test-traces"
            aside.mkdir(parents=True, exist_ok=True)
            # another generator seed than training's (seed 0): held out by construction
            for trace in generate(self.config.network, self.config.synthetic_test_count, seed=1_000 + self.config.seed):
                write_cooked(trace, aside / f"test_{trace.name}")
            aside.rename(folder)
        return str(folder.resolve())

    def train_config(self, steps: int, seed: int, eval_every: int) -> dict:
        config = replace(self.config.train, network=self.config.network, traces=self.config.traces,
                         total_steps=steps, seed=seed, eval_every_steps=eval_every)
        return to_dict(config)

    def train_data(self) -> tuple:
        """(training traces, validation traces, video profile) of every run of this search, loaded once here."""
        if self._train_data is None:
            from llmabr.train.config import from_dict
            from llmabr.train.data import load_data

            self._train_data = load_data(from_dict(self.train_config(self.config.budget.screen_steps, self.config.seed, 1)))
        return self._train_data

    def val_yardsticks(self) -> dict:
        """BB and the offline optimum on the search's validation traces (S2's scale), computed once."""
        stored = self.archive.meta("val_yardsticks")
        if stored is None:
            from llmabr.scoring.yardsticks import validation_yardsticks

            _, val_traces, video = self.train_data()
            self.console.print(f"yardsticks: BB and the offline optimum on the {len(val_traces)} validation traces")
            stored = validation_yardsticks(val_traces, video, self.config.train.mode, self.config.train.qoe)
            self.archive.set_meta("val_yardsticks", stored)
        return stored

    def shared(self, executor, what: str):
        """A value every task of a kind needs, put in the executor's object store once per search process:
        "train" (training and validation traces, video), "test" (held-out traces, video), "probe" (S1's rows)."""
        if what not in self._shared:
            started = time.perf_counter()
            if what == "train":
                value = self.train_data()
            elif what == "test":
                from simulator.traces import load_trace_dir

                value = (load_trace_dir(self.test_traces, fmt=self.config.train.trace_format), self.train_data()[2])
            else:
                from llmabr.sandbox.checks import CheckConfig
                from llmabr.sandbox.probe_data import probe_batches

                value = probe_batches(CheckConfig.rows_per_network, CheckConfig.history_len)
            self._shared[what] = executor.put(value)
            self.shared_s += time.perf_counter() - started
            self._count(f"shared:{what}", shared_bytes=nbytes(value), driver_s=time.perf_counter() - started)
        return self._shared[what]

    def _count(self, stage: str, **amounts) -> None:
        stats = self.driver_stats.setdefault(stage, {})
        for key, amount in amounts.items():
            stats[key] = stats.get(key, 0) + amount

    def normalized(self, qoe: float | None) -> float | None:
        scale = self.archive.meta("val_yardsticks")
        if qoe is None or not scale or scale["optimal"] <= scale["bb"]:
            return None
        return (qoe - scale["bb"]) / (scale["optimal"] - scale["bb"])

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_s

    # -- one pass -------------------------------------------------------------------------------

    def dispatch(self, executor) -> None:
        reference = self.archive.meta("reference_curve")
        while executor.free:
            task = self.archive.claim(design=SEED_NAME)  # the seed's curve gates everyone's S2
            for stage in DISPATCH_ORDER:
                if task is not None:
                    break
                if stage == "screen" and reference is None:
                    continue
                if stage in ("screen", "check") and self.elapsed_s() > 60.0 * self.config.budget.minutes:
                    continue  # out of time: no new screening, finish what leads to the report
                task = self.archive.claim(stage)
            if task is None:
                return
            started, shared_s = time.perf_counter(), self.shared_s
            kind, *args = self._task_args(task, reference, executor)
            sent = Dispatched(task, nbytes(args))
            executor.submit(sent, kind, *args)
            sent.driver_s = time.perf_counter() - started - (self.shared_s - shared_s)  # put-once work apart

    def _task_args(self, task: Task, reference, executor) -> tuple:
        """The stage function and its arguments: data and object-store references, never paths."""
        from llmabr.search.stages import read_design_files

        folder = self.archive.folder(task.design)
        budget = self.config.budget
        if task.stage == "check":
            return "check", read_design_files(folder), self.config.check_normalization, self.shared(executor, "probe")
        if task.stage == "screen":
            config = self.train_config(budget.screen_steps, self.config.seed, budget.screen_eval_every)
            use_reference = reference if task.design != SEED_NAME and self.config.early_stop else None
            return ("train", read_design_files(folder), config, self.shared(executor, "train"), use_reference, 3600.0,
                    self.archive.meta("val_yardsticks"))
        if task.stage == "train":
            config = self.train_config(budget.train_steps, self.config.seed + task.seed,
                                       max(budget.train_steps // 10, 1))
            return "train", read_design_files(folder), config, self.shared(executor, "train")
        run = self.output_folder(task).parent
        result = json.loads((run / "result.json").read_text())
        return ("test", read_design_files(run / "design"), (run / "policy_best.pt").read_bytes(),
                self.shared(executor, "test"), result["config"]["mode"], result["config"]["qoe"])

    def output_folder(self, task: Task) -> Path:
        """Where a task's returned files go in the archive."""
        folder = self.archive.folder(task.design)
        return {"check": folder, "screen": folder / "screen", "train": folder / f"train-s{task.seed}",
                "test": folder / f"train-s{task.seed}" / "test"}[task.stage]

    def record(self, finished) -> None:
        """Write what a task returned into the archive, then mark it done and queue the design's next stage."""
        started = time.perf_counter()
        sent = finished.key if isinstance(finished.key, Dispatched) else Dispatched(finished.key)
        received = nbytes(finished.result) if finished.result else 0
        try:
            self._record(sent.task, finished)
        finally:
            self._count(sent.task.stage, tasks=1, driver_s=sent.driver_s + time.perf_counter() - started,
                        to_worker_bytes=sent.to_worker_bytes, from_worker_bytes=received)

    def _record(self, task: Task, finished) -> None:
        result = finished.result
        if result is None:  # Ray gave up on the task (its worker or its node kept dying, or the stage raised)
            self.console.print(f"[red]{task.design}: {task.stage} failed: {finished.error}[/]")
            self.archive.finish(task, False, {"error": finished.error})
            self.archive.update(task.design, status="failed", reason=f"{task.stage}: {finished.error}")
            return
        files = result.pop("files", {})
        write_outputs(self.output_folder(task), files, whole_folder=task.stage != "check")
        ok = result.get("passed", result.get("status") == "ok")
        self.archive.finish(task, ok, {k: v for k, v in result.items() if k not in ("rows",)})
        name = task.design
        if task.stage == "check":
            if ok:
                self.archive.update(name, stage="checked")
                self.archive.enqueue(name, "screen")
            else:
                self.archive.update(name, status="rejected", reason=f"{result['rejected_at']}: {result['reason']}")
        elif task.stage == "screen":
            self._record_screen(name, result)
        elif task.stage == "train":
            self._record_train(name)
        else:
            self._record_test(name, task, result)

    def _record_screen(self, name: str, result: dict) -> None:
        metrics = {"S2": {"steps": result.get("steps"), "wall_s": result.get("wall_s"), "curve": result.get("curve", []),
                          "stopped_early": result.get("stopped_early", False)}}
        if result.get("status") != "ok":
            self.archive.update(name, stage="screened", status="failed", reason=f"S2: {result.get('reason')}",
                                metrics=metrics)
            return
        best = result.get("best_val_qoe")
        if name == SEED_NAME:
            self.archive.set_meta("reference_curve", result["curve"])
        if result.get("stopped_early"):
            self.archive.update(name, stage="screened", status="rejected", reason=f"S2: {result['reason']}",
                                val_qoe=best, metrics=metrics)
        else:
            self.archive.update(name, stage="screened", val_qoe=best, metrics=metrics)

    def _record_train(self, name: str) -> None:
        runs = self.archive.tasks(design=name, stage="train")
        if any(run["status"] in ("queued", "running") for run in runs):
            return
        good = [run["result"] for run in runs if run["status"] == "done"]
        if not good:
            reasons = "; ".join(str((run["result"] or {}).get("reason", "")) for run in runs)
            self.archive.update(name, status="failed", reason=f"S3: every seed failed: {reasons}")
            return
        val = sum(r["best_val_qoe"] for r in good) / len(good)
        self.archive.update(name, stage="trained", val_qoe=val, metrics={"S3": {
            "seeds": len(good), "best_val_qoe": [r["best_val_qoe"] for r in good],
            "wall_s": sum(r["wall_s"] for r in good), "curves": [r.get("curve", []) for r in good]}})
        for run in runs:
            if run["status"] == "done":
                self.archive.enqueue(name, "test", run["seed"])

    def _record_test(self, name: str, task: Task, result: dict) -> None:
        folder = self.archive.folder(name)
        if result.get("status") == "ok":
            (folder / f"test-s{task.seed}.json").write_text(json.dumps(result["rows"]))
        tests = self.archive.tasks(design=name, stage="test")
        if any(t["status"] in ("queued", "running") for t in tests):
            return
        rows_by_seed = [json.loads(path.read_text()) for path in sorted(folder.glob("test-s*.json"))]
        if not rows_by_seed:
            self.archive.update(name, status="failed", reason=f"test: {result.get('reason')}")
            return
        per_trace = [sum(rows[i]["qoe_per_chunk"] for rows in rows_by_seed) / len(rows_by_seed)
                     for i in range(len(rows_by_seed[0]))]
        self.archive.update(name, stage="tested", test_qoe=sum(per_trace) / len(per_trace),
                            metrics={"test": {"seeds": len(rows_by_seed), "traces": len(per_trace)}})

    def advance(self) -> None:
        """When proposing and screening are over, choose the finalists and queue their S3 runs."""
        if self.archive.meta("finalists") is not None or not self.proposals_done.is_set():
            return
        if self.elapsed_s() > 60.0 * self.config.budget.minutes:
            # dispatch no longer starts checks or screens: those still queued would be waited for forever
            dropped = self.archive.drop_queued(("check", "screen"), "out of time: not checked or screened within "
                                               f"budget.minutes = {self.config.budget.minutes:g}", keep_design=SEED_NAME)
            if dropped:
                self.console.print(f"out of time: {len(dropped)} queued design(s) not screened: {', '.join(dropped)}")
        if self.archive.open_tasks(("check", "screen")):
            return
        screened = [d for d in self.archive.top(stage="screened") if d["name"] != SEED_NAME]
        finalists = [d["name"] for d in screened[:self.config.budget.top_k]]
        if len(finalists) < self.config.budget.top_k and self.config.budget.train_seeds > 0:
            # S2 stopped (nearly) every design: S3 still compares the best of them with the seed on equal budgets,
            # rather than ending the search with nothing to compare (their S2 verdict stays in their reason).
            stopped = sorted((d for d in self.archive.designs() if d["name"] != SEED_NAME and d["stage"] == "screened"
                              and d["status"] == "rejected" and d["reason"].startswith("S2: stopped early")
                              and d["val_qoe"] is not None), key=lambda d: -d["val_qoe"])
            for design in stopped[:self.config.budget.top_k - len(finalists)]:
                self.archive.update(design["name"], status="ok",
                                    reason=f"a finalist although S2 stopped it (too few designs passed S2): {design['reason']}")
                finalists.append(design["name"])
        seed = self.archive.design(SEED_NAME)
        chosen = finalists + ([SEED_NAME] if seed and seed["status"] == "ok" else [])
        self.archive.set_meta("finalists", chosen)
        for name in chosen:
            for index in range(self.config.budget.train_seeds):
                self.archive.enqueue(name, "train", index)

    def done(self, executor) -> bool:
        return (self.archive.meta("finalists") is not None and not executor.pending
                and not self.archive.open_tasks())

    # -- the loop -------------------------------------------------------------------------------

    def add_seed(self) -> None:
        from llmabr.design.format import load_design
        from llmabr.proposer.proposal import Proposal

        seed = load_design(REPO_ROOT / "designs" / "pensieve")
        proposal = Proposal(name=SEED_NAME, kind="seed", origin="seed", state_source=seed.state_source,
                            net_source=seed.net_source, notes=seed.notes)
        name, new = self.archive.add(proposal)
        if new:
            self.archive.enqueue(name, "check")

    def propose_until_done(self, stop: threading.Event) -> None:
        """The proposer thread: keep the queue topped up until the proposal budget is spent."""
        try:
            while not stop.is_set() and not self.proposing.finished(self.elapsed_s()):
                if self.proposing.top_up(self.elapsed_s()) == 0:
                    stop.wait(0.5)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main loop
            self.proposer_error = error
        finally:
            self.proposals_done.set()

    def run(self, executor) -> dict:
        self.add_seed()
        self.val_yardsticks()
        stop = threading.Event()
        proposer = threading.Thread(target=self.propose_until_done, args=(stop,), name="proposer", daemon=True)
        proposer.start()
        try:
            return self._loop(executor)
        finally:
            stop.set()
            proposer.join(timeout=60)

    def _loop(self, executor) -> dict:
        with Live(self.status(), console=self.console, refresh_per_second=2, transient=False) as live:
            while not self.done(executor):
                if self.proposer_error is not None:
                    raise self.proposer_error
                self.dispatch(executor)
                for finished in executor.wait(timeout_s=1.0):
                    self.record(finished)
                self.advance()
                self.archive.set_meta("elapsed_s", self.elapsed_s())
                self.archive.set_meta("driver_stats", self.driver_stats)
                live.update(self.status())
        return self.summary()

    def status(self) -> Table:
        table = Table(title=f"llmabr search {self.run_dir.name} ({self.config.mode}, {self.proposing.label})",
                      show_header=True)
        funnel = self.archive.funnel()
        for column in (*funnel, "running", "best val QoE (normalized)", "LLM $", "elapsed"):
            table.add_column(column, justify="right")
        best = self.archive.top(1)
        norm = self.normalized(best[0]["val_qoe"]) if best else None
        table.add_row(*[str(value) for value in funnel.values()], str(self.archive.task_counts().get("running", 0)),
                      (f"{best[0]['val_qoe']:.3f}" + (f" ({norm:.2f})" if norm is not None else "") + f" {best[0]['name']}")
                      if best else "-",
                      f"{self.proposing.cost_usd():.4f}", f"{self.elapsed_s() / 60:.1f} min")
        return table

    def summary(self) -> dict:
        return {"run": str(self.run_dir), "funnel": self.archive.funnel(), "finalists": self.archive.meta("finalists"),
                "elapsed_s": self.elapsed_s(), "proposer": self.proposing.label,
                "stop_reason": self.proposing.stop_reason}
