"""Issue #8, point 1: train / validation / test split lists for every network type in ../shared/traces.

    python experiments/make_splits.py           # (re)write traces/splits/ from ../shared/traces
    python experiments/make_splits.py --check   # verify the committed lists; exit 1 on any problem

Only file names are written (paths relative to ../shared/traces), never data:
``traces/splits/<type>/{train,val,test}.txt`` and, for broadband, ``test-idfree.txt``; the size
and video-profile tables in ``traces/splits/README.md`` are rewritten between their markers.

Rules (the README explains them; the header of every list repeats them):

* Where the source has no split (4g, 5g, satellite), the split is **by trace ID**: every file
  of one ID (recording, run, FCC unit) lands on one side. Within each source, IDs are grouped
  into strata (travel mode, day, sampling flavour), ordered by ``sha256("<seed>:<source>:<id>")``
  and cut 70 / 15 / 15 % (test, then validation, then the rest to train) with largest-remainder
  rounding across the strata, keeping at least one ID of every stratum in train.
* Where the source has a split (broadband, 3g), its test folder stays the test side and
  validation is 15 % of the training folder's IDs, cut the same way: validation never comes
  from test. Broadband also gets ``test-idfree.txt``: the 20 test files whose FCC unit ID is
  absent from the training folder (MANIFEST.md), the leakage-free test set.

The cut depends only on file names and the seed (a hash, not numpy's generator, whose streams
may change between versions), so re-running reproduces every byte. Loading the traces is needed
only for the hours and the profile statistics in the tables. The ID rules themselves live in
``simulator/traces/groups.py``, shared with the statistics that resample traces by recording.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from simulator.paths import REPO_ROOT, shared_traces
from simulator.traces.formats import load_trace, read_trace_list, trace_files
from simulator.traces.groups import (TraceIdError, belgium_id, fcc_id, lumos_5g_id, lumos_lte_id, norway_test_id,
                                     norway_train_id, starlink_id)
from simulator.traces.stats import sample_weights_s, weighted_quantile
from simulator.video import DEFAULT_PROFILE_BY_NETWORK, ENVIVIO_LADDER_KBPS, load_profile

SEED = 0
TEST_FRACTION = Fraction(15, 100)
VAL_FRACTION = Fraction(15, 100)
SPLITS_DIR = REPO_ROOT / "traces" / "splits"
SCRIPT = "experiments/make_splits.py"
SIDES = ("train", "val", "test")
# MANIFEST.md: the broadband test files whose unit ID is absent from train (20 files, 10 IDs).
MANIFEST_IDFREE_UNIT_IDS = frozenset({"942154", "901648", "8299", "849842", "806172", "7540", "14679",
                                      "665208", "799296", "925806"})
MANIFEST_IDFREE_FILES = 20
SIZES_MARKERS = ("<!-- sizes:begin (written by experiments/make_splits.py) -->", "<!-- sizes:end -->")
PROFILE_MARKERS = ("<!-- profiles:begin (written by experiments/make_splits.py) -->", "<!-- profiles:end -->")


# The ID rules (fcc_id ... starlink_id) live in simulator.traces.groups, where the bootstrap's trace
# groups come from too. Their error is this script's error (a file name no rule understands, or a
# split that breaks its own rules): one class that main() reports and callers catch.
SplitError = TraceIdError


@dataclass(frozen=True)
class Source:
    """One folder of ../shared/traces and how its file names map to trace IDs."""

    key: str  # short name, part of the hash that orders IDs
    folder: str  # relative to ../shared/traces
    id_rule: str  # one line for list headers and the README
    trace_id: Callable[[str], tuple[str, str]]  # file name -> (ID, stratum)


@dataclass(frozen=True)
class Network:
    """A network type: the folders split by ID, and the source's own test folder where it has one."""

    name: str
    sources: tuple[Source, ...]  # split by ID into train / val (/ test when source_test is None)
    source_test: Source | None = None  # kept whole as the test side (the source's split)

    @property
    def all_sources(self) -> tuple[Source, ...]:
        return self.sources + ((self.source_test,) if self.source_test else ())

    @property
    def fractions(self) -> dict[str, Fraction]:
        return {"val": VAL_FRACTION} if self.source_test else {"test": TEST_FRACTION, "val": VAL_FRACTION}


