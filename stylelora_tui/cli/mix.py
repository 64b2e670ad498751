"""``stylelora-tui mix RUN_A RUN_B [...] --method M --weights W,W [--density D] --name NAME``.

Arguments and printing only: the checks and the run folder are
``stylelora_tui.mix``'s, and PEFT's ``add_weighted_adapter`` runs in a child
process (this one never imports torch).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from stylelora_tui.runs.run import RunError
from stylelora_tui.runs.workspace import Workspace

# Kept here (not imported from stylelora_tui.mix) so `--help` stays as light as the other commands'.
METHODS = ("ties", "dare_ties", "dare_linear", "linear", "magnitude_prune", "cat",
           "svd", "ties_svd", "dare_ties_svd", "dare_linear_svd", "magnitude_prune_svd")


def _weights(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 0.6,0.4") from None


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="two or more finished runs (name, unique prefix, or folder)")
    parser.add_argument("--method", required=True, choices=METHODS, metavar="METHOD",
                        help="PEFT's combination_type: " + ", ".join(METHODS) + ". ties, dare_*, magnitude_prune and "
                             "linear need the same rank and target modules; cat and *_svd mix any")
    parser.add_argument("--weights", required=True, type=_weights, metavar="W,W,...",
                        help="one weight per run, in order (e.g. 0.6,0.4; negative subtracts)")
    parser.add_argument("--density", type=float, default=None,
                        help="share of each adapter's weights kept, in (0, 1], for ties, dare_*, magnitude_prune "
                             "and their *_svd forms (default: 0.5)")
    parser.add_argument("--name", required=True, help="name of the new run in the workspace's runs/")
    parser.add_argument("-w", "--workspace", type=Path, default=None,
                        help="workspace folder holding runs/ (default: $STYLELORA_WORKSPACE or the current folder)")


def run(args: argparse.Namespace) -> int:
    from stylelora_tui.mix import MixError, mix, plan_mix

    def cancelled(_signum: int, _frame: object) -> None:
        # Raised where the main thread is (waiting on PEFT's child): mix() kills the child and removes its
        # half-made folder on the way out. The app's Adapters section cancels a mix this way.
        raise MixError("cancelled (SIGTERM); no run was written")

    previous = signal.signal(signal.SIGTERM, cancelled)
    try:
        plan = plan_mix(Workspace.named(args.workspace), args.runs, method=args.method, weights=args.weights,
                        density=args.density, name=args.name)
        for note in plan.notes:
            print(f"note: {note}", file=sys.stderr)
        mixed = mix(plan, progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    except (MixError, RunError) as exc:
        print(f"stylelora-tui mix: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    recipe = ", ".join(f"{source.name} x {weight:g}" for source, weight in zip(plan.sources, plan.weights))
    density = f", density {plan.density:g}" if plan.density is not None else ""
    print(f"mixed run: {mixed.path} ({plan.method}{density}: {recipe})")
    print(f"compare it: stylelora-tui compare {mixed.name}; export it: stylelora-tui export {mixed.name} --merge")
    return 0
