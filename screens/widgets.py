"""Widgets and view helpers shared by the screens (no screen logic here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from rich.table import Table
from rich.text import Text
from textual import events
from textual.content import Content
from textual.suggester import Suggester
from textual.widget import Widget
from textual.widgets import Static

# --------------------------------------------------------------------------- title and key bars


class TitleBar(Widget, can_focus=False):
    """The title line: the sections as tabs with their keys (the current one lit), then the title.

    A new user sees every section's name and key on the first screen, at 80
    columns too; a click on a tab opens that section, a click on the icon the
    command palette (as on Textual's Header). One widget, not Header's four:
    its stylesheets were a few per cent of the app's start-up.
    """

    DEFAULT_CSS = """
    TitleBar {
        dock: top; width: 100%; height: 1; background: $panel; color: $foreground;
        & > .titlebar--key { color: $text-muted; }
        & > .titlebar--current { background: $primary; color: $background; text-style: bold; }
    }
    """
    COMPONENT_CLASSES = {"titlebar--key", "titlebar--current"}
    ICON = " \u2b58 "

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._tabs: list[tuple[int, int, str]] = []  # (start, end, section) of each tab drawn

    def on_mount(self) -> None:
        for node in (self.app, self.screen):
            for attribute in ("title", "sub_title"):
                self.watch(node, attribute, lambda _value: self.refresh(), init=False)

    def tabs(self) -> list[tuple[str, str, str]]:
        """(section, its first key as it reads, its title) of every section, in order."""
        from stylelora_tui.screens.commands import COMMANDS, SwitchSection, keys_of

        keymap = getattr(self.app, "keymap", None)
        return [(c.section, (keys_of(c, keymap) or ["-"])[0], c.title) for c in COMMANDS if issubclass(c, SwitchSection)]

    def render(self) -> Text:
        screen, app = self.screen, self.app
        key_style = self.get_component_rich_style("titlebar--key")
        current_style = self.get_component_rich_style("titlebar--current")
        line = Text(self.ICON if app.ENABLE_COMMAND_PALETTE else " " * len(self.ICON))
        current, self._tabs = getattr(screen, "SCOPE", None), []
        for section, key, title in self.tabs():
            start = line.cell_len
            if section == current:
                line.append(f" {key} {title} ", current_style)
            else:
                line.append(" ").append(key, key_style).append(f" {title} ")
            self._tabs.append((start, line.cell_len, section))
        sub_title = screen.sub_title if screen.sub_title is not None else app.sub_title
        room = max(0, self.size.width - line.cell_len - 2)
        # The app's name and the section's subtitle; the subtitle alone when both do not fit.
        for title in (app.format_title(screen.title if screen.title is not None else app.title, sub_title), Content(sub_title)):
            if title.cell_length <= room:
                break
        title = title.truncate(room, ellipsis=True)
        line.append(" " * (self.size.width - line.cell_len - title.cell_length - 1)).append(title.plain).append(" ")
        return line

    def on_click(self, event: events.Click) -> None:
        if event.x < len(self.ICON) and self.app.ENABLE_COMMAND_PALETTE:
            self.app.action_command_palette()
            return
        from stylelora_tui.screens.commands import COMMANDS, SwitchSection

        for start, end, section in self._tabs:
            if start <= event.x < end:  # the section's command, as its key posts it
                self.app.post_message(next(c for c in COMMANDS if issubclass(c, SwitchSection) and c.section == section)())


class KeyBar(Widget, can_focus=False):
    """The keys that apply now, on one line at the bottom: Textual's Footer as one widget.

    Textual's Footer makes a widget per key and rebuilds them all on every
    change of the screen's bindings; each key costs about 3 ms to make, style
    and lay out, which was a fifth of the app's start-up. This bar draws the
    same line (theme's footer colours, the palette key on the right) and is only
    repainted when bindings change. A click on a key presses it.
    """

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        & > .keybar--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
        & > .keybar--description { color: $footer-description-foreground; background: $footer-description-background; }
    }
    """
    COMPONENT_CLASSES = {"keybar--key", "keybar--description"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._spans: list[tuple[int, int, str, bool]] = []  # (start, end, key, enabled) of each key drawn

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda _screen: self.refresh())

    def keys_shown(self) -> tuple[list[tuple[str, str, str, bool]], tuple[str, str, str, bool] | None]:
        """([(key, key display, description, enabled)], the command palette's key or None)."""
        app = self.app
        everywhere, here, palette = [], [], None
        seen_actions: set[str] = set()
        for node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.key == app.COMMAND_PALETTE_BINDING and app.ENABLE_COMMAND_PALETTE:
                palette = (binding.key, app.get_key_display(binding), binding.description, enabled)
            elif binding.show and binding.action not in seen_actions:  # one entry per action, as Textual's
                seen_actions.add(binding.action)
                # The app's keys (sections, help) first: always in view, even at 80 columns.
                (everywhere if node is app else here).append((binding.key, app.get_key_display(binding), binding.description, enabled))
        return everywhere + here, palette

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        description_style = self.get_component_rich_style("keybar--description")
        shown, palette = self.keys_shown()
        width = self.size.width
        right = Text()
        if palette is not None:
            right.append(f" {palette[1]}", key_style).append(f" {palette[2]} ", description_style)
        line, spans = Text(), []
        for key, display, description, enabled in shown:
            item = Text(" ")
            item.append(display, key_style).append(f" {description}", description_style)
            if not enabled:
                item.stylize("dim")
            if line.cell_len + item.cell_len + right.cell_len > width:
                break  # whole keys only; the rest are in help (F1) and the palette
            spans.append((line.cell_len + 1, line.cell_len + item.cell_len, key, enabled))
            line.append_text(item)
        if palette is not None:
            start = max(line.cell_len, width - right.cell_len)
            spans.append((start + 1, start + right.cell_len, palette[0], palette[3]))
            line.append(" " * (start - line.cell_len)).append_text(right)
        self._spans = spans
        return line

    def on_click(self, event: events.Click) -> None:
        for start, end, key, enabled in self._spans:
            if start <= event.x < end:
                if enabled:
                    self.app.simulate_key(key)
                else:
                    self.app.bell()
                return


# --------------------------------------------------------------------------- estimate


def compute_estimate(config: dict, search_dirs: Iterable[Path] = ()) -> tuple[Any, Any]:
    """(estimate, estimate with gradient checkpointing flipped), or (None, None)."""
    from stylelora_tui.training import estimate as est

    try:
        main = est.estimate_for_config(config, search_dirs=tuple(search_dirs))
        if main is None:
            return None, None
        flipped: dict = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
        gc = flipped.get("train", {}).get("gradient_checkpointing", True)
        flipped.setdefault("train", {})["gradient_checkpointing"] = not gc
        other = est.estimate_for_config(flipped, search_dirs=tuple(search_dirs))
    except Exception as exc:  # the estimate must never take the form down
        return exc, None
    return main, other


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


class EstimatePanel(Static):
    """Trainable parameters, the memory breakdown and a verdict per GPU card."""

    DEFAULT_CSS = """
    EstimatePanel { height: 1fr; overflow-y: auto; }
    """

    plain = ""

    def on_mount(self) -> None:
        self.update(Text("Estimating...", style="dim"))

    def show(self, estimate: Any, flipped: Any) -> None:
        from stylelora_tui.training.estimate import format_bytes

        if estimate is None:
            self.plain = "No estimate: the model's shape is unknown (no local config.json, not in the built-in table)."
            self.update(Text(self.plain, style="italic"))
            return
        if isinstance(estimate, Exception):
            self.plain = f"Estimate failed: {estimate}"
            self.update(Text(self.plain, style="italic"))
            return
        body = _Rows()
        body.add_row(Text("Estimate", style="bold"), "")
        body.add_row(Text(estimate.shape.name, style="dim"), "")
        body.add_row("Trainable", _count(estimate.trainable_parameters))
        body.add_row("of model", f"{_count(estimate.total_parameters)} ({estimate.trainable_share:.2f}%)")
        body.add_row("", "")
        body.add_row(Text("GPU memory", style="bold"), "")
        memory = estimate.memory
        for label, value in memory.breakdown():
            if value:
                body.add_row(label, format_bytes(value))
        body.add_row(Text("Total", style="bold"), Text(format_bytes(memory.total), style="bold"))
        if flipped is not None and not isinstance(flipped, Exception):
            label = "with grad. ckpt" if flipped.memory.activations < memory.activations else "without grad. ckpt"
            body.add_row(Text(label, style="dim"), Text(format_bytes(flipped.memory.total), style="dim"))
        body.add_row("", "")
        body.add_row(Text("Cards", style="bold"), "")
        marks = {"fits": "ok", "tight": "tight", "won't fit": "NO"}
        for card, verdict, headroom in estimate.verdicts:
            style = {"fits": "", "tight": "italic", "won't fit": "bold reverse"}.get(verdict, "")
            body.add_row(card, Text(f"{marks.get(verdict, verdict)} {format_bytes(headroom)}", style=style))
        if estimate.shape_source:
            body.add_row(Text(f"shape: {estimate.shape_source}", style="dim"), "")
        self.plain = body.plain()
        self.update(body.table)


class _Rows:
    """A two-column grid that also keeps its plain text (for tests and screen readers)."""

    def __init__(self) -> None:
        self.table = Table.grid(padding=(0, 1), expand=True)
        self.table.add_column(ratio=1)
        self.table.add_column(justify="right", no_wrap=True)
        self.lines: list[str] = []

    def add_row(self, left: Any, right: Any) -> None:
        self.table.add_row(left, right)
        self.lines.append(f"{Text(left).plain if isinstance(left, str) else left.plain} {Text(right).plain if isinstance(right, str) else right.plain}".strip())

    def plain(self) -> str:
        return "\n".join(self.lines)


# --------------------------------------------------------------------------- corpus views


def bars(counts: list[int], labels: list[str], width: int = 20) -> Text:
    """A horizontal bar chart, one line per bin (works in any terminal)."""
    top = max(counts, default=0) or 1
    text = Text()
    label_width = max((len(label) for label in labels), default=0)
    for count, label in zip(counts, labels):
        filled = round(width * count / top)
        text.append(f"{label:>{label_width}} ")
        text.append("#" * filled, style="bold")
        text.append(f" {count}\n")
    return text


def corpus_stats(corpus: Any) -> Text:
    """The Corpus section's stats view: counts, duplicates, the length histogram, what was rejected."""
    report = corpus.report
    included = [p for p in corpus.passages if not p.excluded]
    text = Text()
    text.append("Passages ", style="bold")
    text.append(f"{len(corpus.passages)} ({len(included)} included, {len(corpus.passages) - len(included)} excluded)\n")
    text.append("Words ", style="bold")
    text.append(f"{sum(p.words for p in included):,}  records: {len(corpus.train)} train, {len(corpus.eval)} eval\n")
    text.append("Duplicates dropped ", style="bold")
    text.append(f"{report.exact_duplicates} exact, {report.near_duplicates} near\n")
    text.append(f"Tokens: {report.tokens_note or ('exact' if report.tokens_exact else 'estimated')}\n\n", style="dim")
    text.append("Passage length (words)\n", style="bold")
    bins = report.words.histogram
    text.append(bars([b.count for b in bins], [f"{b.lo}-{b.hi}" for b in bins], width=18))
    rejects = list(report.skipped_files) + list(report.rejects)
    text.append(f"\nRejected ({len(rejects)})\n", style="bold")
    for reject in rejects[:200]:
        text.append(f"{reject}\n")
    return text


class PathSuggester(Suggester):
    """Completes a path from the entries of its folder (tab/right accepts)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        expanded = os.path.expanduser(value)
        folder, prefix = os.path.split(expanded)
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            return None
        for name in names:
            if name.startswith(prefix) and name != prefix and (prefix.startswith(".") or not name.startswith(".")):
                full = os.path.join(folder, name)
                suffix = "/" if os.path.isdir(full) else ""
                return value + name[len(prefix):] + suffix
        return None
