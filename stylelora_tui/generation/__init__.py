"""Generation: one subprocess holds the model; the app and the CLI talk to it.

``protocol`` defines the requests, the replies and the sampling defaults;
``server`` is the process (``python -m stylelora_tui.generation.server``),
which loads runs through ``run_adapters`` and generates with ``engine``
(every sample of a prompt in one batched call, seeded per sample by
``sampling``); ``client`` starts it and streams its JSON-line replies.
"""
