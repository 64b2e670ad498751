"""Commands of the Runs section (handled by ``RunsScreen``)."""

from __future__ import annotations

from stylelora_tui.screens.commands.base import Command


class RunsCommand(Command):
    scope = "runs"


class OpenRun(RunsCommand):
    """Show the highlighted run in the Train section"""

    id, key, title = "runs.open", "enter", "Open"


class MarkRun(RunsCommand):
    """Mark or unmark the run for the overlaid curves and the diff"""

    id, key, title = "runs.mark", "space", "Mark"


class DiffRuns(RunsCommand):
    """Config diff between the two marked runs (or marked vs highlighted)"""

    id, key, title = "runs.diff", "d", "Diff"


class DeleteHighlightedRun(RunsCommand):
    """Delete the highlighted run (asks first; never while it runs)"""

    id, key, title = "runs.delete", "x", "Delete"
    footer = False


class ShowSweep(RunsCommand):
    """A sweep's table and overlaid loss curves, the best marked (w again: all runs)"""

    id, key, title = "runs.sweep", "w", "Sweep"


class SortSweep(RunsCommand):
    """Sort the sweep table by the next column (trials without a value go last)"""

    id, key, title = "runs.sort", "o", "Sort"


class ReverseSort(RunsCommand):
    """Reverse the sweep table's order (highest first)"""

    id, key, title = "runs.reverse", "r", "Reverse"
    footer = False


RUNS_COMMANDS: tuple[type[Command], ...] = (OpenRun, MarkRun, DiffRuns, DeleteHighlightedRun, ShowSweep, SortSweep,
                                            ReverseSort)
