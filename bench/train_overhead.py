"""What our trainer machinery costs: ours vs a minimal lab-notebook script.

Trains the same model on the same records with the same settings,
(a) through ``stylelora-tui train`` (the detached trainer subprocess, event
log, status file, callbacks) and (b) through a minimal script that calls
Unsloth and TRL's ``SFTTrainer`` directly, as the lab notebook does. Each run
is its own process; the variants alternate (a, b, a, b, ...) so drift on a
shared machine hits both. Both report the same figures, measured the same way:

- tokens/s: non-padding tokens seen / the Trainer's own ``train_runtime``
- passages/s: tokens/s / the mean tokens of one training passage in that
  variant's format (chat template and instruction included where there are
  some): how much of the author's corpus is learned per second
- peak memory: the training process's peak RSS (``ru_maxrss``) on a CPU, or
  ``torch.cuda.max_memory_reserved`` on a GPU

Live samples, evaluation and mid-run checkpoints are switched off in (a), since
(b) does none of them. (a) uses our defaults; ``--variant NAME:KEY=VALUE,...``
adds runs of ours with config overrides (e.g. ``data.format=raw_text``) to
measure one lever at a time. Usage::

    python bench/train_overhead.py [--model demo|PATH] [--steps 8] [--rounds 3] [--variant ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

PLAIN_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from unsloth import FastLanguageModel
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model_path, corpus, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=model_path, max_seq_length=settings["max_seq_length"],
        load_in_4bit=settings["load_in_4bit"], dtype=None)
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=32, lora_dropout=0, bias="none",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        use_gradient_checkpointing="unsloth", random_state=3407)
    rows = [json.loads(line) for line in open(corpus + "/train.jsonl")]
    def to_prompt_completion(r):
        user = [{"role": "user", "content": r["instruction"] + "\\n\\n" + r["input"]}]
        prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        return {"prompt": prompt, "completion": r["output"] + tokenizer.eos_token}
    dataset = Dataset.from_list([to_prompt_completion(r) for r in rows])
    trainer = SFTTrainer(
        model=model, processing_class=tokenizer, train_dataset=dataset,
        args=SFTConfig(
            output_dir=sys.argv[4], per_device_train_batch_size=settings["batch"],
            gradient_accumulation_steps=settings["accum"], max_steps=settings["steps"],
            learning_rate=2e-4, warmup_steps=0, logging_steps=1, save_strategy="no",
            optim="adamw_8bit" if torch.cuda.is_available() else "adamw_torch",
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
            use_cpu=not torch.cuda.is_available(), max_length=settings["max_seq_length"],
            report_to="none", seed=3407, include_num_input_tokens_seen="non_padding",
            completion_only_loss=True, dataset_num_proc=1))
    out = trainer.train()
    peak = (torch.cuda.max_memory_reserved() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print("RESULT " + json.dumps({"train_runtime": out.metrics["train_runtime"],
          "tokens": trainer.state.num_input_tokens_seen, "peak_memory_bytes": peak,
          "tokens_per_passage": sum(len(ids) for ids in trainer.train_dataset["input_ids"]) / len(trainer.train_dataset)}))
    """
)


def corpus_without_eval(workspace: Path) -> Path:
    """The demo corpus's training records only: neither variant evaluates."""
    from stylelora_tui.demo import ensure_demo_workspace

    demo = Path(ensure_demo_workspace())
    corpus = workspace / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo / "corpus" / "train.jsonl", corpus / "train.jsonl")
    return corpus


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, object]]:
    """``train.gradient_checkpointing=false`` -> {"train": {"gradient_checkpointing": False}} (YAML values)."""
    import yaml

    overrides: dict[str, dict[str, object]] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        section, _, name = key.partition(".")
        overrides.setdefault(section, {})[name] = yaml.safe_load(value)
    return overrides


