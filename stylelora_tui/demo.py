"""The embedded demo: a corpus written for this project, and its workspace.

The corpus is original prose shipped as package data
(``stylelora_tui/data/demo_corpus``). Its model, ``demo``, is resolved by
``stylelora_tui.training.models``.
"""

from __future__ import annotations

from pathlib import Path

from stylelora_tui import paths


def demo_corpus_dir() -> Path:
    return Path(__file__).parent / "data" / "demo_corpus"


DEMO_CONFIG_NAME = "demo.yaml"


def demo_workspace_dir() -> Path:
    return paths.data_dir() / "demo-workspace"


def ensure_demo_workspace(root: Path | None = None) -> Path:
    """The demo workspace: the embedded corpus prepared, and the CPU demo config.

    Light (no torch): the app calls it. The model itself is converted later,
    by the trainer process, on first use.
    """
    from stylelora_tui import config as config_mod
    from stylelora_tui.corpus.pipeline import PrepareOptions, prepare
    from stylelora_tui.runs.workspace import Workspace

    workspace = Workspace(root or demo_workspace_dir()).ensure()
    if not (workspace.corpus_dir / "train.jsonl").exists():
        prepare([demo_corpus_dir()], workspace.corpus_dir, PrepareOptions())
    config_path = workspace.configs_dir / DEMO_CONFIG_NAME
    if not config_path.exists():
        config_mod.save(config_path, config_mod.preset("cpu-demo"))
    return workspace.root
