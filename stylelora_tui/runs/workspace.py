"""A workspace: a folder with ``corpus/``, ``configs/`` and ``runs/``.

Light on purpose: the app opens on it before its first frame, so the run
folder (``runs.run``, with json and the event log) is imported only when runs
are listed; ``runs.run`` never imports this module, so there is no cycle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stylelora_tui.runs.run import Run


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def named(cls, folder: str | Path | None) -> "Workspace":
        """The workspace a command names: ``folder``, else $STYLELORA_WORKSPACE, else the current folder."""
        return cls(Path(folder or os.environ.get("STYLELORA_WORKSPACE") or ".").expanduser().resolve())

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def configs_dir(self) -> Path:
        return self.root / "configs"

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus"

    def ensure(self) -> "Workspace":
        for folder in (self.root, self.runs_dir, self.configs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def newest_config(self) -> Path | None:
        """The workspace's most recently saved config: where the user left off."""
        saved = sorted(self.configs_dir.glob("*.yaml"), key=lambda path: path.stat().st_mtime)
        return saved[-1] if saved else None

    def runs(self) -> list["Run"]:
        if not self.runs_dir.is_dir():
            return []
        from stylelora_tui.runs.run import Run

        found = [Run(path) for path in self.runs_dir.iterdir() if (path / "config.yaml").exists()]
        return sorted(found, key=lambda run: run.path.name)

    def find_run(self, name_or_path: str) -> "Run":
        """A run by folder path, by name, or by unique name prefix."""
        from stylelora_tui.runs.run import Run, RunError

        direct = Path(name_or_path).expanduser()
        if (direct / "config.yaml").exists():
            return Run(direct)
        candidates = [run for run in self.runs() if run.name == name_or_path]
        if not candidates:
            candidates = [run for run in self.runs() if run.name.startswith(name_or_path)]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise RunError(f"no run {name_or_path!r} in {self.runs_dir}")
        names = ", ".join(run.name for run in candidates)
        raise RunError(f"{name_or_path!r} matches several runs: {names}")
