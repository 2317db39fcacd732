"""The NADA adapter: designs written for the LLM-ABR paper's per-player numpy prompt run here unchanged.

Such a design's ``state.py`` defines::

    state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list,
               video_chunk_size_bytes_list, next_chunk_bytes_sizes, video_chunk_remain_num,
               total_chunk_num, all_bit_rate_kbps)
        -> {"normal_states": [[...], ...], "time_series_states": [[...], ...]}

``NadaState`` calls it once per player (row) and stacks the answers into features ``normal_<i>``
and ``series_<i>`` [batch, len] (float32). As the paper's prompt describes, ``NadaTrunk`` sends
normal states to dense layers and time series to 1-D convolutions. What a call receives:

* the four history lists (bitrate kbps, buffer s, download time s RTT included, chunk bytes):
  the last ``history_len`` (8, Pensieve's S_LEN) chunks, oldest first, **real measurements
  only**. Designs written to that prompt divide by ``delay_second_list[-i]`` over the last 8
  entries without a guard, so slots before the first played chunk (``valid`` = 0 in the layout)
  repeat the oldest played chunk's values, in all four lists alike (a session's first row holds
  that one chunk 8 times). The simulator plays the first chunk at reset, so every row it makes
  has a played chunk. A row with none (``llmabr serve`` before a session's first chunk,
  placeholder rows) gets a nominal first chunk in every slot: the lowest level, its next-chunk
  size, fetched at exactly the lowest bitrate (download time = size x 8 / bitrate, one chunk
  duration; 4 s when that is undefined) with the buffer holding that one chunk.
* ``next_chunk_bytes_sizes`` and ``all_bit_rate_kbps``: one value per level, lowest first.
* every list element is a numpy float64 (a subclass of Python's float, so ``isinstance(x,
  float)`` holds): a division by zero gives inf with a RuntimeWarning instead of raising, and
  S1's finite check then names the feature. ``video_chunk_remain_num`` and ``total_chunk_num``
  are Python ints.
* on a row whose history is padded (fewer than ``history_len`` chunks played), a NaN in the
  answer is read as 0. The padding is ours: a spread statistic over the repeated entries is 0,
  and a design that standardizes by it (``(x - np.mean(x)) / np.std(x)``, as the paper's
  published GPT-4 design for 4G does) computes 0/0 there. 0 is what a standardizer gives a
  constant feature (scikit-learn's StandardScaler does the same). NaN on a row with a full
  history, and inf on any row, are left alone for S1's finite check to reject.

Speed: SB3 recomputes features from the raw rows on every minibatch of every epoch, and the
state function is a pure function of its row by contract, so ``NadaState`` keeps the features
of the last ``cache_rows`` distinct rows (first in, first out; the key is the bytes of the
inputs it reads): a PPO update then costs one lookup per row instead of one call. S1 empties the
cache between its determinism, batch-independence and latency runs (``cache_clear``), so a
design with hidden state or randomness is still caught. Per-player Python cannot be exported
to ONNX; such designs train and evaluate unchanged, and are served with ``llmabr serve``.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

WIDTH = 128
KERNEL = 4
HISTORY_INPUTS = ("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes")
OTHER_INPUTS = ("next_chunk_bytes", "ladder_kbps", "chunks_left", "chunks_total")
NOMINAL_CHUNK_S = 4.0  # download time and buffer of the nominal first chunk when size or bitrate is 0
CACHE_ROWS = 16_384  # about 5 rollouts of 64 players x 48 chunks; ~15 MB at 30 features per row


def _rows(name: str, value, row: int) -> list[np.ndarray]:
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"state_func: {name} must be a list of lists, got {type(value).__name__} (player {row})")
    rows = []
    for index, item in enumerate(value):
        vector = np.asarray(item, dtype=np.float64).reshape(-1)
        if vector.size == 0:
            raise ValueError(f"state_func: {name}[{index}] is empty (player {row})")
        rows.append(vector)
    return rows


def history_inputs(fields: dict[str, np.ndarray], history_len: int = 8) -> np.ndarray:
    """The four history lists of every row as float64 [batch, 4, history_len] (HISTORY_INPUTS order),
    slots before the first played chunk filled as the module docstring says."""
    window = np.stack([np.asarray(fields[name][:, -history_len:], dtype=np.float64) for name in HISTORY_INPUTS], axis=1)
    played = np.asarray(fields["valid"][:, -history_len:]) > 0.5
    any_played = played.any(axis=1)
    oldest = np.where(any_played, played.argmax(axis=1), 0)
    slots = np.maximum(np.arange(history_len)[None, :], oldest[:, None])
    filled = np.take_along_axis(window, slots[:, None, :], axis=2)
    if not any_played.all():
        empty = ~any_played
        bitrate_kbps = np.asarray(fields["ladder_kbps"][empty, 0], dtype=np.float64)
        chunk_bytes = np.asarray(fields["next_chunk_bytes"][empty, 0], dtype=np.float64)
        chunk_bytes = np.where(chunk_bytes > 0, chunk_bytes, bitrate_kbps * 1000.0 / 8.0 * NOMINAL_CHUNK_S)
        rate_bytes_per_s = bitrate_kbps * 1000.0 / 8.0
        chunk_s = np.where((rate_bytes_per_s > 0) & (chunk_bytes > 0),
                           chunk_bytes / np.where(rate_bytes_per_s > 0, rate_bytes_per_s, 1.0), NOMINAL_CHUNK_S)
        nominal = np.stack([bitrate_kbps, chunk_s, chunk_s, chunk_bytes], axis=1)  # HISTORY_INPUTS order
        filled[empty] = nominal[:, :, None]
    return filled


class NadaState:
    """A batched torch state function (dict of layout fields -> features) wrapping ``state_func``."""

    def __init__(self, state_func, history_len: int = 8, cache_rows: int = CACHE_ROWS):
        self.state_func, self.history_len, self.cache_rows = state_func, history_len, cache_rows
        self._cache: OrderedDict[bytes, tuple[tuple[int, ...], tuple[int, ...], np.ndarray]] = OrderedDict()
        self.calls = 0  # state_func calls so far (the cache's misses)

    def cache_clear(self) -> None:
        self._cache.clear()

    def _keys(self, fields: dict[str, np.ndarray]) -> list[bytes]:
        width = self.history_len
        parts = [fields[name][:, -width:] for name in (*HISTORY_INPUTS, "valid")]
        parts += [fields[name] for name in OTHER_INPUTS]
        rows = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
        return rows.view(np.dtype((np.void, rows.shape[1] * 4))).ravel().tolist()

    def _compute(self, fields: dict[str, np.ndarray], rows: list[int]):
        picked = {name: fields[name][rows] for name in (*HISTORY_INPUTS, "valid", *OTHER_INPUTS)}
        history = history_inputs(picked, self.history_len)
        next_bytes = picked["next_chunk_bytes"].astype(np.float64)
        ladder_kbps = picked["ladder_kbps"].astype(np.float64)
        left = np.rint(picked["chunks_left"][:, 0]).astype(np.int64).tolist()
        total = np.rint(picked["chunks_total"][:, 0]).astype(np.int64).tolist()
        # Rows whose history slots are partly padding (see the module docstring: NaN read as 0).
        padded = ~(np.asarray(picked["valid"][:, -self.history_len:]) > 0.5).all(axis=1)
        for index, row in enumerate(rows):
            lists = history[index]
            # 0/0 on padding is read as 0 below, so numpy's "invalid value" warning is not raised for it.
            with np.errstate(invalid="ignore") if padded[index] else contextlib.nullcontext():
                out = self.state_func(list(lists[0]), list(lists[1]), list(lists[2]), list(lists[3]),
                                      list(next_bytes[index]), left[index], total[index], list(ladder_kbps[index]))
            self.calls += 1
            if not isinstance(out, dict) or set(out) != {"normal_states", "time_series_states"}:
                keys = f" with keys {sorted(out)}" if isinstance(out, dict) else ""
                raise ValueError("state_func must return {'normal_states': [...], 'time_series_states': [...]}, "
                                 f"got {type(out).__name__}{keys}")
            normals = _rows("normal_states", out["normal_states"], row)
            series = _rows("time_series_states", out["time_series_states"], row)
            if not normals and not series:
                raise ValueError("state_func returned no states at all")
            values = np.concatenate(normals + series).astype(np.float32)
            if padded[index]:
                values[np.isnan(values)] = 0.0
            yield row, (tuple(v.size for v in normals), tuple(v.size for v in series), values)

    def __call__(self, m: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fields = {name: m[name].detach().cpu().numpy() for name in (*HISTORY_INPUTS, "valid", *OTHER_INPUTS)}
        keys = self._keys(fields)
        cache = self._cache
        answers = [cache.get(key) for key in keys]
        missing: dict[bytes, int] = {}  # each distinct row once
        for row, answer in enumerate(answers):
            if answer is None:
                missing.setdefault(keys[row], row)
        if missing:
            computed = dict(self._compute(fields, list(missing.values())))
            for row, answer in enumerate(answers):
                if answer is None:
                    answers[row] = computed[missing[keys[row]]]
            if self.cache_rows > 0:
                for key, row in missing.items():
                    cache[key] = computed[row]
                while len(cache) > self.cache_rows:
                    cache.popitem(last=False)
        normal_dims, series_dims = answers[0][0], answers[0][1]
        for prefix, position, dims in (("normal", 0, normal_dims), ("series", 1, series_dims)):
            other = next((answer[position] for answer in answers if answer[position] != dims), None)
            if other is not None:
                raise ValueError(f"state_func: {prefix} states change shape between players: {dims} vs {other}; "
                                 "return the same lists for every player")
        stacked = torch.from_numpy(np.stack([answer[2] for answer in answers]))
        widths = [*normal_dims, *series_dims]
        names = [f"normal_{i}" for i in range(len(normal_dims))] + [f"series_{i}" for i in range(len(series_dims))]
        return {name: part.contiguous() for name, part in zip(names, torch.split(stacked, widths, dim=1))}


def nada_state_fn(state_func, history_len: int = 8, cache_rows: int = CACHE_ROWS) -> NadaState:
    """A batched torch state function (dict of layout fields -> features) wrapping ``state_func``."""
    return NadaState(state_func, history_len, cache_rows)


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
