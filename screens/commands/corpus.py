"""Commands of the Corpus section (handled by ``CorpusScreen``)."""

from __future__ import annotations

from stylelora_tui.screens.commands.base import Command


class CorpusCommand(Command):
    scope = "corpus"


class ImportPath(CorpusCommand):
    """Type a file or folder path to import"""

    id, key, title = "corpus.import", "i", "Import"


class FilterPassages(CorpusCommand):
    """Filter passages by text"""

    id, key, title = "corpus.filter", "slash", "Filter"


class ToggleExcluded(CorpusCommand):
    """Exclude or include the selected passage"""

    id, key, title = "corpus.exclude", "x", "Excl/incl"


class SortPassages(CorpusCommand):
    """Sort: reverse, then the next column"""

    id, key, title = "corpus.sort", "s", "Sort"
    footer = False


class CycleSidePane(CorpusCommand):
    """Right pane: preview, stats, sources"""

    id, key, title = "corpus.view", "v", "View"


class Rechunk(CorpusCommand):
    """Split the sources again with other bounds"""

    id, key, title = "corpus.rechunk", "r", "Re-chunk"


class CancelImport(CorpusCommand):
    """Cancel a running import"""

    id, key, title = "corpus.cancel", "ctrl+x", "Cancel"
    footer, priority = False, True


class FocusTable(CorpusCommand):
    """Back to the passage table"""

    id, key, title = "corpus.table", "escape", "Table"
    footer, palette = False, False


CORPUS_COMMANDS: tuple[type[Command], ...] = (
    ImportPath, FilterPassages, ToggleExcluded, SortPassages, CycleSidePane, Rechunk, CancelImport, FocusTable,
)
