"""``stylelora-tui export RUN [--merge] [--push REPO] [-o DIR]``.

Always (re)writes the model card in the adapter folder; ``--merge`` writes a
merged 16-bit model and reports how far its logits are from the adapter
model's; ``--push`` uploads the adapter (or, with ``--merge``, the merged
model) to the Hugging Face Hub.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylelora_tui.runs.run import RunError
from stylelora_tui.runs.workspace import Workspace


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("run", help="run name, unique name prefix, or run directory")
    parser.add_argument("-w", "--workspace", type=Path, default=None,
                        help="workspace folder holding runs/ (default: $STYLELORA_WORKSPACE or the current folder)")
    parser.add_argument("--merge", action="store_true", help="merge the adapter into a 16-bit copy of the base model")
    parser.add_argument("-o", "--output", type=Path, default=None, help="folder for the merged model (default: RUN/merged)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16",
                        help="precision of the merged model (default: bfloat16)")
    parser.add_argument("--push", metavar="REPO", help="push to this Hugging Face Hub repo (the merged model with --merge, else the adapter)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")


def run(args: argparse.Namespace) -> int:
    from stylelora_tui import export

    try:
        the_run = Workspace.named(args.workspace).find_run(args.run)
        if args.push:
            export.check_repo_id(args.push)  # fail before any slow step
        card = export.write_model_card(the_run, repo_id=args.push if args.push and not args.merge else None)
        print(f"model card: {card}", file=sys.stderr)
        folder = the_run.adapter_dir
        if args.merge:
            result = export.merge(the_run, args.output, dtype=args.dtype, log=lambda m: print(f"  {m}", file=sys.stderr))
            folder = Path(result["path"])
            print(f"merged model: {folder} ({result['dtype']})", file=sys.stderr)
            print(
                f"check: merged vs adapter logits on {result['prompts']} held-out prompts: max abs difference "
                f"{result['max_abs_diff']:.3g} (logits up to {result['max_abs_logit']:.3g})"
            )
        if args.push:
            url = export.push(folder, args.push, private=args.private)
            print(f"pushed {folder} to {url}")
    except (export.ExportError, RunError) as exc:
        print(f"stylelora-tui export: {exc}", file=sys.stderr)
        return 2
    return 0
