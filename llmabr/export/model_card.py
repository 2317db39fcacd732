"""``MODEL_CARD.md`` of an exported policy: what it is, what it was trained and tested on, how it runs."""

from __future__ import annotations

import json
from pathlib import Path

from llmabr.export.source import PolicySource


def test_results(run_dir: Path, design_name: str) -> list[dict]:
    """Held-out test scores found in the run folder: ``llmabr eval`` outputs (eval-*/summary.json),
    the search's test stage (test/per_trace.json) or test_qoe.json; each with the file it came from."""
    from llmabr.train.evaluate import summarize

    found = []
    for path in sorted(run_dir.glob("eval-*/summary.json")):
        try:
            summary = json.loads(path.read_text())
            policies = summary["policies"]
        except (OSError, ValueError, KeyError):
            continue
        mine = policies.get(design_name) or next(iter(policies.values()), None)
        if mine is None:
            continue
        baselines = {name: stats for name, stats in policies.items() if stats is not mine}
        found.append({"file": str(path), "traces": summary.get("traces", ""), "weights": summary.get("weights", ""),
                      "summary": mine, "baselines": baselines})
    per_trace = run_dir / "test" / "per_trace.json"
    if per_trace.exists():
        try:
            found.append({"file": str(per_trace), "traces": "search test traces", "weights": "policy_best.pt",
                          "summary": summarize(json.loads(per_trace.read_text())), "baselines": {}})
        except (OSError, ValueError, KeyError):
            pass
    if not found and (run_dir / "test_qoe.json").exists():
        try:
            found.append({"file": str(run_dir / "test_qoe.json"), "traces": "", "weights": "policy_best.pt",
                          "summary": json.loads((run_dir / "test_qoe.json").read_text()), "baselines": {}})
        except (OSError, ValueError):
            pass
    return found


def _score(stats: dict) -> str:
    text = f"{stats['qoe_per_chunk']:.3f}"
    if "qoe_per_chunk_ci95" in stats:
        low, high = stats["qoe_per_chunk_ci95"]
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def _normalized(stats: dict) -> str:
    if "normalized" not in stats:
        return "-"
    low, high = stats["normalized_ci95"]
    return f"{stats['normalized']:.3f} [{low:.3f}, {high:.3f}]"


