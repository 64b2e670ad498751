"""Every GPU figure in one command: QLoRA through both backends, a demo run end to end, compare, merge.

    python bench/gpu_check.py [--json gpu-check.json] [--steps 20]
    python bench/gpu_check.py --reduced          # the same checks on a tiny model, on this CPU (the tests run it)
    python bench/gpu_check.py --cpu --only demo  # the demo run on this CPU: its tokens/s vs the time model

Nothing is downloaded. On a CUDA GPU (about 5-8 minutes on an H100/H200):

1. ``qlora-3b/unsloth`` and ``qlora-3b/peft``: a random-weight model with
   Llama-3.2-3B's shape (``model_shapes``), trained through ``stylelora-tui
   train`` with the lab's settings (4-bit NF4, sequence 2048, batch 2 x 4,
   r=16 on all 7 projections), packed so every batch is the estimate's exact
   case: tokens/s (median of the log events after warm-up), peak reserved GPU
   memory, the memory estimate's error, and the time model's predicted
   tokens/s for this card (training/cost.py) with its error.
2. ``demo-run``: the demo model (SmolLM2-135M) for 30 steps through
   ``stylelora-tui train --detach``, stopped after a few steps (``stop``: a
   checkpoint), resumed (``train --resume``) to the end: every step once in
   the event history, a checkpoint, a resume event, an adapter.
3. ``compare``: ``stylelora-tui compare`` on that run; samples/s of batched
   generation, timed from the first finished batch to the last (the model's
   load excluded).
4. ``merge``: ``stylelora-tui export --merge``: a merged 16-bit model folder.

It prints one table and writes it as JSON. Without a CUDA GPU (and without
``--reduced``) it says so and exits 0. ``--reduced`` runs every check on a
tiny random model with few steps: its figures are not measurements, it keeps
the script from rotting between GPU sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def build_model_with_shape(out_dir: Path, shape: Any, texts: list[str], *, dtype: str = "bfloat16",
                           tokenizer_vocab: int = 8000) -> Path:
    """A random-weight Llama with ``shape``'s dimensions (a ``model_shapes.ModelShape``): memory and FLOPs of the real one."""
    from stylelora_tui.training.tiny import build_tiny_llama

    return build_tiny_llama(
        out_dir, texts, vocab_size=tokenizer_vocab, dtype=dtype, model_vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers, num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads, tie_word_embeddings=shape.tie_word_embeddings,
        max_position_embeddings=min(shape.max_position_embeddings or 4096, 131_072),
    )


def cli(*args: str, timeout: float, workspace: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "stylelora_tui.cli", *args, "-w", str(workspace)], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL, cwd=REPO)


def tail(out: subprocess.CompletedProcess[str] | str, n: int = 600) -> str:
    text = out if isinstance(out, str) else (out.stderr or "") + (out.stdout or "")
    return " ".join(text.strip().split())[-n:]


def newest_run(workspace: Path) -> Any:
    from stylelora_tui.runs.workspace import Workspace

    runs = Workspace(workspace).runs()
    return max(runs, key=lambda r: r.path.stat().st_mtime) if runs else None


def device_row() -> tuple[str, Any]:
    """(device name, the cost table's row for it or None; the CPU row is the 2-core dev box's)."""
    import torch

    from stylelora_tui.training import cost

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        return name, cost.gpu_for_device(name)
    cpu = next((g for g in cost.gpu_types() if g.name.startswith("CPU")), None)
    return f"cpu ({os.cpu_count()} threads)", cpu if os.cpu_count() == 2 else None


