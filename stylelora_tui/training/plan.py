"""What a launch will do, known before the trainer starts: its steps and its summary.

``total_steps`` counts optimizer steps exactly as transformers' ``Trainer``
does (``Trainer.set_initial_training_values``): an epoch is
``len(dataloader) = ceil(records / per_device_train_batch_size)`` batches
(``dataloader_drop_last`` is off), an epoch's optimizer steps are
``ceil(len(dataloader) / gradient_accumulation_steps)`` (the last, shorter
accumulation still steps), and the run is ``ceil(num_train_epochs * that)``
steps unless ``max_steps`` is positive. Two things can only lower the real
count: records whose prompt alone fills ``max_seq_length`` (the trainer skips
them) and ``packing`` (records joined into fewer sequences).

``launch_summary`` gathers what the Train section's confirm dialog shows
(the model, the backend and why, the device, trainable parameters, the memory
estimate, the steps); nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylelora_tui import config as config_mod
from stylelora_tui.training.distributed import process_count


def count_records(path: Path) -> int | None:
    """Training records in a prepared ``train.jsonl``, as the trainer reads them (excluded ones left out)."""
    import json

    count = 0
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                if b'"excluded"' in line:  # rare: parse only the lines that may be marked
                    try:
                        if json.loads(line).get("excluded"):
                            continue
                    except (ValueError, AttributeError):
                        pass  # the trainer reports a bad line itself
                count += 1
    except OSError:
        return None
    return count


def steps_for(
    records: int, *, per_device_train_batch_size: int, gradient_accumulation_steps: int,
    num_train_epochs: float, max_steps: int = -1, processes: int = 1,
) -> int:
    """Optimizer steps for ``records`` training records (transformers' count, see the module docstring);
    ``processes`` DDP ranks each take their share of every epoch."""
    if max_steps and max_steps > 0:
        return max_steps
    batches = math.ceil(math.ceil(records / processes) / per_device_train_batch_size)
    per_epoch = max(math.ceil(batches / gradient_accumulation_steps), 1)
    return math.ceil(num_train_epochs * per_epoch)


def total_steps(config: dict[str, dict[str, Any]], workspace: Path) -> tuple[int | None, int | None]:
    """(optimizer steps, training records) for a config; None where the corpus is missing or empty."""
    train = config["train"]
    records = count_records(config_mod.resolve_path(config["data"]["corpus"], workspace) / "train.jsonl")
    if train["max_steps"] and train["max_steps"] > 0:
        return train["max_steps"], records
    if not records:
        return None, records
    steps = steps_for(
        records,
        per_device_train_batch_size=train["per_device_train_batch_size"],
        gradient_accumulation_steps=train["gradient_accumulation_steps"],
        num_train_epochs=train["num_train_epochs"],
        processes=process_count(train),
    )
    return steps, records


def guess_device() -> str:
    """Where the trainer will run, guessed without importing torch."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return f"cuda ({len(list(gpus.iterdir()))} GPU)"
    from stylelora_tui.training.backends import cpu_description  # light: torch is imported inside its functions

    return cpu_description()


@dataclass(frozen=True)
class LaunchSummary:
    """What a launch of a config will do, for a confirm dialog or a log line."""

    model: str
    backend: str
    backend_note: str | None  # why this backend (``auto`` chose it), when there is something to say
    device: str
    trainable_parameters: int | None  # None: the model's shape is not known
    total_parameters: int | None
    memory_bytes: int | None  # the estimated total
    estimate_error: str | None  # why there is no estimate, when it failed
    total_steps: int | None
    records: int | None
    packing: bool = False
    processes: int = 1
    method: str = "lora"  # lora.method

    @property
    def trainable_share(self) -> float | None:
        """Trainable parameters in percent of all."""
        if self.trainable_parameters is None or not self.total_parameters:
            return None
        return 100.0 * self.trainable_parameters / self.total_parameters

    def lines(self) -> list[str]:
        from stylelora_tui.training.estimate import format_bytes

        lines = [
            f"Model:      {self.model}",
            f"Method:     {self.method}",
            f"Backend:    {self.backend}" + (f" ({self.backend_note})" if self.backend_note else ""),
            f"Device:     {self.device}" + (f", {self.processes} processes (DDP through accelerate)" if self.processes > 1 else ""),
        ]
        if self.estimate_error:
            lines.append(f"Estimate:   failed ({self.estimate_error})")
        if self.trainable_parameters is not None and self.total_parameters is not None:
            lines.append(
                f"Trainable:  {self.trainable_parameters:,} of {self.total_parameters:,} ({self.trainable_share:.2f}%)"
            )
        else:
            lines.append("Trainable:  unknown (model shape not known)")
        if self.memory_bytes is not None:
            lines.append(f"Memory:     ~{format_bytes(self.memory_bytes)} estimated")
        steps = "unknown" if not self.total_steps else f"{'at most ' if self.packing else ''}{self.total_steps}"
        lines.append(f"Steps:      {steps}" + (f" over {self.records} records" if self.records else ""))
        return lines

    def text(self) -> str:
        return "\n".join(self.lines())


def launch_summary(config: dict[str, dict[str, Any]], workspace: Path) -> LaunchSummary:
    """The summary of launching ``config`` in ``workspace`` (reads the corpus and the model's shape)."""
    from stylelora_tui.training.backends import choose_backend
    from stylelora_tui.training.estimate import estimate_for_config

    processes = process_count(config["train"])
    backend, note = choose_backend(config["model"]["backend"], processes, config["lora"].get("method", "lora"))
    steps, records = total_steps(config, workspace)
    estimate, error = None, None
    try:
        estimate = estimate_for_config(config, search_dirs=(workspace, workspace / "models"))
    except Exception as exc:  # noqa: BLE001 - an estimate must never block a launch
        error = str(exc) or type(exc).__name__
    packing = bool(config["train"].get("packing")) and not (config["train"]["max_steps"] and config["train"]["max_steps"] > 0)
    return LaunchSummary(
        model=config["model"]["name"],
        backend=backend,
        backend_note=note,
        device=guess_device(),
        trainable_parameters=estimate.trainable_parameters if estimate else None,
        total_parameters=estimate.total_parameters if estimate else None,
        memory_bytes=estimate.memory.total if estimate else None,
        estimate_error=error,
        total_steps=steps,
        records=records,
        packing=packing,
        processes=processes,
        method=config["lora"].get("method", "lora"),
    )
