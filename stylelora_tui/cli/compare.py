"""``stylelora-tui compare RUN [-o compare.html]``: arguments and printing only.

The comparison itself is built by ``stylelora_tui.compare.build``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from stylelora_tui.compare.build import COMPARE_JSON, compare
from stylelora_tui.runs.run import RunError
from stylelora_tui.runs.workspace import Workspace


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("run", help="run name, unique name prefix, or run directory")
    parser.add_argument("-o", "--output", type=Path, default=Path("compare.html"), help="HTML file to write (default: compare.html)")
    parser.add_argument("-w", "--workspace", type=Path, default=None,
                        help="workspace folder holding runs/ (default: $STYLELORA_WORKSPACE or the current folder)")
    parser.add_argument("--prompts", type=int, default=3, help="held-out prompts to use (default: 3)")
    parser.add_argument("--samples", type=int, default=5, help="samples per side and prompt (default: 5, as in the lab)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first sample; sample i uses seed + i (default: 0)")
    parser.add_argument("--max-new-tokens", type=int, default=150, help="longest sample in tokens (default: 150)")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 for greedy (default: 0.7)")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling threshold (default: 0.9)")


def run(args: argparse.Namespace) -> int:
    from stylelora_tui.compare import html as compare_html

    root = args.workspace or Path(os.environ.get("STYLELORA_WORKSPACE", "."))
    try:
        the_run = Workspace(Path(root).expanduser().resolve()).find_run(args.run)
        result = compare(
            the_run, prompts=args.prompts, samples=args.samples, seed=args.seed, max_new_tokens=args.max_new_tokens,
            temperature=args.temperature, top_p=args.top_p, progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True),
        )
    except RunError as exc:
        print(f"stylelora-tui compare: {exc}", file=sys.stderr)
        return 2
    (the_run.path / COMPARE_JSON).write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    path = compare_html.write(args.output, result, the_run.events())
    losses = result["eval_loss"]
    print(result["style"]["reading"])
    if "base" in losses and the_run.name in losses:
        print(f"held-out loss: base {losses['base']['eval_loss']:.3f}, adapted {losses[the_run.name]['eval_loss']:.3f}")
    print(f"wrote {path}")
    return 0
