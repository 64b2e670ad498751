"""``config new NAME [--preset PRESET]`` and ``config check FILE``: configs without the app.

``new`` writes ``configs/NAME.yaml`` from a preset, each key with its help as
a comment; ``check`` runs the validation the app's config form runs and
prints one line per problem (``file:line: key: message``); a valid config
gets the table of time and cost per GPU type (``training.cost``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylelora_tui import config as config_mod
from stylelora_tui.paths import BadName, check_name
from stylelora_tui.runs.workspace import Workspace


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    new = actions.add_parser("new", help="write configs/NAME.yaml from a preset", description="write configs/NAME.yaml from a preset")
    new.add_argument("name", help="config name: the file becomes configs/NAME.yaml")
    new.add_argument(
        "--preset", default="lab", choices=list(config_mod.PRESETS),
        help="; ".join(f"{key}: {description}" for key, (description, _) in config_mod.PRESETS.items()) + " (default: lab)",
    )
    new.add_argument("--force", action="store_true", help="overwrite an existing config of that name")
    check = actions.add_parser(
        "check", help="validate a config as the app's form does",
        description="validate a config as the app's form does; exit 1 if anything is wrong",
    )
    check.add_argument("file", type=Path, help="config file (YAML)")
    for sub in (new, check):
        sub.add_argument(
            "-w", "--workspace", type=Path, default=None,
            help="workspace folder (default: $STYLELORA_WORKSPACE or the current folder); relative paths "
            "in the config (data.corpus) are read from it",
        )


def workspace_root(args: argparse.Namespace) -> Path:
    return Workspace.named(args.workspace).root


def run(args: argparse.Namespace) -> int:
    return cmd_new(args) if args.config_action == "new" else cmd_check(args)


def cmd_new(args: argparse.Namespace) -> int:
    name = args.name.removesuffix(".yaml")
    try:
        check_name(name, "config name")
    except BadName as exc:
        print(f"stylelora-tui config new: {exc}", file=sys.stderr)
        return 2
    path = workspace_root(args) / "configs" / f"{name}.yaml"
    if path.exists() and not args.force:
        print(f"stylelora-tui config new: {path} already exists; pick another name or add --force", file=sys.stderr)
        return 2
    description = config_mod.PRESETS[args.preset][0]
    text = f"# {name}: from preset {args.preset!r} ({description})\n" + config_mod.to_yaml(config_mod.preset(args.preset))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        print(f"stylelora-tui config new: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(path)
    print(f"check it with: stylelora-tui config check {path}", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        print(f"stylelora-tui config check: {path} does not exist", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"stylelora-tui config check: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    try:
        raw, lines = config_mod.parse_yaml(text, source=str(path))
        # A sweep's grid sits beside the run config (``stylelora-tui sweep``): checked as the sweep checks it.
        sweep = raw.pop("sweep") if isinstance(raw, dict) and "sweep" in raw else None
        cfg, problems = config_mod.validate(raw, workspace=workspace_root(args), lines=lines, source=str(path))
        grid: dict = {}
        if sweep is not None:
            from stylelora_tui.sweeps.grid import check_grid, point_problems

            grid, found = check_grid(sweep, lines=lines, source=str(path))
            problems += found or (point_problems(cfg, grid, source=str(path), workspace=workspace_root(args)) if not problems else [])
    except config_mod.ConfigError as exc:
        problems = exc.problems
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {path}", file=sys.stderr)
        return 1
    model, lora, train = cfg["model"], cfg["lora"], cfg["train"]
    length = f"{train['max_steps']} steps" if train["max_steps"] > 0 else f"{train['num_train_epochs']} epochs"
    print(
        f"{path}: ok: model {model['name']}, corpus {cfg['data']['corpus']}, LoRA r={lora['r']}, "
        f"batch {train['per_device_train_batch_size']} x {train['gradient_accumulation_steps']}, {length}"
    )
    if grid:
        from stylelora_tui.sweeps.grid import points

        print(f"sweep: {len(points(grid))} runs over {', '.join(grid)} (start it with: stylelora-tui sweep {path})")
    print_cost(cfg, workspace_root(args))
    return 0


def print_cost(cfg: dict, workspace: Path) -> None:
    """Time and cost per GPU type; prices from the table, or the user's [gpu_prices] in settings.toml."""
    from stylelora_tui.training import cost

    prices, problems = cost.load_price_overrides()
    for problem in problems:
        print(f"stylelora-tui config check: {problem}", file=sys.stderr)
    try:
        table = cost.cost_table(cfg, workspace, search_dirs=(workspace, workspace / "models"), prices=prices)
    except Exception as exc:  # noqa: BLE001 - the estimate must never fail a valid config's check
        print(f"Time and cost: not estimated ({type(exc).__name__}: {exc})")
        return
    if table is None:
        print(f"Time and cost: not estimated: the shape of {cfg['model']['name']!r} is unknown "
              "(no local config.json, not in the built-in table)")
        return
    print("\n".join(table_lines(table)))


def table_lines(table) -> list[str]:
    """A ``cost.CostTable`` as text."""
    import textwrap

    from stylelora_tui.training.cards import TIGHT_SHARE
    from stylelora_tui.training.cost import MARKS, format_duration, format_money, settings_path

    work = table.workload
    steps = f"{work.steps} steps" if work.steps else "steps unknown (epochs over a corpus that is not there)"
    lines = [
        f"Time and cost: {steps} of {work.tokens_per_step:,} tokens; {work.note}; method overhead x{table.overhead:g}"
        + (f"; {table.gpus} cards of each type (DDP)" if table.gpus > 1 else ""),
        f"  {'GPU':<11} {'memory':>7} {'fits':<9} {'tokens/s':>9} {'time':>6} {'$/h':>6} {'cost':>7}",
    ]
    for row in table.rows:
        fits = MARKS[row.verdict] + (" +ckpt" if row.checkpointing and row.runs else "")
        price = f"{row.gpu.price_per_hour:.2f}" if row.gpu.price_per_hour else "-"
        shown = row.runs
        lines.append(
            f"  {row.gpu.name:<11} {row.gpu.memory_gib:>5.0f}GB {fits:<9} {row.tokens_per_s:>9,.0f} "
            f"{format_duration(row.seconds) if shown else '-':>6} {price:>6} {format_money(row.cost) if shown else '-':>7}"
        )
    if table.max_minutes and any(r.seconds and r.seconds > table.max_minutes * 60 and r.runs for r in table.rows):
        lines.append(f"  train.max_minutes ({table.max_minutes:g}) ends a run first where the time is longer")
    lines.append(f"  +ckpt: gradient checkpointing on there; tight: over {TIGHT_SHARE:.0%} of the card's memory")
    lines += textwrap.wrap(table.prices_note, 100, initial_indent="  ", subsequent_indent="    ")
    lines.append(f"  override prices: [gpu_prices] in {settings_path()}; the model: docs/cost.md")
    return lines
