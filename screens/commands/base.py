"""The base of every user command: a typed message that declares its own key.

A command is a small ``Message`` subclass (as in Braindrop): its class
attributes give the key binding (with the command's id, so a user keymap can
move it), the key-bar hint and the palette entry; its docstring is its help.
Bindings name one generic action, ``command('<id>')``, which posts the
command's message; the app or the section screen handles it in a typed
handler (``on_show_help``, ``on_launch_run``, ...).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding
from textual.message import Message

SCOPE_TITLES = {
    "app": "Everywhere",
    "corpus": "Corpus",
    "config": "Config",
    "train": "Train",
    "compare": "Compare",
    "runs": "Runs",
    "adapters": "Adapters",
}

KEY_NAMES = {
    "question_mark": "?", "slash": "/", "escape": "esc", "space": "space",
    "left_square_bracket": "[", "right_square_bracket": "]",
}


def key_name(key: str) -> str:
    """How a key reads on screen: "?" for question_mark, "^s" for ctrl+s."""
    key = key.strip()
    return KEY_NAMES.get(key, key.replace("ctrl+", "^"))


class Command(Message):
    """A user command; subclasses declare the metadata below once, and the docstring is the help."""

    id: ClassVar[str] = ""  # the keymap id, as in the [keymap] table of settings.toml
    key: ClassVar[str] = ""  # Textual key names, comma separated
    title: ClassVar[str] = ""  # key bar and palette
    help: ClassVar[str] = ""  # palette and help screen: the class docstring on one line
    scope: ClassVar[str] = "app"  # "app", or the SCOPE of the section screen that handles it
    footer: ClassVar[bool] = True  # shown in the key bar
    priority: ClassVar[bool] = False  # a priority binding: works while a field has focus
    palette: ClassVar[bool] = True  # listed in the command palette

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.help = " ".join((cls.__doc__ or "").split())

    @classmethod
    def key_display(cls) -> str:
        return key_name(cls.key.split(",")[0])

    @classmethod
    def binding(cls) -> Binding:
        """The command's binding: its keys run the one generic action, which posts this message."""
        return Binding(
            cls.key,
            f"command({cls.id!r})",
            cls.title,
            show=cls.footer,
            priority=cls.priority,
            tooltip=cls.help,
            id=cls.id,
            key_display=cls.key_display(),
        )


def keys_of(command: type[Command], keymap: dict[str, str] | None = None) -> list[str]:
    """The keys that run ``command`` now (a user keymap replaces the declared ones), as they read."""
    keys = (keymap or {}).get(command.id) or command.key
    return [key_name(key) for key in keys.split(",") if key.strip()]