FCC_RULE = "the FCC unit ID in [NNN_][test_fcc_]trace_<unit>_<site>_..."
NETWORKS = (
    Network("broadband", (Source("fcc-train", "broadband/train", FCC_RULE, fcc_id),),
            Source("fcc-test", "broadband/test", FCC_RULE, fcc_id)),
    Network("3g", (Source("norway-train", "3g/train", "the file itself (norway_<mode>_<n>)", norway_train_id),),
            Source("norway-test", "3g/test", "the raw log (<mode>.<route>-report.<date>.log) or norway_<mode>_<n>",
                   norway_test_id)),
    Network("4g", (Source("belgium", "4g/all/belgium_ghent_sabre", "the log report_<mode>_<nnnn>", belgium_id),
                   Source("lumos-lte", "4g/all/lumos5g_verizon_lte", "the run id in 4g_trace_<mode>_<id>_<route>",
                          lumos_lte_id))),
    Network("5g", (Source("lumos-5g", "5g/all", "the run number in 5g_trace_<run>_<mode>", lumos_5g_id),)),
    Network("satellite", (Source("starlink", "satellite/all", "the run <YYYYMMDD>_<runid>", starlink_id),)),
)
STRATA_RULE = {"fcc-train": "sampling flavour", "norway-train": "mode", "belgium": "mode",
               "lumos-lte": "mode and route", "lumos-5g": "mode", "starlink": "day"}


# -- the split ---------------------------------------------------------------------------------

def apportion(sizes: dict[str, int], fraction: Fraction, capacity: dict[str, int]) -> dict[str, int]:
    """round(fraction x total) IDs spread over strata by largest remainder, at most ``capacity`` each."""
    total = math.floor(fraction * sum(sizes.values()) + Fraction(1, 2))
    quota = {stratum: fraction * size for stratum, size in sizes.items()}
    counts = {stratum: min(math.floor(quota[stratum]), capacity[stratum]) for stratum in sizes}
    for stratum in sorted(sizes, key=lambda s: (counts[s] - quota[s], s)):  # largest remainder first
        if sum(counts.values()) >= total:
            break
        if counts[stratum] < capacity[stratum]:
            counts[stratum] += 1
    return counts


def id_order_key(source: Source, trace_id: str) -> str:
    return hashlib.sha256(f"{SEED}:{source.key}:{trace_id}".encode()).hexdigest()


def split_source(source: Source, names: list[str], fractions: dict[str, Fraction]) -> dict[str, str]:
    """{file name: side}; every file of one ID on the same side."""
    stratum_of: dict[str, str] = {}
    ids_by_stratum: dict[str, set[str]] = defaultdict(set)
    for name in names:
        trace_id, stratum = source.trace_id(name)
        if stratum_of.setdefault(trace_id, stratum) != stratum:
            raise SplitError(f"{source.folder}: ID {trace_id} has files in two strata "
                             f"({stratum_of[trace_id]}, {stratum})")
        ids_by_stratum[stratum].add(trace_id)
    sizes = {stratum: len(ids) for stratum, ids in ids_by_stratum.items()}
    # Every stratum keeps at least one ID in train, so no mode / day is unseen in training.
    left = {stratum: max(size - 1, 0) for stratum, size in sizes.items()}
    side_of_id: dict[str, str] = {}
    counts_by_side = {}
    for side, fraction in fractions.items():
        counts_by_side[side] = apportion(sizes, fraction, left)
        left = {stratum: left[stratum] - counts_by_side[side][stratum] for stratum in sizes}
    for stratum, ids in ids_by_stratum.items():
        ordered = sorted(ids, key=lambda trace_id: id_order_key(source, trace_id))
        start = 0
        for side in fractions:
            for trace_id in ordered[start:start + counts_by_side[side][stratum]]:
                side_of_id[trace_id] = side
            start += counts_by_side[side][stratum]
        for trace_id in ordered[start:]:
            side_of_id[trace_id] = "train"
    return {name: side_of_id[source.trace_id(name)[0]] for name in names}


