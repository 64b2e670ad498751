"""The ``stylelora-tui`` command line: the parser, and one module per command group.

Each module holds only argument handling and printing; the work is done by
the core subpackages, so a script can do anything a command does.
"""

from stylelora_tui.cli.main import main

__all__ = ["main"]
