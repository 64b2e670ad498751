"""Commands of the Adapters section (handled by ``AdaptersScreen``)."""

from __future__ import annotations

from stylelora_tui.screens.commands.base import Command


class AdaptersCommand(Command):
    scope = "adapters"


class MarkAdapter(AdaptersCommand):
    """Mark or unmark the adapter for a mix or a compare"""

    id, key, title = "adapters.mark", "space", "Mark"


class MixAdapters(AdaptersCommand):
    """Mix the marked adapters into a new one (add_weighted_adapter): method, weights, density"""

    id, key, title = "adapters.mix", "m", "Mix"


class CompareAdapters(AdaptersCommand):
    """Open the marked adapters (or the highlighted one) in Compare, against the base"""

    id, key, title = "adapters.compare", "c", "Compare"


class MergeAdapter(AdaptersCommand):
    """Merge the highlighted adapter into a 16-bit copy of the base (export --merge)"""

    id, key, title = "adapters.merge", "e", "Merge"


class CancelAdapterJob(AdaptersCommand):
    """Cancel the mix or merge in progress"""

    id, key, title = "adapters.cancel", "ctrl+x", "Cancel"
    priority = True


ADAPTERS_COMMANDS: tuple[type[Command], ...] = (MarkAdapter, MixAdapters, CompareAdapters, MergeAdapter, CancelAdapterJob)
