"""Commands of the Config section (handled by ``ConfigScreen``).

Ctrl keys, with priority, so they work while typing in a field.
"""

from __future__ import annotations

from stylelora_tui.screens.commands.base import Command


class ConfigCommand(Command):
    scope = "config"


class SaveConfig(ConfigCommand):
    """Save the config as YAML in configs/"""

    id, key, title = "config.save", "ctrl+s", "Save"
    priority = True


class OpenConfig(ConfigCommand):
    """Load a YAML config from configs/"""

    id, key, title = "config.open", "ctrl+o", "Open"
    priority = True


class LoadPreset(ConfigCommand):
    """Replace the form with a preset"""

    id, key, title = "config.preset", "ctrl+r", "Preset"
    priority = True


class DiffConfig(ConfigCommand):
    """What differs from the lab's defaults"""

    id, key, title = "config.diff", "ctrl+g", "Diff"
    priority = True


class StartSweep(ConfigCommand):
    """Start a sweep: this config over a grid of values, one run per point"""

    id, key, title = "config.sweep", "ctrl+y", "Sweep"
    priority = True


class LeaveField(ConfigCommand):
    """Leave the field, so single keys switch sections"""

    id, key, title = "config.leave", "escape", "Leave field"
    footer, palette = False, False


class NextField(ConfigCommand):
    """Next field (also tab; a list or a menu uses its own arrows)"""

    # Bound on the form's column (FieldList), so a list or a menu keeps its own arrows; the message bubbles up.
    id, key, title = "config.next", "down", "Next field"
    footer, palette = False, False


class PreviousField(ConfigCommand):
    """Previous field (also shift+tab)"""

    id, key, title = "config.previous", "up", "Previous field"
    footer, palette = False, False


CONFIG_COMMANDS: tuple[type[Command], ...] = (SaveConfig, OpenConfig, LoadPreset, DiffConfig, StartSweep, LeaveField, NextField,
                                              PreviousField)
