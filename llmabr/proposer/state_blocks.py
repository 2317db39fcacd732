"""Building blocks of state functions: each block is source code adding one normalized feature.

A state genome is ``{"history": H, "throughput_scale": "ratio" | "log", "features": [names]}``;
``state_source(genome)`` writes a complete, commented ``state.py`` from it. Every block reads
only the variables the preamble defines, uses batched torch on whole tensors (exportable to
ONNX, no per-row Python), and scales its output into about [-1, 1] (throughputs are expressed
in units of the top ladder bitrate, times in tens of seconds).

``AFFINITY`` says which trace signals (``TraceProfile.signals``: variability, stability, outage,
constrained, headroom, spread) make a block, a history length or a throughput scale more likely
to be proposed; the offline proposer turns it into weights (``1 + sum(gain * signal)``).
"""

from __future__ import annotations

PREAMBLE = '''"""{doc}"""

import torch

HISTORY = {history}  # chunks of history this state looks at
CHUNK_S = 4.0  # seconds of video per chunk


def state(m):
    top_kbps = m["ladder_kbps"][:, -1:]
    top_bytes_per_s = top_kbps * 125.0  # kbps -> bytes/s
    valid = m["valid"][:, -HISTORY:]
    count = valid.sum(dim=1, keepdim=True).clamp(min=1.0)
    download_s = m["download_time_s"][:, -HISTORY:]
    safe_download_s = torch.where(valid > 0, download_s, torch.ones_like(download_s))
    # throughput of each past chunk in units of the top bitrate (0 where the slot is empty)
    throughput_top = m["chunk_bytes"][:, -HISTORY:] / safe_download_s * valid / top_bytes_per_s
    throughput_mean_top = throughput_top.sum(dim=1, keepdim=True) / count
    inverse_sum = (valid / throughput_top.clamp(min=1e-3)).sum(dim=1, keepdim=True)
    throughput_harmonic_top = torch.where(valid.sum(dim=1, keepdim=True) > 0, count / inverse_sum.clamp(min=1e-6),
                                          torch.zeros_like(count)).clamp(max=20.0)
    buffer_s = m["buffer_s"][:, -HISTORY:]
    features = {{}}
'''

# name -> (code lines, one-line description). Code may use the preamble's variables.
BLOCKS: dict[str, tuple[str, str]] = {
    "last_bitrate": ('features["last_bitrate"] = m["bitrate_kbps"][:, -1:] / top_kbps',
                     "bitrate of the newest chunk / top bitrate"),
    "bitrate_history": ('features["bitrate_history"] = m["bitrate_kbps"][:, -HISTORY:] / top_kbps',
                        "bitrates of the last chunks / top bitrate"),
    "bitrate_changes": ('bitrate_top = m["bitrate_kbps"][:, -HISTORY:] / top_kbps\n'
                        'features["bitrate_changes"] = (bitrate_top[:, 1:] - bitrate_top[:, :-1]) * valid[:, :-1]',
                        "bitrate steps between consecutive chunks (smoothness)"),
    "buffer": ('features["buffer"] = buffer_s[:, -1:] / 10.0', "buffer now, tens of seconds"),
    "buffer_history": ('features["buffer_history"] = buffer_s / 10.0', "buffer after each past chunk, tens of seconds"),
    "buffer_trend": ('features["buffer_trend"] = ((buffer_s[:, -1:] - buffer_s[:, -4:-3]) / 10.0).clamp(-3.0, 3.0)',
                     "buffer change over the last 3 chunks"),
    "rebuffer_recent": ('features["rebuffer_recent"] = (m["rebuffer_s"][:, -HISTORY:].sum(dim=1, keepdim=True) / 10.0).clamp(max=3.0)',
                        "stall seconds in the window / 10"),
    "throughput": ('features["throughput"] = {throughput}', "throughput of each past chunk"),
    "throughput_mean": ('features["throughput_mean"] = {scale_mean}', "mean throughput over the window"),
    "throughput_harmonic": ('features["throughput_harmonic"] = {scale_harmonic}', "harmonic-mean throughput (robust to spikes)"),
    "throughput_ema": ('ema = throughput_top[:, :1]\n'
                       'for step in range(1, HISTORY):  # over time steps, not rows: stays batched\n'
                       '    sample = throughput_top[:, step:step + 1]\n'
                       '    ema = torch.where(valid[:, step:step + 1] > 0, 0.3 * sample + 0.7 * ema, ema)\n'
                       'features["throughput_ema"] = torch.log1p(ema)',
                       "exponential moving average of throughput (alpha 0.3), log1p"),
    "throughput_std": ('spread = (((throughput_top - throughput_mean_top) * valid) ** 2).sum(dim=1, keepdim=True) / count\n'
                       'features["throughput_std"] = torch.log1p(spread.sqrt())',
                       "throughput standard deviation, log1p"),
    "throughput_trend": ('features["throughput_trend"] = torch.tanh(throughput_top[:, -1:] - throughput_mean_top)',
                         "newest throughput minus the window mean, tanh"),
    "throughput_percentiles": ('filled = torch.where(valid > 0, throughput_top, throughput_mean_top)\n'
                               'ordered = torch.sort(filled, dim=1).values\n'
                               'picks = [int(q * (HISTORY - 1)) for q in (0.1, 0.5, 0.9)]\n'
                               'features["throughput_percentiles"] = torch.log1p(ordered[:, picks])',
                               "10th, 50th, 90th throughput percentiles over the window, log1p"),
    "download_time": ('features["download_time"] = (download_s / 10.0).clamp(max=10.0)',
                      "download time of each past chunk, tens of seconds"),
    "next_sizes": ('features["next_sizes"] = m["next_chunk_bytes"] / (top_bytes_per_s * CHUNK_S)',
                   "next chunk size per level / a top-bitrate chunk"),
    "size_ratios": ('features["size_ratios"] = m["next_chunk_bytes"] / m["next_chunk_bytes"][:, -1:].clamp(min=1.0)',
                    "next chunk size per level / its top-level size"),
    "predicted_download": ('predicted_s = m["next_chunk_bytes"] / (throughput_harmonic_top.clamp(min=1e-2) * top_bytes_per_s)\n'
                           'features["predicted_download"] = (predicted_s / 10.0).clamp(max=5.0)',
                           "next chunk's download time per level at the harmonic-mean throughput, tens of seconds"),
    "buffer_margin": ('margin_s = buffer_s[:, -1:] - m["next_chunk_bytes"] / (throughput_harmonic_top.clamp(min=1e-2) * top_bytes_per_s)\n'
                      'features["buffer_margin"] = (margin_s / 10.0).clamp(-5.0, 5.0)',
                      "buffer left after fetching the next chunk at each level, tens of seconds"),
    "chunks_left": ('features["chunks_left"] = m["chunks_left"] / m["chunks_total"].clamp(min=1.0)',
                    "share of the video still to fetch"),
}

