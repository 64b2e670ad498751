"""``stylelora-tui compare RUN [-o compare.html]``: arguments and printing only.

The comparison itself is built by ``stylelora_tui.compare.build`` (through the
same ``CompareSession`` the app uses); the sampling defaults are the
generation protocol's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylelora_tui.generation.protocol import SAMPLING_DEFAULTS as DEFAULTS
from stylelora_tui.runs.run import RunError
from stylelora_tui.runs.workspace import Workspace


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("run", nargs="+", help="run name, unique name prefix, or run directory; several runs of one base "
                                               "model are compared side by side (base, A, B, ...)")
    parser.add_argument("-o", "--output", type=Path, default=Path("compare.html"), help="HTML file to write (default: compare.html)")
    parser.add_argument("-w", "--workspace", type=Path, default=None,
                        help="workspace folder holding runs/ (default: $STYLELORA_WORKSPACE or the current folder)")
    parser.add_argument("--prompts", type=int, default=3, help="held-out prompts to use (default: 3)")
    parser.add_argument("--samples", type=int, default=DEFAULTS["n"], help="samples per side and prompt (default: %(default)s, as in the lab)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the first sample; sample i uses seed + i (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULTS["max_new_tokens"], help="longest sample in tokens (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=DEFAULTS["temperature"], help="0 for greedy (default: %(default)s)")
    parser.add_argument("--top-p", type=float, default=DEFAULTS["top_p"], help="nucleus sampling threshold (default: %(default)s)")
    parser.add_argument("--repetition-penalty", type=float, default=DEFAULTS["repetition_penalty"],
                        help="penalty on tokens already written, 1 for none (default: %(default)s)")
    parser.add_argument("--general", type=Path, default=None, metavar="FILE",
                        help="general English text for the forgetting check: .md (## sections), .txt (paragraphs) or "
                             ".jsonl ('text' fields) (default: the built-in sample)")


def run(args: argparse.Namespace) -> int:
    from stylelora_tui.compare.authors import author_line
    from stylelora_tui.compare.build import compare
    from stylelora_tui.compare.forgetting import forgetting_line
    from stylelora_tui.compare.publish import save_compare_json, write_page

    settings = {"n": args.samples, "seed": args.seed, "temperature": args.temperature, "top_p": args.top_p,
                "max_new_tokens": args.max_new_tokens, "repetition_penalty": args.repetition_penalty}
    try:
        workspace = Workspace.named(args.workspace)
        runs = [workspace.find_run(name) for name in args.run]
        if len({run.path for run in runs}) < len(runs):
            raise RunError("a run is named twice: give each run once")
        the_run = runs[0]
        result = compare(runs, prompts=args.prompts, settings=settings,
                         progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True), general=args.general)
    except RunError as exc:
        print(f"stylelora-tui compare: {exc}", file=sys.stderr)
        return 2
    try:
        save_compare_json(result, runs)
        path = write_page(args.output, result, the_run)
    except OSError as exc:
        print(f"stylelora-tui compare: could not write the results: {exc}", file=sys.stderr)
        return 1
    losses = result["eval_loss"]
    print(result["style"]["reading"])
    for run in runs:
        named = f"{run.name}: " if len(runs) > 1 else ""
        if "base" in losses and run.name in losses:
            print(f"{named}held-out loss: base {losses['base']['eval_loss']:.3f}, adapted {losses[run.name]['eval_loss']:.3f}")
        if line := forgetting_line(result.get("forgetting"), run.name):
            print(f"{named}{line}")
    for entry in result["style"].get("by_author") or []:
        print(author_line(entry, result["variants"]))
    print(f"wrote {path}")
    return 0
