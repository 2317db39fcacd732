"""The environment contracts: gymnasium Env / VectorEnv, registration, the SB3 VecEnv adapter."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simulator.envs  # noqa: F401  (registers the ids)
from simulator.config import SimConfig, test_config
from simulator.envs import ENV_SPECS, INFO_KEYS, AbrEnv, AbrVectorEnv
from simulator.envs.sources import resolve_traces, resolve_video
from simulator.layout import Layout
from tests.conftest import assert_ppo_learned, hand_traces, synthetic_video

# check_env's only complaints are by design: the row's byte and second fields have no upper bound.
EXPECTED_CHECKER_WARNINGS = ("maximum value is infinity",)
CONFIGS = {"train": SimConfig(), "test": test_config(), "pensieve-train": SimConfig(mode="pensieve")}


def make_env(**kwargs) -> AbrEnv:
    return AbrEnv(hand_traces(), synthetic_video(), **kwargs)


def fields(obs: np.ndarray, env) -> dict[str, np.ndarray]:
    return Layout(env.config.history_len, env.video.n_levels).split(obs)


def assert_startup_obs(obs: np.ndarray, env) -> None:
    """A fresh episode's first row: chunk 0 fetched at the default level, nothing else."""
    row = fields(obs, env)
    assert row["valid"].sum() == 1 and row["valid"][-1] == 1
    assert row["bitrate_kbps"][-1] == env.video.bitrates_kbps[env.config.default_level]
    assert row["chunks_left"][0] == row["chunks_total"][0] - 1


# -- gymnasium Env ------------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", sorted(ENV_SPECS))
def test_check_env_passes_for_every_registered_id(env_id):
    env = gym.make(env_id, traces=hand_traces(), video=synthetic_video()).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    messages = [str(w.message) for w in caught]
    unexpected = [text for text in messages if not any(known in text for known in EXPECTED_CHECKER_WARNINGS)]
    assert not unexpected


@pytest.mark.parametrize("env_id, mode, sequential", [
    ("llmabr/Abr-v0", "default", False), ("llmabr/AbrTest-v0", "default", True),
    ("llmabr/AbrPensieve-v0", "pensieve", False), ("llmabr/AbrPensieveTest-v0", "pensieve", True),
])
def test_registered_ids_set_mode_and_protocol(env_id, mode, sequential):
    env = gym.make(env_id, traces=hand_traces(), video=synthetic_video())
    assert env.unwrapped.config.mode == mode
    assert (env.unwrapped.config.trace_order == "sequential") == sequential
    assert env.unwrapped.config.noise != sequential
    # a user's config replaces the protocol but keeps the id's mode
    custom = gym.make(env_id, traces=hand_traces(), video=synthetic_video(), config=SimConfig(reward_scale=0.5))
    assert custom.unwrapped.config.mode == mode and custom.unwrapped.config.reward_scale == 0.5


@pytest.mark.parametrize("vectorization_mode", ["vector_entry_point", None])
def test_make_vec_uses_the_native_vector_env(vectorization_mode):
    venv = gym.make_vec("llmabr/AbrPensieve-v0", num_envs=3, vectorization_mode=vectorization_mode,
                        traces=hand_traces(), video=synthetic_video(), seed=4)
    assert isinstance(venv, AbrVectorEnv) and venv.num_envs == 3 and venv.config.mode == "pensieve"
    obs, _ = venv.reset(seed=4)
    assert obs.shape == (3, venv.layout.size) and venv.observation_space.contains(obs)


def test_make_vec_sync_mode_wraps_single_envs():
    venv = gym.make_vec("llmabr/Abr-v0", num_envs=2, vectorization_mode="sync",
                        traces=hand_traces(), video=synthetic_video())
    obs, _ = venv.reset(seed=1)
    obs, reward, terminated, truncated, info = venv.step(np.array([0, 5]))
    assert obs.shape == (2, venv.single_observation_space.shape[0])
    np.testing.assert_array_equal(info["level"], [0, 5])