def folder_names(source: Source, root: Path) -> list[str]:
    folder = root / source.folder
    return [str(path.relative_to(folder)) for path in trace_files(folder)]


def make_lists(network: Network, root: Path) -> dict[str, list[str]]:
    """{side: sorted paths relative to ``root``} for one network type."""
    lists: dict[str, list[str]] = {side: [] for side in SIDES}
    for source in network.sources:
        for name, side in split_source(source, folder_names(source, root), network.fractions).items():
            lists[side].append(f"{source.folder}/{name}")
    if network.source_test is not None:
        test = network.source_test
        lists["test"] = [f"{test.folder}/{name}" for name in folder_names(test, root)]
        if network.name == "broadband":
            # "absent from train" means the whole training folder, validation included.
            train_ids = {network.sources[0].trace_id(Path(path).name)[0] for side in ("train", "val")
                         for path in lists[side]}
            lists["test-idfree"] = [path for path in lists["test"]
                                    if test.trace_id(Path(path).name)[0] not in train_ids]
    return {side: sorted(paths) for side, paths in lists.items()}


def source_of(network: Network, path: str) -> Source:
    for source in network.all_sources:
        if path.startswith(source.folder + "/"):
            return source
    raise SplitError(f"{path}: not under any {network.name} source folder")


def ids_of(network: Network, paths: list[str]) -> set[str]:
    """Trace IDs, qualified by source so equal numbers in two sources are not confused."""
    ids = set()
    for path in paths:
        source = source_of(network, path)
        # The FCC train and test folders share one ID space (unit IDs), as do Norway train and test.
        space = source.key.split("-")[0] if network.source_test else source.key
        ids.add(f"{space}:{source.trace_id(Path(path).name)[0]}")
    return ids


# -- text outputs --------------------------------------------------------------------------------

def percent(fraction: Fraction) -> str:
    return f"{float(fraction * 100):g}"


def list_text(network: Network, side: str, paths: list[str], hours: float) -> str:
    n_ids = len(ids_of(network, paths))
    sources = [s for s in network.all_sources
               if any(path.startswith(s.folder + "/") for path in paths)]
    if side == "test-idfree":
        rule = ("the broadband/test files whose FCC unit ID is absent from broadband/train "
                "(MANIFEST.md): the leakage-free test set")
    elif network.source_test is not None and side == "test":
        rule = "the source's own test folder, kept whole (its split)"
    elif network.source_test is not None:
        rule = (f"by ID from the source's train folder: {percent(VAL_FRACTION)} % of IDs to val, the rest to "
                f"train, stratified by {STRATA_RULE[network.sources[0].key]}")
    else:
        strata = "; ".join(f"{s.key} by {STRATA_RULE[s.key]}" for s in network.sources)
        rule = (f"by ID, {percent(1 - TEST_FRACTION - VAL_FRACTION)} / {percent(VAL_FRACTION)} / "
                f"{percent(TEST_FRACTION)} % of IDs to train / val / test, stratified ({strata})")
    header = [
        f"# {network.name} {side}: {len(paths)} traces, {hours:.2f} h, {n_ids} IDs",
        "# source folders (under ../shared/traces): " + ", ".join(s.folder for s in sources),
        "# ID rule: " + "; ".join(f"{s.key} = {s.id_rule}" for s in sources),
        f"# split: {rule}",
        f"# made by {SCRIPT} (seed {SEED}); paths are relative to ../shared/traces",
    ]
    return "\n".join(header + paths) + "\n"


