"""The ``sweep:`` mapping of a run config: dotted keys to lists of values, checked like the config.

Light (no Optuna, no YAML): ``config check`` and the loader call it.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from typing import Any, Mapping

from stylelora_tui.config.schema import SCHEMA
from stylelora_tui.config.validation import Problem, coerce_value, validate

SWEEP_KEY = "sweep"
MAX_POINTS = 256  # a grid is a queue of full training runs: more is a typo, not a plan

# Short labels for run names (SWEEP-01-r8-lr1e-4); other keys use their own last part.
_LABELS = {
    "lora.r": "r", "lora.lora_alpha": "alpha", "lora.lora_dropout": "drop", "train.learning_rate": "lr",
    "train.num_train_epochs": "ep", "train.max_steps": "steps", "train.per_device_train_batch_size": "bs",
    "train.gradient_accumulation_steps": "ga", "lora.method": "", "lora.target_modules": "tm",
    "lora.use_dora": "dora", "lora.use_rslora": "rslora",
}


def _did_you_mean(key: str) -> str:
    every = [f"{section}.{name}" for section, names in SCHEMA.items() for name in names]
    close = difflib.get_close_matches(key, every, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_grid(raw: Any, *, lines: Mapping[str, int] | None = None, source: str | None = None) -> tuple[dict[str, list[Any]], list[Problem]]:
    """The grid with each value checked and coerced by the config's own rules; and every problem found.

    List-valued keys (``lora.target_modules``) are kept as comma-joined text, as Optuna's grid
    stores only scalars; ``apply`` turns them back into lists.
    """
    line = (lines or {}).get(SWEEP_KEY)
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(key, message, (lines or {}).get(key) or line, source))

    if not isinstance(raw, dict) or not raw:
        problem(SWEEP_KEY, "must be a mapping of dotted config keys to lists of values, "
                "e.g. {lora.r: [8, 16], train.learning_rate: [1e-4, 2e-4]}")
        return {}, problems
    grid: dict[str, list[Any]] = {}
    for key, values in raw.items():
        dotted = f"{SWEEP_KEY}.{key}"
        section, _, name = str(key).partition(".")
        spec = SCHEMA.get(section, {}).get(name)
        if spec is None:
            problem(dotted, f"unknown config key{_did_you_mean(str(key))}; write section.key, e.g. lora.r")
            continue
        if not isinstance(values, list) or not values:
            problem(dotted, f"must be a non-empty list of values, got {values!r}")
            continue
        checked = []
        for value in values:
            coerced, error = coerce_value(spec, value)
            if error:
                problem(dotted, f"value {value!r}: {error}")
                continue
            checked.append(",".join(coerced) if spec.kind == "list" else coerced)
        if len(set(map(repr, checked))) != len(checked):
            problem(dotted, f"lists a value twice: {values!r}")
        grid[str(key)] = checked
    if not problems:
        size = math.prod(len(values) for values in grid.values())
        if size > MAX_POINTS:
            problem(SWEEP_KEY, f"the grid has {size} points (runs); at most {MAX_POINTS}")
    return grid, problems


def points(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination (keys sorted, then the product of the lists); Optuna runs them in its own order."""
    keys = sorted(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[key] for key in keys))]


def apply(config: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A copy of ``config`` with a grid point's values set."""
    result = {section: dict(values) for section, values in config.items()}
    for key, value in params.items():
        section, _, name = key.partition(".")
        if SCHEMA[section][name].kind == "list":
            value = [part for part in str(value).split(",") if part]
        result[section][name] = value
    return result


def point_problems(
    config: Mapping[str, Mapping[str, Any]], grid: Mapping[str, list[Any]], source: str | None = None, *,
    workspace: Any = None, check_paths: bool = False,
) -> list[Problem]:
    """The config's checks for every grid point (e.g. a LoRA variant under a method that has none, a missing corpus)."""
    problems = []
    for params in points(grid):
        _, found = validate(apply(config, params), workspace=workspace, check_paths=check_paths)
        for p in found:
            where = ", ".join(f"{k}={v}" for k, v in params.items())
            problems.append(Problem(p.key, f"at the grid point {where}: {p.message}", None, source))
    return problems


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
        if value and abs(value) < 1e-2 and "e" not in text:
            text = f"{value:.6e}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
            text = f"{mantissa}e{int(exponent)}"
        return text
    return str(value)


def run_name(sweep: str, number: int, params: Mapping[str, Any]) -> str:
    """``SWEEP-01-r8-lr1e-4``: the sweep, the trial's number from 1, and its values."""
    parts = [f"{sweep}-{number + 1:02d}"]
    for key in sorted(params):
        label = _LABELS.get(key, key.rpartition(".")[2])
        if isinstance(params[key], bool):  # dora / nodora
            parts.append(label if params[key] else f"no{label}")
            continue
        parts.append(label + re.sub(r"[^A-Za-z0-9.+_-]", "_", _format_value(params[key])))
    return "-".join(parts)


# --------------------------------------------------------------------------- a grid typed as text (the app's dialog)

GRID_TEXT_HELP = ("One key a line, its values after a colon: `lora.r: 8, 16, 32`, `train.learning_rate: 1e-4, 2e-4`; "
                  "module lists are split by |: `lora.target_modules: q_proj v_proj | q_proj k_proj v_proj o_proj`.")
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


def _typed(kind: str, text: str) -> Any:
    """A typed value as the YAML loader would give it; text it cannot read goes on for check_grid to name."""
    lowered = text.lower()
    if kind in ("bool", "bool_or_auto") and lowered in _TRUE + _FALSE:
        return lowered in _TRUE
    for cast in ((int,) if kind == "int" else (float,) if kind == "float" else ()):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_grid_text(text: str) -> tuple[dict[str, list[Any]], list[Problem]]:
    """The grid written one key a line (``lora.r: 8, 16``), checked by ``check_grid``; problems name their line."""
    raw: dict[str, list[Any]] = {}
    lines: dict[str, int] = {}
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, colon, values = (part.strip() for part in line.partition(":"))
        if not colon or not key:
            problems.append(Problem(SWEEP_KEY, f"{line!r}: write a key, a colon and its values, e.g. lora.r: 8, 16", number))
            continue
        if key in raw:
            problems.append(Problem(f"{SWEEP_KEY}.{key}", f"given twice (also on line {lines[f'{SWEEP_KEY}.{key}']})", number))
            continue
        section, _, name = key.partition(".")
        spec = SCHEMA.get(section, {}).get(name)
        kind = spec.kind if spec else "str"
        if kind == "list":  # each alternative is a list of modules
            parts: list[Any] = [[m for m in re.split(r"[\s,]+", alt) if m] for alt in values.split("|")]
            parts = [part for part in parts if part]
        else:
            parts = [_typed(kind, part.strip()) for part in values.split(",") if part.strip()]
        raw[key] = parts
        lines[f"{SWEEP_KEY}.{key}"] = number
    if not raw and not problems:
        problems.append(Problem(SWEEP_KEY, "no values to sweep: " + GRID_TEXT_HELP))
    if problems:
        return {}, problems
    return check_grid(raw, lines=lines)
