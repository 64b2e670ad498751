"""One tiny run trained through the real trainer, shared by the compare/export tests.

Training takes ~20 s on two cores, so the run is made once per test session
(cached here by the base model's path) and each test module reuses it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import cli_env, stylelora_command, write_corpus, write_tiny_config
from stylelora_tui.runs.run import Run
from stylelora_tui.runs.workspace import Workspace

_TRAINED: dict[str, Run] = {}


def write_config(workspace: Path, model: Path, *, name: str = "tiny") -> Path:
    # 16-bit base and plain PEFT: the fastest real path on a CPU (no Unsloth import).
    return write_tiny_config(workspace, model, name=name, backend="peft", load_in_4bit=False,
                             save_steps=12, gradient_checkpointing=False)


def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Run:
    key = str(tiny_model)
    if key not in _TRAINED:
        workspace = tmp_path_factory.mktemp("compare-ws")
        write_corpus(workspace / "corpus")
        (workspace / "configs").mkdir()
        config_path = write_config(workspace, tiny_model)
        result = subprocess.run(
            stylelora_command("train", "-w", str(workspace), "--name", "tiny-run", str(config_path)),
            capture_output=True, text=True, timeout=300, env=cli_env(), stdin=subprocess.DEVNULL,
        )
        run = Workspace(workspace).find_run("tiny-run")
        assert result.returncode == 0, result.stderr + run.log_path.read_text()
        assert (run.adapter_dir / "adapter_model.safetensors").exists()
        _TRAINED[key] = run
    return _TRAINED[key]
