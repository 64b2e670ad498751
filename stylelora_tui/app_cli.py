"""``stylelora-tui open [WORKSPACE]`` and ``stylelora-tui demo``: run the app.

Textual is imported only inside :func:`run`, so the core (and ``--help``)
never loads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SECTIONS = ("corpus", "config", "train", "compare", "runs")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "open":
        parser.add_argument(
            "workspace", nargs="?", default=".", help="workspace folder (corpus/, configs/, runs/); created if missing"
        )
    parser.add_argument("--section", choices=SECTIONS, default="corpus", help="section to open first")
    parser.add_argument("--theme", default=None, help="colour theme for this session (e.g. stylelora-light)")


def demo_workspace() -> Path:
    try:
        from stylelora_tui.demo import ensure_demo_workspace
    except ImportError:  # TODO: remove once stylelora_tui.demo provides it everywhere
        from stylelora_tui import paths

        folder = paths.data_dir() / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return Path(ensure_demo_workspace())


def run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        root = demo_workspace()
    else:
        root = Path(args.workspace).expanduser().resolve()
        if root.exists() and not root.is_dir():
            print(f"stylelora-tui: {root} is a file, not a workspace folder", file=sys.stderr)
            return 2
    try:
        from stylelora_tui.screens.app import make_app

        app = make_app(root, start=args.section, theme=args.theme)
    except OSError as exc:
        print(f"stylelora-tui: cannot open workspace {root}: {exc}", file=sys.stderr)
        return 2
    result = app.run()
    return int(result or 0) if app.return_code in (None, 0) else int(app.return_code)
