"""The NADA adapter: a per-player numpy state_func written to the paper's signature trains unchanged."""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import PPO

from llmabr.design.compose import DesignPolicy, policy_kwargs
from llmabr.design.format import Design
from llmabr.design.loader import load_modules
from llmabr.design.nada import NadaState
from llmabr.sandbox.static import check_design_sources
from simulator.envs import AbrSB3VecEnv
from tests.conftest import assert_ppo_learned

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


def played_history(values: np.ndarray, valid: np.ndarray) -> list[float]:
    """The adapter's contract, written out: the last 8 slots, those before the first played chunk
    repeating the oldest played one."""
    values, played = values[-8:], np.flatnonzero(valid[-8:] > 0)
    return [float(values[max(slot, played[0])]) for slot in range(8)]


def test_adapter_matches_a_manual_per_player_call():
    env = AbrSB3VecEnv(3, traces="3g", video="envivio-synth", info_keys=())
    obs = env.reset()
    for _ in range(5):
        obs, *_ = env.step(np.array([1, 3, 5]))
    loaded = load_modules(Design(name="nada", state_source=NADA_STATE, kind="nada"))
    fields = env.layout.split(obs)
    assert (fields["valid"][:, -8:].sum(axis=1) == 6).all()  # 6 chunks played: two slots filled
    features = loaded.state_fn({name: torch.from_numpy(value.copy()) for name, value in fields.items()})
    assert sorted(features) == ["normal_0", "normal_1", "normal_2", "series_0", "series_1", "series_2"]
    namespace = {}
    exec(NADA_STATE, namespace)  # our own test code
    compared = set()
    for row in range(3):
        valid = fields["valid"][row]
        manual = namespace["state_func"](
            played_history(fields["bitrate_kbps"][row], valid), played_history(fields["buffer_s"][row], valid),
            played_history(fields["download_time_s"][row], valid), played_history(fields["chunk_bytes"][row], valid),
            fields["next_chunk_bytes"][row].tolist(), int(fields["chunks_left"][row, 0]),
            int(fields["chunks_total"][row, 0]), fields["ladder_kbps"][row].tolist())
        for prefix, key in (("normal", "normal_states"), ("series", "time_series_states")):
            for index, expected in enumerate(manual[key]):
                np.testing.assert_allclose(features[f"{prefix}_{index}"][row].numpy(), expected, rtol=1e-5)
                compared.add(f"{prefix}_{index}")
    assert compared == set(features)  # every one of the six features, on every row
    assert features["series_0"].shape == (3, 8) and features["series_2"].shape == (3, 6)
    assert bool((features["series_0"] > 0).all())  # no unplayed slot shows up as zero throughput


def recorder():
    calls = []

    def state_func(*args):
        calls.append(args)
        return {"normal_states": [[1.0]], "time_series_states": [[1.0, 2.0]]}

    return state_func, calls


def test_history_before_the_first_chunk_repeats_the_oldest_played_chunk_as_float64():
    env = AbrSB3VecEnv(2, traces="broadband", video="envivio-synth", info_keys=())
    rows = [env.reset()]
    for _ in range(2):
        rows.append(env.step(np.array([0, 4]))[0])
    state_func, calls = recorder()
    adapter = NadaState(state_func)
    for played, obs in enumerate(rows, start=1):  # the simulator plays the first chunk at reset
        fields = env.layout.split(obs)
        adapter({name: torch.from_numpy(value.copy()) for name, value in fields.items()})
        for row, args in enumerate(calls[-2:]):
            assert fields["valid"][row, -8:].sum() == played
            for position, name in enumerate(("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes")):
                history = args[position]
                assert isinstance(history, list) and len(history) == 8
                assert all(type(value) is np.float64 for value in history)
                assert history[:9 - played] == [history[8 - played]] * (9 - played)  # the oldest played, repeated
                np.testing.assert_allclose(history[8 - played:], fields[name][row, -played:], rtol=1e-6)
            assert min(args[2]) > 0 and min(args[3]) > 0  # delays and sizes: real measurements only
            assert all(type(value) is np.float64 for value in args[4] + args[7])
            assert type(args[5]) is int and type(args[6]) is int and args[5] == args[6] - played


def test_a_row_with_no_chunk_played_gets_a_nominal_first_chunk():
    from llmabr.serve.session import SessionHistory

    ladder_kbps = [300, 750, 1200, 1850, 2850, 4300]
    next_bytes = [150_000, 375_000, 600_000, 925_000, 1_425_000, 2_150_000]
    history = SessionHistory(history_len=16, n_levels=6)  # `llmabr serve` before a session's first chunk
    row = history.row(next_chunk_bytes=next_bytes, ladder_kbps=ladder_kbps, chunks_left=48, chunks_total=48)
    state_func, calls = recorder()
    NadaState(state_func)({name: torch.from_numpy(value[None].copy())
                           for name, value in history.layout.split(row).items()})
    bitrates, buffers, delays, sizes = calls[0][:4]
    chunk_s = 150_000 * 8 / (300 * 1000)  # the lowest level's next chunk fetched at exactly its bitrate: 4 s
    assert bitrates == [300.0] * 8 and sizes == [150_000.0] * 8
    np.testing.assert_allclose(delays, [chunk_s] * 8)
    np.testing.assert_allclose(buffers, [chunk_s] * 8)  # the buffer holds that one chunk