def side_order(network: Network) -> list[str]:
    return list(SIDES) + (["test-idfree"] if network.name == "broadband" else [])


def sizes_table(rows: list[tuple[str, str, int, float, int, str]]) -> str:
    lines = ["| type | side | files | hours | IDs | files per source |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {net} | {side} | {files} | {hours:.2f} | {ids} | {per_source} |"
              for net, side, files, hours, ids, per_source in rows]
    return "\n".join(lines)




def profile_table(train_traces: dict[str, list]) -> str:
    """Per type, on its train list only: where the throughput sits against the ladders."""
    envivio_top_mbps = ENVIVIO_LADDER_KBPS[-1] / 1000
    lines = [("| type | profile | ladder (Mbps) | median Mbps | p10 Mbps | time >= 4.3 Mbps (Envivio top) "
              "| time >= profile top | time < profile bottom |"),
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for network in NETWORKS:
        traces = train_traces[network.name]
        name = DEFAULT_PROFILE_BY_NETWORK[network.name]
        # The Envivio ladder is the same with or without ../shared/video; only the sizes differ.
        ladder_mbps = load_profile("envivio-synth" if name == "envivio" else name).bitrates_kbps / 1000
        values = np.concatenate([t.bw_mbps for t in traces])
        weights = np.concatenate([sample_weights_s(t) for t in traces])
        total_s = weights.sum()
        ladder = ", ".join(f"{rate:g}" for rate in ladder_mbps)
        lines.append(
            f"| {network.name} | {name} | {ladder} | {weighted_quantile(values, weights, 0.5):.3g} "
            f"| {weighted_quantile(values, weights, 0.1):.3g} "
            f"| {weights[values >= envivio_top_mbps].sum() / total_s:.0%} "
            f"| {weights[values >= ladder_mbps[-1]].sum() / total_s:.0%} "
            f"| {weights[values < ladder_mbps[0]].sum() / total_s:.0%} |")
    return "\n".join(lines)


def replace_block(text: str, markers: tuple[str, str], body: str, path: Path) -> str:
    begin, end = markers
    if begin not in text or end not in text:
        raise SplitError(f"{path}: the markers {begin!r} and {end!r} are missing; put them where the table goes")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}"


def build(root: Path, splits_dir: Path = SPLITS_DIR) -> dict[Path, str]:
    """Every output file's intended content, keyed by its path (under ``splits_dir``)."""
    outputs: dict[Path, str] = {}
    rows, train_traces = [], {}
    for network in NETWORKS:
        lists = make_lists(network, root)
        for side in side_order(network):
            paths = lists[side]
            traces = [load_trace(root / path) for path in paths]
            hours = sum(t.duration_s for t in traces) / 3600
            if side == "train":
                train_traces[network.name] = traces
            outputs[splits_dir / network.name / f"{side}.txt"] = list_text(network, side, paths, hours)
            per_source = defaultdict(int)
            for path in paths:
                per_source[source_of(network, path).key] += 1
            rows.append((network.name, side, len(paths), hours, len(ids_of(network, paths)),
                         ", ".join(f"{key} {count}" for key, count in per_source.items())))
    readme = splits_dir / "README.md"
    text = readme.read_text()
    text = replace_block(text, SIZES_MARKERS, sizes_table(rows), readme)
    outputs[readme] = replace_block(text, PROFILE_MARKERS, profile_table(train_traces), readme)
    return outputs


# -- the check ---------------------------------------------------------------------------------

