"""Hostile and broken designs that pass S0 (nothing forbidden is named) and must fail S1.

Each case: (id, state source, net source or None for GOOD_NET, expected S1 check, reason fragment).
The check is the one that must fail; for work the cage kills, it is the check that was running.
"""

GOOD_STATE = '''
import torch


def state(m):
    top_kbps = m["ladder_kbps"][:, -1:]
    return {
        "last_bitrate": m["bitrate_kbps"][:, -1:] / top_kbps,
        "buffer": m["buffer_s"][:, -1:] / 10.0,
        "left": m["chunks_left"] / m["chunks_total"],
    }
'''

GOOD_NET = '''
import torch
from torch import nn


class Trunk(nn.Module):
    def __init__(self, feature_dims):
        super().__init__()
        self.names = sorted(feature_dims)
        self.body = nn.Sequential(nn.Linear(sum(feature_dims.values()), 64), nn.ReLU())
        self.latent_dim = 64

    def forward(self, features):
        return self.body(torch.cat([features[name] for name in self.names], dim=1))
'''


def _state(body: str) -> str:
    return "import torch\nimport math\n\n\ndef state(m):\n" + body


S1_CASES = [
    ("infinite_loop", _state("    while True:\n        pass\n"), None, "features", "deadline"),
    ("busy_counter", _state("    n = 0\n    while n >= 0:\n        n += 1\n    return {}\n"), None, "features", "deadline"),
    ("deep_recursion", _state("    def down(k):\n        return down(k + 1)\n    return down(0)\n"), None,
     "features", "RecursionError"),
    ("memory_bomb", _state("    blocks = []\n    while True:\n        blocks.append(torch.ones(1 << 28))\n"), None,
     "features", "can't allocate memory"),  # torch's allocator, at the cage's address-space limit
    ("giant_tensor", _state("    return {'x': torch.zeros(1 << 40)}\n"), None, "features", "raised"),
    ("nan_output", _state("    return {'x': torch.log(m['rebuffer_s'][:, -1:] * 0.0)}\n"), None, "finite", "NaN or inf"),
    ("division_by_unplayed_slot",  # innocent-looking: throughput over the history, unguarded
     _state("    rate = m['chunk_bytes'] / m['download_time_s'] / 1e6\n    return {'rate': rate}\n"), None,
     "finite", "guard divisions"),
    ("one_dimensional", _state("    return {'buffer': m['buffer_s'][:, -1] / 10.0}\n"), None, "features", "shape"),
    ("wrong_batch", _state("    return {'buffer': m['buffer_s'][:1, -1:] / 10.0}\n"), None, "features", "shape"),
    ("returns_list", _state("    return [m['buffer_s'][:, -1:] / 10.0]\n"), None, "features", "dict"),
    ("returns_numpy_like_float64", _state("    return {'buffer': m['buffer_s'][:, -1:].double() / 10.0}\n"), None,
     "features", "float32"),
    ("empty_dict", _state("    return {}\n"), None, "features", "non-empty"),
    ("bad_feature_name", _state("    return {'buffer level': m['buffer_s'][:, -1:] / 10.0}\n"), None,
     "features", "identifiers"),
    ("batch_mean_normalization",  # looks like sensible standardization, couples the batch
     _state("    b = m['buffer_s'][:, -1:]\n    return {'buffer': (b - b.mean(dim=0)) / (b.std(dim=0) + 1.0)}\n"),
     None, "batch_independence", "batch"),
    ("batch_max_scaling", _state("    t = m['download_time_s']\n    return {'t': t / (t.max() + 1e-6)}\n"), None,
     "batch_independence", "batch"),
    ("raw_bytes", _state("    return {'next_sizes': m['next_chunk_bytes']}\n"), None, "normalization", "raw kbps or bytes"),
    ("raw_kbps", _state("    return {'last': m['bitrate_kbps'][:, -1:], 'buffer': m['buffer_s'][:, -1:] / 10}\n"), None,
     "normalization", "not normalized"),
    ("random_noise", _state("    b = m['buffer_s'][:, -1:] / 10.0\n    return {'b': b + 0.01 * torch.rand_like(b)}\n"), None,
     "determinism", "randomness"),
    ("error_in_state", _state("    return {'b': m['no_such_field'][:, -1:]}\n"), None, "features", "KeyError"),
    ("huge_trunk", GOOD_STATE, GOOD_NET.replace("nn.Linear(sum(feature_dims.values()), 64), nn.ReLU()",
                                                "nn.Linear(sum(feature_dims.values()), 4096), nn.ReLU(), "
                                                "nn.Linear(4096, 4096), nn.ReLU()").replace(
        "self.latent_dim = 64", "self.latent_dim = 4096"), "parameters", "exceed the cap"),
    ("trunk_wrong_latent", GOOD_STATE, GOOD_NET.replace("self.latent_dim = 64", "self.latent_dim = 32"),
     "trunk", "latent_dim=32"),
    ("trunk_nan", GOOD_STATE, GOOD_NET.replace(
        "return self.body(torch.cat([features[name] for name in self.names], dim=1))",
        "return self.body(torch.cat([features[name] for name in self.names], dim=1)) * float('nan')"),
     "trunk", "NaN"),
    ("trunk_init_crash", GOOD_STATE, GOOD_NET.replace("self.latent_dim = 64", "self.latent_dim = 64 // 0"),
     "trunk", "ZeroDivisionError"),
    ("slow_per_row_loop",  # innocent-looking per-player loop: correct, but far too slow
     _state("    rows = []\n    for i in range(m['buffer_s'].shape[0]):\n"
            "        acc = torch.zeros(1)\n        for _ in range(400):\n"
            "            acc = acc + m['buffer_s'][i, -1:] / 4000.0\n        rows.append(acc)\n"
            "    return {'b': torch.stack(rows)}\n"), None, "latency", "too slow"),
]


def _nada(body: str) -> str:
    from tests.llmabr.hostile.s0_cases import NADA_SIGNATURE

    return "import numpy as np\n\nSEEN = []\n\n\n" + NADA_SIGNATURE + body


# NADA (paper-prompt) designs: the adapter caches features per row, and S1 still catches a state
# function that is not a pure function of its row, because each check starts from an empty cache.
NADA_S1_CASES = [
    ("nada_random_noise", _nada("    noise = np.random.rand() * 0.01\n"
                                "    return {'normal_states': [[buffer_size_second_list[-1] / 10.0 + noise]], "
                                "'time_series_states': [[d / 10.0 for d in delay_second_list]]}\n"),
     None, "determinism", "randomness"),
    ("nada_hidden_state", _nada("    SEEN.append(1)\n"
                                "    return {'normal_states': [[len(SEEN) / 1e4]], "
                                "'time_series_states': [[d / 10.0 for d in delay_second_list]]}\n"),
     None, "determinism", "differ between two calls"),
]
