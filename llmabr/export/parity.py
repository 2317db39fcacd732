"""Rows to compare an exported graph with its torch policy on, the comparison, and ONNX decision latency.

Trusted code only: the simulator and the heuristic baselines record measurement rows here; the
design's torch logits on them come from the cage (``llmabr.export.export_entry``).
"""

from __future__ import annotations

import os
import time

import numpy as np

from simulator.baselines import make_baseline
from simulator.baselines.protocol import run_test_protocol
from simulator.config import SimConfig
from simulator.layout import Layout
from simulator.traces import SYNTH_TYPES, generate
from simulator.video import VideoProfile

# A float64 graph must match the torch policy computed in float64 within LOGIT_TOLERANCE absolute
# (measured: 0 difference after both round to float32). A float32 graph cannot promise that: a
# trained policy's logits reach 50-130, where float32's own rounding in a 2048-wide product moves
# them by 1-2e-5 (torch float32 vs torch float64 on runs/quality7/broadband-s0: 1.8e-5), so a design
# that only runs in float32 is held to LOGIT_TOLERANCE x max(1, |logit|) and says so. A graph that
# computes something else misses by orders of magnitude more either way.
LOGIT_TOLERANCE = 1e-5
RECORD_BASELINES = ("bb", "robustmpc")


class _Recorder:
    """A baseline that keeps every row it is asked to decide on."""

    def __init__(self, baseline):
        self.baseline, self.name, self.rows = baseline, baseline.name, []

    def reset(self, mask=None) -> None:
        self.baseline.reset(mask)

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.rows.append(np.array(obs, dtype=np.float32, copy=True))
        return self.baseline.act(obs)


def recorded_rows(video: VideoProfile, network: str, mode: str, n_traces: int = 4, seed: int = 7,
                  history_len: int = SimConfig().history_len) -> np.ndarray:
    """Rows the simulator produced while BB and RobustMPC played ``n_traces`` synthetic traces
    of ``network`` (broadband when it is not a synthetic type) on the test protocol."""
    traces = generate(network if network in SYNTH_TYPES else "broadband", n_traces, seed=seed)
    layout = Layout(history_len, video.n_levels)
    rows = []
    for name in RECORD_BASELINES:
        recorder = _Recorder(make_baseline(name, video, layout))
        run_test_protocol(recorder, traces, video, mode=mode)
        rows.extend(recorder.rows)
    return np.concatenate(rows, axis=0)


def random_rows(video: VideoProfile, chunks_total: int, n_rows: int, seed: int = 11,
                history_len: int = SimConfig().history_len) -> np.ndarray:
    """Valid rows the simulator rarely visits: any number of played chunks (0 included, the first
    decision of a served session), random levels, buffers, stalls and download times."""
    rng = np.random.default_rng(seed)
    layout = Layout(history_len, video.n_levels)
    ladder_kbps = np.asarray(video.bitrates_kbps, dtype=np.float64)
    nominal_bytes = ladder_kbps * 1000.0 / 8.0 * video.chunk_s
    rows = np.zeros((n_rows, layout.size), dtype=np.float32)
    fields = layout.split(rows)
    for index in range(n_rows):
        played = int(rng.integers(0, min(history_len, chunks_total) + 1))
        if played:
            levels = rng.integers(0, video.n_levels, played)
            chunk_bytes = nominal_bytes[levels] * rng.uniform(0.7, 1.3, played)
            download_s = 0.08 + chunk_bytes * 8.0 / 1e6 / rng.uniform(0.2, 20.0, played)
            stalls = np.where(rng.random(played) < 0.2, rng.uniform(0.0, 8.0, played), 0.0)
            slots = slice(history_len - played, history_len)
            fields["bitrate_kbps"][index, slots] = ladder_kbps[levels]
            fields["buffer_s"][index, slots] = rng.uniform(0.0, 60.0, played)
            fields["download_time_s"][index, slots] = download_s
            fields["chunk_bytes"][index, slots] = chunk_bytes
            fields["rebuffer_s"][index, slots] = stalls
            fields["valid"][index, slots] = 1.0
        left = int(rng.integers(0, chunks_total + 1))
        fields["next_chunk_bytes"][index] = nominal_bytes * rng.uniform(0.7, 1.3, video.n_levels) if left else 0.0
        fields["ladder_kbps"][index] = ladder_kbps
        fields["chunks_left"][index] = left
        fields["chunks_total"][index] = chunks_total
    return rows


def onnx_session(path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads (1: the latency a player sees
    on one core, and no thread pool fighting the server's other work)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(session, rows: np.ndarray, torch_logits: np.ndarray, relative: bool = False) -> dict:
    """Max |logit difference| and argmax agreement between onnxruntime and torch on ``rows``,
    in one batch and row by row (the server and the browser decide one row at a time).

    Passes when every |onnx - torch| <= LOGIT_TOLERANCE (``relative``: x max(1, |torch logit|)),
    every argmax agrees and everything is finite."""
    batch = session.run(["logits"], {"obs": rows})[0]
    single_step = max(1, len(rows) // 64)
    singles = np.stack([session.run(["logits"], {"obs": rows[i:i + 1]})[0][0] for i in range(0, len(rows), single_step)])
    expected_singles = torch_logits[::single_step]
    batch_diff = np.abs(batch.astype(np.float64) - torch_logits)
    single_diff = np.abs(singles.astype(np.float64) - expected_singles)
    scaled = max(float(np.max(batch_diff / np.maximum(1.0, np.abs(torch_logits)))),
                 float(np.max(single_diff / np.maximum(1.0, np.abs(expected_singles)))))
    mismatched = int(np.sum(batch.argmax(axis=1) != torch_logits.argmax(axis=1)))
    mismatched += int(np.sum(singles.argmax(axis=1) != expected_singles.argmax(axis=1)))
    finite = bool(np.all(np.isfinite(batch)) and np.all(np.isfinite(torch_logits)))
    max_abs = float(max(batch_diff.max(), single_diff.max()))
    return {
        "rows": int(len(rows)), "rows_single": int(len(singles)),
        "max_abs_logit_diff": max_abs,
        "max_abs_logit_diff_batch": float(batch_diff.max()), "max_abs_logit_diff_single": float(single_diff.max()),
        "max_scaled_logit_diff": scaled, "argmax_mismatches": mismatched,
        "logit_abs_max": float(np.max(np.abs(torch_logits))), "finite": finite,
        "tolerance": LOGIT_TOLERANCE,
        "criterion": ("|onnx - torch| <= tolerance x max(1, |torch logit|), same argmax" if relative
                      else "|onnx - torch| <= tolerance, same argmax"),
        "passed": finite and mismatched == 0 and (scaled if relative else max_abs) <= LOGIT_TOLERANCE,
    }


def decision_latency(session, row: np.ndarray, n_runs: int = 2000, warmup: int = 100) -> dict:
    """Median and p99 wall time of one single-row ``session.run`` in microseconds."""
    feed = {"obs": np.ascontiguousarray(row.reshape(1, -1), dtype=np.float32)}
    for _ in range(warmup):
        session.run(["logits"], feed)
    samples_us = np.empty(n_runs)
    for index in range(n_runs):
        start = time.perf_counter_ns()
        session.run(["logits"], feed)
        samples_us[index] = (time.perf_counter_ns() - start) / 1000.0
    # The load average says how far p99 is from an idle machine's (other jobs preempt this thread).
    return {"median_us": float(np.median(samples_us)), "p99_us": float(np.percentile(samples_us, 99)),
            "runs": n_runs, "threads": 1, "load_average_1min": float(os.getloadavg()[0]), "cpus": os.cpu_count()}
