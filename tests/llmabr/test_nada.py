"""The NADA adapter: a per-player numpy state_func written to the paper's signature trains unchanged."""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import PPO

from llmabr.design.compose import DesignPolicy, policy_kwargs
from llmabr.design.format import Design
from llmabr.design.loader import load_modules
from llmabr.sandbox.static import check_design_sources
from simulator.envs import AbrSB3VecEnv

NADA_STATE = '''
import numpy as np


def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    top_kbps = max(all_bit_rate_kbps)
    delays = np.array(delay_second_list)
    sizes = np.array(video_chunk_size_bytes_list)
    safe_delays = np.where(delays > 0, delays, 1.0)
    throughput_mbps = np.where(delays > 0, sizes * 8.0 / safe_delays / 1e6, 0.0)
    return {
        "normal_states": [
            [bit_rate_kbps_list[-1] / top_kbps],
            [buffer_size_second_list[-1] / 10.0],
            [video_chunk_remain_num / total_chunk_num],
        ],
        "time_series_states": [
            list(throughput_mbps / (top_kbps / 1000.0)),
            list(delays / 10.0),
            [size / 1e6 for size in next_chunk_bytes_sizes],
        ],
    }
'''


def test_nada_design_passes_s0_and_is_flagged_not_exportable():
    assert check_design_sources(NADA_STATE, None, "nada").passed
    loaded = load_modules(Design(name="nada", state_source=NADA_STATE, kind="nada"))
    assert loaded.kind == "nada" and not loaded.exportable


def test_adapter_matches_a_manual_per_player_call():
    env = AbrSB3VecEnv(3, traces="3g", video="envivio-synth", info_keys=())
    obs = env.reset()
    for _ in range(5):
        obs, *_ = env.step(np.array([1, 3, 5]))
    loaded = load_modules(Design(name="nada", state_source=NADA_STATE, kind="nada"))
    fields = env.layout.split(obs)
    features = loaded.state_fn({name: torch.from_numpy(value.copy()) for name, value in fields.items()})
    assert sorted(features) == ["normal_0", "normal_1", "normal_2", "series_0", "series_1", "series_2"]
    namespace = {}
    exec(NADA_STATE, namespace)  # our own test code
    for row in range(3):
        manual = namespace["state_func"](
            fields["bitrate_kbps"][row, -8:].tolist(), fields["buffer_s"][row, -8:].tolist(),
            fields["download_time_s"][row, -8:].tolist(), fields["chunk_bytes"][row, -8:].tolist(),
            fields["next_chunk_bytes"][row].tolist(), int(fields["chunks_left"][row, 0]),
            int(fields["chunks_total"][row, 0]), fields["ladder_kbps"][row].tolist())
        np.testing.assert_allclose(features["normal_1"][row].numpy(), manual["normal_states"][1], rtol=1e-6)
        np.testing.assert_allclose(features["series_0"][row].numpy(), manual["time_series_states"][0], rtol=1e-5)
    assert features["series_0"].shape == (3, 8) and features["series_2"].shape == (3, 6)


def test_nada_design_trains_with_ppo():
    loaded = load_modules(Design(name="nada", state_source=NADA_STATE, kind="nada"))
    env = AbrSB3VecEnv(2, traces="broadband", video="envivio-synth", info_keys=())
    model = PPO(DesignPolicy, env, n_steps=48, batch_size=48, n_epochs=1, seed=0, device="cpu",
                policy_kwargs=policy_kwargs(loaded, env.layout))
    model.learn(96)
    assert model.num_timesteps >= 96


def test_bad_return_values_get_clear_errors():
    import pytest

    bad = NADA_STATE.replace('"time_series_states"', '"series"')
    loaded = load_modules(Design(name="bad", state_source=bad, kind="nada"))
    with pytest.raises(ValueError, match="must return"):
        loaded.state_fn({name: torch.ones(2, size) for name, size in
                         [("bitrate_kbps", 16), ("buffer_s", 16), ("download_time_s", 16), ("chunk_bytes", 16),
                          ("next_chunk_bytes", 6), ("chunks_left", 1), ("chunks_total", 1), ("ladder_kbps", 6)]})
