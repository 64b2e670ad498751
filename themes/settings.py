"""User settings of the app (the theme, the keymap), in ``paths.config_dir()``.

Read when the app starts and written only when the user changes something,
never at import time. A damaged file falls back to the defaults.

The file is TOML: read with the standard library's ``tomllib`` (``tomli`` on
Python 3.10), which costs a fifth of what importing PyYAML would on every
start-up. The ``[keymap]`` table maps a command id (as listed by the help
screen, F1) to its keys, for example ``"section.corpus" = "f2"`` or
``"app.help" = "f1,h"``. The ``[gpu_prices]`` table (GPU name = dollars an
hour) overrides the prices of the time and cost estimate (docs/cost.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stylelora_tui import paths

FILE_NAME = "settings.toml"


@dataclass
class Settings:
    theme: str = "stylelora-dark"
    keymap: dict[str, str] = field(default_factory=dict)  # command id -> comma-separated keys
    gpu_prices: dict[str, float] = field(default_factory=dict)  # GPU name -> dollars an hour (training.cost)
    problems: list[str] = field(default_factory=list, compare=False)  # what was ignored while reading

    @staticmethod
    def path() -> Path:
        return paths.config_dir() / FILE_NAME

    @classmethod
    def load(cls) -> "Settings":
        path = cls.path()
        if not path.is_file():
            return cls()
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            return cls(problems=[f"{path}: unreadable, defaults used ({exc})"])
        settings = cls()
        theme = data.get("theme")
        if isinstance(theme, str) and theme:
            settings.theme = theme
        keymap = data.get("keymap", {})
        if not isinstance(keymap, dict):
            settings.problems.append(f"{path}: [keymap] must be a table of command id = \"keys\"")
            keymap = {}
        for command_id, keys in keymap.items():
            if isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys):
                keys = ",".join(keys)
            if isinstance(keys, str) and keys.strip():
                settings.keymap[command_id] = ",".join(k.strip() for k in keys.split(",") if k.strip())
            else:
                settings.problems.append(f"{path}: keymap {command_id!r} needs keys as a string, e.g. \"f2\" or \"f2,ctrl+1\"")
        if "gpu_prices" in data:  # the cost module (and its GPU table) only when there is something to check
            from stylelora_tui.training.cost import parse_price_table

            settings.gpu_prices, problems = parse_price_table(data["gpu_prices"], str(path))
            settings.problems += problems
        return settings

    def save(self) -> None:
        import json

        def toml_string(value: str) -> str:
            # A JSON string literal (non-ASCII kept as is) is a valid TOML basic string.
            return json.dumps(value, ensure_ascii=False)

        target = self.path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        lines = ["# stylelora-tui settings (written by the app)", f"theme = {toml_string(self.theme)}"]
        if self.keymap:
            lines += ["", "[keymap]"] + [f"{toml_string(key)} = {toml_string(keys)}" for key, keys in sorted(self.keymap.items())]
        if self.gpu_prices:  # the user's own prices survive a theme change
            lines += ["", "[gpu_prices]"] + [f"{toml_string(name)} = {price!r}" for name, price in sorted(self.gpu_prices.items())]
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(target)
