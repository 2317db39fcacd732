"""``llmabr traces stats`` / ``traces convert`` and ``--trace-format`` on raw public-dataset forms.

The expected statistics are worked out by hand from the fixture rows (tests/simulator/data/public_forms):
each fixture trace is written out below as the rows it must become, and the pooled statistics follow
MANIFEST.md's definition (each sample weighted by the interval to the next; a trace's last sample
by its median interval; a quantile is the smallest value whose cumulative weight reaches q).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmabr.cli.main import main

FORMS = Path(__file__).parents[1] / "simulator" / "data" / "public_forms"

# G-NetTrack: B_2019.12.14_10.16.30.csv -> part1 (kbps/1000; :31 averaged (2+4)/2 = 3, missing :32 holds 3)
#   times 0..5, Mbps 1, 3, 3, 5, 0, 6; part2 (after the 15 s gap) times 0..2, Mbps 8, 9, 10;
#   A_2018.02.12_13.40.27.csv -> times 0..2, Mbps 2, 4, 6. Every step is 1 s, so every weight is 1 s.
#   12 samples, sum 1+3+3+5+0+6 + 8+9+10 + 2+4+6 = 57; sorted 0 1 2 3 3 4 5 6 6 8 9 10:
#   median: 6 of 12 reached at 4; p10: 1.2 reached at 1; p90: 10.8 reached at 9; one zero second.
#   hours: (5 + 2 + 2) s.
GNETTRACK = {"count": 3, "hours": 9 / 3600, "mean_mbps": 57 / 12, "median_mbps": 4.0, "p10_mbps": 1.0,
             "p90_mbps": 9.0, "zero_share": 1 / 12}
# 5Gophers: car-driving-trace-1.csv -> Sprint 10 20 30 40 40(held seq 4) 50; TMobile 100 200 100 200 200 100
#   (weights 1); Verizon seq 0 1 2 (3 empty, dropped) 5 -> held at 4: times 0 1 2 4 5, Mbps 50 0 50 50 50,
#   weights 1 1 2 1 1 (last: median of 1 1 2 1); data.csv -> run 1: 4 6 8, run 2: 1 2 3 (weights 1).
#   Total weight 6+6+6+3+3 = 24; sum 190 + 900 + (50+0+100+50+50) + 18 + 6 = 1364.
#   Sorted with cumulative weight: 0(1) 1(2) 2(3) 3(4) 4(5) 6(6) 8(7) 10(8) 20(9) 30(10) 40(11) 40(12) 50x6(18)
#   100x3(21) 200x3(24): median 12 -> 40; p10 2.4 -> 2; p90 21.6 -> 200; zero weight 1. hours (5+5+5+2+2) s.
FIVEGOPHERS = {"count": 5, "hours": 19 / 3600, "mean_mbps": 1364 / 24, "median_mbps": 40.0, "p10_mbps": 2.0,
               "p90_mbps": 200.0, "zero_share": 1 / 24}
# Starlink (CoNEXT'23 form): mob_all_area1.csv -> Apr 12 session 100 200 300 400 500 (09:40:24 MDT is
#   10:40:24 CDT); Apr 5 (time went back): 11:03:07 twice (10, 30 -> 20), 20, held 20, 40; after the 40 s
#   gap: 50 60. Weights all 1: 11 samples, sum 1500 + 100 + 110 = 1710; sorted 20 20 20 40 50 60 100 200
#   300 400 500: median 5.5 -> 60; p10 1.1 -> 20; p90 9.9 -> 400. hours (4 + 3 + 1) s.
STARLINK = {"count": 3, "hours": 8 / 3600, "mean_mbps": 1710 / 11, "median_mbps": 60.0, "p10_mbps": 20.0,
            "p90_mbps": 400.0, "zero_share": 0.0}


@pytest.mark.parametrize("folder, expected", [("gnettrack", GNETTRACK), ("5gophers", FIVEGOPHERS),
                                              ("starlink", STARLINK)])
def test_stats_on_raw_public_forms_match_the_hand_computation(folder, expected, capsys):
    assert main(["traces", "stats", str(FORMS / folder), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_stats_table_prints_hours_rates_and_what_loading_did(capsys):
    assert main(["traces", "stats", str(FORMS / "starlink"), "--report"]) == 0
    out = capsys.readouterr().out
    assert "0.002222" in out and "155.455" in out and "60.000" in out and "400.000" in out
    assert "1 row averaged" in out and "1 gap held (1 s)" in out and "1 split at time going back" in out
    assert "mob_all_area1.csv: 11 rows -> 3 traces (starlink-drive)" in out


def test_trace_format_names_a_preset_or_a_mapping_file(tmp_path, capsys):
    assert main(["traces", "stats", str(FORMS / "gnettrack"), "--trace-format", "gnettrack", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 3
    assert main(["traces", "stats", str(FORMS / "gnettrack"), "--trace-format", "lumos5g"]) == 2
    assert "is not the lumos5g form" in capsys.readouterr().err
    (tmp_path / "log.csv").write_text("sec,down_kbps\n0,1000\n1,2000\n2,3000\n")
    mapping = tmp_path / "form.json"
    mapping.write_text(json.dumps({"time": "sec", "rate": "down_kbps", "rate_unit": "kbps"}))
    assert main(["traces", "stats", str(tmp_path), "--trace-format", str(mapping),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_mbps"] == pytest.approx(2.0)  # (1 + 2 + 3) / 3


def test_unknown_csv_is_a_clean_error_that_shows_a_mapping(tmp_path, capsys):
    (tmp_path / "x.csv").write_text("Zeit,Durchsatz\n0,1\n1,2\n")
    assert main(["traces", "stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "columns found: ['Zeit', 'Durchsatz']" in err and 'time = "Zeit"' in err and "Traceback" not in err
    assert main(["traces", "stats", str(tmp_path), "--trace-format", "excel"]) == 2
    assert "a CSV preset" in capsys.readouterr().err


def test_convert_writes_cooked_traces_and_a_manifest(tmp_path, capsys):
    out = tmp_path / "cooked"
    assert main(["traces", "convert", str(FORMS / "5gophers"), "--out", str(out)]) == 0
    assert "wrote 5 traces" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    car = next(entry for entry in manifest["files"] if entry["path"].endswith("car-driving-trace-1.csv"))
    assert car["rows_dropped"] == {"empty rate (Verizon_throughput_mbps)": 1} and car["gaps_held"] == 3
    assert sorted(output["file"] for output in car["outputs"]) == [
        f"car-driving-trace-1_{carrier}_throughput_mbps" for carrier in ("Sprint", "TMobile", "Verizon")]
    assert main(["traces", "stats", str(out), "--json"]) == 0  # the cooked folder gives the same numbers
    assert json.loads(capsys.readouterr().out)["mean_mbps"] == pytest.approx(FIVEGOPHERS["mean_mbps"])
    assert main(["traces", "convert", str(FORMS / "5gophers"), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_baseline_reads_a_raw_public_form_folder(capsys):
    argv = ["baseline", "--algo", "bb", "--traces", str(FORMS / "starlink"), "--video", "envivio-synth", "--json",
            "--trace-format", "starlink-drive"]
    assert main(argv) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)["per_trace"]]
    assert names == [f"mob_all_area1.csv#part{k}" for k in (1, 2, 3)]


def test_train_and_search_read_traces_through_a_mapping_given_by_trace_format(tmp_path):
    """``llmabr train/search --trace-format FILE`` reaches every loader: training, validation (and the search's test)."""
    from llmabr.cli.main import build_parser
    from llmabr.search.config import load_search_config
    from llmabr.train.config import TrainConfig
    from llmabr.train.data import load_data

    folder = tmp_path / "logs"
    folder.mkdir()
    for index in range(4):  # headerless "seconds,kbps" rows: without the mapping they would read as Mbps
        (folder / f"log{index}.csv").write_text("".join(f"{t},{1000 + 100 * index + t}\n" for t in range(120)))
    mapping = tmp_path / "my.toml"
    mapping.write_text('header = false\ntime = 0\ntime_format = "seconds"\nrate = 1\nrate_unit = "kbps"\n')
    train, val, _ = load_data(TrainConfig(network="4g", traces=str(folder), val_traces=str(folder),
                                          trace_format=str(mapping)))
    assert len(train) == 4 and len(val) == 4 and abs(train[0].bw_mbps[0] - 1.0) < 1e-9
    args = build_parser().parse_args(["search", "--traces", str(folder), "--trace-format", str(mapping)])
    assert args.trace_format == str(mapping)
    config = load_search_config(None, [f"train.trace_format={mapping}"])
    assert config.train.trace_format == str(mapping)
