"""Commands of the Compare section (handled by ``CompareScreen``)."""

from __future__ import annotations

from stylelora_tui.screens.commands.base import Command


class CompareCommand(Command):
    scope = "compare"


class NextSample(CompareCommand):
    """Next sample (every pane moves together)"""

    id, key, title = "compare.next", "n,right", "Next"


class PreviousSample(CompareCommand):
    """Previous sample"""

    id, key, title = "compare.previous", "p,left", "Prev"


class Regenerate(CompareCommand):
    """Generate again for this prompt with new seeds"""

    id, key, title = "compare.regenerate", "r", "Regen"


class PickHeldOutPrompt(CompareCommand):
    """Pick a prompt from the run's held-out split (eval.jsonl)"""

    id, key, title = "compare.heldout", "h", "Held-out"


class TypePrompt(CompareCommand):
    """Type your own prompt (enter generates)"""

    id, key, title = "compare.type", "t", "Type"


class SamplingSettings(CompareCommand):
    """Sampling: temperature, top-p, max new tokens, samples, seed"""

    id, key, title = "compare.settings", "s", "Settings"


class PickRuns(CompareCommand):
    """Pick the runs to compare with the base (one column each)"""

    id, key, title = "compare.runs", "u", "Runs"


class NextSide(CompareCommand):
    """Next adapted side (when the sides take turns beside the base)"""

    id, key, title = "compare.side", "v", "Side"


class ExportCompare(CompareCommand):
    """Write compare.html (and, if asked, the model card, merge, push)"""

    id, key, title = "compare.export", "e", "Export"


class CancelGeneration(CompareCommand):
    """Stop the generation in progress"""

    id, key, title = "compare.cancel", "ctrl+x", "Cancel"
    footer, priority = False, True


class LeavePrompt(CompareCommand):
    """Leave the prompt field, so single keys work again"""

    id, key, title = "compare.leave", "escape", "Leave field"
    footer, palette = False, False


COMPARE_COMMANDS: tuple[type[Command], ...] = (
    NextSample, PreviousSample, Regenerate, PickHeldOutPrompt, TypePrompt, SamplingSettings, PickRuns, NextSide, ExportCompare,
    CancelGeneration, LeavePrompt,
)
