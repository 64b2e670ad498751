"""Themes and stylesheets of stylelora-tui (installed as ``stylelora_tui.themes``).

Themes are ``textual.theme.Theme`` objects registered beside the built-in ones
at start-up (a ``.tcss`` file cannot define a theme). Stylesheets use theme
variables only (``$primary``, ``$panel``, ...), so every theme works.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

HERE = Path(__file__).parent
APP_CSS = HERE / "app.tcss"

DARK = Theme(
    name="stylelora-dark",
    primary="#D9A441",  # lamplight amber
    secondary="#5FA8A0",  # sea green
    accent="#E07A5F",
    foreground="#E6E1D6",
    background="#15191E",
    surface="#1D2229",
    panel="#262C35",
    success="#7FB069",
    warning="#E9C46A",
    error="#E76F51",
    dark=True,
)

LIGHT = Theme(
    name="stylelora-light",
    primary="#8A5A00",
    secondary="#1F6F68",
    accent="#B5472E",
    foreground="#1F2328",
    background="#F7F4EC",
    surface="#EFEAE0",
    panel="#E4DDCF",
    success="#2E7D32",
    warning="#9A6700",
    error="#B3261E",
    dark=False,
)

THEMES: tuple[Theme, ...] = (DARK, LIGHT)
DEFAULT_THEME = DARK.name
