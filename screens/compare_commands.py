"""The Compare section's commands, declared once (same ``Command`` class as ``commands.py``).

Kept apart from ``commands.COMMANDS`` while the section is wired in; the
palette and the help screen read ``commands.COMMANDS``, so once these are
appended there (or ``COMMANDS`` is extended with them) both list them too.
"""

from __future__ import annotations

from textual.binding import Binding

from stylelora_tui.screens.commands import Command

SCOPE = "compare"

COMPARE_COMMANDS: tuple[Command, ...] = (
    Command("compare.next", "n,right", "next_sample", "Next", "Next sample (every pane moves together)", scope=SCOPE),
    Command("compare.previous", "p,left", "previous_sample", "Prev", "Previous sample", scope=SCOPE),
    Command("compare.regenerate", "r", "regenerate", "Regen", "Generate again for this prompt with new seeds", scope=SCOPE),
    Command("compare.heldout", "h", "pick_prompt", "Held-out", "Pick a prompt from the run's held-out split (eval.jsonl)", scope=SCOPE),
    Command("compare.type", "t", "type_prompt", "Type", "Type your own prompt (enter generates)", scope=SCOPE),
    Command("compare.settings", "s", "settings", "Settings", "Sampling: temperature, top-p, max new tokens, samples, seed", scope=SCOPE),
    Command("compare.runs", "u", "pick_runs", "Runs", "Pick the runs to compare with the base (one column each)", scope=SCOPE),
    Command("compare.export", "e", "export", "Export", "Write compare.html (and, if asked, the model card, merge, push)", scope=SCOPE),
    Command("compare.cancel", "ctrl+x", "cancel_generation", "Cancel", "Stop the generation in progress", scope=SCOPE, footer=False, priority=True),
    Command("compare.leave", "escape", "leave_prompt", "Leave field", "Leave the prompt field, so single keys work again", scope=SCOPE, footer=False, palette=False),
)


def compare_bindings() -> list[Binding]:
    return [command.binding() for command in COMPARE_COMMANDS]
