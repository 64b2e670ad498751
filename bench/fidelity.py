"""Does the adapter write like the author? The product's own measure, end to end.

For each training variant (a config override, e.g. the data format), this
prepares the corpus, trains the demo model through ``stylelora-tui train`` for a
fixed budget of training time, runs ``compare`` on held-out prompts with fixed
seeds, and prints:

- held-out loss, base vs adapted (compare's own figure);
- the style distance (compare's Burrows's Delta) of base and adapted samples
  to the held-out text, the improvement in percent, and a bootstrap interval
  for it (samples resampled within each side);
- the floor: the author's own training passages scored the same way (what a
  perfect imitation would get);
- the share of samples that loop (a phrase coming back 3+ times).

The same number of training steps for every variant would favour the shorter
format; the budget is time: a short probe run measures each variant's seconds
per step, and the run gets as many steps as fit (``train.max_minutes`` at twice
the budget only guards against a runaway).

Usage::

    python bench/fidelity.py [--corpus DIR] [--minutes 10] [--variant NAME:KEY=VALUE,...]
                             [--decode KEY=VALUE,...] [--prompts 8] [--samples 3] [--json FILE]

``--decode`` (repeatable) compares each trained run under several decoding
settings; ``--reuse`` keeps the runs of an earlier call in the same workspace.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VARIANTS = ["instruction:data.format=instruction", "raw_text:data.format=raw_text,train.packing=true"]


def parse_pairs(text: str) -> dict[str, Any]:
    import yaml

    pairs = {}
    for pair in filter(None, text.split(",")):
        key, _, value = pair.partition("=")
        pairs[key.strip()] = yaml.safe_load(value)
    return pairs


def train(workspace: Path, name: str, overrides: dict[str, Any], extra: dict[str, Any]) -> Path:
    """One run of the cpu-demo preset with ``overrides`` and ``extra`` (dotted keys); returns its folder."""
    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.events import read_events
    from stylelora_tui.runs.run import Run

    cfg = config_mod.preset("cpu-demo")
    cfg["data"]["corpus"] = str(workspace / "corpus")
    for key, value in {**overrides, **extra}.items():
        section, _, field = key.partition(".")
        cfg[section][field] = value
    path = workspace / "configs" / f"{name}.yaml"
    config_mod.save(path, cfg)
    out = subprocess.run([sys.executable, "-m", "stylelora_tui.cli", "train", "-w", str(workspace), str(path), "--detach",
                          "--name", name], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"train {name} failed to start: {out.stderr}")
    run = Run(Path(out.stdout.strip()))
    while run.is_active():
        time.sleep(1)
    events = read_events(run.events_path)
    if events[-1].get("state") != "completed":
        raise SystemExit(f"run {name} did not complete: {events[-1].get('error')}\n{run.log_path.read_text()[-2000:]}")
    return run.path


def seconds_per_step(run_dir: Path) -> float:
    from stylelora_tui.runs.events import read_events

    times = [e["step_seconds"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "log"][1:]
    return statistics.median(times)


def improvement(base: float | None, adapted: float | None) -> float | None:
    return None if not base or adapted is None else (base - adapted) / base * 100


def bootstrap(author: list[str], base: list[str], adapted: list[str], rounds: int, seed: int = 0) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of the improvement when each side's samples are resampled."""
    from stylelora_tui.compare.stylometry import burrows_delta

    rng = random.Random(seed)
    values = []
    for _ in range(rounds):
        groups = {"base": rng.choices(base, k=len(base)), "adapted": rng.choices(adapted, k=len(adapted))}
        deltas, _ = burrows_delta(author, groups)
        if (value := improvement(deltas["base"], deltas["adapted"])) is not None:
            values.append(value)
    values.sort()
    return values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]


