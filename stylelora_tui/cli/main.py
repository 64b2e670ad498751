"""The ``stylelora-tui`` command line.

Every subcommand imports its implementation lazily, so ``--help`` and opening
the app stay instant; nothing heavy (torch and friends) is ever imported here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from stylelora_tui import __version__

# name -> (module, help). The module provides ``add_arguments(parser)`` and
# ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("stylelora_tui.cli.corpus", "turn books, blogs or style.jsonl into training data"),
    "train": ("stylelora_tui.cli.runs", "start (or --resume) a training run and follow it"),
    "attach": ("stylelora_tui.cli.runs", "follow a running or finished run"),
    "stop": ("stylelora_tui.cli.runs", "stop a run: checkpoint, then end as 'stopped'"),
    "runs": ("stylelora_tui.cli.runs", "list the workspace's runs"),
    "compare": ("stylelora_tui.cli.compare", "generate base vs adapted samples and write compare.html"),
    "export": ("stylelora_tui.cli.export", "write the model card, merge the adapter, GGUF for llama.cpp/Ollama, push to the Hub, or adapters for one vLLM server"),
    "sweep": ("stylelora_tui.cli.sweep", "run a config's sweep: grid as a queue of runs (Optuna); sweep status|stop|resume NAME"),
    "mix": ("stylelora_tui.cli.mix", "mix finished runs' adapters (TIES, DARE, linear, cat, SVD) into a new run with PEFT"),
    "config": ("stylelora_tui.cli.config", "make a config from a preset (config new) or check one (config check)"),
    "open": ("stylelora_tui.cli.app", "open the app on a workspace folder (the default)"),
    "demo": ("stylelora_tui.cli.app", "open the app on the demo workspace"),
}


def _load(module_name: str) -> object:
    import importlib

    return importlib.import_module(module_name)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to fill in its options."""
    parser = argparse.ArgumentParser(
        prog="stylelora-tui",
        description=(
            "Train a LoRA/QLoRA adapter that makes an open-weight LLM write like an author. "
            "With no subcommand, opens the app on WORKSPACE (default: the current folder)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = _load(module_name)
            module.add_arguments(sub, name)  # type: ignore[attr-defined]
            sub.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `stylelora-tui [WORKSPACE]` is shorthand for `stylelora-tui open [WORKSPACE]`, but only for
    # an existing folder (or a path): a mistyped command must not become a new workspace.
    if not argv or (argv[0] not in COMMANDS and not argv[0].startswith("-")):
        if argv and not _names_a_workspace(argv[0]):
            return _unknown_command(argv[0])
        argv = ["open", *argv]
    command = argv[0] if argv[0] in COMMANDS else None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args._run
    try:
        code = run(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): what it wanted is printed; no traceback, and no second
        # error when Python flushes stdout at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _names_a_workspace(word: str) -> bool:
    from pathlib import Path

    return Path(word).expanduser().is_dir() or "/" in word or word.startswith((".", "~"))


def _unknown_command(word: str) -> int:
    import difflib

    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    print(
        f"stylelora-tui: unknown command {word!r}{hint}\n"
        f"commands: {', '.join(COMMANDS)}; open a new workspace folder with: stylelora-tui open {word}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
