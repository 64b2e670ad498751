"""The command palette's commands: app commands everywhere, screen commands on their screen."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from stylelora_tui.screens.commands.base import SCOPE_TITLES, Command, keys_of


class CommandsProvider(Provider):
    """Each hit posts the command's typed message, as its key does (no action strings)."""

    def key_text(self, command: type[Command]) -> str:
        return ", ".join(keys_of(command, getattr(self.app, "keymap", None))) or "none"

    def _commands(self) -> list[type[Command]]:
        from stylelora_tui.screens.commands import COMMANDS

        scope = getattr(self.screen, "SCOPE", None)
        return [c for c in COMMANDS if c.palette and c.scope in ("app", scope)]

    def _run(self, command: type[Command]) -> None:
        # To the node that handles it: the app, or the screen the palette was opened on.
        (self.app if command.scope == "app" else self.screen).post_message(command())

    def _text(self, command: type[Command]) -> str:
        return f"{SCOPE_TITLES.get(command.scope, command.scope)}: {command.title}"

    def _help(self, command: type[Command]) -> str:
        return f"{command.help} (key {self.key_text(command)})"

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(self._text(command), partial(self._run, command), help=self._help(command))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            text = self._text(command)
            score = max(matcher.match(text), matcher.match(command.help) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._run, command), help=self._help(command))
