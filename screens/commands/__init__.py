"""Every user command, declared once, as a typed message (Braindrop's way).

Each command is a small ``Command`` subclass (``base.py``; one module per
scope) whose class attributes give its key binding (with the command's id, so
a user keymap can move it), key-bar hint and palette entry, and whose docstring
is its help. Screens take their ``BINDINGS`` from ``bindings(scope)``; every
binding names one action, ``command('<id>')`` (``CommandBindings``), which
posts the command's message to the node that has the binding; the app or the
section screen handles it in a typed handler (``on_<snake_case name>``). The
palette (``CommandsProvider``) posts the same messages, and the help screen,
the title bar and the key bar read ``COMMANDS``, showing keys through
``keys_of`` so a remapped key reads the same everywhere. The app applies the
``[keymap]`` of ``settings.toml`` with ``App.set_keymap`` at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from textual.binding import Binding

from stylelora_tui.screens.commands.adapters import ADAPTERS_COMMANDS
from stylelora_tui.screens.commands.app import APP_COMMANDS, SwitchSection
from stylelora_tui.screens.commands.base import SCOPE_TITLES, Command, key_name, keys_of
from stylelora_tui.screens.commands.compare import COMPARE_COMMANDS
from stylelora_tui.screens.commands.config import CONFIG_COMMANDS
from stylelora_tui.screens.commands.corpus import CORPUS_COMMANDS
from stylelora_tui.screens.commands.palette import CommandsProvider
from stylelora_tui.screens.commands.runs import RUNS_COMMANDS
from stylelora_tui.screens.commands.train import TRAIN_COMMANDS

if TYPE_CHECKING:
    from textual.message import Message

__all__ = [
    "COMMANDS", "SCOPE_TITLES", "Command", "CommandBindings", "CommandsProvider", "SwitchSection",
    "bindings", "by_scope", "check_keymap", "command_by_id", "key_name", "keymap_clashes", "keys_of",
]

# In the order of the help screen and the palette.
COMMANDS: tuple[type[Command], ...] = (
    APP_COMMANDS + CORPUS_COMMANDS + CONFIG_COMMANDS + TRAIN_COMMANDS + RUNS_COMMANDS + COMPARE_COMMANDS + ADAPTERS_COMMANDS
)
BY_ID: dict[str, type[Command]] = {command.id: command for command in COMMANDS}


class CommandBindings:
    """Mixed into the app and the screens: the one action every command binding names.

    Textual bindings need an action string; this one only turns the command's
    id into its typed message, posted to the node that has the binding (it
    bubbles up from a widget to its screen).
    """

    post_message: Callable[[Message], bool]  # the Textual node's

    def action_command(self, command_id: str) -> None:
        self.post_message(BY_ID[command_id]())


def command_by_id(command_id: str) -> type[Command] | None:
    return BY_ID.get(command_id)


def bindings(scope: str, *commands: type[Command]) -> list[Binding]:
    """The bindings of every command of ``scope`` (or of the ``commands`` named)."""
    return [command.binding() for command in (commands or COMMANDS) if command.scope == scope]


def by_scope() -> dict[str, list[type[Command]]]:
    grouped: dict[str, list[type[Command]]] = {}
    for command in COMMANDS:
        grouped.setdefault(command.scope, []).append(command)
    return grouped


def check_keymap(keymap: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the entries naming a known command, one problem line per other entry or key clash)."""
    good = {command_id: keys for command_id, keys in keymap.items() if command_id in BY_ID}
    problems = [f"keymap: no command {command_id!r} (F1 lists the commands; ids look like 'section.corpus')"
                for command_id in keymap if command_id not in BY_ID]
    return good, problems + keymap_clashes(good)


def keymap_clashes(keymap: dict[str, str]) -> list[str]:
    """A remapped key that another command of the same screen (or of the app) also has: who loses it."""
    problems, told = [], set()
    for command in COMMANDS:
        if command.id not in keymap:
            continue
        for other in COMMANDS:
            if other is command or not (other.scope == command.scope or "app" in (other.scope, command.scope)):
                continue
            for key in sorted(set(keys_of(command, keymap)) & set(keys_of(other, keymap))):
                if (key, frozenset((command.id, other.id))) in told:
                    continue
                told.add((key, frozenset((command.id, other.id))))
                if other.id in keymap:
                    problems.append(f"keymap: {key!r} is given to both {command.id} and {other.id}; only one gets it")
                else:
                    problems.append(f"keymap: {key!r} is now {command.id}'s key; {other.id} loses it")
    return problems
