"""Training with trusted scoring: PPO runs in the cage, every QoE number is computed here.

``train_caged`` is the trusted side of a training run. It never executes design code. It

1. loads the training and validation traces (test traces never come near a run) and writes the
   training traces, the video and the design into the cage's work folder ``RUN/cage/``: the
   trainer sees no validation or test trace, no other run, no archive and no score;
2. starts the trainer there (``llmabr.train.entry``) and a caged actor of the same design
   (``llmabr.scoring.actor``, one fresh fork per evaluation);
3. at each checkpoint the trainer sends its weights; this process plays the validation traces in
   its own simulator with the actor's levels, records the curve, keeps the best weights, applies
   S2's rule and answers "continue" or "stop"; checkpoint steps must match the schedule this
   process computes from the PPO settings, and CPU time is read from /proc, not reported;
4. writes ``result.json``, ``curve.json``, ``policy_best.pt`` / ``policy_final.pt`` (and
   ``checkpoints/``) into ``RUN/``, outside the cage's folder, so the trainer cannot touch them.

It always comes back with a result: ``ok``, or ``failed`` with a reason (the design's error, a
protocol violation, a kill, the deadline).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from llmabr.design.format import load_design, write_design
from llmabr.sandbox import cage
from llmabr.sandbox.cage import CageLimits
from llmabr.scoring import wire
from llmabr.scoring.actor import CagedActor, ScoringError, score_weights
from llmabr.train.config import TrainConfig, to_dict
from llmabr.train.data import load_data, save_traces
from llmabr.train.early_stop import EarlyStopRule


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    tmp.replace(path)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants, from /proc (0 where unreadable)."""
    ticks = 0
    stack, seen = [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class Schedule:
    """The env steps at which checkpoints must arrive, from the PPO settings alone (as SB3 counts)."""

    def __init__(self, config: TrainConfig):
        self.rollout = config.ppo.n_envs * config.ppo.n_steps
        self.n_envs, self.every, self.total = config.ppo.n_envs, config.eval_every_steps, config.total_steps
        self.next_at = 0

    def _round_up(self, steps: int) -> int:
        return max(self.rollout, math.ceil(steps / self.rollout) * self.rollout)

    def checkpoint(self) -> int:
        steps = self._round_up(self.next_at)
        self.next_at = steps + self.every
        return steps

    def final(self, stopped_at: int | None) -> int:
        return stopped_at + self.n_envs if stopped_at is not None else self._round_up(self.total)


class TrustedRun:
    """One caged training run seen from the trusted side (see the module docstring)."""

    def __init__(self, config: TrainConfig, out_dir: Path, val_traces, video, reference_curve, on_poll,
                 scale_qoe: float = 1.0):
        self.config, self.out_dir, self.val_traces, self.video = config, out_dir, val_traces, video
        self.on_poll, self.schedule = on_poll, Schedule(config)
        self.rule = (EarlyStopRule(reference_curve, config.early_stop, config.total_steps, scale_qoe)
                     if config.early_stop.enabled and reference_curve else None)
        self.curve: list[dict] = []
        self.best, self.stopped_at, self.progress = -math.inf, None, {}

    def score(self, weights: bytes, steps: int, final: bool = False) -> float:
        rows = self.actor.evaluate(weights, self.val_traces, self.video, self.config.mode, self.config.qoe)
        qoe = sum(row["qoe_per_chunk"] for row in rows) / len(rows)
        self.curve.append({"steps": steps, "wall_s": time.perf_counter() - self.started,
                           "cpu_s": tree_cpu_s(self.trainer.process.pid), "val_qoe": qoe})
        write_json(self.out_dir / "curve.json", self.curve)
        if qoe > self.best:
            self.best = qoe
            (self.out_dir / "policy_best.pt").write_bytes(weights)
            write_json(self.out_dir / "val_best.json", rows)  # per-trace rows of the best checkpoint (promotion)
        if self.config.keep_checkpoints:  # for learning curves on test traces, scored after training
            (self.out_dir / "checkpoints").mkdir(exist_ok=True)
            # the final weights may share a step count with the last checkpoint (taken before that rollout's update)
            name = f"policy_{steps:09d}_final.pt" if final else f"policy_{steps:09d}.pt"
            (self.out_dir / "checkpoints" / name).write_bytes(weights)
        return qoe

    def on_checkpoint(self, header: dict, weights) -> str:
        expected = self.schedule.checkpoint()
        if header.get("steps") != expected or not isinstance(weights, bytes):
            raise ScoringError(f"the trainer sent a checkpoint at {header.get('steps')} steps where the schedule "
                               f"says {expected:,}")
        qoe = self.score(weights, expected)
        if self.rule is not None and self.rule.should_stop(expected, qoe):
            self.stopped_at = expected
            return "stop"
        return "continue"

    def write_progress(self, header: dict) -> None:
        self.progress = {key: header.get(key) for key in ("steps", "total_steps", "steps_per_s", "recent_qoe_per_chunk", "phase")}
        self.progress["val_qoe_per_chunk"] = self.curve[-1]["val_qoe"] if self.curve else None
        write_json(self.out_dir / "progress.json", self.progress)

    def run(self, cage_dir: Path, limits: CageLimits, deadline_s: float) -> dict:
        """Drive the caged trainer to its end; returns the result fields this side vouches for."""
        self.started = time.perf_counter()
        with open(cage_dir / "stderr.txt", "wb") as stderr:
            self.trainer = cage.spawn_caged([sys.executable, "-I", "-m", "llmabr.train.entry", "request.json"],
                                            cage_dir, limits, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=stderr)
        self.stderr_path = cage_dir / "stderr.txt"
        reader, to_trainer = wire.Reader(self.trainer.process.stdout.fileno()), self.trainer.process.stdin.fileno()
        self.actor = None
        try:
            self.actor = CagedActor(self.out_dir / "design", 16, self.video.n_levels)
            while True:
                left_s = self.started + deadline_s - time.perf_counter()
                if left_s <= 0:
                    return {"status": "failed", "reason": f"training was killed at the {deadline_s:.0f} s wall-clock "
                                                          f"deadline", "timed_out": True}
                try:
                    header, payload = reader.read(timeout_s=min(0.5, left_s))
                except wire.WireTimeout:
                    if self.on_poll is not None:
                        self.on_poll()
                    continue
                op = header.get("op")
                if op == "progress":
                    self.write_progress(header)
                elif op == "checkpoint":
                    wire.send(to_trainer, {"op": self.on_checkpoint(header, payload)})
                elif op == "final":
                    expected = self.schedule.final(self.stopped_at)
                    if header.get("steps") != expected or not isinstance(payload, bytes):
                        raise ScoringError(f"the trainer ended at {header.get('steps')} steps where the schedule "
                                           f"says {expected:,}")
                    self.score(payload, expected, final=True)
                    (self.out_dir / "policy_final.pt").write_bytes(payload)
                    wire.send(to_trainer, {"op": "ok"})
                    return {"status": "ok", "reason": "", "steps": expected}
                elif op == "failed":
                    wire.send(to_trainer, {"op": "ok"})
                    return {"status": "failed", "reason": str(header.get("reason", ""))[:2000],
                            "steps": int(header.get("steps") or 0)}
                else:
                    raise ScoringError(f"the trainer sent an unknown message {str(header)[:200]}")
        except wire.WireError as error:
            return {"status": "failed", "reason": f"the trainer process failed ({error}; "
                                                  f"{self._trainer_state()}){self._stderr_line()}"}
        except ScoringError as error:
            return {"status": "failed", "reason": f"scoring failed: {error}"}
        finally:
            self.cpu_s = tree_cpu_s(self.trainer.process.pid)
            for pipe in (self.trainer.process.stdin, self.trainer.process.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
            self.trainer.kill()
            if self.actor is not None:
                self.actor.close()

    def _trainer_state(self) -> str:
        return cage.process_state(self.trainer.process)

    def _stderr_line(self) -> str:
        return cage.last_line(self.stderr_path)

def train_caged(design_dir: Path, config: TrainConfig, out_dir: Path, wall_s: float = 3600.0,
                on_poll=None, reference_curve: list[dict] | None = None, local_val: bool = False,
                val_yardsticks: dict | None = None, data: tuple | None = None) -> dict:
    """Train in the cage with trusted validation; returns result.json's data (see the module docstring).

    ``data``: (training traces, validation traces, video profile) handed over as values (a search's
    Ray task gets them from the object store); None: ``load_data(config)`` reads them here.

    ``val_yardsticks`` ({"bb": QoE/chunk, "optimal": QoE/chunk} on the validation traces) scales S2's
    margin; computed here when early stopping needs it and none is given (a search computes it once).

    ``local_val`` (``llmabr bench train`` only) scores validation inside the trainer's process, the
    pre-trust way, to time it side by side; such a run reports no validation numbers.
    """
    from simulator.traces import TraceError
    from simulator.video import VideoProfileError, save_profile

    started = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: run folder exists and is not empty; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    design = load_design(design_dir)
    write_design(design, out_dir / "design")
    base = {"design": design.name, "network": config.network, "seed": config.seed, "config": to_dict(config),
            "scored_by": "trusted scorer (llmabr.train.caged): validation played in a process that runs no design code"}
    try:
        train_traces, val_traces, video = data if data is not None else load_data(config)
    except (OSError, ValueError, TraceError, VideoProfileError) as error:
        result = {**base, "status": "failed", "reason": f"loading the traces or video failed: {error}"}
        write_json(out_dir / "result.json", result)
        return result
    reward_scale = config.reward_scale or 4.3 / (video.bitrates_kbps[-1] / 1000.0)
    cage_dir = out_dir / "cage"
    cage_dir.mkdir()
    write_design(design, cage_dir / "design")
    save_traces(train_traces, cage_dir / "train_traces.npz")
    save_profile(video, cage_dir / "video.json")
    request = {"config": to_dict(replace(config, traces="train_traces.npz", val_traces=None)), "reward_scale": reward_scale}
    if local_val:
        save_traces(val_traces, cage_dir / "val_traces.npz")
        request["local_val"] = "val_traces.npz"
    (cage_dir / "request.json").write_text(json.dumps(request))
    limits = CageLimits(wall_s=wall_s, cpu_s=int(wall_s * 2) + 60, address_space_bytes=8 << 30, file_bytes=1 << 30)
    if config.early_stop.enabled and reference_curve and val_yardsticks is None:
        from llmabr.scoring.yardsticks import validation_yardsticks

        val_yardsticks = validation_yardsticks(val_traces, video, config.mode, config.qoe)
    scale_qoe = (val_yardsticks["optimal"] - val_yardsticks["bb"]) if val_yardsticks else 1.0
    run = TrustedRun(config, out_dir, val_traces, video, reference_curve, on_poll, scale_qoe)
    outcome = run.run(cage_dir, limits, wall_s)
    wall = time.perf_counter() - started
    steps = int(outcome.pop("steps", 0) or 0)
    result = {**base, **outcome}
    result["stopped_early"] = run.stopped_at is not None and result["status"] == "ok"
    if result["stopped_early"]:
        result["reason"] = run.rule.reason
    result.update({
        "video": video.name, "steps": steps, "wall_s": wall, "cpu_s": run.cpu_s,
        "steps_per_s": steps / max(wall, 1e-9),
        "best_val_qoe": run.best if run.curve else None,
        "final_val_qoe": run.curve[-1]["val_qoe"] if run.curve else None,
        "val_traces": [t.name for t in val_traces], "train_traces": len(train_traces), "reward_scale": reward_scale,
        "val_yardsticks": val_yardsticks,
        "cage": {"returncode": run.trainer.process.returncode, "timed_out": bool(outcome.get("timed_out")),
                 "isolation": _isolation(cage_dir)},
    })
    result.pop("timed_out", None)
    write_json(out_dir / "result.json", result)
    return result


def _isolation(cage_dir: Path) -> dict:
    try:
        return json.loads((cage_dir / "isolation.json").read_text())
    except (OSError, ValueError):
        return {}


def evaluate_caged(run_dir: Path, traces, video: str, mode: str, qoe: str, weights, out_dir: Path | None = None,
                   wall_s: float = 1800.0, trace_format: str = "auto"):
    """Score a trained run's ``weights`` (one file name, or a list) on ``traces``, trusted.

    The design answers levels from a caged process; the simulator and QoE run here. Returns the
    per-trace rows (a dict of rows per weights file for a list), or raises ``RuntimeError`` with the
    reason. ``out_dir`` and ``wall_s`` are kept for callers; per-step deadlines bound the time.
    """
    from simulator.traces import load_trace_dir

    run_dir = Path(run_dir)
    names = weights if isinstance(weights, list) else [weights]
    trace_list = load_trace_dir(traces, fmt=trace_format) if isinstance(traces, (str, Path)) else traces
    try:
        rows = score_weights(run_dir / "design", [run_dir / name for name in names], trace_list, video, mode, qoe)
    except ScoringError as error:
        raise RuntimeError(f"evaluating the design failed: {error}") from None
    by_name = {name: rows[Path(name).name] for name in names}
    return by_name if isinstance(weights, list) else by_name[weights]
