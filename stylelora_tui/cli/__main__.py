"""``python -m stylelora_tui.cli``: the same as the ``stylelora-tui`` command."""

from stylelora_tui.cli.main import main

raise SystemExit(main())
