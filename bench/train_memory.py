"""Does the trainer's memory level off? Resident memory at steps 10, 50 and 100.

Trains the demo preset (or ``--model``) through ``stylelora-tui train`` once per
variant and reads the resident set size the trainer records with every log
event. Variants run one after another in this process tree; by default the
preset as it is (packed), unpacked records (a new batch shape every step),
and unpacked with the heap trim switched off (``STYLELORA_MALLOC_TRIM=0``),
the baseline. The goal: after step 10, RSS grows by less than 10% over the run.

Usage::

    python bench/train_memory.py [--steps 100] [--at 10,50,100] [--variant NAME:KEY=VALUE,...]
    python bench/train_memory.py --run RUN_DIR [--at 10,50,100]    # read a finished run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_VARIANTS = [
    "packed:",  # the demo preset: raw text packed into fixed 384-token blocks
    "unpacked:data.format=instruction,train.packing=false",  # a new batch shape every step
    "unpacked-untrimmed:data.format=instruction,train.packing=false,env.STYLELORA_MALLOC_TRIM=0",
]


def rss_by_step(run_dir: Path) -> dict[int, int]:
    from stylelora_tui.runs.events import read_events

    return {e["step"]: e["memory_bytes"] for e in read_events(run_dir / "events.jsonl")
            if e["type"] == "log" and e.get("memory_kind") == "rss"}


def report(name: str, rss: dict[int, int], at: list[int]) -> dict:
    steps = [s for s in at if s in rss]
    first, last = steps[0] if steps else None, steps[-1] if steps else None
    growth = (rss[last] - rss[first]) / rss[first] * 100 if steps and len(steps) > 1 else None
    cells = "  ".join(f"step {s}: {rss[s] / 2**30:.2f} GiB" for s in steps)
    print(f"{name:>10}: {cells}   growth after step {first}: "
          + (f"{growth:+.1f}%" if growth is not None else "n/a"), flush=True)
    return {"name": name, "rss": {s: rss[s] for s in steps}, "growth_pct": growth, "peak": max(rss.values(), default=None)}


def train(workspace: Path, name: str, model: str, steps: int, overrides: dict, env: dict) -> Path:
    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.run import Run

    cfg = config_mod.preset("cpu-demo")
    cfg["model"]["name"] = model
    cfg["data"]["corpus"] = str(workspace / "corpus")
    cfg["train"].update(max_steps=steps, save_steps=10_000, sample_steps=-1, eval_steps=10_000)
    for key, value in overrides.items():
        section, _, field = key.partition(".")
        cfg[section][field] = value
    path = workspace / "configs" / f"{name}.yaml"
    config_mod.save(path, cfg)
    out = subprocess.run([sys.executable, "-m", "stylelora_tui.cli", "train", "-w", str(workspace), str(path), "--detach",
                          "--name", name], capture_output=True, text=True, env={**os.environ, **env}, check=True)
    run = Run(Path(out.stdout.strip()))
    while run.is_active():
        time.sleep(0.5)
    return run.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--corpus", type=Path, default=None, help="a prepared corpus folder (default: the demo's)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--at", default="10,50,100", help="steps to report (the first is the baseline)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="config overrides (section.key) and env.NAME=VALUE for the trainer's environment")
    parser.add_argument("--run", type=Path, default=None, help="only read this finished run")
    args = parser.parse_args(argv)
    at = [int(s) for s in args.at.split(",")]
    if args.run:
        report(args.run.name, rss_by_step(args.run), at)
        return 0

    import yaml

    from stylelora_tui.demo import ensure_demo_workspace

    corpus = args.corpus or Path(ensure_demo_workspace()) / "corpus"
    with tempfile.TemporaryDirectory(prefix="stylelora-memory-") as tmp:
        workspace = Path(tmp)
        (workspace / "configs").mkdir()
        shutil.copytree(corpus, workspace / "corpus")
        for spec in args.variant or DEFAULT_VARIANTS:
            name, _, pairs = spec.partition(":")
            overrides, env = {}, {}
            for pair in filter(None, pairs.split(",")):
                key, _, value = pair.partition("=")
                if key.startswith("env."):
                    env[key[4:]] = value
                else:
                    overrides[key] = yaml.safe_load(value)
            run_dir = train(workspace, name, args.model, args.steps, overrides, env)
            report(name, rss_by_step(run_dir), at)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