def training_figures(run: Any, config: dict, workspace: Path, gpu: Any) -> dict[str, Any]:
    """tokens/s, peak memory, the estimate's error and the time model's prediction, from a finished run."""
    from stylelora_tui.runs.events import read_events
    from stylelora_tui.training import cost
    from stylelora_tui.training.estimate import estimate_for_config

    events = read_events(run.events_path)
    logs = [e for e in events if e["type"] == "log" and e.get("tokens_per_s")]
    start = next((e for e in events if e["type"] == "start"), {})
    steady = logs[len(logs) // 3:] or logs  # after warm-up and compilation
    figures: dict[str, Any] = {
        "tokens_per_s": round(statistics.median(e["tokens_per_s"] for e in steady), 1) if steady else None,
        "step_seconds": round(statistics.median(e["step_seconds"] for e in steady if e.get("step_seconds")), 3)
        if any(e.get("step_seconds") for e in steady) else None,
        "gradient_checkpointing": start.get("gradient_checkpointing"),
    }
    peaks = [e["peak_memory_bytes"] for e in events if e.get("memory_kind") == "gpu" and e.get("peak_memory_bytes")]
    checkpointing = bool(start.get("gradient_checkpointing"))
    ran = {**config, "train": {**config["train"], "gradient_checkpointing": checkpointing}}
    estimate = estimate_for_config(ran, search_dirs=(workspace,))
    if peaks and estimate is not None:
        measured = max(peaks)
        figures["peak_reserved_gib"] = round(measured / 2**30, 2)
        figures["estimate_reserved_gib"] = round(estimate.memory.reserved / 2**30, 2)
        figures["estimate_error"] = f"{(estimate.memory.reserved - measured) / measured:+.0%}"
    if gpu is not None and figures["tokens_per_s"]:
        table = cost.cost_table(ran, workspace, search_dirs=(workspace,), gpus=[gpu])
        if table is not None:
            predicted = table.rows[0].tokens_per_s
            figures[f"predicted_tokens_per_s ({gpu.name})"] = round(predicted, 1)
            figures["time_model_error"] = f"{(predicted - figures['tokens_per_s']) / figures['tokens_per_s']:+.0%}"
            # The utilization that would have predicted this run exactly: what to put in data/gpus.toml.
            figures["implied_utilization"] = round(gpu.utilization * figures["tokens_per_s"] / predicted, 3)
    return figures


def check_qlora(workspace: Path, model: Path, backend: str, steps: int, gpu: Any, reduced: bool) -> dict[str, Any]:
    from stylelora_tui import config as config_mod

    cfg = config_mod.defaults()  # the lab: 4-bit, 2048, batch 2 x 4, r=16, all projections
    cfg["model"].update(name=str(model), backend=backend)
    cfg["train"].update(max_steps=steps, save_steps=10_000, sample_steps=-1, packing=True, eval_steps=10_000)
    if reduced:
        cfg["model"]["max_seq_length"] = 128
        cfg["train"]["gradient_accumulation_steps"] = 1
    path = workspace / "configs" / f"qlora-{backend}.yaml"
    config_mod.save(path, cfg)
    started = time.monotonic()
    out = cli("train", str(path), "--name", f"qlora-{backend}", timeout=1800, workspace=workspace)
    run = newest_run(workspace)
    if out.returncode != 0 or run is None:
        return {"ok": False, "note": tail(out)}
    figures = training_figures(run, cfg, workspace, gpu)
    figures["wall_s"] = round(time.monotonic() - started, 1)
    return {"ok": figures["tokens_per_s"] is not None, "figures": figures}


def check_demo_run(workspace: Path, model: str, steps: int, stop_after: int, gpu: Any, sample_steps: int) -> dict[str, Any]:
    """Train, stop with a checkpoint, resume to the end: the run's whole life through the CLI."""
    from stylelora_tui import config as config_mod
    from stylelora_tui.runs.events import read_events, training_history
    from stylelora_tui.runs.run import Run

    cfg = config_mod.preset("cpu-demo")
    cfg["model"]["name"] = model
    cfg["train"].update(max_steps=steps, save_steps=10_000, sample_steps=sample_steps, max_minutes=0.0)
    path = workspace / "configs" / "demo-run.yaml"
    config_mod.save(path, cfg)
    started = time.monotonic()
    out = cli("train", str(path), "--detach", "--name", "demo-run", timeout=600, workspace=workspace)
    if out.returncode != 0:
        return {"ok": False, "note": tail(out)}
    run = Run(Path(out.stdout.strip().splitlines()[-1]))
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and run.is_active():
        if sum(e["type"] == "log" for e in read_events(run.events_path)) >= stop_after:
            break
        time.sleep(0.05)
    stop = cli("stop", run.name, "--wait", timeout=300, workspace=workspace)
    stopped = run.status().get("state")
    checkpoint = run.latest_checkpoint()
    resumed = cli("train", "--resume", run.name, timeout=1800, workspace=workspace)
    events = read_events(run.events_path)
    history = [e["step"] for e in training_history(events)]
    problems = []
    if stop.returncode != 0 or stopped != "stopped":
        problems.append(f"stop: {stopped} ({tail(stop, 200)})")
    if checkpoint is None:
        problems.append("no checkpoint after the stop")
    if resumed.returncode != 0 or run.status().get("state") != "completed":
        problems.append(f"resume: {run.status().get('state')} ({tail(resumed, 300)})")
    if history != list(range(1, steps + 1)):
        problems.append(f"event history is not steps 1..{steps} once each: {history[:5]}...{history[-5:]}")
    if not any(e["type"] == "resume" for e in events) or not run.adapter_dir.exists():
        problems.append("no resume event or no final adapter")
    figures = training_figures(run, cfg, workspace, gpu)
    figures.update(stopped_at=checkpoint.name if checkpoint else None, steps=len(history),
                   wall_s=round(time.monotonic() - started, 1))
    return {"ok": not problems, "figures": figures, "note": "; ".join(problems), "run": run.name}


def check_compare(workspace: Path, run_name: str, prompts: int, samples: int, tokens: int) -> dict[str, Any]:
    """samples/s of compare's batched generation, from the first finished batch to the last."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "stylelora_tui.cli", "compare", run_name, "-w", str(workspace), "--prompts",
               str(prompts), "--samples", str(samples), "--max-new-tokens", str(tokens), "-o",
               str(workspace / "compare.html")]
    started = time.monotonic()
    done: list[float] = []
    lines: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          stdin=subprocess.DEVNULL, cwd=REPO) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if " sample " in line and line.strip().startswith("prompt "):
                done.append(time.monotonic())
        code = process.wait(timeout=1800)
    if code != 0 or not done:
        return {"ok": False, "note": tail("".join(lines))}
    # Samples of one variant finish together (one batched generate): the first batch's end starts the clock.
    batches = max(1, round(len(done) / samples))
    window = done[-1] - done[samples - 1] if len(done) > samples else 0.0
    per_s = (len(done) - samples) / window if window > 0 else None
    return {"ok": True, "figures": {"samples": len(done), "batches": batches, "samples_per_s": per_s and round(per_s, 2),
                                    "new_tokens_per_sample": tokens, "wall_s": round(time.monotonic() - started, 1)}}


def check_merge(workspace: Path, run_name: str) -> dict[str, Any]:
    started = time.monotonic()
    out = cli("export", run_name, "--merge", "-o", str(workspace / "merged"), timeout=1800, workspace=workspace)
    merged = workspace / "merged"
    weights = sum(f.stat().st_size for f in merged.glob("*.safetensors")) if merged.is_dir() else 0
    ok = out.returncode == 0 and (merged / "config.json").exists() and weights > 0
    return {"ok": ok, "figures": {"merged_gib": round(weights / 2**30, 3), "wall_s": round(time.monotonic() - started, 1)},
            "note": "" if ok else tail(out)}


def print_table(report: dict[str, Any]) -> None:
    print(f"\nGPU check on {report['device']} ({'reduced' if report['reduced'] else 'full'}), {report['date']}")
    print(f"{'check':<16} {'ok':<4} figures")
    for name, row in report["checks"].items():
        figures = ", ".join(f"{k} {v}" for k, v in (row.get("figures") or {}).items() if v is not None)
        print(f"{name:<16} {'yes' if row['ok'] else 'NO':<4} {figures}" + (f"  [{row['note']}]" if row.get("note") else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reduced", action="store_true", help="every check on a tiny model, here on the CPU")
    parser.add_argument("--steps", type=int, default=None, help="steps of each QLoRA run (default 20; reduced 4)")
    parser.add_argument("--json", type=Path, default=Path("gpu-check.json"), help="where to write the table as JSON")
    parser.add_argument("--workspace", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--only", nargs="+", choices=["qlora", "demo"], default=["qlora", "demo"],
                        help="qlora: the 3B-shape runs; demo: demo run, compare, merge")
    parser.add_argument("--backends", nargs="+", choices=["unsloth", "peft"], default=["unsloth", "peft"])
    parser.add_argument("--cpu", action="store_true",
                        help="the full checks on this CPU anyway (with --only demo: the demo's measured time vs the model)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not (args.reduced or args.cpu):
        print("bench/gpu_check.py: no CUDA GPU here; nothing to measure (run it on a GPU box; --reduced runs "
              "the same checks on a tiny model here).")
        return 0
    from stylelora_tui.demo import demo_corpus_dir, ensure_demo_workspace
    from stylelora_tui.training.model_shapes import BUILTIN_SHAPES

    steps = args.steps or (4 if args.reduced else 20)
    device, gpu = device_row()
    report: dict[str, Any] = {"device": device, "table_row": gpu.name if gpu else None, "reduced": args.reduced,
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "checks": {}}
    with tempfile.TemporaryDirectory(prefix="stylelora-gpu-check-") as tmp:
        workspace = (args.workspace or Path(tmp)).resolve()
        ensure_demo_workspace(workspace)
        texts = [p.read_text(encoding="utf-8") for p in sorted(demo_corpus_dir().glob("*.md"))]
        checks = report["checks"]
        if "qlora" in args.only:
            shape = BUILTIN_SHAPES["llama-3.2-3b"]
            started = time.monotonic()
            if args.reduced:
                from stylelora_tui.training.tiny import build_tiny_llama

                model = build_tiny_llama(workspace / "models" / "tiny", texts, **TINY)
            else:
                print("building a random model with Llama-3.2-3B's shape ...", flush=True)
                model = build_model_with_shape(workspace / "models" / "llama-3.2-3b-shape", shape, texts)
            report["model_build_s"] = round(time.monotonic() - started, 1)
            for backend in args.backends:
                print(f"qlora-3b/{backend}: {steps} steps ...", flush=True)
                checks[f"qlora-3b/{backend}"] = check_qlora(workspace, model, backend, steps, gpu, args.reduced)
        if "demo" in args.only:
            demo_model = "demo"
            if args.reduced:
                from stylelora_tui.training.tiny import build_tiny_llama

                demo_model = str(build_tiny_llama(workspace / "models" / "tiny-demo", texts, **TINY))
            print("demo-run: 30 steps, stopped and resumed ...", flush=True)
            # On a GPU a demo step takes a fraction of a second: live samples every 5 steps give the stop time to land.
            checks["demo-run"] = demo = check_demo_run(workspace, demo_model, 30, 3, gpu, sample_steps=-1 if args.reduced else 5)
            if demo.get("run") and (Path(workspace) / "runs" / demo["run"] / "adapter").exists():
                print("compare ...", flush=True)
                checks["compare"] = check_compare(workspace, demo["run"], 2, 2 if args.reduced else 8,
                                                  8 if args.reduced else 128)
                print("merge ...", flush=True)
                checks["merge"] = check_merge(workspace, demo["run"])
    print_table(report)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0 if all(row["ok"] for row in report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