def check_committed(root: Path, splits_dir: Path = SPLITS_DIR) -> list[str]:
    """Problems with the committed lists, read back through the list loader (empty when all is well)."""
    problems = []
    for network in NETWORKS:
        folder = splits_dir / network.name
        lists: dict[str, list[str]] = {}
        for side in side_order(network):
            path = folder / f"{side}.txt"
            if not path.is_file():
                problems.append(f"{path}: missing")
                continue
            try:
                lists[side] = [str(p.relative_to(root)) for p in read_trace_list(path)]
            except (ValueError, OSError) as error:
                problems.append(str(error))
        if set(lists) != set(side_order(network)):
            continue
        ids = {side: ids_of(network, paths) for side, paths in lists.items()}
        # broadband's source split shares unit IDs between train and test (MANIFEST.md): only the
        # id-free test list must be ID-disjoint from the training side there.
        pairs = [("train", "val"), ("train", "test"), ("val", "test")]
        if network.name == "broadband":
            pairs = [("train", "val"), ("train", "test-idfree"), ("val", "test-idfree")]
        for first, second in pairs:
            shared_ids = ids[first] & ids[second]
            if shared_ids:
                problems.append(f"{network.name}: {len(shared_ids)} IDs on both {first} and {second}, "
                                f"e.g. {sorted(shared_ids)[:3]}")
        sides_of_path = defaultdict(list)
        for side in SIDES:
            for path in lists[side]:
                sides_of_path[path].append(side)
        for path, sides in sides_of_path.items():
            if len(sides) > 1:
                problems.append(f"{network.name}: {path} is on {' and '.join(sides)}")
        expected = {f"{s.folder}/{name}" for s in network.all_sources for name in folder_names(s, root)}
        unlisted = sorted(expected - set(sides_of_path))
        if unlisted:
            problems.append(f"{network.name}: {len(unlisted)} files of its folders are on no side, e.g. {unlisted[:3]}")
        if network.name == "broadband":
            if not set(lists["test-idfree"]) <= set(lists["test"]):
                problems.append("broadband: test-idfree.txt holds files that are not in test.txt")
            unit_ids = {fcc_id(Path(path).name)[0] for path in lists["test-idfree"]}
            if unit_ids != MANIFEST_IDFREE_UNIT_IDS or len(lists["test-idfree"]) != MANIFEST_IDFREE_FILES:
                problems.append(f"broadband: test-idfree.txt has {len(lists['test-idfree'])} files of units "
                                f"{sorted(unit_ids)}; MANIFEST.md names {MANIFEST_IDFREE_FILES} files of "
                                f"{sorted(MANIFEST_IDFREE_UNIT_IDS)}")
    stray = sorted(str(p.relative_to(splits_dir)) for p in splits_dir.glob("*/*.txt")
                   if p.parent.name not in {n.name for n in NETWORKS}
                   or p.stem not in side_order(next(n for n in NETWORKS if n.name == p.parent.name)))
    if stray:
        problems.append(f"{splits_dir}: lists no network type uses: {', '.join(stray)}")
    return problems


def check(root: Path, splits_dir: Path = SPLITS_DIR) -> list[str]:
    """Everything ``--check`` verifies: the files equal a rebuild byte for byte, and the lists
    themselves keep the rules (``check_committed``). Empty when all is well."""
    problems = []
    for path, text in build(root, splits_dir).items():
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text() != text:
            old, new = path.read_text().splitlines(), text.splitlines()
            line = next((i for i, (a, b) in enumerate(zip(old, new), start=1) if a != b), min(len(old), len(new)) + 1)
            problems.append(f"{path}:{line}: differs from a rebuild (run {SCRIPT} and review the diff)")
    return problems + check_committed(root, splits_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="verify the committed lists instead of writing: same bytes as a rebuild, every "
                             "listed file in ../shared, no ID on two sides, every file on one side")
    args = parser.parse_args()
    root = shared_traces()
    if root is None:
        print("error: ../shared/traces is absent; the splits are made from (and checked against) it", file=sys.stderr)
        return 2
    try:
        if args.check:
            problems = check(root)
        else:
            outputs = build(root)
    except (SplitError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        print(f"{'FAILED' if problems else 'ok'}: {SPLITS_DIR.relative_to(REPO_ROOT)} checked against {root}"
              + (f", {len(problems)} problems" if problems else ""))
        return 1 if problems else 0
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
