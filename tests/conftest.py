"""Shared fixtures: isolated app folders, a tiny model built at test time, a corpus."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SENTENCES = [
    "You wind the lamp at dusk and count the ships that pass the point.",
    "The gulls say nothing; the tide says less, and Ballast sleeps on the warm brass.",
    "Fog comes in like a slow visitor who never knocks.",
    "On Thursdays the supply boat brings flour, lamp oil and letters you will not answer.",
    "You log the wind. You log the swell. You log the silence between them.",
]


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings, caches and data of the app go to temporary folders, never $HOME."""
    base = tmp_path_factory.mktemp("appdirs")
    for name in ("CONFIG", "DATA"):
        monkeypatch.setenv(f"STYLELORA_{name}_DIR", str(base / name.lower()))
    # The converted demo model is expensive to make; share it across tests.
    monkeypatch.setenv("STYLELORA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "shared-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a BPE tokenizer trained on the spot (no download)."""
    from stylelora_tui.training.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), SENTENCES * 20)


def write_corpus(folder: Path, *, train: int = 24, eval_: int = 4) -> Path:
    """Instruction records whose outputs repeat, so a working trainer's loss falls."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.jsonl", train), ("eval.jsonl", eval_)):
        with open(folder / name, "w", encoding="utf-8") as handle:
            for i in range(count):
                record = {
                    "instruction": "Continue in the author's style:",
                    "input": SENTENCES[i % len(SENTENCES)],
                    "output": " ".join(SENTENCES[(i + 1) % len(SENTENCES):] + SENTENCES[: (i + 1) % len(SENTENCES)]),
                }
                handle.write(json.dumps(record) + "\n")
    return folder


def write_tiny_config(
    workspace: Path, model: Path, *, name: str = "tiny", backend: str = "unsloth", max_seq_length: int = 256,
    load_in_4bit: bool = True, **train: Any,
) -> Path:
    """A config for the tiny model that trains in seconds; ``train`` overrides the train section."""
    from stylelora_tui import config as config_mod

    cfg = config_mod.defaults()
    cfg["model"].update(name=str(model), max_seq_length=max_seq_length, load_in_4bit=load_in_4bit, backend=backend)
    cfg["lora"].update(r=8, lora_alpha=16)
    cfg["train"].update(
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=5.0e-3,
        max_steps=12,
        save_steps=6,
        warmup_steps=0,
        lr_scheduler_type="constant",
    )
    cfg["train"].update(train)
    path = workspace / "configs" / f"{name}.yaml"
    config_mod.save(path, cfg)
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write_corpus(tmp_path / "corpus")
    (tmp_path / "configs").mkdir()
    return tmp_path


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stylelora_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "stylelora_tui.cli", *args]


# What a source distribution leaves out: a build from the working tree would
# otherwise reuse build/lib, where modules deleted since live on.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".ruff_cache")
_NOT_SOURCE_AT_TOP = {"runs", "workspace"}  # a workspace's folders, not stylelora_tui/runs/


def _not_source(folder: str, names: list[str]) -> set[str]:
    ignored = set(_NOT_SOURCE(folder, names))
    if Path(folder) == REPO:
        ignored |= _NOT_SOURCE_AT_TOP & set(names)
    return ignored


def clean_source_copy(target: Path) -> Path:
    """A copy of the repository's sources, fit to build or install from."""
    shutil.copytree(REPO, target, ignore=_not_source)
    return target


def recorded_notifications(app: Any) -> list[tuple[str, str, str]]:
    """(title, message, severity) of every notification the app shows from now on (public API only)."""
    seen: list[tuple[str, str, str]] = []
    original = app.notify

    def notify(message: Any, *, title: str = "", severity: str = "information", **kwargs: Any) -> Any:
        seen.append((title, str(message), severity))
        return original(message, title=title, severity=severity, **kwargs)

    app.notify = notify
    return seen


@pytest.fixture
def anyio_backend() -> str:
    """The app tests run on asyncio (Textual's loop), not trio."""
    return "asyncio"