THROUGHPUT_SCALES = {
    "ratio": ("throughput_top", "throughput_mean_top", "throughput_harmonic_top"),
    "log": ("torch.log1p(throughput_top)", "torch.log1p(throughput_mean_top)", "torch.log1p(throughput_harmonic_top)"),
}

# Pensieve's state (designs/pensieve), as a genome.
SEED_STATE = {"history": 8, "throughput_scale": "ratio",
              "features": ["last_bitrate", "buffer", "throughput", "download_time", "next_sizes", "chunks_left"]}
HISTORIES = (4, 6, 8, 12, 16)

# Priors, not measurements: each line says why a trace signal should favour a block. A block
# absent here keeps weight 1 everywhere. The benchmark (experiments/offline_evolve.py) tests the
# whole bias, not each gain.
AFFINITY: dict[str, dict[str, float]] = {
    # robust throughput estimates where throughput jumps (MPC and FESTIVE use the harmonic mean)
    "throughput_harmonic": {"variability": 2.0},
    "throughput_std": {"variability": 2.0},
    "throughput_percentiles": {"variability": 1.5, "outage": 1.0, "spread": 0.5},  # the 10th percentile sees dips
    # where throughput is steady, the latest sample and its smoothed value predict the next one
    "throughput_ema": {"stability": 1.0},
    "throughput_trend": {"stability": 1.0},
    # below the lowest rung the buffer drains whatever the level: stall-risk signals
    "rebuffer_recent": {"outage": 2.0},
    "buffer_trend": {"outage": 1.5, "variability": 0.5},
    "buffer_history": {"outage": 1.0},
    "download_time": {"outage": 1.0},
    "buffer": {"outage": 0.5, "headroom": 0.5},
    "buffer_margin": {"constrained": 1.0, "outage": 1.0, "variability": 1.0},
    # a constrained ladder makes the level choice itself the problem: per-level costs, switching
    "predicted_download": {"constrained": 1.0, "variability": 0.5},
    "size_ratios": {"constrained": 1.0},
    "next_sizes": {"constrained": 0.5},
    "bitrate_changes": {"constrained": 1.0},
    "bitrate_history": {"constrained": 0.5},
    # with headroom the policy mostly holds the top rung: where it is now matters most
    "last_bitrate": {"headroom": 1.0},
}
# Longer windows average out variable throughput; short ones react faster where it is steady:
# weight(H) = exp(tilt * (H - 8) / 8) with tilt = HISTORY_TILT * (variability - 0.4).
HISTORY_TILT = 2.0
# Log scale where throughput spans orders of magnitude or sits far above the ladder; ratio
# (linear, about [0, 1]) where the ladder constrains it.
SCALE_AFFINITY = {"log": {"spread": 3.0, "headroom": 1.0}, "ratio": {"constrained": 1.0}}


def validate_state(genome: dict) -> None:
    unknown = [name for name in genome["features"] if name not in BLOCKS]
    if unknown or not genome["features"]:
        raise ValueError(f"unknown or no state blocks: {unknown}")
    if genome["history"] not in HISTORIES or genome["throughput_scale"] not in THROUGHPUT_SCALES:
        raise ValueError(f"bad state genome {genome}")


def state_source(genome: dict, title: str = "") -> str:
    validate_state(genome)
    throughput, mean, harmonic = THROUGHPUT_SCALES[genome["throughput_scale"]]
    features = sorted(genome["features"], key=list(BLOCKS).index)  # a canonical order: same genome, same code
    lines = [f"- {name}: {BLOCKS[name][1]}" for name in features]
    doc = (f"{title or 'State'} (offline proposer).\n\nFeatures, each a float32 tensor [batch, d] in about [-1, 1] "
           f"(throughput in units of the top ladder bitrate, {genome['throughput_scale']} scale):\n\n" + "\n".join(lines) + "\n")
    body = [PREAMBLE.format(doc=doc, history=genome["history"])]
    for name in features:
        code = BLOCKS[name][0].format(throughput=throughput, scale_mean=mean, scale_harmonic=harmonic)
        body.append("".join(f"    {line}\n" for line in code.splitlines()))
    body.append("    return features\n")
    return "".join(body)