def write_model_card(path: Path, source: PolicySource, layout: dict, export: dict) -> None:
    """Write the card from the run's result.json, its test outputs and the export's measurements."""
    result, config, design = source.result, source.config, source.design
    ppo = config.get("ppo", {})
    lines = [
        f"# Model card: {design.name}", "",
        "## What it is", "",
        f"An adaptive-bitrate policy: design `{design.name}` (origin: {design.origin}"
        + (f", parent `{design.parent}`" if design.parent else "") + "), trained with PPO in the LLM-ABR simulator.",
        f"Exported from `{source.run_dir}` (weights `{source.weights}`)"
        + (f"; {source.note}" if source.note else "") + ".",
    ]
    if design.notes:
        lines += ["", f"Design notes: {design.notes}"]
    lines += [
        "", "One ONNX graph `policy.onnx`: input `obs` float32 [batch, "
        f"{layout['size']}] (the raw measurement row described field by field in `layout.json`), output `logits` "
        f"float32 [batch, {layout['n_levels']}]; the decision is the argmax (level 0 = "
        f"{layout['ladder_kbps'][0]:g} kbps ... level {layout['n_levels'] - 1} = {layout['ladder_kbps'][-1]:g} kbps).",
        f"Video the policy expects: `{layout['video']}`, {layout['chunk_s']:g} s chunks, "
        f"{layout['chunks_total']} chunks per session (`chunks_total`), simulator mode `{layout['mode']}`, QoE "
        f"`{layout['qoe']}`. In training the first chunk was always fetched at level {layout['default_level']} "
        "before the policy's first decision.",
        "", "## Training", "",
        "| | |", "|---|---|",
        f"| network | {result.get('network', '?')} |",
        f"| traces | `{config.get('traces', '?')}` ({result.get('train_traces', '?')} for training, "
        f"{len(result.get('val_traces', []))} held out for validation) |",
        f"| steps | {result.get('steps', '?')} (planned {config.get('total_steps', '?')}) |",
        f"| seed | {result.get('seed', config.get('seed', '?'))} |",
        f"| PPO | lr {ppo.get('learning_rate', '?')}, {ppo.get('n_envs', '?')} players x {ppo.get('n_steps', '?')} "
        f"steps, {ppo.get('n_epochs', '?')} epochs, trunk trained in {ppo.get('trunk_dtype', 'float32')} |",
        f"| wall-clock | {result.get('wall_s', 0.0) / 60.0:.1f} min |",
        f"| status | {result.get('status', '?')}" + (f" ({result['reason']})" if result.get("reason") else "") + " |",
        "", "## Quality", "",
        f"Validation QoE per chunk (best, the checkpoint exported as policy_best.pt): "
        f"{_fmt(result.get('best_val_qoe'))}; final: {_fmt(result.get('final_val_qoe'))}.", "",
    ]
    tests = test_results(source.run_dir, design.name)
    if not tests:
        lines.append(f"Test traces: not evaluated; run `llmabr eval {source.run_dir} --traces DIR`.")
    for test in tests:
        lines.append(f"Test QoE per chunk (95% CI) on `{test['traces']}` ({test['summary'].get('traces', '?')} traces, "
                     f"weights {test['weights']}, from `{test['file']}`): **{_score(test['summary'])}**"
                     + (f"; bitrate {test['summary']['bitrate_kbps']:.0f} kbps, rebuffer "
                        f"{100 * test['summary']['rebuffer_ratio']:.2f} %" if "bitrate_kbps" in test["summary"] else ""))
        if test["baselines"]:
            lines += ["", "| policy | QoE per chunk (95 % CI) | normalized (BB 0, optimum 1) | this policy minus it (95 % CI) "
                      "| verdict |", "|---|---|---|---|---|",
                      f"| this policy | {_score(test['summary'])} | {_normalized(test['summary'])} | | |"]
            for name, stats in test["baselines"].items():
                difference = next((value for key, value in stats.items() if key.endswith("_minus_this")), None)
                lines.append(f"| {name} | {_score(stats)} | {_normalized(stats)} | " + (
                    f"{difference['mean']:+.3f} ({difference['ci95'][0]:+.3f} to {difference['ci95'][1]:+.3f}) | "
                    f"{difference['verdict']} |" if difference else " | |"))
        lines.append("")
    parity, latency, graph = export["parity"], export["latency"], export["graph"]
    lines += [
        "", "## Size and speed", "",
        f"- `policy.onnx`: {export['onnx_bytes']:,} bytes, opset {graph['opset']}, {graph['nodes']} nodes",
        f"- parameters (features, actor trunk, action head; the critic is not exported): {export['parameters']:,}"
        + (f"; {graph['rewrite']['values_packed']:,} weights stored exactly in 3.5 bytes each, decoded when the "
           "session loads" if (graph.get("rewrite") or {}).get("values_packed") else ""),
        f"- decision latency, onnxruntime on one CPU thread, one row: median {latency['median_us']:.1f} us, "
        f"p99 {latency['p99_us']:.1f} us ({latency['runs']} runs, measured during export on {latency['cpus']} CPUs "
        f"with a load average of {latency['load_average_1min']:.1f})",
        "", "## Parity with the trained torch policy", "",
        f"{parity['rows']} measurement rows (recorded from the simulator while BB and RobustMPC played synthetic "
        f"`{layout['network']}` traces, plus random valid rows, some with no chunk played yet), in `parity_rows.npz`:",
        f"- graph arithmetic: {parity['precision']} (float32 in and out)"
        + (f"; float32 only because {parity['float32_fallback_reason']}" if parity["float32_fallback_reason"] else ""),
        f"- max |logit difference| onnxruntime vs torch ({parity['precision']}): {parity['max_abs_logit_diff']:.2e} "
        f"(batch {parity['max_abs_logit_diff_batch']:.2e}, single rows {parity['max_abs_logit_diff_single']:.2e}; "
        f"largest |logit| {parity['logit_abs_max']:.3g}); criterion {parity['criterion']}, tolerance "
        f"{parity['tolerance']:g}",
        f"- different decisions (argmax): {parity['argmax_mismatches']}",
    ]
    if "versus_float32_torch" in parity:
        versus = parity["versus_float32_torch"]
        lines.append(f"- for scale: torch's own float32 evaluation differs from its float64 one by up to "
                     f"{versus['torch_float32_vs_float64_max_abs']:.2e}; this graph vs torch float32: "
                     f"{versus['max_abs_logit_diff']:.2e}, {versus['argmax_mismatches']} different decisions")
    if export.get("tracer_warnings"):
        lines.append("- tracer warnings: " + "; ".join(export["tracer_warnings"]))
    lines += ["", "## Use", "",
              "- a player builds the row of `layout.json` after every chunk and runs the graph (see "
              "README, 'The HTTP server', for an HTTP server that does this: `llmabr serve --policy THIS_FOLDER`).", ""]
    path.write_text("\n".join(lines))


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"