def run_ours(workspace: Path, model: str, settings: dict, overrides: dict | None = None) -> dict:
    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.events import read_events

    cfg = config_mod.defaults()
    cfg["model"].update(name=model, max_seq_length=settings["max_seq_length"], load_in_4bit=settings["load_in_4bit"], backend="unsloth")
    cfg["train"].update(
        per_device_train_batch_size=settings["batch"], gradient_accumulation_steps=settings["accum"],
        max_steps=settings["steps"], warmup_steps=0, save_steps=10_000, sample_steps=-1,
    )
    cfg["data"]["corpus"] = str(workspace / "corpus")
    for section, values in (overrides or {}).items():
        cfg[section].update(values)
    config_path = workspace / "configs" / "bench.yaml"
    config_mod.save(config_path, cfg)
    result = subprocess.run(
        [sys.executable, "-m", "stylelora_tui.cli", "train", "-w", str(workspace), str(config_path), "--detach"],
        capture_output=True, text=True, check=True,
    )
    run_dir = Path(result.stdout.strip())
    from stylelora_tui.runs.run import Run

    run = Run(run_dir)
    import time

    while run.is_active():
        time.sleep(0.5)
    events = read_events(run.events_path)
    summary = next(e for e in events if e["type"] == "summary")
    start = next(e for e in events if e["type"] == "start")
    end = events[-1]
    if end.get("state") != "completed":
        raise SystemExit(f"our run failed: {end.get('error')}\n{run.log_path.read_text()[-3000:]}")
    return {"train_runtime": summary["train_runtime"], "tokens": summary["tokens_seen"], "peak_memory_bytes": end["peak_memory_bytes"],
            "tokens_per_passage": start["train_tokens"] / start["train_records"]}


def run_plain(workspace: Path, model_path: str, settings: dict) -> dict:
    out_dir = workspace / "plain-out"
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_SCRIPT, model_path, str(workspace / "corpus"), json.dumps(settings), str(out_dir)],
        capture_output=True, text=True,
    )
    line = next((l for l in result.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"the plain script failed:\n{result.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo", help='"demo" (SmolLM2-135M) or a local model folder')
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--accum", type=int, default=2)
    parser.add_argument("--max-seq-length", type=int, default=384)
    parser.add_argument("--load-in-4bit", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
        help="one more run of ours with config overrides, e.g. nogc:train.gradient_checkpointing=false "
             "(repeatable; each is compared with the plain script)",
    )
    parser.add_argument("--plain", action=argparse.BooleanOptionalAction, default=True, help="run the plain lab script")
    parser.add_argument("--ours", action=argparse.BooleanOptionalAction, default=True, help="run ours with the bench settings")
    args = parser.parse_args()
    settings = {"steps": args.steps, "batch": args.batch, "accum": args.accum,
                "max_seq_length": args.max_seq_length, "load_in_4bit": args.load_in_4bit}

    model_path = args.model
    if args.model == "demo":
        from stylelora_tui.training.models import ensure_demo_model

        model_path = str(ensure_demo_model(print))
    runners: dict[str, Any] = {}
    if args.ours:
        runners["ours"] = lambda ws: run_ours(ws, args.model, settings)
    for spec in args.variant:
        name, _, pairs = spec.partition(":")
        overrides = parse_overrides([p for p in pairs.split(",") if p])
        runners[name] = lambda ws, overrides=overrides: run_ours(ws, args.model, settings, overrides)
    if args.plain:
        runners["plain"] = lambda ws: run_plain(ws, model_path, settings)
    results: dict[str, list[dict]] = {name: [] for name in runners}
    with tempfile.TemporaryDirectory(prefix="stylelora-bench-") as tmp:
        workspace = Path(tmp)
        (workspace / "configs").mkdir()
        corpus_without_eval(workspace)
        for round_ in range(args.rounds):
            for name, runner in runners.items():
                figures = runner(workspace)
                figures["tokens_per_s"] = figures["tokens"] / figures["train_runtime"]
                # The corpus learned per second: one passage is one record, whatever its format costs in tokens.
                figures["passages_per_s"] = figures["tokens_per_s"] / figures["tokens_per_passage"]
                results[name].append(figures)
                print(f"round {round_ + 1} {name:>8}: {figures['tokens_per_s']:7.1f} tokens/s, "
                      f"{figures['passages_per_s']:5.3f} passages/s ({figures['tokens_per_passage']:.0f} tokens each), "
                      f"peak {figures['peak_memory_bytes'] / 2**30:.2f} GiB, {figures['tokens']} tokens "
                      f"in {figures['train_runtime']:.1f} s", flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print()
    for name in results:
        line = (f"median {name:>8}: {median(name, 'tokens_per_s'):7.1f} tokens/s, {median(name, 'passages_per_s'):.3f} passages/s, "
                f"peak {median(name, 'peak_memory_bytes') / 2**30:.2f} GiB")
        if "plain" in results and name != "plain":
            line += (f"   ratio to plain: tokens/s {median(name, 'tokens_per_s') / median('plain', 'tokens_per_s'):.2f}x, "
                     f"passages/s {median(name, 'passages_per_s') / median('plain', 'passages_per_s'):.2f}x, "
                     f"peak memory {median(name, 'peak_memory_bytes') / median('plain', 'peak_memory_bytes'):.2f}x")
        print(line)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
