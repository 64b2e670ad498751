"""Every user command, declared once.

A ``Command`` gives the key binding, the footer hint, the command-palette
entry and the help-screen line, so they never disagree. Screens take their
``BINDINGS`` from ``bindings(scope)``; the palette ``CommandsProvider`` and
the help screen read ``COMMANDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from textual.app import App

SCOPE_TITLES = {
    "app": "Everywhere",
    "corpus": "Corpus",
    "config": "Config",
}


SECTIONS_GROUP = Binding.Group("Sections", compact=True)


@dataclass(frozen=True)
class Command:
    id: str
    key: str
    action: str  # an action of the scope's node: the app, or the screen
    title: str  # footer and palette
    help: str  # palette help and help screen
    scope: str = "app"
    footer: bool = True
    priority: bool = False
    palette: bool = True
    group: str | None = None

    @property
    def key_display(self) -> str:
        first = self.key.split(",")[0]
        return {"question_mark": "?", "slash": "/", "escape": "esc"}.get(first, first.replace("ctrl+", "^"))

    def binding(self) -> Binding:
        return Binding(
            self.key,
            self.action,
            self.title,
            show=self.footer,
            priority=self.priority,
            tooltip=self.help,
            id=self.id,
            key_display=self.key_display,
            group=SECTIONS_GROUP if self.group == "sections" else None,
        )


COMMANDS: tuple[Command, ...] = (
    # Sections (modes): one key each.
    Command("section.corpus", "1", "switch_section('corpus')", "Corpus", "Corpus: import texts, browse passages, stats", group="sections"),
    Command("section.config", "2", "switch_section('config')", "Config", "Config: the run config form and the live memory estimate", group="sections"),
    Command("section.train", "3", "switch_section('train')", "Train", "Train: start and follow a run (coming)", group="sections"),
    Command("section.compare", "4", "switch_section('compare')", "Compare", "Compare: base vs adapter side by side (coming)", group="sections"),
    Command("section.runs", "5", "switch_section('runs')", "Runs", "Runs: every run of the workspace (coming)", group="sections"),
    Command("app.help", "f1,question_mark", "help", "Help", "Show every key of the app"),
    Command("app.theme", "ctrl+t", "change_theme", "Theme", "Pick a colour theme (remembered)", footer=False),
    Command("app.quit", "ctrl+q", "quit", "Quit", "Quit (asks first when the config has unsaved changes)", priority=True, footer=False),
    # Corpus screen.
    Command("corpus.import", "i", "import_path", "Import", "Type a file or folder path to import", scope="corpus"),
    Command("corpus.filter", "slash", "filter", "Filter", "Filter passages by text", scope="corpus"),
    Command("corpus.exclude", "x", "toggle_excluded", "Excl/incl", "Exclude or include the selected passage", scope="corpus"),
    Command("corpus.sort", "s", "sort", "Sort", "Sort: reverse, then the next column", scope="corpus", footer=False),
    Command("corpus.view", "v", "cycle_view", "View", "Right pane: preview, stats, sources", scope="corpus"),
    Command("corpus.rechunk", "r", "rechunk", "Re-chunk", "Split the sources again with other bounds", scope="corpus"),
    Command("corpus.cancel", "ctrl+x", "cancel_import", "Cancel", "Cancel a running import", scope="corpus", footer=False, priority=True),
    Command("corpus.table", "escape", "focus_table", "Table", "Back to the passage table", scope="corpus", footer=False, palette=False),
    # Config screen: ctrl keys, so they work while typing in a field.
    Command("config.save", "ctrl+s", "save", "Save", "Save the config as YAML in configs/", scope="config", priority=True),
    Command("config.open", "ctrl+o", "open", "Open", "Load a YAML config from configs/", scope="config", priority=True),
    Command("config.preset", "ctrl+r", "preset", "Preset", "Replace the form with a preset", scope="config", priority=True),
    Command("config.diff", "ctrl+g", "diff", "Diff", "What differs from the lab's defaults", scope="config", priority=True),
    Command("config.leave", "escape", "leave_field", "Leave field", "Leave the field, so single keys switch sections", scope="config", footer=False, palette=False),
)


def bindings(scope: str) -> list[Binding]:
    return [command.binding() for command in COMMANDS if command.scope == scope]


def by_scope() -> dict[str, list[Command]]:
    grouped: dict[str, list[Command]] = {}
    for command in COMMANDS:
        grouped.setdefault(command.scope, []).append(command)
    return grouped


class CommandsProvider(Provider):
    """The palette: app commands everywhere, screen commands on their screen."""

    def _commands(self) -> list[Command]:
        scope = getattr(self.screen, "SCOPE", None)
        return [c for c in COMMANDS if c.palette and c.scope in ("app", scope)]

    def _run(self, command: Command) -> None:
        app: App = self.app
        target = app if command.scope == "app" else self.screen
        app.call_later(app.run_action, command.action, target)

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(f"{SCOPE_TITLES.get(command.scope, command.scope)}: {command.title}", partial(self._run, command), help=f"{command.help} (key {command.key_display})")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            text = f"{SCOPE_TITLES.get(command.scope, command.scope)}: {command.title}"
            score = max(matcher.match(text), matcher.match(command.help) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._run, command), help=f"{command.help} (key {command.key_display})")
