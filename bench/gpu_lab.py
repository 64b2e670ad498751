"""The lab's settings on a GPU, with each backend: tokens/s and peak GPU memory.

Builds a model with Llama-3.2-3B's shape (28 layers, hidden 3072, 24 heads,
8 KV heads, MLP 8192, vocabulary 128,256, tied embeddings) and random
weights: nothing is downloaded. Trains it with the lab's settings (4-bit NF4,
sequence length 2048, batch 2 x 4, r=16 on all 7 projections) for a few dozen
steps on the demo corpus, once through each backend (Unsloth + TRL, plain
transformers + PEFT + bitsandbytes), through our real trainer, and prints
tokens/s (median of the log events after warm-up) and peak reserved GPU
memory of both, and their ratio. Unsloth claims about 2x plain Hugging Face's
speed with far less memory. Without a CUDA GPU it says so and exits 0.

    python bench/gpu_lab.py [--steps 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LLAMA_3_2_3B = dict(
    hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
    num_key_value_heads=8, model_vocab_size=128_256, max_position_embeddings=131_072, tie_word_embeddings=True,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--backends", nargs="+", default=["unsloth", "peft"])
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench/gpu_lab.py: no CUDA GPU here; nothing to measure (run it on a GPU box).")
        return 0

    from stylelora_tui import config as config_mod
    from stylelora_tui.demo import demo_corpus_dir, ensure_demo_workspace
    from stylelora_tui.runs.events import read_events
    from stylelora_tui.runs.run import Run
    from stylelora_tui.training.tiny import build_tiny_llama

    with tempfile.TemporaryDirectory(prefix="stylelora-gpu-lab-") as tmp:
        workspace = Path(tmp)
        texts = [p.read_text() for p in sorted(demo_corpus_dir().glob("*.md"))]
        print("building a random model with Llama-3.2-3B's shape ...", flush=True)
        model = build_tiny_llama(workspace / "llama-3.2-3b-shape", texts, vocab_size=8000, dtype="bfloat16", **LLAMA_3_2_3B)
        ensure_demo_workspace(workspace)
        results = {}
        for backend in args.backends:
            cfg = config_mod.defaults()  # the lab: 4-bit, 2048, batch 2 x 4, r=16, all projections
            cfg["model"].update(name=str(model), backend=backend)
            cfg["train"].update(max_steps=args.steps, save_steps=10_000, sample_steps=-1)
            path = workspace / "configs" / f"lab-{backend}.yaml"
            config_mod.save(path, cfg)
            started = time.time()
            out = subprocess.run([sys.executable, "-m", "stylelora_tui.cli", "train", "-w", str(workspace), str(path)],
                                 capture_output=True, text=True)
            run = sorted((workspace / "runs").iterdir())[-1]
            events = read_events(Run(run).events_path)
            logs = [e for e in events if e["type"] == "log"]
            if out.returncode != 0 or not logs:
                print(f"{backend}: failed\n{out.stderr[-2000:]}")
                continue
            steady = logs[len(logs) // 3:]  # skip warm-up and compilation
            results[backend] = {
                "tokens_per_s": statistics.median(e["tokens_per_s"] for e in steady if e.get("tokens_per_s")),
                "peak_gib": max(e["peak_memory_bytes"] for e in logs) / 2**30,
                "wall_s": time.time() - started,
            }
            r = results[backend]
            print(f"{backend:>8}: {r['tokens_per_s']:8.0f} tokens/s, peak reserved {r['peak_gib']:.2f} GiB, "
                  f"{args.steps} steps in {r['wall_s']:.0f} s", flush=True)
        if {"unsloth", "peft"} <= results.keys():
            u, p = results["unsloth"], results["peft"]
            print(f"unsloth / peft: {u['tokens_per_s'] / p['tokens_per_s']:.2f}x tokens/s, "
                  f"{u['peak_gib'] / p['peak_gib']:.2f}x peak memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
