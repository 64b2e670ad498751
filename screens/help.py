"""The help screen: every key of the app, from the command declarations.

Keys are read through the user's keymap, and each command shows its id, the
name to use in the ``[keymap]`` table of ``settings.toml``.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from stylelora_tui.screens.commands import SCOPE_TITLES, by_scope, keys_of

EXTRA = [
    ("ctrl+p", "Command palette: every action, searchable"),
    ("tab", "Next field or pane (shift+tab: previous)"),
    ("arrows", "Move in tables and lists (pgup/pgdn: a page)"),
    ("enter", "Submit a field, pick an option"),
]


def help_table(keymap: dict[str, str] | None = None) -> Table:
    table = Table(box=None, show_header=False, expand=True, pad_edge=False)
    table.add_column("key", no_wrap=True, style="bold")
    table.add_column("what")
    table.add_column("id", no_wrap=True, style="dim")
    for scope, commands in by_scope().items():
        table.add_row(Text(SCOPE_TITLES.get(scope, scope), style="underline"), "", "keymap id" if scope == "app" else "")
        for command in commands:
            table.add_row(", ".join(keys_of(command, keymap)), command.help, command.id)
        table.add_row("", "", "")
    table.add_row(Text("General", style="underline"), "", "")
    for key, what in EXTRA:
        table.add_row(key, what, "")
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 90%; max-width: 100; height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen .title { text-style: bold; color: $primary; }
    """
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Keys (esc closes)", classes="title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(getattr(self.app, "keymap", None)), id="help-table")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()
