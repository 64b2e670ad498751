"""``stylelora-tui export RUN [--merge | --gguf [--quant Q]] [--push REPO] [-o DIR]`` and ``export RUN... --vllm DIR``.

Always (re)writes the model card in the adapter folder; ``--merge`` writes a
merged 16-bit model and reports how far its logits are from the adapter
model's; ``--gguf`` writes GGUF files (merged, base + LoRA) and Ollama
Modelfiles; ``--push`` uploads the adapter (or, with ``--merge`` or
``--gguf``, what they wrote) to the Hugging Face Hub. ``--vllm DIR`` takes
one run or several and writes their adapters, a ``serve.sh`` and request
examples for one vLLM server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylelora_tui.runs.run import Run, RunError
from stylelora_tui.runs.workspace import Workspace


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("run", nargs="+", help="run name, unique name prefix, or run directory (several with --vllm)")
    parser.add_argument("-w", "--workspace", type=Path, default=None,
                        help="workspace folder holding runs/ (default: $STYLELORA_WORKSPACE or the current folder)")
    parser.add_argument("--merge", action="store_true", help="merge the adapter into a 16-bit copy of the base model")
    parser.add_argument("--gguf", action="store_true",
                        help="write GGUF files for llama.cpp/Ollama: merged model, base + LoRA adapter, Modelfiles (offline)")
    parser.add_argument("--quant", choices=("f16", "q8_0", "bf16", "f32"), default="f16",
                        help="with --gguf: the GGUF type of the models (default: f16; the adapter stays 16/32-bit)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="folder for the merged model (default: RUN/merged) or, with --gguf, the GGUF files (RUN/gguf)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16",
                        help="precision of the merged model (default: bfloat16)")
    parser.add_argument("--push", metavar="REPO", help="push to this Hugging Face Hub repo (the merged model with --merge, else the adapter)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--vllm", metavar="DIR", type=Path, default=None,
                        help="write the runs' adapters, serve.sh and request examples for one vLLM server into DIR")
    parser.add_argument("--force", action="store_true", help="with --vllm: replace DIR when it is not empty")


def run(args: argparse.Namespace) -> int:
    from stylelora_tui import export

    if args.vllm is not None:
        return _run_vllm(args)
    if len(args.run) > 1:
        print(f"stylelora-tui export: {len(args.run)} runs given: several runs go together only with --vllm DIR "
              "(--merge and --push take one run)", file=sys.stderr)
        return 2
    if args.force:
        print("stylelora-tui export: --force goes with --vllm DIR", file=sys.stderr)
        return 2
    if args.gguf and args.merge:
        print("stylelora-tui export: --gguf already writes a merged model (as GGUF); drop --merge, or run them one after the other",
              file=sys.stderr)
        return 2
    try:
        the_run = Workspace.named(args.workspace).find_run(args.run[0])
        if args.push:
            export.check_repo_id(args.push)  # fail before any slow step
        card = export.write_model_card(the_run, repo_id=args.push if args.push and not (args.merge or args.gguf) else None)
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
        if args.gguf:
            folder = _run_gguf(the_run, args)
        if args.push:
            url = export.push(folder, args.push, private=args.private)
            print(f"pushed {folder} to {url}")
    except (export.ExportError, RunError) as exc:
        print(f"stylelora-tui export: {exc}", file=sys.stderr)
        return 2
    return 0


def _run_gguf(the_run: Run, args: argparse.Namespace) -> Path:
    from stylelora_tui import export_gguf

    def log(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    result = export_gguf.write_gguf_export(the_run, args.output, quant=args.quant, log=log)
    check = result.merge_check
    print(f"check: merged vs adapter logits on {check['prompts']} held-out prompts: max abs difference "
          f"{check['max_abs_diff']:.3g} (logits up to {check['max_abs_logit']:.3g})")
    print(f"merged GGUF: {result.merged}")
    print(f"base GGUF: {result.base}")
    print(f"LoRA adapter GGUF: {result.adapter}")
    print(f"Ollama: {result.modelfile} (ollama create NAME -f {result.modelfile})")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return result.path


def _run_vllm(args: argparse.Namespace) -> int:
    from stylelora_tui import export_vllm
    from stylelora_tui.export import ExportError

    clashing = [flag for flag, given in (("--merge", args.merge), ("--gguf", args.gguf), ("--push", args.push), ("-o", args.output),
                                         ("--private", args.private)) if given]
    if clashing:
        print(f"stylelora-tui export: --vllm does not go with {', '.join(clashing)} (those take one run, without --vllm)",
              file=sys.stderr)
        return 2
    try:
        workspace = Workspace.named(args.workspace)
        runs = [workspace.find_run(name) for name in args.run]
        result = export_vllm.write_vllm_export(runs, args.vllm, force=args.force)
    except (ExportError, RunError) as exc:
        print(f"stylelora-tui export: {exc}", file=sys.stderr)
        return 2
    for adapter in result.adapters:
        print(f"adapter {adapter.name}: {result.path / adapter.name} (run {adapter.run_name}, rank {adapter.rank})")
    print(f"serve: {result.serve_script} (base {result.base}, --max-lora-rank {result.max_lora_rank}, "
          f"--max-loras {len(result.adapters)})")
    print(f"requests: {result.readme}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
