"""The Textual UI of stylelora-tui (installed as ``stylelora_tui.screens``)."""