def measure(run_dir: Path, workspace: Path, decode: dict[str, Any], prompts: int, samples: int, rounds: int) -> dict[str, Any]:
    from stylelora_tui.compare.build import compare
    from stylelora_tui.compare.stylometry import burrows_delta, loop_share
    from stylelora_tui.prompting import read_jsonl
    from stylelora_tui.runs.run import Run

    settings = {"n": samples, "seed": 0, **decode}
    started = time.perf_counter()
    result = compare(Run(run_dir), prompts=prompts, settings=settings)
    seconds = time.perf_counter() - started
    texts = {v: [s["text"] for p in result["prompts"] for s in p["samples"][v]] for v in result["variants"]}
    name = result["variants"][1]
    author = [r["output"] for r in read_jsonl(workspace / "corpus" / "eval.jsonl")]
    own = [r["output"] for r in random.Random(0).sample(read_jsonl(workspace / "corpus" / "train.jsonl"), len(texts[name]))]
    deltas, _ = burrows_delta(author, {"base": texts["base"], "adapted": texts[name], "author": own})
    low, high = bootstrap(author, texts["base"], texts[name], rounds)
    losses = result["eval_loss"]
    return {
        "decode": {**settings}, "compare_seconds": round(seconds, 1), "samples": len(texts[name]),
        "eval_loss_base": losses.get("base", {}).get("eval_loss"), "eval_loss_adapted": losses.get(name, {}).get("eval_loss"),
        "delta_base": deltas["base"], "delta_adapted": deltas["adapted"], "delta_author_floor": deltas["author"],
        "improvement_pct": improvement(deltas["base"], deltas["adapted"]), "interval_pct": [low, high],
        "loops_base": loop_share(texts["base"]), "loops_adapted": loop_share(texts[name]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=None, help="source folder of the author's text (default: the embedded demo corpus)")
    parser.add_argument("--workspace", type=Path, default=None, help="where runs go (default: a folder per corpus in the cache)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per variant (default: 10)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    parser.add_argument("--decode", action="append", default=[], metavar="KEY=VALUE,...",
                        help="sampling settings to compare with (repeatable; default: compare's defaults)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--reuse", action="store_true", help="keep the runs already in the workspace")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from stylelora_tui import paths
    from stylelora_tui.corpus.pipeline import PrepareOptions, prepare
    from stylelora_tui.demo import demo_corpus_dir
    from stylelora_tui.runs.workspace import Workspace

    corpus = (args.corpus or demo_corpus_dir()).resolve()
    workspace = (args.workspace or paths.cache_dir() / "bench-fidelity" / corpus.name).resolve()
    if not args.reuse:
        shutil.rmtree(workspace, ignore_errors=True)
    Workspace(workspace).ensure()
    if not (workspace / "corpus" / "train.jsonl").exists():
        prepare([corpus], workspace / "corpus", PrepareOptions())
    variants = args.variant or DEFAULT_VARIANTS
    decodes = [parse_pairs(d) for d in args.decode] or [{}]
    rows = []
    for spec in variants:
        name, _, pairs = spec.partition(":")
        overrides = parse_pairs(pairs)
        run_dir = workspace / "runs" / name
        if not (args.reuse and (run_dir / "adapter").exists()):
            shutil.rmtree(run_dir, ignore_errors=True)
            probe = train(workspace, f"{name}-probe", overrides, {"train.max_steps": 4, "train.save_steps": 1000,
                                                                   "train.sample_steps": -1, "train.eval_steps": 1000})
            per_step = seconds_per_step(probe)
            shutil.rmtree(probe)
            steps = max(4, int(args.minutes * 60 / per_step))
            print(f"{name}: {per_step:.2f} s a step, so {steps} steps in {args.minutes:g} minutes", flush=True)
            run_dir = train(workspace, name, overrides, {
                "train.max_steps": steps, "train.max_minutes": args.minutes * 2, "train.save_steps": max(15, steps // 4),
                "train.sample_steps": -1,
            })
        from stylelora_tui.runs.events import read_events

        events = read_events(run_dir / "events.jsonl")
        summary = next(e for e in events if e["type"] == "summary")
        for decode in decodes:
            figures = measure(run_dir, workspace, decode, args.prompts, args.samples, args.bootstrap)
            row = {"variant": name, "overrides": overrides, "steps": summary["step"],
                   "train_seconds": summary["train_runtime"], "tokens_seen": summary["tokens_seen"], **figures}
            rows.append(row)
            print(json.dumps(row), flush=True)

    print(f"\ncorpus: {corpus}  ({args.prompts} held-out prompts x {args.samples} samples a side, seeds 0..)")
    print(f"{'variant':<14} {'decode':<34} {'steps':>5} {'loss base>adapted':>18} {'Delta base':>10} {'adapted':>8} "
          f"{'floor':>6} {'closer':>7} {'95% interval':>15} {'loops b/a':>10}")
    for r in rows:
        decode = ",".join(f"{k}={v}" for k, v in r["decode"].items() if k not in ("n", "seed")) or "defaults"
        loss = f"{r['eval_loss_base']:.2f}>{r['eval_loss_adapted']:.2f}" if r["eval_loss_adapted"] else "-"
        print(f"{r['variant']:<14} {decode:<34} {r['steps']:>5} {loss:>18} {r['delta_base']:>10.3f} {r['delta_adapted']:>8.3f} "
              f"{r['delta_author_floor']:>6.3f} {r['improvement_pct']:>6.1f}% [{r['interval_pct'][0]:>5.1f}, {r['interval_pct'][1]:>5.1f}] "
              f"{r['loops_base']:>4.2f}/{r['loops_adapted']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"corpus": str(corpus), "minutes": args.minutes, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
