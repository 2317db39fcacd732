"""``llmabr export SOURCE --out DIR``: a trained design as one ONNX graph plus layout.json and a model card.

SOURCE is a run folder of ``llmabr train`` or ``RUN:NAME`` (a design of a search run). The design
is traced in the cage; the exported graph must match the torch policy on recorded and random
measurement rows, or the export fails (exit 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(commands) -> None:
    export = commands.add_parser("export", help="export a trained design to ONNX (policy.onnx, layout.json, MODEL_CARD.md)")
    export.add_argument("source", help="run folder made by llmabr train, or RUN:NAME for design NAME of search run RUN")
    export.add_argument("--out", required=True, type=Path, help="output folder")
    export.add_argument("--video", help="video profile whose ladder goes into layout.json (default: the run's)")
    export.add_argument("--precision", choices=("auto", "float64", "float32"), default="auto",
                        help="graph arithmetic: float64 matches the torch policy within 1e-5 absolute; float32 "
                             "takes about a quarter less time per decision in the browser but matches only within "
                             "1e-5 x max(1, |logit|); auto: float64 where the design runs in it (default)")
    export.add_argument("--json", action="store_true", help="print export.json's data")
    export.set_defaults(handler=run)


def run(args) -> int:
    from llmabr.export import ExportError, export_policy

    try:
        data = export_policy(args.source, args.out, video=args.video, precision=args.precision)
    except ExportError as error:
        print(f"error: export failed: {error}", file=sys.stderr)
        return 1
    except ImportError as error:  # onnx / onnxruntime come with an extra
        print(f"error: {error}; install the export extra: pip install 'llmabr[export]'", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data))
        return 0
    parity, latency = data["parity"], data["latency"]
    if data["source_note"]:
        print(f"source: {data['source_note']}")
    print(f"exported {data['design']} ({data['weights']}) to {Path(args.out).resolve()}: policy.onnx "
          f"{data['onnx_bytes']:,} bytes, {data['parameters']:,} parameters")
    print(f"parity on {parity['rows']} rows ({parity['precision']} graph vs torch in {parity['precision']}): "
          f"max |logit diff| {parity['max_abs_logit_diff']:.2e} ({parity['criterion']}, tolerance "
          f"{parity['tolerance']:g}), {parity['argmax_mismatches']} different decisions")
    if parity["float32_fallback_reason"]:
        print(f"float32 graph: {parity['float32_fallback_reason']}")
    print(f"decision latency (onnxruntime, 1 thread, 1 row): median {latency['median_us']:.1f} us, "
          f"p99 {latency['p99_us']:.1f} us")
    for warning in data["tracer_warnings"]:
        print(f"tracer warning: {warning}")
    return 0
