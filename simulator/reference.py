"""The executable specification: one player, plain Python, read top to bottom.

``abr_sim.h`` must reproduce this step by step (``tests/simulator/test_alignment.py``). Times on
the trace clock are in seconds, buffer and delay in milliseconds, exactly as Pensieve's
``sim/env.py`` keeps them, so that pensieve mode rounds the way Pensieve does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator import rng
from simulator.config import SimConfig
from simulator.layout import Layout
from simulator.traces.model import TraceSet
from simulator.video import VideoProfile

MS_PER_S = 1000.0


def level_utilities(video: VideoProfile, config: SimConfig) -> np.ndarray:
    """Per-level QoE utility: Mbps (lin), log(R / R_min) (log), or the HD reward table (hd)."""
    if config.qoe == "lin":
        return video.bitrates_kbps / 1000.0
    if config.qoe == "log":
        return np.log(video.bitrates_kbps / video.bitrates_kbps[0])
    if video.hd_reward is None:
        raise ValueError(f"video profile {video.name!r} has no hd_reward table; pick qoe 'lin' or 'log'")
    return np.asarray(video.hd_reward, dtype=np.float64)


@dataclass
class ChunkResult:
    """What fetching one chunk produced (the per-step quantities the C core also writes)."""

    level: int
    chunk_index: int
    chunk_bytes: float
    bitrate_kbps: float
    download_time_s: float
    rebuffer_s: float
    buffer_s: float
    sleep_s: float
    qoe_bitrate: float
    qoe_rebuffer: float
    qoe_smooth: float
    reward: float
    done: bool


class ReferencePlayer:
    """One simulated video player walking one throughput trace."""

    def __init__(self, traces: TraceSet, video: VideoProfile, config: SimConfig, seed: int,
                 player_index: int, trace_stride: int = 1):
        self.traces, self.video, self.config = traces, video, config
        self.player_index, self.trace_stride = player_index, trace_stride
        self.layout = Layout(config.history_len, video.n_levels)
        self.n_episode_chunks = config.chunks_per_episode(video.n_chunks)
        self.utility = level_utilities(video, config)
        self.rebuffer_penalty = config.rebuffer_penalty_for(video.bitrates_kbps[-1])
        self.pensieve = config.mode == "pensieve"
        self.seed(seed)
        self.obs = np.zeros(self.layout.size, dtype=np.float32)

    # -- randomness -----------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        self.rng_key = rng.stream_key(seed, self.player_index)
        self.rng_counter = 0
        self.episode = 0

    def _uniform(self) -> float:
        value = rng.uniform(self.rng_key, self.rng_counter)
        self.rng_counter += 1
        return value

    # -- the trace clock ------------------------------------------------------------------
    def _wrap(self) -> None:
        self.row = 1
        # Pensieve assumes every trace starts at t = 0 (quirk 6); the default mode does not.
        self.last_time_s = 0.0 if self.pensieve else self.time_s[0]

    def _advance_clock(self, idle_ms: float) -> float:
        """Let ``idle_ms`` of trace time pass with no data; returns Pensieve's residual (ms)."""
        while True:
            duration_s = self.time_s[self.row] - self.last_time_s
            if duration_s > idle_ms / MS_PER_S:
                self.last_time_s += idle_ms / MS_PER_S
                return idle_ms
            idle_ms -= duration_s * MS_PER_S
            self.last_time_s = self.time_s[self.row]
            self.row += 1
            if self.row >= len(self.bw_mbps):
                self._wrap()

    def _download_s(self, size_bytes: float, goodput_scale: float) -> float:
        """Seconds of trace time to deliver ``size_bytes``; advances the cursor (Pensieve's loop)."""
        delay_s, sent_bytes = 0.0, 0.0
        while True:
            throughput_bytes_per_s = self.bw_mbps[self.row] * 1e6 / 8.0 * goodput_scale
            duration_s = self.time_s[self.row] - self.last_time_s
            payload_bytes = throughput_bytes_per_s * duration_s * self.config.payload_factor
            if sent_bytes + payload_bytes > size_bytes:
                fractional_s = (size_bytes - sent_bytes) / throughput_bytes_per_s / self.config.payload_factor
                delay_s += fractional_s
                self.last_time_s += fractional_s
                return delay_s
            sent_bytes += payload_bytes
            delay_s += duration_s
            self.last_time_s = self.time_s[self.row]
            self.row += 1
            if self.row >= len(self.bw_mbps):
                self._wrap()

    # -- episodes -------------------------------------------------------------------------
    def reset(self) -> ChunkResult:
        """Start an episode: pick a trace and a start row, fetch chunk 0 at the default level."""
        n_traces = len(self.traces)
        if self.config.trace_order == "random":
            self.trace_index = min(int(self._uniform() * n_traces), n_traces - 1)
        else:
            self.trace_index = (self.player_index + self.episode * self.trace_stride) % n_traces
        self.episode += 1
        self.time_s, self.bw_mbps = self.traces.trace(self.trace_index)
        n_rows = len(self.bw_mbps)
        if self.config.random_start:
            self.row = 1 + min(int(self._uniform() * (n_rows - 1)), n_rows - 2)
        else:
            self.row = 1
        self.last_time_s = self.time_s[self.row - 1]
        self.buffer_ms = 0.0
        self.chunk_index = 0
        self.last_level = self.config.default_level
        self.obs[:] = 0.0
        return self.fetch(self.config.default_level)

    def fetch(self, level: int) -> ChunkResult:
        """Download the next chunk at ``level``, play out the buffer, write the observation row."""
        config = self.config
        size_bytes = float(self.video.chunk_bytes[level, self.chunk_index])
        noise = config.noise_low + (config.noise_high - config.noise_low) * self._uniform() if config.noise else 1.0

        rtt_ms = config.rtt_s * MS_PER_S
        if self.pensieve:
            # RTT and noise inflate the delay but the trace clock never sees them (quirk 5).
            delay_ms = self._download_s(size_bytes, 1.0) * MS_PER_S
            delay_ms += rtt_ms
            delay_ms *= noise
        else:
            self._advance_clock(rtt_ms)
            delay_ms = (rtt_ms / MS_PER_S + self._download_s(size_bytes, 1.0 / noise)) * MS_PER_S

        rebuffer_ms = max(delay_ms - self.buffer_ms, 0.0)
        self.buffer_ms = max(self.buffer_ms - delay_ms, 0.0) + self.video.chunk_s * MS_PER_S

        sleep_ms = 0.0
        cap_ms = config.buffer_cap_s * MS_PER_S
        if self.buffer_ms > cap_ms:
            quantum_ms = config.drain_quantum_s * MS_PER_S
            sleep_ms = math.ceil((self.buffer_ms - cap_ms) / quantum_ms) * quantum_ms
            self.buffer_ms -= sleep_ms
            residual_ms = self._advance_clock(sleep_ms)
            if self.pensieve:
                sleep_ms = residual_ms  # Pensieve reports what is left of the last row (quirk 3)

        qoe_bitrate = float(self.utility[level])
        qoe_rebuffer = self.rebuffer_penalty * rebuffer_ms / MS_PER_S
        qoe_smooth = config.smooth_penalty * abs(self.utility[level] - self.utility[self.last_level])
        result = ChunkResult(
            level=level,
            chunk_index=self.chunk_index,
            chunk_bytes=size_bytes,
            bitrate_kbps=float(self.video.bitrates_kbps[level]),
            download_time_s=delay_ms / MS_PER_S,
            rebuffer_s=rebuffer_ms / MS_PER_S,
            buffer_s=self.buffer_ms / MS_PER_S,
            sleep_s=sleep_ms / MS_PER_S,
            qoe_bitrate=qoe_bitrate,
            qoe_rebuffer=qoe_rebuffer,
            qoe_smooth=qoe_smooth,
            reward=(qoe_bitrate - qoe_rebuffer - qoe_smooth) * config.reward_scale,
            done=False,
        )
        self.last_level = level
        self.chunk_index += 1
        result.done = self.chunk_index >= self.n_episode_chunks
        self._write_obs(result)
        return result

    def _write_obs(self, result: ChunkResult) -> None:
        fields = self.layout.split(self.obs)
        newest = {
            "bitrate_kbps": result.bitrate_kbps,
            "buffer_s": result.buffer_s,
            "download_time_s": result.download_time_s,
            "chunk_bytes": result.chunk_bytes,
            "rebuffer_s": result.rebuffer_s,
            "valid": 1.0,
        }
        for name, value in newest.items():
            history = fields[name]
            history[:-1] = history[1:].copy()
            history[-1] = value
        if self.chunk_index < self.n_episode_chunks:
            fields["next_chunk_bytes"][:] = self.video.chunk_bytes[:, self.chunk_index]
        else:
            fields["next_chunk_bytes"][:] = 0.0
        fields["ladder_kbps"][:] = self.video.bitrates_kbps
        fields["chunks_left"][0] = self.n_episode_chunks - self.chunk_index
        fields["chunks_total"][0] = self.n_episode_chunks
