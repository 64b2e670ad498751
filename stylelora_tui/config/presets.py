"""Named starting points for a config: the lab's, a T4, the CPU demo."""

from __future__ import annotations

import copy
from typing import Any, Mapping

from stylelora_tui.config.schema import DEMO_MODEL, defaults


def _merge(base: dict[str, dict[str, Any]], overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = copy.deepcopy(base)
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(copy.deepcopy(dict(values)))
    return merged


PRESETS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "lab": ("The lab's defaults: Llama-3.2-3B QLoRA, r=16, all projections", defaults()),
    "t4-qlora": (
        "QLoRA that fits a 16 GB T4: 4-bit, sequence 1024, batch 2 x 4, 8-bit Adam",
        _merge(defaults(), {"model": {"max_seq_length": 1024}, "train": {"optim": "adamw_8bit", "bf16": False}}),
    ),
    "cpu-demo": (
        "The CPU demo: SmolLM2-135M on the embedded corpus, a few minutes",
        _merge(
            defaults(),
            {
                "model": {"name": DEMO_MODEL, "max_seq_length": 384, "load_in_4bit": False},
                # ~100 tokens/s on 2 CPU cores in float32: 30 steps of 2 records is ~4 minutes.
                "train": {
                    "per_device_train_batch_size": 2,
                    "gradient_accumulation_steps": 1,
                    "learning_rate": 1.0e-3,
                    "max_steps": 30,
                    "save_steps": 15,
                    "warmup_steps": 2,
                },
            },
        ),
    ),
}


def preset(name: str) -> dict[str, dict[str, Any]]:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name][1])