def test_the_feature_cache_serves_repeated_rows_and_can_be_emptied():
    env = AbrSB3VecEnv(4, traces="broadband", video="envivio-synth", info_keys=())
    obs = env.step(np.arange(4))[0]
    fields = {name: torch.from_numpy(value.copy()) for name, value in env.layout.split(obs).items()}
    state_func, calls = recorder()
    adapter = NadaState(state_func, cache_rows=6)
    first = adapter(fields)
    again = adapter(fields)
    assert len(calls) == 4 and adapter.calls == 4
    assert all(torch.equal(first[name], again[name]) for name in first)
    doubled = adapter({name: torch.cat([value, value]) for name, value in fields.items()})  # duplicates: one call
    assert len(calls) == 4 and doubled["series_0"].shape == (8, 2)
    adapter.cache_clear()
    adapter(fields)
    assert len(calls) == 8
    other = {name: value.clone() for name, value in fields.items()}
    other["buffer_s"] += 1.0
    adapter(other)
    assert len(adapter._cache) == 6  # bounded: the oldest rows went first


def test_nada_design_trains_with_ppo():
    loaded = load_modules(Design(name="nada", state_source=NADA_STATE, kind="nada"))
    env = AbrSB3VecEnv(2, traces="broadband", video="envivio-synth", info_keys=())
    model = PPO(DesignPolicy, env, n_steps=48, batch_size=48, n_epochs=2, seed=0, device="cpu",
                policy_kwargs=policy_kwargs(loaded, env.layout))
    initial = {name: value.detach().clone() for name, value in model.policy.state_dict().items()}
    model.learn(96)
    assert model.num_timesteps >= 96
    assert_ppo_learned(model, initial)


def test_bad_return_values_get_clear_errors():
    import pytest

    bad = NADA_STATE.replace('"time_series_states"', '"series"')
    loaded = load_modules(Design(name="bad", state_source=bad, kind="nada"))
    with pytest.raises(ValueError, match="must return"):
        loaded.state_fn({name: torch.ones(2, size) for name, size in
                         [("bitrate_kbps", 16), ("buffer_s", 16), ("download_time_s", 16), ("chunk_bytes", 16),
                          ("valid", 16),
                          ("next_chunk_bytes", 6), ("chunks_left", 1), ("chunks_total", 1), ("ladder_kbps", 6)]})


def test_library_c_code_may_import_its_own_modules_under_a_design_frame():
    """In a fresh process numpy's C code imports numpy._core._methods on the first ndarray.max(); with a
    design frame on top that import reaches the design's restricted __import__, which must let it through."""
    import subprocess
    import sys

    code = ("from llmabr.design.loader import execute\n"
            "ns = execute('import numpy as np\\n\\ndef f():\\n    return float(np.array([1.0, 3.0]).max())\\n',"
            " 'state.py', nada=True)\n"
            "print(ns['f']())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "3.0", result.stderr[-500:]


def spread_recorder(value_when_flat: float):
    """A state_func standardizing the throughput history by its np.std (0/0 when all entries are equal),
    with one more entry that is ``value_when_flat`` / 0 on such rows (0/0 = NaN for 0.0, inf otherwise)."""

    def state_func(bitrates, buffers, delays, sizes, next_sizes, left, total, ladder):
        throughput = np.array(sizes) / np.array(delays)
        spread = np.std(throughput)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"normal_states": [[np.float64(value_when_flat) / spread if spread == 0 else 1.0]],
                    "time_series_states": [((throughput - throughput.mean()) / spread).tolist()]}

    return state_func


def test_nan_on_a_padded_history_row_reads_as_zero_and_nowhere_else():
    env = AbrSB3VecEnv(2, traces="broadband", video="envivio-synth", info_keys=())
    first = env.reset()  # one chunk played: the history is that chunk 8 times, np.std is 0
    fields = {name: torch.from_numpy(value.copy()) for name, value in env.layout.split(first).items()}
    features = NadaState(spread_recorder(0.0))(fields)
    assert torch.equal(features["series_0"], torch.zeros(2, 8)) and torch.equal(features["normal_0"], torch.zeros(2, 1))
    # inf (x / 0 with x != 0) is not padding's doing: left for S1's finite check
    assert bool(torch.isinf(NadaState(spread_recorder(1.0))(fields)["normal_0"]).all())
    # a full history whose entries are all equal: NaN stays NaN
    full = {name: value.clone() for name, value in fields.items()}
    full["valid"][:] = 1.0
    for name in ("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes"):
        full[name][:] = fields[name][:, -1:]
    assert bool(torch.isnan(NadaState(spread_recorder(0.0))(full)["series_0"]).all())


def test_s1_rejects_nan_on_full_history_rows_and_names_the_spread(tmp_path, capsys):
    import json

    from llmabr.cli.main import main

    (tmp_path / "design.toml").write_text('name = "flat"\nkind = "nada"\norigin = "human"\n')
    (tmp_path / "state.py").write_text(
        "import numpy as np\n\n\n"
        "def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,\n"
        "               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):\n"
        "    flat = np.array(bit_rate_kbps_list[-8:]) * 0.0  # all equal on every row: np.std is always 0\n"
        "    with np.errstate(invalid='ignore'):\n"
        "        return {'normal_states': [[buffer_size_second_list[-1] / 10.0]],\n"
        "                'time_series_states': [((flat - flat.mean()) / np.std(flat)).tolist()]}\n")
    assert main(["check", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = next(check for check in report["checks"] if not check["passed"])
    assert failed["name"] == "finite" and "series_0" in failed["reason"] and "np.std" in failed["reason"]
