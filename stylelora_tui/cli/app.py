"""``stylelora-tui open [WORKSPACE]`` and ``stylelora-tui demo``: run the app.

Textual is imported only inside :func:`run`, so the core (and ``--help``)
never loads it.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from stylelora_tui.runs.workspace import Workspace

SECTIONS = ("corpus", "config", "train", "compare", "runs", "adapters")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "open":
        parser.add_argument(
            "workspace", nargs="?", default=None,
            help="workspace folder (corpus/, configs/, runs/); created if missing "
            "(default: $STYLELORA_WORKSPACE or the current folder)",
        )
    if name == "demo":
        parser.add_argument(
            "--train", action="store_true",
            help="no app: train the demo config headless and follow it (Ctrl-C stops following, not training)",
        )
    parser.add_argument("--section", choices=SECTIONS, default="corpus", help="section to open first")
    parser.add_argument("--theme", default=None, help="colour theme for this session (e.g. stylelora-light)")


def demo_workspace() -> Path:
    from stylelora_tui.demo import ensure_demo_workspace

    return Path(ensure_demo_workspace())


def train_demo(root: Path) -> int:
    """The headless demo: train configs/demo.yaml of the demo workspace and follow it."""
    from stylelora_tui import config as config_mod
    from stylelora_tui.demo import DEMO_CONFIG_NAME
    from stylelora_tui.runs.control import start_run
    from stylelora_tui.cli.follow import follow

    workspace = Workspace(root)
    config_path = workspace.configs_dir / DEMO_CONFIG_NAME
    cfg = config_mod.load(config_path, workspace=root)
    run, _ = start_run(workspace, cfg, config_path=config_path)
    print(f"demo run {run.name} started in {run.path}", file=sys.stderr)
    return follow(run)


def build_app(args: argparse.Namespace):
    """The app ``args`` ask for, built on the real start-up path; an exit code if it cannot be."""
    if args.command == "demo":
        root = demo_workspace()
    else:
        root = Workspace.named(args.workspace).root
        if root.exists() and not root.is_dir():
            print(f"stylelora-tui: {root} is a file, not a workspace folder", file=sys.stderr)
            return 2
    # Start-up builds tens of thousands of objects that all stay alive (modules, widgets,
    # CSS rules): garbage collection during that burst is wasted work, about a tenth of the
    # time to the first frame. The app turns it back on once that frame is painted.
    gc.disable()
    try:
        from stylelora_tui.screens.app import make_app

        return make_app(root, start=args.section, theme=args.theme)
    except OSError as exc:
        gc.enable()
        print(f"stylelora-tui: cannot open workspace {root}: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    if args.command == "demo" and args.train:
        from stylelora_tui.config import ConfigError
        from stylelora_tui.runs.run import RunError

        try:
            return train_demo(demo_workspace())
        except (RunError, ConfigError) as exc:
            print(f"stylelora-tui demo: {exc}", file=sys.stderr)
            return 2
    app = build_app(args)
    if isinstance(app, int):
        return app
    result = app.run()
    return int(result or 0) if app.return_code in (None, 0) else int(app.return_code)
