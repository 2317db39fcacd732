"""Video profiles: built-ins load with the right shapes, synthetic VBR looks like Envivio, JSON
round trip, Envivio from ../shared, and clear errors for what cannot be loaded."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from simulator import video as video_mod
from simulator.video import (
    DEFAULT_PROFILE_BY_NETWORK,
    ENVIVIO_CROSS_LEVEL_CORR,
    ENVIVIO_LADDER_KBPS,
    ENVIVIO_SIZE_CV,
    SYNTHETIC_PROFILES,
    VideoProfileError,
    default_profile,
    default_profile_name,
    envivio_vbr_stats,
    generate_vbr_profile,
    list_profiles,
    load_profile,
    save_profile,
)

BUILTIN_SYNTHETIC = sorted(SYNTHETIC_PROFILES)


def test_list_profiles_names_envivio_and_every_stored_json():
    names = list_profiles()
    assert names[0] == "envivio"
    assert sorted(names[1:]) == BUILTIN_SYNTHETIC


@pytest.mark.parametrize("name", BUILTIN_SYNTHETIC)
def test_builtin_profiles_have_49_chunks_of_4_s_and_their_ladder(name):
    profile = load_profile(name)
    ladder_kbps, _, _ = SYNTHETIC_PROFILES[name]
    assert profile.name == name
    assert profile.chunk_bytes.shape == (6, 49)
    assert profile.chunk_s == 4.0
    np.testing.assert_array_equal(profile.bitrates_kbps, ladder_kbps)
    mean_kbps = profile.chunk_bytes.mean(axis=1) * 8 / 1000 / profile.chunk_s
    np.testing.assert_allclose(mean_kbps, ladder_kbps, rtol=1e-3)
    # every chunk is bigger at a higher level, as in a real encode
    assert np.all(np.diff(profile.chunk_bytes, axis=0) > 0)
    assert profile.hd_reward == (1.0, 2.0, 3.0, 12.0, 15.0, 20.0)


@pytest.mark.parametrize("name", BUILTIN_SYNTHETIC)
def test_builtin_profile_files_are_what_the_generator_makes(name, tmp_path):
    """The committed JSON is reproducible from the seeded generator (no hand edits)."""
    video_mod.build_builtin_profiles(tmp_path)
    assert json.loads((tmp_path / f"{name}.json").read_text()) == json.loads(
        (video_mod.PROFILE_DIR / f"{name}.json").read_text())


@pytest.mark.parametrize("name", BUILTIN_SYNTHETIC)
def test_synthetic_vbr_statistics_near_envivio_constants(name):
    cv, corr = envivio_vbr_stats(load_profile(name).chunk_bytes)
    assert cv == pytest.approx(ENVIVIO_SIZE_CV, abs=0.015)
    assert corr == pytest.approx(ENVIVIO_CROSS_LEVEL_CORR, abs=0.05)


# The service ladders (issue 17): rungs from Apple's HLS Authoring Specification (HEVC) and
# YouTube's recommended upload bitrates, each next to the high-* ladder it replaced as the default.
SERVICE_LADDERS = {
    "4g": ("service-4g", (600, 1600, 3400, 5800, 11600, 16800), "high-4g"),
    "5g": ("service-5g", (900, 4500, 16800, 40000, 80000, 160000), "high-5g"),
    "satellite": ("service-satellite", (900, 4500, 16800, 40000, 68000, 110000), "high-satellite"),
}
# The previous defaults stay under their names with their ladders (the SIGCOMM'21 5G study's setting).
HIGH_LADDERS = {
    "high-4g": (2000, 4000, 8000, 12000, 16000, 20000),
    "high-5g": (20000, 40000, 60000, 80000, 110000, 160000),
    "high-satellite": (5000, 10000, 20000, 40000, 70000, 110000),
}


@pytest.mark.parametrize("network", sorted(SERVICE_LADDERS))
def test_service_ladders_are_the_defaults_reach_below_1_mbps_and_keep_high_rungs(network):
    name, ladder_kbps, previous = SERVICE_LADDERS[network]
    assert default_profile_name(network) == name
    profile = load_profile(name)
    np.testing.assert_array_equal(profile.bitrates_kbps, ladder_kbps)
    assert profile.n_levels == 6 and np.all(np.diff(profile.bitrates_kbps) > 0)
    assert profile.bitrates_kbps[0] <= 1000
    # the low end reaches under the old bottom rung; the high end keeps the old ladder's high rungs
    old_ladder_kbps = HIGH_LADDERS[previous]
    assert profile.bitrates_kbps[0] < old_ladder_kbps[0]
    assert profile.bitrates_kbps[-1] >= old_ladder_kbps[-2]
    assert profile.bitrates_kbps[-1] >= 10 * profile.bitrates_kbps[0]
    # chunk counts, mean bitrates, CV and cross-level correlation: the BUILTIN_SYNTHETIC tests above
    assert name in BUILTIN_SYNTHETIC


@pytest.mark.parametrize("name", sorted(HIGH_LADDERS))
def test_previous_high_profiles_still_load_with_their_ladders(name):
    profile = load_profile(name)
    assert profile.name == name and profile.chunk_bytes.shape == (6, 49)
    np.testing.assert_array_equal(profile.bitrates_kbps, HIGH_LADDERS[name])
    assert name not in DEFAULT_PROFILE_BY_NETWORK.values()


@pytest.mark.parametrize("size_cv,corr", [(0.05, 0.5), (0.2, 0.95), (0.1, 0.0)])
def test_generator_hits_requested_statistics_and_is_seeded(size_cv, corr):
    make = lambda seed: generate_vbr_profile("x", [1000, 2000, 4000, 8000], n_chunks=400, seed=seed,
                                             size_cv=size_cv, cross_level_corr=corr)
    first, again, other = make(3), make(3), make(4)
    np.testing.assert_array_equal(first.chunk_bytes, again.chunk_bytes)
    assert not np.array_equal(first.chunk_bytes, other.chunk_bytes)
    cv, measured_corr = envivio_vbr_stats(first.chunk_bytes)
    assert cv == pytest.approx(size_cv, rel=0.15)
    assert measured_corr == pytest.approx(corr, abs=0.08)
    assert first.hd_reward is None  # 4 levels: Envivio's 6-level HD table does not transfer


@pytest.mark.shared
def test_envivio_comes_from_shared_and_matches_the_measured_constants(shared_path):
    profile = load_profile("envivio")
    assert profile.chunk_bytes.shape == (6, 49)
    np.testing.assert_array_equal(profile.bitrates_kbps, ENVIVIO_LADDER_KBPS)
    assert profile.chunk_bytes[0, 0] > 0
    cv, corr = envivio_vbr_stats(profile.chunk_bytes)
    assert cv == pytest.approx(ENVIVIO_SIZE_CV, abs=0.002)
    assert corr == pytest.approx(ENVIVIO_CROSS_LEVEL_CORR, abs=0.005)
    # and the synthetic stand-in is close to the real thing
    synth_cv, synth_corr = envivio_vbr_stats(load_profile("envivio-synth").chunk_bytes)
    assert synth_cv == pytest.approx(cv, abs=0.015) and synth_corr == pytest.approx(corr, abs=0.05)
    # a folder path loads the same sizes
    np.testing.assert_array_equal(load_profile(shared_path / "video" / "envivio").chunk_bytes, profile.chunk_bytes)


def test_envivio_absent_names_the_synthetic_alternative(monkeypatch):
    monkeypatch.setattr(video_mod, "shared_dir", lambda: None)
    with pytest.raises(VideoProfileError, match="envivio-synth"):
        load_profile("envivio")


def test_default_profiles_per_network_type(monkeypatch, caplog):
    assert default_profile_name("4g") == "service-4g"
    assert default_profile_name("5G") == "service-5g"
    assert default_profile_name("satellite") == "service-satellite"
    assert default_profile("satellite").name == "service-satellite"
    monkeypatch.setattr(video_mod, "shared_dir", lambda: None)
    with caplog.at_level(logging.WARNING, logger="simulator.video"):
        assert default_profile_name("3g") == "envivio-synth"
    assert "envivio-synth" in caplog.text
    with pytest.raises(ValueError, match="unknown network type"):
        default_profile_name("dialup")


def test_json_round_trip(tmp_path):
    profile = generate_vbr_profile("rt", [500, 1500, 3000], n_chunks=10, chunk_s=2.0, seed=1,
                                   hd_reward=(1.0, 4.0, 9.0), description="round trip")
    path = save_profile(profile, tmp_path / "rt.json")
    loaded = load_profile(path)
    assert (loaded.name, loaded.chunk_s, loaded.hd_reward, loaded.description) == ("rt", 2.0, (1.0, 4.0, 9.0), "round trip")
    np.testing.assert_array_equal(loaded.chunk_bytes, profile.chunk_bytes)
    np.testing.assert_array_equal(loaded.bitrates_kbps, profile.bitrates_kbps)
    # a folder holding profile.json loads too
    (tmp_path / "folder").mkdir()
    save_profile(profile, tmp_path / "folder" / "profile.json")
    np.testing.assert_array_equal(load_profile(tmp_path / "folder").chunk_bytes, profile.chunk_bytes)


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ('{"name": "x", "bitrates_kbps": [1, 2]}', "missing field"),
    ('{"name": "x", "bitrates_kbps": [2, 1], "chunk_bytes": [[1, 1], [2, 2]]}', "increasing"),
    ('{"name": "x", "bitrates_kbps": [1, 2], "chunk_bytes": [[1, 1]]}', "chunk_bytes must be"),
    ('[1, 2]', "JSON object"),
])
def test_bad_json_profiles_name_the_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(VideoProfileError, match=message) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_missing_or_bad_folders_raise_clear_errors(tmp_path):
    with pytest.raises(VideoProfileError, match="not a built-in name"):
        load_profile(tmp_path / "nowhere")
    with pytest.raises(VideoProfileError, match="not a built-in name"):
        load_profile("no-such-profile")
    with pytest.raises(VideoProfileError, match="no video_size_N files"):
        load_profile(tmp_path)
    for level in range(6):
        (tmp_path / f"video_size_{level}").write_text("100\n200\n" if level != 3 else "100\nabc\n")
    with pytest.raises(VideoProfileError, match=r"video_size_3:2: not a byte count"):
        load_profile(tmp_path)
