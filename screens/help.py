"""The help screen: every key of the app, from the command declarations."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from stylelora_tui.screens.commands import KEY_NAMES, SCOPE_TITLES, by_scope

EXTRA = [
    ("ctrl+p", "Command palette: every action, searchable"),
    ("tab / shift+tab", "Next / previous field or pane"),
    ("up/down, pgup/pgdn", "Move in tables and lists"),
    ("enter", "Submit a field, pick an option"),
]


def help_table() -> Table:
    table = Table(box=None, show_header=False, expand=True, pad_edge=False)
    table.add_column("key", no_wrap=True, style="bold")
    table.add_column("what")
    for scope, commands in by_scope().items():
        table.add_row(Text(SCOPE_TITLES.get(scope, scope), style="underline"), "")
        for command in commands:
            keys = ", ".join(KEY_NAMES.get(k, k) for k in command.key.split(","))
            table.add_row(keys, command.help)
        table.add_row("", "")
    table.add_row(Text("General", style="underline"), "")
    for key, what in EXTRA:
        table.add_row(key, what)
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
                yield Static(help_table(), id="help-table")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()
