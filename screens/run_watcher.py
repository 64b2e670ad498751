"""The app's link to the run follower: one thread, one ``RunsChanged`` message.

All the run-following logic lives in ``stylelora_tui.runs.follower`` (no
Textual). This adapter owns a ``RunFollower`` whose ``on_change`` callback
posts ``RunsChanged`` to the subscribed screens; the follower calls it at most
``max_rate`` times a second, and ``can_replace`` lets a newer message replace a
pending one, so whatever the event rate the UI thread handles a few updates a
second and it alone touches widgets. Screens then take a ``RunView`` snapshot.
"""

from __future__ import annotations

from textual.message import Message
from textual.message_pump import MessagePump

from stylelora_tui.runs.follower import RunFollower, RunView
from stylelora_tui.runs.workspace import Workspace

__all__ = ["RunView", "RunWatcher", "RunsChanged"]


class RunsChanged(Message):
    """Something changed in one or more runs; a newer one replaces a pending one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsChanged)


class RunWatcher:
    """Follows ``workspace/runs``; ``subscribe`` screens to get ``RunsChanged``."""

    def __init__(self, workspace: Workspace, **options: float) -> None:
        self._subscribers: list[MessagePump] = []
        self.follower = RunFollower(workspace, on_change=self._post, **options)

    def _post(self) -> None:  # on the follower's thread: post_message is thread-safe
        for target in list(self._subscribers):
            target.post_message(RunsChanged())

    @property
    def posted(self) -> int:
        return self.follower.notified

    def subscribe(self, target: MessagePump) -> None:
        self._subscribers.append(target)

    def unsubscribe(self, target: MessagePump) -> None:
        if target in self._subscribers:
            self._subscribers.remove(target)

    def start(self) -> None:
        self.follower.start()

    def stop(self) -> None:
        self.follower.stop()

    def follow(self, name: str | None) -> None:
        """Keep the trainer.log tail of this run (the one on screen)."""
        self.follower.tail_log_of(name)

    def poke(self) -> None:
        self.follower.poke()

    def poll_once(self) -> bool:
        return self.follower.poll_once()

    def names(self) -> list[str]:
        return self.follower.names()

    def view(self, name: str, *, curves: bool = True, log: bool = True) -> RunView | None:
        return self.follower.view(name, curves=curves, log=log)

    def views(self, *, curves: bool = False) -> list[RunView]:
        return self.follower.views(curves=curves)
