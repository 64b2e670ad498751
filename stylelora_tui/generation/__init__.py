"""Generation: one subprocess holds the model; the app and the CLI talk to it.

``server`` is the process (``python -m stylelora_tui.generation.server``),
``client`` starts it and streams its JSON-line replies.
"""
