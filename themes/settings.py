"""User settings of the app (the theme, for now), in ``paths.config_dir()``.

Read when the app starts and written only when the user changes something,
never at import time. A damaged file falls back to the defaults.

The file is TOML: read with the standard library's ``tomllib``, which costs a
fifth of what importing PyYAML would on every start-up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from stylelora_tui import paths

FILE_NAME = "settings.toml"


@dataclass
class Settings:
    theme: str = "stylelora-dark"

    @staticmethod
    def path() -> Path:
        return paths.config_dir() / FILE_NAME

    @classmethod
    def load(cls) -> "Settings":
        path = cls.path()
        if not path.is_file():
            return cls()
        import tomllib

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            return cls()
        theme = data.get("theme")
        return cls(theme=theme if isinstance(theme, str) and theme else cls.theme)

    def save(self) -> None:
        import json

        target = self.path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        # Flat string values only: a JSON string literal is a valid TOML basic string.
        lines = [f"{key} = {json.dumps(value)}" for key, value in sorted(asdict(self).items())]
        tmp.write_text("# stylelora-tui settings (written by the app)\n" + "\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(target)
