"""The base of the section screens: what every section does the same way.

Worker state messages do not bubble in Textual, so each section hands its
workers' failures to the app (``WorkerFailed``), whose one handler tells the
user. Textual runs this handler after a section's own one (handlers run down
the class hierarchy); a section that expects an error (a cancelled import)
calls ``event.prevent_default()`` to keep it from being reported.
"""

from __future__ import annotations

from typing import ClassVar

from textual.screen import Screen
from textual.worker import Worker, WorkerState

from stylelora_tui.screens.commands import CommandBindings
from stylelora_tui.screens.messages import WorkerFailed


class SectionScreen(CommandBindings, Screen):
    """A section: its command keys post typed commands (``action_command``) that its own handlers take."""

    SCOPE: ClassVar[str] = ""  # the section's name, as in commands.SCOPE_TITLES

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.app.post_message(WorkerFailed(event.worker, self.SCOPE))
