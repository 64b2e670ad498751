"""Every user command, declared once.

A ``Command`` gives the key binding (with the command's id, so a user keymap
can move it), the footer hint, the command-palette entry and the help-screen
line, so they never disagree. Screens take their ``BINDINGS`` from
``bindings(scope)``; the palette ``CommandsProvider`` and the help screen read
``COMMANDS``, and show the keys through ``keys_of`` so a remapped key reads
the same everywhere. The app applies the ``[keymap]`` of ``settings.toml``
with ``App.set_keymap`` at start-up (``apply_keymap``).
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
    "train": "Train",
    "compare": "Compare",
    "runs": "Runs",
}


KEY_NAMES = {
    "question_mark": "?", "slash": "/", "escape": "esc", "space": "space",
    "left_square_bracket": "[", "right_square_bracket": "]",
}


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

    @property
    def key_display(self) -> str:
        return key_name(self.key.split(",")[0])

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
        )


COMMANDS: tuple[Command, ...] = (
    # Sections (modes): one key each, named with their keys in the title bar's tab strip (not the footer).
    Command("section.corpus", "1", "switch_section('corpus')", "Corpus", "Corpus: import texts, browse passages, stats", footer=False),
    Command("section.config", "2", "switch_section('config')", "Config", "Config: the run config form and the live memory estimate", footer=False),
    Command("section.train", "3", "switch_section('train')", "Train", "Train: start a run, follow its loss live, stop, resume, fork", footer=False),
    Command("section.compare", "4", "switch_section('compare')", "Compare", "Compare: base vs adapter side by side", footer=False),
    Command("section.runs", "5", "switch_section('runs')", "Runs", "Runs: every run, loss curves overlaid, config diff", footer=False),
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
    # Train screen.
    Command("train.launch", "n", "launch", "New run", "Start a run from the current config (asks first)", scope="train"),
    Command("train.stop", "s", "stop_run", "Stop", "Checkpoint, then stop the run (safe twice, or from two apps)", scope="train"),
    Command("train.resume", "r", "resume_run", "Resume", "Continue a stopped or failed run from its newest checkpoint", scope="train"),
    Command("train.fork", "f", "fork_run", "Fork", "Copy the run's config into the Config section under a new name", scope="train"),
    Command("train.delete", "x", "delete_run", "Delete", "Delete the run (asks first; never while it runs)", scope="train", footer=False),
    Command("train.smooth", "m", "toggle_smooth", "Smooth", "Loss curve: exponential smoothing on or off", scope="train", footer=False),
    Command("train.log", "l", "toggle_log", "Log scale", "Loss curve: log or linear scale", scope="train", footer=False),
    Command("train.zoom", "z", "cycle_zoom", "Zoom", "Loss curve: whole run, last 1000, 200, 50 steps", scope="train", footer=False),
    Command("train.view", "v", "toggle_view", "Log/sample", "Bottom pane: trainer.log or the newest sample beside the author's text", scope="train"),
    Command("train.prev", "left_square_bracket", "next_run(-1)", "Prev run", "Show the previous run", scope="train", footer=False),
    Command("train.next", "right_square_bracket", "next_run(1)", "Next run", "Show the next run", scope="train", footer=False),
    # Runs screen.
    Command("runs.open", "enter", "open_run", "Open", "Show the highlighted run in the Train section", scope="runs"),
    Command("runs.mark", "space", "mark", "Mark", "Mark or unmark the run for the overlaid curves and the diff", scope="runs"),
    Command("runs.diff", "d", "diff", "Diff", "Config diff between the two marked runs (or marked vs highlighted)", scope="runs"),
    Command("runs.delete", "x", "delete_run", "Delete", "Delete the highlighted run (asks first; never while it runs)", scope="runs", footer=False),
    # Compare screen.
    Command("compare.next", "n,right", "next_sample", "Next", "Next sample (every pane moves together)", scope="compare"),
    Command("compare.previous", "p,left", "previous_sample", "Prev", "Previous sample", scope="compare"),
    Command("compare.regenerate", "r", "regenerate", "Regen", "Generate again for this prompt with new seeds", scope="compare"),
    Command("compare.heldout", "h", "pick_prompt", "Held-out", "Pick a prompt from the run's held-out split (eval.jsonl)", scope="compare"),
    Command("compare.type", "t", "type_prompt", "Type", "Type your own prompt (enter generates)", scope="compare"),
    Command("compare.settings", "s", "settings", "Settings", "Sampling: temperature, top-p, max new tokens, samples, seed", scope="compare"),
    Command("compare.runs", "u", "pick_runs", "Runs", "Pick the runs to compare with the base (one column each)", scope="compare"),
    Command("compare.export", "e", "export", "Export", "Write compare.html (and, if asked, the model card, merge, push)", scope="compare"),
    Command("compare.cancel", "ctrl+x", "cancel_generation", "Cancel", "Stop the generation in progress", scope="compare", footer=False, priority=True),
    Command("compare.leave", "escape", "leave_prompt", "Leave field", "Leave the prompt field, so single keys work again", scope="compare", footer=False, palette=False),
    Command("config.leave", "escape", "leave_field", "Leave field", "Leave the field, so single keys switch sections", scope="config", footer=False, palette=False),
    Command("config.next", "down", "app.focus_next", "Next field", "Next field (also tab; a list or a menu uses its own arrows)", scope="config", footer=False, palette=False),
    Command("config.previous", "up", "app.focus_previous", "Previous field", "Previous field (also shift+tab)", scope="config", footer=False, palette=False),
)


def key_name(key: str) -> str:
    """How a key reads on screen: "?" for question_mark, "^s" for ctrl+s."""
    key = key.strip()
    return KEY_NAMES.get(key, key.replace("ctrl+", "^"))


def keys_of(command: Command, keymap: dict[str, str] | None = None) -> list[str]:
    """The keys that run ``command`` now (a user keymap replaces the declared ones), as they read."""
    keys = (keymap or {}).get(command.id) or command.key
    return [key_name(key) for key in keys.split(",") if key.strip()]


def command_by_id(command_id: str) -> Command | None:
    return next((command for command in COMMANDS if command.id == command_id), None)


def check_keymap(keymap: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the entries naming a known command, one problem line per other entry or key clash)."""
    known = {command.id for command in COMMANDS}
    good = {command_id: keys for command_id, keys in keymap.items() if command_id in known}
    problems = [f"keymap: no command {command_id!r} (F1 lists the commands; ids look like 'section.corpus')"
                for command_id in keymap if command_id not in known]
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


