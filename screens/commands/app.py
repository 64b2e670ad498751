"""Commands of the whole app: the sections, help, theme, quit (handled by the app)."""

from __future__ import annotations

from typing import Any, ClassVar

from stylelora_tui.screens.commands.base import Command


class SwitchSection(Command):
    """Open a section: one class per section, all handled by the app's ``on_switch_section``."""

    section: ClassVar[str] = ""  # the section's mode name
    footer = False  # named with their keys in the title bar's tabs instead

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handler_name = SwitchSection.handler_name


class ShowCorpus(SwitchSection):
    """Corpus: import texts, browse passages, stats"""

    id, key, title, section = "section.corpus", "1", "Corpus", "corpus"


class ShowConfig(SwitchSection):
    """Config: the run config form and the live memory estimate"""

    id, key, title, section = "section.config", "2", "Config", "config"


class ShowTrain(SwitchSection):
    """Train: start a run, follow its loss live, stop, resume, fork"""

    id, key, title, section = "section.train", "3", "Train", "train"


class ShowCompare(SwitchSection):
    """Compare: base vs adapter side by side"""

    id, key, title, section = "section.compare", "4", "Compare", "compare"


class ShowRuns(SwitchSection):
    """Runs: every run, loss curves overlaid, config diff"""

    id, key, title, section = "section.runs", "5", "Runs", "runs"


class ShowAdapters(SwitchSection):
    """Adapters: every adapter and mix with its recipe; mix, compare, merge"""

    id, key, title, section = "section.adapters", "6", "Adapters", "adapters"


class ShowHelp(Command):
    """Show every key of the app"""

    id, key, title = "app.help", "f1,question_mark", "Help"


class ChangeTheme(Command):
    """Pick a colour theme (remembered)"""

    id, key, title = "app.theme", "ctrl+t", "Theme"
    footer = False


class QuitApp(Command):
    """Quit (asks first when the config has unsaved changes)"""

    id, key, title = "app.quit", "ctrl+q", "Quit"
    priority, footer = True, False


APP_COMMANDS: tuple[type[Command], ...] = (ShowCorpus, ShowConfig, ShowTrain, ShowCompare, ShowRuns, ShowAdapters, ShowHelp, ChangeTheme, QuitApp)
