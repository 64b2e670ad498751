"""Peak memory of a base-vs-adapted comparison: one model + adapter vs two models.

    python bench/compare_memory.py [--model demo|tiny|FOLDER] [--write FILE]

(a) ``adapter``: the base model with the LoRA adapter (PEFT); base outputs
    come from the same weights under ``disable_adapter()`` (what
    ``stylelora_tui.generation.engine`` does).
(b) ``separate``: the base model and the merged model loaded side by side.
(c) ``four``: the base model with four LoRA adapters loaded beside it, each
    side generated in turn (``set_adapter``), as the generation process holds
    base | A | B | A+B for an N-way compare.
(0) ``baseline``: the same imports, no model: the floor both share.

Each is measured in its own fresh process (peak RSS from ``getrusage``; with
CUDA, ``max_memory_reserved`` too), generating a few greedy tokens from both
sides so the figures include inference. The adapter has random non-zero LoRA
weights (r=16 on all seven projections, the lab's setting): memory does not
depend on whether it was trained.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "You wind the lamp at dusk and count the ships that pass the point."
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> float | None:
    """Reset the kernel's peak-RSS mark (Linux: clear_refs 5) and return the RSS now.

    Importing the CUDA build of torch peaks high for a moment; without the
    reset that import spike, not the models, would be the peak we read.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


def peak(floor: float | None) -> dict:
    import torch

    figures = {"process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "floor_rss_mb": floor, "peak_rss_mb": _status_mb("VmHWM") if floor is not None else None}
    if torch.cuda.is_available():
        figures["cuda_max_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    return figures


def measure(mode: str, base: str, adapter: str, merged: str) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    floor = reset_peak()
    started = time.perf_counter()
    if mode == "baseline":
        return {**peak(floor), "seconds": 0.0}
    tokenizer = AutoTokenizer.from_pretrained(base)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"].to(device)
    kwargs = dict(max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    with torch.no_grad():
        if mode == "adapter":
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device), adapter)
            with model.disable_adapter():
                model.generate(input_ids=ids, **kwargs)
            model.generate(input_ids=ids, **kwargs)
        elif mode == "four":
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device), adapter,
                                              adapter_name="a0")
            for i in range(1, 4):
                model.load_adapter(f"{adapter}-{i}", adapter_name=f"a{i}")
            with model.disable_adapter():
                model.generate(input_ids=ids, **kwargs)
            for i in range(4):
                model.set_adapter(f"a{i}")
                model.generate(input_ids=ids, **kwargs)
        else:
            base_model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device)
            merged_model = AutoModelForCausalLM.from_pretrained(merged, dtype=dtype).to(device)
            base_model.generate(input_ids=ids, **kwargs)
            merged_model.generate(input_ids=ids, **kwargs)
    return {**peak(floor), "seconds": round(time.perf_counter() - started, 1)}


def prepare(base: str, out: Path) -> None:
    """A random LoRA adapter for ``base`` and the model it merges into, both saved."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, init_lora_weights=False, task_type="CAUSAL_LM"))
    model.save_pretrained(out / "adapter")
    for i in range(1, 4):  # three more styles for (c), each with its own random weights
        torch.manual_seed(i)
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.data.normal_(0, 0.02)
        model.save_pretrained(out / f"adapter-{i}")
    model.merge_and_unload().save_pretrained(out / "merged")


def resolve_model(name: str, scratch: Path) -> tuple[str, str]:
    if name in ("demo", "auto"):
        try:
            from stylelora_tui.training.models import DemoUnavailable, ensure_demo_model

            return str(ensure_demo_model(lambda m: print(m, file=sys.stderr))), "SmolLM2-135M-Instruct (demo, float32)"
        except DemoUnavailable as exc:
            if name == "demo":
                raise SystemExit(str(exc))
            name = "tiny"
    if name == "tiny":
        from stylelora_tui.training.tiny import build_tiny_llama

        return str(build_tiny_llama(scratch / "tiny", [PROMPT] * 50)), "tiny random Llama (hidden 64, 2 layers)"
    return name, name


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{args[0]} {args[1] if len(args) > 1 else ''} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="auto", help="demo, tiny, a model folder, or auto (demo if installed, else tiny)")
    parser.add_argument("--write", type=Path, help="write the figures as Markdown here")
    parser.add_argument("--measure", choices=("baseline", "adapter", "separate", "four"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base"), parser.add_argument("--adapter"), parser.add_argument("--merged"), parser.add_argument("--out")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.base, args.adapter, args.merged)))
        return 0
    if args.prepare:
        prepare(args.base, Path(args.out))
        return 0

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        base, label = resolve_model(args.model, scratch)
        child("--prepare", "--base", base, "--out", str(scratch))
        paths = ["--base", base, "--adapter", str(scratch / "adapter"), "--merged", str(scratch / "merged")]
        results = {mode: child("--measure", mode, *paths) for mode in ("baseline", "adapter", "separate", "four")}

    def above(figures: dict) -> float:
        # Peak after the imports, minus the RSS the imports left: what the models cost.
        if figures.get("peak_rss_mb") is not None:
            return figures["peak_rss_mb"] - figures["floor_rss_mb"]
        return figures["process_peak_rss_mb"] - results["baseline"]["process_peak_rss_mb"]

    lines = [
        f"model: {label}; {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        "| setup | peak RSS above imports (MB) | process peak RSS (MB) | CUDA max reserved (MB) | seconds |",
        "|---|---|---|---|---|",
    ]
    names = {"baseline": "imports only", "adapter": "(a) one model + adapter, disable_adapter for base",
             "separate": "(b) base and merged models loaded separately",
             "four": "(c) one model + 4 adapters (base and 4 styles, set_adapter)"}
    for mode, figures in results.items():
        cuda = figures.get("cuda_max_reserved_mb")
        lines.append(f"| {names[mode]} | {above(figures):.0f} | {figures['process_peak_rss_mb']:.0f} | "
                     f"{'n/a' if cuda is None else f'{cuda:.0f}'} | {figures['seconds']} |")
    lines.append("")
    lines.append(f"ratio (b)/(a), peak RSS above the imports: {above(results['separate']) / max(above(results['adapter']), 1e-9):.2f}x")
    lines.append(f"ratio (c)/(a), 4 adapters vs 1 (goal <= 1.2x): {above(results['four']) / max(above(results['adapter']), 1e-9):.2f}x")
    if "cuda_max_reserved_mb" in results["adapter"]:
        lines.append(f"ratio (b)/(a), CUDA max reserved: {results['separate']['cuda_max_reserved_mb'] / results['adapter']['cuda_max_reserved_mb']:.2f}x")
    report = "\n".join(lines)
    print(report)
    if args.write:
        command = f"python bench/compare_memory.py --model {args.model}" + (f" --write {args.write}" if args.write else "")
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(
            "# Compare: one model + adapter vs two models\n\n"
            "Base and adapted outputs come from one loaded model (PEFT `disable_adapter()` for the base), "
            "instead of loading the base and a merged model side by side. Each setup is measured in its own "
            "fresh process, generating 16 greedy tokens from both sides.\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} with:\n\n```\n{command}\n```\n\n{report}\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
