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


class BadName(ValueError):
    """A user-given name that cannot be used as one folder or file name."""


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is safe as one path component inside its folder, else BadName.

    Run, config and other user-given names become a folder or file name under
    the workspace: a separator or ``..`` would put it somewhere else, and a
    leading dot would hide it (and clash with our own ``.lock`` files).
    """
    reason = None
    if not name or not name.strip():
        reason = "is empty"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        reason = "contains a path separator"
    elif name in (".", ".."):
        reason = "names a parent or current folder"
    elif name.startswith("."):
        reason = "starts with a dot"
    elif name != name.strip():
        reason = "starts or ends with a space"
    elif any(ord(char) < 32 for char in name):
        reason = "contains a control character"
    if reason:
        raise BadName(
            f"{what} {name!r} {reason}: use letters, digits, '-', '_' and '.' (it becomes one folder or file name)"
        )
    return name
