"""stylelora-tui: train a LoRA adapter that writes like an author.

The ``stylelora_tui`` package is the core (config, corpus, runs, trainer,
generation, export). It never imports Textual; the UI lives in
``stylelora_tui.screens`` and ``stylelora_tui.themes``. Nothing heavy is
imported here.
"""

__version__ = "0.1.0"
