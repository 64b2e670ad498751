"""Where stylelora-tui keeps its own files (never written at import time).

Platform-standard folders (XDG on Linux, via platformdirs), each overridable
by an environment variable so tests and shared GPU boxes can isolate them.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "stylelora-tui"


def _dir(env_var: str, kind: str) -> Path:
    override = os.environ.get(env_var)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(getattr(platformdirs, f"user_{kind}_dir")(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """User settings (theme, ...): ``$STYLELORA_CONFIG_DIR`` or the XDG config dir."""
    return _dir("STYLELORA_CONFIG_DIR", "config")


def cache_dir() -> Path:
    """Converted demo model and other re-creatable files: ``$STYLELORA_CACHE_DIR``."""
    return _dir("STYLELORA_CACHE_DIR", "cache")


def data_dir() -> Path:
    """The demo workspace lives here: ``$STYLELORA_DATA_DIR`` or the XDG data dir."""
    return _dir("STYLELORA_DATA_DIR", "data")
