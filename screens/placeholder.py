"""Train, Compare and Runs: what will be there, until their issues land."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

PLANS = {
    "train": (
        "Train",
        "Start a run from the current config, follow its loss curve and samples as they come, "
        "stop it (checkpoint first) or resume it. The trainer runs in its own process and "
        "survives a dropped SSH connection.\n\nFor now: `stylelora-tui train CONFIG` in a shell.",
    ),
    "compare": (
        "Compare",
        "The same prompt answered by the base model and by an adapter, side by side, "
        "to judge whether it writes like the author.",
    ),
    "runs": (
        "Runs",
        "Every run of this workspace: state, step, loss, model and duration; open one to "
        "re-attach, resume or export its adapter.\n\nFor now: `stylelora-tui runs` in a shell.",
    ),
}


class PlaceholderScreen(Screen):
    SCOPE = "placeholder"

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section = section

    def compose(self) -> ComposeResult:
        title, text = PLANS[self.section]
        yield Header()
        with Middle():
            with Center():
                yield Static(f"[b]{title}[/b] (coming soon)\n\n{text}", id="placeholder-text", classes="placeholder")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = PLANS[self.section][0]