def test_reset_seed_reproduces_and_reseeds():
    env = make_env()

    def episode(seed):
        obs, _ = env.reset(seed=seed)
        rows, terminated = [obs], False
        while not terminated:
            obs, _, terminated, truncated, info = env.step(3)
            assert truncated is False
            rows.append(obs)
        return np.array(rows)

    first, again, other = episode(3), episode(3), episode(4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # without a seed the stream goes on: the next episode is a new one
    env.reset(seed=3)
    _ = [env.step(3) for _ in range(env.sim.n_episode_chunks - 1)]
    follow_on, _ = env.reset()
    assert_startup_obs(follow_on, env)
    assert not np.array_equal(follow_on, first[0])


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_episode_length_terminal_obs_and_info(config_name):
    config = CONFIGS[config_name].with_(reward_scale=0.25)
    env = make_env(config=config, seed=2)
    obs, info = env.reset()
    assert info == {}
    assert_startup_obs(obs, env)
    rng = np.random.default_rng(0)
    steps, terminated, stalled_s = 0, False, 0.0
    previous_level = config.default_level
    while not terminated:
        level = int(rng.integers(env.video.n_levels))
        obs, reward, terminated, truncated, info = env.step(level)
        steps += 1
        assert set(info) == set(INFO_KEYS)
        assert info["level"] == level and info["chunk_index"] == steps
        assert info["bitrate_kbps"] == env.video.bitrates_kbps[level]
        assert info["chunk_bytes"] == env.video.chunk_bytes[level, steps]
        assert info["qoe_bitrate"] == pytest.approx(env.video.bitrates_kbps[level] / 1000.0)
        assert info["qoe_rebuffer"] == pytest.approx(4.3 * info["rebuffer_s"])  # lin: the top rung, 4.3 Mbps
        assert info["qoe_smooth"] == pytest.approx(
            abs(env.video.bitrates_kbps[level] - env.video.bitrates_kbps[previous_level]) / 1000.0)
        assert reward == pytest.approx((info["qoe_bitrate"] - info["qoe_rebuffer"] - info["qoe_smooth"]) * 0.25)
        row = fields(obs, env)
        assert row["buffer_s"][-1] == np.float32(info["buffer_s"])
        assert row["download_time_s"][-1] == np.float32(info["download_time_s"])
        previous_level = level
        stalled_s += info["rebuffer_s"]
    assert stalled_s > 0  # the rebuffer penalty was checked on real stalls
    assert steps == config.chunks_per_episode(env.video.n_chunks) - 1
    assert fields(obs, env)["chunks_left"][0] == 0 and np.all(fields(obs, env)["next_chunk_bytes"] == 0)
    obs, _ = env.reset()
    assert_startup_obs(obs, env)


def test_invalid_action_is_rejected():
    env = make_env()
    env.reset()
    with pytest.raises(ValueError, match="outside"):
        env.step(env.video.n_levels)


# -- vector env ---------------------------------------------------------------------------------

def test_vector_same_step_autoreset_marks_exactly_the_finished_players():
    venv = AbrVectorEnv(4, hand_traces(), synthetic_video(), seed=5)
    obs, _ = venv.reset()
    rng = np.random.default_rng(1)
    n_steps = venv.sim.n_episode_chunks - 1
    finished_at = []
    for step in range(2 * n_steps + 10):
        if step == 10:  # desynchronise player 1 so players finish on different steps
            obs, _ = venv.reset(options={"reset_mask": np.array([False, True, False, False])})
            assert_startup_obs(obs[1], venv)
        obs, reward, terminated, truncated, info = venv.step(rng.integers(0, venv.video.n_levels, 4))
        assert not truncated.any()
        assert set(INFO_KEYS) <= set(info)
        if not terminated.any():
            assert "final_obs" not in info and "final_info" not in info
            continue
        finished_at.append((step, tuple(np.flatnonzero(terminated).tolist())))
        np.testing.assert_array_equal(info["_final_obs"], terminated)
        np.testing.assert_array_equal(info["_final_info"], terminated)
        for index in range(4):
            if not terminated[index]:
                assert info["final_obs"][index] is None
                continue
            final = fields(info["final_obs"][index], venv)
            assert final["chunks_left"][0] == 0
            assert final["buffer_s"][-1] == np.float32(info["buffer_s"][index])
            assert final["bitrate_kbps"][-1] == info["bitrate_kbps"][index]
            assert_startup_obs(obs[index], venv)
            for name in INFO_KEYS:
                assert info["final_info"][name][index] == info[name][index]
                assert info["final_info"][f"_{name}"][index]
    # player 1 restarted after step 9, so it finishes 10 steps after the others
    assert finished_at == [(n_steps - 1, (0, 2, 3)), (n_steps + 9, (1,)),
                           (2 * n_steps - 1, (0, 2, 3)), (2 * n_steps + 9, (1,))]


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_vector_env_equals_n_single_envs(config_name):
    config, n_envs, seed = CONFIGS[config_name], 3, 11
    venv = AbrVectorEnv(n_envs, hand_traces(), synthetic_video(), config=config, seed=seed)
    singles = [make_env(config=config, seed=seed, player_index=j, trace_stride=n_envs) for j in range(n_envs)]
    vec_obs, _ = venv.reset()
    for j, env in enumerate(singles):
        np.testing.assert_array_equal(env.reset()[0], vec_obs[j])
    rng = np.random.default_rng(2)
    episodes_ended = 0
    for _ in range(3 * venv.sim.n_episode_chunks):
        actions = rng.integers(0, venv.video.n_levels, n_envs)
        vec_obs, vec_reward, vec_terminated, _, vec_info = venv.step(actions)
        for j, env in enumerate(singles):
            obs, reward, terminated, _, info = env.step(actions[j])
            assert terminated == vec_terminated[j] and reward == vec_reward[j]
            assert info == {name: vec_info[name][j].item() for name in INFO_KEYS}
            if terminated:
                episodes_ended += 1
                np.testing.assert_array_equal(obs, vec_info["final_obs"][j])
                obs, _ = env.reset()
            np.testing.assert_array_equal(obs, vec_obs[j])
    assert episodes_ended >= 2 * n_envs


def test_vector_reset_with_seeds_matches_single_envs():
    venv = AbrVectorEnv(2, hand_traces(), synthetic_video())
    obs, _ = venv.reset(seed=[7, 8])
    for j, seed in enumerate((7, 8)):
        single, _ = make_env(player_index=j, trace_stride=2).reset(seed=seed)
        np.testing.assert_array_equal(single, obs[j])
    obs_again, _ = venv.reset(seed=7)
    np.testing.assert_array_equal(obs_again[0], obs[0])


def test_gymnasium_episode_statistics_wrapper_sums_rewards():
    venv = gym.wrappers.vector.RecordEpisodeStatistics(AbrVectorEnv(2, hand_traces(), synthetic_video()))
    venv.reset(seed=0)
    returns = np.zeros(2)
    for _ in range(venv.unwrapped.sim.n_episode_chunks - 1):
        _, reward, terminated, _, info = venv.step(np.array([1, 4]))
        returns += reward
    assert terminated.all()
    np.testing.assert_allclose(info["episode"]["r"], returns)


# -- SB3 VecEnv ---------------------------------------------------------------------------------

def test_sb3_vec_env_contract():
    from simulator.envs import AbrSB3VecEnv

    env = AbrSB3VecEnv(3, hand_traces(), synthetic_video())
    assert env.seed(9) == [9, 9, 9]
    obs = env.reset()
    assert obs.shape == (3, env.layout.size) and obs.dtype == np.float32
    reference = AbrVectorEnv(3, hand_traces(), synthetic_video(), seed=9)
    np.testing.assert_array_equal(obs, reference.reset()[0])
    assert env.get_attr("video") == [env.video] * 3 and env.get_attr("config", indices=1) == [env.config]
    assert env.env_is_wrapped(gym.Wrapper) == [False] * 3
    with pytest.raises(ValueError, match="indices"):
        env.set_attr("info_keys", (), indices=[0])
    rng = np.random.default_rng(0)
    for step in range(env.sim.n_episode_chunks + 3):
        actions = rng.integers(0, env.video.n_levels, 3)
        obs, rewards, dones, infos = env.step(actions)
        ref_obs, ref_rewards, ref_terminated, _, ref_info = reference.step(actions)
        assert rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 3
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(dones, ref_terminated)
        for index, info in enumerate(infos):
            assert info["level"] == actions[index]
            assert ("terminal_observation" in info) == dones[index]
            if dones[index]:
                assert info["TimeLimit.truncated"] is False
                np.testing.assert_array_equal(info["terminal_observation"], ref_info["final_obs"][index])
    lean = AbrSB3VecEnv(2, hand_traces(), synthetic_video(), info_keys=())
    lean.reset()
    assert lean.step(np.array([0, 1]))[3] == [{}, {}]
    with pytest.raises(ValueError, match="info_keys"):
        AbrSB3VecEnv(2, hand_traces(), synthetic_video(), info_keys=("reward",))


def test_sb3_vec_monitor_returns_equal_summed_rewards_and_ppo_trains():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from simulator.envs import AbrSB3VecEnv

    env = VecMonitor(AbrSB3VecEnv(2, hand_traces(), synthetic_video(), seed=1))
    env.reset()
    returns, episodes = np.zeros(2), []
    rng = np.random.default_rng(0)
    for _ in range(2 * env.unwrapped.sim.n_episode_chunks):
        _, rewards, dones, infos = env.step(rng.integers(0, 6, 2))
        returns += rewards
        for index in np.flatnonzero(dones):
            episodes.append((infos[index]["episode"]["r"], infos[index]["episode"]["l"], returns[index]))
            returns[index] = 0.0
    assert len(episodes) >= 2
    for monitored_return, length, summed in episodes:
        assert monitored_return == pytest.approx(summed, rel=1e-5)  # VecMonitor sums in float32
        assert length == env.unwrapped.sim.n_episode_chunks - 1

    model = PPO("MlpPolicy", VecMonitor(AbrSB3VecEnv(4, hand_traces(), synthetic_video())),
                n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    initial = {name: value.detach().clone() for name, value in model.policy.state_dict().items()}
    model.learn(256)
    assert model.num_timesteps == 256
    assert_ppo_learned(model, initial)


# -- sources ------------------------------------------------------------------------------------

def test_network_type_names_use_the_generator_and_default_video(monkeypatch):
    calls = []

    def fake_generate(network_type, count, seed):
        calls.append((network_type, count, seed))
        return hand_traces()

    monkeypatch.setattr("simulator.traces.generate", fake_generate, raising=False)
    env = AbrEnv("4G", seed=0)
    assert calls and calls[0][0] == "4g"
    assert env.video.name == "service-4g"


@pytest.mark.parametrize("traces, error, match", [
    ([], ValueError, "empty"),
    ([1, 2], TypeError, "Trace"),
    (42, TypeError, "network type"),
    ("/no/such/folder", FileNotFoundError, "neither a network type"),
])
def test_bad_traces_argument_says_what_is_accepted(traces, error, match):
    with pytest.raises(error, match=match):
        resolve_traces(traces)


def test_video_is_required_without_a_network_type():
    with pytest.raises(ValueError, match="video= is required"):
        resolve_video(None, hand_traces())
    assert resolve_video("high-5g", hand_traces()).name == "high-5g"


def test_paths_load_a_trace_file_a_folder_and_a_list(tmp_path):
    """Real files through the real readers (an earlier version patched a reader that did not exist)."""
    folder = tmp_path / "traces"
    folder.mkdir()
    for index, mbps in enumerate((1.0, 2.0, 3.0)):
        (folder / f"t{index}.log").write_text("".join(f"{t} {mbps}\n" for t in range(5)))
    one = resolve_traces(str(folder / "t1.log"))
    assert len(one) == 1 and float(one[0].bw_mbps[1]) == 2.0
    assert sorted(float(t.bw_mbps[1]) for t in resolve_traces(folder)) == [1.0, 2.0, 3.0]
    listing = tmp_path / "pick.txt"
    listing.write_text(f"root: {folder}\nt2.log\nt0.log\n")
    assert [float(t.bw_mbps[1]) for t in resolve_traces(listing)] == [3.0, 1.0]


def test_registration_is_idempotent():
    from simulator.envs import register_envs

    assert register_envs() == []
    assert all(gym.spec(env_id).vector_entry_point for env_id in ENV_SPECS)
