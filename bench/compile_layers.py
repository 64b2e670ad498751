"""Does torch.compile pay on a CPU? One training step of the demo, eager vs compiled decoder layers.

Loads the cpu-demo preset's model as the trainer does (Unsloth, bf16 weights,
LoRA r=16 on all projections), then times forward + backward + AdamW on packed
2 x 384-token blocks of the embedded corpus, under bf16 autocast, in one mode
per process: ``eager``, or ``compile`` (``nn.Module.compile`` on each decoder
layer: Unsloth's PeftModel forward is excluded from dynamo, so compiling the
whole model compiles nothing). It prints the first step (which includes the
compile) and the median of the rest. Run both modes back to back; the
inductor cache (``/tmp/torchinductor_$USER``) makes a second compile cheap,
so clear it for a cold figure.

Usage::

    python bench/compile_layers.py eager [--steps 8]
    python bench/compile_layers.py compile [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("eager", "compile"))
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    from stylelora_tui.config.presets import preset
    from stylelora_tui.demo import ensure_demo_workspace
    from stylelora_tui.prompting import pack_rows, read_jsonl, tokenize_records
    from stylelora_tui.training import backends
    from stylelora_tui.training.models import ensure_demo_model

    cfg = preset("cpu-demo")
    backends.import_backend("unsloth")
    import torch

    loaded = backends.load(str(ensure_demo_model()), cfg, "unsloth", True, False)
    corpus = Path(ensure_demo_workspace()) / "corpus"
    split = tokenize_records(loaded.tokenizer, read_jsonl(corpus / "train.jsonl"), 1 << 30, "raw_text")
    blocks = pack_rows(split.rows, cfg["model"]["max_seq_length"])
    model = loaded.model
    model.train()
    if args.mode == "compile":
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = 64
        for module in model.modules():
            if type(module).__name__.endswith("DecoderLayer"):
                module.compile()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    seconds = []
    for step in range(args.steps):
        ids = torch.tensor([row["input_ids"] for row in blocks[2 * step: 2 * step + 2]])
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - started)
        print(f"{args.mode} step {step}: {seconds[-1]:.2f} s, loss {loss.item():.4f}", flush=True)
    steady = statistics.median(seconds[2:])
    tokens = ids.numel()
    print("RESULT " + json.dumps({"mode": args.mode, "first_step_s": round(seconds[0], 2), "step_s": round(steady, 3),
                                  "tokens_per_s": round(tokens / steady, 1)}))


if __name__ == "__main__":
    main()
