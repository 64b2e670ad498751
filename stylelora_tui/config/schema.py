"""The run config's schema: every key, its type, default (the lab's value) and help.

Keys are the libraries' own names (PEFT ``LoraConfig``, TRL ``SFTConfig``)
except where marked as ours in the README. Keys may be added over time but
never renamed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BACKENDS = ["auto", "unsloth", "peft"]
DEMO_MODEL = "demo"


@dataclass(frozen=True)
class Field:
    """One config key: its type, default, bounds and a line of help."""

    kind: str  # "str" | "int" | "float" | "bool" | "list" | "choice" | "bool_or_auto"
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    exclusive_maximum: float | None = None
    nonempty: bool = False
    allowed_items: tuple[str, ...] = ()


SCHEMA: dict[str, dict[str, Field]] = {
    "model": {
        "name": Field(
            "str",
            "unsloth/Llama-3.2-3B-Instruct-bnb-4bit",
            'Hub id, local folder, .gguf file, or "demo" (SmolLM2-135M-Instruct, runs on a CPU)',
            nonempty=True,
        ),
        "max_seq_length": Field("int", 2048, "longest training sequence in tokens", minimum=16, maximum=1_048_576),
        "load_in_4bit": Field("bool", True, "QLoRA: load the base weights in 4-bit NF4 (bitsandbytes)"),
        "backend": Field("choice", "auto", "unsloth (the lab's path), peft (plain transformers + PEFT), or auto", choices=tuple(BACKENDS)),
    },
    "lora": {
        "method": Field(
            "choice", "lora",
            "adapter method: lora, loraplus (LoRA with the LoRA+ optimizer), ia3, prompt_tuning, prefix_tuning",
            choices=("lora", "loraplus", "ia3", "prompt_tuning", "prefix_tuning"),
        ),
        "r": Field("int", 16, "LoRA rank", exclusive_minimum=0, maximum=4096),
        "lora_alpha": Field("int", 32, "LoRA scaling numerator (scale = alpha / r)", exclusive_minimum=0),
        "lora_dropout": Field("float", 0.0, "dropout on the LoRA path", minimum=0.0, exclusive_maximum=1.0),
        "target_modules": Field(
            "list",
            list(ALL_PROJECTIONS),
            "linear layers that get adapters",
            nonempty=True,
            allowed_items=tuple(ALL_PROJECTIONS),
        ),
        "use_rslora": Field("bool", False, "rank-stabilised scaling alpha / sqrt(r)"),
        "use_dora": Field("bool", False, "weight-decomposed LoRA (DoRA); slower"),
        "init_lora_weights": Field(
            "choice", "true", "LoRA initialisation: true (B = 0, PEFT's default) or gaussian (A Gaussian in 1/r)",
            choices=("true", "gaussian"),
        ),
        "loraplus_lr_ratio": Field(
            "float", 16.0, "loraplus: B's learning rate over A's (the LoRA+ paper's 16)", exclusive_minimum=0.0
        ),
        "num_virtual_tokens": Field(
            "int", 20, "prompt_tuning, prefix_tuning: learned tokens put before every sequence", exclusive_minimum=0, maximum=4096
        ),
    },
    "train": {
        "per_device_train_batch_size": Field("int", 2, "sequences per device per step", exclusive_minimum=0),
        "gradient_accumulation_steps": Field("int", 4, "micro-batches per optimizer step", exclusive_minimum=0),
        "learning_rate": Field("float", 2.0e-4, "peak learning rate", exclusive_minimum=0.0, maximum=1.0),
        "num_train_epochs": Field("float", 2.0, "passes over the training split", exclusive_minimum=0.0),
        "max_steps": Field("int", -1, "stop after this many optimizer steps (-1: use num_train_epochs)", minimum=-1),
        "max_minutes": Field(
            "float", 0.0, "stop after this many minutes of training steps, then save the adapter (0: no limit)", minimum=0.0
        ),
        "logging_steps": Field("int", 1, "log the loss every N steps", exclusive_minimum=0),
        "save_steps": Field("int", 50, "checkpoint every N steps", exclusive_minimum=0),
        "eval_steps": Field("int", 0, "evaluate on the held-out split every N steps (0: at each checkpoint)", minimum=0),
        "save_total_limit": Field("int", 3, "checkpoints kept (oldest deleted)", exclusive_minimum=0),
        "warmup_steps": Field("int", 5, "linear warm-up steps", minimum=0),
        "lr_scheduler_type": Field(
            "choice", "linear", "learning-rate schedule",
            choices=("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"),
        ),
        "weight_decay": Field("float", 0.01, "AdamW weight decay", minimum=0.0, maximum=1.0),
        "max_grad_norm": Field("float", 1.0, "gradient clipping norm", exclusive_minimum=0.0),
        "optim": Field(
            "choice", "auto", "optimizer (auto: adamw_8bit on CUDA, adamw_torch elsewhere)",
            choices=("auto", "adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adamw_torch_fused", "sgd", "adafactor"),
        ),
        "gradient_checkpointing": Field(
            "bool_or_auto", "auto",
            "recompute activations in the backward pass to save memory (auto: only when the estimate does not fit)",
        ),
        "bf16": Field(
            "bool_or_auto", "auto",
            "bfloat16 base weights and autocast (auto: wherever the GPU or CPU supports it; false: float32/float16)",
        ),
        "gpus": Field(
            "int", 0,
            "training processes, one per GPU, through accelerate (DDP) (0: every visible GPU, one process on a CPU)",
            minimum=0, maximum=4096,
        ),
        "accelerate_config": Field(
            "str", "", "accelerate config file for a launch over several machines (passed as --config_file; empty: none)"
        ),
        "packing": Field("bool", False, "join records and cut them into max_seq_length blocks: no padding, nothing cut off"),
        "seed": Field("int", 3407, "random seed (the lab's)", minimum=0),
        "sample_steps": Field(
            "int", 0, "write a sample continuation of a held-out prompt every N steps (0: at each checkpoint, -1: never)",
            minimum=-1,
        ),
        "sample_max_new_tokens": Field("int", 96, "length of those live samples in tokens", exclusive_minimum=0),
    },
    "data": {
        "corpus": Field("str", "corpus", "folder written by `stylelora-tui prepare` (relative to the workspace)", nonempty=True),
        "format": Field(
            "choice", "instruction",
            "instruction: the lab's chat records, loss on the continuation; raw_text: plain passages, loss on every token",
            choices=("instruction", "raw_text"),
        ),
    },
}

_LORA_MATRICES = ("lora", "loraplus")
#: lora keys that only some methods use (the form shows them only then); every other key applies to all.
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    **{key: _LORA_MATRICES for key in ("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora",
                                       "init_lora_weights")},
    "loraplus_lr_ratio": ("loraplus",),
    "num_virtual_tokens": ("prompt_tuning", "prefix_tuning"),
}


def applies(section: str, key: str, method: str) -> bool:
    """Whether ``section.key`` is used by ``lora.method`` ``method``."""
    return section != "lora" or method in METHOD_KEYS.get(key, (method,))


SECTION_TITLES = {"model": "Model", "lora": "LoRA", "train": "Training", "data": "Data"}


def defaults() -> dict[str, dict[str, Any]]:
    """The lab's values: a fresh, fully populated config dict."""
    return {section: {key: copy.deepcopy(spec.default) for key, spec in keys.items()} for section, keys in SCHEMA.items()}
