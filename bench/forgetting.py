"""The forgetting check on trained runs, without generating samples: general-English and held-out losses.

    python bench/forgetting.py RUN_DIR [RUN_DIR ...] [--general FILE] [--write FILE]

For each run, the generation process (the one compare uses) scores base and
adapted on the general English text (compare's built-in sample unless
``--general``) as plain text, and on the run's held-out split as it was
trained; it prints both losses, the change of each in percent and whether
the forgetting check flags the run. The fidelity bench's runs
(``~/.cache/stylelora-tui/bench-fidelity/*/runs/*``) are the usual input.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stylelora_tui.compare.forgetting import FORGETTING_THRESHOLD, GENERAL_SPLIT, forgetting_report, general_records, source_name
from stylelora_tui.generation.client import GenerationClient
from stylelora_tui.generation.protocol import BASE, losses_by_variant


def measure(run_dir: Path, general: Path | None) -> dict:
    started = time.perf_counter()
    with GenerationClient([run_dir]) as client:
        client.start(timeout=900)
        general_losses = losses_by_variant(client.collect(client.eval_loss(
            records=general_records(general), data_format="raw_text", split=GENERAL_SPLIT), timeout=3600))
        held_out = losses_by_variant(client.collect(client.eval_loss(), timeout=3600))
    report = forgetting_report(general_losses, held_out, BASE, source_name(general))
    side = next(iter((report or {}).get("variants", {}).values()), {})
    return {"run": str(run_dir), "general": general_losses, "held_out": held_out, **side,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--general", type=Path, default=None, help="general English text (default: the built-in sample)")
    parser.add_argument("--write", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    print(f"{'run':<40} {'general base':>12} {'adapted':>8} {'change':>8} {'held-out change':>16}  flagged (> {FORGETTING_THRESHOLD:.0%})")
    for run_dir in args.runs:
        row = measure(run_dir, args.general)
        rows.append(row)
        held = row.get("held_out_change")
        print(f"{'/'.join(run_dir.parts[-3:]):<40} {row.get('base_loss', float('nan')):>12.3f} "
              f"{row.get('adapted_loss', float('nan')):>8.3f} {row.get('change', float('nan')):>+8.1%} "
              f"{'n/a' if held is None else f'{held:+.1%}':>16}  {'yes' if row.get('flagged') else 'no'}", flush=True)
    if args.write:
        args.write.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
