"""Which adapter and base model a run gives the generation process (and the export's merge).

A finished run gives its final adapter; an unfinished one its newest
checkpoint (with a note saying so). The base is what the trainer loaded,
resolved again when the run was moved or the cache cleared.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylelora_tui.generation.protocol import GenerationError
from stylelora_tui.runs.run import Run


@dataclass
class RunAdapter:
    run: Run
    adapter_dir: Path
    adapter_name: str  # PEFT's module key: no dots allowed
    base_model: str  # as the config names it ("demo", a Hub id, a folder)
    base_path: str  # what to load
    cfg: dict[str, Any]
    note: str | None = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def resolve_run(run_dir: str | Path) -> RunAdapter:
    """The adapter folder and base model of a run (its final adapter, else its newest checkpoint)."""
    run = Run(Path(run_dir))
    if not run.config_path.exists():
        raise GenerationError(f"{run.path} is not a run directory (no config.yaml)")
    cfg = run.config()
    note = None
    adapter_dir = run.adapter_dir
    if not (adapter_dir / "adapter_config.json").exists():
        checkpoint = run.latest_checkpoint()
        if checkpoint is None or not (checkpoint / "adapter_config.json").exists():
            raise GenerationError(
                f"run {run.name} has no adapter yet (state: {run.state}): train it first, or wait for its first checkpoint"
            )
        adapter_dir, note = checkpoint, f"run {run.name} has not finished: using {checkpoint.name}"
    meta = _read_json(adapter_dir / "stylelora.json")
    base_model = meta.get("base_model") or cfg["model"]["name"]
    base_path = meta.get("base_model_path")
    if not base_path:
        start = next((e for e in reversed(run.events()) if e.get("type") == "start"), {})
        base_path = start.get("model_path")
    if not base_path or (base_path.startswith(("/", ".", "~")) and not Path(base_path).exists()):
        # The run was moved or the cache cleared: resolve the name again (demo, .gguf, Hub id).
        from stylelora_tui.training.models import ModelUnavailable, resolve_model_path

        try:
            base_path = resolve_model_path(base_model, lambda message: print(message, file=sys.stderr))
        except ModelUnavailable as exc:
            raise GenerationError(str(exc)) from None
    adapter_name = re.sub(r"[^A-Za-z0-9_-]", "_", run.name)
    return RunAdapter(run, adapter_dir, adapter_name, base_model, str(base_path), cfg, note)
