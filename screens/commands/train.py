"""Commands of the Train section (handled by ``TrainScreen``)."""

from __future__ import annotations

from typing import Any, ClassVar

from stylelora_tui.screens.commands.base import Command


class TrainCommand(Command):
    scope = "train"


class LaunchRun(TrainCommand):
    """Start a run from the current config (asks first)"""

    id, key, title = "train.launch", "n", "New run"


class StopRun(TrainCommand):
    """Checkpoint, then stop the run (safe twice, or from two apps)"""

    id, key, title = "train.stop", "s", "Stop"


class ResumeRun(TrainCommand):
    """Continue a stopped or failed run from its newest checkpoint"""

    id, key, title = "train.resume", "r", "Resume"


class ForkRun(TrainCommand):
    """Copy the run's config into the Config section under a new name"""

    id, key, title = "train.fork", "f", "Fork"


class DeleteRun(TrainCommand):
    """Delete the run (asks first; never while it runs)"""

    id, key, title = "train.delete", "x", "Delete"
    footer = False


class ToggleSmoothing(TrainCommand):
    """Loss curve: exponential smoothing on or off"""

    id, key, title = "train.smooth", "m", "Smooth"
    footer = False


class ToggleLogScale(TrainCommand):
    """Loss curve: log or linear scale"""

    id, key, title = "train.log", "l", "Log scale"
    footer = False


class CycleZoom(TrainCommand):
    """Loss curve: whole run, last 1000, 200, 50 steps"""

    id, key, title = "train.zoom", "z", "Zoom"
    footer = False


class ToggleBottomPane(TrainCommand):
    """Bottom pane: trainer.log or the newest sample beside the author's text"""

    id, key, title = "train.view", "v", "Log/sample"


class StepRun(TrainCommand):
    """Show another run: one class per step, all handled by ``on_step_run``."""

    delta: ClassVar[int] = 1  # how many runs on (negative: back), wrapping around
    footer = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handler_name = StepRun.handler_name


class PreviousRun(StepRun):
    """Show the previous run"""

    id, key, title, delta = "train.prev", "left_square_bracket", "Prev run", -1


class NextRun(StepRun):
    """Show the next run"""

    id, key, title, delta = "train.next", "right_square_bracket", "Next run", 1


TRAIN_COMMANDS: tuple[type[Command], ...] = (
    LaunchRun, StopRun, ResumeRun, ForkRun, DeleteRun, ToggleSmoothing, ToggleLogScale, CycleZoom, ToggleBottomPane,
    PreviousRun, NextRun,
)
