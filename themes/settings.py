"""User settings of the app (the theme, for now), in ``paths.config_dir()``.

Read when the app starts and written only when the user changes something,
never at import time. A damaged file falls back to the defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from stylelora_tui import paths

FILE_NAME = "settings.yaml"


@dataclass
class Settings:
    theme: str = "stylelora-dark"

    @staticmethod
    def path() -> Path:
        return paths.config_dir() / FILE_NAME

    @classmethod
    def load(cls) -> "Settings":
        try:
            data = yaml.safe_load(cls.path().read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        theme = data.get("theme")
        return cls(theme=theme if isinstance(theme, str) and theme else cls.theme)

    def save(self) -> None:
        target = self.path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(yaml.safe_dump(asdict(self), sort_keys=True), encoding="utf-8")
        tmp.replace(target)
