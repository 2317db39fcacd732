"""The NADA adapter: designs written for the LLM-ABR paper's per-player numpy prompt run here unchanged.

Such a design's ``state.py`` defines::

    state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list,
               video_chunk_size_bytes_list, next_chunk_bytes_sizes, video_chunk_remain_num,
               total_chunk_num, all_bit_rate_kbps)
        -> {"normal_states": [[...], ...], "time_series_states": [[...], ...]}

The adapter calls it once per player (row) with the last ``history_len`` (8, Pensieve's S_LEN)
history slots as lists, oldest first, zeros for chunks not played yet (Pensieve's rolling
state), then stacks the answers into features ``normal_<i>`` and ``series_<i>`` [batch, len]. As
the paper's prompt describes, ``NadaTrunk`` sends normal states to dense layers and time series
to 1-D convolutions. Per-player Python is slow and cannot be exported to ONNX; such designs
train and evaluate unchanged, and are served with ``llmabr serve``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

WIDTH = 128
KERNEL = 4


def _rows(name: str, value, row: int) -> list[list[float]]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"state_func: {name} must be a list of lists, got {type(value).__name__} (player {row})")
    rows = []
    for index, item in enumerate(value):
        vector = np.asarray(item, dtype=np.float64).reshape(-1)
        if vector.size == 0:
            raise ValueError(f"state_func: {name}[{index}] is empty (player {row})")
        rows.append(vector)
    return rows


def nada_state_fn(state_func, history_len: int = 8):
    """A batched torch state function (dict of layout fields -> features) wrapping ``state_func``."""

    def state(m: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fields = {name: value.detach().cpu().numpy().astype(np.float64) for name, value in m.items()}
        n_rows = fields["buffer_s"].shape[0]
        normals: list[list[np.ndarray]] = []
        series: list[list[np.ndarray]] = []
        for row in range(n_rows):
            out = state_func(
                fields["bitrate_kbps"][row, -history_len:].tolist(),
                fields["buffer_s"][row, -history_len:].tolist(),
                fields["download_time_s"][row, -history_len:].tolist(),
                fields["chunk_bytes"][row, -history_len:].tolist(),
                fields["next_chunk_bytes"][row].tolist(),
                int(round(fields["chunks_left"][row, 0])),
                int(round(fields["chunks_total"][row, 0])),
                fields["ladder_kbps"][row].tolist(),
            )
            if not isinstance(out, dict) or set(out) != {"normal_states", "time_series_states"}:
                raise ValueError("state_func must return {'normal_states': [...], 'time_series_states': [...]}, "
                                 f"got {type(out).__name__}" + (f" with keys {sorted(out)}" if isinstance(out, dict) else ""))
            normals.append(_rows("normal_states", out["normal_states"], row))
            series.append(_rows("time_series_states", out["time_series_states"], row))
        features = {}
        for prefix, per_row in (("normal", normals), ("series", series)):
            shapes = [tuple(len(v) for v in rows) for rows in per_row]
            if len(set(shapes)) != 1:
                raise ValueError(f"state_func: {prefix} states change shape between players: {shapes[0]} vs "
                                 f"{next(s for s in shapes if s != shapes[0])}; return the same lists for every player")
            for index in range(len(shapes[0])):
                stacked = np.stack([rows[index] for rows in per_row])
                features[f"{prefix}_{index}"] = torch.from_numpy(stacked.astype(np.float32))
        if not features:
            raise ValueError("state_func returned no states at all")
        return features

    return state


class NadaTrunk(nn.Module):
    """The paper's default network: dense layers for normal states, 1-D convolutions for time series."""

    def __init__(self, feature_dims: dict[str, int]):
        super().__init__()
        self.names = sorted(feature_dims)
        branches, merged = {}, 0
        for name in self.names:
            dims = feature_dims[name]
            if name.startswith("series_") and dims >= 2:
                kernel = min(KERNEL, dims)
                branches[name] = nn.Conv1d(1, WIDTH, kernel)
                merged += WIDTH * (dims - kernel + 1)
            else:
                branches[name] = nn.Linear(dims, WIDTH)
                merged += WIDTH
        self.branches = nn.ModuleDict(branches)
        self.merge = nn.Linear(merged, WIDTH)
        self.latent_dim = WIDTH

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for name in self.names:
            layer, value = self.branches[name], features[name]
            if isinstance(layer, nn.Conv1d):
                parts.append(torch.relu(layer(value.unsqueeze(1))).flatten(1))
            else:
                parts.append(torch.relu(layer(value)))
        return torch.relu(self.merge(torch.cat(parts, dim=1)))
