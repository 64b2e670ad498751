"""Adapter methods (``lora.method``): which backend can train each, its PEFT config, its trainable parameters.

Standard library at import (the config form's estimate reads
:func:`trainable_parameters` on every keystroke); PEFT and torch are imported
inside the functions that build the config and the LoRA+ optimizer.

- ``lora``: PEFT ``LoraConfig`` (with ``use_rslora``, ``use_dora``, ``init_lora_weights``).
- ``loraplus``: the same LoRA, trained by PEFT's ``create_loraplus_optimizer``
  (B's learning rate is ``loraplus_lr_ratio`` times A's). Only an optimizer, so
  Unsloth trains it too.
- ``ia3``: PEFT ``IA3Config`` with PEFT's own Llama targets (k_proj, v_proj
  and the feed-forward down_proj): one learned scaling vector per module.
- ``prompt_tuning``: PEFT ``PromptTuningConfig``: ``num_virtual_tokens`` learned
  input embeddings, initialised from the text of the corpus's first sentence.
- ``prefix_tuning``: PEFT ``PrefixTuningConfig``: ``num_virtual_tokens`` learned
  keys and values in every layer's attention (no reparameterisation MLP).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

METHODS = ("lora", "loraplus", "ia3", "prompt_tuning", "prefix_tuning")
LORA_METHODS = ("lora", "loraplus")
#: What Unsloth's ``FastLanguageModel.get_peft_model`` can build (it makes LoRA only).
UNSLOTH_METHODS = LORA_METHODS
#: ``init_lora_weights`` choices that leave the base weights untouched, so the
#: adapter loads on the original base model. PiSSA, OLoRA and CorDA rewrite the
#: base weights; PEFT converts the final adapter back to a plain LoRA, but
#: resuming from a checkpoint (the base rewritten exactly once) is not built yet
#: (README, Adapter methods). LoftQ and EVA need extra configs and data passes.
INIT_LORA_WEIGHTS = ("true", "gaussian")
#: PEFT's defaults for Llama (peft.utils.constants, IA3 target/feedforward mappings).
IA3_TARGETS = ("k_proj", "v_proj", "down_proj")
IA3_FEEDFORWARD = ("down_proj",)


def method_of(lora: dict[str, Any]) -> str:
    method = lora.get("method") if isinstance(lora, dict) else None
    return method if method in METHODS else "lora"


def unsloth_note(method: str) -> str | None:
    """Why a method goes to plain PEFT, or None when Unsloth can train it."""
    if method in UNSLOTH_METHODS:
        return None
    return f"lora.method {method} is not offered by Unsloth (it builds LoRA only); using the plain transformers + PEFT backend"


def trainable_parameters(shape: Any, lora: dict[str, Any]) -> int | None:
    """Trainable parameters of the adapter, as PEFT's ``get_nb_trainable_parameters`` counts them.

    None for the LoRA methods: ``estimate.lora_parameters`` counts those (it
    knows the targets and DoRA).
    """
    method = method_of(lora)
    if method == "ia3":
        shapes = shape.linear_shapes()
        # A feed-forward module scales its input (size in), the others their output (size out).
        per_layer = sum(shapes[m][0] if m in IA3_FEEDFORWARD else shapes[m][1] for m in IA3_TARGETS)
        return per_layer * shape.num_hidden_layers
    if method == "prompt_tuning":
        return int(lora.get("num_virtual_tokens") or 0) * shape.hidden_size
    if method == "prefix_tuning":  # a key and a value per virtual token and layer (the KV heads' width)
        return int(lora.get("num_virtual_tokens") or 0) * shape.num_hidden_layers * 2 * shape.kv_dim
    return None


def first_sentence(corpus: Path) -> str:
    """The first sentence of the first training record: prompt tuning's initial text."""
    with open(corpus / "train.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                text = str(record.get("input") or record.get("output") or "").strip()
                if text:
                    return re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]
    raise ValueError(f"{corpus / 'train.jsonl'} has no text to initialise prompt tuning from")


def peft_config(cfg: dict[str, dict[str, Any]], model_path: str) -> Any:
    """The PEFT config of ``cfg``'s method for the plain PEFT backend."""
    lora = cfg["lora"]
    method = method_of(lora)
    if method == "ia3":
        from peft import IA3Config

        return IA3Config(target_modules=list(IA3_TARGETS), feedforward_modules=list(IA3_FEEDFORWARD), task_type="CAUSAL_LM")
    if method == "prompt_tuning":
        from peft import PromptTuningConfig, PromptTuningInit

        return PromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=int(lora["num_virtual_tokens"]),
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=first_sentence(Path(cfg["data"]["corpus"])),
            tokenizer_name_or_path=model_path,
        )
    if method == "prefix_tuning":
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=int(lora["num_virtual_tokens"]))
    from peft import LoraConfig

    return LoraConfig(**lora_kwargs(lora), task_type="CAUSAL_LM")


def lora_kwargs(lora: dict[str, Any]) -> dict[str, Any]:
    """LoraConfig's (and Unsloth's ``get_peft_model``'s) keyword arguments from the lora section."""
    init = lora.get("init_lora_weights", "true")
    return dict(
        r=lora["r"],
        lora_alpha=lora["lora_alpha"],
        lora_dropout=lora["lora_dropout"],
        target_modules=list(lora["target_modules"]),
        use_rslora=lora["use_rslora"],
        use_dora=lora["use_dora"],
        init_lora_weights=True if init == "true" else init,
        bias="none",
    )


def loraplus_optimizer(model: Any, args: Any, lora_lr_ratio: float) -> Any:
    """PEFT's LoRA+ optimizer over ``model`` with the TrainingArguments' learning rate and weight decay."""
    import torch
    from peft.optimizers import create_loraplus_optimizer

    optimizer_cls: Any = torch.optim.AdamW
    if "8bit" in str(getattr(args.optim, "value", args.optim)):
        import bitsandbytes as bnb

        optimizer_cls = bnb.optim.AdamW8bit
    return create_loraplus_optimizer(
        model, optimizer_cls, lr=args.learning_rate, loraplus_lr_ratio=lora_lr_ratio, weight_decay=args.weight_decay
    )