def bindings(scope: str) -> list[Binding]:
    return [command.binding() for command in COMMANDS if command.scope == scope]


def by_scope() -> dict[str, list[Command]]:
    grouped: dict[str, list[Command]] = {}
    for command in COMMANDS:
        grouped.setdefault(command.scope, []).append(command)
    return grouped


class CommandsProvider(Provider):
    """The palette: app commands everywhere, screen commands on their screen."""

    def key_text(self, command: Command) -> str:
        return ", ".join(keys_of(command, getattr(self.app, "keymap", None))) or "none"

    def _commands(self) -> list[Command]:
        scope = getattr(self.screen, "SCOPE", None)
        return [c for c in COMMANDS if c.palette and c.scope in ("app", scope)]

    def _run(self, command: Command) -> None:
        app: App = self.app
        target = app if command.scope == "app" else self.screen
        app.call_later(app.run_action, command.action, target)

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(f"{SCOPE_TITLES.get(command.scope, command.scope)}: {command.title}", partial(self._run, command), help=f"{command.help} (key {self.key_text(command)})")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            text = f"{SCOPE_TITLES.get(command.scope, command.scope)}: {command.title}"
            score = max(matcher.match(text), matcher.match(command.help) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._run, command), help=f"{command.help} (key {self.key_text(command)})")
